//! The order of system calls on every write path: the temp file is created
//! in the target's directory, written, fsynced, renamed over the target, and
//! then the target's directory is fsynced.

use std::fs;
use std::path::Path;

use muse_store::testing::{Op, OpKind};
use muse_store::{Durability, ObjectId, TempKind};

use crate::{TestResult, faulty_repo, pattern};

/// Checks the durable protocol for the last write of `target` in `ops`, and
/// returns how many `write` calls went to its temp file.
fn assert_durable_sequence(ops: &[Op], target: &Path, prefix: &str) -> TestResult<usize> {
    let dir = target.parent().ok_or("target has no parent")?;
    let rename = ops
        .iter()
        .rposition(|op| op.kind == OpKind::Rename && op.path == target)
        .ok_or_else(|| format!("no rename onto {} in {ops:#?}", target.display()))?;
    let create = ops[..rename]
        .iter()
        .rposition(|op| {
            op.kind == OpKind::Create
                && op.path.parent() == Some(dir)
                && op
                    .path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .ok_or_else(|| {
            format!(
                "no temp file with prefix {prefix} created in {} before the rename: {ops:#?}",
                dir.display()
            )
        })?;
    let temp = &ops[create].path;
    let on_temp: Vec<(usize, OpKind)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| &op.path == temp)
        .map(|(i, op)| (i, op.kind))
        .collect();
    let fsync = on_temp
        .iter()
        .find(|(_, kind)| *kind == OpKind::SyncFile)
        .map(|(i, _)| *i)
        .ok_or_else(|| format!("temp file {} never fsynced: {ops:#?}", temp.display()))?;
    assert!(
        fsync < rename,
        "fsync of the temp file (op {fsync}) must come before the rename (op {rename}): {ops:#?}"
    );
    let writes: Vec<usize> = on_temp
        .iter()
        .filter(|(_, kind)| *kind == OpKind::Write)
        .map(|(i, _)| *i)
        .collect();
    assert!(!writes.is_empty(), "nothing written to {}", temp.display());
    assert!(
        writes.iter().all(|&w| create < w && w < fsync),
        "every write must come after the create and before the fsync: {ops:#?}"
    );
    let dir_sync = ops[rename + 1..]
        .iter()
        .position(|op| op.kind == OpKind::SyncDir && op.path == dir);
    assert!(
        dir_sync.is_some(),
        "directory {} not fsynced after the rename: {ops:#?}",
        dir.display()
    );
    Ok(writes.len())
}

#[test]
fn object_write_fsyncs_before_rename_and_dir_after() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::Full)?;
    let (id, stored) = repo.objects().write(b"ordered object\n")?;
    assert!(stored, "a new object must be stored");
    assert_durable_sequence(&fs.ops(), &repo.objects().path(&id), ".obj-tmp-")?;
    // The new shard directory is made durable by syncing objects/.
    let ops = fs.ops();
    let shard = repo.objects().path(&id);
    let shard = shard.parent().ok_or("no shard dir")?;
    let created = ops
        .iter()
        .position(|op| op.kind == OpKind::CreateDir && op.path == shard)
        .ok_or("shard directory was not created through the seam")?;
    assert!(
        ops[created..]
            .iter()
            .any(|op| op.kind == OpKind::SyncDir && op.path == repo.layout().objects_dir()),
        "objects/ not fsynced after creating shard {}: {ops:#?}",
        shard.display()
    );
    Ok(())
}

#[test]
fn small_write_from_path_fsyncs_before_rename_and_dir_after() -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let source = dir.path().join("small.bin");
    fs::write(&source, pattern(10_000, 1))?;
    let (id, stored) = repo.objects().write_from_path(&source)?;
    assert!(stored, "a new object must be stored");
    assert_durable_sequence(&fs.ops(), &repo.objects().path(&id), ".obj-tmp-")?;
    Ok(())
}

#[test]
fn large_write_from_path_streams_and_fsyncs_before_rename_and_dir_after() -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let source = dir.path().join("large.bin");
    let bytes = pattern(1024 * 1024 + 3 * muse_store::STREAM_BUFFER / 2, 2);
    fs::write(&source, &bytes)?;
    let (id, stored) = repo.objects().write_from_path(&source)?;
    assert!(stored, "a new object must be stored");
    assert_eq!(id, ObjectId::hash(&bytes), "id of the streamed file");
    let writes = assert_durable_sequence(&fs.ops(), &repo.objects().path(&id), ".obj-tmp-")?;
    assert!(
        writes > 1,
        "a >1 MiB file must be streamed in several writes, saw {writes}"
    );
    assert_eq!(
        &*repo.objects().read(&id)?,
        &bytes[..],
        "streamed object reads back"
    );
    Ok(())
}

#[test]
fn restore_fsyncs_before_rename_and_dir_after() -> TestResult {
    let (dir, repo, fs) = faulty_repo(Durability::Full)?;
    let (id, _) = repo.objects().write(b"restored bytes\n")?;
    fs.clear();
    repo.objects()
        .restore(&id, dir.path(), Path::new("sub/file.txt"))?;
    let dest = dir.path().join("sub/file.txt");
    assert_durable_sequence(&fs.ops(), &dest, ".restore-tmp-")?;
    assert_eq!(fs::read(&dest)?, b"restored bytes\n", "restored content");
    Ok(())
}

#[test]
fn state_file_fsyncs_before_rename_and_dir_after() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::Full)?;
    let target = repo.layout().muse_dir().join("MERGE_STATE.json");
    repo.writer()
        .write_file(&target, TempKind::State, b"{\"a\": 1}\n")?;
    assert_durable_sequence(&fs.ops(), &target, ".muse-tmp-")?;
    Ok(())
}

#[test]
fn durability_none_makes_no_fsync() -> TestResult {
    let (_dir, repo, fs) = faulty_repo(Durability::None)?;
    repo.objects().write(b"scratch\n")?;
    let syncs: Vec<_> = fs
        .ops()
        .into_iter()
        .filter(|op| matches!(op.kind, OpKind::SyncFile | OpKind::SyncDir))
        .collect();
    assert!(
        syncs.is_empty(),
        "Durability::None must not fsync: {syncs:?}"
    );
    Ok(())
}

#[test]
fn init_makes_every_new_directory_durable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fs = muse_store::testing::FaultFs::new();
    let repo = muse_store::Repository::init_with(
        dir.path(),
        muse_store::Options {
            durability: Durability::Full,
            vfs: std::sync::Arc::new(fs.clone()),
            ..muse_store::Options::default()
        },
    )?;
    let ops = fs.ops();
    let created: Vec<_> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.kind == OpKind::CreateDir)
        .collect();
    assert!(
        created
            .iter()
            .any(|(_, op)| op.path == repo.layout().muse_dir()),
        ".muse must be created through the seam: {ops:#?}"
    );
    for (i, op) in created {
        let parent = op.path.parent().ok_or("no parent")?;
        assert!(
            ops[i + 1..]
                .iter()
                .any(|later| later.kind == OpKind::SyncDir && later.path == parent),
            "{} was created but its parent {} was never fsynced afterwards: {ops:#?}",
            op.path.display(),
            parent.display()
        );
    }
    Ok(())
}
