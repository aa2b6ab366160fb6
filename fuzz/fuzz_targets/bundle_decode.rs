//! The bundle decoder on arbitrary bytes: `unpack` and `verify` never
//! panic; an `unpack` that fails publishes nothing (no new file under
//! `objects/`, `commits/` or `snapshots/`) and leaves no quarantine.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use muse_store::{Durability, Options, Repository};

static REPO: OnceLock<(tempfile::TempDir, Repository)> = OnceLock::new();

/// Every file below `dir`, counted (the store's directories are two deep).
fn count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 })
        .sum()
}

fn stored(repo: &Repository) -> usize {
    let muse = repo.layout().muse_dir();
    ["objects", "commits", "snapshots"]
        .iter()
        .map(|d| count(&muse.join(d)))
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let (_dir, repo) = REPO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = Options {
            durability: Durability::None,
            ..Options::default()
        };
        let repo = Repository::init_with(dir.path(), options).expect("init");
        (dir, repo)
    });
    let _ = muse_store::verify(&mut &data[..], Path::new("<fuzz>"), Some(repo));
    let before = stored(repo);
    if muse_store::unpack(repo, &mut &data[..], Path::new("<fuzz>")).is_err() {
        assert_eq!(stored(repo), before, "a refused bundle published something");
    }
    let quarantine = repo.layout().quarantine_root();
    assert_eq!(count(&quarantine), 0, "a quarantine was left behind");
});
