use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::clock::Timestamp;
use crate::durable::Durability;
use crate::repo::{Options, Repository};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// `../shared` next to this worktree (read-only; never written).
pub(crate) fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// A writable copy of the Muse-written fixture in a temp dir.
pub(crate) fn fixture_copy()
-> std::result::Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let src = shared_dir().join("fixtures/muse-merge-conflict");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(dir.path())
        .status()?;
    assert!(status.success(), "cp -r of the fixture failed");
    let copy = dir.path().join("muse-merge-conflict");
    let status = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&copy)
        .status()?;
    assert!(status.success(), "chmod -R u+w of the fixture copy failed");
    Ok((dir, copy))
}

fn scratch_options() -> Options {
    Options {
        durability: Durability::None,
        ..Options::default()
    }
}

/// Overwrites a record in place, as a person editing it by hand would.
#[expect(
    clippy::disallowed_methods,
    reason = "the test damages a record behind the store's back"
)]
fn tamper(path: &Path, from: &str, to: &str) -> TestResult {
    let text = std::fs::read_to_string(path)?;
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    let status = Command::new("chmod").arg("u+w").arg(path).status()?;
    assert!(status.success(), "chmod u+w failed");
    std::fs::write(path, text.replacen(from, to, 1))?;
    Ok(())
}

fn id(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex).unwrap_or(ObjectId::ZERO)
}

fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

#[test]
fn every_vector_id_is_reproduced() -> TestResult {
    let text = std::fs::read_to_string(shared_dir().join("vectors/ids.json"))?;
    let vectors: serde_json::Value = serde_json::from_str(&text)?;
    let objects = vectors["objects"].as_array().ok_or("no objects")?;
    for v in objects {
        let bytes = hex::decode(str_of(v, "hex_of_bytes"))?;
        assert_eq!(ObjectId::hash(&bytes).to_hex(), str_of(v, "object_id"));
    }
    let snapshots = vectors["snapshots"].as_array().ok_or("no snapshots")?;
    for v in snapshots {
        let manifest: BTreeMap<String, ObjectId> = serde_json::from_value(v["manifest"].clone())?;
        assert_eq!(
            snapshot_id(&manifest).to_hex(),
            str_of(v, "snapshot_id"),
            "snapshot vector {manifest:?}"
        );
    }
    let commits = vectors["commits"].as_array().ok_or("no commits")?;
    for v in commits {
        let parents: Vec<ObjectId> = serde_json::from_value(v["parent_ids"].clone())?;
        let got = commit_id(
            &parents,
            &id(str_of(v, "snapshot_id")),
            str_of(v, "message"),
            str_of(v, "committed_at"),
        );
        assert_eq!(got.to_hex(), str_of(v, "commit_id"), "commit vector {v}");
    }
    assert_eq!(
        objects.len() + snapshots.len() + commits.len(),
        12,
        "all vectors were checked"
    );
    Ok(())
}

#[test]
fn commit_id_sorts_parents() {
    let (a, b) = (ObjectId::hash(b"a"), ObjectId::hash(b"b"));
    let s = ObjectId::EMPTY;
    assert_eq!(
        commit_id(&[a, b], &s, "m", "t"),
        commit_id(&[b, a], &s, "m", "t"),
        "parent order must not change the id"
    );
}

#[test]
fn fixture_records_read_back_and_reserialise_byte_identically() -> TestResult {
    let (_tmp, copy) = fixture_copy()?;
    let repo = Repository::open_with(&copy, scratch_options())?;
    let records = repo.records();
    let mut seen = 0;
    for entry in std::fs::read_dir(copy.join(".muse/commits"))? {
        let path = entry?.path();
        let name = path.file_stem().and_then(|s| s.to_str()).ok_or("name")?;
        let record = records.read_commit(&ObjectId::from_hex(name)?)?;
        assert_eq!(record.format_version, 5, "{}", path.display());
        let bytes = std::fs::read(&path)?;
        assert_eq!(
            String::from_utf8(record.to_json()?)?,
            String::from_utf8(bytes)?,
            "re-serialised {} differs",
            path.display()
        );
        seen += 1;
    }
    for entry in std::fs::read_dir(copy.join(".muse/snapshots"))? {
        let path = entry?.path();
        let name = path.file_stem().and_then(|s| s.to_str()).ok_or("name")?;
        let record = records.read_snapshot(&ObjectId::from_hex(name)?)?;
        let bytes = std::fs::read(&path)?;
        assert_eq!(
            String::from_utf8(record.to_json()?)?,
            String::from_utf8(bytes)?,
            "re-serialised {} differs",
            path.display()
        );
        seen += 1;
    }
    assert_eq!(seen, 6, "three commits and three snapshots");
    // The merge commit's parents and delta came through.
    let feature = records.read_commit(&id(
        "07ffd2ae399a014c9fdd4b04a0f48d2a1a8ab362bef18ac5e9eba3051d725798",
    ))?;
    assert_eq!(feature.branch, "feat/x");
    assert_eq!(
        feature.parents(),
        [id(
            "43b79123ddbd7b6f7483ff12982ea04f6d88bfafba7b031e4631415568a680ae"
        )]
    );
    assert!(feature.structured_delta.is_some(), "structured_delta kept");
    Ok(())
}

#[test]
fn edited_commit_record_is_refused_naming_the_file() -> TestResult {
    let (_tmp, copy) = fixture_copy()?;
    let repo = Repository::open_with(&copy, scratch_options())?;
    let commit = id("43b79123ddbd7b6f7483ff12982ea04f6d88bfafba7b031e4631415568a680ae");
    let path = repo.layout().commit_path(&commit);
    tamper(&path, "\"initial import\"", "\"initial import (edited)\"")?;
    let err = repo
        .records()
        .read_commit(&commit)
        .err()
        .ok_or("edited record was accepted")?;
    let text = err.to_string();
    assert!(matches!(err, Error::RecordIntegrity { .. }), "{text}");
    assert!(
        text.contains(&path.display().to_string()),
        "names the file: {text}"
    );
    assert!(
        text.contains("corrupt") && text.contains("id mismatch"),
        "{text}"
    );
    Ok(())
}

#[test]
fn edited_snapshot_record_is_refused_naming_the_file() -> TestResult {
    let (_tmp, copy) = fixture_copy()?;
    let repo = Repository::open_with(&copy, scratch_options())?;
    let snap = id("6304ba972ec161cb0b52028459cf6a58e22a8075bef36c268324d59461e1be29");
    let path = repo.layout().snapshot_path(&snap);
    // Point song.txt at another (existing) object.
    tamper(
        &path,
        "e41b1709725f0b1a9813996088af0f7b00309d65706236e974e789ffeb5367c5",
        "1b20c0fa3d89a801e1a36b46208aa150f7f3f4efac32682f0ab8150eb7364a16",
    )?;
    let err = repo
        .records()
        .read_snapshot(&snap)
        .err()
        .ok_or("edited record was accepted")?;
    let text = err.to_string();
    assert!(matches!(err, Error::RecordIntegrity { .. }), "{text}");
    assert!(
        text.contains(&path.display().to_string()),
        "names the file: {text}"
    );
    Ok(())
}

#[test]
fn record_under_another_ids_name_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(dir.path(), scratch_options())?;
    let snap = SnapshotRecord::new(BTreeMap::new(), Timestamp::now());
    let other = ObjectId::hash(b"other");
    let wrong = repo.layout().snapshot_path(&other);
    repo.writer()
        .write_file(&wrong, TempKind::State, &snap.to_json()?)?;
    let err = repo
        .records()
        .read_snapshot(&other)
        .err()
        .ok_or("accepted")?;
    assert!(err.to_string().contains("file name"), "{err}");
    assert!(
        err.to_string().contains(&wrong.display().to_string()),
        "{err}"
    );
    Ok(())
}

#[test]
fn write_read_round_trip_is_immutable_and_escapes_non_ascii() -> TestResult {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(dir.path(), scratch_options())?;
    let records = repo.records();
    let mut manifest = BTreeMap::new();
    manifest.insert("café/♫.mid".to_owned(), ObjectId::hash(b"x"));
    manifest.insert("a b/c.txt".to_owned(), ObjectId::EMPTY);
    let snap = SnapshotRecord::new(manifest, Timestamp::now());
    assert!(records.write_snapshot(&snap)?, "first write stores");
    assert!(!records.write_snapshot(&snap)?, "second write is a no-op");
    assert_eq!(records.read_snapshot(&snap.snapshot_id)?, snap);

    let t = Timestamp {
        unix_seconds: 1_767_225_600,
        micros: 0,
    };
    let commit = CommitRecord::new("repo", "main", snap.snapshot_id, &[], "♫ first", "me", t);
    assert_eq!(commit.committed_at, "2026-01-01T00:00:00+00:00");
    assert!(records.write_commit(&commit)?);
    assert!(!records.write_commit(&commit)?);
    let back = records.read_commit(&commit.commit_id)?;
    assert_eq!(back, commit);
    let text = std::fs::read_to_string(repo.layout().commit_path(&commit.commit_id))?;
    assert!(text.contains("\"message\": \"\\u266b first\""), "{text}");
    assert!(
        text.ends_with("}\n") && text.starts_with("{\n  \"commit_id\": "),
        "{text}"
    );
    assert!(text.contains("\"metadata\": {},\n"), "{text}");
    assert!(
        text.contains("\"reviewed_by\": [],\n  \"test_runs\": 0\n}"),
        "{text}"
    );

    let mut forged = commit.clone();
    forged.message = "forged".into();
    assert!(
        matches!(
            records.write_commit(&forged),
            Err(Error::RecordIntegrity { .. })
        ),
        "a record whose id does not match is not written"
    );
    assert!(matches!(
        records.read_commit(&ObjectId::hash(b"nothing")),
        Err(Error::RecordNotFound { .. })
    ));
    Ok(())
}

#[test]
fn unknown_and_missing_fields_are_tolerated() -> TestResult {
    let snap = ObjectId::EMPTY;
    let at = "2026-01-01T00:00:00+00:00";
    let cid = commit_id(&[], &snap, "m", at);
    let text = format!(
        r#"{{"commit_id": "{cid}", "repo_id": "r", "branch": "main", "snapshot_id": "{snap}",
            "message": "m", "committed_at": "{at}", "metadata": null, "future_field": {{"x": 1}}}}"#
    );
    let record: CommitRecord = serde_json::from_str(&text)?;
    assert_eq!(
        record.format_version, 1,
        "missing format_version is Muse's 1"
    );
    assert_eq!(record.sem_ver_bump, "none");
    assert_eq!(record.computed_id(), cid);
    let out = String::from_utf8(record.to_json()?)?;
    assert!(
        out.contains("  \"test_runs\": 0,\n  \"future_field\": {\n    \"x\": 1\n  }\n}\n"),
        "unknown field kept, after the known ones: {out}"
    );
    Ok(())
}

/// The in-place hashing of `snapshot_id` agrees with the format's own
/// statement (join, sort the joined strings, join with NUL) on manifests
/// whose paths are prefixes of each other and differ at every kind of byte.
#[test]
fn snapshot_id_hashes_in_place_as_the_sorted_joined_entries() {
    let by_the_format = |manifest: &BTreeMap<String, ObjectId>| {
        let mut entries: Vec<String> = manifest
            .iter()
            .map(|(path, id)| format!("{path}\0{}", id.to_hex()))
            .collect();
        entries.sort();
        ObjectId::hash(entries.join("\0").as_bytes())
    };
    let names = [
        "a", "a/b", "a-b", "a.b", "a b", "a/b/c", "ab", "b", "é", "e\u{301}", "z/a", "~", "A",
        "a\u{7f}",
    ];
    for mask in 0u32..(1 << names.len()) {
        if mask % 7 != 0 && mask.count_ones() > 3 {
            continue;
        }
        let manifest: BTreeMap<String, ObjectId> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(i, n)| ((*n).to_owned(), ObjectId::hash(&[i as u8])))
            .collect();
        assert_eq!(
            snapshot_id(&manifest),
            by_the_format(&manifest),
            "{manifest:?}"
        );
    }
}
