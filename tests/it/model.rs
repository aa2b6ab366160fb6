//! Property tests: random sequences of store operations (objects, CAS
//! updates, deletes, transactions, state files, op-log appends, reopen,
//! power cuts between operations and in the middle of one) against the
//! in-memory model of `store_model.rs`, on the simulated filesystem, shrunk
//! to a minimal failing sequence by proptest.
//!
//! Replay: a failing case is saved to
//! `tests/it/proptest-regressions/model.txt` (its seed) and rerun first by
//! every later run; the minimal sequence is printed. `PROPTEST_CASES`
//! raises the case count.

use std::sync::atomic::{AtomicUsize, Ordering};

use muse_store::testing::Survivors;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use crate::store_model::{Expect, Op, TxChange, decode, options, run};

/// Power cuts made by this module's properties so far.
static CUTS: AtomicUsize = AtomicUsize::new(0);

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        1 => Just(Expect::Any),
        1 => Just(Expect::Absent),
        3 => Just(Expect::Current),
        1 => (0u8..4).prop_map(Expect::Value),
    ]
}

fn tx_change() -> impl Strategy<Value = TxChange> {
    prop_oneof![
        3 => (0u8..8).prop_map(TxChange::Set),
        1 => Just(TxChange::Delete),
        1 => Just(TxChange::Verify),
    ]
}

fn survivors() -> impl Strategy<Value = Survivors> {
    prop_oneof![
        1 => Just(Survivors::Nothing),
        1 => Just(Survivors::Everything),
        3 => any::<u64>().prop_map(Survivors::Random),
    ]
}

/// An operation that is not a cut.
fn plain_op() -> impl Strategy<Value = Op> {
    let branch = 0u8..5;
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Op::WriteObject),
        4 => (branch.clone(), 0u8..8, expect())
            .prop_map(|(branch, value, expect)| Op::Update { branch, value, expect }),
        2 => (branch.clone(), expect()).prop_map(|(branch, expect)| Op::Delete { branch, expect }),
        3 => proptest::collection::vec((branch.clone(), tx_change(), expect()), 0..4)
            .prop_map(Op::Transaction),
        1 => (0u8..8, 0u8..8).prop_map(|(ours, theirs)| Op::WriteMerge { ours, theirs }),
        1 => Just(Op::ClearMerge),
        1 => branch.prop_map(|branch| Op::Reserve { branch }),
        1 => any::<u8>().prop_map(|index| Op::Unreserve { index }),
        1 => any::<u8>().prop_map(|lamport| Op::LogAppend { lamport }),
        1 => Just(Op::Reopen),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => plain_op(),
        2 => survivors().prop_map(|survivors| Op::PowerCut { survivors }),
        4 => (plain_op(), any::<u8>(), survivors()).prop_map(|(op, after, survivors)| {
            Op::CrashMidOp { op: Box::new(op), after, survivors }
        }),
    ]
}

fn scratch() -> Result<tempfile::TempDir, TestCaseError> {
    // On tmpfs when there is one: every cut materialises a directory.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("muse-model-")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    dir.map_err(|e| TestCaseError::fail(e.to_string()))
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = scratch()?;
    match run(dir.path(), &options(), ops) {
        Ok(cuts) => {
            CUTS.fetch_add(cuts, Ordering::Relaxed);
            Ok(())
        }
        Err(message) => Err(TestCaseError::fail(message)),
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        check(&ops)?;
    }

    /// The fuzz target's byte decoder, driven by proptest: the same model,
    /// reached through the path `cargo fuzz run store_model` takes.
    #[test]
    fn decoded_byte_sequences_agree_with_the_model(
        bytes in proptest::collection::vec(any::<u8>(), 0..160)
    ) {
        check(&decode(&bytes, 48))?;
        println!("model: {} power cuts so far", CUTS.load(Ordering::Relaxed));
    }
}
