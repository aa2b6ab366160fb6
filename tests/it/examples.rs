//! Every program in examples/ runs to success. Each is compiled into this
//! test binary as a module (the test command's `--all-targets` also builds
//! them as their own targets, which checks they compile standalone) and its
//! `main` is called.

use crate::TestResult;

#[path = "../../examples/cas_transaction.rs"]
mod cas_transaction;
#[path = "../../examples/commit_manifest.rs"]
mod commit_manifest;
#[path = "../../examples/verify_fsck.rs"]
mod verify_fsck;

/// The examples this file runs; a new file in examples/ must be added.
const EXAMPLES: [&str; 3] = ["cas_transaction", "commit_manifest", "verify_fsck"];

#[test]
fn every_example_is_run_here() -> TestResult {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut listed: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    listed.sort();
    assert_eq!(listed, EXAMPLES, "examples/ and this test's list differ");
    Ok(())
}

#[test]
fn cas_transaction_runs() {
    cas_transaction::main().expect("example cas_transaction");
}

#[test]
fn commit_manifest_runs() {
    commit_manifest::main().expect("example commit_manifest");
}

#[test]
fn verify_fsck_runs() {
    verify_fsck::main().expect("example verify_fsck");
}
