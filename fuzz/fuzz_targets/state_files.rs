//! State files from arbitrary bytes, through the serde types and through
//! each file's public read path in a real repository: never a panic; a value
//! that parses serialises and parses back equal. For `ops.jsonl`, an append
//! after whatever the file held keeps every entry that read before and adds
//! exactly the new one (a torn tail is cut, never glued to the new line).
//! The first byte picks the file, the rest is its content.
#![no_main]
#![expect(
    clippy::disallowed_methods,
    reason = "the fuzz input is planted as a state file behind the writer's back"
)]

use std::fmt::Debug;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use muse_store::{
    Checkpoint, Durability, Intent, MergeState, OpEntry, OpLog, Options, RebaseState, Repository,
    Reservation, SessionId,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

const UUID: &str = "0d6f4a8e-4c1b-4b8e-9a51-3f2c7d9e1a20";

static REPO: OnceLock<(tempfile::TempDir, Repository)> = OnceLock::new();

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        let json = serde_json::to_vec_pretty(&value).expect("a parsed value serialises");
        let back: T = serde_json::from_slice(&json).expect("written value parses");
        assert_eq!(back, value, "round trip");
    }
}

fn plant(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create dir");
    }
    std::fs::write(path, bytes).expect("plant file");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (_dir, repo) = REPO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = Options {
            durability: Durability::None,
            ..Options::default()
        };
        let repo = Repository::init_with(dir.path(), options).expect("init");
        (dir, repo)
    });
    let layout = repo.layout();
    let session = SessionId::new("fuzz").expect("session id");
    let oplog = OpLog::new(repo, session.clone());
    match selector % 6 {
        0 => {
            round_trip::<MergeState>(body);
            plant(&layout.merge_state(), body);
            let _ = MergeState::read(repo);
            let _ = std::fs::remove_file(layout.merge_state());
        }
        1 => {
            round_trip::<RebaseState>(body);
            plant(&layout.rebase_state(), body);
            let _ = RebaseState::read(repo);
            let _ = std::fs::remove_file(layout.rebase_state());
        }
        2 => {
            round_trip::<Reservation>(body);
            let path = layout.reservations_dir().join(format!("{UUID}.json"));
            plant(&path, body);
            if let Ok(all) = Reservation::list(repo) {
                for r in all {
                    assert_eq!(r.reservation_id.to_string(), UUID, "id must match the name");
                }
            }
            let _ = std::fs::remove_file(path);
        }
        3 => {
            round_trip::<Intent>(body);
            let path = layout.intents_dir().join(format!("{UUID}.json"));
            plant(&path, body);
            let _ = Intent::list(repo);
            let _ = std::fs::remove_file(path);
        }
        4 => {
            for line in body.split(|&b| b == b'\n') {
                round_trip::<OpEntry>(line);
            }
            let path = layout.ops_path(&session);
            plant(&path, body);
            let before = oplog.read();
            let entry = OpEntry::new("fuzz", 1, "code", serde_json::Value::Null);
            oplog.append(&entry).expect("append after any content");
            let after = oplog.read();
            if let Ok(mut before) = before {
                before.push(entry);
                assert_eq!(
                    after.expect("reads after append"),
                    before,
                    "append lost or glued"
                );
            }
            let _ = std::fs::remove_file(path);
        }
        _ => {
            round_trip::<Checkpoint>(body);
            let path = layout.checkpoint_path(&session);
            plant(&path, body);
            let _ = oplog.read_checkpoint();
            let _ = std::fs::remove_file(path);
        }
    }
});
