//! Property tests: random sequences of store operations (objects, CAS
//! updates, deletes, transactions, state files, op-log appends, reopen)
//! against the in-memory model of `store_model.rs`, shrunk to a minimal
//! failing sequence by proptest. `PROPTEST_CASES` raises the case count;
//! a failure is saved by proptest and printed with its minimal sequence.

use proptest::prelude::*;

use muse_store::{Durability, Options};

use crate::store_model::{Expect, Op, TxChange, decode, run};

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

fn op() -> impl Strategy<Value = Op> {
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

fn options() -> Options {
    // No fsyncs: the model checks logic, not durability (the power-cut and
    // SIGKILL suites check that), and this keeps 64 cases within seconds.
    Options {
        durability: Durability::None,
        ..Options::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Err(message) = run(dir.path(), options(), &ops) {
            return Err(TestCaseError::fail(message));
        }
    }

    /// The fuzz target's byte decoder, driven by proptest: the same model,
    /// reached through the path `cargo fuzz run store_model` takes.
    #[test]
    fn decoded_byte_sequences_agree_with_the_model(
        bytes in proptest::collection::vec(any::<u8>(), 0..160)
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let ops = decode(&bytes, 48);
        if let Err(message) = run(dir.path(), options(), &ops) {
            return Err(TestCaseError::fail(message));
        }
    }
}
