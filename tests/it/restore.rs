//! Restoring objects into a working tree: fresh mtime, atomic replace, and
//! symlinks are never followed.

use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, SystemTime};

use muse_store::{Durability, Error};

use crate::{TestResult, assert_no_temp_files, repo};

const TWO_DAYS: Duration = Duration::from_secs(2 * 24 * 3600);

#[test]
fn restore_gives_a_current_mtime_even_for_a_backdated_object() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let (id, _) = repo.objects().write(b"old object, new file\n")?;
    let object = repo.objects().path(&id);
    let backdated = SystemTime::now() - TWO_DAYS;
    File::open(&object)?.set_modified(backdated)?;
    let stored_mtime = fs::metadata(&object)?.modified()?;
    assert!(
        SystemTime::now().duration_since(stored_mtime)? > Duration::from_secs(2 * 24 * 3600 - 60),
        "the stored object must really be backdated"
    );

    // Over an existing, equally old destination too.
    let dest = dir.path().join("file.txt");
    fs::write(&dest, b"stale\n")?;
    File::options()
        .write(true)
        .open(&dest)?
        .set_modified(backdated)?;

    let before = SystemTime::now() - Duration::from_secs(5);
    repo.objects()
        .restore(&id, dir.path(), Path::new("file.txt"))?;
    repo.objects()
        .restore(&id, dir.path(), Path::new("new/file.txt"))?;
    for path in [dest.clone(), dir.path().join("new/file.txt")] {
        let mtime = fs::metadata(&path)?.modified()?;
        assert!(
            mtime >= before,
            "{}: restored file must have a current mtime, got {:?} old",
            path.display(),
            SystemTime::now().duration_since(mtime).unwrap_or_default()
        );
        assert_eq!(fs::read(&path)?, b"old object, new file\n", "content");
    }
    Ok(())
}

#[test]
fn restore_replaces_a_planted_symlink_without_writing_through_it() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let outside = tempfile::tempdir()?;
    let victim = outside.path().join("victim.txt");
    fs::write(&victim, b"must not change\n")?;
    let dest = dir.path().join("link.txt");
    symlink(&victim, &dest)?;

    let (id, _) = repo.objects().write(b"restored content\n")?;
    repo.objects()
        .restore(&id, dir.path(), Path::new("link.txt"))?;

    assert_eq!(
        fs::read(&victim)?,
        b"must not change\n",
        "restore wrote through the symlink"
    );
    let meta = fs::symlink_metadata(&dest)?;
    assert!(
        meta.file_type().is_file(),
        "the symlink must be replaced by a regular file, found {:?}",
        meta.file_type()
    );
    assert_eq!(fs::read(&dest)?, b"restored content\n", "restored content");

    // A dangling symlink is replaced the same way, nothing is created at its target.
    let dangling_target = outside.path().join("created-through-link");
    let dangling = dir.path().join("dangling.txt");
    symlink(&dangling_target, &dangling)?;
    repo.objects()
        .restore(&id, dir.path(), Path::new("dangling.txt"))?;
    assert!(
        !dangling_target.exists(),
        "restore created a file through a dangling symlink"
    );
    assert!(
        fs::symlink_metadata(&dangling)?.file_type().is_file(),
        "dangling symlink replaced"
    );
    assert_no_temp_files(dir.path(), "symlink replace")?;
    Ok(())
}

#[test]
fn restore_refuses_a_symlinked_parent_directory() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let outside = tempfile::tempdir()?;
    symlink(outside.path(), dir.path().join("linked"))?;
    let (id, _) = repo.objects().write(b"should stay in the store\n")?;

    for rel in ["linked/file.txt", "linked/deeper/file.txt"] {
        let err = repo
            .objects()
            .restore(&id, dir.path(), Path::new(rel))
            .expect_err(&format!(
                "{rel}: restore through a symlinked parent must fail"
            ));
        assert!(
            matches!(err, Error::Symlink { .. }),
            "{rel}: expected a symlink error, got {err:?}"
        );
        assert!(
            err.to_string().contains("linked"),
            "{rel}: error must name the symlink: {err}"
        );
    }
    let leaked: Vec<_> = fs::read_dir(outside.path())?.collect();
    assert!(
        leaked.is_empty(),
        "nothing may be written through the symlinked parent: {leaked:?}"
    );
    assert_no_temp_files(dir.path(), "symlinked parent")?;
    assert_no_temp_files(outside.path(), "symlinked parent (outside)")?;
    Ok(())
}

#[test]
fn restore_refuses_paths_that_escape_the_work_tree() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let (id, _) = repo.objects().write(b"x\n")?;
    for rel in ["../escape.txt", "a/../../escape.txt", "/tmp/abs.txt", ""] {
        let err = repo
            .objects()
            .restore(&id, dir.path(), Path::new(rel))
            .expect_err(&format!("'{rel}' must be refused"));
        assert!(err.is_user_error(), "'{rel}': a user error, got {err:?}");
    }
    let parent = dir.path().parent().ok_or("no parent")?;
    assert!(
        !parent.join("escape.txt").exists(),
        "a file escaped the work tree"
    );
    Ok(())
}

#[test]
fn restore_replaces_an_existing_file_atomically() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let dest = dir.path().join("a.txt");
    fs::write(&dest, b"old old old old old old\n")?;
    let ino_before = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&dest)?);
    let (id, _) = repo.objects().write(b"new\n")?;
    repo.objects()
        .restore(&id, dir.path(), Path::new("a.txt"))?;
    assert_eq!(fs::read(&dest)?, b"new\n", "replaced whole, no old tail");
    let ino_after = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&dest)?);
    assert_ne!(
        ino_before, ino_after,
        "restore must rename a new file into place, not write in place"
    );
    Ok(())
}
