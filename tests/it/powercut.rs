//! Simulated power cuts (issue 5, point 1).
//!
//! Every workload of one to three steps drawn from {write an object, CAS
//! update of a ref, a transaction of 2-3 refs, a state-file write, a reflog
//! append} runs once over a [`SimFs`]; then the power is cut after every one
//! of its seam operations, keeping nothing pending, everything pending, and
//! random subsets (torn writes and garbage included). Each image is reopened
//! (which runs recovery) and checked: acknowledged writes are present and
//! verify, nothing unacknowledged is half-present, refs of a transaction are
//! all-old or all-new, the state file and logs parse, no temp or lock file is
//! taken for data, and the repository accepts new writes at once. Recovery
//! itself is cut too.
//!
//! Replay: every test prints its base seed; `MUSE_POWERCUT_SEED=<seed>`
//! reruns the same random cuts. `MUSE_POWERCUT_LONG=1` draws many more
//! random cuts per crash point.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use muse_store::testing::{SimFs, Survivors};
use muse_store::{
    BranchName, Durability, Expected, Head, ObjectId, Options, RefState, Repository, TempKind,
    is_temp_name,
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
    /// `porcelain::commit`: objects, snapshot and commit record in one write
    /// batch (two syncfs barriers), then a CAS of the checked-out branch.
    Commit,
}

const STEPS: [Step; 6] = [
    Step::Object,
    Step::Cas,
    Step::Txn,
    Step::State,
    Step::Reflog,
    Step::Commit,
];

/// The branch HEAD is on; only commits move it.
const WORK: &str = "work";

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

/// Random cuts per crash point.
fn random_cuts_per_point() -> u64 {
    if std::env::var("MUSE_POWERCUT_LONG").is_ok_and(|v| v == "1") {
        24
    } else {
        1
    }
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

/// The versions one target went through: `versions[0]` before the workload,
/// `versions[i + 1]` written by the step whose seam operations are
/// `windows[i]` (`start..end`).
#[derive(Debug, Clone)]
struct Versions<T> {
    versions: Vec<T>,
    windows: Vec<(usize, usize)>,
}

impl<T: Clone> Versions<T> {
    fn new(initial: T) -> Self {
        Self {
            versions: vec![initial],
            windows: Vec::new(),
        }
    }

    fn current(&self) -> &T {
        &self.versions[self.versions.len() - 1]
    }

    fn push(&mut self, value: T, window: (usize, usize)) {
        self.versions.push(value);
        self.windows.push(window);
    }

    /// The versions written by steps acknowledged by operation `k`.
    fn acknowledged(&self, k: usize) -> &[T] {
        let done = self.windows.iter().filter(|w| w.1 <= k).count();
        &self.versions[1..=done]
    }

    /// What a cut after `k` operations may show: the value of the last
    /// acknowledged step, or the next one's when that step was in flight.
    fn allowed(&self, k: usize) -> Vec<&T> {
        let done = self.windows.iter().filter(|w| w.1 <= k).count();
        let mut allowed = vec![&self.versions[done]];
        if let Some(&(start, end)) = self.windows.get(done)
            && start < k
            && k < end
        {
            allowed.push(&self.versions[done + 1]);
        }
        allowed
    }
}

/// An object, its bytes, and the window of the step that wrote it.
type StoredObject = (ObjectId, Vec<u8>, Option<(usize, usize)>);

/// Everything the checks need to know about one workload run.
#[derive(Debug)]
struct Run {
    steps: Vec<Step>,
    /// Every object written, with the window of its step (`None` for the one
    /// written before the `SimFs` was attached).
    objects: Vec<StoredObject>,
    main: Versions<RefState>,
    txn: Versions<[RefState; 3]>,
    state: Versions<Vec<u8>>,
    /// The number of lines of the test log.
    log: Versions<usize>,
    /// The branch that commits move.
    work: Versions<RefState>,
    log_lines: Vec<ReflogEntry>,
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

/// The state file the `State` step rewrites (merge-state shaped JSON, at a
/// path of its own so that `commit` does not take it for a merge).
fn state_file(repo: &Repository) -> PathBuf {
    repo.layout().muse_dir().join("powercut-state.json")
}

fn test_log(repo: &Repository) -> PathBuf {
    repo.layout().logs_dir().join("powercut")
}

/// Sets up a repository on the real filesystem, attaches a `SimFs` and runs
/// `steps` through it.
fn run_workload(steps: &[Step]) -> TestResult<Run> {
    let dir = scratch_dir()?;
    let work = dir.path().join("work");
    let repo = Repository::init_with(&work, options(None))?;
    let refs = repo.refs();
    let base = pattern(3000, 99);
    let (base_id, _) = repo.objects().write(&base)?;
    refs.update(&branch("main"), id(1), Expected::Any, "setup")?;
    let mut tx = refs.transaction("setup");
    tx.create(branch("a"), id(2)).create(branch("b"), id(3));
    tx.commit()?;
    repo.writer()
        .write_file(&state_file(&repo), TempKind::State, &state_bytes(0))?;
    repo.writer()
        .append_record(&test_log(&repo), &log_entry(0).to_line())?;
    refs.set_head(&Head::Branch(branch(WORK)), "setup")?;
    drop(repo);

    let sim = SimFs::new(&work)?;
    let repo = Repository::open_with(&work, options(Some(sim.clone())))?;
    let refs = repo.refs();
    let mut run = Run {
        steps: steps.to_vec(),
        objects: vec![(base_id, base, None)],
        main: Versions::new(RefState::At(id(1))),
        txn: Versions::new([RefState::At(id(2)), RefState::At(id(3)), RefState::Missing]),
        state: Versions::new(state_bytes(0)),
        log: Versions::new(1),
        work: Versions::new(RefState::Missing),
        log_lines: vec![log_entry(0)],
        sim: sim.clone(),
        _dir: dir,
    };
    for (i, step) in steps.iter().enumerate() {
        let n = i as u64 + 1;
        let start = sim.ops();
        match step {
            Step::Object => {
                let bytes = pattern(OBJECT_SIZES[i % OBJECT_SIZES.len()], n as u8);
                let (oid, stored) = repo.objects().write(&bytes)?;
                assert!(stored, "step {i}: a new object must be written");
                run.objects.push((oid, bytes, Some((start, sim.ops()))));
            }
            Step::Cas => {
                let old = run.main.current().commit();
                let new = id(1000 + n);
                let expected = old.map_or(Expected::Absent, Expected::Value);
                refs.update(&branch("main"), new, expected, &format!("cas {n}"))?;
                run.main.push(RefState::At(new), (start, sim.ops()));
            }
            Step::Txn => {
                let width = if i % 2 == 0 { 2 } else { 3 };
                let current = *run.txn.current();
                let mut next = current;
                let mut tx = refs.transaction(&format!("txn {n}"));
                for (j, name) in TXN_REFS.iter().enumerate().take(width) {
                    let new = id(2000 + n * 10 + j as u64);
                    let expected = current[j]
                        .commit()
                        .map_or(Expected::Absent, Expected::Value);
                    tx.update(branch(name), new, expected);
                    next[j] = RefState::At(new);
                }
                tx.commit()?;
                run.txn.push(next, (start, sim.ops()));
            }
            Step::State => {
                let bytes = state_bytes(n);
                repo.writer()
                    .write_file(&state_file(&repo), TempKind::State, &bytes)?;
                run.state.push(bytes, (start, sim.ops()));
            }
            Step::Commit => {
                // Two files change per commit, one of several pages so that
                // its write can tear; the working tree itself is written
                // behind the seam (it is the input, not repository state).
                std::fs::write(work.join("song.txt"), format!("verse {n}\n"))?;
                std::fs::write(work.join("big.bin"), pattern(9000, 50 + n as u8))?;
                let done = crate::porcelain::commit(&repo, &format!("commit {n}"), Some("pc"))?;
                run.work
                    .push(RefState::At(done.commit.commit_id), (start, sim.ops()));
            }
            Step::Reflog => {
                let entry = log_entry(n);
                repo.writer()
                    .append_record(&test_log(&repo), &entry.to_line())?;
                run.log_lines.push(entry);
                let lines = run.log_lines.len();
                run.log.push(lines, (start, sim.ops()));
            }
        }
    }
    Ok(run)
}

/// Why a check failed, with what to replay.
fn fail(what: impl std::fmt::Display) -> String {
    what.to_string()
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

    // Objects: acknowledged ones read back; every stored one verifies.
    for (oid, bytes, window) in &run.objects {
        let acknowledged = window.is_none_or(|w| w.1 <= k);
        match repo.objects().read(oid) {
            Ok(got) if *got == bytes[..] => {}
            Ok(_) => return Err(fail(format!("object {oid} read back other bytes"))),
            Err(muse_store::Error::NotFound { .. }) if !acknowledged => {}
            Err(e) => {
                return Err(fail(format!(
                    "object {oid} (acknowledged: {acknowledged}): {e}"
                )));
            }
        }
    }
    for oid in repo.objects() {
        let oid = oid.map_err(|e| fail(format!("listing objects: {e}")))?;
        repo.objects()
            .verify(&oid)
            .map_err(|e| fail(format!("a stored object does not verify: {e}")))?;
    }

    // Refs: whole old or new values; the transaction's all-old or all-new.
    let branches = refs
        .branches()
        .map_err(|e| fail(format!("listing branches: {e}")))?;
    for (name, _) in &branches {
        if !["main", "a", "b", "c", WORK].contains(&name.as_str()) {
            return Err(fail(format!("unexpected branch '{name}'")));
        }
    }
    let state = |name: &str| {
        refs.branch_state(&branch(name))
            .map_err(|e| fail(format!("reading ref {name}: {e}")))
    };
    let main = state("main")?;
    let allowed = run.main.allowed(k);
    if !allowed.contains(&&main) {
        return Err(fail(format!("main is {main:?}, allowed {allowed:?}")));
    }
    let txn = [state("a")?, state("b")?, state("c")?];
    let allowed = run.txn.allowed(k);
    if !allowed.contains(&&txn) {
        return Err(fail(format!(
            "transaction refs are {txn:?}, allowed (all-old or all-new) {allowed:?}"
        )));
    }
    // Commits: the work branch holds an acknowledged (or the in-flight)
    // commit, and every commit it can name is whole: its record, its
    // snapshot and every object verify. Acknowledged commits' records stay.
    let work_state = state(WORK)?;
    let allowed = run.work.allowed(k);
    if !allowed.contains(&&work_state) {
        return Err(fail(format!(
            "{WORK} is {work_state:?}, allowed {allowed:?}"
        )));
    }
    let records = repo.records();
    let whole = |commit: ObjectId| -> Result<(), String> {
        let record = records
            .read_commit(&commit)
            .map_err(|e| fail(format!("commit {commit}: {e}")))?;
        let snapshot = records
            .read_snapshot(&record.snapshot_id)
            .map_err(|e| fail(format!("snapshot of {commit}: {e}")))?;
        for (path, oid) in &snapshot.manifest {
            repo.objects()
                .verify(oid)
                .map_err(|e| fail(format!("object {oid} ({path}) of {commit}: {e}")))?;
        }
        Ok(())
    };
    if let RefState::At(commit) = work_state {
        whole(commit)?;
    }
    for version in run.work.acknowledged(k) {
        if let RefState::At(commit) = version {
            whole(*commit)?;
        }
    }
    let journals = journals(&repo);
    if !journals.is_empty() {
        return Err(fail(format!("journals left after recovery: {journals:?}")));
    }
    refs.head()
        .map_err(|e| fail(format!("HEAD does not parse: {e}")))?;
    repo.info()
        .map_err(|e| fail(format!("repo.json does not parse: {e}")))?;

    // Reflogs: every acknowledged move is logged, and so is the move of a
    // transaction that recovery finished. A single-ref update cut between
    // its ref write and its reflog append may have moved without a line (it
    // was never acknowledged). Lines torn into garbage by the cut are
    // skipped by the reader (reported as malformed), never taken for moves.
    let log_of = |name: &str| {
        refs.reflog(&branch(name))
            .map_err(|e| fail(format!("reading reflog of {name}: {e}")))
    };
    let main_log = log_of("main")?;
    for version in run.main.acknowledged(k) {
        if let RefState::At(moved) = version
            && !main_log.entries.iter().any(|e| e.new == *moved)
        {
            return Err(fail(format!(
                "acknowledged move of main to {moved} is not in its reflog"
            )));
        }
    }
    let mut logged: Vec<&[RefState; 3]> = run.txn.acknowledged(k).iter().collect();
    if txn != run.txn.versions[0] {
        logged.push(&txn);
    }
    for (j, name) in TXN_REFS.iter().enumerate() {
        let log = log_of(name)?;
        for version in &logged {
            if let RefState::At(moved) = version[j]
                && !log.entries.iter().any(|e| e.new == moved)
            {
                return Err(fail(format!(
                    "transaction move of {name} to {moved} (acknowledged or recovered) \
                     is not in its reflog"
                )));
            }
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

    // The test log: its good lines are exactly a prefix of what was
    // appended; garbage (malformed lines) only after the acknowledged ones.
    let log = Reflog::read(&test_log(&repo)).map_err(|e| fail(format!("test log: {e}")))?;
    let acknowledged = run.log.versions[0] + run.log.acknowledged(k).len();
    if log.malformed.iter().any(|&line| line <= acknowledged) {
        return Err(fail(format!(
            "test log: malformed lines {:?} among the {acknowledged} acknowledged ones",
            log.malformed
        )));
    }
    let allowed = run.log.allowed(k);
    if !allowed.contains(&&log.entries.len())
        || log.entries[..] != run.log_lines[..log.entries.len().min(run.log_lines.len())]
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
    for (oid, bytes, _) in &run.objects {
        repo.objects()
            .write(bytes)
            .map_err(|e| fail(format!("rewriting object {oid} after the cut: {e}")))?;
        repo.objects()
            .read(oid)
            .map_err(|e| fail(format!("object {oid} after rewrite: {e}")))?;
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

/// Cuts the power after every operation of `run` and checks each image.
/// `base` is the printed seed to replay with; `seed` the one this workload
/// draws its random cuts from.
fn cut_everywhere(run: &Run, base: u64, seed: u64, scratch: &Path) -> TestResult<usize> {
    let randoms = random_cuts_per_point();
    let mut cuts = 0;
    for k in 0..=run.sim.ops() {
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

/// Every workload of `len` steps whose first step is `first` (or all when
/// `None`).
fn workloads(len: usize, first: Option<Step>) -> Vec<Vec<Step>> {
    let mut all: Vec<Vec<Step>> = vec![Vec::new()];
    for _ in 0..len {
        all = all
            .into_iter()
            .flat_map(|w| {
                STEPS.iter().map(move |s| {
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

fn exhaustive(name: &str, list: &[Vec<Step>]) -> TestResult {
    exhaustive_with_seed(name, list, base_seed())
}

fn exhaustive_with_seed(name: &str, list: &[Vec<Step>], seed: u64) -> TestResult {
    let started = Instant::now();
    let scratch = scratch_dir()?;
    let mut cuts = 0;
    for (i, steps) in list.iter().enumerate() {
        let run = run_workload(steps)?;
        cuts += cut_everywhere(&run, seed, mix(seed, i as u64), scratch.path())?;
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
fn power_cut_after_every_operation_of_one_and_two_step_workloads() -> TestResult {
    let mut list = workloads(1, None);
    list.extend(workloads(2, None));
    exhaustive("1-2 steps", &list)
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_object() -> TestResult {
    exhaustive("3 steps, object first", &workloads(3, Some(Step::Object)))
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_cas() -> TestResult {
    exhaustive("3 steps, CAS first", &workloads(3, Some(Step::Cas)))
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_txn() -> TestResult {
    exhaustive("3 steps, transaction first", &workloads(3, Some(Step::Txn)))
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_state() -> TestResult {
    exhaustive(
        "3 steps, state file first",
        &workloads(3, Some(Step::State)),
    )
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_reflog() -> TestResult {
    exhaustive("3 steps, reflog first", &workloads(3, Some(Step::Reflog)))
}

#[test]
fn power_cut_after_every_operation_of_three_step_workloads_from_commit() -> TestResult {
    exhaustive("3 steps, commit first", &workloads(3, Some(Step::Commit)))
}

/// Longer workloads (4 to 8 steps) drawn from the seed: a handful in a normal
/// run, many with `MUSE_POWERCUT_LONG=1`; every crash point of each is cut.
#[test]
fn power_cut_after_every_operation_of_random_long_workloads() -> TestResult {
    let seed = base_seed();
    let count = if random_cuts_per_point() > 1 { 200 } else { 6 };
    let list: Vec<Vec<Step>> = (0..count)
        .map(|w| {
            let mut state = mix(seed, 0xA11CE + w);
            let len = 4 + (state % 5) as usize;
            (0..len)
                .map(|_| {
                    state = mix(state, 1);
                    STEPS[(state % STEPS.len() as u64) as usize]
                })
                .collect()
        })
        .collect();
    exhaustive_with_seed("random 4-8 steps", &list, seed)
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
        let Some(&(start, end)) = run.txn.windows.last() else {
            continue;
        };
        for k in start + 1..end {
            let modes = survivor_modes(&run.sim, k, mix(seed, w as u64), randoms);
            for first in modes {
                let image = scratch.path().join(format!("first-{cuts}"));
                run.sim.power_cut(k, first, &image)?;
                let has_journal = std::fs::read_dir(image.join(".muse/ref-transactions"))
                    .map(|d| {
                        d.flatten().any(|e| {
                            e.file_name()
                                .to_str()
                                .is_some_and(|n| n.ends_with(".json") && !is_temp_name(n))
                        })
                    })
                    .is_ok_and(|found| found);
                // Every interrupted recovery of the durable and the live image;
                // of the random ones, a sample (each costs a full cut sweep).
                let sampled = !matches!(first, Survivors::Random(_)) || k % 4 == 0;
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
