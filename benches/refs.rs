//! Compare-and-swap ref update latency at each durability level.
//!
//! One iteration = one `RefStore::update` with an expected old value: take
//! `refs/heads/main.lock`, check, write the ref through the durable writer,
//! append the branch and HEAD reflog lines, release the lock.

#![expect(missing_docs, reason = "criterion_group! generates an undocumented fn")]

use criterion::{Criterion, criterion_group, criterion_main};
use muse_store::{BranchName, Durability, Expected, ObjectId, Options, Repository};

fn cas_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("ref_cas_update");
    group.sample_size(50);
    for (name, durability) in [("full", Durability::Full), ("none", Durability::None)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_with(
            dir.path(),
            Options {
                durability,
                ..Options::default()
            },
        )
        .expect("init");
        let refs = repo.refs();
        let main = BranchName::new("main").expect("valid name");
        let mut current: Option<ObjectId> = None;
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                let new = ObjectId::hash(&n.to_le_bytes());
                let expected = current.map_or(Expected::Absent, Expected::Value);
                refs.update(&main, new, expected, "bench")
                    .expect("cas update");
                current = Some(new);
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = cas_update
}
criterion_main!(benches);
