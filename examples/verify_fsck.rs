//! Verify objects and check a whole repository, before and after damage.
//!
//! Run: `cargo run --example verify_fsck`

use muse_store::{Error, NewCommit, NoProgress, ProblemKind, Repository, fsck};

/// Runs the example (also called by tests/it/examples.rs).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path())?;
    let made = repo.commit_files(
        [("song.txt", "la la la\n"), ("notes.txt", "verse, chorus\n")],
        &NewCommit::new("first"),
    )?;

    // Every object named by the commit verifies.
    for id in made.snapshot.manifest.values() {
        println!("{id}: {} bytes, verified", repo.objects().verify(id)?);
    }
    let report = fsck(&repo, &NoProgress)?;
    println!(
        "fsck: {} objects, {} commits, healthy: {}",
        report.counts.objects,
        report.counts.commits,
        report.is_healthy()
    );
    assert!(report.is_healthy());

    // Damage one object behind the store's back (objects are read-only).
    let victim = made.snapshot.manifest["song.txt"];
    let path = repo.objects().path(&victim);
    let mut perms = std::fs::metadata(&path)?.permissions();
    #[expect(
        clippy::permissions_set_readonly_false,
        reason = "the example damages the object on purpose"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms)?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the example damages the object on purpose"
    )]
    std::fs::write(&path, b"la la LA\n")?;

    // Reads refuse it, naming the object; fsck reports it as damage.
    match repo.objects().read(&victim) {
        Err(e @ Error::Integrity(_)) => println!("read refused: {e}"),
        other => return Err(format!("expected an integrity error, got {other:?}").into()),
    }
    let report = fsck(&repo, &NoProgress)?;
    let damaged: Vec<_> = report.of_kind(ProblemKind::CorruptObject).collect();
    println!(
        "fsck: {} damaged object(s): {}",
        damaged.len(),
        damaged[0].message
    );
    assert!(!report.is_healthy() && damaged.len() == 1);
    Ok(())
}
