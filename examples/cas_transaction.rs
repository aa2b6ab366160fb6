//! Compare-and-swap ref updates and a multi-ref transaction, with the
//! conflict a concurrent writer causes handled by retrying.
//!
//! Run: `cargo run --example cas_transaction`

use muse_store::{BranchName, Error, Expected, NewCommit, Repository};

/// Runs the example (also called by tests/it/examples.rs).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path())?;
    let one = repo
        .commit_files([("a.txt", "1")], &NewCommit::new("one"))?
        .commit
        .commit_id;
    let two = repo
        .commit_files([("a.txt", "2")], &NewCommit::new("two"))?
        .commit
        .commit_id;
    let refs = repo.refs();

    // Create a branch only if it does not exist yet.
    let release = BranchName::new("release")?;
    refs.update(&release, one, Expected::Absent, "create release")?;

    // A compare-and-swap from a stale value fails and changes nothing; the
    // error carries what was expected and what is there.
    match refs.update(&release, two, Expected::Value(two), "stale move") {
        Err(Error::CasMismatch(conflict)) => {
            println!(
                "refused: {} expected {} but holds {:?}",
                conflict.branch, conflict.expected, conflict.actual
            );
            // Retry from what is really there.
            let actual = conflict.actual.ok_or("release vanished")?;
            refs.update(&release, two, Expected::Value(actual), "move release")?;
        }
        other => return Err(format!("expected a CAS mismatch, got {other:?}").into()),
    }
    assert_eq!(refs.branch(&release)?, Some(two));

    // A transaction: both refs move, or neither does.
    let stable = BranchName::new("stable")?;
    let mut tx = refs.transaction("promote");
    tx.create(stable.clone(), two)
        .update(release.clone(), one, Expected::Value(two));
    let moved = tx.commit()?;
    println!("transaction moved {} refs", moved.len());

    // One expectation fails: nothing of the transaction is applied.
    let mut tx = refs.transaction("conflicting");
    tx.update(stable.clone(), one, Expected::Value(two)).update(
        release.clone(),
        two,
        Expected::Value(two),
    ); // release is at `one`
    match tx.commit() {
        Err(Error::CasMismatch(conflict)) => println!("transaction refused on {}", conflict.branch),
        other => return Err(format!("expected a CAS mismatch, got {other:?}").into()),
    }
    assert_eq!(
        refs.branch(&stable)?,
        Some(two),
        "stable did not move either"
    );
    Ok(())
}
