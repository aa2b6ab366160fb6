//! Model-based: a sequence of store operations decoded from the input (write
//! object, CAS update, delete, transaction, state files, op-log append,
//! reopen, a power cut between operations, a power cut in the middle of
//! one) runs against a real repository on the simulated filesystem and a
//! `BTreeMap` model side by side; any disagreement panics. The model and
//! decoder are the ones the proptest suite uses (`tests/it/store_model.rs`).
#![no_main]

#[path = "../../tests/it/store_model.rs"]
#[allow(dead_code)]
mod store_model;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ops = store_model::decode(data, 32);
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    if let Err(message) = store_model::run(dir.path(), &store_model::options(), &ops) {
        panic!("the store disagrees with the model: {message}\nops: {ops:#?}");
    }
});
