//! Object ids match the vectors computed by the reference implementation
//! (shared/vectors/ids.json, "objects" section).

use std::fs;
use std::path::PathBuf;

use muse_store::{Durability, ObjectId};
use serde_json::Value;

use crate::{TestResult, muse, repo};

/// `(bytes, object id)` pairs from shared/vectors/ids.json. The file must be
/// there: a missing vector file fails the test rather than skipping it.
fn object_vectors() -> TestResult<Vec<(Vec<u8>, String)>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/ids.json");
    let text = fs::read_to_string(&path)
        .map_err(|e| format!("test vectors missing at {}: {e}", path.display()))?;
    let json: Value = serde_json::from_str(&text)?;
    let objects = json["objects"]
        .as_array()
        .ok_or("ids.json has no \"objects\" array")?;
    let mut out = Vec::new();
    for (i, entry) in objects.iter().enumerate() {
        let bytes = hex::decode(
            entry["hex_of_bytes"]
                .as_str()
                .ok_or_else(|| format!("vector {i}: no hex_of_bytes"))?,
        )?;
        let id = entry["object_id"]
            .as_str()
            .ok_or_else(|| format!("vector {i}: no object_id"))?
            .to_owned();
        out.push((bytes, id));
    }
    assert!(
        out.len() >= 2,
        "expected several object vectors, found {}",
        out.len()
    );
    Ok(out)
}

#[test]
fn object_ids_match_reference_vectors() -> TestResult {
    let vectors = object_vectors()?;
    for (i, (bytes, expected)) in vectors.iter().enumerate() {
        assert_eq!(
            ObjectId::hash(bytes).to_string(),
            *expected,
            "vector {i}: hash of {} bytes",
            bytes.len()
        );
        let parsed = ObjectId::from_hex(expected)?;
        assert_eq!(parsed.to_string(), *expected, "vector {i}: hex round trip");
    }
    assert_eq!(
        vectors
            .iter()
            .find(|(b, _)| b.is_empty())
            .map(|(_, id)| id.as_str()),
        Some(ObjectId::EMPTY.to_hex().as_str()),
        "the empty blob vector is ObjectId::EMPTY"
    );
    Ok(())
}

#[test]
fn stored_objects_land_at_the_reference_path() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    for (i, (bytes, expected)) in object_vectors()?.iter().enumerate() {
        let (id, _) = repo.objects().write(bytes)?;
        assert_eq!(
            id.to_string(),
            *expected,
            "vector {i}: write returns the id"
        );
        let path = dir
            .path()
            .join(".muse/objects")
            .join(&expected[..2])
            .join(&expected[2..]);
        assert_eq!(
            fs::read(&path)?,
            *bytes,
            "vector {i}: raw bytes, no header, at objects/{}/{}",
            &expected[..2],
            &expected[2..]
        );
        let file = dir.path().join(format!("vector-{i}.bin"));
        fs::write(&file, bytes)?;
        let run = muse([
            "plumbing",
            "hash-object",
            "-f",
            "text",
            file.to_str().ok_or("path")?,
        ]);
        assert_eq!(run.code, 0, "vector {i}: hash-object, stderr {:?}", run.err);
        assert_eq!(run.stdout(), format!("{expected}\n"), "vector {i}: CLI id");
    }
    Ok(())
}
