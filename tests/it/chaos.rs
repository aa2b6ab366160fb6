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
    BranchName, Expected, Head, MergeState, ObjectId, OpEntry, OpLog, Repository, Reservation,
    SessionId, is_temp_name,
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
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
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
