//! `fsck`: each kind of damage in a test of its own, with its exit code and
//! a message naming the damaged thing; a clean repository is exit 0.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use muse_store::{
    BranchName, CommitRecord, Durability, NoProgress, ObjectId, Options, ProblemKind, Repository,
    Severity, SnapshotRecord, Timestamp, fsck,
};

use crate::support::fixture;
use crate::{Damage, TestResult, damage_object, muse};

/// A scratch repository.
pub(crate) fn scratch() -> TestResult<(tempfile::TempDir, Repository)> {
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

/// Stores `files` as objects, a snapshot and a commit with `parents`, moving
/// no ref. Returns (commit, snapshot, object ids).
pub(crate) fn loose_commit(
    repo: &Repository,
    files: &[(&str, &[u8])],
    parents: &[ObjectId],
    message: &str,
) -> TestResult<(ObjectId, ObjectId, Vec<ObjectId>)> {
    let mut manifest = BTreeMap::new();
    let mut objects = Vec::new();
    for (path, bytes) in files {
        let (id, _) = repo.objects().write(bytes)?;
        manifest.insert((*path).to_owned(), id);
        objects.push(id);
    }
    let snapshot = SnapshotRecord::new(manifest, Timestamp::now());
    repo.records().write_snapshot(&snapshot)?;
    let commit = CommitRecord::new(
        repo.info()?.repo_id.clone(),
        "main",
        snapshot.snapshot_id,
        parents,
        message,
        "tester",
        Timestamp::now(),
    );
    repo.records().write_commit(&commit)?;
    Ok((commit.commit_id, snapshot.snapshot_id, objects))
}

/// A repository with two commits on `main` (the second a child of the
/// first). Returns (dir, repo, first, second, objects of the second).
pub(crate) fn two_commits() -> TestResult<(
    tempfile::TempDir,
    Repository,
    ObjectId,
    ObjectId,
    Vec<ObjectId>,
)> {
    let (dir, repo) = scratch()?;
    let main = BranchName::new("main")?;
    let (first, _, _) = loose_commit(&repo, &[("a.txt", b"alpha\n")], &[], "first")?;
    repo.refs()
        .update(&main, first, muse_store::Expected::Any, "commit: first")?;
    let (second, _, objects) = loose_commit(
        &repo,
        &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")],
        &[first],
        "second",
    )?;
    repo.refs()
        .update(&main, second, muse_store::Expected::Any, "commit: second")?;
    Ok((dir, repo, first, second, objects))
}

/// Runs `muse -C <root> fsck` and returns (exit code, JSON report).
fn fsck_cli(root: &Path) -> TestResult<(u8, serde_json::Value)> {
    let run = muse([
        "-C".as_ref(),
        root.as_os_str(),
        "fsck".as_ref(),
        "-f".as_ref(),
        "json".as_ref(),
    ]);
    let json = run.json()?;
    Ok((run.code, json))
}

/// The problems of `kind` in a JSON report.
fn problems<'a>(report: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    report["problems"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["kind"] == kind).collect())
        .unwrap_or_default()
}

/// Sets the mtime of `path` to `age` ago.
pub(crate) fn age_file(path: &Path, age: Duration) -> TestResult {
    let file = fs::File::open(path)?;
    file.set_modified(SystemTime::now() - age)?;
    Ok(())
}

/// A pid that is certainly not running: a child that has been reaped.
pub(crate) fn dead_pid() -> TestResult<u32> {
    let mut child = std::process::Command::new("true").spawn()?;
    let pid = child.id();
    child.wait()?;
    Ok(pid)
}

/// Writes a lock file at `path` owned by `pid` on this host.
pub(crate) fn plant_lock(path: &Path, pid: u32) -> TestResult {
    let owner = serde_json::json!({
        "pid": pid,
        "host": muse_store::testing::host_name(),
        "created_at": "2026-01-01T00:00:00+00:00",
        "nonce": "planted",
    });
    fs::write(path, serde_json::to_vec(&owner)?)?;
    Ok(())
}

#[test]
fn clean_repository_is_exit_0_with_counts() -> TestResult {
    let (dir, _repo, _, _, _) = two_commits()?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 0, "clean repository: {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["counts"]["objects"], 2, "{report}");
    assert_eq!(report["counts"]["commits"], 2, "{report}");
    assert_eq!(report["counts"]["reachable_commits"], 2, "{report}");
    assert_eq!(report["counts"]["damage"], 0, "{report}");
    let text = muse([
        "-C".as_ref(),
        dir.path().as_os_str(),
        "fsck".as_ref(),
        "-f".as_ref(),
        "text".as_ref(),
    ]);
    assert_eq!(text.code, 0, "{}", text.stdout());
    assert!(
        text.stdout().contains("checked 2 objects"),
        "{}",
        text.stdout()
    );
    Ok(())
}

#[test]
fn muse_written_fixture_is_clean() -> TestResult {
    let (_keep, root) = fixture("muse-merge-conflict")?;
    let (code, report) = fsck_cli(&root)?;
    assert_eq!(code, 0, "fixture must be healthy: {report}");
    assert!(
        report["counts"]["reachable_commits"].as_u64() >= Some(2),
        "MERGE_STATE and branches reach the commits: {report}"
    );
    assert_eq!(
        report["counts"]["reachable_objects"], report["counts"]["objects"],
        "every object of the fixture is reachable: {report}"
    );
    Ok(())
}

#[test]
fn corrupt_object_is_damage_exit_1() -> TestResult {
    let (dir, repo, _, _, objects) = two_commits()?;
    damage_object(&repo, &objects[1], Damage::FlippedBit)?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    let found = problems(&report, "corrupt_object");
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["id"], objects[1].to_string(), "{report}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("integrity check") && m.contains(&objects[1].to_string())),
        "{report}"
    );
    Ok(())
}

#[test]
fn missing_object_is_damage_exit_1() -> TestResult {
    let (dir, repo, _, _, objects) = two_commits()?;
    fs::remove_file(repo.objects().path(&objects[1]))?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    let found = problems(&report, "missing_object");
    assert_eq!(found.len(), 1, "{report}");
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&objects[1].to_string()) && message.contains("b.txt"),
        "names the object and its path: {message}"
    );
    Ok(())
}

#[test]
fn corrupt_record_is_damage_exit_1() -> TestResult {
    let (dir, repo, first, _, _) = two_commits()?;
    let path = repo.layout().commit_path(&first);
    let text = fs::read_to_string(&path)?.replace("\"first\"", "\"forged\"");
    fs::write(&path, text)?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    let found = problems(&report, "corrupt_record");
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["path"], path.display().to_string(), "{report}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("integrity check") && m.contains(&first.to_string())),
        "{report}"
    );
    Ok(())
}

#[test]
fn unreachable_corrupt_record_is_still_damage() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    let (loose, _, _) = loose_commit(&repo, &[("c", b"c")], &[], "loose")?;
    let path = repo.layout().commit_path(&loose);
    fs::write(&path, b"{ not json")?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    assert_eq!(problems(&report, "corrupt_record").len(), 1, "{report}");
    Ok(())
}

#[test]
fn dangling_ref_is_damage_exit_1() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    let missing = ObjectId::hash(b"no such commit");
    let branch = repo.layout().heads_dir().join("feat").join("x");
    fs::create_dir_all(branch.parent().ok_or("no parent")?)?;
    fs::write(&branch, missing.to_string())?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    let found = problems(&report, "dangling_ref");
    assert_eq!(found.len(), 1, "{report}");
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refs/heads/feat/x") && message.contains(&missing.to_string()),
        "names the ref and the commit: {message}"
    );
    Ok(())
}

#[test]
fn unparseable_ref_and_state_file_are_damage() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    fs::write(repo.layout().heads_dir().join("bad"), "not an id")?;
    fs::write(repo.layout().merge_state(), "{")?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    assert_eq!(problems(&report, "bad_ref").len(), 1, "{report}");
    let bad = problems(&report, "bad_state_file");
    assert_eq!(bad.len(), 1, "{report}");
    assert!(
        bad[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("MERGE_STATE.json")),
        "{report}"
    );
    Ok(())
}

#[test]
fn stale_lock_is_a_note_exit_0() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    // Left by a holder that died: nothing holds its flock.
    let lock = repo
        .layout()
        .ref_lock(&muse_store::BranchName::new("main")?);
    std::fs::create_dir_all(repo.layout().locks_dir())?;
    let pid = dead_pid()?;
    plant_lock(&lock, pid)?;
    // One a live process holds is not stale.
    let held = muse_store::FileLock::acquire(
        &repo.layout().config_lock(),
        std::time::Duration::ZERO,
        None,
    )?;
    // And one in the format of older versions, beside its ref.
    let legacy = repo.layout().heads_dir().join("dev.lock");
    plant_lock(&legacy, pid)?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 0, "a stale lock is not damage: {report}");
    let found = problems(&report, "stale_lock");
    assert_eq!(found.len(), 2, "only the dead ones: {report}");
    for (found, path) in found.iter().zip([&lock, &legacy]) {
        assert_eq!(found["severity"], "note", "{report}");
        assert_eq!(found["path"], path.display().to_string(), "{report}");
        assert!(
            found["message"]
                .as_str()
                .is_some_and(|m| m.contains(&pid.to_string())),
            "{report}"
        );
    }
    assert!(
        lock.exists() && legacy.exists(),
        "fsck only reads: the locks are still there"
    );
    drop(held);
    Ok(())
}

#[test]
fn orphan_temp_is_a_note_exit_0() -> TestResult {
    let (dir, repo, _, _, objects) = two_commits()?;
    let shard = repo
        .objects()
        .path(&objects[0])
        .parent()
        .ok_or("no shard")?
        .to_path_buf();
    let temps: Vec<PathBuf> = vec![
        shard.join(".obj-tmp-crashed"),
        repo.layout().muse_dir().join(".muse-tmp-crashed"),
        repo.layout().commits_dir().join(".muse-tmp-crashed"),
    ];
    for t in &temps {
        fs::write(t, b"half written")?;
        age_file(t, Duration::from_secs(3600))?;
    }
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 0, "orphans are not damage: {report}");
    let found = problems(&report, "orphan_temp");
    assert_eq!(found.len(), temps.len(), "{report}");
    for t in &temps {
        assert!(
            found.iter().any(|p| p["path"] == t.display().to_string()
                && p["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("12 bytes"))),
            "{} reported: {report}",
            t.display()
        );
        assert!(t.exists(), "fsck only reads");
    }
    Ok(())
}

#[test]
fn unreachable_data_and_torn_reflog_are_notes() -> TestResult {
    let (_dir, repo, _, _, _) = two_commits()?;
    let (loose, snap, objects) = loose_commit(&repo, &[("z", b"zzz")], &[], "loose")?;
    let log = repo.layout().head_log();
    let mut bytes = fs::read(repo.layout().branch_log(&BranchName::new("main")?))?;
    bytes.extend_from_slice(b"0000 torn");
    fs::create_dir_all(log.parent().ok_or("no parent")?)?;
    fs::write(&log, bytes)?;
    let report = fsck(&repo, &NoProgress)?;
    assert!(report.is_healthy(), "{report:?}");
    let ids = |kind| -> Vec<ObjectId> { report.of_kind(kind).filter_map(|p| p.id).collect() };
    assert_eq!(ids(ProblemKind::UnreachableCommit), vec![loose]);
    assert_eq!(ids(ProblemKind::UnreachableSnapshot), vec![snap]);
    assert_eq!(ids(ProblemKind::UnreachableObject), objects);
    let torn: Vec<_> = report.of_kind(ProblemKind::TornReflog).collect();
    assert_eq!(torn.len(), 1, "{report:?}");
    assert_eq!(torn[0].severity, Severity::Note);
    Ok(())
}

#[test]
fn malformed_reflog_line_is_damage() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    let log = repo.layout().branch_log(&BranchName::new("main")?);
    let mut bytes = fs::read(&log)?;
    // Plain text after an entry is a message line the reference wrote raw
    // (a continuation); a control character it strips from messages is not.
    bytes.extend_from_slice(b"garbage \x07 line\n");
    fs::write(&log, bytes)?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    let found = problems(&report, "bad_reflog");
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 3")),
        "names the line: {report}"
    );
    Ok(())
}

#[test]
fn a_symlink_at_an_object_name_is_damage_and_never_followed() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    // A symlink loop under an object's name: it is opened with O_NOFOLLOW,
    // so fsck sees a symlink where a regular file must be (damage it can
    // judge, naming the path), never what it points to.
    let id = ObjectId::hash(b"never stored");
    let path = repo.objects().path(&id);
    fs::create_dir_all(path.parent().ok_or("no shard")?)?;
    std::os::unix::fs::symlink(&path, &path)?;
    let (code, report) = fsck_cli(dir.path())?;
    assert_eq!(code, 1, "{report}");
    let found = problems(&report, "corrupt_object");
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["path"], path.display().to_string(), "{report}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("symbolic link")),
        "{report}"
    );
    Ok(())
}
