//! A failure injected at each step of the write protocol: nothing half-done
//! is left behind, the target keeps its old content (or stays absent), and
//! the durability levels treat fsync errors as documented.

use std::fs;
use std::path::Path;

use muse_store::testing::{FaultFs, OpKind};
use muse_store::{Durability, Error, ObjectId, Repository, TempKind, WriteError};

use crate::{Damage, TestResult, assert_no_temp_files, damage_object, faulty_repo, pattern};

const EIO: i32 = libc::EIO;

/// The steps before the rename, as the seam sees them.
const BEFORE_RENAME: [(OpKind, &str); 4] = [
    (OpKind::Create, "create temp file"),
    (OpKind::Write, "write"),
    (OpKind::SyncFile, "fsync"),
    (OpKind::Rename, "rename"),
];

fn write_state(repo: &Repository, target: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    repo.writer().write_file(target, TempKind::State, bytes)
}

fn assert_failed_naming(err: &dyn std::fmt::Display, path: &Path, step: &str) {
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "error must name the path {}: {text}",
        path.display()
    );
    assert!(
        text.contains(step),
        "error must name the step '{step}': {text}"
    );
}

#[test]
fn state_file_failure_before_rename_keeps_old_content() -> TestResult {
    for (kind, step) in BEFORE_RENAME {
        let (dir, repo, fs) = faulty_repo(Durability::Full)?;
        let target = repo.layout().muse_dir().join("MERGE_STATE.json");
        write_state(&repo, &target, b"old content\n")?;
        fs.fail_nth(kind, 0, EIO);
        let err = write_state(&repo, &target, b"new content, longer than the old\n")
            .expect_err(&format!("EIO at {kind:?} must fail the write"));
        assert!(
            matches!(err, WriteError::Failed { .. }),
            "{kind:?}: expected Failed, got {err:?}"
        );
        assert_failed_naming(&err, &target, step);
        assert_eq!(
            fs::read(&target)?,
            b"old content\n",
            "{kind:?} failure must leave the old content"
        );
        assert_no_temp_files(dir.path(), &format!("state file, {kind:?} failed"))?;
    }
    Ok(())
}

#[test]
fn state_file_failure_before_rename_leaves_absent_target_absent() -> TestResult {
    for (kind, step) in BEFORE_RENAME {
        let (dir, repo, fs) = faulty_repo(Durability::Full)?;
        let target = repo.layout().muse_dir().join("REBASE_STATE.json");
        fs.fail_nth(kind, 0, EIO);
        let err = write_state(&repo, &target, b"{}\n")
            .expect_err(&format!("EIO at {kind:?} must fail the write"));
        assert_failed_naming(&err, &target, step);
        assert!(
            !target.exists(),
            "{kind:?} failure must leave the target absent"
        );
        assert_no_temp_files(dir.path(), &format!("absent state file, {kind:?} failed"))?;
    }
    Ok(())
}

#[test]
fn state_file_directory_fsync_failure_is_not_durable_under_full() -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let target = repo.layout().muse_dir().join("MERGE_STATE.json");
    write_state(&repo, &target, b"old\n")?;
    fs.fail_nth(OpKind::SyncDir, 0, EIO);
    let err = write_state(&repo, &target, b"new\n").expect_err("directory fsync EIO under Full");
    assert!(
        matches!(&err, WriteError::NotDurable { path, .. } if path == &target),
        "expected NotDurable for {}, got {err:?}",
        target.display()
    );
    assert!(
        err.to_string().contains("not known to be durable"),
        "message must say the content is not known durable: {err}"
    );
    assert_eq!(
        fs::read(&target)?,
        b"new\n",
        "the rename happened: new content visible"
    );
    assert_no_temp_files(dir.path(), "directory fsync failed")?;
    Ok(())
}

#[test]
fn state_file_in_missing_directory_create_dir_failure() -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let subdir = repo.layout().coordination_dir().join("intents");
    let target = subdir.join("x.json");
    fs.fail_nth(OpKind::CreateDir, 0, EIO);
    let err = write_state(&repo, &target, b"{}\n").expect_err("create-dir EIO must fail");
    assert_failed_naming(&err, &repo.layout().coordination_dir(), "create directory");
    assert!(!target.exists(), "target must stay absent");
    assert_no_temp_files(dir.path(), "create-dir failed")?;
    // Nothing is stuck: the next write succeeds.
    write_state(&repo, &target, b"{}\n")?;
    assert_eq!(
        fs::read(&target)?,
        b"{}\n",
        "retry after create-dir failure"
    );
    Ok(())
}

/// An object write into a new shard, with `kind`'s first call failing.
fn new_object_with_fault(kind: OpKind, nth: usize) -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let bytes = b"an object that will not make it\n";
    let id = ObjectId::hash(bytes);
    fs.fail_nth(kind, nth, EIO);
    let err = repo
        .objects()
        .write(bytes)
        .expect_err(&format!("EIO at {kind:?}#{nth} must fail the object write"));
    let path = repo.objects().path(&id);
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string())
            || path
                .ancestors()
                .any(|a| text.contains(&format!("'{}'", a.display()))),
        "error must name the object path or its directory: {text}"
    );
    assert!(
        !repo.objects().contains(&id),
        "{kind:?}: object must stay absent"
    );
    assert!(
        matches!(repo.objects().read(&id), Err(Error::NotFound { .. })),
        "{kind:?}: reading the failed object must be not-found"
    );
    assert_no_temp_files(dir.path(), &format!("new object, {kind:?} failed"))?;
    // The store is usable afterwards: the same write now succeeds.
    let (again, stored) = repo.objects().write(bytes)?;
    assert!(
        stored && again == id,
        "{kind:?}: retry must store the object"
    );
    assert_eq!(
        &*repo.objects().read(&id)?,
        bytes,
        "{kind:?}: retry reads back"
    );
    Ok(())
}

#[test]
fn new_object_failure_at_each_step_leaves_nothing() -> TestResult {
    // Creating the missing shard directory, then syncing objects/ for it.
    new_object_with_fault(OpKind::CreateDir, 0)?;
    new_object_with_fault(OpKind::SyncDir, 0)?;
    for (kind, _) in BEFORE_RENAME {
        new_object_with_fault(kind, 0)?;
    }
    Ok(())
}

#[test]
fn repair_failure_before_rename_keeps_old_object() -> TestResult {
    for (kind, step) in BEFORE_RENAME {
        let (dir, repo, fs) = faulty_repo(Durability::Full)?;
        let bytes = pattern(5000, 7);
        let (id, _) = repo.objects().write(&bytes)?;
        let damaged = damage_object(&repo, &id, Damage::FlippedBit)?;
        fs.fail_nth(kind, 0, EIO);
        let err = repo
            .objects()
            .write(&bytes)
            .expect_err(&format!("{kind:?}: repair with a failing step must fail"));
        assert_failed_naming(&err, &repo.objects().path(&id), step);
        assert_eq!(
            fs::read(repo.objects().path(&id))?,
            damaged,
            "{kind:?}: the stored file must be exactly as before the failed write"
        );
        assert_no_temp_files(dir.path(), &format!("repair, {kind:?} failed"))?;
    }
    Ok(())
}

#[test]
fn object_directory_fsync_failure_is_not_durable_under_full() -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let bytes = pattern(3000, 9);
    let (id, _) = repo.objects().write(&bytes)?;
    damage_object(&repo, &id, Damage::Zeroed)?;
    // The shard exists, so the only directory fsync is the one after the rename.
    fs.fail_nth(OpKind::SyncDir, 0, EIO);
    let err = repo
        .objects()
        .write(&bytes)
        .expect_err("directory fsync EIO under Full must fail");
    assert!(
        matches!(&err, Error::Write(WriteError::NotDurable { .. })),
        "expected NotDurable, got {err:?}"
    );
    assert_eq!(
        &*repo.objects().read(&id)?,
        &bytes[..],
        "the rename happened: the repaired object is visible"
    );
    assert_no_temp_files(dir.path(), "object directory fsync failed")?;
    Ok(())
}

#[test]
fn streaming_write_failure_mid_copy_leaves_nothing() -> TestResult {
    for (kind, nth) in [
        (OpKind::Write, 0),
        (OpKind::Write, 2),
        (OpKind::SyncFile, 0),
        (OpKind::Rename, 0),
    ] {
        let (dir, repo, fs) = faulty_repo(Durability::Full)?;
        let source = dir.path().join("big.bin");
        let bytes = pattern(1024 * 1024 + muse_store::STREAM_BUFFER * 3, 3);
        fs::write(&source, &bytes)?;
        let id = ObjectId::hash(&bytes);
        fs.fail_nth(kind, nth, EIO);
        let err = repo
            .objects()
            .write_from_path(&source)
            .expect_err(&format!("{kind:?}#{nth}: streaming write must fail"));
        assert!(
            err.to_string()
                .contains(&repo.objects().path(&id).display().to_string()),
            "error must name the object path: {err}"
        );
        assert!(!repo.objects().contains(&id), "{kind:?}#{nth}: no object");
        assert_no_temp_files(dir.path(), &format!("streaming, {kind:?}#{nth} failed"))?;
    }
    Ok(())
}

#[test]
fn restore_failure_at_each_step_keeps_destination() -> TestResult {
    for (kind, step) in BEFORE_RENAME {
        let (dir, repo, fs) = faulty_repo(Durability::Full)?;
        let (id, _) = repo.objects().write(b"new working-tree content\n")?;
        let dest = dir.path().join("file.txt");
        fs::write(&dest, b"user's old content\n")?;
        fs.fail_nth(kind, 0, EIO);
        let err = repo
            .objects()
            .restore(&id, dir.path(), Path::new("file.txt"))
            .expect_err(&format!("{kind:?}: restore must fail"));
        assert_failed_naming(&err, &dest, step);
        assert_eq!(
            fs::read(&dest)?,
            b"user's old content\n",
            "{kind:?}: destination must keep its old content"
        );
        assert_no_temp_files(dir.path(), &format!("restore, {kind:?} failed"))?;
    }
    Ok(())
}

/// The outcome of a write with an injected errno: the writer's result, the
/// target's content afterwards, and the repository (kept alive) and recorder.
type ErrnoOutcome = (Result<(), WriteError>, Vec<u8>, tempfile::TempDir, FaultFs);

/// Writes a state file with the first call of `kind` failing with `errno`.
fn state_write_with_errno(
    durability: Durability,
    kind: OpKind,
    errno: i32,
) -> TestResult<ErrnoOutcome> {
    let (dir, repo, fs) = faulty_repo(durability)?;
    let target = repo.layout().muse_dir().join("MERGE_STATE.json");
    write_state(&repo, &target, b"old\n")?;
    fs.fail_nth(kind, 0, errno);
    let result = write_state(&repo, &target, b"new\n");
    let content = fs::read(&target)?;
    assert_no_temp_files(
        dir.path(),
        &format!("{durability:?} {kind:?} errno {errno}"),
    )?;
    Ok((result, content, dir, fs))
}

#[test]
fn fsync_einval_and_enotsup_are_tolerated_under_full() -> TestResult {
    for errno in [libc::EINVAL, libc::ENOTSUP] {
        for kind in [OpKind::SyncFile, OpKind::SyncDir] {
            let (result, content, _dir, fs) =
                state_write_with_errno(Durability::Full, kind, errno)?;
            assert!(
                result.is_ok(),
                "errno {errno} from {kind:?} must be tolerated: {result:?}"
            );
            assert_eq!(content, b"new\n", "the write completed");
            assert!(
                fs.ops().iter().any(|op| op.kind == kind),
                "the injected call was actually made"
            );
        }
    }
    Ok(())
}

#[test]
fn fsync_einval_tolerated_for_objects_under_full() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::Full)?;
    fs.fail_nth(OpKind::SyncFile, 0, libc::EINVAL);
    let (id, stored) = repo.objects().write(b"einval object\n")?;
    assert!(
        stored,
        "the object must be stored despite EINVAL from fsync"
    );
    assert_eq!(
        &*repo.objects().read(&id)?,
        b"einval object\n",
        "reads back"
    );
    Ok(())
}

#[test]
fn fsync_eio_under_full_is_not_acknowledged() -> TestResult {
    for errno in [libc::EIO, libc::ENOSPC] {
        let (result, content, _dir, _fs) =
            state_write_with_errno(Durability::Full, OpKind::SyncFile, errno)?;
        let err = result.expect_err("fsync EIO/ENOSPC under Full must fail the write");
        assert!(
            matches!(err, WriteError::Failed { .. }),
            "errno {errno}: expected Failed, got {err:?}"
        );
        assert_eq!(content, b"old\n", "errno {errno}: old content kept");
    }
    // An object write is not acknowledged either, and nothing is stored.
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    fs.fail_nth(OpKind::SyncFile, 0, EIO);
    let bytes = b"eio object\n";
    assert!(
        repo.objects().write(bytes).is_err(),
        "object write with fsync EIO under Full must fail"
    );
    assert!(
        !repo.objects().contains(&ObjectId::hash(bytes)),
        "an unacknowledged object must not be stored"
    );
    assert_no_temp_files(dir.path(), "object fsync EIO")?;
    Ok(())
}

#[test]
fn fsync_is_never_retried_after_failure() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::Full)?;
    let target = repo.layout().muse_dir().join("MERGE_STATE.json");
    fs.fail_nth(OpKind::SyncFile, 0, EIO);
    assert!(
        write_state(&repo, &target, b"x\n").is_err(),
        "EIO must fail"
    );
    let syncs = fs
        .ops()
        .iter()
        .filter(|op| op.kind == OpKind::SyncFile)
        .count();
    assert_eq!(syncs, 1, "a failed fsync must not be retried");
    Ok(())
}

#[test]
fn relaxed_completes_despite_fsync_eio() -> TestResult {
    for kind in [OpKind::SyncFile, OpKind::SyncDir] {
        let (result, content, _dir, _fs) = state_write_with_errno(Durability::Relaxed, kind, EIO)?;
        assert!(
            result.is_ok(),
            "Relaxed: EIO from {kind:?} must not fail the write: {result:?}"
        );
        assert_eq!(content, b"new\n", "Relaxed: {kind:?} write completed");
    }
    let (_dir, repo, fs) = faulty_repo(Durability::Relaxed)?;
    fs.fail_nth(OpKind::SyncFile, 0, EIO);
    fs.fail_nth(OpKind::SyncDir, 0, EIO);
    let (id, stored) = repo.objects().write(b"relaxed object\n")?;
    assert!(stored, "Relaxed object write completes");
    assert_eq!(
        &*repo.objects().read(&id)?,
        b"relaxed object\n",
        "reads back"
    );
    Ok(())
}

#[test]
fn retry_after_a_failed_shard_directory_fsync_makes_it_durable() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::Full)?;
    let bytes = b"first attempt fails\n";
    // The first directory fsync is that of objects/ for the new shard.
    fs.fail_nth(OpKind::SyncDir, 0, EIO);
    assert!(
        repo.objects().write(bytes).is_err(),
        "shard directory fsync EIO must fail the write"
    );
    fs.clear();
    repo.objects().write(bytes)?;
    let objects_dir = repo.layout().objects_dir();
    assert!(
        fs.ops()
            .iter()
            .any(|op| op.kind == OpKind::SyncDir && op.path == objects_dir),
        "the retry was acknowledged without ever making the shard's entry in objects/ durable: {:#?}",
        fs.ops()
    );
    Ok(())
}

/// An object whose directory fsync failed (`NotDurable`) is not acknowledged
/// by a retry that finds the file already there until its directory has been
/// synced successfully.
#[test]
fn retry_after_not_durable_syncs_the_directory_before_acknowledging() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::Full)?;
    let bytes = b"retry after a failed directory fsync".to_vec();
    let id = ObjectId::hash(&bytes);
    let shard = repo
        .objects()
        .path(&id)
        .parent()
        .ok_or("no shard dir")?
        .to_path_buf();
    // Fail only the fsync of the shard directory after the rename: the
    // shard's creation syncs `objects/`, the rename then syncs the shard.
    std::fs::create_dir_all(&shard)?;
    fs.clear();
    fs.fail_nth(OpKind::SyncDir, 0, libc::EIO);
    let err = repo
        .objects()
        .write(&bytes)
        .expect_err("directory fsync fails");
    assert!(
        matches!(err, muse_store::Error::Write(WriteError::NotDurable { .. })),
        "{err}"
    );
    fs.clear();
    let (again, stored) = repo.objects().write(&bytes)?;
    assert_eq!(
        (again, stored),
        (id, false),
        "the file is there, no rewrite"
    );
    let synced = fs
        .ops()
        .iter()
        .any(|op| op.kind == OpKind::SyncDir && op.path == shard);
    assert!(
        synced,
        "the retry must fsync the shard directory: {:?}",
        fs.ops()
    );
    fs.clear();
    repo.objects().write(&bytes)?;
    let synced_again = fs.ops().iter().any(|op| op.kind == OpKind::SyncDir);
    assert!(
        !synced_again,
        "once synced, an idempotent write costs no fsync: {:?}",
        fs.ops()
    );
    Ok(())
}
