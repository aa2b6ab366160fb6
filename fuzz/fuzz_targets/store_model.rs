//! Model-based: a sequence of store operations decoded from the input (write
//! object, CAS update, delete, transaction, state files, op-log append,
//! reopen) runs against a real repository in a temp dir and a `BTreeMap`
//! model side by side; any disagreement panics. The model and decoder are
//! the ones the proptest suite uses (`tests/it/store_model.rs`).
#![no_main]

#[path = "../../tests/it/store_model.rs"]
#[allow(dead_code)]
mod store_model;

use libfuzzer_sys::fuzz_target;
use muse_store::{Durability, Options};

fuzz_target!(|data: &[u8]| {
    let ops = store_model::decode(data, 32);
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        durability: Durability::None,
        ..Options::default()
    };
    if let Err(message) = store_model::run(dir.path(), options, &ops) {
        panic!("the store disagrees with the model: {message}\nops: {ops:#?}");
    }
});
