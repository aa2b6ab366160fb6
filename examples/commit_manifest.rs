//! Commit a tree held in memory (no working tree at all), then read it back
//! through the verified stores: the way a front end that keeps its own view
//! of files embeds muse-store.
//!
//! Run: `cargo run --example commit_manifest`

use std::collections::BTreeMap;

use muse_store::{NewCommit, Options, Repository};

/// Runs the example (also called by tests/it/examples.rs).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::open_or_init(dir.path(), Options::default())?;

    // The tree, as a front end would hold it: paths and bytes.
    let files: BTreeMap<&str, &[u8]> = BTreeMap::from([
        ("README.md", &b"# demo\n"[..]),
        ("src/lib.rs", b"pub fn answer() -> u32 { 42 }\n"),
    ]);
    let first = repo.commit_files(
        files,
        &NewCommit::new("import").author("Ada <ada@example.org>"),
    )?;
    println!(
        "committed {} on {} ({} files)",
        first.commit.commit_id,
        first.branch,
        first.snapshot.manifest.len()
    );

    // A second commit that changes one file: store the blob, then commit a
    // manifest of ids.
    let (changed, _) = repo.objects().write(b"pub fn answer() -> u32 { 43 }\n")?;
    let mut manifest = first.snapshot.manifest.clone();
    manifest.insert("src/lib.rs".to_owned(), changed);
    let second = repo.commit_manifest(manifest, &NewCommit::new("bump the answer"))?;
    assert_eq!(second.parent, Some(first.commit.commit_id));

    // Read it back: revision syntax, verified records, verified objects.
    let tip = repo.resolve("main")?;
    let parent = repo.resolve("main~1")?;
    assert_eq!(
        (tip, parent),
        (second.commit.commit_id, first.commit.commit_id)
    );
    for (path, id) in repo.records().tree_of(Some(tip))? {
        let bytes = repo.objects().read(&id)?;
        println!("{path}: {} bytes, {}", bytes.len(), &id.to_hex()[..12]);
    }
    let log = repo.refs().reflog(&second.branch)?;
    for entry in &log.entries {
        println!(
            "reflog: {} -> {} {}",
            &entry.old.to_hex()[..8],
            &entry.new.to_hex()[..8],
            entry.operation
        );
    }
    assert_eq!(log.entries.len(), 2, "one reflog line per commit");
    Ok(())
}
