//! Many threads writing at once: every write succeeds, every object reads
//! back verified, a shared file holds one writer's value whole, and no temp
//! file is left behind.

use std::collections::HashSet;
use std::fs;
use std::sync::Barrier;
use std::thread;

use muse_store::{Durability, ObjectId, TempKind};

use crate::{TestResult, assert_no_temp_files, pattern, repo};

/// Runs `f(i)` on `n` threads that start together; returns their results in
/// thread order.
fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                scope.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a writer thread panicked"))
            .collect()
    })
}

fn distinct_bytes(i: usize) -> Vec<u8> {
    let mut bytes = format!("object number {i}\n").into_bytes();
    bytes.extend(pattern(1000 + i * 37, i as u8));
    bytes
}

#[test]
fn two_hundred_threads_write_distinct_objects() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let results = race(200, |i| repo.objects().write(&distinct_bytes(i)));
    let mut ids = HashSet::new();
    for (i, result) in results.into_iter().enumerate() {
        let (id, stored) = result.map_err(|e| format!("thread {i}: {e}"))?;
        assert!(stored, "thread {i}: a distinct object is newly stored");
        assert_eq!(id, ObjectId::hash(&distinct_bytes(i)), "thread {i}: id");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 200, "200 distinct ids");
    for (i, id) in ids.iter().enumerate() {
        repo.objects()
            .verify(id)
            .map_err(|e| format!("object {i} {id}: {e}"))?;
    }
    for i in 0..200 {
        let id = ObjectId::hash(&distinct_bytes(i));
        assert_eq!(
            repo.objects().read(&id)?.into_vec(),
            distinct_bytes(i),
            "object {i} reads back"
        );
    }
    let listed = repo.objects().iter().collect::<Result<HashSet<_>, _>>()?;
    assert_eq!(listed, ids, "iter lists exactly the 200 objects");
    assert_no_temp_files(dir.path(), "200 distinct writers")?;
    Ok(())
}

#[test]
fn two_hundred_threads_write_distinct_objects_durably() -> TestResult {
    // The same race with the full fsync protocol, so shard-directory creation
    // and syncing race too.
    let (dir, repo) = repo(Durability::Full)?;
    let results = race(200, |i| repo.objects().write(&distinct_bytes(i)));
    for (i, result) in results.into_iter().enumerate() {
        let (id, _) = result.map_err(|e| format!("thread {i}: {e}"))?;
        repo.objects()
            .verify(&id)
            .map_err(|e| format!("object {i}: {e}"))?;
    }
    assert_no_temp_files(dir.path(), "200 durable writers")?;
    Ok(())
}

#[test]
fn fifty_threads_write_the_same_object() -> TestResult {
    for (size, durability) in [
        (64 * 1024, Durability::None),
        (1024 * 1024 + 5, Durability::None),
        (4096, Durability::Full),
    ] {
        let (dir, repo) = repo(durability)?;
        let bytes = pattern(size, 42);
        let source = dir.path().join("source.bin");
        fs::write(&source, &bytes)?;
        let expected = ObjectId::hash(&bytes);
        // Half write from memory, half stream from a file.
        let results = race(50, |i| {
            if i % 2 == 0 {
                repo.objects().write(&bytes)
            } else {
                repo.objects().write_from_path(&source)
            }
        });
        let mut stored = 0;
        for (i, result) in results.into_iter().enumerate() {
            let (id, new) = result.map_err(|e| format!("thread {i} ({size} bytes): {e}"))?;
            assert_eq!(id, expected, "thread {i}: id");
            stored += usize::from(new);
        }
        assert!(stored >= 1, "at least one writer stored the object");
        assert_eq!(
            &*repo.objects().read(&expected)?,
            &bytes[..],
            "the shared object reads back verified ({size} bytes)"
        );
        assert_eq!(
            repo.objects().iter().collect::<Result<Vec<_>, _>>()?,
            vec![expected],
            "exactly one object stored"
        );
        assert_no_temp_files(dir.path(), &format!("50 same-object writers, {size} bytes"))?;
    }
    Ok(())
}

#[test]
fn fifty_threads_write_the_same_state_file() -> TestResult {
    for durability in [Durability::None, Durability::Full] {
        let (dir, repo) = repo(durability)?;
        let target = repo.layout().muse_dir().join("MERGE_STATE.json");
        // Values of different lengths, so a mix or a torn write shows.
        let value = |i: usize| {
            let mut v = format!("{{\"writer\": {i}, \"pad\": \"").into_bytes();
            v.extend(std::iter::repeat_n(
                b'a' + (i % 26) as u8,
                20_000 + i * 1000,
            ));
            v.extend(b"\"}\n");
            v
        };
        let results = race(50, |i| {
            repo.writer()
                .write_file(&target, TempKind::State, &value(i))
        });
        for (i, result) in results.into_iter().enumerate() {
            result.map_err(|e| format!("writer {i}: {e}"))?;
        }
        let content = fs::read(&target)?;
        assert!(
            (0..50).any(|i| content == value(i)),
            "the file must hold exactly one writer's value, whole ({} bytes, starts {:?})",
            content.len(),
            String::from_utf8_lossy(&content[..content.len().min(40)])
        );
        assert_no_temp_files(dir.path(), &format!("50 state writers {durability:?}"))?;
    }
    Ok(())
}
