//! Opening a repository from an arbitrary directory image: a fresh
//! repository whose files (chosen from a fixed list of the layout's names,
//! including locks, temp files and a transaction journal) are overwritten
//! with fuzz content, then `Repository::open` (recovery) and every read a
//! front end makes. Errors are fine; a panic or a hang is a bug.
//! Input: repeated `[file selector, length, content...]`.
#![no_main]
#![expect(
    clippy::disallowed_methods,
    reason = "the fuzz input is planted as repository files behind the writer's back"
)]

use libfuzzer_sys::fuzz_target;
use muse_store::{
    Durability, Intent, MergeState, OpLog, Options, RebaseState, Repository, Reservation,
};

const FILES: [&str; 20] = [
    ".muse/repo.json",
    ".muse/HEAD",
    ".muse/config.toml",
    ".muse/refs/heads/main",
    ".muse/refs/heads/feat/x",
    ".muse/refs/heads/main.lock",
    ".muse/refs/heads/.muse-tmp-abc",
    ".muse/ref-transactions/0123456789abcdef0123456789abcdef.json",
    ".muse/logs/HEAD",
    ".muse/logs/refs/heads/main",
    ".muse/MERGE_STATE.json",
    ".muse/REBASE_STATE.json",
    ".muse/commits/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json",
    ".muse/snapshots/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json",
    ".muse/objects/e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ".muse/coordination/reservations/0d6f4a8e-4c1b-4b8e-9a51-3f2c7d9e1a20.json",
    ".muse/coordination/intents/0d6f4a8e-4c1b-4b8e-9a51-3f2c7d9e1a20.json",
    ".muse/op_log/s1/ops.jsonl",
    ".muse/op_log/s1/checkpoint.json",
    ".museignore",
];

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        durability: Durability::None,
        ..Options::default()
    };
    Repository::init_with(dir.path(), options.clone()).expect("init");
    let mut rest = data;
    while let [selector, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (content, next) = tail.split_at(len);
        let path = dir.path().join(FILES[usize::from(*selector) % FILES.len()]);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, content);
        rest = next;
    }
    let Ok(repo) = Repository::open_with(dir.path(), options) else {
        return;
    };
    let _ = repo.info();
    let _ = repo.config().and_then(|c| c.remotes());
    let refs = repo.refs();
    let _ = refs.head();
    let _ = refs.head_commit();
    let _ = refs.head_reflog();
    let records = repo.records();
    if let Ok(branches) = refs.branches() {
        for (branch, state) in branches {
            assert!(!branch.as_str().contains(".."), "{branch:?}");
            let _ = refs.reflog(&branch);
            if let Some(commit) = state.commit()
                && let Ok(record) = records.read_commit(&commit)
            {
                assert_eq!(record.commit_id, commit);
                if let Ok(snapshot) = records.read_snapshot(&record.snapshot_id) {
                    for id in snapshot.manifest.values() {
                        let _ = repo.objects().verify(id);
                    }
                }
            }
        }
    }
    let _ = MergeState::read(&repo);
    let _ = RebaseState::read(&repo);
    let _ = Reservation::list(&repo);
    let _ = Intent::list(&repo);
    if let Ok(sessions) = OpLog::sessions(&repo) {
        for session in sessions {
            let log = OpLog::new(&repo, session);
            let _ = log.read();
            let _ = log.read_checkpoint();
        }
    }
    for id in repo.objects().iter().flatten() {
        if let Ok(bytes) = repo.objects().read(&id) {
            assert_eq!(
                muse_store::ObjectId::hash(&bytes),
                id,
                "read returned bad bytes"
            );
        }
    }
});
