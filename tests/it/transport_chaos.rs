//! SIGKILL chaos for transport (issue 14): `muse clone`, `muse fetch` and
//! `muse push` at full durability, killed at a random moment or stopped at
//! one of their crash points and barriers, round after round on the same
//! repositories (debris of every earlier kill stays for the next round to
//! meet). After each round:
//!
//! - clone: the destination is absent, or a whole clone (every branch and
//!   tracking pointer at the remote's value, fsck clean, the default
//!   branch's files checked out); a complete clone into the same place then
//!   succeeds and removes the dead clone's temp directory;
//! - fetch: every tracking pointer holds its old value or the remote's,
//!   and names a history that reads back whole; fsck is clean; the next
//!   open leaves no quarantine; a complete fetch then brings every pointer
//!   to the remote's value;
//! - push: the remote's branch holds its old value or the pushed one, both
//!   repositories fsck clean and keep no quarantine after the next open; a
//!   retried push then succeeds, and the remote's reflog has exactly one
//!   `push` entry per move, never two for one push.
//!
//! `MUSE_CHAOS_SEED` replays the operations and kill points (the exact kill
//! instant still depends on timing); `MUSE_CHAOS_ROUNDS` sets the rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use muse_store::{BranchName, NewCommit, ObjectId, Options, Repository};

use crate::TestResult;
use crate::chaos::{
    Kill, Outcome, Rng, check_history, command_chaos, fsck_notes, muse_ok, run_killed, work_files,
};

/// One transport command of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Clone,
    Fetch,
    Push,
}

/// Kills and completions per operation.
#[derive(Debug, Default)]
struct Tally {
    rounds: u64,
    killed: u64,
    finished: u64,
    /// Killed runs after which the other repository had already moved
    /// (clone present, pointer or remote branch at the new value).
    landed_before_kill: u64,
}

fn branch(text: &str) -> TestResult<BranchName> {
    Ok(BranchName::new(text)?)
}

fn inspect(root: &Path) -> TestResult<Repository> {
    Ok(Repository::open_without_recovery(root, Options::default())?)
}

/// Every branch of the repository at `root` with its commit.
fn branches(root: &Path) -> TestResult<BTreeMap<String, ObjectId>> {
    let repo = inspect(root)?;
    Ok(repo
        .refs()
        .branches()?
        .into_iter()
        .filter_map(|(name, state)| state.commit().map(|c| (name.to_string(), c)))
        .collect())
}

/// The `origin/<branch>` pointers of the repository at `root`, for the
/// remote's `names`.
fn tracking(root: &Path, names: &BTreeSet<String>) -> TestResult<BTreeMap<String, ObjectId>> {
    let repo = inspect(root)?;
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(id) = repo.refs().remote_tracking("origin", &branch(name)?)? {
            out.insert(name.clone(), id);
        }
    }
    Ok(out)
}

/// Opens the repository (recovery runs) and checks that no quarantine or
/// clone debris is left in it.
fn no_quarantine_after_open(root: &Path) -> TestResult {
    drop(Repository::open_with(root, Options::default())?);
    let q = root.join(".muse/quarantine");
    let left: Vec<PathBuf> = match std::fs::read_dir(&q) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    if !left.is_empty() {
        return Err(format!("quarantine left after the next open: {left:?}").into());
    }
    Ok(())
}

fn push_entries(root: &Path) -> TestResult<usize> {
    let repo = inspect(root)?;
    Ok(repo
        .refs()
        .reflog(&branch("main")?)?
        .entries
        .iter()
        .filter(|e| e.operation == "push")
        .count())
}

/// The directories in `base` whose names start with `prefix`.
fn named(base: &Path, prefix: &str) -> TestResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(base)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// A commit in the repository at `root` that rewrites a few of its files
/// and adds one, through the CLI (durable, as a user makes it).
fn commit_some(root: &Path, rng: &mut Rng, label: &str) -> TestResult {
    for _ in 0..3 {
        let len = 100 + rng.below(6_000) as usize;
        std::fs::write(root.join(format!("f{}.bin", rng.below(20))), rng.bytes(len))?;
    }
    std::fs::write(root.join(format!("{label}.txt")), label)?;
    muse_ok(root, &["commit", "-m", label])?;
    Ok(())
}

/// The remote: twenty files over four commits on main, a second branch,
/// and pushes to its checked-out branch allowed.
fn remote(base: &Path, rng: &mut Rng) -> TestResult<PathBuf> {
    let root = base.join("remote");
    let repo = Repository::init_with(&root, Options::default())?;
    for i in 0..4 {
        let files: Vec<(String, Vec<u8>)> = (0..20)
            .map(|f| {
                let len = 100 + rng.below(6_000) as usize;
                (format!("f{f}.bin"), rng.bytes(len))
            })
            .collect();
        repo.commit_files(
            files.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
            &NewCommit::new(format!("history {i}")),
        )?;
    }
    repo.refs().create_branch_at_head(&branch("side")?)?;
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(repo.layout().config())?;
    std::io::Write::write_all(
        &mut config,
        b"\n[receive]\ndenyCurrentBranch = \"ignore\"\n",
    )?;
    Ok(root)
}

/// Moves every `.muse-tmp-cloning-*` directory's mtime two minutes back,
/// past the grace a live clone is given to lock it.
fn age_unlocked_clone_dirs(base: &Path) -> TestResult {
    for dir in named(base, ".muse-tmp-cloning-")? {
        let old = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::open(&dir)?.set_modified(old)?;
    }
    Ok(())
}

/// A whole clone at `dest` of a remote whose branches are `remote`, with
/// HEAD on `main` whose files are checked out.
fn check_whole_clone(dest: &Path, remote: &BTreeMap<String, ObjectId>) -> TestResult {
    let got = branches(dest)?;
    if &got != remote {
        return Err(format!("clone's branches {got:?}, the remote's {remote:?}").into());
    }
    let names: BTreeSet<String> = remote.keys().cloned().collect();
    let pointers = tracking(dest, &names)?;
    if &pointers != remote {
        return Err(format!("clone's tracking pointers {pointers:?}, remote {remote:?}").into());
    }
    fsck_notes(dest)?;
    let repo = inspect(dest)?;
    let head = repo
        .refs()
        .head_commit()?
        .ok_or("the clone's HEAD is unborn")?;
    let record = repo.records().read_commit(&head)?;
    let manifest: BTreeMap<String, ObjectId> = repo
        .records()
        .read_snapshot(&record.snapshot_id)?
        .manifest
        .into_iter()
        .collect();
    let (files, temps) = work_files(dest)?;
    if files != manifest || !temps.is_empty() {
        return Err(format!(
            "the clone's working tree is not its HEAD's files: {} files, {} in HEAD, temps {temps:?}",
            files.len(),
            manifest.len()
        )
        .into());
    }
    Ok(())
}

fn ended(outcome: &Outcome, what: &str) -> TestResult<bool> {
    if outcome.killed {
        return Ok(true);
    }
    if outcome.code != Some(0) {
        return Err(format!("{what} failed on its own: {}", outcome.stderr).into());
    }
    Ok(false)
}

/// The kill points of each operation: crash points in the transport, and
/// barriers where it waits with the quarantine full or the batch staged.
fn points(op: Op) -> &'static [Kill] {
    match op {
        Op::Clone => &[
            Kill::CrashAt("clone-fetched"),
            Kill::CrashAt("clone-prepared"),
            Kill::AtBarrier("unpack-before-publish"),
            Kill::AtBarrier("batch-before-publish"),
        ],
        Op::Fetch => &[
            Kill::CrashAt("fetch-pointer-moved"),
            Kill::AtBarrier("unpack-before-publish"),
            Kill::AtBarrier("batch-before-publish"),
        ],
        Op::Push => &[
            Kill::CrashAt("push-remote-moved"),
            Kill::CrashAt("push-pointer-moved"),
            Kill::AtBarrier("unpack-before-publish"),
            Kill::AtBarrier("batch-before-publish"),
        ],
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "setup, then each operation's round and its checks, in the order they run"
)]
fn clone_fetch_and_push_killed_at_random_points_lose_nothing_and_leave_nothing() -> TestResult {
    let test = "transport_chaos";
    let (seed, rounds) = command_chaos(test, 90)?;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir()?;
    let base = dir.path();
    let remote_root = remote(base, &mut rng)?;
    let url = remote_root.display().to_string();
    let mut scale: BTreeMap<Op, Duration> = BTreeMap::new();
    let at = Instant::now();
    muse_ok(base, &["clone", &url, "a"])?;
    scale.insert(Op::Clone, at.elapsed());
    muse_ok(base, &["clone", &url, "b"])?;
    let (a, b) = (base.join("a"), base.join("b"));
    let mut pushes = 0usize;
    let mut tally: BTreeMap<Op, Tally> = BTreeMap::new();
    for round in 1..=rounds {
        let op = *rng.pick(&[Op::Clone, Op::Fetch, Op::Push]);
        let kill = Kill::pick(
            &mut rng,
            points(op),
            scale.get(&op).copied().unwrap_or(Duration::from_millis(50)),
        );
        let context = |e: Box<dyn std::error::Error>| {
            format!("{test} round {round} (seed {seed}, {op:?}, {kill:?}): {e}")
        };
        let t = tally.entry(op).or_default();
        t.rounds += 1;
        let killed = match op {
            Op::Clone => {
                let name = format!("c{round}");
                let dest = base.join(&name);
                let theirs = branches(&remote_root)?;
                let outcome =
                    run_killed(base, &["clone", &url, &name], None, kill, &mut || Ok(()))?;
                let killed = ended(&outcome, "clone").map_err(context)?;
                if dest.exists() {
                    if killed {
                        t.landed_before_kill += 1;
                    }
                    check_whole_clone(&dest, &theirs).map_err(context)?;
                    std::fs::remove_dir_all(&dest)?;
                }
                // A complete clone into the same place succeeds and clears
                // what the dead one left (an unlocked directory it never
                // locked only once it is old).
                age_unlocked_clone_dirs(base)?;
                let at = Instant::now();
                muse_ok(base, &["clone", &url, &name]).map_err(context)?;
                scale.insert(Op::Clone, at.elapsed());
                check_whole_clone(&dest, &theirs).map_err(context)?;
                let debris = [
                    named(base, &format!(".muse-tmp-clone-{name}-"))?,
                    named(base, ".muse-tmp-cloning-")?,
                ]
                .concat();
                if !debris.is_empty() {
                    return Err(context(
                        format!("a dead clone's temp directories survived: {debris:?}").into(),
                    )
                    .into());
                }
                std::fs::remove_dir_all(&dest)?;
                killed
            }
            Op::Fetch => {
                // Someone else moves the remote: b pulls, commits, pushes
                // main, and one round in three a new branch.
                muse_ok(&b, &["pull"])?;
                commit_some(&b, &mut rng, &format!("b{round}"))?;
                muse_ok(&b, &["push", "origin", "main"])?;
                pushes += 1;
                if rng.below(3) == 0 {
                    let new = format!("n{round}");
                    muse_ok(&b, &["branch", &new])?;
                    muse_ok(&b, &["push", "origin", &new])?;
                }
                let theirs = branches(&remote_root)?;
                let names: BTreeSet<String> = theirs.keys().cloned().collect();
                let before = tracking(&a, &names)?;
                let outcome = run_killed(&a, &["fetch"], None, kill, &mut || Ok(()))?;
                let killed = ended(&outcome, "fetch").map_err(context)?;
                let after = tracking(&a, &names)?;
                let repo = inspect(&a)?;
                let mut read_back = BTreeSet::new();
                for name in &names {
                    let (old, new, now) = (before.get(name), theirs.get(name), after.get(name));
                    if now != old && now != new {
                        return Err(context(
                            format!("origin/{name} is {now:?}: neither {old:?} nor {new:?}").into(),
                        )
                        .into());
                    }
                    if let Some(tip) = now {
                        check_history(&repo, *tip, &mut read_back).map_err(context)?;
                    }
                }
                if killed && after != before {
                    t.landed_before_kill += 1;
                }
                fsck_notes(&a).map_err(context)?;
                no_quarantine_after_open(&a).map_err(context)?;
                let at = Instant::now();
                muse_ok(&a, &["fetch"]).map_err(context)?;
                scale.insert(Op::Fetch, at.elapsed());
                let settled = tracking(&a, &names)?;
                if settled != theirs {
                    return Err(context(
                        format!("after a complete fetch: {settled:?}, remote {theirs:?}").into(),
                    )
                    .into());
                }
                killed
            }
            Op::Push => {
                muse_ok(&a, &["pull"])?;
                commit_some(&a, &mut rng, &format!("a{round}"))?;
                let new = branches(&a)?["main"];
                let old = branches(&remote_root)?["main"];
                let outcome =
                    run_killed(&a, &["push", "origin", "main"], None, kill, &mut || Ok(()))?;
                let killed = ended(&outcome, "push").map_err(context)?;
                let now = branches(&remote_root)?["main"];
                if now != old && now != new {
                    return Err(context(
                        format!("the remote's main is {now}: neither {old} nor {new}").into(),
                    )
                    .into());
                }
                if !killed && now != new {
                    return Err(context("a push that succeeded did not move main".into()).into());
                }
                if killed && now == new {
                    t.landed_before_kill += 1;
                }
                let pointer = tracking(&a, &BTreeSet::from(["main".to_owned()]))?;
                if pointer.get("main").is_some_and(|p| *p != old && *p != new) {
                    return Err(context(
                        format!("origin/main is {pointer:?}: neither {old} nor {new}").into(),
                    )
                    .into());
                }
                check_history(&inspect(&remote_root)?, now, &mut BTreeSet::new())
                    .map_err(context)?;
                fsck_notes(&remote_root).map_err(context)?;
                fsck_notes(&a).map_err(context)?;
                no_quarantine_after_open(&remote_root).map_err(context)?;
                no_quarantine_after_open(&a).map_err(context)?;
                let at = Instant::now();
                muse_ok(&a, &["push", "origin", "main"]).map_err(context)?;
                scale.insert(Op::Push, at.elapsed());
                pushes += 1;
                let settled = branches(&remote_root)?["main"];
                let pointer = tracking(&a, &BTreeSet::from(["main".to_owned()]))?;
                if settled != new || pointer.get("main") != Some(&new) {
                    return Err(context(
                        format!(
                            "after the retried push: remote main {settled}, origin/main {pointer:?}, pushed {new}"
                        )
                        .into(),
                    )
                    .into());
                }
                killed
            }
        };
        if killed {
            t.killed += 1;
        } else {
            t.finished += 1;
        }
        let entries = push_entries(&remote_root)?;
        if entries != pushes {
            return Err(context(
                format!("the remote's reflog has {entries} push entries for {pushes} pushes")
                    .into(),
            )
            .into());
        }
    }
    fsck_notes(&remote_root)?;
    fsck_notes(&a)?;
    fsck_notes(&b)?;
    let summary: Vec<String> = tally
        .iter()
        .map(|(op, t)| {
            format!(
                "{op:?}: {} rounds, {} killed ({} after the other side had moved), {} finished first",
                t.rounds, t.killed, t.landed_before_kill, t.finished
            )
        })
        .collect();
    println!(
        "{test}: {rounds} rounds in {:.1?}; {}; {pushes} pushes, one reflog entry each; kill delays up to 1.3 x the last complete run of each command",
        started.elapsed(),
        summary.join("; ")
    );
    Ok(())
}
