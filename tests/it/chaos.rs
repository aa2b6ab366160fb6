//! SIGKILL chaos: a worker process (this test binary re-executed) writes at
//! full durability as fast as it can (objects, commits, CAS ref updates and
//! deletes, multi-ref transactions, `MERGE_STATE.json`, reservations, op-log
//! appends) and prints `BEGIN <op>` before and `ACK <op>` after each one.
//! The parent kills it with SIGKILL at a random moment, reopens the
//! repository (which runs recovery) and checks every acknowledged write
//! against what is on disk:
//!
//! - every acknowledged object is present and verifies, and every object
//!   file present (acknowledged or not) verifies;
//! - every acknowledged commit reads back verified, with its snapshot, its
//!   objects and its parents; every record file present verifies;
//! - each branch holds its last acknowledged value, or the value of the one
//!   operation in flight, and points at a commit that reads back;
//! - `t/a`, `t/b` and `t/c` are only ever moved together by one transaction,
//!   so they must always be equal (all or nothing);
//! - HEAD, reflogs, `MERGE_STATE.json`, reservations and the op log parse,
//!   and hold the acknowledged state or the in-flight operation's.
//!
//! Rounds run on the same repository, so history, leftover temp files,
//! stale locks and journals accumulate: each recovery runs on the debris of
//! all earlier kills, and a later round must never damage an earlier
//! acknowledged write.
//!
//! `MUSE_CHAOS_SEED` replays the operation sequence and kill points (the
//! exact kill instant still depends on timing); `MUSE_CHAOS_KILLS` sets the
//! number of kills (default 100).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use muse_store::{
    BranchName, Durability, Expected, Head, MUSE_DIR, ManifestDiff, MergeState, NewCommit,
    ObjectId, OpEntry, OpLog, Options, Repository, Reservation, SessionId, is_temp_name,
};

use crate::TestResult;

/// Turns this test binary into a chaos worker: `<seed>:<work tree>`.
const WORKER_ENV: &str = "MUSE_CHAOS_WORKER";
/// Branches moved one at a time by CAS (and deleted).
const CAS_BRANCHES: [&str; 3] = ["b/one", "b/two", "c"];
/// Branches only ever moved together, by one transaction.
const TX_BRANCHES: [&str; 3] = ["t/a", "t/b", "t/c"];
/// The op-log session the worker appends to.
const SESSION: &str = "chaos";

/// splitmix64: small, seeded, good enough to pick operations.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn name(text: &str) -> TestResult<BranchName> {
    Ok(BranchName::new(text)?)
}

/// Prints one protocol line and flushes it, so the parent sees it before
/// the next write starts.
fn say(out: &mut impl Write, line: &str) -> TestResult {
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The child side of `sigkill_chaos`; returns at once without the variable.
#[test]
#[ignore = "run only as a child process by sigkill_chaos"]
#[expect(
    clippy::too_many_lines,
    reason = "one match arm per operation keeps the BEGIN/ACK protocol in one place"
)]
fn chaos_worker() -> TestResult {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return Ok(());
    };
    let (seed, work_tree) = spec.split_once(':').ok_or("worker spec")?;
    let mut rng = Rng(seed.parse()?);
    // Full durability (the default): an ACK means fsynced.
    let repo = Repository::open(work_tree)?;
    let refs = repo.refs();
    let main = name("main")?;
    let mut out = std::io::stdout().lock();
    // End libtest's unterminated "test chaos::chaos_worker ... " line.
    say(&mut out, "")?;
    let mut commits: Vec<ObjectId> = refs
        .branches()?
        .into_iter()
        .filter_map(|(_, state)| state.commit())
        .collect();
    let mut reservations = Reservation::list(&repo)?;
    let mut merging = MergeState::read(&repo)?.is_some();
    let oplog = OpLog::new(&repo, SessionId::new(SESSION)?);
    for step in 0..100_000u64 {
        let choice = if commits.is_empty() {
            0
        } else {
            rng.below(100)
        };
        match choice {
            0..=24 => {
                for _ in 0..=rng.below(2) {
                    let file = format!("f{}.txt", rng.below(8));
                    let len = rng.below(600) as usize;
                    std::fs::write(repo.work_tree().join(file), rng.bytes(len))?;
                }
                say(&mut out, &format!("BEGIN commit {}", u8::from(merging)))?;
                let outcome =
                    crate::porcelain::commit(&repo, &format!("chaos {step}"), Some("chaos"))?;
                merging = false;
                commits.push(outcome.commit.commit_id);
                say(
                    &mut out,
                    &format!("ACK commit {}", outcome.commit.commit_id),
                )?;
            }
            25..=44 => {
                let len = rng.below(5000) as usize;
                let bytes = rng.bytes(len);
                let id = ObjectId::hash(&bytes);
                say(&mut out, &format!("BEGIN object {id}"))?;
                repo.objects().write(&bytes)?;
                say(&mut out, &format!("ACK object {id}"))?;
            }
            45..=59 => {
                let text: &str = CAS_BRANCHES[rng.below(3) as usize];
                let branch = name(text)?;
                let new = *rng.pick(&commits);
                let expected = refs
                    .branch(&branch)?
                    .map_or(Expected::Absent, Expected::Value);
                say(&mut out, &format!("BEGIN ref {branch} {new}"))?;
                refs.update(&branch, new, expected, "chaos: update")?;
                say(&mut out, &format!("ACK ref {branch} {new}"))?;
            }
            60..=64 => {
                let text: &str = CAS_BRANCHES[rng.below(3) as usize];
                let branch = name(text)?;
                if let Some(current) = refs.branch(&branch)? {
                    say(&mut out, &format!("BEGIN delref {branch}"))?;
                    refs.delete(&branch, Expected::Value(current), "chaos: delete")?;
                    say(&mut out, &format!("ACK delref {branch}"))?;
                }
            }
            65..=76 => {
                let new = *rng.pick(&commits);
                let mut tx = refs.transaction("chaos: transaction");
                for text in TX_BRANCHES {
                    let branch = name(text)?;
                    let expected = refs
                        .branch(&branch)?
                        .map_or(Expected::Absent, Expected::Value);
                    tx.update(branch, new, expected);
                }
                say(&mut out, &format!("BEGIN tx {new}"))?;
                tx.commit()?;
                say(&mut out, &format!("ACK tx {new}"))?;
            }
            77..=82 => {
                let ours = refs.branch(&main)?.ok_or("main has a commit")?;
                let theirs = *rng.pick(&commits);
                let state = MergeState::new(None, ours, theirs, vec!["f0.txt".into()], None);
                say(&mut out, &format!("BEGIN merge {ours} {theirs}"))?;
                state.write(&repo)?;
                merging = true;
                say(&mut out, &format!("ACK merge {ours} {theirs}"))?;
            }
            83..=85 => {
                say(&mut out, "BEGIN merge-clear")?;
                MergeState::clear(&repo)?;
                merging = false;
                say(&mut out, "ACK merge-clear")?;
            }
            86..=90 => {
                let r = Reservation::new("chaos", "main", vec!["f1.txt".into()], None);
                say(&mut out, &format!("BEGIN reserve {}", r.reservation_id))?;
                r.write(&repo)?;
                say(&mut out, &format!("ACK reserve {}", r.reservation_id))?;
                reservations.push(r);
            }
            91..=93 => {
                if !reservations.is_empty() {
                    let i = rng.below(reservations.len() as u64) as usize;
                    let r = reservations.swap_remove(i);
                    say(&mut out, &format!("BEGIN unreserve {}", r.reservation_id))?;
                    Reservation::remove(&repo, &r.reservation_id)?;
                    say(&mut out, &format!("ACK unreserve {}", r.reservation_id))?;
                }
            }
            _ => {
                let entry = OpEntry::new("chaos", step, "code", serde_json::Value::Null);
                say(&mut out, &format!("BEGIN op {}", entry.op_id))?;
                oplog.append(&entry)?;
                say(&mut out, &format!("ACK op {}", entry.op_id))?;
            }
        }
    }
    Ok(())
}

/// What the parent knows was acknowledged.
#[derive(Debug, Default)]
struct Acked {
    objects: BTreeSet<ObjectId>,
    commits: BTreeSet<ObjectId>,
    /// Last acknowledged value of every branch the worker moves.
    refs: BTreeMap<String, Option<ObjectId>>,
    merge: Option<(ObjectId, ObjectId)>,
    reservations: BTreeSet<String>,
    ops: Vec<String>,
    /// Objects, commits and record files already checked (immutable).
    verified_objects: BTreeSet<ObjectId>,
    verified_commits: BTreeSet<ObjectId>,
    acks: u64,
}

fn id(text: Option<&&str>) -> TestResult<ObjectId> {
    Ok(ObjectId::from_hex(text.ok_or("missing id")?)?)
}

impl Acked {
    fn new() -> Self {
        let mut acked = Self::default();
        for b in std::iter::once("main")
            .chain(CAS_BRANCHES)
            .chain(TX_BRANCHES)
        {
            acked.refs.insert(b.to_owned(), None);
        }
        acked
    }

    /// Records one `ACK` line.
    fn ack(&mut self, words: &[&str]) -> TestResult {
        self.acks += 1;
        match words.first().copied() {
            Some("object") => {
                self.objects.insert(id(words.get(1))?);
            }
            Some("commit") => {
                let c = id(words.get(1))?;
                self.commits.insert(c);
                self.refs.insert("main".into(), Some(c));
                // A commit made during a merge clears the merge state.
                self.merge = None;
            }
            Some("ref") => {
                let b = words.get(1).ok_or("branch")?;
                self.refs.insert((*b).to_owned(), Some(id(words.get(2))?));
            }
            Some("delref") => {
                self.refs
                    .insert((*words.get(1).ok_or("branch")?).to_owned(), None);
            }
            Some("tx") => {
                let new = id(words.get(1))?;
                for b in TX_BRANCHES {
                    self.refs.insert(b.to_owned(), Some(new));
                }
            }
            Some("merge") => self.merge = Some((id(words.get(1))?, id(words.get(2))?)),
            Some("merge-clear") => self.merge = None,
            Some("reserve") => {
                self.reservations
                    .insert((*words.get(1).ok_or("uuid")?).to_owned());
            }
            Some("unreserve") => {
                self.reservations.remove(*words.get(1).ok_or("uuid")?);
            }
            Some("op") => self.ops.push((*words.get(1).ok_or("op id")?).to_owned()),
            other => return Err(format!("unknown ACK {other:?}").into()),
        }
        Ok(())
    }
}

/// Checks a commit deeply: record, snapshot, objects, parents (once each).
fn check_commit(repo: &Repository, acked: &mut Acked, commit: ObjectId) -> TestResult {
    if acked.verified_commits.contains(&commit) {
        return Ok(());
    }
    let records = repo.records();
    let record = records
        .read_commit(&commit)
        .map_err(|e| format!("commit {commit}: {e}"))?;
    let snapshot = records
        .read_snapshot(&record.snapshot_id)
        .map_err(|e| format!("snapshot of commit {commit}: {e}"))?;
    for (path, object) in &snapshot.manifest {
        if acked.verified_objects.insert(*object) {
            repo.objects()
                .verify(object)
                .map_err(|e| format!("object {object} ({path}) of commit {commit}: {e}"))?;
        }
    }
    for parent in record.parents() {
        assert!(
            records.contains_commit(&parent),
            "parent {parent} of commit {commit} is missing"
        );
    }
    acked.verified_commits.insert(commit);
    Ok(())
}

/// Every object file present verifies; every record file present verifies.
fn scan_store(repo: &Repository, acked: &mut Acked, everything: bool) -> TestResult {
    for object in repo.objects() {
        let object = object?;
        if everything || acked.verified_objects.insert(object) {
            repo.objects()
                .verify(&object)
                .map_err(|e| format!("stored object {object} fails to verify: {e}"))?;
        }
    }
    for entry in std::fs::read_dir(repo.layout().commits_dir())? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if is_temp_name(&file) {
            continue;
        }
        let Some(commit) = file
            .strip_suffix(".json")
            .and_then(|h| ObjectId::from_hex(h).ok())
        else {
            return Err(format!("unexpected file in commits/: {file}").into());
        };
        if everything || !acked.verified_commits.contains(&commit) {
            muse_store::CommitRecord::read_file(&entry.path())
                .map_err(|e| format!("stored commit record {file}: {e}"))?;
            check_commit(repo, acked, commit)?;
        }
    }
    for entry in std::fs::read_dir(repo.layout().snapshots_dir())? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if !is_temp_name(&file) && everything {
            muse_store::SnapshotRecord::read_file(&entry.path())
                .map_err(|e| format!("stored snapshot record {file}: {e}"))?;
        }
    }
    Ok(())
}

/// After a kill: reopen, check everything against `acked` and the one
/// operation in flight (`pending`), then adopt what survived.
#[expect(
    clippy::too_many_lines,
    reason = "one section per kind of state, checked in the order a reader would"
)]
fn check_after_kill(work_tree: &Path, acked: &mut Acked, pending: Option<&[String]>) -> TestResult {
    let repo = Repository::open(work_tree).map_err(|e| format!("reopen after kill: {e}"))?;
    let pending: Vec<&str> = pending
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    let kind = pending.first().copied();

    // Objects and records.
    for object in &acked.objects {
        repo.objects()
            .verify(object)
            .map_err(|e| format!("acknowledged object {object}: {e}"))?;
    }
    scan_store(&repo, acked, false)?;
    let commits: Vec<ObjectId> = acked.commits.iter().copied().collect();
    for commit in commits {
        check_commit(&repo, acked, commit)?;
    }
    if kind == Some("object") {
        let object = id(pending.get(1))?;
        if repo.objects().contains(&object) {
            acked.objects.insert(object);
        }
    }

    // HEAD and branches.
    let refs = repo.refs();
    assert_eq!(
        refs.head()?,
        Head::Branch(name("main")?),
        "HEAD stays on main"
    );
    let listed: Vec<String> = refs
        .branches()?
        .iter()
        .map(|(b, _)| b.to_string())
        .collect();
    for b in &listed {
        assert!(acked.refs.contains_key(b), "unexpected branch {b}");
    }
    let mut observed = BTreeMap::new();
    let last_acked = acked.refs.clone();
    for (b, last) in &last_acked {
        let branch = name(b)?;
        let now = refs
            .branch(&branch)
            .map_err(|e| format!("branch {b} after kill: {e}"))?;
        let in_flight = match (kind, pending.get(1).copied()) {
            (Some("ref"), Some(p)) if p == b => Some(Some(id(pending.get(2))?)),
            (Some("delref"), Some(p)) if p == b => Some(None),
            (Some("tx"), _) if TX_BRANCHES.contains(&b.as_str()) => Some(Some(id(pending.get(1))?)),
            _ => None,
        };
        let fine = now == *last || in_flight == Some(now);
        // A commit in flight may have moved main to a new commit built on
        // the acknowledged tip.
        let new_commit = kind == Some("commit")
            && b == "main"
            && now != *last
            && now.is_some_and(|c| {
                repo.records()
                    .read_commit(&c)
                    .is_ok_and(|r| r.parent_commit_id == *last)
            });
        assert!(
            fine || new_commit,
            "branch {b} holds {now:?}; acknowledged {last:?}, in flight {pending:?}"
        );
        if let Some(c) = now {
            check_commit(&repo, acked, c)
                .map_err(|e| format!("branch {b} points at a broken commit: {e}"))?;
            if new_commit {
                acked.commits.insert(c);
            }
        }
        let log = refs.reflog(&branch)?;
        assert!(
            log.malformed.is_empty(),
            "reflog of {b} has malformed lines"
        );
        observed.insert(b.clone(), now);
    }
    let head_log = refs.head_reflog()?;
    assert!(
        head_log.malformed.is_empty(),
        "HEAD reflog has malformed lines"
    );
    let tx_values: BTreeSet<Option<ObjectId>> = TX_BRANCHES.iter().map(|b| observed[*b]).collect();
    assert_eq!(
        tx_values.len(),
        1,
        "transaction branches differ (not all-or-nothing): {tx_values:?}"
    );
    let main_moved = observed["main"] != acked.refs["main"];
    acked.refs = observed;

    // MERGE_STATE.json.
    let merge = MergeState::read(&repo)
        .map_err(|e| format!("MERGE_STATE.json after kill: {e}"))?
        .map(|m| (m.ours_commit, m.theirs_commit));
    let merge_in_flight = match kind {
        Some("merge") => Some(Some((id(pending.get(1))?, id(pending.get(2))?))),
        Some("merge-clear") => Some(None),
        Some("commit") if main_moved => Some(None),
        _ => None,
    };
    assert!(
        merge == acked.merge || merge_in_flight == Some(merge),
        "merge state {merge:?}; acknowledged {:?}, in flight {pending:?}",
        acked.merge
    );
    acked.merge = merge;

    // Reservations.
    let stored: BTreeSet<String> = Reservation::list(&repo)
        .map_err(|e| format!("reservations after kill: {e}"))?
        .iter()
        .map(|r| r.reservation_id.to_string())
        .collect();
    let mut alternative = acked.reservations.clone();
    match (kind, pending.get(1)) {
        (Some("reserve"), Some(u)) => {
            alternative.insert((*u).to_owned());
        }
        (Some("unreserve"), Some(u)) => {
            alternative.remove(*u);
        }
        _ => {}
    }
    assert!(
        stored == acked.reservations || stored == alternative,
        "reservations {stored:?}; acknowledged {:?}, in flight {pending:?}",
        acked.reservations
    );
    acked.reservations = stored;

    // The op log.
    let ops: Vec<String> = OpLog::new(&repo, SessionId::new(SESSION)?)
        .read()
        .map_err(|e| format!("op log after kill: {e}"))?
        .into_iter()
        .map(|o| o.op_id)
        .collect();
    let mut with_pending = acked.ops.clone();
    if let (Some("op"), Some(op)) = (kind, pending.get(1)) {
        with_pending.push((*op).to_owned());
    }
    assert!(
        ops == acked.ops || ops == with_pending,
        "op log has {} entries; {} acknowledged, in flight {pending:?}",
        ops.len(),
        acked.ops.len()
    );
    acked.ops = ops;
    Ok(())
}

fn env_u64(var: &str) -> TestResult<Option<u64>> {
    match std::env::var(var) {
        Ok(text) => {
            Ok(Some(text.parse().map_err(|e| {
                format!("{var}={text:?} is not a number: {e}")
            })?))
        }
        Err(_) => Ok(None),
    }
}

#[test]
fn sigkill_chaos() -> TestResult {
    let seed = match env_u64("MUSE_CHAOS_SEED")? {
        Some(seed) => seed,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let kills = env_u64("MUSE_CHAOS_KILLS")?.unwrap_or(100);
    println!("sigkill_chaos: seed {seed} (replay with MUSE_CHAOS_SEED={seed}), {kills} kills");
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    // The worker's stderr goes outside the work tree (it would be committed).
    let logs = tempfile::tempdir()?;
    Repository::init(dir.path())?;
    let exe = std::env::current_exe()?;
    let mut rng = Rng(seed);
    let mut acked = Acked::new();
    for round in 0..kills {
        let worker_seed = rng.next();
        // One round in ten is killed early (often during open and
        // recovery); the rest after a random number of acknowledgements.
        let wait_acks = if rng.below(10) == 0 {
            0
        } else {
            1 + rng.below(40)
        };
        let delay = Duration::from_micros(rng.below(if wait_acks == 0 { 20_000 } else { 3_000 }));
        let stderr_path = logs.path().join("worker-stderr");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "chaos::chaos_worker",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                WORKER_ENV,
                format!("{worker_seed}:{}", dir.path().display()),
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut pending: Option<Vec<String>> = None;
        let mut other = Vec::new();
        let mut acks_seen = 0;
        let mut handle = |line: String, acked: &mut Acked, seen: &mut u64| -> TestResult {
            let words: Vec<&str> = line.split(' ').collect();
            match words.first().copied() {
                Some("BEGIN") => {
                    pending = Some(words[1..].iter().map(|w| (*w).to_owned()).collect());
                }
                Some("ACK") => {
                    acked.ack(&words[1..])?;
                    pending = None;
                    *seen += 1;
                }
                _ => other.push(line),
            }
            Ok(())
        };
        while acks_seen < wait_acks {
            let Some(line) = lines.next() else { break };
            handle(line?, &mut acked, &mut acks_seen)?;
        }
        std::thread::sleep(delay);
        // SIGKILL; an error only means it has already exited.
        let _ = child.kill();
        for line in lines {
            handle(line?, &mut acked, &mut acks_seen)?;
        }
        let status = child.wait()?;
        if status.signal() != Some(libc::SIGKILL) {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(format!(
                "round {round}: the worker ended on its own ({status}) (seed {seed}): {other:?} {stderr}"
            )
            .into());
        }
        check_after_kill(dir.path(), &mut acked, pending.as_deref())
            .map_err(|e| format!("round {round} (seed {seed}, in flight {pending:?}): {e}"))?;
    }
    // A final full pass: every object and record file, not only new ones.
    let repo = Repository::open(dir.path())?;
    scan_store(&repo, &mut acked, true)?;
    println!(
        "sigkill_chaos: {kills} kills, {} acknowledged writes, {} objects, {} commits, {:.1?}",
        acked.acks,
        acked.objects.len(),
        acked.commits.len(),
        started.elapsed()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// SIGKILL chaos on real `muse` commands (issue 11): checkout, gc, branch
// delete and rename, and two-ref transactions read by concurrent processes.
//
// Each test kills one command of the built `muse` binary per round, at a
// failpoint (a barrier it waits at, or a crash point where it aborts) one
// round in three and otherwise after a random delay of up to 1.3 times how
// long the command takes when it is not killed; then it runs one more
// command (which runs recovery on open) and checks the invariants that must
// hold after any kill. Rounds run on the same repository, on the debris of
// the earlier kills. `MUSE_CHAOS_SEED` replays the kill choices and delays
// (the exact kill instant of a delay still depends on timing);
// `MUSE_CHAOS_ROUNDS` sets the number of rounds of each test.

/// The seed and the rounds of one command chaos test, printed.
pub(crate) fn command_chaos(test: &str, default_rounds: u64) -> TestResult<(u64, u64)> {
    let seed = match env_u64("MUSE_CHAOS_SEED")? {
        Some(seed) => seed,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let rounds = env_u64("MUSE_CHAOS_ROUNDS")?.unwrap_or(default_rounds);
    println!(
        "{test}: seed {seed} (replay with MUSE_CHAOS_SEED={seed}), {rounds} rounds (MUSE_CHAOS_ROUNDS)"
    );
    Ok((seed, rounds))
}

/// How a command under test is stopped.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kill {
    /// SIGKILL after this long.
    After(Duration),
    /// SIGKILL while it waits at this failpoint barrier.
    AtBarrier(&'static str),
    /// It aborts itself at this crash point (`MUSE_CRASH_AT`).
    CrashAt(&'static str),
}

impl Kill {
    /// One of `points` one round in three, else a SIGKILL after a delay
    /// drawn uniformly from zero to 1.3 times `scale`.
    pub(crate) fn pick(rng: &mut Rng, points: &[Kill], scale: Duration) -> Kill {
        if !points.is_empty() && rng.below(3) == 0 {
            *rng.pick(points)
        } else {
            let max = scale.as_micros() as u64 * 13 / 10 + 1;
            Kill::After(Duration::from_micros(rng.below(max)))
        }
    }
}

/// How a command run under a [`Kill`] ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Killed by the test (SIGKILL) or aborted at its crash point (SIGABRT).
    pub(crate) killed: bool,
    /// The exit code when it ended on its own.
    pub(crate) code: Option<i32>,
    pub(crate) stderr: String,
}

/// `muse <args>` in `dir`: no stdin, output piped.
pub(crate) fn muse_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muse"));
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `muse <args>` in `dir`, run to its end: (exit code, stdout, stderr).
pub(crate) fn muse_run(dir: &Path, args: &[&str]) -> TestResult<(i32, String, String)> {
    let out = muse_in(dir, args).output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `muse <args>` in `dir`, which must exit 0; its stdout.
pub(crate) fn muse_ok(dir: &Path, args: &[&str]) -> TestResult<String> {
    let (code, out, err) = muse_run(dir, args)?;
    if code != 0 {
        return Err(format!("muse {args:?} exited {code}: {err}").into());
    }
    Ok(out)
}

/// Runs `muse <args>` in `dir` with `input` on its stdin and stops it as
/// `kill` says. At a barrier, `while_stopped` runs before the SIGKILL (the
/// command is frozen at the failpoint meanwhile).
pub(crate) fn run_killed(
    dir: &Path,
    args: &[&str],
    input: Option<&str>,
    kill: Kill,
    while_stopped: &mut dyn FnMut() -> TestResult,
) -> TestResult<Outcome> {
    let gate = tempfile::tempdir()?;
    let mut cmd = muse_in(dir, args);
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    match kill {
        Kill::AtBarrier(point) => {
            cmd.env(
                "MUSE_TEST_BARRIER",
                format!("{point}:{}:2", gate.path().display()),
            );
        }
        Kill::CrashAt(point) => {
            cmd.env("MUSE_CRASH_AT", point);
        }
        Kill::After(_) => {}
    }
    let mut child = cmd.spawn()?;
    if let Some(text) = input {
        // Closed when dropped, so the command sees the end of its input.
        let mut stdin = child.stdin.take().ok_or("stdin")?;
        stdin.write_all(text.as_bytes())?;
    }
    match kill {
        Kill::After(delay) => {
            std::thread::sleep(delay);
            // An error only means it has already exited.
            let _ = child.kill();
        }
        Kill::AtBarrier(point) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if std::fs::read_dir(gate.path())?.next().is_some() {
                    while_stopped()?;
                    let _ = child.kill();
                    break;
                }
                if child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return Err(format!("muse {args:?} neither reached {point} nor exited").into());
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        Kill::CrashAt(_) => {}
    }
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let killed = match out.status.signal() {
        Some(libc::SIGKILL | libc::SIGABRT) => true,
        Some(other) => {
            return Err(format!("muse {args:?} died of signal {other}: {stderr}").into());
        }
        None => false,
    };
    Ok(Outcome {
        killed,
        code: out.status.code(),
        stderr,
    })
}

/// `muse fsck` (it runs no recovery) must exit 0, that is find no damage
/// and no I/O error; returns the kinds of the notes it made.
pub(crate) fn fsck_notes(dir: &Path) -> TestResult<Vec<String>> {
    let (code, out, err) = muse_run(dir, &["fsck"])?;
    let report: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("fsck output ({e}): {out:?} {err}"))?;
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    if code != 0 {
        return Err(format!("fsck exited {code}: {problems:?}").into());
    }
    Ok(problems
        .iter()
        .map(|p| p["kind"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// Reads `tip` and everything it reaches (commit records, snapshots,
/// objects verified, parents), each once: the history a branch names is
/// whole.
pub(crate) fn check_history(
    repo: &Repository,
    tip: ObjectId,
    seen: &mut BTreeSet<ObjectId>,
) -> TestResult {
    let mut stack = vec![tip];
    while let Some(commit) = stack.pop() {
        if !seen.insert(commit) {
            continue;
        }
        let record = repo
            .records()
            .read_commit(&commit)
            .map_err(|e| format!("commit {commit}: {e}"))?;
        let snapshot = repo
            .records()
            .read_snapshot(&record.snapshot_id)
            .map_err(|e| format!("snapshot of commit {commit}: {e}"))?;
        for (path, object) in &snapshot.manifest {
            if seen.insert(*object) {
                repo.objects()
                    .verify(object)
                    .map_err(|e| format!("object {object} ({path}) of commit {commit}: {e}"))?;
            }
        }
        stack.extend(record.parents());
    }
    Ok(())
}

/// Every branch: its value, and whether its reflog ends on that value
/// (`Some(false)` when it ends elsewhere, `None` when it has no line).
fn branches_and_reflogs(
    repo: &Repository,
) -> TestResult<BTreeMap<String, (ObjectId, Option<bool>)>> {
    let refs = repo.refs();
    let mut out = BTreeMap::new();
    for (branch, state) in refs.branches()? {
        let Some(value) = state.commit() else {
            continue;
        };
        let log = refs.reflog(&branch)?;
        if !log.malformed.is_empty() {
            return Err(
                format!("reflog of {branch} has malformed lines {:?}", log.malformed).into(),
            );
        }
        let ends_on = log.entries.last().map(|e| e.new == value);
        out.insert(branch.to_string(), (value, ends_on));
    }
    if !refs.head_reflog()?.malformed.is_empty() {
        return Err("HEAD's reflog has malformed lines".into());
    }
    Ok(out)
}

/// Every reflog file under `logs/refs/heads/`, as the branch name it is for.
fn reflog_names(repo: &Repository) -> TestResult<BTreeSet<String>> {
    let root = repo.layout().branch_logs_dir();
    let mut names = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if !is_temp_name(&path.file_name().unwrap_or_default().to_string_lossy()) {
                names.insert(path.strip_prefix(&root)?.to_string_lossy().into_owned());
            }
        }
    }
    Ok(names)
}

/// A repository for a chaos test; the test's own setup writes without
/// fsync (a SIGKILL keeps the page cache), the commands under test run at
/// the CLI's default, full durability.
fn chaos_repo() -> TestResult<(tempfile::TempDir, std::path::PathBuf, Repository)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("repo");
    let repo = Repository::init_with(&root, setup_options())?;
    Ok((dir, root, repo))
}

fn setup_options() -> Options {
    Options {
        durability: Durability::None,
        ..Options::default()
    }
}

// --- checkout --------------------------------------------------------------

/// The files of branches `a` and `b`: a checkout between them rewrites most
/// files, keeps some, removes some and creates some (in new directories).
fn checkout_trees(rng: &mut Rng) -> [BTreeMap<String, Vec<u8>>; 2] {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    for i in 0..48u64 {
        let path = format!("d{}/f{i:02}.bin", i % 4);
        let len = 2_000 + rng.below(30_000) as usize;
        let ours = rng.bytes(len);
        if i < 44 {
            let theirs = if i % 5 == 0 {
                ours.clone()
            } else {
                rng.bytes(len)
            };
            b.insert(path.clone(), theirs);
        }
        a.insert(path, ours);
    }
    for j in 0..4 {
        a.insert(format!("only-a/{j}.txt"), rng.bytes(100));
        b.insert(format!("only-b-{j}.txt"), rng.bytes(100));
    }
    [a, b]
}

/// Every file of the work tree outside `.muse/` by path, with its content's
/// id; and the temp files among them (never content).
pub(crate) fn work_files(root: &Path) -> TestResult<(BTreeMap<String, ObjectId>, Vec<String>)> {
    let (mut files, mut temps) = (BTreeMap::new(), Vec::new());
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if rel != MUSE_DIR {
                    stack.push((entry.path(), rel));
                }
            } else if is_temp_name(&name) {
                temps.push(rel);
            } else {
                files.insert(rel, ObjectId::hash(&std::fs::read(entry.path())?));
            }
        }
    }
    Ok((files, temps))
}

/// What the checkout rounds saw.
#[derive(Debug, Default)]
struct CheckoutTally {
    killed: u64,
    finished: u64,
    /// Rounds after which the tree was neither all old nor all new.
    mixed: u64,
    /// Rounds after which HEAD had moved but the tree (partly) had not, or
    /// the reverse: status reported it dirty.
    dirty: u64,
    /// `.restore-tmp-` files found after the next command's recovery.
    temps_after_open: usize,
}

fn checkout_chaos(test: &str, all_or_nothing: bool) -> TestResult {
    let (seed, rounds) = command_chaos(test, 60)?;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let (_dir, root, repo) = chaos_repo()?;
    let mut commits = BTreeMap::new();
    for (side, files) in ["a", "b"].into_iter().zip(checkout_trees(&mut rng)) {
        let made = repo.commit_files(
            files
                .iter()
                .map(|(p, bytes)| (p.as_str(), bytes.as_slice())),
            &NewCommit::new(side).branch(name(side)?),
        )?;
        let id = made.commit.commit_id;
        commits.insert(side, (id, repo.records().tree_of(Some(id))?));
    }
    repo.refs().set_head(&Head::Branch(name("a")?), "start")?;
    muse_ok(&root, &["checkout", "--force", "a"])?;
    // How long an uninterrupted switch takes, both ways.
    let mut scale = Duration::ZERO;
    for side in ["b", "a"] {
        let at = Instant::now();
        muse_ok(&root, &["checkout", side])?;
        scale = scale.max(at.elapsed());
    }
    let points = [
        Kill::AtBarrier("batch-before-publish"),
        Kill::AtBarrier("checkout-journal-written"),
        Kill::AtBarrier("checkout-before-head"),
    ];
    let mut tally = CheckoutTally::default();
    for round in 0..rounds {
        let from = match repo.refs().head()? {
            Head::Branch(b) => b.to_string(),
            Head::Detached(id) => return Err(format!("HEAD detached at {id}").into()),
        };
        let to = if from == "a" { "b" } else { "a" };
        let kill = Kill::pick(&mut rng, &points, scale);
        let outcome = run_killed(&root, &["checkout", to], None, kill, &mut || Ok(()))?;
        let context = |e: Box<dyn std::error::Error>| {
            format!("{test} round {round} (seed {seed}, checkout {from} -> {to}, {kill:?}): {e}")
        };
        if outcome.killed {
            tally.killed += 1;
        } else if outcome.code == Some(0) {
            tally.finished += 1;
        } else {
            return Err(context(format!("checkout failed: {}", outcome.stderr).into()).into());
        }
        check_after_checkout(&root, &commits, all_or_nothing, &mut tally).map_err(context)?;
    }
    println!(
        "{test}: {rounds} rounds in {:.1?} ({} killed, {} finished first; kill delays up to 1.3 x {scale:.1?}): files always whole, status always honest; {} rounds left a mixed tree and {} a tree status reported dirty after the next command (all-or-nothing asserted: {all_or_nothing}); {} .restore-tmp- files seen after the next open, none after recovery",
        started.elapsed(),
        tally.killed,
        tally.finished,
        tally.mixed,
        tally.dirty,
        tally.temps_after_open
    );
    Ok(())
}

/// After a (maybe killed) checkout between `a` and `b`: one more command,
/// then every invariant a checkout must keep whenever it is killed.
#[expect(
    clippy::too_many_lines,
    reason = "one section per invariant, in the order a user would meet them"
)]
fn check_after_checkout(
    root: &Path,
    commits: &BTreeMap<&str, (ObjectId, BTreeMap<String, ObjectId>)>,
    all_or_nothing: bool,
    tally: &mut CheckoutTally,
) -> TestResult {
    // The next command runs recovery on open.
    let status: serde_json::Value =
        serde_json::from_str(&muse_ok(root, &["status", "--format", "json"])?)?;
    let repo = Repository::open_without_recovery(root, setup_options())?;

    // Refs: HEAD on one of the two branches, neither branch moved, no
    // commit lost.
    let head = match repo.refs().head()? {
        Head::Branch(b) if commits.contains_key(b.as_str()) => b.to_string(),
        other => return Err(format!("HEAD is {other:?}, not a or b").into()),
    };
    let mut seen = BTreeSet::new();
    for (side, (id, _)) in commits {
        let now = repo.refs().branch(&name(side)?)?;
        if now != Some(*id) {
            return Err(format!("branch {side} holds {now:?}, not {id}").into());
        }
        check_history(&repo, *id, &mut seen)?;
    }
    branches_and_reflogs(&repo)?;

    // Every tracked file is whole: it holds one commit's version of it.
    let (work, temps) = work_files(root)?;
    for (path, id) in &work {
        if !commits.values().any(|(_, tree)| tree.get(path) == Some(id)) {
            return Err(
                format!("'{path}' holds neither commit's content (torn or foreign)").into(),
            );
        }
    }

    // Status is honest: it reports exactly how the tree differs from
    // HEAD's commit, so a mismatch is never silently wrong.
    let head_tree = &commits[head.as_str()].1;
    let diff = ManifestDiff::between(head_tree, &work);
    let listed = |key: &str| -> Vec<String> {
        status[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let reported = (listed("added"), listed("modified"), listed("deleted"));
    if reported
        != (
            diff.added.clone(),
            diff.modified.clone(),
            diff.deleted.clone(),
        )
    {
        return Err(format!(
            "status reports (added, modified, deleted) {reported:?} but the tree differs from HEAD ({head}) by {diff:?}"
        )
        .into());
    }
    if status["clean"].as_bool() != Some(diff.is_empty()) {
        return Err(format!("status says clean = {}, diff {diff:?}", status["clean"]).into());
    }

    // All or nothing: the tree is all old with HEAD old, or all new with
    // HEAD new (the command above completed an interrupted checkout).
    let whole_commit = commits.values().any(|(_, tree)| *tree == work);
    if !whole_commit {
        tally.mixed += 1;
    }
    if !diff.is_empty() {
        tally.dirty += 1;
        if all_or_nothing {
            return Err(format!(
                "the tree is not HEAD's ({head}) after recovery: {diff:?}{}",
                if whole_commit {
                    " (it is the other commit's)"
                } else {
                    " (a mix of both)"
                }
            )
            .into());
        }
    }

    // No `.restore-tmp-` file survives recovery once the grace period is
    // over. The CLI has no setting for the grace period (15 minutes), so
    // this runs recovery through the library with a zero grace period.
    tally.temps_after_open += temps.len();
    Repository::open_with(
        root,
        Options {
            temp_grace: Duration::ZERO,
            ..setup_options()
        },
    )?
    .recover()?;
    let (_, temps) = work_files(root)?;
    if !temps.is_empty() {
        return Err(format!(
            "{} temp files in the work tree survive recovery with a zero grace period: {:?}",
            temps.len(),
            &temps[..temps.len().min(4)]
        )
        .into());
    }
    let notes = fsck_notes(root)?;
    if notes.iter().any(|k| k == "orphan_temp") {
        return Err(format!("fsck still finds temp files: {notes:?}").into());
    }

    // Back to a clean tree on HEAD for the next round. The other commit's
    // files that HEAD's does not have look untracked, and `checkout
    // --force` keeps untracked files (as git does): they go by hand.
    if !diff.is_empty() {
        for path in &diff.added {
            std::fs::remove_file(root.join(path))?;
        }
        muse_ok(root, &["checkout", "--force", &head])?;
        let (work, _) = work_files(root)?;
        if work != *head_tree {
            return Err("checkout --force did not restore HEAD's tree".into());
        }
    }
    Ok(())
}

/// A checkout killed anywhere (while staging, after its journal is
/// durable, between its renames, before HEAD moves): after one more command
/// every file is whole and the tree is all old with HEAD old or all new
/// with HEAD new (the next command completes an interrupted checkout).
#[test]
fn checkout_killed_at_random_points_leaves_whole_files_and_an_honest_status() -> TestResult {
    checkout_chaos("checkout_chaos", true)
}

// --- gc --prune=now ----------------------------------------------------------

/// A commit on a throw-away branch that is then deleted, and a few loose
/// objects: unreachable data for gc to remove. Returns the commit.
fn make_garbage(repo: &Repository, rng: &mut Rng, round: u64) -> TestResult<ObjectId> {
    let branch = name(&format!("tmp/{round}"))?;
    let mut files = Vec::new();
    for i in 0..8 {
        let len = 500 + rng.below(4_000) as usize;
        files.push((format!("g{i}.bin"), rng.bytes(len)));
    }
    let made = repo.commit_files(
        files.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
        &NewCommit::new(format!("garbage {round}")).branch(branch.clone()),
    )?;
    repo.refs().delete(&branch, Expected::Any, "chaos: drop")?;
    for _ in 0..6 {
        let len = 100 + rng.below(3_000) as usize;
        repo.objects().write(&rng.bytes(len))?;
    }
    Ok(made.commit.commit_id)
}

/// Sets the mtime of every object and record file two hours back, so that
/// `--prune=now` removes what is unreachable (reachable files are kept
/// whatever their age).
fn age_store(repo: &Repository) -> TestResult {
    let old = std::time::SystemTime::now() - Duration::from_secs(7_200);
    let layout = repo.layout();
    let mut stack = vec![
        layout.objects_dir(),
        layout.commits_dir(),
        layout.snapshots_dir(),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if !is_temp_name(&entry.file_name().to_string_lossy()) {
                std::fs::File::open(entry.path())?.set_modified(old)?;
            }
        }
    }
    Ok(())
}

/// After a (maybe killed) gc: every branch and every reflog line names a
/// commit whose history reads back whole, the acknowledged commits are on
/// main, and fsck finds no damage.
fn check_after_gc(root: &Path, acked: &[String]) -> TestResult {
    // The next command runs recovery on open.
    muse_ok(root, &["plumbing", "show-ref"])?;
    let repo = Repository::open_without_recovery(root, setup_options())?;
    let mut seen = BTreeSet::new();
    let refs = repo.refs();
    for (branch, state) in refs.branches()? {
        if let Some(tip) = state.commit() {
            check_history(&repo, tip, &mut seen).map_err(|e| format!("branch {branch}: {e}"))?;
            for entry in refs.reflog(&branch)?.entries {
                check_history(&repo, entry.new, &mut seen)
                    .map_err(|e| format!("reflog of {branch}: {e}"))?;
            }
        }
    }
    for entry in refs.head_reflog()?.entries {
        check_history(&repo, entry.new, &mut seen).map_err(|e| format!("HEAD's reflog: {e}"))?;
    }
    let main = refs.branch(&name("main")?)?.ok_or("main has no commit")?;
    let (history, _) = muse_store::walk(repo.records(), main, None, true, usize::MAX)?;
    let messages: BTreeSet<&str> = history.iter().map(|c| c.message.as_str()).collect();
    for message in acked {
        if !messages.contains(message.as_str()) {
            return Err(format!("acknowledged commit '{message}' is not on main").into());
        }
    }
    fsck_notes(root)?;
    Ok(())
}

#[test]
fn gc_prune_now_killed_at_random_points_keeps_every_branch_whole() -> TestResult {
    let test = "gc_chaos";
    let (seed, rounds) = command_chaos(test, 80)?;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let (_dir, root, repo) = chaos_repo()?;
    // History on main and on three branches that point into it.
    for i in 0..6u64 {
        let mut files = Vec::new();
        for f in 0..10 {
            let len = 200 + rng.below(5_000) as usize;
            files.push((format!("h{f}.bin"), rng.bytes(len)));
        }
        let made = repo.commit_files(
            files.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
            &NewCommit::new(format!("history {i}")),
        )?;
        if i % 2 == 1 {
            repo.refs().update(
                &name(&format!("keep/{i}"))?,
                made.commit.commit_id,
                Expected::Absent,
                "chaos: keep",
            )?;
        }
    }
    muse_ok(&root, &["checkout", "--force", "main"])?;
    let mut garbage = vec![make_garbage(&repo, &mut rng, 0)?];
    age_store(&repo)?;
    let at = Instant::now();
    muse_ok(&root, &["gc", "--prune=now"])?;
    let mut scale = at.elapsed();
    let points = [Kill::CrashAt("gc-removed-one")];
    let (mut killed, mut finished, mut acked) = (0, 0, Vec::new());
    let mut commits_beside = 0;
    for round in 1..=rounds {
        let kill = Kill::pick(&mut rng, &points, scale);
        let context = |e: Box<dyn std::error::Error>| {
            format!("{test} round {round} (seed {seed}, {kill:?}): {e}")
        };
        garbage.push(make_garbage(&repo, &mut rng, round)?);
        age_store(&repo)?;
        // One round in three, a commit races the gc (the gc lock orders
        // them; the commit is not killed and must land).
        let committer = if rng.below(3) == 0 {
            let len = 100 + rng.below(20_000) as usize;
            std::fs::write(root.join(format!("w{round}.bin")), rng.bytes(len))?;
            commits_beside += 1;
            Some(muse_in(&root, &["commit", "-m", &format!("beside gc {round}")]).spawn()?)
        } else {
            None
        };
        let outcome = run_killed(&root, &["gc", "--prune=now"], None, kill, &mut || Ok(()))?;
        if outcome.killed {
            killed += 1;
        } else if outcome.code == Some(0) {
            finished += 1;
        } else {
            return Err(context(format!("gc failed: {}", outcome.stderr).into()).into());
        }
        if let Some(child) = committer {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                return Err(context(
                    format!(
                        "the commit beside gc failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                    .into(),
                )
                .into());
            }
            acked.push(format!("beside gc {round}"));
        }
        check_after_gc(&root, &acked).map_err(context)?;
        // A gc that runs to its end afterwards finishes the job: every
        // garbage commit so far is gone, and everything else still reads.
        let at = Instant::now();
        muse_ok(&root, &["gc", "--prune=now"]).map_err(context)?;
        scale = at.elapsed();
        check_after_gc(&root, &acked).map_err(context)?;
        let repo = Repository::open_without_recovery(&root, setup_options())?;
        if let Some(left) = garbage.iter().find(|g| repo.records().contains_commit(g)) {
            return Err(
                context(format!("garbage commit {left} survived a complete gc").into()).into(),
            );
        }
    }
    println!(
        "{test}: {rounds} rounds in {:.1?} ({killed} gc runs killed, {finished} finished first; kill delays up to 1.3 x the last complete gc, {scale:.1?}); {} commits raced gc and all landed; every branch and reflog line read back whole after each kill",
        started.elapsed(),
        acked.len()
    );
    assert_eq!(
        acked.len(),
        commits_beside,
        "every racing commit was acknowledged"
    );
    Ok(())
}

// --- branch -d and branch -m ---------------------------------------------------

/// One branch command of a round.
#[derive(Debug, Clone)]
enum BranchOp {
    Delete(String),
    Rename(String, String),
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "setup, the round loop and each operation's check, in the order they run"
)]
fn branch_delete_and_rename_killed_at_random_points_keep_refs_and_reflogs_consistent() -> TestResult
{
    let test = "branch_chaos";
    let (seed, rounds) = command_chaos(test, 120)?;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let (_dir, root, repo) = chaos_repo()?;
    let mut commits = Vec::new();
    for i in 0..5u64 {
        let made = repo.commit_files([("f", format!("{i}"))], &NewCommit::new(format!("c{i}")))?;
        commits.push(made.commit.commit_id);
    }
    let mut fresh = 0u64;
    let mut model: BTreeMap<String, ObjectId> = BTreeMap::new();
    model.insert("main".into(), *commits.last().ok_or("commits")?);
    let mut head = "main".to_owned();
    // Reflog copies left by renames killed before they created the branch.
    let mut debris = BTreeSet::new();
    // How long an uninterrupted delete and rename take.
    let mut scale = Duration::ZERO;
    for args in [
        vec!["branch", "calibrate"],
        vec!["branch", "-m", "calibrate", "calibrated"],
        vec!["branch", "-d", "calibrated"],
    ] {
        let at = Instant::now();
        muse_ok(&root, &args)?;
        scale = scale.max(at.elapsed());
    }
    let points = [
        Kill::AtBarrier("ref-locked"),
        Kill::CrashAt("ref-txn-journaled"),
        Kill::CrashAt("ref-txn-first-applied"),
        Kill::CrashAt("branch-rename-reflog-copied"),
        Kill::CrashAt("branch-rename-created"),
        Kill::CrashAt("branch-rename-head-moved"),
    ];
    let (mut killed, mut finished, mut deletes, mut renames, mut head_renames) = (0, 0, 0, 0, 0);
    for round in 0..rounds {
        // Enough branches besides HEAD's, each at a commit of its own.
        while model.len() < 6 {
            fresh += 1;
            let b = format!("x{fresh}");
            let at = commits[rng.below(commits.len() as u64) as usize];
            repo.refs()
                .update(&name(&b)?, at, Expected::Absent, "chaos: create")?;
            model.insert(b, at);
        }
        // Now and then HEAD moves to another branch, so that renames of
        // HEAD's branch are killed too.
        if rng.below(4) == 0 {
            let names: Vec<&String> = model.keys().collect();
            head = (*rng.pick(&names)).clone();
            repo.refs()
                .set_head(&Head::Branch(name(&head)?), "chaos: move HEAD")?;
        }
        let names: Vec<String> = model.keys().cloned().collect();
        let op = if rng.below(2) == 0 {
            let others: Vec<&String> = names.iter().filter(|b| **b != head).collect();
            BranchOp::Delete((*rng.pick(&others)).clone())
        } else {
            fresh += 1;
            let new = if rng.below(2) == 0 {
                format!("r{fresh}")
            } else {
                format!("n{fresh}/r")
            };
            // HEAD's branch one rename in three: HEAD must follow it.
            let old = if rng.below(3) == 0 {
                head.clone()
            } else {
                rng.pick(&names).clone()
            };
            BranchOp::Rename(old, new)
        };
        let args: Vec<&str> = match &op {
            BranchOp::Delete(b) => vec!["branch", "-d", b],
            BranchOp::Rename(old, new) => vec!["branch", "-m", old, new],
        };
        let kill = Kill::pick(&mut rng, &points, scale);
        let context = |e: Box<dyn std::error::Error>| {
            format!("{test} round {round} (seed {seed}, {op:?}, HEAD on {head}, {kill:?}): {e}")
        };
        let outcome = run_killed(&root, &args, None, kill, &mut || Ok(()))?;
        if outcome.killed {
            killed += 1;
        } else if outcome.code == Some(0) {
            finished += 1;
        } else {
            return Err(context(format!("{args:?} failed: {}", outcome.stderr).into()).into());
        }
        // The next command runs recovery on open.
        muse_ok(&root, &["branch"]).map_err(context)?;
        let mut check = || -> TestResult<(BTreeMap<String, ObjectId>, String)> {
            let repo = Repository::open_without_recovery(&root, setup_options())?;
            let now = branches_and_reflogs(&repo)?;
            let value = |b: &str| now.get(b).map(|(v, _)| *v);
            // Every branch the command did not name is untouched, and no
            // other branch appeared.
            let targets: Vec<&str> = match &op {
                BranchOp::Delete(b) => vec![b],
                BranchOp::Rename(old, new) => vec![old, new],
            };
            for (b, v) in &model {
                if !targets.contains(&b.as_str()) && value(b) != Some(*v) {
                    return Err(format!("branch {b} holds {:?}, not {v}", value(b)).into());
                }
            }
            for b in now.keys() {
                if !model.contains_key(b) && !targets.contains(&b.as_str()) {
                    return Err(format!("unexpected branch {b}").into());
                }
            }
            // Each named branch exists with its old value or is gone (a
            // rename: old, both, or new; never neither).
            match &op {
                BranchOp::Delete(b) => {
                    let old = model[b];
                    if value(b).is_some_and(|v| v != old) {
                        return Err(
                            format!("{b} holds {:?}, not {old} or nothing", value(b)).into()
                        );
                    }
                }
                BranchOp::Rename(old, new) => {
                    let v = model[old];
                    match (value(old), value(new)) {
                        (Some(a), None) if a == v => {}
                        (Some(a), Some(b)) if a == v && b == v => {}
                        (None, Some(b)) if b == v => {}
                        other => {
                            return Err(format!(
                                "renaming {old} ({v}) to {new} left (old, new) = {other:?}"
                            )
                            .into());
                        }
                    }
                }
            }
            // Reflogs: every branch's last line names its value, and no
            // reflog is left for a branch that does not exist.
            for (b, (v, ends_on)) in &now {
                if *ends_on != Some(true) {
                    return Err(format!(
                        "the reflog of {b} ({v}) does not end on its value ({ends_on:?}: no line, or another value)"
                    )
                    .into());
                }
            }
            // A rename killed before it created `new` may leave the copy of
            // `old`'s reflog at `new`'s path (the documented intermediate
            // state: a retried rename replaces it); nothing else.
            for orphan in reflog_names(&repo)? {
                if now.contains_key(&orphan) || debris.contains(&orphan) {
                    continue;
                }
                let copy_of = match &op {
                    BranchOp::Rename(old, new) if *new == orphan => Some(model[old]),
                    _ => None,
                };
                let last = repo
                    .refs()
                    .reflog(&name(&orphan)?)?
                    .entries
                    .last()
                    .map(|e| e.new);
                if copy_of.is_none() || last != copy_of {
                    return Err(format!(
                        "a reflog for {orphan}, which does not exist (last line {last:?})"
                    )
                    .into());
                }
                debris.insert(orphan);
            }
            // HEAD names an existing branch: the one it was on, or the new
            // name of the branch it was on.
            let Head::Branch(at) = repo.refs().head()? else {
                return Err("HEAD is detached".into());
            };
            let at = at.to_string();
            let allowed = match &op {
                BranchOp::Rename(old, new) if *old == head => vec![old.clone(), new.clone()],
                _ => vec![head.clone()],
            };
            if !allowed.contains(&at) || !now.contains_key(&at) {
                return Err(
                    format!("HEAD is on {at}; expected one of {allowed:?}, existing").into(),
                );
            }
            let notes = fsck_notes(&root)?;
            if notes.iter().any(|k| k == "reflog_gap") {
                return Err(format!("fsck finds a reflog gap: {notes:?}").into());
            }
            Ok((now.into_iter().map(|(b, (v, _))| (b, v)).collect(), at))
        };
        let (now, at) = check().map_err(context)?;
        match &op {
            BranchOp::Delete(_) => deletes += 1,
            BranchOp::Rename(old, _) => {
                renames += 1;
                if *old == head {
                    head_renames += 1;
                }
            }
        }
        model = now;
        head = at;
    }
    println!(
        "{test}: {rounds} rounds in {:.1?} ({deletes} deletes, {renames} renames of which {head_renames} of HEAD's branch; {killed} killed, {finished} finished first; kill delays up to 1.3 x {scale:.1?}): refs, HEAD and reflogs consistent after every kill; {} renames killed before creating the new name left a copy of the reflog there",
        started.elapsed(),
        debris.len()
    );
    Ok(())
}

// --- two-ref transactions read concurrently --------------------------------------

/// What the reader processes saw.
#[derive(Debug, Default)]
struct ReaderTally {
    reads: u64,
    /// Reads that saw `p` and `q` apart: half a transaction.
    half: Vec<String>,
    /// Readers that failed (exit code and stderr).
    failures: Vec<String>,
}

/// Sets its flag when dropped.
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `p` and `q` in one `show-ref` or `for-each-ref` listing.
fn listed_pair(out: &str) -> TestResult<(Option<String>, Option<String>)> {
    let value: serde_json::Value = serde_json::from_str(out)?;
    let rows = value["refs"].as_array().ok_or("no refs array")?;
    let get = |b: &str| {
        rows.iter()
            .find(|r| r["ref"].as_str() == Some(&format!("refs/heads/{b}")))
            .and_then(|r| r["commit_id"].as_str().map(str::to_owned))
    };
    Ok((get("p"), get("q")))
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "the readers, the writer rounds and the checks after each kill, in the order they run"
)]
fn two_ref_transactions_killed_while_processes_read_are_never_seen_half_applied() -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let test = "transaction_chaos";
    let (seed, rounds) = command_chaos(test, 150)?;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let (_dir, root, repo) = chaos_repo()?;
    let mut commits = Vec::new();
    for i in 0..4u64 {
        let made = repo.commit_files([("f", format!("{i}"))], &NewCommit::new(format!("c{i}")))?;
        commits.push(made.commit.commit_id);
    }
    let mut current = commits[0];
    for b in ["p", "q"] {
        repo.refs()
            .update(&name(b)?, current, Expected::Absent, "chaos: start")?;
    }
    let known: BTreeSet<String> = commits.iter().map(ObjectId::to_hex).collect();

    // Reader processes, one `show-ref` and one `for-each-ref` at a time,
    // for as long as the writer rounds run.
    let done = Arc::new(AtomicBool::new(false));
    // The readers stop however the test ends.
    let _stop = StopOnDrop(done.clone());
    let reads = Arc::new(AtomicU64::new(0));
    // Readers recover on open too: while the test checks the state after
    // recovery they pause, so that no reader is half-way through its own
    // roll-forward when the test reads the ref files.
    let paused = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(ReaderTally::default()));
    let readers: Vec<_> = [
        ["plumbing", "show-ref", "-f", "json"],
        ["plumbing", "for-each-ref", "-f", "json"],
    ]
    .into_iter()
    .map(|args| {
        let (root, done, reads, tally) = (root.clone(), done.clone(), reads.clone(), tally.clone());
        let (paused, active, known) = (paused.clone(), active.clone(), known.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                active.fetch_add(1, Ordering::SeqCst);
                if paused.load(Ordering::SeqCst) {
                    active.fetch_sub(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let listing = muse_run(&root, &args).map_err(|e| e.to_string()).and_then(
                    |(code, out, err)| {
                        if code != 0 {
                            return Err(format!("{args:?} exited {code}: {err}"));
                        }
                        listed_pair(&out).map_err(|e| format!("{args:?}: {e}: {out}"))
                    },
                );
                let mut tally = tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match listing {
                    Ok((p, q)) => {
                        tally.reads += 1;
                        let whole =
                            p.is_some() && p == q && p.as_ref().is_some_and(|v| known.contains(v));
                        if !whole {
                            tally.half.push(format!("{args:?}: p = {p:?}, q = {q:?}"));
                        }
                    }
                    Err(e) => tally.failures.push(e),
                }
                drop(tally);
                reads.fetch_add(1, Ordering::Relaxed);
                active.fetch_sub(1, Ordering::SeqCst);
            }
        })
    })
    .collect();

    let transaction =
        |old: ObjectId, new: ObjectId| format!("update p {new} {old}\nupdate q {new} {old}\n");
    let args = ["plumbing", "update-ref", "--stdin"];
    let at = Instant::now();
    let next = commits[1];
    muse_ok_with_input(&root, &args, &transaction(current, next))?;
    current = next;
    let scale = at.elapsed();
    let points = [
        Kill::CrashAt("ref-txn-journaled"),
        Kill::CrashAt("ref-txn-first-applied"),
        Kill::AtBarrier("ref-txn-first-applied"),
        Kill::AtBarrier("ref-locked"),
    ];
    let (mut killed, mut finished, mut moved, mut held_reads) = (0, 0, 0, 0);
    for round in 0..rounds {
        let others: Vec<ObjectId> = commits.iter().copied().filter(|c| *c != current).collect();
        let new = *rng.pick(&others);
        let kill = Kill::pick(&mut rng, &points, scale);
        let old = current;
        let context = |e: Box<dyn std::error::Error>| {
            format!("{test} round {round} (seed {seed}, {old} -> {new}, {kill:?}): {e}")
        };
        // Frozen half-applied at a barrier, it stays so until readers have
        // listed the refs a few times (bounded: the machine may be slow).
        let mut linger = || -> TestResult {
            let from = reads.load(Ordering::Relaxed);
            let until = Instant::now() + Duration::from_secs(3);
            while reads.load(Ordering::Relaxed) < from + 4 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            held_reads += reads.load(Ordering::Relaxed) - from;
            Ok(())
        };
        let outcome = run_killed(
            &root,
            &args,
            Some(&transaction(current, new)),
            kill,
            &mut linger,
        )?;
        if outcome.killed {
            killed += 1;
        } else if outcome.code == Some(0) {
            finished += 1;
        } else {
            return Err(
                context(format!("the transaction failed: {}", outcome.stderr).into()).into(),
            );
        }
        // The next command runs recovery on open: both refs old, or both
        // new, in the listing and in the files themselves.
        paused.store(true, Ordering::SeqCst);
        while active.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (p, q) = listed_pair(&muse_ok(&root, &["plumbing", "show-ref", "-f", "json"])?)
            .map_err(context)?;
        let check = || -> TestResult<ObjectId> {
            let repo = Repository::open_without_recovery(&root, setup_options())?;
            let refs = repo.refs();
            let (fp, fq) = (refs.branch(&name("p")?)?, refs.branch(&name("q")?)?);
            let listed = (p.clone(), q.clone());
            if fp != fq || listed != (fp.map(|v| v.to_hex()), fq.map(|v| v.to_hex())) {
                return Err(format!(
                    "after recovery p and q differ: files ({fp:?}, {fq:?}), listed {listed:?}"
                )
                .into());
            }
            let value = fp.ok_or("p is gone")?;
            if value != old && value != new {
                return Err(format!("p and q hold {value}: neither old nor new").into());
            }
            let now = branches_and_reflogs(&repo)?;
            for b in ["p", "q"] {
                if now.get(b).map(|(_, ends)| *ends) != Some(Some(true)) {
                    return Err(format!("the reflog of {b} does not end on its value").into());
                }
            }
            // (A temp file of a journal write that was killed stays until
            // the grace period is over: it is no journal.)
            let journals: Vec<String> = std::fs::read_dir(repo.layout().transactions_dir())
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| !is_temp_name(n))
                .collect();
            if !journals.is_empty() {
                return Err(format!("transaction journals survived recovery: {journals:?}").into());
            }
            let notes = fsck_notes(&root)?;
            if notes.iter().any(|k| k == "reflog_gap") {
                return Err(format!("fsck finds a reflog gap: {notes:?}").into());
            }
            Ok(value)
        };
        let value = check().map_err(context)?;
        if value == new {
            moved += 1;
        }
        {
            let tally = tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(half) = tally.half.first() {
                return Err(
                    context(format!("a reader saw half a transaction: {half}").into()).into(),
                );
            }
            if let Some(failure) = tally.failures.first() {
                return Err(context(format!("a reader failed: {failure}").into()).into());
            }
        }
        current = value;
        paused.store(false, Ordering::SeqCst);
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().map_err(|_| "reader panicked")?;
    }
    let tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!(
        "{test}: {rounds} rounds in {:.1?} ({killed} killed, {finished} finished first, {moved} moved both refs; kill delays up to 1.3 x {scale:.1?}); {} reader processes listed the refs ({held_reads} while a writer was frozen half-applied): {} saw half a transaction, {} failed",
        started.elapsed(),
        tally.reads,
        tally.half.len(),
        tally.failures.len()
    );
    assert!(
        tally.half.is_empty(),
        "readers saw half a transaction: {:?}",
        tally.half
    );
    assert!(
        tally.failures.is_empty(),
        "readers failed: {:?}",
        tally.failures
    );
    Ok(())
}

/// `muse <args>` in `dir` with `input` on stdin, which must exit 0.
fn muse_ok_with_input(dir: &Path, args: &[&str], input: &str) -> TestResult<String> {
    let mut child = muse_in(dir, args).stdin(Stdio::piped()).spawn()?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "muse {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
