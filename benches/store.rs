//! Criterion benchmarks for the durable write path and verified reads.
//!
//! Run with `cargo bench --bench store`; results and how to read them are in
//! docs/benchmarks.md.
//!
//! - `write_4k`: a 4 KiB object write at `Durability::Full` and at
//!   `Durability::None` (the ratio is the cost of the fsyncs), next to the
//!   same protocol done with bare `std` calls (the writer's overhead).
//!   Every iteration writes a new, distinct object: the store is idempotent
//!   and would otherwise skip the write.
//! - `read_4k`, `read_64m`: `ObjectStore::read` (hash check included) next to
//!   plain SHA-256 of the same bytes already in memory, so read speed is a
//!   fraction of the hashing limit.
//!
//! Stores live under cargo's target tmp dir, i.e. on the same filesystem as
//! the build, not on a tmpfs that would make fsync free. The harness is a
//! plain `main` (what `criterion_main!` expands to) so one scratch root can
//! outlive every group.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use muse_store::{Durability, ObjectId, Options, Repository};

const SMALL: usize = 4 * 1024;
const LARGE: usize = 64 * 1024 * 1024;

/// A fresh, empty directory under the run's scratch root.
fn scratch(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir(&dir).expect("create scratch dir");
    dir
}

fn repo(dir: &Path, durability: Durability) -> Repository {
    let options = Options {
        durability,
        ..Options::default()
    };
    Repository::init_with(dir, options).expect("init repository")
}

/// Deterministic, non-repeating filler (so objects of the same size differ).
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Makes `buf` a new object: its first 8 bytes are a counter.
fn next_object(buf: &mut [u8], counter: &mut u64) {
    *counter += 1;
    buf[..8].copy_from_slice(&counter.to_le_bytes());
}

/// The durable-write protocol with nothing but `std`: exclusive create,
/// write, fsync, rename, fsync of the directory. This is the floor the
/// writer's own bookkeeping (hashing, existence check, unique temp name,
/// error mapping, the seam) is measured against.
#[expect(
    clippy::disallowed_methods,
    reason = "a baseline for the durable writer: the bare system calls, outside any repository"
)]
fn bare_durable_write(dir: &Path, temp: &Path, target: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .custom_flags(libc::O_CLOEXEC)
        .open(temp)
        .expect("create temp");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("fsync file");
    drop(file);
    fs::rename(temp, target).expect("rename");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}

fn write_4k(c: &mut Criterion, root: &Path) {
    let mut group = c.benchmark_group("write_4k");
    group.throughput(Throughput::Bytes(SMALL as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    for (name, durability) in [("full", Durability::Full), ("none", Durability::None)] {
        let repo = repo(&scratch(root, name), durability);
        let mut buf = filler(SMALL, 1);
        let mut counter = 0u64;
        group.bench_function(BenchmarkId::new("object_write", name), |b| {
            b.iter(|| {
                next_object(&mut buf, &mut counter);
                let (_, stored) = repo.objects().write(&buf).expect("write object");
                assert!(stored, "every iteration must store a new object");
            });
        });
    }

    // Same shape as the store: one directory, a temp name, a final name.
    let shard = scratch(root, "bare");
    let mut buf = filler(SMALL, 2);
    let mut counter = 0u64;
    group.bench_function(BenchmarkId::new("bare_syscalls", "full"), |b| {
        b.iter(|| {
            next_object(&mut buf, &mut counter);
            let temp = shard.join(format!(".obj-tmp-{counter:016x}"));
            let target = shard.join(format!("{counter:062x}"));
            bare_durable_write(&shard, &temp, &target, &buf);
        });
    });
    group.finish();
}

fn read_group(c: &mut Criterion, root: &Path, name: &str, size: usize) {
    let repo = repo(&scratch(root, name), Durability::None);
    let bytes = filler(size, 3);
    let (id, _) = repo.objects().write(&bytes).expect("write object");
    assert_eq!(
        &*repo.objects().read(&id).expect("read back"),
        &bytes[..],
        "object reads back"
    );

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(size as u64));
    if size >= 1024 * 1024 {
        // ~30 ms per iteration: flat sampling keeps the run short.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(10));
    } else {
        group.sample_size(50);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(4));
    }
    group.bench_function("verified_read", |b| {
        b.iter(|| {
            let read = repo.objects().read(&id).expect("verified read");
            assert_eq!(read.len(), size);
            read
        });
    });
    group.bench_function("sha256_in_memory", |b| {
        b.iter(|| ObjectId::hash(std::hint::black_box(&bytes)));
    });
    group.finish();
}

fn main() {
    // One scratch root for the whole run, removed only at the end: deleting
    // tens of thousands of files between benchmarks would slow the next
    // benchmark's file creations (see docs/benchmarks.md, "Noise").
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("create scratch root");
    let mut c = Criterion::default().configure_from_args();
    write_4k(&mut c, root.path());
    read_group(&mut c, root.path(), "read_4k", SMALL);
    read_group(&mut c, root.path(), "read_64m", LARGE);
    c.final_summary();
}
