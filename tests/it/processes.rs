//! Many real processes on one repository (issue 11): each race is driven
//! once deterministically, through a failpoint barrier that stops one
//! process inside its critical window while another acts, and then as a
//! randomised stress run whose seed is printed (`MUSE_PROCESSES_SEED`
//! replays it; `MUSE_PROCESSES_ROUNDS` scales it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use muse_store::{BranchName, Durability, Head, NewCommit, ObjectId, Options, Repository};

use crate::{TestResult, temp_files};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_muse")
}

/// `muse <args>` in `dir`, with `env`, not waited for.
fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Child> {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .args(args)
        .env("MUSE_DURABILITY", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
}

/// Waits for `child`: (exit code, stdout, stderr); a signal is 128 + it.
fn finish(child: Child) -> std::io::Result<(i32, String, String)> {
    use std::os::unix::process::ExitStatusExt;
    let out = child.wait_with_output()?;
    let code = out
        .status
        .code()
        .or_else(|| out.status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    Ok((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `muse <args>` in `dir`, waited for.
fn run(dir: &Path, args: &[&str]) -> TestResult<(i32, String, String)> {
    Ok(finish(spawn(dir, args, &[])?)?)
}

fn ok(dir: &Path, args: &[&str]) -> TestResult<String> {
    let (code, out, err) = run(dir, args)?;
    assert_eq!(code, 0, "muse {args:?}: {err}");
    Ok(out)
}

/// A barrier spec stopping one process at `point` until the test adds a
/// second marker to `dir`.
fn barrier_spec(point: &str, dir: &Path) -> String {
    format!("{point}:{}:2", dir.display())
}

/// Waits until a process has arrived at the barrier in `dir`.
fn wait_arrival(dir: &Path) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::fs::read_dir(dir)?.count() >= 1 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("nobody reached the barrier in {}", dir.display()).into())
}

/// Lets the process waiting at the barrier in `dir` go on.
fn release(dir: &Path) -> TestResult {
    std::fs::write(dir.join("release"), b"")?;
    Ok(())
}

fn signal(child: &Child, name: &str) -> TestResult {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()?;
    assert!(status.success(), "kill -{name}");
    Ok(())
}

/// The seed of a stress run (printed) and its number of rounds.
fn seed_and_rounds(test: &str, default_rounds: usize) -> (u64, usize) {
    let seed = std::env::var("MUSE_PROCESSES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let rounds = std::env::var("MUSE_PROCESSES_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_rounds);
    eprintln!("{test}: seed {seed} (MUSE_PROCESSES_SEED), {rounds} rounds");
    (seed, rounds)
}

/// A small deterministic generator (splitmix64) for jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn scratch() -> TestResult<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("repo");
    Repository::init_with(
        &root,
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )?;
    Ok((dir, root))
}

fn open(root: &Path) -> TestResult<Repository> {
    Ok(Repository::open_with(
        root,
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )?)
}

fn branch(name: &str) -> BranchName {
    BranchName::new(name).expect("test branch names are valid")
}

/// Every temp file this project writes, anywhere under `root`.
fn temps(root: &Path) -> TestResult<Vec<PathBuf>> {
    temp_files(root)
}

#[test]
fn an_interrupted_commit_leaves_no_temp_file() -> TestResult {
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let (_dir, root) = scratch()?;
        for i in 0..300 {
            std::fs::write(
                root.join(format!("f{i:03}.txt")),
                vec![b'a' + (i % 26) as u8; 8_000 + i],
            )?;
        }
        // Two files large enough for the streaming path.
        std::fs::write(root.join("big1.bin"), vec![1u8; 3 << 20])?;
        std::fs::write(root.join("big2.bin"), vec![2u8; 3 << 20])?;
        let gate = tempfile::tempdir()?;
        let spec = barrier_spec("batch-before-publish", gate.path());
        let child = spawn(
            &root,
            &["commit", "-m", "big"],
            &[("MUSE_TEST_BARRIER", &spec)],
        )?;
        wait_arrival(gate.path())?;
        let staged = temps(&root)?;
        assert!(
            staged.len() >= 300,
            "SIG{sig}: the commit is stopped with its temp files written ({} found)",
            staged.len()
        );
        signal(&child, sig)?;
        let (exit, _, err) = finish(child)?;
        assert_eq!(
            exit, code,
            "SIG{sig}: the exit code says which signal: {err}"
        );
        let left = temps(&root)?;
        assert!(
            left.is_empty(),
            "SIG{sig}: temp files left: {:?}",
            &left[..left.len().min(5)]
        );
        let repo = open(&root)?;
        assert_eq!(
            repo.refs().head_commit()?,
            None,
            "SIG{sig}: nothing was committed"
        );
        let report = muse_store::fsck(&repo, &muse_store::NoProgress)?;
        assert_eq!(
            report.of_kind(muse_store::ProblemKind::OrphanTemp).count(),
            0,
            "SIG{sig}: fsck finds no temp file"
        );
    }
    Ok(())
}

/// Two branches whose trees tell them apart: `a` has `side.txt` = "a" and
/// `only-a.txt`, `b` has `side.txt` = "b" and `only-b.txt`.
fn two_branches(root: &Path) -> TestResult<Repository> {
    let repo = open(root)?;
    let base = repo
        .commit_files(
            [("side.txt", "a"), ("only-a.txt", "a")],
            &NewCommit::new("a").branch(branch("a")),
        )?
        .commit
        .commit_id;
    repo.commit_files(
        [("side.txt", "b"), ("only-b.txt", "b")],
        &NewCommit::new("b").branch(branch("b")),
    )?;
    let _ = base;
    repo.refs()
        .set_head(&Head::Branch(branch("a")), "start on a")?;
    ok(root, &["checkout", "--force", "a"])?;
    Ok(repo)
}

/// Fails when a commit on the history of `name` records the other branch's
/// files.
fn assert_branch_pure(repo: &Repository, name: &str, other: &str) -> TestResult<usize> {
    let Some(tip) = repo.refs().branch(&branch(name))? else {
        return Ok(0);
    };
    let (commits, _) = muse_store::walk(repo.records(), tip, None, true, usize::MAX)?;
    for commit in &commits {
        let tree = repo.records().tree_of(Some(commit.commit_id))?;
        let side = tree.get("side.txt").copied();
        assert_eq!(
            side,
            Some(ObjectId::hash(name.as_bytes())),
            "commit {} on {name} records side.txt of another branch",
            commit.commit_id
        );
        assert!(
            !tree.contains_key(&format!("only-{other}.txt")),
            "commit {} on {name} records only-{other}.txt",
            commit.commit_id
        );
    }
    Ok(commits.len())
}

#[test]
fn a_commit_and_a_branch_switch_exclude_each_other() -> TestResult {
    // Deterministic: the commit is stopped just before its compare-and-swap
    // (holding the working-tree lock); a checkout started then waits.
    let (_dir, root) = scratch()?;
    let repo = two_branches(&root)?;
    std::fs::write(root.join("new.txt"), b"new")?;
    let gate = tempfile::tempdir()?;
    let spec = barrier_spec("commit-before-cas", gate.path());
    let commit = spawn(
        &root,
        &["commit", "-m", "on a"],
        &[("MUSE_TEST_BARRIER", &spec)],
    )?;
    wait_arrival(gate.path())?;
    let mut checkout = spawn(&root, &["checkout", "b"], &[])?;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        checkout.try_wait()?.is_none(),
        "the checkout waits for the commit's working-tree lock"
    );
    release(gate.path())?;
    let (code, _, err) = finish(commit)?;
    assert_eq!(code, 0, "commit: {err}");
    let (code, _, err) = finish(checkout)?;
    assert_eq!(code, 0, "checkout: {err}");
    assert_branch_pure(&repo, "a", "b")?;
    assert_eq!(repo.refs().head()?, Head::Branch(branch("b")));
    let tip = repo.refs().branch(&branch("a"))?.ok_or("a has a tip")?;
    assert!(
        repo.records().tree_of(Some(tip))?.contains_key("new.txt"),
        "the commit landed on a"
    );
    Ok(())
}

#[test]
fn committers_beside_a_branch_switcher_never_record_another_branchs_files() -> TestResult {
    let (seed, rounds) = seed_and_rounds("committers_beside_a_branch_switcher", 12);
    let (_dir, root) = scratch()?;
    let repo = two_branches(&root)?;
    let switcher = {
        let root = root.clone();
        std::thread::spawn(move || -> Result<usize, String> {
            let mut rng = Rng(seed);
            let mut switches = 0;
            for i in 0..rounds * 2 {
                let target = if i % 2 == 0 { "b" } else { "a" };
                let (code, _, err) =
                    run(&root, &["checkout", target]).map_err(|e| e.to_string())?;
                if code == 0 {
                    switches += 1;
                } else if !err.contains("uncommitted") && !err.contains("locked") {
                    return Err(format!("checkout {target}: {err}"));
                }
                std::thread::sleep(Duration::from_millis(rng.below(15)));
            }
            Ok(switches)
        })
    };
    let committers: Vec<_> = (0..2)
        .map(|c| {
            let root = root.clone();
            std::thread::spawn(move || -> Result<usize, String> {
                let mut rng = Rng(seed ^ (c + 1));
                let mut made = 0;
                for n in 0..rounds {
                    let file = root.join(format!("c{c}-{n}.txt"));
                    std::fs::write(&file, format!("{c} {n}")).map_err(|e| e.to_string())?;
                    let (code, _, err) = run(&root, &["commit", "-m", &format!("c{c} n{n}")])
                        .map_err(|e| e.to_string())?;
                    match code {
                        0 => made += 1,
                        1 if err.contains("nothing to commit")
                            || err.contains("conflict")
                            || err.contains("locked") => {}
                        _ => return Err(format!("commit: exit {code}: {err}")),
                    }
                    std::thread::sleep(Duration::from_millis(rng.below(10)));
                }
                Ok(made)
            })
        })
        .collect();
    let checkouts = switcher.join().map_err(|_| "switcher panicked")??;
    let mut made = 0;
    for c in committers {
        made += c.join().map_err(|_| "committer panicked")??;
    }
    let on_a = assert_branch_pure(&repo, "a", "b")?;
    let on_b = assert_branch_pure(&repo, "b", "a")?;
    eprintln!(
        "committers_beside_a_branch_switcher: {made} commits acknowledged, {checkouts} switches, {} on a and {} on b beyond their roots: 0 recorded another branch's files",
        on_a - 1,
        on_b - 1
    );
    assert_eq!(
        on_a + on_b - 2,
        made,
        "every acknowledged commit is on a or b"
    );
    Ok(())
}

/// Every commit of the reflog of `name` reads back with all its objects.
fn assert_all_readable(repo: &Repository, name: &str) -> TestResult<usize> {
    let log = repo.refs().reflog(&branch(name))?;
    for entry in &log.entries {
        let tree = repo.records().tree_of(Some(entry.new))?;
        for id in tree.values() {
            repo.objects().verify(id)?;
        }
    }
    Ok(log.entries.len())
}

#[test]
fn gc_waits_for_a_commit_in_flight_and_removes_nothing_it_names() -> TestResult {
    let (_dir, root) = scratch()?;
    std::fs::write(root.join("small.txt"), b"small")?;
    std::fs::write(root.join("large.bin"), vec![7u8; 2 << 20])?;
    let gate = tempfile::tempdir()?;
    let spec = barrier_spec("batch-before-publish", gate.path());
    let commit = spawn(
        &root,
        &["commit", "-m", "in flight"],
        &[("MUSE_TEST_BARRIER", &spec)],
    )?;
    wait_arrival(gate.path())?;
    let mut gc = spawn(&root, &["gc", "--prune=now"], &[])?;
    std::thread::sleep(Duration::from_millis(300));
    assert!(gc.try_wait()?.is_none(), "gc waits for the writer");
    release(gate.path())?;
    let (code, _, err) = finish(commit)?;
    assert_eq!(code, 0, "commit: {err}");
    let (code, _, err) = finish(gc)?;
    assert_eq!(code, 0, "gc: {err}");
    let repo = open(&root)?;
    assert_eq!(assert_all_readable(&repo, "main")?, 1);
    let report = muse_store::fsck(&repo, &muse_store::NoProgress)?;
    assert!(report.is_healthy(), "{:?}", report.problems);
    Ok(())
}

#[test]
fn committers_beside_gc_prune_now_lose_nothing() -> TestResult {
    let (seed, rounds) = seed_and_rounds("committers_beside_gc", 25);
    let (_dir, root) = scratch()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(usize, usize), String> {
            let (mut ran, mut busy) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (code, _, err) =
                    run(&root, &["gc", "--prune=now"]).map_err(|e| e.to_string())?;
                match code {
                    0 => ran += 1,
                    1 if err.contains("locked") => busy += 1,
                    _ => return Err(format!("gc: exit {code}: {err}")),
                }
            }
            Ok((ran, busy))
        })
    };
    let committers: Vec<_> = (0..2)
        .map(|c| {
            let root = root.clone();
            std::thread::spawn(move || -> Result<usize, String> {
                let mut rng = Rng(seed ^ (c + 7));
                let mut made = 0;
                for n in 0..rounds {
                    // Each committer has its own branch and work tree copy
                    // through the library: commit_files needs no checkout.
                    let repo = open(&root).map_err(|e| e.to_string())?;
                    let big = vec![(n % 251) as u8; if rng.below(3) == 0 { 2 << 20 } else { 3000 }];
                    let spec = NewCommit::new(format!("c{c} {n}")).branch(branch(&format!("w{c}")));
                    match repo.commit_files(
                        [
                            (format!("f{n}.bin"), big),
                            (format!("s{n}"), format!("{c}{n}").into_bytes()),
                        ],
                        &spec,
                    ) {
                        Ok(_) => made += 1,
                        Err(muse_store::Error::Locked { .. }) => {}
                        Err(e) => return Err(format!("commit: {e}")),
                    }
                    // Gaps in which gc gets its turn.
                    std::thread::sleep(Duration::from_millis(5 + rng.below(25)));
                }
                Ok(made)
            })
        })
        .collect();
    let mut made = 0;
    for c in committers {
        made += c.join().map_err(|_| "committer panicked")??;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ran, busy) = gc.join().map_err(|_| "gc panicked")??;
    let repo = open(&root)?;
    let mut logged = 0;
    for c in 0..2 {
        logged += assert_all_readable(&repo, &format!("w{c}"))?;
    }
    let report = muse_store::fsck(&repo, &muse_store::NoProgress)?;
    assert!(report.is_healthy(), "{:?}", report.problems);
    eprintln!(
        "committers_beside_gc: {made} commits, {ran} gc runs ({busy} found writers busy): every commit reads back with all objects"
    );
    assert_eq!(logged, made, "every acknowledged commit is in a reflog");
    assert!(ran > 1, "gc ran between the commits ({ran} runs)");
    Ok(())
}

#[test]
fn branch_delete_waits_for_a_checkout_and_then_refuses_the_branch_under_head() -> TestResult {
    let (_dir, root) = scratch()?;
    let repo = two_branches(&root)?;
    let gate = tempfile::tempdir()?;
    let spec = barrier_spec("checkout-before-head", gate.path());
    let checkout = spawn(&root, &["checkout", "b"], &[("MUSE_TEST_BARRIER", &spec)])?;
    wait_arrival(gate.path())?;
    let mut delete = spawn(&root, &["branch", "-d", "b"], &[])?;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        delete.try_wait()?.is_none(),
        "the delete waits for the checkout"
    );
    release(gate.path())?;
    assert_eq!(finish(checkout)?.0, 0);
    let (code, _, err) = finish(delete)?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HEAD is on it"), "{err}");
    assert!(repo.refs().branch(&branch("b"))?.is_some(), "b is kept");
    Ok(())
}

#[test]
fn branch_delete_racing_checkout_and_commit_never_orphans_head() -> TestResult {
    let (seed, rounds) = seed_and_rounds("branch_delete_racing_checkout", 15);
    let (_dir, root) = scratch()?;
    let repo = open(&root)?;
    let root_commit = repo
        .commit_files([("f", "0")], &NewCommit::new("root"))?
        .commit
        .commit_id;
    ok(&root, &["checkout", "--force", "main"])?;
    let mut rng = Rng(seed);
    let (mut deleted, mut refused) = (0, 0);
    for round in 0..rounds {
        ok(&root, &["checkout", "main"])?;
        ok(&root, &["branch", "t"])?;
        // Either side may start first.
        let (delete_after, checkout_after) = (rng.below(12), rng.below(12));
        let switcher = {
            let root = root.clone();
            std::thread::spawn(move || -> Result<(), String> {
                std::thread::sleep(Duration::from_millis(checkout_after));
                let (code, _, err) = run(&root, &["checkout", "t"]).map_err(|e| e.to_string())?;
                if code != 0 && !err.contains("not found") && !err.contains("unknown") {
                    return Err(format!("checkout t: {err}"));
                }
                std::fs::write(root.join(format!("r{round}.txt")), b"x")
                    .map_err(|e| e.to_string())?;
                let _ = run(&root, &["commit", "-m", &format!("round {round}")]);
                Ok(())
            })
        };
        std::thread::sleep(Duration::from_millis(delete_after));
        let (code, _, err) = run(&root, &["branch", "-d", "t"])?;
        match code {
            0 => deleted += 1,
            1 if err.contains("HEAD is on it") => refused += 1,
            _ => return Err(format!("branch -d: exit {code}: {err}").into()),
        }
        switcher.join().map_err(|_| "switcher panicked")??;
        let repo = open(&root)?;
        if let Head::Branch(b) = repo.refs().head()?
            && b.as_str() == "t"
        {
            let tip = repo
                .refs()
                .branch(&b)?
                .ok_or("HEAD names a deleted branch")?;
            let (commits, _) = muse_store::walk(repo.records(), tip, None, true, usize::MAX)?;
            let roots: Vec<_> = commits
                .iter()
                .filter(|c| c.parent_commit_id.is_none())
                .collect();
            assert_eq!(roots.len(), 1, "round {round}: one root commit");
            assert_eq!(
                roots[0].commit_id, root_commit,
                "round {round}: no new root on t"
            );
            // Back to a clean start: t goes away.
            ok(&root, &["checkout", "--force", "main"])?;
            ok(&root, &["branch", "-d", "t"])?;
        }
        for entry in std::fs::read_dir(&root)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "txt") {
                std::fs::remove_file(path)?;
            }
        }
    }
    eprintln!(
        "branch_delete_racing_checkout: {deleted} deletes won, {refused} refused (HEAD on t); HEAD never named a deleted branch"
    );
    Ok(())
}

#[test]
fn readers_never_see_half_of_a_two_ref_transaction() -> TestResult {
    let (_dir, root) = scratch()?;
    let repo = open(&root)?;
    let c1 = repo
        .commit_files([("f", "1")], &NewCommit::new("c1"))?
        .commit
        .commit_id;
    let c2 = repo
        .commit_files([("f", "2")], &NewCommit::new("c2"))?
        .commit
        .commit_id;
    for name in ["a", "b"] {
        repo.refs()
            .update(&branch(name), c1, muse_store::Expected::Absent, "start")?;
    }
    let both = |repo: &Repository| -> TestResult<(Option<ObjectId>, Option<ObjectId>)> {
        let list = repo.refs().branches()?;
        let get = |n: &str| {
            list.iter()
                .find(|(b, _)| b.as_str() == n)
                .and_then(|(_, s)| s.commit())
        };
        Ok((get("a"), get("b")))
    };
    // Deterministic: the writer stops after moving `a` and before `b`.
    let gate = tempfile::tempdir()?;
    let spec = barrier_spec("ref-txn-first-applied", gate.path());
    let mut writer = {
        let mut cmd = Command::new(bin());
        cmd.current_dir(&root)
            .args(["plumbing", "update-ref", "--stdin"])
            .env("MUSE_DURABILITY", "none")
            .env("MUSE_TEST_BARRIER", &spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()?
    };
    {
        use std::io::Write;
        let mut stdin = writer.stdin.take().ok_or("stdin")?;
        writeln!(stdin, "update a {c2} {c1}\nupdate b {c2} {c1}")?;
    }
    wait_arrival(gate.path())?;
    let on_disk_a = repo.refs().branch_state(&branch("a"))?;
    let on_disk_b = repo.refs().branch_state(&branch("b"))?;
    assert_ne!(
        on_disk_a, on_disk_b,
        "the files are half-applied at the barrier"
    );
    assert_eq!(
        both(&repo)?,
        (Some(c2), Some(c2)),
        "a listing shows all of it"
    );
    let (code, out, err) = run(&root, &["plumbing", "show-ref", "-f", "text"])?;
    assert_eq!(code, 0, "{err}");
    let shown: BTreeSet<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        shown,
        BTreeSet::from([c2.to_hex().as_str()]),
        "show-ref too: {out}"
    );
    release(gate.path())?;
    let (code, _, err) = finish(writer)?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn readers_listing_refs_beside_two_ref_transactions_see_none_half_applied() -> TestResult {
    let (_dir, root) = scratch()?;
    let repo = open(&root)?;
    let c1 = repo
        .commit_files([("f", "1")], &NewCommit::new("c1"))?
        .commit
        .commit_id;
    let c2 = repo
        .commit_files([("f", "2")], &NewCommit::new("c2"))?
        .commit
        .commit_id;
    for name in ["a", "b"] {
        repo.refs()
            .update(&branch(name), c2, muse_store::Expected::Absent, "start")?;
    }
    // A writer process flips both refs back and forth while two threads
    // list them.
    let (_, rounds) = seed_and_rounds("readers_beside_transactions", 150);
    let flipper = {
        let root = root.clone();
        std::thread::spawn(move || -> Result<usize, String> {
            let mut cur = c2;
            for _ in 0..rounds {
                let next = if cur == c1 { c2 } else { c1 };
                let mut child = Command::new(bin())
                    .current_dir(&root)
                    .args(["plumbing", "update-ref", "--stdin"])
                    .env("MUSE_DURABILITY", "none")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| e.to_string())?;
                {
                    use std::io::Write;
                    let mut stdin = child.stdin.take().ok_or("stdin")?;
                    writeln!(stdin, "update a {next} {cur}\nupdate b {next} {cur}")
                        .map_err(|e| e.to_string())?;
                }
                let out = child.wait_with_output().map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(String::from_utf8_lossy(&out.stderr).into_owned());
                }
                cur = next;
            }
            Ok(rounds)
        })
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (root, done) = (root.clone(), done.clone());
            std::thread::spawn(move || -> Result<(usize, usize), String> {
                let repo = open(&root).map_err(|e| e.to_string())?;
                let (mut reads, mut half) = (0, 0);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let list = repo.refs().branches().map_err(|e| e.to_string())?;
                    let get = |n: &str| list.iter().find(|(b, _)| b.as_str() == n).map(|(_, s)| *s);
                    if get("a") != get("b") {
                        half += 1;
                    }
                    reads += 1;
                }
                Ok((reads, half))
            })
        })
        .collect();
    let flips = flipper.join().map_err(|_| "flipper panicked")??;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut reads, mut half) = (0, 0);
    for r in readers {
        let (n, h) = r.join().map_err(|_| "reader panicked")??;
        reads += n;
        half += h;
    }
    eprintln!(
        "readers_beside_transactions: {flips} two-ref transactions, {reads} listings, {half} half-applied"
    );
    assert_eq!(half, 0, "no listing saw half a transaction");
    assert!(
        reads > 1000,
        "thousands of reads raced the transactions ({reads})"
    );
    Ok(())
}

#[test]
fn many_processes_after_a_killed_lock_holder_give_exactly_one_winner() -> TestResult {
    let (_, rounds) = seed_and_rounds("many_recoverers", 10);
    let (_dir, root) = scratch()?;
    let repo = open(&root)?;
    let ids: Vec<ObjectId> = (0..=8u8).map(|n| ObjectId::hash(&[n])).collect();
    repo.refs()
        .update(&branch("main"), ids[0], muse_store::Expected::Any, "start")?;
    let mut current = ids[0];
    for round in 0..rounds {
        // A writer killed while it holds main's lock.
        let gate = tempfile::tempdir()?;
        let spec = barrier_spec("ref-locked", gate.path());
        let cur = current.to_hex();
        let holder = spawn(
            &root,
            &[
                "plumbing",
                "update-ref",
                "-n",
                "main",
                &ids[8].to_hex(),
                "-o",
                &cur,
            ],
            &[("MUSE_TEST_BARRIER", &spec)],
        )?;
        wait_arrival(gate.path())?;
        signal(&holder, "KILL")?;
        let _ = finish(holder)?;
        assert!(
            repo.layout().ref_lock(&branch("main")).exists(),
            "round {round}: the killed holder left its lock file"
        );
        // Eight processes race to move main from its current value, each
        // to a value of its own.
        let wanted: Vec<ObjectId> = (0..8u64)
            .map(|i| ObjectId::hash(format!("round {round} racer {i}").as_bytes()))
            .collect();
        let racers: Vec<Child> = wanted
            .iter()
            .map(|new| {
                spawn(
                    &root,
                    &[
                        "plumbing",
                        "update-ref",
                        "-n",
                        "main",
                        &new.to_hex(),
                        "-o",
                        &cur,
                    ],
                    &[],
                )
            })
            .collect::<Result<_, _>>()?;
        let mut winners = 0;
        for racer in racers {
            let (code, _, err) = finish(racer)?;
            match code {
                0 => winners += 1,
                1 if err.contains("cas_mismatch") => {}
                _ => return Err(format!("round {round}: exit {code}: {err}").into()),
            }
        }
        let now = repo
            .refs()
            .branch(&branch("main"))?
            .ok_or("main vanished")?;
        assert_eq!(winners, 1, "round {round}: exactly one winner");
        assert!(
            wanted.contains(&now),
            "round {round}: main holds the winner's value"
        );
        current = now;
    }
    eprintln!("many_recoverers: {rounds} rounds, exactly one winner each");
    Ok(())
}
