//! Simulated power cuts (issue 5, point 1; issue 11, point 8).
//!
//! Every workload of one or two steps drawn from {write an object, CAS
//! update of a ref, a transaction of 2-3 refs, a state-file write, a reflog
//! append, a commit, a checkout of the other branch, `gc --prune=now`, a
//! HEAD update, a config write, a branch delete, a branch rename (a
//! transaction: create the new name, delete the old), failed fsyncs and
//! their retries}, every three-step workload of the first six, and a sample
//! of longer ones, runs once over a [`SimFs`]; then the power is cut after
//! every one of its seam operations, keeping nothing pending, everything
//! pending, and random subsets (torn writes, garbage and zeros included).
//! Each image is reopened (which runs recovery) and checked: acknowledged
//! writes are present and verify, nothing unacknowledged is half-present,
//! the refs are all-old or all-new (whole transactions included), the
//! working tree holds whole files and HEAD moves only once the checkout's
//! files are in place, gc removed only what it reported and nothing
//! reachable, the state file, config and logs parse, no temp or lock file is
//! taken for data, and the repository accepts new writes at once. Recovery
//! itself is cut too.
//!
//! Replay: every test prints its base seed; `MUSE_POWERCUT_SEED=<seed>`
//! reruns the same random cuts and the same sampled workloads.
//! `MUSE_POWERCUT_LONG=1` draws many more random cuts per crash point and
//! many more sampled workloads.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use muse_store::testing::{OpKind, SimFs, Survivors};
use muse_store::{
    BranchName, CommitRecord, Config, Durability, Expected, GcOptions, Head, NewCommit, NoProgress,
    ObjectId, Options, RefState, Repository, SnapshotRecord, TempKind, Timestamp, is_temp_name,
};
use muse_store::{Reflog, ReflogEntry};

use crate::{TestResult, pattern};

/// One step of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Object,
    Cas,
    Txn,
    State,
    Reflog,
    /// `commit_worktree`: two working-tree files edited (each an atomic,
    /// durable write), then objects, snapshot and commit record in one write
    /// batch (two syncfs barriers), then a CAS of the branch.
    Commit,
    /// Porcelain checkout of the other branch (`work` and `side` have
    /// different trees, a file turning into a directory included).
    Checkout,
    /// `gc` with prune now: removes the planted old unreachable records
    /// and objects.
    Gc,
    /// `set_head`: detaches HEAD at its commit, or re-attaches it.
    Head,
    /// `Config::set` of `user.name`, or `Config::add_remote`.
    Config,
    /// `delete_branch` of `main`, else of the renamed branch.
    Delete,
    /// A rename as one transaction: create the new name at the old one's
    /// value, delete the old name (compare-and-swap).
    Rename,
    /// Failed fsyncs and their retries: a branch created while its reflog's
    /// fsync fails (the update fails and is undone), then created again; an
    /// object whose fsync fails, written again; a commit whose batch barrier
    /// fails, committed again.
    Flaky,
    /// `unpack` of a bundle another repository packed (a new commit on top
    /// of the last one received: one new object, one this repository has,
    /// the empty blob), then a CAS of `received` to its tip, as a fetch
    /// does: quarantine, one write batch, then the ref.
    Unpack,
    /// The same, pushed by that repository through `LocalTransport`: the
    /// receiver's quarantine and batch, then one ref transaction moving
    /// `received` by compare-and-swap, with a `push` reflog line.
    Push,
}

/// The steps whose three-step workloads run exhaustively.
const CORE_STEPS: [Step; 6] = [
    Step::Object,
    Step::Cas,
    Step::Txn,
    Step::State,
    Step::Reflog,
    Step::Commit,
];

/// Every step.
const STEPS: [Step; 15] = [
    Step::Object,
    Step::Cas,
    Step::Txn,
    Step::State,
    Step::Reflog,
    Step::Commit,
    Step::Checkout,
    Step::Gc,
    Step::Head,
    Step::Config,
    Step::Delete,
    Step::Rename,
    Step::Flaky,
    Step::Unpack,
    Step::Push,
];

/// The branch unpacks and pushes move.
const RECEIVED: &str = "received";

/// The branch HEAD starts on.
const WORK: &str = "work";

/// The branch checkouts switch to and from.
const SIDE: &str = "side";

/// The branch that keeps every pool commit reachable.
const POOL: &str = "pool";

/// How many pool commits exist: the ref steps cycle through them, never
/// moving a ref to the commit it holds (every image file costs each cut).
const POOL_SIZE: usize = 8;

/// The refs a transaction moves (`c` only in the 3-ref ones).
const TXN_REFS: [&str; 3] = ["a", "b", "c"];

/// Sizes of the objects written, by step index: one page, and several pages
/// so that writes can tear.
const OBJECT_SIZES: [usize; 3] = [100, 6000, 13_000];

/// Power cuts checked by this binary so far (all tests).
static CUTS: AtomicUsize = AtomicUsize::new(0);

fn id(n: u64) -> ObjectId {
    ObjectId::hash(&n.to_le_bytes())
}

fn branch(name: &str) -> BranchName {
    BranchName::new(name).expect("test branch names are valid")
}

/// The base seed: `MUSE_POWERCUT_SEED`, else from the clock (printed).
fn base_seed() -> u64 {
    if let Some(seed) = std::env::var("MUSE_POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn long_run() -> bool {
    std::env::var("MUSE_POWERCUT_LONG").is_ok_and(|v| v == "1")
}

/// Random cuts per crash point.
fn random_cuts_per_point() -> u64 {
    if long_run() { 24 } else { 1 }
}

fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A scratch directory, on tmpfs when there is one (cuts are I/O bound).
fn scratch_dir() -> TestResult<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("muse-powercut-")
            .tempdir_in(shm)
    {
        return Ok(dir);
    }
    Ok(tempfile::tempdir()?)
}

fn options(vfs: Option<SimFs>) -> Options {
    let mut options = Options {
        durability: Durability::Full,
        ..Options::default()
    };
    if let Some(sim) = vfs {
        options.vfs = Arc::new(sim);
    }
    options
}

/// A window of seam operations: `start..end`.
type Window = (usize, usize);

/// The versions one target went through: `values[0]` before the workload,
/// `values[i + 1]` written by the operation whose seam operations are
/// `windows[i]`, which may also have shown `transient[i]` while it ran (a
/// failed operation shows its attempt, then undoes it).
#[derive(Debug, Clone)]
struct Versions<T> {
    values: Vec<T>,
    windows: Vec<Window>,
    transient: Vec<Vec<T>>,
}

impl<T: Clone + PartialEq> Versions<T> {
    fn new(initial: T) -> Self {
        Self {
            values: vec![initial],
            windows: Vec::new(),
            transient: Vec::new(),
        }
    }

    fn current(&self) -> &T {
        &self.values[self.values.len() - 1]
    }

    fn push(&mut self, value: T, window: Window) {
        self.values.push(value);
        self.windows.push(window);
        self.transient.push(Vec::new());
    }

    /// An operation that failed and left the value as it was, having shown
    /// `seen` while it ran.
    fn push_failed(&mut self, seen: T, window: Window) {
        let current = self.current().clone();
        self.values.push(current);
        self.windows.push(window);
        self.transient.push(vec![seen]);
    }

    fn done(&self, k: usize) -> usize {
        self.windows.iter().filter(|w| w.1 <= k).count()
    }

    /// The window of the operation in flight at a cut after `k` seam
    /// operations, if any.
    fn in_flight(&self, k: usize) -> Option<usize> {
        let done = self.done(k);
        self.windows
            .get(done)
            .filter(|&&(start, end)| start < k && k < end)
            .map(|_| done)
    }

    /// The versions written by operations acknowledged by operation `k`.
    fn acknowledged(&self, k: usize) -> &[T] {
        &self.values[1..=self.done(k)]
    }

    /// What a cut after `k` operations may show: the value of the last
    /// acknowledged operation, or what the one in flight wrote or showed.
    fn allowed(&self, k: usize) -> Vec<&T> {
        let done = self.done(k);
        let mut allowed = vec![&self.values[done]];
        if let Some(i) = self.in_flight(k) {
            allowed.push(&self.values[i + 1]);
            allowed.extend(&self.transient[i]);
        }
        allowed
    }
}

/// An object the checks know: its bytes and whether it must (or may) be
/// stored.
#[derive(Debug)]
struct Tracked {
    id: ObjectId,
    bytes: Vec<u8>,
    present: Versions<bool>,
    /// Planted old and unreachable: the first gc must remove it.
    junk: bool,
}

/// A ref move that its reflog must record once acknowledged.
#[derive(Debug)]
struct Move {
    branch: String,
    new: ObjectId,
    /// The reflog line's operation (unique in a workload: pool commits
    /// repeat).
    message: String,
    window: Window,
    /// Made by a journaled (multi-ref) transaction: recovery that finishes
    /// it writes the line too.
    journaled: bool,
}

/// A checkout: once HEAD shows `head`, the tree must be `tree`, whole.
#[derive(Debug)]
struct CheckoutDone {
    window: Window,
    head: Head,
    tree: BTreeMap<String, Vec<u8>>,
}

/// Everything the checks need to know about one workload run.
#[derive(Debug)]
struct Run {
    steps: Vec<Step>,
    /// Where each step's seam operations start.
    step_starts: Vec<usize>,
    objects: Vec<Tracked>,
    /// The planted unreachable records (kind, id, presence).
    records: Vec<(&'static str, ObjectId, Versions<bool>)>,
    /// The records unpacks and pushes received (kind, id, presence).
    received: Vec<(&'static str, ObjectId, Versions<bool>)>,
    /// Every branch and its commit.
    refs: Versions<BTreeMap<String, ObjectId>>,
    head: Versions<Head>,
    /// The working tree's files (outside `.muse/`, temp files ignored).
    tree: Versions<BTreeMap<String, Vec<u8>>>,
    state: Versions<Vec<u8>>,
    config: Versions<Vec<u8>>,
    /// The number of lines of the test log.
    log: Versions<usize>,
    log_lines: Vec<ReflogEntry>,
    moves: Vec<Move>,
    /// Branch deletions (a deleted branch loses its reflog).
    deletes: Vec<(String, Window)>,
    /// Commits HEAD moved to (its reflog must record them once acknowledged).
    head_moves: Vec<(ObjectId, Window)>,
    checkouts: Vec<CheckoutDone>,
    /// Whether a gc ran: the checks then walk every branch's whole history.
    gc_ran: bool,
    /// The `SimFs` the workload ran on.
    sim: SimFs,
    /// Keeps the live tree alive.
    _dir: tempfile::TempDir,
}

fn state_bytes(n: u64) -> Vec<u8> {
    let value = serde_json::json!({
        "base_commit": id(3000 + n).to_hex(),
        "ours_commit": id(3100 + n).to_hex(),
        "theirs_commit": id(3200 + n).to_hex(),
        "conflict_paths": (0..n).map(|i| format!("dir/file-{i}.txt")).collect::<Vec<_>>(),
    });
    let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn log_entry(n: u64) -> ReflogEntry {
    ReflogEntry {
        old: ObjectId::ZERO,
        new: id(4000 + n),
        author: "power-cut".to_owned(),
        unix_seconds: 1_700_000_000 + i64::try_from(n).unwrap_or(0),
        tz: "+0000".to_owned(),
        operation: format!("power cut test line {n}"),
    }
}

/// Whether the entries read back are the ones written. A line of garbage
/// that a cut left after an entry, and that could be message text, reads as
/// a continuation of that entry's operation (the reference writes messages
/// over several lines); what this project wrote is the first line.
fn same_entries(read: &[ReflogEntry], written: &[ReflogEntry]) -> bool {
    read.len() == written.len()
        && read.iter().zip(written).all(|(r, w)| {
            let first = r.operation.lines().next().unwrap_or_default();
            (r.old, r.new, &r.author, r.unix_seconds, &r.tz, first)
                == (
                    w.old,
                    w.new,
                    &w.author,
                    w.unix_seconds,
                    &w.tz,
                    w.operation.as_str(),
                )
        })
}

/// The state file the `State` step rewrites (merge-state shaped JSON, at a
/// path of its own so that `commit` does not take it for a merge).
fn state_file(repo: &Repository) -> PathBuf {
    repo.layout().muse_dir().join("powercut-state.json")
}

fn test_log(repo: &Repository) -> PathBuf {
    repo.layout().logs_dir().join("powercut")
}

/// The working tree's files, by path: everything outside `.muse/` but
/// temp files (a cut may leave a checkout's or an edit's).
fn read_tree(work: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut tree = BTreeMap::new();
    let mut stack = vec![work.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("listing '{}': {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("listing '{}': {e}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry
                .file_type()
                .map_err(|e| format!("'{}': {e}", path.display()))?;
            if (dir == work && name == muse_store::MUSE_DIR) || is_temp_name(&name) {
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(work)
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned();
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("'{}': {e}", path.display()))?;
                tree.insert(rel, bytes);
            }
        }
    }
    Ok(tree)
}

/// The tree of `work`'s first commit.
fn work_tree_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("song.txt", b"verse 0\n".to_vec()),
        ("big.bin", pattern(9000, 50)),
        ("keep.txt", b"kept by both branches\n".to_vec()),
        ("dir/a.txt", b"a file in a directory\n".to_vec()),
    ]
}

/// The tree of `side`'s first commit: `song.txt` differs, `big.bin` and
/// `dir/a.txt` are gone, `dir` is a file, `side.txt` is new.
fn side_tree_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("song.txt", b"the side's verse\n".to_vec()),
        ("keep.txt", b"kept by both branches\n".to_vec()),
        ("dir", b"now a file\n".to_vec()),
        ("side.txt", pattern(5000, 7)),
    ]
}

/// Replaces every file of the working tree (behind any seam: setup only).
fn plant_tree(work: &Path, files: &[(&str, Vec<u8>)]) -> TestResult {
    for (path, _) in read_tree(work)? {
        std::fs::remove_file(work.join(&path))?;
    }
    let dir = work.join("dir");
    if dir.is_dir() {
        std::fs::remove_dir(&dir)?;
    }
    for (path, bytes) in files {
        let path = work.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Sets a file's mtime far in the past, so that gc prunes it at once.
fn make_old(path: &Path) -> TestResult {
    let file = std::fs::File::options().write(true).open(path)?;
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))?;
    Ok(())
}

/// What the workload driver keeps between steps.
#[derive(Debug)]
struct Driver {
    /// The branch HEAD is on, or was detached from.
    on: String,
    detached: bool,
    /// The current name of the branch renames move.
    renamed: String,
    renames: usize,
    /// The next unused pool commit.
    next_pool: usize,
    pool: Vec<ObjectId>,
    flaky_branches: usize,
    /// The repository unpacks and pushes receive from (real filesystem),
    /// made at the first such step.
    source: Option<(tempfile::TempDir, Repository)>,
}

impl Driver {
    /// The next pool commit that is not `current`.
    fn fresh(&mut self, current: Option<ObjectId>) -> ObjectId {
        loop {
            let oid = self.pool[self.next_pool % self.pool.len()];
            self.next_pool += 1;
            if Some(oid) != current {
                return oid;
            }
        }
    }
}

/// What [`setup`] made.
#[derive(Debug)]
struct Setup {
    pool: Vec<ObjectId>,
    base_id: ObjectId,
    base: Vec<u8>,
    junk: Vec<Tracked>,
    junk_records: Vec<(&'static str, ObjectId)>,
}

/// Sets up a repository on the real filesystem: a chain of pool commits
/// (kept reachable by `pool`) that the ref steps move refs to, `main`, `a`,
/// `b` and `r0` at pool commits, `work` and `side` with different trees,
/// HEAD on `work` with its tree checked out, a state file, a test log, and
/// old unreachable records and objects for gc to remove.
fn setup(work: &Path) -> TestResult<Setup> {
    let repo = Repository::init_with(work, options(None))?;
    let refs = repo.refs();
    let base = pattern(3000, 99);
    let (base_id, _) = repo.objects().write(&base)?;
    let repo_id = repo.info()?.repo_id.clone();

    let snapshot = SnapshotRecord::new(
        BTreeMap::from([("base.bin".to_owned(), base_id)]),
        Timestamp::now(),
    );
    repo.records().write_snapshot(&snapshot)?;
    let mut pool = Vec::with_capacity(POOL_SIZE);
    for i in 0..POOL_SIZE {
        let parents: Vec<ObjectId> = pool.last().copied().into_iter().collect();
        let commit = CommitRecord::new(
            repo_id.clone(),
            POOL,
            snapshot.snapshot_id,
            &parents,
            format!("pool {i}"),
            "pc",
            Timestamp::now(),
        );
        repo.records().write_commit(&commit)?;
        pool.push(commit.commit_id);
    }
    refs.update(
        &branch(POOL),
        pool[POOL_SIZE - 1],
        Expected::Absent,
        "setup",
    )?;
    refs.update(&branch("main"), pool[0], Expected::Absent, "setup")?;
    let mut tx = refs.transaction("setup");
    tx.create(branch("a"), pool[1]).create(branch("b"), pool[2]);
    tx.commit()?;
    refs.update(&branch("r0"), pool[3], Expected::Absent, "setup")?;

    // `side` first (committed while HEAD names it), then `work`.
    plant_tree(work, &side_tree_files())?;
    refs.set_head(&Head::Branch(branch(SIDE)), "setup")?;
    crate::porcelain::commit(&repo, "side 0", Some("pc"))?;
    plant_tree(work, &work_tree_files())?;
    refs.set_head(&Head::Branch(branch(WORK)), "setup")?;
    crate::porcelain::commit(&repo, "work 0", Some("pc"))?;

    repo.writer()
        .write_file(&state_file(&repo), TempKind::State, &state_bytes(0))?;
    repo.writer()
        .append_record(&test_log(&repo), &log_entry(0).to_line())?;

    // Junk for gc: an unreachable commit whose snapshot names an object of
    // its own, and two unreachable objects, all old.
    let mut junk = Vec::new();
    let mut junk_records = Vec::new();
    for (n, size) in [(1u8, 9000), (2, 700)] {
        let bytes = pattern(size, 200 + n);
        let (oid, _) = repo.objects().write(&bytes)?;
        make_old(&repo.layout().object_path(&oid))?;
        junk.push(Tracked {
            id: oid,
            bytes,
            present: Versions::new(true),
            junk: true,
        });
    }
    let junk_snapshot = SnapshotRecord::new(
        BTreeMap::from([("junk.bin".to_owned(), junk[1].id)]),
        Timestamp::now(),
    );
    repo.records().write_snapshot(&junk_snapshot)?;
    let junk_commit = CommitRecord::new(
        repo_id,
        "gone",
        junk_snapshot.snapshot_id,
        &[],
        "unreachable",
        "pc",
        Timestamp::now(),
    );
    repo.records().write_commit(&junk_commit)?;
    make_old(&repo.layout().snapshot_path(&junk_snapshot.snapshot_id))?;
    make_old(&repo.layout().commit_path(&junk_commit.commit_id))?;
    junk_records.push(("snapshot", junk_snapshot.snapshot_id));
    junk_records.push(("commit", junk_commit.commit_id));
    Ok(Setup {
        pool,
        base_id,
        base,
        junk,
        junk_records,
    })
}

/// Sets up a repository on the real filesystem, attaches a `SimFs` and runs
/// `steps` through it.
#[expect(
    clippy::too_many_lines,
    reason = "one match arm per step, each recording what the checks expect"
)]
fn run_workload(steps: &[Step]) -> TestResult<Run> {
    let dir = scratch_dir()?;
    let work = dir.path().join("work");
    let Setup {
        pool,
        base_id,
        base,
        junk,
        junk_records,
    } = setup(&work)?;

    let sim = SimFs::new(&work)?;
    let repo = Repository::open_with(&work, options(Some(sim.clone())))?;
    let refs = repo.refs();
    let initial_refs: BTreeMap<String, ObjectId> = refs
        .branches()?
        .into_iter()
        .filter_map(|(b, state)| state.commit().map(|c| (b.to_string(), c)))
        .collect();
    let mut objects = vec![Tracked {
        id: base_id,
        bytes: base,
        present: Versions::new(true),
        junk: false,
    }];
    objects.extend(junk);
    let mut run = Run {
        steps: steps.to_vec(),
        step_starts: Vec::new(),
        objects,
        records: junk_records
            .into_iter()
            .map(|(kind, oid)| (kind, oid, Versions::new(true)))
            .collect(),
        received: Vec::new(),
        refs: Versions::new(initial_refs),
        head: Versions::new(refs.head()?),
        tree: Versions::new(read_tree(&work)?),
        state: Versions::new(state_bytes(0)),
        config: Versions::new(std::fs::read(repo.layout().config())?),
        log: Versions::new(1),
        log_lines: vec![log_entry(0)],
        moves: Vec::new(),
        deletes: Vec::new(),
        head_moves: Vec::new(),
        checkouts: Vec::new(),
        gc_ran: false,
        sim: sim.clone(),
        _dir: dir,
    };
    let mut driver = Driver {
        on: WORK.to_owned(),
        detached: false,
        renamed: "r0".to_owned(),
        renames: 0,
        next_pool: 4,
        pool,
        flaky_branches: 0,
        source: None,
    };
    for (i, step) in steps.iter().enumerate() {
        let n = i as u64 + 1;
        let start = sim.ops();
        run.step_starts.push(start);
        match step {
            Step::Object => {
                let bytes = pattern(OBJECT_SIZES[i % OBJECT_SIZES.len()], n as u8);
                let (oid, stored) = repo.objects().write(&bytes)?;
                assert!(stored, "step {i}: a new object must be written");
                let mut present = Versions::new(false);
                present.push(true, (start, sim.ops()));
                run.objects.push(Tracked {
                    id: oid,
                    bytes,
                    present,
                    junk: false,
                });
            }
            Step::Cas => {
                let old = run.refs.current().get("main").copied();
                let new = driver.fresh(old);
                let expected = old.map_or(Expected::Absent, Expected::Value);
                let message = format!("cas {n}");
                refs.update(&branch("main"), new, expected, &message)?;
                let window = (start, sim.ops());
                let mut next = run.refs.current().clone();
                next.insert("main".to_owned(), new);
                run.refs.push(next, window);
                run.moves.push(Move {
                    branch: "main".to_owned(),
                    new,
                    message,
                    window,
                    journaled: false,
                });
            }
            Step::Txn => {
                let width = if i % 2 == 0 { 2 } else { 3 };
                let mut next = run.refs.current().clone();
                let message = format!("txn {n}");
                let mut tx = refs.transaction(&message);
                let mut moved = Vec::new();
                for name in TXN_REFS.iter().take(width) {
                    let old = next.get(*name).copied();
                    let new = driver.fresh(old);
                    let expected = old.map_or(Expected::Absent, Expected::Value);
                    tx.update(branch(name), new, expected);
                    next.insert((*name).to_owned(), new);
                    moved.push((*name, new));
                }
                tx.commit()?;
                let window = (start, sim.ops());
                run.refs.push(next, window);
                for (name, new) in moved {
                    run.moves.push(Move {
                        branch: name.to_owned(),
                        new,
                        message: message.clone(),
                        window,
                        journaled: true,
                    });
                }
            }
            Step::State => {
                let bytes = state_bytes(n);
                repo.writer()
                    .write_file(&state_file(&repo), TempKind::State, &bytes)?;
                run.state.push(bytes, (start, sim.ops()));
            }
            Step::Reflog => {
                let entry = log_entry(n);
                repo.writer()
                    .append_record(&test_log(&repo), &entry.to_line())?;
                run.log_lines.push(entry);
                let lines = run.log_lines.len();
                run.log.push(lines, (start, sim.ops()));
            }
            Step::Commit => commit_step(&repo, &mut run, &driver, n, false)?,
            Step::Checkout => {
                let target = if driver.on == WORK { SIDE } else { WORK };
                let head = Head::Branch(branch(target));
                crate::porcelain::checkout(&repo, &head, driver.detached)?;
                let window = (start, sim.ops());
                let tree = read_tree(&work)?;
                let commit = run.refs.current()[target];
                for (path, oid) in crate::porcelain::commit_manifest(&repo, Some(commit))? {
                    let want = repo.objects().read(&oid)?;
                    assert_eq!(
                        tree.get(&path).map(Vec::as_slice),
                        Some(&want[..]),
                        "checkout of {target} wrote {path}"
                    );
                }
                run.tree.push(tree.clone(), window);
                run.head.push(head.clone(), window);
                run.head_moves.push((commit, window));
                run.checkouts.push(CheckoutDone { window, head, tree });
                target.clone_into(&mut driver.on);
                driver.detached = false;
            }
            Step::Gc => {
                let report = muse_store::gc(
                    &repo,
                    &GcOptions {
                        prune_age: Some(Duration::ZERO),
                        dry_run: false,
                    },
                )?;
                let window = (start, sim.ops());
                let mut removed = HashSet::new();
                for item in &report.removed {
                    let Some(oid) = item.id else {
                        return Err(format!("gc removed a temp file: {item:?}").into());
                    };
                    removed.insert(oid);
                    let tracked = run
                        .objects
                        .iter_mut()
                        .filter(|t| item.kind == "object" && t.id == oid)
                        .map(|t| &mut t.present)
                        .chain(
                            run.records
                                .iter_mut()
                                .filter(|r| r.0 == item.kind && r.1 == oid)
                                .map(|r| &mut r.2),
                        )
                        .next();
                    let Some(present) = tracked else {
                        return Err(format!(
                            "gc removed {} {oid}, which is reachable or unknown to the test",
                            item.kind
                        )
                        .into());
                    };
                    present.push(false, window);
                }
                if let Some(t) = run.objects.iter().find(|t| t.junk && *t.present.current()) {
                    return Err(format!("gc kept the old unreachable object {}", t.id).into());
                }
                for (kind, oid, present) in &run.records {
                    if *present.current() {
                        return Err(format!("gc kept the old unreachable {kind} {oid}").into());
                    }
                }
                run.gc_ran = true;
            }
            Step::Head => {
                let commit = run.refs.current()[driver.on.as_str()];
                let head = if driver.detached {
                    Head::Branch(branch(&driver.on))
                } else {
                    Head::Detached(commit)
                };
                refs.set_head(&head, &format!("head {n}"))?;
                let window = (start, sim.ops());
                run.head.push(head, window);
                run.head_moves.push((commit, window));
                driver.detached = !driver.detached;
            }
            Step::Config => {
                if n.is_multiple_of(2) {
                    Config::set(&repo, "user.name", &format!("power cut {n}"))?;
                } else {
                    Config::add_remote(
                        &repo,
                        &format!("r{n}"),
                        &format!("https://example.org/{n}"),
                        Some("main"),
                    )?;
                }
                let bytes = std::fs::read(repo.layout().config())?;
                run.config.push(bytes, (start, sim.ops()));
            }
            Step::Delete => {
                let current = run.refs.current();
                let victim = ["main", driver.renamed.as_str()]
                    .into_iter()
                    .find(|name| current.contains_key(*name))
                    .map(str::to_owned);
                if let Some(victim) = victim {
                    refs.delete_branch(&branch(&victim))?;
                    let window = (start, sim.ops());
                    let mut next = run.refs.current().clone();
                    next.remove(&victim);
                    run.refs.push(next, window);
                    run.deletes.push((victim, window));
                }
            }
            Step::Rename => {
                let old = driver.renamed.clone();
                if let Some(&value) = run.refs.current().get(&old) {
                    driver.renames += 1;
                    let new = format!("r{}", driver.renames);
                    let message = format!("branch: renamed {old} to {new}");
                    let mut tx = refs.transaction(&message);
                    tx.create(branch(&new), value)
                        .delete(branch(&old), Expected::Value(value));
                    tx.commit()?;
                    let window = (start, sim.ops());
                    let mut next = run.refs.current().clone();
                    next.remove(&old);
                    next.insert(new.clone(), value);
                    run.refs.push(next, window);
                    run.deletes.push((old, window));
                    run.moves.push(Move {
                        branch: new.clone(),
                        new: value,
                        message,
                        window,
                        journaled: true,
                    });
                    driver.renamed = new;
                }
            }
            Step::Flaky => flaky_step(&repo, &mut run, &mut driver, n)?,
            Step::Unpack => receive_step(&repo, &mut run, &mut driver, n, false)?,
            Step::Push => receive_step(&repo, &mut run, &mut driver, n, true)?,
        }
    }
    Ok(run)
}

/// Edits `song.txt` and `big.bin` (each an atomic durable write) and
/// commits on HEAD's branch (on the branch HEAD was detached from when it
/// is detached). With `fail_barrier`, the batch's first syncfs fails first
/// and the commit must fail without moving anything, and then it is retried.
fn commit_step(
    repo: &Repository,
    run: &mut Run,
    driver: &Driver,
    n: u64,
    fail_barrier: bool,
) -> TestResult {
    let sim = run.sim.clone();
    let work = repo.work_tree().to_path_buf();
    let mut tree = run.tree.current().clone();
    for (path, bytes) in [
        ("song.txt", format!("verse {n}\n").into_bytes()),
        ("big.bin", pattern(9000, 50 + n as u8)),
    ] {
        let start = sim.ops();
        repo.writer()
            .write_file(&work.join(path), TempKind::State, &bytes)?;
        tree.insert(path.to_owned(), bytes);
        run.tree.push(tree.clone(), (start, sim.ops()));
    }
    let spec = NewCommit {
        message: format!("commit {n}"),
        author: Some("pc".to_owned()),
        branch: driver.detached.then(|| branch(&driver.on)),
        ..NewCommit::default()
    };
    if fail_barrier {
        let start = sim.ops();
        sim.fail_nth(OpKind::SyncFs, 0, libc::EIO);
        let err = muse_store::commit_worktree(repo, &spec, &NoProgress)
            .expect_err("the commit's first barrier fails");
        assert!(err.to_string().contains("fsync"), "{err}");
        let current = run.refs.current().clone();
        // Nothing moved; nothing to check beyond the refs staying put.
        run.refs.push(current, (start, sim.ops()));
    }
    let start = sim.ops();
    let done = muse_store::commit_worktree(repo, &spec, &NoProgress)?;
    let window = (start, sim.ops());
    let commit = done.commit.commit_id;
    let mut next = run.refs.current().clone();
    next.insert(driver.on.clone(), commit);
    run.refs.push(next, window);
    run.moves.push(Move {
        branch: driver.on.clone(),
        new: commit,
        message: format!("commit: commit {n}"),
        window,
        journaled: false,
    });
    if !driver.detached {
        run.head_moves.push((commit, window));
    }
    Ok(())
}

/// An unpack or a push into `repo` (see [`Step::Unpack`], [`Step::Push`]).
/// The bundle is made outside the seam (on the source, on the real
/// filesystem); everything the receiver does is inside it.
fn receive_step(
    repo: &Repository,
    run: &mut Run,
    driver: &mut Driver,
    n: u64,
    push: bool,
) -> TestResult {
    let sim = run.sim.clone();
    if driver.source.is_none() {
        let dir = tempfile::tempdir()?;
        let source = Repository::init_with(
            dir.path().join("source"),
            Options {
                durability: Durability::None,
                ..Options::default()
            },
        )?;
        driver.source = Some((dir, source));
    }
    let source = &driver.source.as_ref().ok_or("no source")?.1;
    let fresh = pattern(OBJECT_SIZES[n as usize % OBJECT_SIZES.len()], 150 + n as u8);
    let done = source.commit_files(
        [
            ("new.bin", fresh.clone()),
            ("keep.txt", b"kept by both branches\n".to_vec()),
            ("empty", Vec::new()),
        ],
        &NewCommit {
            message: format!("received {n}"),
            author: Some("pc".to_owned()),
            ..NewCommit::default()
        },
    )?;
    let tip = done.commit.commit_id;
    let snapshot = done.snapshot.snapshot_id;
    let old = run.refs.current().get(RECEIVED).copied();
    let expected = old.map_or(Expected::Absent, Expected::Value);

    // What the receiver lacks now must appear whole once acknowledged.
    let mut new_objects = Vec::new();
    for (oid, bytes) in [
        (ObjectId::hash(&fresh), fresh),
        (ObjectId::hash(b""), Vec::new()),
    ] {
        if !repo.objects().contains(&oid) {
            new_objects.push((oid, bytes));
        }
    }
    let start = sim.ops();
    let message = if push {
        let url = repo.work_tree().display().to_string();
        let transport =
            muse_store::LocalTransport::open(&url, Path::new("/"), repo.options().clone())?;
        muse_store::Transport::push(
            &transport,
            source,
            &[muse_store::PushUpdate {
                branch: branch(RECEIVED),
                new: tip,
                expected,
                force: false,
            }],
            &muse_store::NoProgress,
        )?;
        "push".to_owned()
    } else {
        let mut bundle = Vec::new();
        let haves: Vec<ObjectId> = old.into_iter().collect();
        muse_store::pack(source, &[tip], &haves, &mut bundle)?;
        let got = muse_store::unpack(repo, &mut bundle.as_slice(), Path::new("<bundle>"))?;
        assert_eq!(got.commits_written, 1, "one new commit crosses");
        let message = format!("fetch {n}");
        repo.refs()
            .update(&branch(RECEIVED), tip, expected, &message)?;
        message
    };
    let window = (start, sim.ops());
    for (oid, bytes) in new_objects {
        let mut present = Versions::new(false);
        present.push(true, window);
        run.objects.push(Tracked {
            id: oid,
            bytes,
            present,
            junk: false,
        });
    }
    for (kind, oid) in [("snapshot", snapshot), ("commit", tip)] {
        let mut present = Versions::new(false);
        present.push(true, window);
        run.received.push((kind, oid, present));
    }
    let mut next = run.refs.current().clone();
    next.insert(RECEIVED.to_owned(), tip);
    run.refs.push(next, window);
    run.moves.push(Move {
        branch: RECEIVED.to_owned(),
        new: tip,
        message,
        window,
        journaled: false,
    });
    Ok(())
}

/// Failed fsyncs and their retries (see [`Step::Flaky`]).
fn flaky_step(repo: &Repository, run: &mut Run, driver: &mut Driver, n: u64) -> TestResult {
    let sim = run.sim.clone();
    let refs = repo.refs();

    // A new branch whose reflog append fails at its fsync (the second fsync
    // of the update: the ref file's comes first). The update fails and is
    // undone; the retry is acknowledged and must keep its reflog line.
    driver.flaky_branches += 1;
    let name = format!("f{}", driver.flaky_branches);
    let value = driver.fresh(None);
    let start = sim.ops();
    sim.fail_nth(OpKind::SyncFile, 1, libc::EIO);
    let err = refs
        .update(
            &branch(&name),
            value,
            Expected::Absent,
            &format!("flaky {n}"),
        )
        .expect_err("the reflog's fsync fails");
    assert!(
        err.to_string().contains("logs") && err.to_string().contains("fsync"),
        "the failure is the reflog append's: {err}"
    );
    assert_eq!(
        refs.branch(&branch(&name))?,
        None,
        "the failed update is undone"
    );
    let mut attempted = run.refs.current().clone();
    attempted.insert(name.clone(), value);
    run.refs.push_failed(attempted.clone(), (start, sim.ops()));
    let start = sim.ops();
    let message = format!("retry {n}");
    refs.update(&branch(&name), value, Expected::Absent, &message)?;
    let window = (start, sim.ops());
    run.refs.push(attempted, window);
    run.moves.push(Move {
        branch: name,
        new: value,
        message,
        window,
        journaled: false,
    });

    // An object whose fsync fails, then written again.
    let bytes = pattern(7000, 100 + n as u8);
    sim.fail_nth(OpKind::SyncFile, 0, libc::EIO);
    repo.objects()
        .write(&bytes)
        .expect_err("the object's fsync fails");
    let start = sim.ops();
    let (oid, stored) = repo.objects().write(&bytes)?;
    assert!(stored, "the retry stores the object");
    let mut present = Versions::new(false);
    present.push(true, (start, sim.ops()));
    run.objects.push(Tracked {
        id: oid,
        bytes,
        present,
        junk: false,
    });

    // A commit whose first batch barrier fails, then committed again.
    commit_step(repo, run, driver, n, true)
}

/// Why a check failed, with what to replay.
fn fail(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// Reads every branch of the image: name to commit (a branch that is not a
/// commit fails the check).
fn image_refs(repo: &Repository) -> Result<BTreeMap<String, ObjectId>, String> {
    let refs = repo.refs();
    let mut map = BTreeMap::new();
    for (name, _) in refs
        .branches()
        .map_err(|e| fail(format!("listing branches: {e}")))?
    {
        match refs
            .branch_state(&name)
            .map_err(|e| fail(format!("reading ref {name}: {e}")))?
        {
            RefState::At(commit) => {
                map.insert(name.to_string(), commit);
            }
            other => return Err(fail(format!("branch {name} is {other:?}"))),
        }
    }
    Ok(map)
}

#[expect(
    clippy::too_many_lines,
    reason = "one list of checks, read top to bottom"
)]
/// Reopens the image at `work` and checks it against what the run
/// acknowledged by operation `k`.
fn check_image(run: &Run, k: usize, work: &Path) -> Result<(), String> {
    let repo = Repository::open(work).map_err(|e| fail(format!("open failed: {e}")))?;
    let refs = repo.refs().with_lock_timeout(Duration::ZERO);

    // Objects: every stored one verifies (its bytes hash to its name, so a
    // tracked one that is stored reads back whole); each tracked one is
    // stored when it must be and absent when it must be.
    let mut stored = HashSet::new();
    for oid in repo.objects() {
        let oid = oid.map_err(|e| fail(format!("listing objects: {e}")))?;
        repo.objects()
            .verify(&oid)
            .map_err(|e| fail(format!("a stored object does not verify: {e}")))?;
        stored.insert(oid);
    }
    for t in &run.objects {
        let allowed = t.present.allowed(k);
        let found = stored.contains(&t.id);
        if !allowed.contains(&&found) {
            return Err(fail(format!(
                "object {} is stored: {found}, allowed {allowed:?}",
                t.id
            )));
        }
    }
    let records = repo.records();
    for (kind, oid, present) in run.records.iter().chain(&run.received) {
        let allowed = present.allowed(k);
        let found = if *kind == "commit" {
            records.contains_commit(oid)
        } else {
            records.contains_snapshot(oid)
        };
        if !allowed.contains(&&found) {
            return Err(fail(format!(
                "{kind} record {oid} present: {found}, allowed {allowed:?}"
            )));
        }
    }

    // Refs: all old or all new, whole transactions included.
    let branches = image_refs(&repo)?;
    let allowed = run.refs.allowed(k);
    if !allowed.contains(&&branches) {
        return Err(fail(format!(
            "branches are {branches:?}, allowed (all-old or all-new) {allowed:?}"
        )));
    }
    // Commits: every branch names a whole commit (record, snapshot, every
    // object), and after a gc so does every commit of its history.
    let mut seen = HashSet::new();
    let mut snapshots = HashSet::new();
    let mut todo: Vec<ObjectId> = branches.values().copied().collect();
    while let Some(commit) = todo.pop() {
        if !seen.insert(commit) {
            continue;
        }
        let record = records
            .read_commit(&commit)
            .map_err(|e| fail(format!("commit {commit}: {e}")))?;
        if snapshots.insert(record.snapshot_id) {
            let snapshot = records
                .read_snapshot(&record.snapshot_id)
                .map_err(|e| fail(format!("snapshot of {commit}: {e}")))?;
            // Stored objects were all verified above.
            if let Some((path, oid)) = snapshot.manifest.iter().find(|(_, o)| !stored.contains(o)) {
                return Err(fail(format!(
                    "object {oid} ({path}) of {commit} is missing"
                )));
            }
        }
        if run.gc_ran {
            todo.extend(record.parent_commit_id);
        }
    }
    if run.gc_ran {
        for commit in records
            .commits_with_prefix("")
            .map_err(|e| fail(format!("listing commits: {e}")))?
        {
            records
                .read_commit(&commit)
                .map_err(|e| fail(format!("a stored commit does not verify: {e}")))?;
        }
    }
    let journals = journals(&repo);
    if !journals.is_empty() {
        return Err(fail(format!("journals left after recovery: {journals:?}")));
    }
    repo.info()
        .map_err(|e| fail(format!("repo.json does not parse: {e}")))?;

    // HEAD, and the working tree: every file whole (a version that was
    // written), and once HEAD names a checkout's target, all of that
    // checkout's files are in place. (A cut before HEAD moves may leave a
    // mix of old and new files under the old HEAD: checkout does not yet
    // record that it was interrupted.)
    let head = refs
        .head()
        .map_err(|e| fail(format!("HEAD does not parse: {e}")))?;
    let allowed = run.head.allowed(k);
    if !allowed.contains(&&head) {
        return Err(fail(format!("HEAD is {head:?}, allowed {allowed:?}")));
    }
    let tree = read_tree(work)?;
    let allowed = run.tree.allowed(k);
    let paths: std::collections::BTreeSet<&String> = tree
        .keys()
        .chain(allowed.iter().flat_map(|t| t.keys()))
        .collect();
    for path in paths {
        let got = tree.get(path);
        if !allowed.iter().any(|t| t.get(path) == got) {
            return Err(fail(format!(
                "working tree file {path} is {:?}, not a version that was written \
                 (allowed {:?})",
                got.map(|b| String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned()),
                allowed
                    .iter()
                    .map(|t| t.get(path).map(Vec::len))
                    .collect::<Vec<_>>()
            )));
        }
    }
    for checkout in &run.checkouts {
        let (start, end) = checkout.window;
        if start < k && k < end && head == checkout.head && tree != checkout.tree {
            return Err(fail(format!(
                "HEAD moved to {:?} before the checkout's files were in place",
                checkout.head
            )));
        }
    }

    // Reflogs: every acknowledged move since the branch's last acknowledged
    // deletion is logged, and so is the move of a transaction that recovery
    // finished. A single-ref update cut between its ref write and its
    // reflog append may have moved without a line (it was never
    // acknowledged). Lines torn into garbage by the cut are skipped by the
    // reader (reported as malformed), never taken for moves.
    let finished_txn = run
        .refs
        .in_flight(k)
        .is_some_and(|i| branches == run.refs.values[i + 1] && branches != run.refs.values[i]);
    for name in branches.keys() {
        let deleted = run
            .deletes
            .iter()
            .filter(|(b, w)| b == name && w.1 <= k)
            .map(|(_, w)| w.1)
            .max()
            .unwrap_or(0);
        let log = refs
            .reflog(&branch(name))
            .map_err(|e| fail(format!("reading reflog of {name}: {e}")))?;
        for m in run.moves.iter().filter(|m| m.branch == *name) {
            let (start, end) = m.window;
            let required = (end <= k && start >= deleted)
                || (m.journaled && start < k && k < end && finished_txn);
            if required
                && !log
                    .entries
                    .iter()
                    .any(|e| e.new == m.new && e.operation == m.message)
            {
                return Err(fail(format!(
                    "move of {name} to {} ({:?}, ops {:?}; acknowledged or recovered) is not in \
                     its reflog, which reads {:?} with malformed lines {:?}",
                    m.new,
                    m.message,
                    m.window,
                    log.entries
                        .iter()
                        .map(|e| (e.new.to_string(), e.operation.clone()))
                        .collect::<Vec<_>>(),
                    log.malformed
                )));
            }
        }
    }
    let head_log = refs
        .head_reflog()
        .map_err(|e| fail(format!("reading HEAD's reflog: {e}")))?;
    for (commit, window) in &run.head_moves {
        if window.1 <= k && !head_log.entries.iter().any(|e| e.new == *commit) {
            return Err(fail(format!(
                "acknowledged move of HEAD to {commit} is not in its reflog"
            )));
        }
    }

    // The state file parses and is a whole version.
    let merge = std::fs::read(state_file(&repo))
        .map_err(|e| fail(format!("reading the state file: {e}")))?;
    serde_json::from_slice::<serde_json::Value>(&merge)
        .map_err(|e| fail(format!("the state file does not parse: {e}")))?;
    let allowed = run.state.allowed(k);
    if !allowed.iter().any(|v| **v == merge) {
        return Err(fail(format!(
            "the state file is not a version that was written: {:?}",
            String::from_utf8_lossy(&merge)
        )));
    }

    // The config parses and is a whole version.
    let config = std::fs::read(repo.layout().config())
        .map_err(|e| fail(format!("reading config.toml: {e}")))?;
    let allowed = run.config.allowed(k);
    if !allowed.iter().any(|v| **v == config) {
        return Err(fail(format!(
            "config.toml is not a version that was written: {:?}",
            String::from_utf8_lossy(&config)
        )));
    }
    repo.config()
        .and_then(Config::remotes)
        .map_err(|e| fail(format!("config.toml does not parse: {e}")))?;

    // The test log: its good lines are exactly a prefix of what was
    // appended; garbage (malformed lines) only after the acknowledged ones.
    let log = Reflog::read(&test_log(&repo)).map_err(|e| fail(format!("test log: {e}")))?;
    let acknowledged = run.log.values[0] + run.log.acknowledged(k).len();
    if log.malformed.iter().any(|&line| line <= acknowledged) {
        return Err(fail(format!(
            "test log: malformed lines {:?} among the {acknowledged} acknowledged ones",
            log.malformed
        )));
    }
    let allowed = run.log.allowed(k);
    if !allowed.contains(&&log.entries.len())
        || !same_entries(
            &log.entries,
            &run.log_lines[..log.entries.len().min(run.log_lines.len())],
        )
    {
        return Err(fail(format!(
            "test log holds {} lines, allowed {allowed:?}",
            log.entries.len()
        )));
    }

    // Usable at once: no leftover lock or temp file blocks a new write.
    refs.update(&branch("main"), id(9001), Expected::Any, "after cut")
        .map_err(|e| fail(format!("updating main after the cut: {e}")))?;
    let mut tx = refs.transaction("after cut");
    for (j, name) in TXN_REFS.iter().enumerate() {
        tx.update(branch(name), id(9002 + j as u64), Expected::Any);
    }
    tx.commit()
        .map_err(|e| fail(format!("transaction after the cut: {e}")))?;
    for t in run.objects.iter().filter(|t| !stored.contains(&t.id)) {
        repo.objects()
            .write(&t.bytes)
            .map_err(|e| fail(format!("rewriting object {} after the cut: {e}", t.id)))?;
        repo.objects()
            .read(&t.id)
            .map_err(|e| fail(format!("object {} after rewrite: {e}", t.id)))?;
    }
    repo.writer()
        .append_record(&test_log(&repo), &log_entry(99).to_line())
        .map_err(|e| fail(format!("appending to the test log after the cut: {e}")))?;
    let log = Reflog::read(&test_log(&repo)).map_err(|e| fail(format!("test log: {e}")))?;
    if log.entries.last() != Some(&log_entry(99)) {
        return Err(fail("an append after the cut glued onto a torn line"));
    }
    Ok(())
}

/// Non-temp journal files in `ref-transactions/`.
fn journals(repo: &Repository) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(repo.layout().transactions_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".json") && !is_temp_name(n))
        })
        .map(|e| e.path())
        .collect()
}

/// The survivor choices for a cut after `k` operations of `sim`.
fn survivor_modes(sim: &SimFs, k: usize, seed: u64, randoms: u64) -> Vec<Survivors> {
    let mut modes = vec![Survivors::Nothing];
    if sim.pending_at(k) > 0 {
        modes.push(Survivors::Everything);
        for r in 0..randoms {
            modes.push(Survivors::Random(mix(seed, (k as u64) << 8 | r)));
        }
    }
    modes
}

fn describe(run: &Run, k: usize, survivors: Survivors, seed: u64) -> String {
    let ops = run.sim.op_log();
    let from = k.saturating_sub(4);
    let near: Vec<String> = ops[from..(k + 2).min(ops.len())]
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mark = if from + i < k { "done" } else { "lost" };
            format!("  #{} {mark} {:?} {}", from + i, op.kind, op.path.display())
        })
        .collect();
    format!(
        "workload {:?}, cut after {k} of {} operations, {survivors:?}, base seed {seed} \
         (replay: MUSE_POWERCUT_SEED={seed})\n{}",
        run.steps,
        ops.len(),
        near.join("\n")
    )
}

/// Cuts the power after every operation of `run` from `from` on and checks
/// each image. `base` is the printed seed to replay with; `seed` the one
/// this workload draws its random cuts from.
fn cut_everywhere(
    run: &Run,
    from: usize,
    base: u64,
    seed: u64,
    scratch: &Path,
) -> TestResult<usize> {
    let randoms = random_cuts_per_point();
    let mut cuts = 0;
    for k in from..=run.sim.ops() {
        for survivors in survivor_modes(&run.sim, k, seed, randoms) {
            let image = scratch.join(format!("cut-{cuts}"));
            run.sim.power_cut(k, survivors, &image)?;
            let result = check_image(run, k, &image);
            std::fs::remove_dir_all(&image)?;
            if let Err(why) = result {
                return Err(format!("{why}\n{}", describe(run, k, survivors, base)).into());
            }
            cuts += 1;
        }
    }
    CUTS.fetch_add(cuts, Ordering::Relaxed);
    Ok(cuts)
}

/// Every workload of `len` steps drawn from `steps` whose first step is
/// `first` (or all when `None`).
fn workloads(steps: &[Step], len: usize, first: Option<Step>) -> Vec<Vec<Step>> {
    let mut all: Vec<Vec<Step>> = vec![Vec::new()];
    for _ in 0..len {
        all = all
            .into_iter()
            .flat_map(|w| {
                steps.iter().map(move |s| {
                    let mut w = w.clone();
                    w.push(*s);
                    w
                })
            })
            .collect();
    }
    all.retain(|w| first.is_none_or(|f| w[0] == f));
    all
}

/// Which crash points of a workload to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Points {
    /// Every one.
    All,
    /// Those from the start of the last step on: the earlier ones are the
    /// crash points of the workload's prefix, which a shorter exhaustive
    /// test cuts already (the seam operations of a prefix do not depend on
    /// the steps after it).
    LastStep,
}

fn exhaustive(name: &str, list: &[Vec<Step>], points: Points) -> TestResult {
    exhaustive_with_seed(name, list, points, base_seed())
}

fn exhaustive_with_seed(name: &str, list: &[Vec<Step>], points: Points, seed: u64) -> TestResult {
    let started = Instant::now();
    let scratch = scratch_dir()?;
    let mut cuts = 0;
    for (i, steps) in list.iter().enumerate() {
        let run = run_workload(steps)
            .map_err(|e| format!("workload {steps:?} (base seed {seed}): {e}"))?;
        let from = match points {
            Points::All => 0,
            Points::LastStep => run.step_starts.last().copied().unwrap_or(0),
        };
        let made = cut_everywhere(&run, from, seed, mix(seed, i as u64), scratch.path())?;
        if list.len() <= STEPS.len() {
            eprintln!(
                "  {steps:?}: {made} cuts over {} seam operations",
                run.sim.ops()
            );
        }
        cuts += made;
    }
    eprintln!(
        "power cuts [{name}]: {cuts} cuts over {} workloads in {:.1?} (base seed {seed}; \
         {} so far in this run)",
        list.len(),
        started.elapsed(),
        CUTS.load(Ordering::Relaxed)
    );
    Ok(())
}

#[test]
fn power_cut_after_every_operation_of_one_step_workloads() -> TestResult {
    exhaustive("1 step", &workloads(&STEPS, 1, None), Points::All)
}

/// Every pair of steps, the new ones included (in two tests, so that they
/// run in parallel); the first step's crash points are the one-step test's.
fn two_steps(name: &str, first_is_core: bool) -> TestResult {
    let list: Vec<Vec<Step>> = workloads(&STEPS, 2, None)
        .into_iter()
        .filter(|w| CORE_STEPS.contains(&w[0]) == first_is_core)
        .collect();
    exhaustive(name, &list, Points::LastStep)
}

#[test]
fn power_cut_after_every_operation_of_two_step_workloads_from_a_core_step() -> TestResult {
    two_steps("2 steps, core step first", true)
}

#[test]
fn power_cut_after_every_operation_of_two_step_workloads_from_a_new_step() -> TestResult {
    two_steps("2 steps, new step first", false)
}

/// Three-step workloads of the core steps; the crash points of their first
/// two steps are the two-step test's.
fn three_steps_from(first: Step) -> TestResult {
    exhaustive(
        &format!("3 steps, {first:?} first"),
        &workloads(&CORE_STEPS, 3, Some(first)),
        Points::LastStep,
    )
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_object() -> TestResult {
    three_steps_from(Step::Object)
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_cas() -> TestResult {
    three_steps_from(Step::Cas)
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_txn() -> TestResult {
    three_steps_from(Step::Txn)
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_state() -> TestResult {
    three_steps_from(Step::State)
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_reflog() -> TestResult {
    three_steps_from(Step::Reflog)
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_commit() -> TestResult {
    three_steps_from(Step::Commit)
}

/// Longer workloads (3 to 8 steps of every kind) drawn from the seed: a
/// handful in a normal run, many with `MUSE_POWERCUT_LONG=1`; every crash
/// point of each is cut.
#[test]
fn power_cut_after_every_operation_of_random_long_workloads() -> TestResult {
    let seed = base_seed();
    let count = if long_run() { 200 } else { 6 };
    let list: Vec<Vec<Step>> = (0..count)
        .map(|w| {
            let mut state = mix(seed, 0xA11CE + w);
            let len = 3 + (state % 6) as usize;
            (0..len)
                .map(|_| {
                    state = mix(state, 1);
                    STEPS[(state % STEPS.len() as u64) as usize]
                })
                .collect()
        })
        .collect();
    exhaustive_with_seed("random 3-8 steps", &list, Points::All, seed)
}

/// The bug the failed-fsync model found: a reflog append that created the
/// log and failed at its fsync left a file whose directory entry was never
/// synced; the retry found the file, skipped the directory sync and was
/// acknowledged, so a power cut lost the acknowledged line (the branch
/// moved, its reflog was gone).
#[test]
fn a_retried_reflog_append_after_a_failed_fsync_survives_a_power_cut() -> TestResult {
    let dir = scratch_dir()?;
    let work = dir.path().join("work");
    drop(Repository::init_with(&work, options(None))?);
    let sim = SimFs::new(&work)?;
    let repo = Repository::open_with(&work, options(Some(sim.clone())))?;
    let refs = repo.refs();
    sim.fail_nth(OpKind::SyncFile, 1, libc::EIO);
    refs.update(&branch("f"), id(1), Expected::Absent, "fails")
        .expect_err("the reflog's fsync fails");
    refs.update(&branch("f"), id(1), Expected::Absent, "retried")?;
    for survivors in [Survivors::Nothing, Survivors::Random(base_seed())] {
        let out = dir.path().join(format!("cut-{survivors:?}"));
        sim.power_cut(sim.ops(), survivors, &out)?;
        let cut = Repository::open(&out)?;
        assert_eq!(cut.refs().branch(&branch("f"))?, Some(id(1)));
        let log = cut.refs().reflog(&branch("f"))?;
        assert!(
            log.entries.iter().any(|e| e.operation == "retried"),
            "{survivors:?}: the acknowledged line is in the reflog: {log:?}"
        );
    }
    Ok(())
}

/// Cuts the power in the middle of a transaction, then again at every
/// operation of the recovery that the next open runs, and checks that the
/// transaction still ends all-old or all-new.
#[test]
fn power_cut_during_recovery_keeps_a_transaction_all_or_nothing() -> TestResult {
    let seed = base_seed();
    let started = Instant::now();
    let scratch = scratch_dir()?;
    let randoms = random_cuts_per_point();
    let mut cuts = 0;
    let mut recoveries = 0;
    for (w, steps) in [
        vec![Step::Txn],
        vec![Step::Cas, Step::Txn],
        vec![Step::Txn, Step::Txn],
    ]
    .iter()
    .enumerate()
    {
        let run = run_workload(steps)?;
        let Some(&(start, end)) = run.refs.windows.last() else {
            continue;
        };
        // Every k below is inside the transaction's window, so the checks
        // allow the same states at each: an image already swept (the
        // durable image is fixed by how many effects are durable, the live
        // one by how many there are) needs no second recovery sweep.
        let mut swept = HashSet::new();
        for k in start + 1..end {
            let modes = survivor_modes(&run.sim, k, mix(seed, w as u64), randoms);
            for first in modes {
                let image = scratch.path().join(format!("first-{cuts}"));
                let summary = run.sim.power_cut(k, first, &image)?;
                let has_journal = std::fs::read_dir(image.join(".muse/ref-transactions"))
                    .map(|d| {
                        d.flatten().any(|e| {
                            e.file_name()
                                .to_str()
                                .is_some_and(|n| n.ends_with(".json") && !is_temp_name(n))
                        })
                    })
                    .is_ok_and(|found| found);
                // Every interrupted recovery of the durable image; of the
                // live and the random ones, a sample (each costs a full cut
                // sweep of the recovery).
                let sampled = match first {
                    Survivors::Nothing => swept.insert((0, summary.durable)),
                    Survivors::Everything => swept.insert((1, summary.durable + summary.pending)),
                    Survivors::Random(_) => k % 4 == 1,
                };
                if has_journal && sampled {
                    recoveries += 1;
                    // Recovery on open, through a second simulated disk.
                    let sim2 = SimFs::new(&image)?;
                    Repository::open_with(&image, options(Some(sim2.clone()))).map_err(|e| {
                        format!("recovery failed: {e}\n{}", describe(&run, k, first, seed))
                    })?;
                    let inner_seed = mix(seed, (w as u64) << 32 | k as u64);
                    for k2 in 0..=sim2.ops() {
                        for second in survivor_modes(&sim2, k2, inner_seed, randoms) {
                            let again = scratch.path().join(format!("second-{cuts}"));
                            sim2.power_cut(k2, second, &again)?;
                            let result = check_image(&run, k, &again);
                            std::fs::remove_dir_all(&again)?;
                            result.map_err(|why| {
                                format!(
                                    "{why}\nsecond cut after {k2} of {} recovery operations \
                                     ({second:?}) of the image of:\n{}",
                                    sim2.ops(),
                                    describe(&run, k, first, seed)
                                )
                            })?;
                            cuts += 1;
                        }
                    }
                }
                let result = check_image(&run, k, &image);
                std::fs::remove_dir_all(&image)?;
                result.map_err(|why| format!("{why}\n{}", describe(&run, k, first, seed)))?;
                cuts += 1;
            }
        }
    }
    assert!(recoveries > 0, "some cut must leave a journal to recover");
    CUTS.fetch_add(cuts, Ordering::Relaxed);
    eprintln!(
        "power cuts [recovery]: {cuts} cuts, {recoveries} interrupted recoveries, in {:.1?} \
         (base seed {seed}; {} so far in this run)",
        started.elapsed(),
        CUTS.load(Ordering::Relaxed)
    );
    Ok(())
}

/// The lock rule the suite needed: a lock file left by a power cut (often
/// empty, its content never synced) never blocks its ref. Locks are `flock`s
/// the kernel dropped with the machine, so any file left is free; a live
/// holder still blocks.
#[test]
fn lock_file_left_by_a_power_cut_never_blocks_and_a_held_one_does() -> TestResult {
    let dir = scratch_dir()?;
    let repo = Repository::init_with(dir.path(), options(None))?;
    let refs = repo.refs().with_lock_timeout(Duration::ZERO);
    let lock = repo.layout().ref_lock(&branch("main"));
    std::fs::create_dir_all(repo.layout().locks_dir())?;
    std::fs::write(&lock, b"")?;
    refs.update(&branch("main"), id(1), Expected::Any, "after the cut")?;
    assert_eq!(
        refs.branch(&branch("main"))?,
        Some(id(1)),
        "update must land"
    );
    assert!(!lock.exists(), "the leftover lock file is gone");
    let held = muse_store::FileLock::acquire(&lock, Duration::ZERO, None)?;
    let err = refs
        .update(&branch("main"), id(2), Expected::Any, "held")
        .expect_err("a held lock blocks");
    assert!(
        matches!(err, muse_store::Error::Locked { .. }),
        "expected Locked, got {err:?}"
    );
    drop(held);
    Ok(())
}

/// A write batch whose files live on two filesystems makes both durable
/// before it acknowledges: it learns filesystems through the seam
/// (`Vfs::filesystem_id`; the mount below is a second simulated filesystem)
/// and runs each barrier once per filesystem.
#[test]
fn a_batch_over_two_filesystems_makes_both_durable() -> TestResult {
    let dir = scratch_dir()?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let sim = SimFs::new(dir.path())?;
    assert_eq!(sim.mount(&mnt)?, 1);
    let writer = muse_store::DurableWriter::new(Arc::new(sim.clone()), Durability::Full);
    let batch = writer.batch();
    let targets = [dir.path().join("a"), mnt.join("b")];
    for (target, bytes) in targets.iter().zip([&b"on the root"[..], b"on the mount"]) {
        let mut staged = batch.writer().stage(target, TempKind::State)?;
        staged.write(bytes)?;
        staged.commit()?;
    }
    assert_eq!(batch.commit()?, 2);
    for fs in 0..sim.filesystems() {
        assert_eq!(
            sim.pending_on(fs, sim.ops()),
            0,
            "filesystem {fs} still holds effects of an acknowledged batch"
        );
    }
    let out = dir.path().join("cut");
    sim.power_cut(sim.ops(), Survivors::Nothing, &out)?;
    assert_eq!(std::fs::read(out.join("a"))?, b"on the root");
    assert_eq!(std::fs::read(out.join("mnt/b"))?, b"on the mount");
    Ok(())
}
