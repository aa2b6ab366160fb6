//! Refs: compare-and-swap across processes and threads, transactions and
//! their recovery, names, locks, and reading a Muse-written repository.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use muse_store::testing::{FaultFs, OpKind};
use muse_store::{
    BranchName, Durability, Error, Expected, Head, ObjectId, Options, RefState, Repository,
};
use muse_store::{FileLock, LockOwner};

use crate::support::{TestResult, fixture, leftovers, muse, muse_env};

fn id(n: u64) -> ObjectId {
    ObjectId::hash(&n.to_le_bytes())
}

fn branch(name: &str) -> BranchName {
    BranchName::new(name).expect("test branch names are valid")
}

fn scratch() -> TestResult<(tempfile::TempDir, Repository)> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(
        dir.path(),
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )?;
    Ok((dir, repo))
}

/// Environment variable that turns this test binary into a CAS worker.
const WORKER_ENV: &str = "MUSE_TEST_CAS_WORKER";

/// The child side of `eight_processes_racing_cas_lose_no_update`: when run
/// with `MUSE_TEST_CAS_WORKER=<repo>:<worker>:<rounds>` it advances `main`
/// by compare-and-swap and prints how many of its updates won. Without the
/// variable it is not a worker and returns at once.
#[test]
#[ignore = "run only as a child process by eight_processes_racing_cas_lose_no_update"]
fn cas_worker() -> TestResult {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return Ok(());
    };
    let mut parts = spec.rsplitn(3, ':');
    let rounds: u64 = parts.next().ok_or("rounds")?.parse()?;
    let worker: u64 = parts.next().ok_or("worker")?.parse()?;
    let repo = Repository::open(parts.next().ok_or("repo")?)?;
    let refs = repo.refs().with_lock_timeout(Duration::from_secs(60));
    let main = branch("main");
    let mut wins = 0;
    for round in 0..rounds {
        let current = refs.branch(&main)?;
        let expected = current.map_or(Expected::Absent, Expected::Value);
        let new = id(worker * 1_000_000 + round);
        match refs.update(
            &main,
            new,
            expected,
            &format!("worker {worker} round {round}"),
        ) {
            Ok(_) => wins += 1,
            Err(Error::CasMismatch { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!("WINS {wins}");
    Ok(())
}

#[test]
fn eight_processes_racing_cas_lose_no_update() -> TestResult {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path())?;
    let exe = std::env::current_exe()?;
    let rounds = 200;
    let children: Vec<_> = (0..8)
        .map(|w| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "refs::cas_worker",
                    "--include-ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ENV, format!("{}:{w}:{rounds}", dir.path().display()))
                .stdout(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut total_wins = 0u64;
    for child in children {
        let out = child.wait_with_output()?;
        assert!(out.status.success(), "worker failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let wins: u64 = text
            .split("WINS ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| format!("worker printed no WINS count: {text}"))?
            .parse()?;
        total_wins += wins;
    }
    let log = repo.refs().reflog(&branch("main"))?;
    assert!(
        log.malformed.is_empty() && !log.torn_tail,
        "reflog must be clean"
    );
    assert_eq!(
        log.entries.len() as u64,
        total_wins,
        "one reflog line per successful CAS"
    );
    assert!(
        total_wins >= 8,
        "every worker should win at least its first tries: {total_wins}"
    );
    let mut previous = ObjectId::ZERO;
    for (i, entry) in log.entries.iter().enumerate() {
        assert_eq!(
            entry.old, previous,
            "reflog line {i} does not continue the chain"
        );
        previous = entry.new;
    }
    assert_eq!(
        repo.refs().branch(&branch("main"))?,
        Some(previous),
        "branch is the chain's end"
    );
    let head_log = repo.refs().head_reflog()?;
    assert_eq!(
        head_log.entries.len() as u64,
        total_wins,
        "HEAD follows main"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    Ok(())
}

#[test]
fn fifty_threads_switching_head_always_see_a_whole_value() -> TestResult {
    let (dir, repo) = scratch()?;
    let names: Vec<_> = (0..5).map(|i| branch(&format!("b{i}"))).collect();
    for (i, b) in names.iter().enumerate() {
        repo.refs()
            .update(b, id(i as u64), Expected::Absent, "setup")?;
    }
    let valid: Vec<String> = names
        .iter()
        .map(|b| Head::Branch(b.clone()).to_file_content())
        .collect();
    let head_path = repo.layout().head();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, head_path, valid) = (stop.clone(), head_path.clone(), valid.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&head_path).map_err(|e| e.to_string())?;
                if text != "ref: refs/heads/main\n" && !valid.contains(&text) {
                    return Err(format!("torn or foreign HEAD: {text:?}"));
                }
                reads += 1;
            }
            Ok(reads)
        })
    };
    std::thread::scope(|s| {
        for t in 0..50 {
            let (repo, names) = (&repo, &names);
            s.spawn(move || {
                for k in 0..10 {
                    let target = &names[(t + k) % names.len()];
                    repo.refs()
                        .set_head(&Head::Branch(target.clone()), "checkout")
                        .expect("set_head under contention");
                }
            });
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().map_err(|_| "reader panicked")??;
    assert!(reads > 0, "the reader must have observed HEAD");
    let text = std::fs::read_to_string(&head_path)?;
    assert!(valid.contains(&text), "final HEAD {text:?}");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    Ok(())
}

#[test]
fn transaction_with_one_failing_expectation_changes_nothing() -> TestResult {
    let (dir, repo) = scratch()?;
    let refs = repo.refs();
    refs.update(&branch("a"), id(1), Expected::Absent, "setup")?;
    refs.update(&branch("b"), id(2), Expected::Absent, "setup")?;
    let mut tx = refs.transaction("multi");
    tx.update(branch("a"), id(10), Expected::Value(id(1)))
        .update(branch("b"), id(20), Expected::Value(id(99)))
        .create(branch("c"), id(30));
    let err = tx.commit().expect_err("b's expectation fails");
    assert!(
        matches!(err, Error::CasMismatch(ref c) if c.branch == "b"),
        "{err}"
    );
    assert_eq!(refs.branch(&branch("a"))?, Some(id(1)), "a unchanged");
    assert_eq!(refs.branch(&branch("b"))?, Some(id(2)), "b unchanged");
    assert_eq!(
        refs.branch_state(&branch("c"))?,
        RefState::Missing,
        "c not created"
    );
    assert_eq!(
        refs.reflog(&branch("a"))?.entries.len(),
        1,
        "no reflog line added"
    );
    assert!(leftovers(dir.path()).is_empty());

    let mut tx = refs.transaction("ok");
    tx.update(branch("a"), id(10), Expected::Value(id(1)))
        .delete(branch("b"), Expected::Value(id(2)))
        .create(branch("c/d"), id(30))
        .verify(branch("a2"), Expected::Absent);
    let changes = tx.commit()?;
    assert_eq!(changes.len(), 3);
    assert_eq!(refs.branch(&branch("a"))?, Some(id(10)));
    assert_eq!(refs.branch_state(&branch("b"))?, RefState::Missing);
    assert_eq!(refs.branch(&branch("c/d"))?, Some(id(30)));
    assert!(!repo.layout().transactions_dir().join("x").exists());
    let journals = std::fs::read_dir(repo.layout().transactions_dir())?.count();
    assert_eq!(journals, 0, "journal removed after commit");
    Ok(())
}

#[test]
fn injected_failure_mid_transaction_is_undone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fault = FaultFs::new();
    let repo = Repository::init_with(
        dir.path(),
        Options {
            durability: Durability::Full,
            vfs: Arc::new(fault.clone()),
            ..Options::default()
        },
    )?;
    let refs = repo.refs();
    refs.update(&branch("a"), id(1), Expected::Absent, "setup")?;
    refs.update(&branch("b"), id(2), Expected::Absent, "setup")?;
    // Renames: journal (0), ref a (1), ref b (2) -> fail b.
    fault.fail_nth(OpKind::Rename, 2, libc::EIO);
    let mut tx = refs.transaction("multi");
    tx.update(branch("a"), id(10), Expected::Value(id(1)))
        .update(branch("b"), id(20), Expected::Value(id(2)));
    let err = tx.commit().expect_err("rename of b fails");
    assert!(
        err.to_string().contains("rename"),
        "error names the step: {err}"
    );
    assert_eq!(refs.branch(&branch("a"))?, Some(id(1)), "a rolled back");
    assert_eq!(refs.branch(&branch("b"))?, Some(id(2)), "b untouched");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    assert_eq!(
        std::fs::read_dir(repo.layout().transactions_dir())?.count(),
        0,
        "journal gone"
    );
    // The refs are usable again at once.
    refs.update(&branch("a"), id(11), Expected::Value(id(1)), "after")?;
    Ok(())
}

#[test]
fn failure_at_each_step_of_a_ref_write_leaves_old_value_and_no_temp() -> TestResult {
    for (kind, nth) in [
        (OpKind::Create, 0),
        (OpKind::Write, 0),
        (OpKind::SyncFile, 0),
        (OpKind::Rename, 0),
    ] {
        let dir = tempfile::tempdir()?;
        let fault = FaultFs::new();
        let repo = Repository::init_with(
            dir.path(),
            Options {
                durability: Durability::Full,
                vfs: Arc::new(fault.clone()),
                ..Options::default()
            },
        )?;
        let refs = repo.refs();
        refs.update(&branch("main"), id(1), Expected::Any, "setup")?;
        // Lock files are not repository state and do not go through the
        // seam: the first create and write are the ref's temp file.
        fault.fail_nth(kind, nth, libc::EIO);
        let err = refs
            .update(&branch("main"), id(2), Expected::Value(id(1)), "x")
            .expect_err("injected failure");
        assert!(
            err.to_string().contains("main"),
            "{kind:?}: error names the ref: {err}"
        );
        assert_eq!(
            refs.branch(&branch("main"))?,
            Some(id(1)),
            "{kind:?}: old value kept"
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "{kind:?}: {:?}",
            leftovers(dir.path())
        );
        assert_eq!(
            refs.reflog(&branch("main"))?.entries.len(),
            1,
            "{kind:?}: no reflog line"
        );
    }
    Ok(())
}

#[test]
fn transaction_killed_after_its_journal_is_completed_on_next_open() -> TestResult {
    for crash_at in ["ref-txn-journaled", "ref-txn-first-applied"] {
        let dir = tempfile::tempdir()?;
        let repo = Repository::init(dir.path())?;
        let refs = repo.refs();
        refs.update(&branch("a"), id(1), Expected::Absent, "setup")?;
        refs.update(&branch("b"), id(2), Expected::Absent, "setup")?;
        let script = format!(
            "update a {} {}\nupdate b {} {}\ncreate c {}\n",
            id(10),
            id(1),
            id(20),
            id(2),
            id(30)
        );
        let (code, _, err) = muse_env(
            dir.path(),
            &["plumbing", "update-ref", "--stdin", "--no-verify"],
            &[("MUSE_CRASH_AT", crash_at)],
            Some(&script),
        )?;
        assert_ne!(code, 0, "{crash_at}: the child must have died: {err}");
        assert_eq!(
            std::fs::read_dir(dir.path().join(".muse/ref-transactions"))?.count(),
            1,
            "{crash_at}: the journal survives the crash"
        );
        // Opening the repository recovers: every ref moves, none is half-done.
        let repo = Repository::open(dir.path())?;
        let refs = repo.refs();
        assert_eq!(refs.branch(&branch("a"))?, Some(id(10)), "{crash_at}: a");
        assert_eq!(refs.branch(&branch("b"))?, Some(id(20)), "{crash_at}: b");
        assert_eq!(refs.branch(&branch("c"))?, Some(id(30)), "{crash_at}: c");
        for (b, n) in [("a", 2), ("b", 2), ("c", 1)] {
            assert_eq!(
                refs.reflog(&branch(b))?.entries.len(),
                n,
                "{crash_at}: reflog of {b}"
            );
        }
        assert_eq!(
            std::fs::read_dir(repo.layout().transactions_dir())?.count(),
            0
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "{crash_at}: {:?}",
            leftovers(dir.path())
        );
    }
    Ok(())
}

/// Runs `flock -o <path> sleep 60` (util-linux): a process holding the lock
/// at `path`, until killed. `None` when the tool is missing.
fn hold_lock_in_child(path: &Path) -> TestResult<Option<std::process::Child>> {
    std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    // -o: the lock stays with flock itself, not with the command it runs.
    let child = match std::process::Command::new("flock")
        .arg("-o")
        .arg(path)
        .args(["sleep", "60"])
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping: the flock tool (util-linux) is not installed");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    // Wait until it holds the lock.
    for _ in 0..500 {
        if FileLock::is_held(path)? {
            return Ok(Some(child));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err("the flock child never took the lock".into())
}

#[test]
fn a_live_holder_blocks_with_a_named_error_and_a_dead_one_releases_its_lock() -> TestResult {
    let (_dir, repo) = scratch()?;
    let refs = repo.refs().with_lock_timeout(Duration::from_millis(200));
    let lock_path = repo.layout().ref_lock(&branch("main"));
    let Some(mut holder) = hold_lock_in_child(&lock_path)? else {
        return Ok(());
    };
    let err = refs
        .update(&branch("main"), id(1), Expected::Any, "blocked")
        .expect_err("a live holder blocks");
    let text = err.to_string();
    assert!(
        text.contains(&lock_path.display().to_string()),
        "names the lock file: {text}"
    );
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(err.is_user_error(), "exit 1: busy, not damaged");
    assert_eq!(refs.branch(&branch("main"))?, None, "nothing changed");
    // SIGKILL: the kernel releases the lock; its file stays behind.
    holder.kill()?;
    holder.wait()?;
    assert!(lock_path.exists(), "a killed holder leaves its file");
    assert!(!FileLock::is_held(&lock_path)?, "but no lock");
    refs.update(
        &branch("main"),
        id(1),
        Expected::Any,
        "after the holder died",
    )?;
    assert_eq!(refs.branch(&branch("main"))?, Some(id(1)));
    assert!(!lock_path.exists(), "released: the file is gone");
    Ok(())
}

#[test]
fn a_lock_file_of_an_older_version_is_recovered_when_its_owner_is_dead() -> TestResult {
    let (dir, repo) = scratch()?;
    let legacy = repo.layout().heads_dir().join("main.lock");
    let mut child = std::process::Command::new("true").spawn()?;
    let dead_pid = child.id();
    child.wait()?;
    let dead = LockOwner {
        pid: dead_pid,
        host: muse_store::testing::host_name(),
        created_at: "2026-01-01T00:00:00+00:00".into(),
        nonce: "n".into(),
        intent: None,
    };
    write_lock(&legacy, &dead)?;
    let live = LockOwner {
        pid: std::process::id(),
        ..dead.clone()
    };
    let live_path = repo.layout().heads_dir().join("dev.lock");
    write_lock(&live_path, &live)?;
    // A branch named like a lock file is a branch: never removed.
    let branch_file = repo.layout().heads_dir().join("topic.lock");
    std::fs::write(&branch_file, id(3).to_hex())?;
    let repo = Repository::open_with(dir.path(), repo.options().clone())?;
    assert!(
        !legacy.exists(),
        "a dead owner's old-format lock is removed on open"
    );
    assert!(live_path.exists(), "a live owner's is kept");
    assert_eq!(
        repo.refs()
            .branch(&muse_store::BranchName::from_stored("topic.lock")?)?,
        Some(id(3)),
        "the branch topic.lock is untouched"
    );
    Ok(())
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test plants a lock file by hand"
)]
fn write_lock(path: &Path, owner: &LockOwner) -> TestResult {
    std::fs::write(path, serde_json::to_vec(owner)?)?;
    Ok(())
}

#[test]
fn bad_names_and_ids_are_refused_and_change_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (code, _, _) = muse(dir.path(), &["init"])?;
    assert_eq!(code, 0);
    let good = id(1).to_string();
    let before = snapshot_of(dir.path())?;
    // Names unsafe as paths (the reference refuses all but the last, whose
    // '.' component this project refuses too).
    for name in [
        "../escape",
        "a..b",
        "/x",
        "x/",
        "a//b",
        ".hidden",
        "a\\b",
        "a/./b",
    ] {
        let (code, out, err) = muse(dir.path(), &["plumbing", "update-ref", "-n", name, &good])?;
        assert_eq!(code, 1, "{name}: exit 1");
        let shown = muse_store::python_repr(name);
        assert!(
            err.contains("Invalid branch name: Branch name") && err.contains(&shown),
            "{name}: {err}"
        );
        let v: serde_json::Value = serde_json::from_str(&out)?;
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(&shown)),
            "{out}"
        );
        let (code, out, _) = muse(dir.path(), &["plumbing", "check-ref-format", name])?;
        assert_eq!(code, 1, "{name}: check-ref-format exit 1");
        assert!(out.contains("\"valid\": false"), "{name}: {out}");
    }
    for bad in ["z".repeat(64), "abc123".to_owned(), good.to_uppercase()] {
        let (code, _, err) = muse(dir.path(), &["plumbing", "update-ref", "-n", "main", &bad])?;
        assert_eq!(code, 1, "{bad}: exit 1");
        assert!(
            err.contains("Invalid commit ID") && err.contains(&bad),
            "{bad}: {err}"
        );
        let (code, _, err) = muse(
            dir.path(),
            &[
                "plumbing",
                "update-ref",
                "-n",
                "main",
                &good,
                "--old-value",
                &bad,
            ],
        )?;
        assert_eq!(code, 1, "{bad} as old value: exit 1: {err}");
    }
    assert_eq!(before, snapshot_of(dir.path())?, "nothing changed on disk");
    Ok(())
}

/// Every file under `.muse/` with its content, sorted.
fn snapshot_of(dir: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.join(".muse")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.display().to_string(), std::fs::read(&path)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn cli_compare_and_swap_reports_cas_mismatch_as_json() -> TestResult {
    let dir = tempfile::tempdir()?;
    muse(dir.path(), &["init"])?;
    let (a, b) = (id(1).to_string(), id(2).to_string());
    let (code, out, _) = muse(
        dir.path(),
        &["plumbing", "update-ref", "-n", "main", &a, "--create"],
    )?;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["branch"], "main");
    assert_eq!(v["commit_id"], a.as_str());
    assert!(v["previous"].is_null());
    let (code, _, err) = muse(
        dir.path(),
        &[
            "plumbing",
            "update-ref",
            "-n",
            "main",
            &b,
            "--old-value",
            &b,
        ],
    )?;
    assert_eq!(code, 1);
    // The JSON error object on stdout, a line on stderr.
    assert!(err.contains("cas_mismatch"), "{err}");
    let (code, out, _) = muse(
        dir.path(),
        &[
            "plumbing",
            "update-ref",
            "-n",
            "main",
            &b,
            "--old-value",
            &b,
        ],
    )?;
    assert_eq!(code, 1);
    let e: serde_json::Value = serde_json::from_str(out.trim())?;
    assert_eq!(e["error"], "cas_mismatch");
    assert_eq!(e["expected"], b.as_str());
    assert_eq!(e["actual"], a.as_str());
    let (code, out, _) = muse(
        dir.path(),
        &["plumbing", "update-ref", "-n", "main", &b, "-o", &a],
    )?;
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = muse(dir.path(), &["plumbing", "rev-parse", "main", "-f", "text"])?;
    assert_eq!((code, out.trim()), (0, b.as_str()));
    Ok(())
}

#[test]
fn muse_written_fixture_refs_and_reflog_read_back() -> TestResult {
    let (_tmp, root) = fixture("muse-merge-conflict")?;
    let repo = Repository::open(&root)?;
    let refs = repo.refs();
    assert_eq!(refs.head()?, Head::Branch(branch("main")));
    let main =
        ObjectId::from_hex("4a3002d6a8d310fdd03473b7a97775e25d955fba4f0ea0cab8cb185ec698002e")?;
    let feat =
        ObjectId::from_hex("07ffd2ae399a014c9fdd4b04a0f48d2a1a8ab362bef18ac5e9eba3051d725798")?;
    assert_eq!(refs.branch(&branch("main"))?, Some(main));
    assert_eq!(refs.branch(&branch("feat/x"))?, Some(feat));
    let names: Vec<_> = refs
        .branches()?
        .into_iter()
        .map(|(b, _)| b.to_string())
        .collect();
    assert_eq!(names, ["feat/x", "main"]);
    let head_log = refs.head_reflog()?;
    assert_eq!(
        head_log.entries.len(),
        5,
        "the fixture's HEAD reflog has five lines"
    );
    assert_eq!(head_log.entries[0].old, ObjectId::ZERO);
    assert_eq!(
        head_log.entries[1].operation,
        "checkout: moving from main to feat/x"
    );
    assert_eq!(head_log.entries[4].new, main);
    assert_eq!(refs.reflog(&branch("main"))?.entries.len(), 3);
    assert_eq!(
        refs.reflog(&branch("feat/x"))?.entries.len(),
        2,
        "checkout + commit"
    );
    // A CAS update on top of it keeps the chain going.
    let next = id(7);
    refs.update(&branch("main"), next, Expected::Value(main), "test")?;
    let log = refs.reflog(&branch("main"))?;
    assert_eq!(
        log.entries.last().map(|e| (e.old, e.new)),
        Some((main, next))
    );
    Ok(())
}

/// A journal left by a dead process must not be replayed over a later,
/// acknowledged update made by a writer that took over the dead lock before
/// any open recovered the journal.
#[test]
fn a_writer_finishes_a_dead_transaction_before_building_on_its_refs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path())?;
    let refs = repo.refs();
    refs.update(&branch("a"), id(1), Expected::Absent, "setup")?;
    refs.update(&branch("b"), id(2), Expected::Absent, "setup")?;
    let script = format!(
        "update a {} {}\nupdate b {} {}\n",
        id(10),
        id(1),
        id(20),
        id(2)
    );
    let (code, _, _) = muse_env(
        dir.path(),
        &["plumbing", "update-ref", "--stdin", "--no-verify"],
        &[("MUSE_CRASH_AT", "ref-txn-first-applied")],
        Some(&script),
    )?;
    assert_ne!(code, 0, "the child must have died");
    // A writer that opened the repository without recovering reads `b` in
    // the half-applied state (a moved, b not yet) and tries to move it from
    // there. Taking b's lock it finds the dead transaction's journal and
    // finishes it first, so its compare-and-swap, based on a state no
    // reader may see, is refused rather than applied over half a
    // transaction.
    let live = Repository::open_without_recovery(dir.path(), Options::default())?;
    let current = live.refs().branch(&branch("b"))?;
    assert_eq!(
        current,
        Some(id(2)),
        "b was not yet moved by the dead transaction"
    );
    let err = live
        .refs()
        .update(
            &branch("b"),
            id(99),
            current.map_or(Expected::Absent, Expected::Value),
            "later",
        )
        .expect_err("the update was based on a half-applied transaction");
    assert!(
        matches!(&err, Error::CasMismatch(c) if c.actual == Some(id(20))),
        "{err}"
    );
    let repo = Repository::open(dir.path())?;
    assert_eq!(
        repo.refs().branch(&branch("a"))?,
        Some(id(10)),
        "rolled forward"
    );
    assert_eq!(
        repo.refs().branch(&branch("b"))?,
        Some(id(20)),
        "rolled forward"
    );
    // A later update from the finished state goes through and is kept.
    repo.refs()
        .update(&branch("b"), id(99), Expected::Value(id(20)), "later")?;
    let repo = Repository::open(dir.path())?;
    assert_eq!(
        repo.refs().branch(&branch("b"))?,
        Some(id(99)),
        "the later update survives the next open"
    );
    Ok(())
}

#[test]
fn a_single_ref_update_killed_before_its_reflog_line_gets_it_on_the_next_open() -> TestResult {
    let (dir, repo) = scratch()?;
    repo.refs()
        .update(&branch("main"), id(1), Expected::Any, "setup")?;
    let (code, _, _) = muse_env(
        dir.path(),
        &["plumbing", "update-ref", "-n", "main", &id(2).to_hex()],
        &[("MUSE_CRASH_AT", "ref-txn-first-applied")],
        None,
    )?;
    assert_ne!(
        code, 0,
        "the child must have died between the ref write and its reflog line"
    );
    let moved = Repository::open_without_recovery(dir.path(), repo.options().clone())?;
    assert_eq!(
        moved.refs().branch(&branch("main"))?,
        Some(id(2)),
        "the ref write landed"
    );
    assert_eq!(
        moved
            .refs()
            .reflog(&branch("main"))?
            .entries
            .last()
            .map(|e| e.new),
        Some(id(1)),
        "and its reflog line did not"
    );
    let report = muse_store::fsck(&moved, &muse_store::NoProgress)?;
    assert_eq!(
        report.of_kind(muse_store::ProblemKind::ReflogGap).count(),
        1,
        "fsck reports the gap: {:?}",
        report.problems
    );
    let repo = Repository::open_with(dir.path(), repo.options().clone())?;
    for log in [
        repo.refs().reflog(&branch("main"))?,
        repo.refs().head_reflog()?,
    ] {
        let last = log.entries.last().ok_or("empty reflog")?;
        assert_eq!(
            (last.old, last.new),
            (id(1), id(2)),
            "recovery added the line"
        );
    }
    let report = muse_store::fsck(&repo, &muse_store::NoProgress)?;
    assert_eq!(
        report.of_kind(muse_store::ProblemKind::ReflogGap).count(),
        0
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    Ok(())
}

#[test]
fn a_failed_fsync_of_a_reflog_append_leaves_neither_the_ref_nor_its_reflog_changed() -> TestResult {
    // The sync calls of an update of the branch HEAD is on: the ref's temp
    // file (0), the branch's reflog (1), HEAD's reflog (2).
    for nth in [1, 2] {
        let dir = tempfile::tempdir()?;
        let fault = FaultFs::new();
        let repo = Repository::init_with(
            dir.path(),
            Options {
                durability: Durability::Full,
                vfs: Arc::new(fault.clone()),
                ..Options::default()
            },
        )?;
        let refs = repo.refs();
        refs.update(&branch("main"), id(1), Expected::Any, "setup")?;
        let before = (
            refs.reflog(&branch("main"))?.entries,
            refs.head_reflog()?.entries,
        );
        fault.fail_nth(OpKind::SyncFile, nth, libc::EIO);
        let err = refs
            .update(&branch("main"), id(2), Expected::Value(id(1)), "x")
            .expect_err("injected fsync failure");
        assert!(err.to_string().contains("fsync"), "#{nth}: {err}");
        assert_eq!(
            refs.branch(&branch("main"))?,
            Some(id(1)),
            "#{nth}: ref restored"
        );
        let after = (
            refs.reflog(&branch("main"))?.entries,
            refs.head_reflog()?.entries,
        );
        assert_eq!(after, before, "#{nth}: no reflog line stays");
        assert!(
            leftovers(dir.path()).is_empty(),
            "#{nth}: {:?}",
            leftovers(dir.path())
        );
    }
    Ok(())
}
