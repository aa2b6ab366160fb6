//! Commit and snapshot records from arbitrary bytes: the serde types and the
//! verified file readers never panic; a record that parses serialises (as
//! Muse writes it) and parses back equal, and its serialisation is a fixed
//! point; a record the file reader accepts has the id its fields hash to.
#![no_main]
#![expect(
    clippy::disallowed_methods,
    reason = "the fuzz input is planted as a file in the target's own temp dir"
)]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use muse_store::{CommitRecord, SnapshotRecord};

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = serde_json::from_slice::<CommitRecord>(data) {
        let json = record.to_json().expect("a parsed commit record serialises");
        let back: CommitRecord = serde_json::from_slice(&json).expect("written record parses");
        assert_eq!(back, record, "commit record round trip");
        let again = back.to_json().expect("serialises again");
        assert_eq!(again, json, "commit JSON is not a fixed point");
    }
    if let Ok(record) = serde_json::from_slice::<SnapshotRecord>(data) {
        let json = record
            .to_json()
            .expect("a parsed snapshot record serialises");
        let back: SnapshotRecord = serde_json::from_slice(&json).expect("written record parses");
        assert_eq!(back, record, "snapshot record round trip");
        let again = back.to_json().expect("serialises again");
        assert_eq!(again, json, "snapshot JSON is not a fixed point");
    }
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let path = dir.path().join("record.json");
    std::fs::write(&path, data).expect("plant the record");
    if let Ok(record) = CommitRecord::read_file(&path) {
        assert_eq!(record.computed_id(), record.commit_id, "unverified commit");
    }
    if let Ok(record) = SnapshotRecord::read_file(&path) {
        assert_eq!(
            record.computed_id(),
            record.snapshot_id,
            "unverified snapshot"
        );
    }
});
