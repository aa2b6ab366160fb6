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
            repo.objects().read(&id)?,
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

mod shard_race {
    //! A writer that finds a shard directory another writer just created must
    //! not acknowledge its object before that directory's entry is durable.

    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use muse_store::{Durability, ObjectId, Options, Repository};
    use muse_store::{RealFs, Vfs, VfsFile};

    use crate::TestResult;

    #[derive(Debug, Default)]
    struct GateState {
        armed: bool,
        /// The first fsync of the gated directory is being held.
        held: bool,
        released: bool,
        /// fsyncs of the gated directory that have returned successfully.
        completed: usize,
    }

    /// The real filesystem, except that the first fsync of one directory
    /// (after arming) blocks until released.
    #[derive(Debug)]
    struct GateFs {
        dir: PathBuf,
        state: Mutex<GateState>,
        cv: Condvar,
    }

    impl GateFs {
        fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        fn wait_until(&self, what: &str, done: impl Fn(&GateState) -> bool) {
            let mut state = self.lock();
            while !done(&state) {
                let (next, timeout) = self
                    .cv
                    .wait_timeout(state, Duration::from_secs(20))
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                assert!(!timeout.timed_out(), "timed out waiting until {what}");
                state = next;
            }
        }

        fn update(&self, f: impl FnOnce(&mut GateState)) {
            f(&mut self.lock());
            self.cv.notify_all();
        }
    }

    impl Vfs for GateFs {
        fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
            RealFs.create_new(path, mode)
        }
        fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
            RealFs.open_append(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            RealFs.rename(from, to)
        }
        fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
            RealFs.rename_noreplace(from, to)
        }
        fn sync_fs(&self, path: &Path) -> io::Result<()> {
            RealFs.sync_fs(path)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            RealFs.remove_file(path)
        }
        fn create_dir(&self, path: &Path) -> io::Result<()> {
            RealFs.create_dir(path)
        }
        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            RealFs.remove_dir(path)
        }
        fn sync_dir(&self, path: &Path) -> io::Result<()> {
            if path == self.dir {
                let hold = {
                    let mut state = self.lock();
                    let hold = state.armed && !state.held;
                    if hold {
                        state.held = true;
                    }
                    hold
                };
                if hold {
                    self.cv.notify_all();
                    self.wait_until("the held fsync is released", |s| s.released);
                }
                RealFs.sync_dir(path)?;
                self.update(|s| s.completed += 1);
                return Ok(());
            }
            RealFs.sync_dir(path)
        }
    }

    /// Two contents whose ids share a shard.
    fn same_shard_pair() -> (Vec<u8>, Vec<u8>) {
        let mut seen: std::collections::HashMap<u8, Vec<u8>> = std::collections::HashMap::new();
        for i in 0u32.. {
            let bytes = format!("shard race {i}\n").into_bytes();
            let shard = ObjectId::hash(&bytes).as_bytes()[0];
            if let Some(first) = seen.insert(shard, bytes.clone()) {
                return (first, bytes);
            }
        }
        unreachable!("the pigeonhole principle")
    }

    #[test]
    fn second_writer_in_a_new_shard_waits_for_its_directory_to_be_durable() -> TestResult {
        let dir = tempfile::tempdir()?;
        let objects_dir = dir.path().join(".muse").join("objects");
        let gate = Arc::new(GateFs {
            dir: objects_dir,
            state: Mutex::default(),
            cv: Condvar::new(),
        });
        let repo = Repository::init_with(
            dir.path(),
            Options {
                durability: Durability::Full,
                vfs: gate.clone(),
                ..Options::default()
            },
        )?;
        gate.update(|s| s.armed = true);
        let (a, b) = same_shard_pair();
        std::thread::scope(|scope| -> TestResult {
            // A creates the shard and is stuck in the fsync of objects/.
            let first = scope.spawn(|| repo.objects().write(&a));
            gate.wait_until("the first writer is inside the fsync of objects/", |s| {
                s.held
            });
            // B finds the shard already there.
            let (id, stored) = repo.objects().write(&b)?;
            let completed = gate.lock().completed;
            gate.update(|s| s.released = true);
            let (first_id, _) = first.join().map_err(|_| "first writer panicked")??;
            assert!(stored, "second object stored");
            assert_eq!(
                first_id.as_bytes()[0],
                id.as_bytes()[0],
                "both objects are in one shard"
            );
            assert!(
                completed >= 1,
                "the second write was acknowledged before any fsync of objects/ had \
                 completed since its shard directory was created"
            );
            Ok(())
        })?;
        assert_eq!(
            &*repo.objects().read(&ObjectId::hash(&a))?,
            &a[..],
            "a reads"
        );
        assert_eq!(
            &*repo.objects().read(&ObjectId::hash(&b))?,
            &b[..],
            "b reads"
        );
        Ok(())
    }
}
