//! A model of the store's observable state and the operations that change
//! it, shared by the proptest suite (`tests/it/model.rs`) and the fuzz
//! target `store_model` (`fuzz/fuzz_targets/store_model.rs`, which includes
//! this file by `#[path]`). It uses only the public API.
//!
//! [`run`] applies a sequence of [`Op`]s to a real repository and to a
//! [`Model`] side by side; after every operation the outcome (success or the
//! kind of error) and the whole observable state (objects, branches,
//! reflogs, `MERGE_STATE.json`, reservations, the op log) must agree.
//! Branch values are opaque ids (`value(n)`): refs do not require their
//! targets to exist, and the model checks refs, not history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use muse_store::testing::{SimFs, Survivors};
use muse_store::{
    BranchName, Durability, Error, Expected, MergeState, ObjectId, OpEntry, OpLog, Options,
    RefState, Repository, Reservation, SessionId,
};

/// The branches the operations use (`feat/x` and `feat/y` share a
/// directory, so deleting one must leave the other readable).
pub const BRANCHES: [&str; 5] = ["main", "feat/x", "feat/y", "release-1", "z"];

/// The op-log session the operations append to.
pub const SESSION: &str = "model-session";

/// What an update expects the branch to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything.
    Any,
    /// Absent or unborn.
    Absent,
    /// What the model says it holds now (the update should succeed).
    Current,
    /// `value(n)` (usually a mismatch).
    Value(u8),
}

/// One change inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxChange {
    /// Set the branch to `value(n)`.
    Set(u8),
    /// Delete the branch.
    Delete,
    /// Only check the expectation.
    Verify,
}

/// One store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::enum_variant_names,
    reason = "`CrashMidOp` is the name issue 5's discussion uses"
)]
pub enum Op {
    /// Store these bytes as an object.
    WriteObject(Vec<u8>),
    /// Compare-and-swap `BRANCHES[branch]` to `value(value)`.
    Update {
        /// Index into [`BRANCHES`].
        branch: u8,
        /// The new value's seed.
        value: u8,
        /// What the branch must hold.
        expect: Expect,
    },
    /// Delete `BRANCHES[branch]`.
    Delete {
        /// Index into [`BRANCHES`].
        branch: u8,
        /// What the branch must hold.
        expect: Expect,
    },
    /// A ref transaction (all or nothing).
    Transaction(Vec<(u8, TxChange, Expect)>),
    /// Write `MERGE_STATE.json`.
    WriteMerge {
        /// `ours_commit` seed.
        ours: u8,
        /// `theirs_commit` seed.
        theirs: u8,
    },
    /// Remove `MERGE_STATE.json`.
    ClearMerge,
    /// Create a reservation on `BRANCHES[branch]`.
    Reserve {
        /// Index into [`BRANCHES`].
        branch: u8,
    },
    /// Remove the `index`-th live reservation (modulo their number).
    Unreserve {
        /// Which one.
        index: u8,
    },
    /// Append one entry to the op log.
    LogAppend {
        /// Its Lamport timestamp.
        lamport: u8,
    },
    /// Drop the handle and open the repository again (runs recovery).
    Reopen,
    /// Cut the power between operations (every one of them acknowledged):
    /// the image keeps the durable state plus `survivors` of what was still
    /// pending; it is reopened (recovery) in a fresh directory on a new
    /// simulated disk and must hold exactly the model.
    PowerCut {
        /// Which pending effects survive.
        survivors: Survivors,
    },
    /// Run `op`, then cut the power after only `after` (modulo the number it
    /// made) of its seam operations: its effect must be wholly present or
    /// wholly absent, and the model adopts whichever it is.
    CrashMidOp {
        /// The operation cut short (never a cut itself).
        op: Box<Op>,
        /// How many of its seam operations happened before the cut.
        after: u8,
        /// Which pending effects survive.
        survivors: Survivors,
    },
}

/// The opaque ref value number `n`.
#[must_use]
pub fn value(n: u8) -> ObjectId {
    ObjectId::hash(&[b'v', n])
}

/// The branch `BRANCHES[n % len]`.
pub fn branch(n: u8) -> Result<BranchName, String> {
    let name = BRANCHES[usize::from(n) % BRANCHES.len()];
    BranchName::new(name).map_err(|e| e.to_string())
}

/// How an operation ended, as far as the model can predict it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// A ref did not hold what was expected.
    CasMismatch,
    /// A delete named a branch that does not exist.
    UnknownRef,
    /// The request itself was invalid (a branch twice in one transaction).
    Invalid,
}

impl Outcome {
    fn of<T>(result: &Result<T, Error>) -> Result<Self, String> {
        match result {
            Ok(_) => Ok(Outcome::Ok),
            Err(Error::CasMismatch { .. }) => Ok(Outcome::CasMismatch),
            Err(Error::NoSuchBranch { .. }) => Ok(Outcome::UnknownRef),
            Err(Error::DuplicateRef { .. }) => Ok(Outcome::Invalid),
            Err(e) => Err(format!("unexpected error: {e}")),
        }
    }
}

/// The observable state of a repository.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Every stored object.
    pub objects: BTreeMap<ObjectId, Vec<u8>>,
    /// Every branch that exists (absent = missing).
    pub refs: BTreeMap<String, RefState>,
    /// Each branch's reflog as `(old, new)` pairs.
    pub reflogs: BTreeMap<String, Vec<(ObjectId, ObjectId)>>,
    /// HEAD's reflog (HEAD stays on `main`).
    pub head_log: Vec<(ObjectId, ObjectId)>,
    /// `MERGE_STATE.json` as `(ours, theirs)`.
    pub merge: Option<(ObjectId, ObjectId)>,
    /// Live reservations, oldest first.
    pub reservations: Vec<Reservation>,
    /// Op-log entry ids in order.
    pub ops: Vec<String>,
    /// Logs (a branch name, or `HEAD`) that a cut hit mid-append: their
    /// entries must still be exactly the model's, but a torn tail or lines
    /// of garbage (reported as malformed, never taken for entries) may stay.
    pub damaged_logs: BTreeSet<String>,
}

/// The name [`Model::damaged_logs`] gives HEAD's reflog.
pub const HEAD_LOG: &str = "HEAD";

impl Model {
    /// The state of a freshly initialised repository: `main` unborn.
    #[must_use]
    pub fn new() -> Self {
        let mut model = Self::default();
        model.refs.insert("main".to_owned(), RefState::Unborn);
        model
    }

    fn state(&self, name: &BranchName) -> RefState {
        self.refs
            .get(name.as_str())
            .copied()
            .unwrap_or(RefState::Missing)
    }

    fn expected(&self, name: &BranchName, expect: Expect) -> Expected {
        match expect {
            Expect::Any => Expected::Any,
            Expect::Absent => Expected::Absent,
            Expect::Current => self
                .state(name)
                .commit()
                .map_or(Expected::Absent, Expected::Value),
            Expect::Value(n) => Expected::Value(value(n)),
        }
    }

    fn matches(&self, name: &BranchName, expected: Expected) -> bool {
        let actual = self.state(name).commit();
        match expected {
            Expected::Any => true,
            Expected::Absent => actual.is_none(),
            Expected::Value(id) => actual == Some(id),
        }
    }

    /// Predicts a transaction: the outcome and, on success, the changes.
    fn plan(
        &self,
        changes: &[(BranchName, TxChange, Expected)],
    ) -> (Outcome, Vec<(BranchName, RefState)>) {
        let names: BTreeSet<&BranchName> = changes.iter().map(|(b, _, _)| b).collect();
        if names.len() != changes.len() {
            return (Outcome::Invalid, Vec::new());
        }
        let mut planned = Vec::new();
        for (name, change, expected) in changes {
            if !self.matches(name, *expected) {
                return (Outcome::CasMismatch, Vec::new());
            }
            match change {
                TxChange::Verify => {}
                TxChange::Set(n) => planned.push((name.clone(), RefState::At(value(*n)))),
                TxChange::Delete if self.state(name) == RefState::Missing => {
                    return (Outcome::UnknownRef, Vec::new());
                }
                TxChange::Delete => planned.push((name.clone(), RefState::Missing)),
            }
        }
        (Outcome::Ok, planned)
    }

    /// Applies planned changes, with their reflog lines.
    fn apply(&mut self, planned: &[(BranchName, RefState)]) {
        for (name, new) in planned {
            let old = self.state(name).commit().unwrap_or(ObjectId::ZERO);
            match new {
                RefState::At(id) => {
                    self.refs.insert(name.to_string(), *new);
                    self.reflogs
                        .entry(name.to_string())
                        .or_default()
                        .push((old, *id));
                    if name.as_str() == "main" {
                        self.head_log.push((old, *id));
                    }
                }
                RefState::Missing | RefState::Unborn => {
                    self.refs.remove(name.as_str());
                    self.reflogs.remove(name.as_str());
                    self.damaged_logs.remove(name.as_str());
                }
            }
        }
    }
}

/// A repository and its model, operated side by side, on a simulated disk.
pub struct Harness {
    /// Where the repository and every power-cut image live.
    scratch: PathBuf,
    work_tree: PathBuf,
    options: Options,
    sim: SimFs,
    repo: Repository,
    /// What the repository should hold.
    pub model: Model,
    /// Power cuts made so far.
    pub cuts: usize,
    /// How many refs the last ref operation changed (a journal is written
    /// when more than one).
    last_changes: usize,
}

impl Harness {
    /// Initialises a repository in `scratch/w0` with `options` and attaches
    /// a [`SimFs`]. Power cuts need `Durability::Full` (an acknowledged
    /// write is promised to survive only there).
    pub fn new(scratch: &Path, options: &Options) -> Result<Self, String> {
        let work_tree = scratch.join("w0");
        drop(Repository::init_with(&work_tree, options.clone()).map_err(|e| e.to_string())?);
        let sim = SimFs::new(&work_tree).map_err(|e| e.to_string())?;
        let options = Options {
            vfs: Arc::new(sim.clone()),
            ..options.clone()
        };
        let repo = Repository::open_with(&work_tree, options.clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            scratch: scratch.to_path_buf(),
            work_tree,
            options,
            sim,
            repo,
            model: Model::new(),
            cuts: 0,
            last_changes: 0,
        })
    }

    /// Cuts the power after `after` seam operations, materialises the image
    /// into a fresh directory, and reopens it (running recovery) on a new
    /// simulated disk rooted there. The previous image is removed.
    fn power_cut(&mut self, after: usize, survivors: Survivors) -> Result<(), String> {
        self.cuts += 1;
        let image = self.scratch.join(format!("cut-{}", self.cuts));
        self.sim
            .power_cut(after, survivors, &image)
            .map_err(|e| format!("power cut: {e}"))?;
        let sim = SimFs::new(&image).map_err(|e| e.to_string())?;
        let options = Options {
            vfs: Arc::new(sim.clone()),
            ..self.options.clone()
        };
        let repo = Repository::open_with(&image, options.clone())
            .map_err(|e| format!("reopening after the cut ({survivors:?}): {e}"))?;
        let old = std::mem::replace(&mut self.work_tree, image);
        self.repo = repo;
        self.sim = sim;
        self.options = options;
        std::fs::remove_dir_all(&old).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn oplog(&self) -> Result<OpLog, String> {
        let session = SessionId::new(SESSION).map_err(|e| e.to_string())?;
        Ok(OpLog::new(&self.repo, session))
    }

    /// Applies `op` to both sides and checks that the outcomes agree.
    #[expect(
        clippy::too_many_lines,
        reason = "one match arm per operation, side by side with the model"
    )]
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        let e = |e: Error| e.to_string();
        self.last_changes = 0;
        let (predicted, actual) = match op {
            Op::WriteObject(bytes) => {
                let (id, _) = self.repo.objects().write(bytes).map_err(e)?;
                if id != ObjectId::hash(bytes) {
                    return Err(format!("write returned id {id} for other bytes"));
                }
                self.model.objects.insert(id, bytes.clone());
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Update {
                branch: b,
                value: v,
                expect,
            } => {
                let name = branch(*b)?;
                let expected = self.model.expected(&name, *expect);
                let (predicted, planned) =
                    self.model
                        .plan(&[(name.clone(), TxChange::Set(*v), expected)]);
                let result = self
                    .repo
                    .refs()
                    .update(&name, value(*v), expected, "model: update");
                let actual = Outcome::of(&result)?;
                if actual == Outcome::Ok {
                    let old = result.map_err(e)?;
                    if old != self.model.state(&name).commit() {
                        return Err(format!("update of {name} returned old value {old:?}"));
                    }
                }
                if predicted == Outcome::Ok {
                    self.model.apply(&planned);
                    self.last_changes = planned.len();
                }
                (predicted, actual)
            }
            Op::Delete { branch: b, expect } => {
                let name = branch(*b)?;
                let expected = self.model.expected(&name, *expect);
                let (predicted, planned) =
                    self.model
                        .plan(&[(name.clone(), TxChange::Delete, expected)]);
                let result = self.repo.refs().delete(&name, expected, "model: delete");
                let actual = Outcome::of(&result)?;
                if predicted == Outcome::Ok {
                    self.model.apply(&planned);
                    self.last_changes = planned.len();
                }
                (predicted, actual)
            }
            Op::Transaction(changes) => {
                let mut resolved = Vec::new();
                for (b, change, expect) in changes {
                    let name = branch(*b)?;
                    let expected = self.model.expected(&name, *expect);
                    resolved.push((name, *change, expected));
                }
                let (predicted, planned) = self.model.plan(&resolved);
                let refs = self.repo.refs();
                let mut tx = refs.transaction("model: transaction");
                for (name, change, expected) in &resolved {
                    match change {
                        TxChange::Set(n) => tx.update(name.clone(), value(*n), *expected),
                        TxChange::Delete => tx.delete(name.clone(), *expected),
                        TxChange::Verify => tx.verify(name.clone(), *expected),
                    };
                }
                let actual = Outcome::of(&tx.commit())?;
                if predicted == Outcome::Ok {
                    self.model.apply(&planned);
                    self.last_changes = planned.len();
                }
                (predicted, actual)
            }
            Op::WriteMerge { ours, theirs } => {
                let state = MergeState::new(
                    Some(value(0)),
                    value(*ours),
                    value(*theirs),
                    vec!["a.txt".to_owned()],
                    None,
                );
                state.write(&self.repo).map_err(e)?;
                self.model.merge = Some((value(*ours), value(*theirs)));
                (Outcome::Ok, Outcome::Ok)
            }
            Op::ClearMerge => {
                MergeState::clear(&self.repo).map_err(e)?;
                self.model.merge = None;
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Reserve { branch: b } => {
                let name = branch(*b)?;
                let reservation = Reservation::create(
                    &self.repo,
                    "model-run",
                    name.as_str(),
                    vec!["src/lib.rs".to_owned()],
                    Some("edit".to_owned()),
                )
                .map_err(e)?;
                self.model.reservations.push(reservation);
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Unreserve { index } => {
                if !self.model.reservations.is_empty() {
                    let i = usize::from(*index) % self.model.reservations.len();
                    let gone = self.model.reservations.remove(i);
                    Reservation::remove(&self.repo, &gone.reservation_id).map_err(e)?;
                }
                (Outcome::Ok, Outcome::Ok)
            }
            Op::LogAppend { lamport } => {
                let entry = OpEntry::new(
                    "model-actor",
                    u64::from(*lamport),
                    "code",
                    serde_json::Value::Null,
                );
                self.oplog()?.append(&entry).map_err(e)?;
                self.model.ops.push(entry.op_id);
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Reopen => {
                self.repo =
                    Repository::open_with(&self.work_tree, self.options.clone()).map_err(e)?;
                (Outcome::Ok, Outcome::Ok)
            }
            Op::PowerCut { survivors } => {
                self.power_cut(self.sim.ops(), *survivors)?;
                (Outcome::Ok, Outcome::Ok)
            }
            Op::CrashMidOp {
                op: inner,
                after,
                survivors,
            } => {
                let before = self.model.clone();
                let start = self.sim.ops();
                self.step(inner)?;
                let made = self.sim.ops() - start;
                let cut = start
                    + if made == 0 {
                        0
                    } else {
                        usize::from(*after) % made
                    };
                let journaled = self.last_changes > 1;
                let acknowledged = std::mem::replace(&mut self.model, before.clone());
                self.power_cut(cut, *survivors)?;
                self.model = self.adopt(&before, &acknowledged, journaled).map_err(|m| {
                    format!(
                        "cut after {} of its {made} seam operations ({survivors:?}): {m}",
                        cut - start
                    )
                })?;
                (Outcome::Ok, Outcome::Ok)
            }
        };
        if predicted != actual {
            return Err(format!(
                "{op:?}: the model predicted {predicted:?}, the store gave {actual:?}"
            ));
        }
        Ok(())
    }

    /// Reads the whole observable state. Every object is read back (which
    /// verifies its hash) and compared with `known` bytes when listed there;
    /// the branch list must agree with each branch read on its own.
    fn observe(&self, known: &BTreeMap<ObjectId, Vec<u8>>) -> Result<Observed, String> {
        let e = |e: Error| e.to_string();
        let repo = &self.repo;
        let objects: BTreeSet<ObjectId> =
            repo.objects().iter().collect::<Result<_, _>>().map_err(e)?;
        for id in &objects {
            let read = repo
                .objects()
                .read(id)
                .map_err(|err| format!("object {id}: {err}"))?;
            if known.get(id).is_some_and(|b| &*read != b.as_slice()) {
                return Err(format!("object {id} reads back other bytes"));
            }
        }
        let refs = repo.refs();
        let listed: BTreeMap<String, RefState> = refs
            .branches()
            .map_err(e)?
            .into_iter()
            .map(|(b, s)| (b.to_string(), s))
            .collect();
        let view = |log: muse_store::Reflog, path: PathBuf| LogView {
            entries: log.entries.iter().map(|l| (l.old, l.new)).collect(),
            damaged: !log.malformed.is_empty() || log.torn_tail,
            exists: path.exists(),
        };
        let mut reflogs = BTreeMap::new();
        for n in 0..BRANCHES.len() {
            let name = branch(n as u8)?;
            let state = refs.branch_state(&name).map_err(e)?;
            let in_list = listed.get(name.as_str()).copied();
            if state != in_list.unwrap_or(RefState::Missing) {
                return Err(format!(
                    "branch {name} reads {state:?} but is listed as {in_list:?}"
                ));
            }
            let log = refs.reflog(&name).map_err(e)?;
            let path = repo.layout().branch_log(&name);
            reflogs.insert(name.to_string(), view(log, path));
        }
        let head_log = view(refs.head_reflog().map_err(e)?, repo.layout().head_log());
        let merge = MergeState::read(repo)
            .map_err(e)?
            .map(|m| (m.ours_commit, m.theirs_commit));
        let reservations = Reservation::list(repo)
            .map_err(e)?
            .iter()
            .map(|r| r.reservation_id.to_string())
            .collect();
        let ops = self
            .oplog()?
            .read()
            .map_err(e)?
            .into_iter()
            .map(|o| o.op_id)
            .collect();
        Ok(Observed {
            objects,
            refs: listed,
            reflogs,
            head_log,
            merge,
            reservations,
            ops,
        })
    }

    /// Checks that the whole observable state agrees with the model. The
    /// only thing allowed to differ is crash damage in a log the model lists
    /// in `damaged_logs` (a torn tail, garbage lines); temp and lock files
    /// must never show up as objects, branches or state.
    pub fn check(&self) -> Result<(), String> {
        let model = &self.model;
        let seen = self.observe(&model.objects)?;
        let modelled: BTreeSet<ObjectId> = model.objects.keys().copied().collect();
        if seen.objects != modelled {
            return Err(format!(
                "objects differ: store {:?}, model {modelled:?}",
                seen.objects
            ));
        }
        if seen.refs != model.refs {
            return Err(format!(
                "branches differ: store {:?}, model {:?}",
                seen.refs, model.refs
            ));
        }
        for (name, log) in &seen.reflogs {
            let want = model.reflogs.get(name).cloned().unwrap_or_default();
            if log.entries != want {
                return Err(format!(
                    "reflog of {name}: {:?}, model {want:?}",
                    log.entries
                ));
            }
            if log.damaged && !model.damaged_logs.contains(name) {
                return Err(format!(
                    "reflog of {name} has malformed lines or a torn tail"
                ));
            }
        }
        if seen.head_log.entries != model.head_log {
            return Err(format!(
                "HEAD reflog: {:?}, model {:?}",
                seen.head_log.entries, model.head_log
            ));
        }
        if seen.head_log.damaged && !model.damaged_logs.contains(HEAD_LOG) {
            return Err("HEAD reflog has malformed lines or a torn tail".to_owned());
        }
        if seen.merge != model.merge {
            return Err(format!(
                "merge state {:?}, model {:?}",
                seen.merge, model.merge
            ));
        }
        let modelled = reservation_ids(model);
        if seen.reservations != modelled {
            return Err(format!(
                "reservations {:?}, model {modelled:?}",
                seen.reservations
            ));
        }
        if seen.ops != model.ops {
            return Err(format!("op log {:?}, model {:?}", seen.ops, model.ops));
        }
        Ok(())
    }

    /// After a cut in the middle of an operation: reads the reopened
    /// repository, checks that it holds the state `before` the operation or
    /// the state it `acknowledged` (all or nothing), and returns the model of
    /// what it holds. The one documented exception: a ref operation without
    /// a journal (one ref) may have moved the ref without its reflog lines
    /// (or the branch's line without HEAD's), and a deleted branch may keep
    /// its reflog; a journaled transaction is rolled forward whole.
    fn adopt(
        &self,
        before: &Model,
        acknowledged: &Model,
        journaled: bool,
    ) -> Result<Model, String> {
        let seen = self.observe(&acknowledged.objects)?;
        let keys = |m: &Model| m.objects.keys().copied().collect::<BTreeSet<_>>();
        which(
            "the object set",
            &seen.objects,
            &keys(before),
            &keys(acknowledged),
        )?;
        which("the branches", &seen.refs, &before.refs, &acknowledged.refs)?;
        which(
            "the merge state",
            &seen.merge,
            &before.merge,
            &acknowledged.merge,
        )?;
        let new_reservations = which(
            "the reservations",
            &seen.reservations,
            &reservation_ids(before),
            &reservation_ids(acknowledged),
        )?;
        which("the op log", &seen.ops, &before.ops, &acknowledged.ops)?;

        // Logs: each old or new; new only if the refs moved (or did not
        // change at all); a journaled transaction's logs all go together.
        let refs_changed = before.refs != acknowledged.refs;
        let refs_new = seen.refs == acknowledged.refs;
        let mut logs: Vec<(String, &LogView, Entries, Entries)> = seen
            .reflogs
            .iter()
            .map(|(name, log)| {
                let get = |m: &Model| m.reflogs.get(name).cloned().unwrap_or_default();
                (name.clone(), log, get(before), get(acknowledged))
            })
            .collect();
        logs.push((
            HEAD_LOG.to_owned(),
            &seen.head_log,
            before.head_log.clone(),
            acknowledged.head_log.clone(),
        ));
        let mut moved = BTreeSet::new();
        let mut stayed = BTreeSet::new();
        for (name, log, old, new) in &logs {
            let is_new = which(&format!("the reflog of {name}"), &log.entries, old, new)?;
            if old != new {
                if is_new {
                    moved.insert(name.clone());
                } else {
                    stayed.insert(name.clone());
                }
            }
            if is_new && refs_changed && !refs_new {
                return Err(format!("the reflog of {name} moved but the refs did not"));
            }
            if log.damaged && old == new && !before.damaged_logs.contains(name) {
                return Err(format!(
                    "the reflog of {name}, untouched by the operation, is damaged"
                ));
            }
        }
        if journaled && !moved.is_empty() && !stayed.is_empty() {
            return Err(format!(
                "a journaled transaction left its reflogs half-written: new {moved:?}, old {stayed:?}"
            ));
        }
        if journaled && refs_changed && refs_new && !stayed.is_empty() {
            return Err(format!(
                "a journaled transaction moved its refs but not the reflogs {stayed:?}"
            ));
        }
        if moved.contains(HEAD_LOG) && stayed.contains("main") {
            return Err("HEAD's reflog moved but main's did not".to_owned());
        }

        let mut model = before.clone();
        model.objects = acknowledged
            .objects
            .iter()
            .filter(|(id, _)| seen.objects.contains(id))
            .map(|(id, b)| (*id, b.clone()))
            .collect();
        model.refs = seen.refs.clone();
        model.reflogs = seen
            .reflogs
            .iter()
            .filter(|(_, log)| !log.entries.is_empty())
            .map(|(name, log)| (name.clone(), log.entries.clone()))
            .collect();
        model.head_log.clone_from(&seen.head_log.entries);
        model.merge = seen.merge;
        if new_reservations {
            model.reservations.clone_from(&acknowledged.reservations);
        }
        model.ops = seen.ops;
        model.damaged_logs = logs
            .iter()
            .filter(|(name, log, _, _)| {
                log.damaged || (log.exists && before.damaged_logs.contains(name))
            })
            .map(|(name, _, _, _)| name.clone())
            .collect();
        Ok(model)
    }
}

/// Whether `seen` is the `new` state (`false`: the `old` one); an error
/// when it is neither.
fn which<T: PartialEq + std::fmt::Debug>(
    what: &str,
    seen: &T,
    old: &T,
    new: &T,
) -> Result<bool, String> {
    if seen == old {
        Ok(false)
    } else if seen == new {
        Ok(true)
    } else {
        Err(format!(
            "{what} is neither the old nor the new state: {seen:?}, old {old:?}, new {new:?}"
        ))
    }
}

/// Reflog lines as `(old, new)` pairs.
type Entries = Vec<(ObjectId, ObjectId)>;

/// One reflog as read.
#[derive(Debug, Clone, Default)]
struct LogView {
    entries: Vec<(ObjectId, ObjectId)>,
    /// It has malformed lines or a torn tail.
    damaged: bool,
    /// Its file exists.
    exists: bool,
}

/// The observable state of a repository, as read.
#[derive(Debug)]
struct Observed {
    objects: BTreeSet<ObjectId>,
    refs: BTreeMap<String, RefState>,
    /// Every name of [`BRANCHES`].
    reflogs: BTreeMap<String, LogView>,
    head_log: LogView,
    merge: Option<(ObjectId, ObjectId)>,
    reservations: BTreeSet<String>,
    ops: Vec<String>,
}

fn reservation_ids(model: &Model) -> BTreeSet<String> {
    model
        .reservations
        .iter()
        .map(|r| r.reservation_id.to_string())
        .collect()
}

/// Runs `ops` on a fresh repository under `scratch` (on a simulated disk),
/// checking after each; returns the number of power cuts made.
pub fn run(scratch: &Path, options: &Options, ops: &[Op]) -> Result<usize, String> {
    let mut harness = Harness::new(scratch, options)?;
    harness.check().map_err(|m| format!("after init: {m}"))?;
    for (i, op) in ops.iter().enumerate() {
        harness
            .step(op)
            .map_err(|m| format!("step {i} {op:?}: {m}"))?;
        harness
            .check()
            .map_err(|m| format!("after step {i} {op:?}: {m}"))?;
    }
    Ok(harness.cuts)
}

/// The options the model runs with: full durability (an acknowledged write
/// is promised to survive a power cut only there).
#[must_use]
pub fn options() -> Options {
    Options {
        durability: Durability::Full,
        ..Options::default()
    }
}

/// Reads operations from fuzz bytes (at most `max` of them).
#[must_use]
pub fn decode(bytes: &[u8], max: usize) -> Vec<Op> {
    // Bytes past the end read as zeros; decoding stops once all are used.
    let pos = std::cell::Cell::new(0);
    let mut next = || {
        let i = pos.get();
        pos.set(i + 1);
        bytes.get(i).copied().unwrap_or(0)
    };
    let mut ops = Vec::new();
    while ops.len() < max && pos.get() < bytes.len() {
        let tag = next();
        let op = match tag % 14 {
            11 => Op::PowerCut {
                survivors: decode_survivors(&mut next),
            },
            12 | 13 => {
                let op = Box::new(decode_plain(next(), &mut next));
                Op::CrashMidOp {
                    op,
                    after: next(),
                    survivors: decode_survivors(&mut next),
                }
            }
            plain => decode_plain(plain, &mut next),
        };
        ops.push(op);
    }
    ops
}

/// Which pending effects survive, from one or two bytes.
fn decode_survivors(next: &mut impl FnMut() -> u8) -> Survivors {
    let n = next();
    match n % 4 {
        0 => Survivors::Nothing,
        1 => Survivors::Everything,
        _ => Survivors::Random(u64::from(n) << 8 | u64::from(next())),
    }
}

/// One operation that is not a cut, chosen by `tag % 11`.
fn decode_plain(tag: u8, next: &mut impl FnMut() -> u8) -> Op {
    let expect = |n: u8| match n % 4 {
        0 => Expect::Any,
        1 => Expect::Absent,
        2 => Expect::Current,
        _ => Expect::Value(n / 4 % 4),
    };
    match tag % 11 {
        0 => {
            let len = usize::from(next() % 32);
            let seed = next();
            Op::WriteObject((0..len).map(|i| seed.wrapping_add(i as u8)).collect())
        }
        1 | 2 => Op::Update {
            branch: next(),
            value: next() % 8,
            expect: expect(next()),
        },
        3 => Op::Delete {
            branch: next(),
            expect: expect(next()),
        },
        4 => {
            let count = next() % 4;
            let changes = (0..count)
                .map(|_| {
                    let b = next();
                    let c = next();
                    let change = match c % 3 {
                        0 => TxChange::Set(c / 3 % 8),
                        1 => TxChange::Delete,
                        _ => TxChange::Verify,
                    };
                    (b, change, expect(next()))
                })
                .collect();
            Op::Transaction(changes)
        }
        5 => Op::WriteMerge {
            ours: next() % 8,
            theirs: next() % 8,
        },
        6 => Op::ClearMerge,
        7 => Op::Reserve { branch: next() },
        8 => Op::Unreserve { index: next() },
        9 => Op::LogAppend { lamport: next() },
        _ => Op::Reopen,
    }
}
