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

use muse_store::{
    BranchName, Error, Expected, MergeState, ObjectId, OpEntry, OpLog, Options, RefState,
    Repository, Reservation, SessionId,
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
            Err(Error::UnknownRef { .. }) => Ok(Outcome::UnknownRef),
            Err(Error::Invalid(_)) => Ok(Outcome::Invalid),
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
}

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
                }
            }
        }
    }
}

/// A repository and its model, operated side by side.
pub struct Harness {
    work_tree: PathBuf,
    options: Options,
    repo: Repository,
    /// What the repository should hold.
    pub model: Model,
}

impl Harness {
    /// Initialises a repository in `work_tree` with `options`.
    pub fn new(work_tree: &Path, options: Options) -> Result<Self, String> {
        let repo = Repository::init_with(work_tree, options.clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            work_tree: work_tree.to_path_buf(),
            options,
            repo,
            model: Model::new(),
        })
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
        };
        if predicted != actual {
            return Err(format!(
                "{op:?}: the model predicted {predicted:?}, the store gave {actual:?}"
            ));
        }
        Ok(())
    }

    /// Checks that the whole observable state agrees with the model.
    pub fn check(&self) -> Result<(), String> {
        let e = |e: Error| e.to_string();
        let repo = &self.repo;
        // Objects: exactly the model's, each verified on read.
        let stored: BTreeSet<ObjectId> =
            repo.objects().iter().collect::<Result<_, _>>().map_err(e)?;
        let modelled: BTreeSet<ObjectId> = self.model.objects.keys().copied().collect();
        if stored != modelled {
            return Err(format!(
                "objects differ: store {stored:?}, model {modelled:?}"
            ));
        }
        for (id, bytes) in &self.model.objects {
            let read = repo.objects().read(id).map_err(e)?;
            if &*read != bytes.as_slice() {
                return Err(format!("object {id} reads back other bytes"));
            }
        }
        // Branches, listed and one by one, and their reflogs.
        let refs = repo.refs();
        let listed: BTreeMap<String, RefState> = refs
            .branches()
            .map_err(e)?
            .into_iter()
            .map(|(b, s)| (b.to_string(), s))
            .collect();
        if listed != self.model.refs {
            return Err(format!(
                "branches differ: store {listed:?}, model {:?}",
                self.model.refs
            ));
        }
        for n in 0..BRANCHES.len() {
            let name = branch(n as u8)?;
            let state = refs.branch_state(&name).map_err(e)?;
            if state != self.model.state(&name) {
                return Err(format!("branch {name} is {state:?}, model says otherwise"));
            }
            let log = refs.reflog(&name).map_err(e)?;
            let lines: Vec<(ObjectId, ObjectId)> =
                log.entries.iter().map(|l| (l.old, l.new)).collect();
            let want = self
                .model
                .reflogs
                .get(name.as_str())
                .cloned()
                .unwrap_or_default();
            if lines != want || !log.malformed.is_empty() || log.torn_tail {
                return Err(format!("reflog of {name}: {lines:?}, model {want:?}"));
            }
        }
        let head_log = refs.head_reflog().map_err(e)?;
        let lines: Vec<(ObjectId, ObjectId)> =
            head_log.entries.iter().map(|l| (l.old, l.new)).collect();
        if lines != self.model.head_log {
            return Err(format!(
                "HEAD reflog: {lines:?}, model {:?}",
                self.model.head_log
            ));
        }
        // State files.
        let merge = MergeState::read(repo)
            .map_err(e)?
            .map(|m| (m.ours_commit, m.theirs_commit));
        if merge != self.model.merge {
            return Err(format!(
                "merge state {merge:?}, model {:?}",
                self.model.merge
            ));
        }
        let stored: BTreeSet<String> = Reservation::list(repo)
            .map_err(e)?
            .iter()
            .map(|r| r.reservation_id.to_string())
            .collect();
        let modelled: BTreeSet<String> = self
            .model
            .reservations
            .iter()
            .map(|r| r.reservation_id.to_string())
            .collect();
        if stored != modelled {
            return Err(format!("reservations {stored:?}, model {modelled:?}"));
        }
        let ops: Vec<String> = self
            .oplog()?
            .read()
            .map_err(e)?
            .into_iter()
            .map(|o| o.op_id)
            .collect();
        if ops != self.model.ops {
            return Err(format!("op log {ops:?}, model {:?}", self.model.ops));
        }
        Ok(())
    }
}

/// Runs `ops` on a fresh repository in `work_tree`, checking after each.
pub fn run(work_tree: &Path, options: Options, ops: &[Op]) -> Result<(), String> {
    let mut harness = Harness::new(work_tree, options)?;
    harness.check().map_err(|m| format!("after init: {m}"))?;
    for (i, op) in ops.iter().enumerate() {
        harness
            .step(op)
            .map_err(|m| format!("step {i} {op:?}: {m}"))?;
        harness
            .check()
            .map_err(|m| format!("after step {i} {op:?}: {m}"))?;
    }
    Ok(())
}

/// Reads operations from fuzz bytes (at most `max` of them).
#[must_use]
pub fn decode(bytes: &[u8], max: usize) -> Vec<Op> {
    let mut input = bytes.iter().copied();
    let mut next = move || input.next();
    let mut ops = Vec::new();
    while ops.len() < max {
        let Some(tag) = next() else { break };
        let mut arg = || next().unwrap_or(0);
        let expect = |n: u8| match n % 4 {
            0 => Expect::Any,
            1 => Expect::Absent,
            2 => Expect::Current,
            _ => Expect::Value(n / 4 % 4),
        };
        let op = match tag % 11 {
            0 => {
                let len = usize::from(arg() % 32);
                let seed = arg();
                Op::WriteObject((0..len).map(|i| seed.wrapping_add(i as u8)).collect())
            }
            1 | 2 => Op::Update {
                branch: arg(),
                value: arg() % 8,
                expect: expect(arg()),
            },
            3 => Op::Delete {
                branch: arg(),
                expect: expect(arg()),
            },
            4 => {
                let count = arg() % 4;
                let changes = (0..count)
                    .map(|_| {
                        let b = arg();
                        let c = arg();
                        let change = match c % 3 {
                            0 => TxChange::Set(c / 3 % 8),
                            1 => TxChange::Delete,
                            _ => TxChange::Verify,
                        };
                        (b, change, expect(arg()))
                    })
                    .collect();
                Op::Transaction(changes)
            }
            5 => Op::WriteMerge {
                ours: arg() % 8,
                theirs: arg() % 8,
            },
            6 => Op::ClearMerge,
            7 => Op::Reserve { branch: arg() },
            8 => Op::Unreserve { index: arg() },
            9 => Op::LogAppend { lamport: arg() },
            _ => Op::Reopen,
        };
        ops.push(op);
    }
    ops
}
