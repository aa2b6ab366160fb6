//! The object store: every read path refuses damaged objects, writes under a
//! wrong id are refused, damaged objects are repaired by a verified write.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use muse_store::{Durability, Error, ObjectId, Repository};

use crate::{
    Damage, TestResult, assert_no_temp_files, damage_object, make_writable, muse, pattern, repo,
};

/// Object sizes: a small one read into memory, and one over the 1 MiB
/// threshold that is memory-mapped or streamed.
const SIZES: [usize; 2] = [4096 + 17, 1024 * 1024 + 4096];

fn assert_integrity_error(err: &dyn std::fmt::Display, id: &ObjectId, path: &str) {
    let text = err.to_string();
    assert!(
        text.contains(&id.to_string()),
        "{path}: error must name the id {id}: {text}"
    );
    assert!(
        text.contains("integrity check"),
        "{path}: error must say 'integrity check': {text}"
    );
}

/// Checks that every library read path refuses the damaged object `id`.
fn assert_all_library_reads_refuse(
    repo: &Repository,
    work_tree: &Path,
    id: &ObjectId,
    context: &str,
) -> TestResult {
    let objects = repo.objects();

    let err = objects
        .read(id)
        .expect_err(&format!("{context}: read must refuse"));
    assert!(
        matches!(err, Error::Integrity { .. }),
        "{context}: read gave {err:?}"
    );
    assert_integrity_error(&err, id, &format!("{context} read"));

    let err = objects
        .verify(id)
        .expect_err(&format!("{context}: verify must refuse"));
    assert_integrity_error(&err, id, &format!("{context} verify"));

    // The streaming reader must never give a clean end-of-file.
    let mut reader = objects.open(id)?;
    let mut sink = Vec::new();
    let err = reader
        .read_to_end(&mut sink)
        .expect_err(&format!("{context}: streaming read must not end cleanly"));
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::InvalidData,
        "{context}: stream error kind"
    );
    assert_integrity_error(&err, id, &format!("{context} stream"));
    // And it stays failed.
    let mut buf = [0u8; 16];
    assert!(
        reader.read(&mut buf).is_err(),
        "{context}: a read after the failure must fail again, not return 0"
    );

    let mut out = Vec::new();
    let err = objects
        .copy_to(id, &mut out)
        .expect_err(&format!("{context}: copy_to must refuse"));
    assert_integrity_error(&err, id, &format!("{context} copy_to"));
    assert!(
        out.is_empty(),
        "{context}: copy_to wrote {} bytes of a corrupt object",
        out.len()
    );

    // Restore over an existing file: it must stay untouched.
    let dest = work_tree.join("restored.bin");
    fs::write(&dest, b"precious user data\n")?;
    let err = objects
        .restore(id, work_tree, Path::new("restored.bin"))
        .expect_err(&format!("{context}: restore must refuse"));
    assert_integrity_error(&err, id, &format!("{context} restore"));
    assert_eq!(
        fs::read(&dest)?,
        b"precious user data\n",
        "{context}: restore must leave the destination untouched"
    );
    // Restore to a new path: it must not appear.
    let fresh = Path::new("new-dir/fresh.bin");
    assert!(
        objects.restore(id, work_tree, fresh).is_err(),
        "{context}: restore to a new path must refuse"
    );
    assert!(
        !work_tree.join(fresh).exists(),
        "{context}: a refused restore must not create the destination"
    );
    assert_no_temp_files(work_tree, context)?;
    Ok(())
}

fn assert_cli_reads_refuse(work_tree: &Path, id: &ObjectId, context: &str) -> TestResult {
    let dir = work_tree.to_str().ok_or("non-UTF-8 temp dir")?;
    let hex = id.to_string();

    let run = muse(["-C", dir, "plumbing", "cat-object", &hex]);
    assert_eq!(
        run.code, 3,
        "{context}: cat-object exit code, stderr {:?}",
        run.err
    );
    assert!(
        run.out.is_empty(),
        "{context}: cat-object printed {} bytes of a corrupt object",
        run.out.len()
    );
    assert_integrity_error(&run.err, id, &format!("{context} cat-object"));

    let run = muse(["-C", dir, "plumbing", "cat-object", &hex, "-f", "info"]);
    assert_eq!(run.code, 3, "{context}: cat-object -f info exit code");
    assert_integrity_error(&run.err, id, &format!("{context} cat-object -f info"));

    let run = muse(["-C", dir, "plumbing", "verify-object", &hex]);
    assert_eq!(run.code, 1, "{context}: verify-object exit code");
    let json = run.json()?;
    assert_eq!(json["all_ok"], false, "{context}: all_ok");
    assert_eq!(json["failed"], 1, "{context}: failed count");
    let row = &json["results"][0];
    assert_eq!(row["object_id"], hex, "{context}: result names the id");
    assert_eq!(row["ok"], false, "{context}: ok");
    let error = row["error"].as_str().ok_or("error must be a string")?;
    // The reference's words for a failed verification.
    assert!(
        error.starts_with(&format!(
            "hash mismatch: stored {}\u{2026} recomputed ",
            &hex[..12]
        )),
        "{context} verify-object: {error}"
    );
    Ok(())
}

#[test]
fn damaged_objects_are_refused_by_every_read_path() -> TestResult {
    for size in SIZES {
        for damage in Damage::ALL {
            let (dir, repo) = repo(Durability::None)?;
            let bytes = pattern(size, damage as u8);
            let (id, _) = repo.objects().write(&bytes)?;
            // Sanity: every path accepts it before the damage.
            assert_eq!(&*repo.objects().read(&id)?, &bytes[..], "intact read");
            damage_object(&repo, &id, damage)?;
            let context = format!("{damage:?} object of {size} bytes");
            assert_all_library_reads_refuse(&repo, dir.path(), &id, &context)?;
            assert_cli_reads_refuse(dir.path(), &id, &context)?;
        }
    }
    Ok(())
}

#[test]
fn intact_objects_pass_every_read_path() -> TestResult {
    for size in [0, 1, SIZES[0], SIZES[1]] {
        let (dir, repo) = repo(Durability::None)?;
        let bytes = pattern(size, 5);
        let (id, stored) = repo.objects().write(&bytes)?;
        assert!(stored, "new object stored");
        assert_eq!(&*repo.objects().read(&id)?, &bytes[..], "read {size}");
        assert_eq!(repo.objects().verify(&id)?, size as u64, "verify {size}");
        let mut streamed = Vec::new();
        repo.objects().open(&id)?.read_to_end(&mut streamed)?;
        assert_eq!(streamed, bytes, "stream {size}");
        let mut copied = Vec::new();
        assert_eq!(
            repo.objects().copy_to(&id, &mut copied)?,
            size as u64,
            "copy_to size"
        );
        assert_eq!(copied, bytes, "copy_to {size}");
        repo.objects()
            .restore(&id, dir.path(), Path::new("out.bin"))?;
        assert_eq!(
            fs::read(dir.path().join("out.bin"))?,
            bytes,
            "restore {size}"
        );
        let run = muse([
            "-C",
            dir.path().to_str().ok_or("path")?,
            "plumbing",
            "cat-object",
            &id.to_string(),
        ]);
        assert_eq!(run.code, 0, "cat-object exit, stderr {:?}", run.err);
        assert_eq!(run.out, bytes, "cat-object bytes {size}");
        let mode = fs::metadata(repo.objects().path(&id))?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o444, "stored objects are read-only");
    }
    Ok(())
}

#[test]
fn objects_with_other_modes_are_read_normally() -> TestResult {
    let (_dir, repo) = repo(Durability::None)?;
    let (id, _) = repo.objects().write(b"written by another tool\n")?;
    make_writable(&repo.objects().path(&id))?;
    assert_eq!(
        &*repo.objects().read(&id)?,
        b"written by another tool\n",
        "a 0644 object reads"
    );
    Ok(())
}

#[test]
fn missing_object_is_not_found_not_integrity() -> TestResult {
    let (_dir, repo) = repo(Durability::None)?;
    let id = ObjectId::hash(b"never stored");
    let err = repo.objects().read(&id).expect_err("missing object");
    assert!(matches!(err, Error::NotFound { .. }), "got {err:?}");
    assert!(
        err.to_string().contains(&id.to_string()),
        "names the id: {err}"
    );
    assert!(
        repo.objects().open(&id).is_err(),
        "open of a missing object"
    );
    assert!(
        !repo.objects().contains(&id),
        "contains of a missing object"
    );
    Ok(())
}

#[test]
fn write_with_wrong_id_is_refused_and_changes_nothing() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let good = b"the real content\n";
    let (id, _) = repo.objects().write(good)?;
    let path = repo.objects().path(&id);
    let before = fs::read(&path)?;
    let err = repo
        .objects()
        .write_with_id(&id, b"impostor content\n")
        .expect_err("bytes that do not hash to the id must be refused");
    assert!(
        err.to_string().contains("integrity"),
        "message must contain 'integrity': {err}"
    );
    assert!(
        err.to_string().contains(&id.to_string()),
        "message must name the id: {err}"
    );
    assert_eq!(fs::read(&path)?, before, "stored object unchanged");
    assert_eq!(&*repo.objects().read(&id)?, good, "still reads verified");

    // Under an id that is not stored at all: nothing appears.
    let absent = ObjectId::hash(b"something else");
    assert!(
        repo.objects().write_with_id(&absent, good).is_err(),
        "mismatch under an absent id"
    );
    assert!(!repo.objects().contains(&absent), "nothing stored under it");
    assert!(
        !repo
            .objects()
            .path(&absent)
            .parent()
            .ok_or("no parent")?
            .exists()
            || fs::read_dir(repo.objects().path(&absent).parent().ok_or("no parent")?)?
                .next()
                .is_none(),
        "no file in the absent id's shard"
    );
    assert_no_temp_files(dir.path(), "write_with_id mismatch")?;
    Ok(())
}

#[test]
fn write_with_id_of_matching_bytes_is_idempotent() -> TestResult {
    let (_dir, repo) = repo(Durability::None)?;
    let bytes = b"matching\n";
    let id = ObjectId::hash(bytes);
    assert!(
        repo.objects().write_with_id(&id, bytes)?,
        "first write stores"
    );
    let modified = fs::metadata(repo.objects().path(&id))?.modified()?;
    let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(repo.objects().path(&id))?);
    assert!(
        !repo.objects().write_with_id(&id, bytes)?,
        "second write is a no-op"
    );
    let meta = fs::metadata(repo.objects().path(&id))?;
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&meta),
        ino,
        "a valid object is not rewritten"
    );
    // The content and inode stay; the mtime is refreshed (never moved
    // back) so that a concurrent `gc`, which prunes by age, keeps an object
    // a writer has just re-used.
    assert!(
        meta.modified()? >= modified,
        "mtime only moves forward (freshened for gc)"
    );
    Ok(())
}

#[test]
fn writing_over_a_damaged_object_repairs_it() -> TestResult {
    for size in SIZES {
        for damage in Damage::ALL {
            let (dir, repo) = repo(Durability::None)?;
            let bytes = pattern(size, 11);
            let (id, _) = repo.objects().write(&bytes)?;
            damage_object(&repo, &id, damage)?;
            assert!(repo.objects().verify(&id).is_err(), "{damage:?} damaged");
            let (again, stored) = repo.objects().write(&bytes)?;
            assert_eq!(again, id, "same id");
            assert!(
                stored,
                "{damage:?} {size}: the repair must write a new file"
            );
            assert_eq!(
                &*repo.objects().read(&id)?,
                &bytes[..],
                "{damage:?} repaired"
            );
            let mode = fs::metadata(repo.objects().path(&id))?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o444, "repaired object is read-only again");
            assert_no_temp_files(dir.path(), "repair")?;
        }
    }
    Ok(())
}

#[test]
fn write_with_id_and_write_from_path_also_repair() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let small = pattern(2000, 1);
    let (id, _) = repo.objects().write(&small)?;
    damage_object(&repo, &id, Damage::FlippedBit)?;
    assert!(
        repo.objects().write_with_id(&id, &small)?,
        "write_with_id repairs"
    );
    assert_eq!(
        &*repo.objects().read(&id)?,
        &small[..],
        "repaired by write_with_id"
    );

    let large = pattern(1024 * 1024 + 10, 2);
    let source = dir.path().join("large.bin");
    fs::write(&source, &large)?;
    let (id, _) = repo.objects().write_from_path(&source)?;
    damage_object(&repo, &id, Damage::FlippedBit)?;
    let (again, stored) = repo.objects().write_from_path(&source)?;
    assert!(
        again == id && stored,
        "write_from_path repairs a damaged object"
    );
    assert_eq!(
        &*repo.objects().read(&id)?,
        &large[..],
        "repaired by streaming"
    );
    Ok(())
}

#[test]
fn write_from_path_refuses_directory_and_missing_file() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let missing = dir.path().join("no-such-file");
    let err = repo
        .objects()
        .write_from_path(&missing)
        .expect_err("missing source");
    assert!(
        err.to_string().contains("no-such-file"),
        "error names the missing file: {err}"
    );
    let err = repo
        .objects()
        .write_from_path(dir.path())
        .expect_err("directory source");
    assert!(
        err.to_string().contains("directory"),
        "error says it is a directory: {err}"
    );
    Ok(())
}

#[test]
fn iter_lists_objects_and_skips_temp_files_and_junk() -> TestResult {
    let (_dir, repo) = repo(Durability::None)?;
    let mut ids: Vec<ObjectId> = (0..20u8)
        .map(|i| repo.objects().write(&pattern(100, i)).map(|(id, _)| id))
        .collect::<Result<_, _>>()?;
    let shard = repo
        .objects()
        .path(&ids[0])
        .parent()
        .ok_or("no shard")?
        .to_path_buf();
    fs::write(shard.join(".obj-tmp-0123456789abcdef"), b"half written")?;
    fs::write(shard.join("README"), b"junk")?;
    fs::create_dir_all(repo.layout().objects_dir().join("zz"))?;
    fs::create_dir_all(repo.layout().objects_dir().join("pack"))?;
    let mut listed: Vec<ObjectId> = repo.objects().iter().collect::<Result<_, _>>()?;
    ids.sort();
    listed.sort();
    assert_eq!(listed, ids, "iter lists exactly the stored objects");
    assert!(ids.iter().all(|id| repo.objects().contains(id)), "contains");
    Ok(())
}

#[test]
fn streaming_reader_treats_an_empty_buffer_as_no_read() -> TestResult {
    // std::io::Read allows a zero-length buffer; Ok(0) then does not mean
    // end-of-file, and the reader must not conclude the object is complete.
    for size in [0, 100, SIZES[1]] {
        let (_dir, repo) = repo(Durability::None)?;
        let bytes = pattern(size, 4);
        let (id, _) = repo.objects().write(&bytes)?;
        let mut reader = repo.objects().open(&id)?;
        assert_eq!(
            reader.read(&mut [])?,
            0,
            "{size}: an empty buffer reads nothing"
        );
        let mut first = [0u8; 10];
        let n = reader.read(&mut first)?;
        assert_eq!(&first[..n], &bytes[..n], "{size}: first bytes");
        assert_eq!(reader.read(&mut [])?, 0, "{size}: empty buffer mid-stream");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest)?;
        assert_eq!(
            rest,
            &bytes[n..],
            "{size}: the rest of the object streams on"
        );
    }
    Ok(())
}
