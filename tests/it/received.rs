//! A received repository and working tree against the read paths (issue 10,
//! items 3, 5, 6 and 7): a symlink swapped in while committing, objects
//! truncated before and while they are read, a repository this user may
//! not write, and refs that are not what they seem. docs/security.md
//! names each test here beside the promise it shows.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use muse_store::{ObjectId, Repository};

use crate::support::{muse, muse_env};
use crate::{TestResult, pattern};

/// A small file (read whole) and a large one (streamed: over the 1 MiB
/// small-file limit).
const SIZES: [usize; 2] = [1000, 3 * 1024 * 1024];

/// A repository made by the CLI with one commit holding `a.txt`.
fn committed_repo() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let (code, _, err) = muse(dir.path(), &["init"])?;
    assert_eq!(code, 0, "init: {err}");
    fs::write(dir.path().join("a.txt"), b"first\n")?;
    let (code, _, err) = muse(dir.path(), &["commit", "-m", "first"])?;
    assert_eq!(code, 0, "commit: {err}");
    Ok(dir)
}

/// Runs `muse args` in `root` stopped at failpoint `point`; while it waits
/// there, runs `meanwhile`, then lets it go. Returns (exit code, stdout,
/// stderr).
fn run_paused(
    root: &Path,
    args: &[&str],
    point: &str,
    meanwhile: impl FnOnce() -> TestResult,
) -> TestResult<(i32, String, String)> {
    let barrier = tempfile::tempdir()?;
    let spec = format!("{point}:{}:2", barrier.path().display());
    let child = {
        let root = root.to_path_buf();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            muse_env(&root, &args, &[("MUSE_TEST_BARRIER", &spec)], None).map_err(|e| e.to_string())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::read_dir(barrier.path())?.count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let arrived = fs::read_dir(barrier.path())?.count() == 1;
    if arrived {
        meanwhile()?;
    }
    fs::write(barrier.path().join("release"), b"")?;
    let run = child.join().map_err(|_| "muse thread panicked")??;
    assert!(
        arrived,
        "muse {args:?} never reached failpoint {point}: {run:?}"
    );
    Ok(run)
}

/// The ids stored in `root`'s object store.
fn stored_ids(root: &Path) -> TestResult<Vec<ObjectId>> {
    let repo = Repository::open_without_recovery(root, muse_store::Options::default())?;
    Ok(repo.objects().iter().collect::<Result<_, _>>()?)
}

/// What [`commit_with_symlink_swap`] saw.
struct Swap {
    code: i32,
    err: String,
    original: Vec<u8>,
    secret: Vec<u8>,
    dir: tempfile::TempDir,
}

/// Commits a working tree holding one file `f` of `size` bytes while, at
/// failpoint `point`, `f` is renamed away and replaced by a symlink to a
/// file outside the tree (the original bytes, and the link target's
/// `secret` bytes, are in the result).
fn commit_with_symlink_swap(point: &str, size: usize) -> TestResult<Swap> {
    let dir = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    let root = dir.path();
    let (code, _, err) = muse(root, &["init"])?;
    assert_eq!(code, 0, "init: {err}");
    let original = pattern(size, 1);
    let secret = pattern(size, 2);
    fs::write(root.join("f"), &original)?;
    let target = outside.path().join("secret");
    fs::write(&target, &secret)?;
    let (code, _, err) = run_paused(root, &["commit", "-m", "swap"], point, || {
        fs::rename(root.join("f"), outside.path().join("moved"))?;
        std::os::unix::fs::symlink(&target, root.join("f"))?;
        Ok(())
    })?;
    Ok(Swap {
        code,
        err,
        original,
        secret,
        dir,
    })
}

#[test]
fn commit_never_stores_the_target_of_a_symlink_swapped_in_before_the_open() -> TestResult {
    for size in SIZES {
        let Swap {
            code,
            err,
            secret,
            dir,
            ..
        } = commit_with_symlink_swap("commit-before-open", size)?;
        assert_eq!(
            code, 1,
            "{size} bytes: a file replaced under commit is refused: {err}"
        );
        assert!(
            err.contains("/f'") && err.contains("changed"),
            "{size} bytes: the error names the file: {err}"
        );
        let ids = stored_ids(dir.path())?;
        assert!(
            !ids.contains(&ObjectId::hash(&secret)),
            "{size} bytes: the link target's bytes were stored"
        );
        let repo = Repository::open(dir.path())?;
        assert_eq!(repo.refs().head_commit()?, None, "{size} bytes: no commit");
    }
    Ok(())
}

#[test]
fn commit_stores_the_opened_file_when_a_symlink_replaces_it_after_the_open() -> TestResult {
    let cases = [
        ("commit-file-opened", SIZES[0]),
        ("commit-file-opened", SIZES[1]),
        // Between the hashing pass and the copy of a large file: the copy
        // reads the same descriptor again, never the path.
        ("store-file-hashed", SIZES[1]),
    ];
    for (point, size) in cases {
        let Swap {
            code,
            err,
            original,
            secret,
            dir,
        } = commit_with_symlink_swap(point, size)?;
        assert_eq!(code, 0, "{point}, {size} bytes: {err}");
        let repo = Repository::open(dir.path())?;
        let head = repo.refs().head_commit()?.ok_or("no commit")?;
        let manifest = repo.records().tree_of(Some(head))?;
        assert_eq!(
            manifest.get("f"),
            Some(&ObjectId::hash(&original)),
            "{point}, {size} bytes: f is stored with the bytes of the file that was opened"
        );
        assert!(
            !stored_ids(dir.path())?.contains(&ObjectId::hash(&secret)),
            "{point}, {size} bytes: the link target's bytes were stored"
        );
        assert_eq!(
            &*repo.objects().read(&ObjectId::hash(&original))?,
            &original[..]
        );
    }
    Ok(())
}

/// Cuts the stored file of `id` to half its length.
fn truncate_object(root: &Path, id: &ObjectId) -> TestResult {
    let repo = Repository::open_without_recovery(root, muse_store::Options::default())?;
    let path = repo.objects().path(id);
    let len = fs::metadata(&path)?.len();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(len / 2)?;
    Ok(())
}

/// Asserts a run ended by exit `want` (not a signal) with an error naming
/// `id`.
fn assert_named(run: &(i32, String, String), want: i32, id: &ObjectId, what: &str) {
    let (code, out, err) = run;
    assert_eq!(
        *code, want,
        "{what}: exit code (-1 is a signal); stdout {out:?} stderr {err:?}"
    );
    let hex = id.to_string();
    assert!(
        err.contains(&hex) || out.contains(&hex) || out.contains(&hex[..12]),
        "{what}: the error names object {hex}: stdout {out:?} stderr {err:?}"
    );
}

/// A repository whose commit holds `big` of `size` bytes.
fn repo_with_file(size: usize) -> TestResult<(tempfile::TempDir, ObjectId)> {
    let dir = committed_repo()?;
    let bytes = pattern(size, 7);
    fs::write(dir.path().join("big"), &bytes)?;
    let (code, _, err) = muse(dir.path(), &["commit", "-m", "big"])?;
    assert_eq!(code, 0, "commit: {err}");
    Ok((dir, ObjectId::hash(&bytes)))
}

#[test]
fn a_truncated_object_is_a_named_error_on_every_read_path() -> TestResult {
    for size in SIZES {
        let (dir, id) = repo_with_file(size)?;
        let root = dir.path();
        truncate_object(root, &id)?;
        let hex = id.to_string();
        let what = |cmd: &str| format!("{cmd}, {size}-byte object truncated");
        let run = muse(root, &["plumbing", "cat-object", &hex])?;
        assert_named(&run, 3, &id, &what("cat-object"));
        assert!(run.1.is_empty(), "cat-object printed bytes of a bad object");
        let run = muse(root, &["plumbing", "cat-object", &hex, "-f", "info"])?;
        assert_named(&run, 3, &id, &what("cat-object -f info"));
        // verify-object reports the failed check as its result, in the
        // reference's words and exit code (1).
        let run = muse(root, &["plumbing", "verify-object", &hex])?;
        assert_named(&run, 1, &id, &what("verify-object"));
        // fsck: a corrupt object is damage (exit 1), named.
        let run = muse(root, &["fsck"])?;
        assert_named(&run, 1, &id, &what("fsck"));
        assert!(run.1.contains("corrupt_object"), "{}", run.1);
        // checkout must restore it: refused by name, nothing half-written.
        fs::remove_file(root.join("big"))?;
        let run = muse(root, &["checkout", "--force", "main"])?;
        assert_named(&run, 3, &id, &what("checkout --force"));
        assert!(
            !root.join("big").exists(),
            "checkout wrote a bad object out"
        );
    }
    Ok(())
}

#[test]
fn an_object_truncated_while_it_is_read_is_a_named_error_not_a_signal() -> TestResult {
    for size in SIZES {
        let (dir, id) = repo_with_file(size)?;
        let root = dir.path();
        let hex = id.to_string();
        let cases: [(&[&str], i32); 3] = [
            (&["plumbing", "cat-object", &hex], 3),
            (&["plumbing", "verify-object", &hex], 1),
            (&["fsck"], 1),
        ];
        for (args, want) in cases {
            // Each run truncates a fresh copy of the intact object.
            let repo = Repository::open_without_recovery(root, muse_store::Options::default())?;
            let path = repo.objects().path(&id);
            let intact = pattern(size, 7);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
            fs::write(&path, &intact)?;
            let run = run_paused(root, args, "object-opened", || truncate_object(root, &id))?;
            assert_named(
                &run,
                want,
                &id,
                &format!("{args:?}, {size}-byte object truncated under the reader"),
            );
        }
    }
    Ok(())
}

#[test]
fn a_truncated_commit_record_is_a_named_error_in_ref_listings() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    let repo = Repository::open(root)?;
    let head = repo.refs().head_commit()?.ok_or("no commit")?;
    let path = root.join(".muse/commits").join(format!("{head}.json"));
    let len = fs::metadata(&path)?.len();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(len / 2)?;
    let run = muse(root, &["plumbing", "for-each-ref"])?;
    assert_named(&run, 3, &head, "for-each-ref, commit record truncated");
    let run = muse(root, &["log"])?;
    assert_named(&run, 3, &head, "log, commit record truncated");
    let run = muse(root, &["fsck"])?;
    assert_named(&run, 1, &head, "fsck, commit record truncated");
    Ok(())
}

/// Whether `setpriv` can run a command as `nobody` here.
fn can_drop_privileges() -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the muse binary as user `nobody` in `root`.
fn muse_as_nobody(root: &Path, args: &[&str]) -> TestResult<(i32, String, String)> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_muse"))
        .args(args)
        .current_dir(root)
        .env("HOME", root)
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Sets the mtime of `path` an hour back (older than any grace period).
fn age(path: &Path) -> TestResult {
    let status = Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(path)
        .status()?;
    assert!(status.success(), "touch -d {}", path.display());
    Ok(())
}

#[test]
fn read_commands_work_on_a_repository_this_user_cannot_write() -> TestResult {
    if !can_drop_privileges() {
        println!("skipped: setpriv cannot run a command as nobody on this machine");
        return Ok(());
    }
    let (dir, id) = repo_with_file(1000)?;
    let root = dir.path();
    // Debris a crashed writer leaves: an old temp file in a shard, one in
    // the record directory, and a lock file nobody holds.
    let shard = root.join(".muse/objects").join(&id.to_string()[..2]);
    let temps = [
        shard.join(".obj-tmp-dead-1"),
        root.join(".muse/commits/.muse-tmp-dead-2"),
    ];
    for temp in &temps {
        fs::write(temp, b"partial")?;
        age(temp)?;
    }
    let lock = root.join(".muse/locks/worktree.lock");
    fs::write(&lock, b"")?;
    age(&lock)?;
    // Owned by root, readable by all, writable by nobody else; the temp
    // dir itself must be enterable.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    let status = Command::new("chmod")
        .args(["-R", "a+rX,go-w"])
        .arg(root)
        .status()?;
    assert!(status.success(), "chmod");
    let hex = id.to_string();
    let reads: [&[&str]; 9] = [
        &["status"],
        &["log"],
        &["branch"],
        &["plumbing", "show-ref"],
        &["plumbing", "for-each-ref"],
        &["plumbing", "cat-object", &hex],
        &["plumbing", "verify-object", &hex],
        &["plumbing", "rev-parse", "HEAD"],
        &["plumbing", "ls-files"],
    ];
    for args in reads {
        let (code, out, err) = muse_as_nobody(root, args)?;
        assert_eq!(code, 0, "{args:?} as nobody: stdout {out:?} stderr {err:?}");
        assert_eq!(
            err.matches("not writable").count(),
            1,
            "{args:?}: recovery says once what it skipped: {err:?}"
        );
    }
    let (code, out, err) = muse_as_nobody(root, &["fsck"])?;
    assert_eq!(code, 0, "fsck as nobody: {out} {err}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    let skipped: Vec<PathBuf> = report["skipped"]
        .as_array()
        .ok_or("fsck lists skipped")?
        .iter()
        .filter_map(|v| v.as_str().map(PathBuf::from))
        .collect();
    for temp in &temps {
        assert!(skipped.contains(temp), "fsck lists {temp:?}: {skipped:?}");
        assert!(temp.exists(), "nothing was removed");
    }
    // A command that must write fails, naming the path.
    fs::write(root.join("new.txt"), b"x")?;
    fs::set_permissions(root.join("new.txt"), fs::Permissions::from_mode(0o644))?;
    let (code, _, err) = muse_as_nobody(root, &["commit", "-m", "x"])?;
    assert_eq!(code, 3, "commit on a read-only repository: {err}");
    assert!(
        err.contains(&root.join(".muse").display().to_string()),
        "the error names the path it could not write: {err}"
    );
    // The owner's recovery removes the debris as before.
    let report = Repository::open(root)?.recover()?;
    assert!(report.skipped.is_empty(), "{report:?}");
    for temp in &temps {
        assert!(!temp.exists(), "recovery by the owner removes {temp:?}");
    }
    Ok(())
}

/// Runs the muse binary in a private mount namespace where `dst` is a
/// read-only bind mount of `src`, with `-C dst`. `None` when this machine
/// does not allow the mount.
fn muse_on_read_only_mount(
    src: &Path,
    dst: &Path,
    args: &[&str],
) -> TestResult<Option<(i32, String, String)>> {
    let script = r#"mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" || exit 97
bin="$3"; dir="$2"; shift 3; exec "$bin" -C "$dir" "$@""#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(src)
        .arg(dst)
        .arg(env!("CARGO_BIN_EXE_muse"))
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let code = out.status.code().unwrap_or(-1);
    if code == 97 || (code == 1 && out.stdout.is_empty() && out.stderr.starts_with(b"unshare")) {
        return Ok(None);
    }
    Ok(Some((
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )))
}

#[test]
fn read_commands_work_on_a_read_only_mount_with_debris() -> TestResult {
    let (dir, id) = repo_with_file(1000)?;
    let src = dir.path();
    let temp = src.join(".muse/commits/.muse-tmp-dead-3");
    fs::write(&temp, b"partial")?;
    age(&temp)?;
    let lock = src.join(".muse/locks/worktree.lock");
    fs::write(&lock, b"")?;
    let mount = tempfile::tempdir()?;
    let dst = mount.path();
    let hex = id.to_string();
    let reads: [&[&str]; 7] = [
        &["status"],
        &["log"],
        &["plumbing", "show-ref"],
        &["plumbing", "for-each-ref"],
        &["plumbing", "cat-object", &hex],
        &["plumbing", "verify-object", &hex],
        &["fsck"],
    ];
    for args in reads {
        let Some((code, out, err)) = muse_on_read_only_mount(src, dst, args)? else {
            println!("skipped: this machine does not allow a read-only bind mount (unshare -m)");
            return Ok(());
        };
        assert_eq!(code, 0, "{args:?} on a read-only mount: {out:?} {err:?}");
        if args == ["fsck"] {
            let report: serde_json::Value = serde_json::from_str(&out)?;
            let listed = report["skipped"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|p| p.as_str().is_some_and(|p| p.ends_with(".muse-tmp-dead-3")))
            });
            assert!(listed, "fsck lists the temp file it may not remove: {out}");
        } else {
            assert_eq!(
                err.matches("not writable").count(),
                1,
                "{args:?}: recovery says once what it skipped: {err:?}"
            );
        }
    }
    fs::write(src.join("new.txt"), b"x")?;
    let run = muse_on_read_only_mount(src, dst, &["commit", "-m", "x"])?.ok_or("mount")?;
    assert_eq!(run.0, 3, "commit on a read-only mount: {run:?}");
    assert!(
        run.2.contains(&dst.join(".muse").display().to_string()),
        "the error names the path: {run:?}"
    );
    assert!(temp.exists(), "nothing removed through the read-only mount");
    Ok(())
}

/// Runs `muse args` in `root`, killed after 20 s: a FIFO must not stall it.
fn muse_bounded(root: &Path, args: &[&str]) -> TestResult<(i32, String, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_muse"))
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Err(format!("muse {args:?} hung (killed after 20 s)").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn mkfifo(path: &Path) -> TestResult {
    let status = Command::new("mkfifo").arg(path).status()?;
    assert!(status.success(), "mkfifo {}", path.display());
    Ok(())
}

/// The fsck problems (JSON) of `root`, with its exit code.
fn fsck_problems(root: &Path) -> TestResult<(i32, Vec<serde_json::Value>)> {
    let (code, out, err) = muse_bounded(root, &["fsck"])?;
    let report: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("fsck output {out:?} {err:?}: {e}"))?;
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    Ok((code, problems))
}

/// Whether `problems` holds damage of `kind` whose path ends in `rel`.
fn has_damage(problems: &[serde_json::Value], kind: &str, rel: &str) -> bool {
    problems.iter().any(|p| {
        p["severity"] == "damage"
            && p["kind"] == kind
            && p["path"].as_str().is_some_and(|path| path.ends_with(rel))
            && p["message"].as_str().is_some_and(|m| !m.is_empty())
    })
}

#[test]
fn head_naming_main_lock_is_a_branch_never_a_lock() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    fs::write(root.join(".muse/HEAD"), "ref: refs/heads/main.lock\n")?;
    for i in 0..2 {
        fs::write(root.join(format!("{i}.txt")), b"x")?;
        let started = Instant::now();
        let (code, _, err) = muse(root, &["commit", "-m", "on main.lock"])?;
        assert_eq!(code, 0, "commit {i} on main.lock: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "commit {i} waited on a lock"
        );
    }
    let repo = Repository::open(root)?;
    let branch = muse_store::BranchName::from_stored("main.lock")?;
    assert!(
        repo.refs().branch(&branch)?.is_some(),
        "main.lock is a branch"
    );
    let (code, out, err) = muse(root, &["plumbing", "show-ref"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("refs/heads/main.lock"), "listed: {out}");
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 0, "fsck: {problems:?}");
    Ok(())
}

#[test]
fn head_naming_a_missing_branch_is_an_unborn_branch() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    fs::write(root.join(".muse/HEAD"), "ref: refs/heads/nowhere\n")?;
    let (code, out, err) = muse(root, &["status"])?;
    assert_eq!(code, 0, "status on an unborn branch: {err}");
    assert!(
        out.contains("nowhere") && out.contains("No commits yet"),
        "status says the branch is unborn: {out}"
    );
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 0, "an unborn branch is not damage: {problems:?}");
    assert!(
        problems.iter().any(|p| p["kind"] == "unborn_branch"
            && p["severity"] == "note"
            && p["message"].as_str().is_some_and(|m| m.contains("nowhere"))),
        "fsck reports the unborn branch: {problems:?}"
    );
    Ok(())
}

#[test]
fn head_naming_what_cannot_be_a_branch_is_damage() -> TestResult {
    for bad in ["a..b", "tab\tname", "a/./b", "", "../../x"] {
        let dir = committed_repo()?;
        let root = dir.path();
        fs::write(root.join(".muse/HEAD"), format!("ref: refs/heads/{bad}\n"))?;
        let (code, problems) = fsck_problems(root)?;
        assert_eq!(code, 1, "{bad}: damage: {problems:?}");
        assert!(
            has_damage(&problems, "bad_ref", ".muse/HEAD"),
            "{bad}: fsck names HEAD: {problems:?}"
        );
        let (code, _, err) = muse(root, &["status"])?;
        assert_eq!(code, 3, "{bad}: status refuses");
        assert!(
            err.contains("HEAD") && err.contains("invalid branch name"),
            "{bad}: a clear error naming HEAD: {err}"
        );
    }
    Ok(())
}

#[test]
fn a_branch_file_that_is_a_symlink_is_damage_and_never_followed() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    let repo = Repository::open(root)?;
    let head = repo.refs().head_commit()?.ok_or("no commit")?;
    // A link to a file outside holding a valid id: followed, it would look
    // like a healthy branch.
    let outside = tempfile::tempdir()?;
    fs::write(outside.path().join("id"), format!("{head}\n"))?;
    std::os::unix::fs::symlink(
        outside.path().join("id"),
        root.join(".muse/refs/heads/evil"),
    )?;
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 1, "fsck: {problems:?}");
    assert!(
        has_damage(&problems, "bad_ref", "refs/heads/evil"),
        "fsck names the symlinked branch file: {problems:?}"
    );
    // HEAD on it: an error naming the file, never the link target's id.
    fs::write(root.join(".muse/HEAD"), "ref: refs/heads/evil\n")?;
    let (code, _, err) = muse_bounded(root, &["status"])?;
    assert_eq!(code, 3, "status through a symlinked branch: {err}");
    assert!(
        err.contains("refs/heads/evil") && err.contains("symbolic link"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_fifo_branch_file_or_reflog_is_damage_and_stalls_nothing() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    mkfifo(&root.join(".muse/refs/heads/pipe"))?;
    mkfifo(&root.join(".muse/logs/refs/heads/pipe"))?;
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 1, "fsck: {problems:?}");
    assert!(
        has_damage(&problems, "bad_ref", "refs/heads/pipe"),
        "fsck names the FIFO branch file: {problems:?}"
    );
    assert!(
        has_damage(&problems, "bad_reflog", "logs/refs/heads/pipe"),
        "fsck names the FIFO reflog: {problems:?}"
    );
    let (code, _, err) = muse_bounded(root, &["plumbing", "show-ref"])?;
    assert_eq!(code, 0, "show-ref lists the real branches: {err}");
    // HEAD naming the FIFO: a named error at once, not a blocked open.
    fs::write(root.join(".muse/HEAD"), "ref: refs/heads/pipe\n")?;
    let (code, _, err) = muse_bounded(root, &["status"])?;
    assert_eq!(code, 3, "status on a FIFO branch: {err}");
    assert!(
        err.contains("refs/heads/pipe") && err.contains("FIFO"),
        "{err}"
    );
    // And a FIFO as HEAD itself.
    fs::remove_file(root.join(".muse/HEAD"))?;
    mkfifo(&root.join(".muse/HEAD"))?;
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 1, "fsck with a FIFO HEAD: {problems:?}");
    assert!(
        has_damage(&problems, "bad_ref", ".muse/HEAD"),
        "{problems:?}"
    );
    Ok(())
}

#[test]
fn a_directory_at_a_reflog_path_is_damage() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    for rel in [".muse/logs/HEAD", ".muse/logs/refs/heads/main"] {
        fs::remove_file(root.join(rel))?;
        fs::create_dir(root.join(rel))?;
    }
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 1, "fsck: {problems:?}");
    for rel in ["logs/HEAD", "logs/refs/heads/main"] {
        assert!(
            has_damage(&problems, "bad_reflog", rel),
            "fsck names the directory at {rel}: {problems:?}"
        );
    }
    Ok(())
}

#[test]
fn fifos_anywhere_in_the_repository_stall_no_command() -> TestResult {
    let dir = committed_repo()?;
    let root = dir.path();
    let record = root
        .join(".muse/commits")
        .join(format!("{}.json", ObjectId::hash(b"no such commit")));
    fs::remove_file(root.join(".muse/stat-cache")).ok();
    let fifos = [
        record.clone(),
        root.join(".muse/stat-cache"),
        root.join(".muse/locks/ref-0123456789abcdef0123456789abcdef01234567.lock"),
        root.join(".muse/some-other-tool-state"),
    ];
    for fifo in &fifos {
        mkfifo(fifo)?;
    }
    let (code, problems) = fsck_problems(root)?;
    assert_eq!(code, 1, "fsck: {problems:?}");
    assert!(
        has_damage(&problems, "corrupt_record", &record.display().to_string()),
        "fsck names the FIFO record: {problems:?}"
    );
    let reads: [&[&str]; 5] = [
        &["status"],
        &["log"],
        &["branch"],
        &["plumbing", "show-ref"],
        &["plumbing", "for-each-ref"],
    ];
    for args in reads {
        let (code, out, err) = muse_bounded(root, args)?;
        assert_eq!(code, 0, "{args:?} beside FIFOs: {out:?} {err:?}");
    }
    // gc refuses to remove anything beside damage, naming it, at once.
    let (code, _, err) = muse_bounded(root, &["gc", "--dry-run"])?;
    assert_eq!(code, 3, "gc beside a FIFO record: {err}");
    assert!(err.contains(&record.display().to_string()), "{err}");
    Ok(())
}

#[test]
fn a_fifo_or_a_symlink_as_museignore_or_museattributes_stalls_nothing() -> TestResult {
    for name in [".museignore", ".museattributes"] {
        let dir = committed_repo()?;
        let root = dir.path();
        mkfifo(&root.join(name))?;
        let (code, out, err) = muse_bounded(root, &["status"])?;
        if name == ".museignore" {
            assert_eq!(
                code, 3,
                "{name} as a FIFO: a named error, at once: {out} {err}"
            );
            assert!(err.contains(name), "{err}");
        } else {
            // status does not read attributes.
            assert!(code == 0 || code == 3, "{name}: {out} {err}");
        }
        if name == ".museattributes" {
            let (code, out, err) = muse_bounded(root, &["plumbing", "check-attr", "a.txt"])?;
            assert_ne!(
                code, 0,
                "{name} as a FIFO: check-attr fails at once: {out} {err}"
            );
        }
        // A symlink to a regular file is followed, as the reference does.
        fs::remove_file(root.join(name))?;
        fs::write(root.join("rules.toml"), b"")?;
        std::os::unix::fs::symlink("rules.toml", root.join(name))?;
        let (code, out, err) = muse_bounded(root, &["status"])?;
        assert_eq!(code, 0, "{name} as a symlink to a file: {out} {err}");
    }
    Ok(())
}
