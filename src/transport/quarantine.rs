//! Receiving a bundle: decode into a quarantine, check everything, then
//! publish in one write batch.
//!
//! Invariants:
//! - nothing a bundle carries reaches `objects/`, `commits/` or
//!   `snapshots/` before every check has passed: it is decoded into
//!   `.muse/quarantine/<id>/`, whose files are named by ids already checked
//!   to be 64 lowercase hex (never by the bundle's text);
//! - the checks, in order, as the bundle streams in: every record's id is
//!   well-formed and recomputed from its fields, every manifest path passes
//!   the path policy, every object's bytes hash to its id; then, once the
//!   bundle has ended: every commit's snapshot and parents and every
//!   snapshot's objects are in the bundle or already in the store;
//! - publishing is one [`crate::durable::WriteBatch`]: objects, then
//!   snapshots, then commits, made durable together; refs are the caller's
//!   to move, after [`unpack`] returns;
//! - a refused bundle, an error or a panic leaves no quarantine: the
//!   directory is removed when [`Quarantine`] drops. A killed unpack leaves
//!   one whose lock nobody holds; recovery on the next open removes it.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::bundle::{self, Sink};
use crate::durable::{DurableWriter, FileLock, Vfs, VfsFile};
use crate::error::{BundleProblem, Error, Result};
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::repo::Repository;

/// A quarantine directory owned by this process (its lock held).
pub(crate) struct Quarantine {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    lock: Option<FileLock>,
}

impl Quarantine {
    /// A fresh quarantine in `layout`'s repository. The lock is taken
    /// before the directory exists, so recovery never sees a live
    /// quarantine without its lock held. Recovery in another process may
    /// hold a fresh lock file for an instant (it takes over every lock of
    /// the quarantine root it finds unheld, and the file exists a moment
    /// before its `flock`): the wait of `timeout` covers that.
    pub(crate) fn create(
        layout: &Layout,
        writer: &DurableWriter,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        let dir = layout.quarantine_dir(&uuid::Uuid::new_v4());
        // Through the writer (not as a side effect of the lock file), so
        // the root is made like every other directory of the repository.
        let root = layout.quarantine_root();
        writer.create_dir_all(&root)?;
        if !std::fs::symlink_metadata(&root).is_ok_and(|m| m.file_type().is_dir()) {
            return Err(Error::corrupt(
                &root,
                "the quarantine must be a directory of the repository, and this is not one (a symlink is never followed)",
            ));
        }
        let lock = FileLock::acquire(
            &layout.quarantine_lock(&dir),
            timeout,
            Some(serde_json::json!({"op": "unpack"})),
        )?;
        writer
            .vfs()
            .create_dir(&dir)
            .map_err(|e| Error::io("create the quarantine", &dir, e))?;
        Ok(Self {
            dir,
            vfs: writer.vfs().clone(),
            lock: Some(lock),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn object_path(&self, id: &ObjectId) -> PathBuf {
        self.path(&format!("o-{id}"))
    }

    fn commit_path(&self, id: &ObjectId) -> PathBuf {
        self.path(&format!("c-{id}.json"))
    }

    fn snapshot_path(&self, id: &ObjectId) -> PathBuf {
        self.path(&format!("s-{id}.json"))
    }

    fn create_file(&self, path: &Path, mode: u32) -> Result<Box<dyn VfsFile>> {
        self.vfs
            .create_new(path, mode)
            .map_err(|e| Error::io("create a quarantine file", path, e))
    }

    fn write_whole(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        match self.vfs.remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("replace a quarantine file", path, e));
            }
            _ => {}
        }
        // A record's mode from the start: publishing renames this file into
        // the record directories as it is.
        let mut file = self.create_file(path, crate::durable::TempKind::State.mode())?;
        file.write_all(bytes)
            .map_err(|e| Error::io("write a quarantine file", path, e))
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        crate::files::remove_quarantine_files(self.vfs.as_ref(), &self.dir);
        if let Err(e) = self.vfs.remove_dir(&self.dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("could not remove quarantine '{}': {e}", self.dir.display());
        }
        if let Some(lock) = self.lock.take()
            && let Err(e) = lock.release()
        {
            log::warn!("could not release the quarantine lock: {e}");
        }
    }
}

/// What [`unpack`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Commit records newly written.
    pub commits_written: usize,
    /// Snapshot records newly written.
    pub snapshots_written: usize,
    /// Objects newly written.
    pub objects_written: usize,
    /// Objects the store already had.
    pub objects_skipped: usize,
    /// Every commit the bundle carried, in bundle order.
    pub commits: Vec<ObjectId>,
    /// Object bytes received.
    pub bytes: u64,
    /// The bundle's `branch_heads` (branch text, id text), unchecked.
    pub branch_heads: Vec<(String, String)>,
}

/// Receives the bundle read from `input` (`name` says where it comes from)
/// into `repo`: decoded into a quarantine, checked (see the module docs),
/// then published in one write batch. A refused bundle stores nothing and
/// fails with [`Error::BadBundle`] naming the problem. Moves no ref.
pub fn unpack(repo: &Repository, input: &mut dyn Read, name: &Path) -> Result<Unpacked> {
    // gc must not sweep what is published here before a ref names it.
    let _guard = repo.write_guard()?;
    unpack_guarded(repo, input, name, &crate::progress::NoProgress)
}

/// [`unpack`] for a caller that holds the write guard already.
pub(crate) fn unpack_guarded(
    repo: &Repository,
    input: &mut dyn Read,
    name: &Path,
    progress: &dyn Progress,
) -> Result<Unpacked> {
    let mut sink = Receiver {
        repo,
        progress,
        q: None,
        incoming: None,
        commits: Vec::new(),
        snapshots: Vec::new(),
        objects: Vec::new(),
        commit_set: HashSet::new(),
        snapshot_set: HashSet::new(),
        object_set: HashSet::new(),
        wanted_snapshots: Vec::new(),
        wanted_parents: Vec::new(),
        wanted_objects: HashMap::new(),
        branch_heads: Vec::new(),
        bytes: 0,
    };
    bundle::decode(input, name, &mut sink)?;
    sink.incoming = None;
    sink.check_connected()?;
    crate::failpoint::barrier("unpack-before-publish");
    let out = sink.publish()?;
    // Dropping the sink removes the quarantine.
    drop(sink);
    progress.finish();
    Ok(out)
}

/// The [`Sink`] that fills a quarantine.
struct Receiver<'a> {
    repo: &'a Repository,
    /// Told each object and its bytes as they arrive.
    progress: &'a dyn Progress,
    /// Created when the first entry needs a file: a bundle refused before
    /// that touches nothing.
    q: Option<Quarantine>,
    /// The object being received and its file.
    incoming: Option<(PathBuf, Box<dyn VfsFile>)>,
    commits: Vec<ObjectId>,
    snapshots: Vec<ObjectId>,
    /// Each object received once, with its length.
    objects: Vec<(ObjectId, u64)>,
    commit_set: HashSet<ObjectId>,
    snapshot_set: HashSet<ObjectId>,
    object_set: HashSet<ObjectId>,
    /// (commit, its snapshot).
    wanted_snapshots: Vec<(ObjectId, ObjectId)>,
    /// (commit, a parent).
    wanted_parents: Vec<(ObjectId, ObjectId)>,
    /// object -> the first (snapshot, path) naming it.
    wanted_objects: HashMap<ObjectId, (ObjectId, String)>,
    branch_heads: Vec<(String, String)>,
    bytes: u64,
}

impl Receiver<'_> {
    fn quarantine(&mut self) -> Result<&Quarantine> {
        if self.q.is_none() {
            self.q = Some(Quarantine::create(
                self.repo.layout(),
                self.repo.writer(),
                self.repo.options().lock_timeout,
            )?);
        }
        self.q.as_ref().ok_or_else(|| {
            Error::io(
                "create the quarantine",
                self.repo.layout().quarantine_root(),
                io::Error::other("not created"),
            )
        })
    }
}

impl Sink for Receiver<'_> {
    fn commit(&mut self, index: usize, value: Value) -> Result<()> {
        let record = bundle::commit_entry(index, value)?;
        let id = record.commit_id;
        if !self.commit_set.insert(id) {
            return Ok(());
        }
        let q = self.quarantine()?;
        q.write_whole(&q.commit_path(&id), &record.to_json()?)?;
        self.wanted_snapshots.push((id, record.snapshot_id));
        for parent in record.parents() {
            self.wanted_parents.push((id, parent));
        }
        self.commits.push(id);
        Ok(())
    }

    fn snapshot(&mut self, index: usize, value: Value) -> Result<()> {
        let record = bundle::snapshot_entry(index, &value)?;
        let id = record.snapshot_id;
        if !self.snapshot_set.insert(id) {
            return Ok(());
        }
        let q = self.quarantine()?;
        q.write_whole(&q.snapshot_path(&id), &record.to_json()?)?;
        for (path, object) in &record.manifest {
            self.wanted_objects
                .entry(*object)
                .or_insert_with(|| (id, path.clone()));
        }
        self.snapshots.push(id);
        Ok(())
    }

    fn objects_expected(&mut self, count: u64) {
        self.progress.start("receiving objects", count);
    }

    fn object_begin(&mut self, index: usize) -> Result<()> {
        let q = self.quarantine()?;
        let path = q.path(&format!("incoming-{index}"));
        // An object's mode from the start: publishing renames this file
        // into the store as it is.
        let file = q.create_file(&path, crate::durable::TempKind::Object.mode())?;
        self.incoming = Some((path, file));
        Ok(())
    }

    fn object_chunk(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some((path, file)) = &mut self.incoming {
            file.write_all(bytes)
                .map_err(|e| Error::io("write a quarantine file", &*path, e))?;
            self.progress.advance_bytes(bytes.len() as u64);
        }
        Ok(())
    }

    fn object_end(
        &mut self,
        index: usize,
        declared: &str,
        actual: ObjectId,
        len: u64,
    ) -> Result<()> {
        let Some((incoming, file)) = self.incoming.take() else {
            return Ok(());
        };
        drop(file);
        let id = bundle::parse_id(declared, &format!("object entry {index}: object_id"))?;
        if id != actual {
            return Err(Error::bundle(
                BundleProblem::Integrity,
                format!(
                    "integrity check failed for object entry {index}: it declares {id} but its {len} bytes hash to {actual}"
                ),
            ));
        }
        let q = self.quarantine()?;
        let target = q.object_path(&id);
        q.vfs
            .rename(&incoming, &target)
            .map_err(|e| Error::io("move a quarantine file", &target, e))?;
        if self.object_set.insert(id) {
            self.objects.push((id, len));
            self.bytes += len;
        }
        self.progress.advance(1);
        Ok(())
    }

    fn branch_head(&mut self, name: String, id: String) -> Result<()> {
        self.branch_heads.push((name, id));
        Ok(())
    }
}

impl Receiver<'_> {
    /// Every commit's snapshot and parents and every snapshot's objects are
    /// in the bundle or already stored.
    fn check_connected(&self) -> Result<()> {
        let records = self.repo.records();
        for (commit, snapshot) in &self.wanted_snapshots {
            if !self.snapshot_set.contains(snapshot) && !records.contains_snapshot(snapshot) {
                return Err(Error::bundle(
                    BundleProblem::Missing,
                    format!(
                        "commit {commit} names snapshot {snapshot}, which is missing: neither in the bundle nor in this repository"
                    ),
                ));
            }
        }
        for (commit, parent) in &self.wanted_parents {
            if !self.commit_set.contains(parent) && !records.contains_commit(parent) {
                return Err(Error::bundle(
                    BundleProblem::Missing,
                    format!(
                        "commit {commit} names parent {parent}, which is missing: neither in the bundle nor in this repository"
                    ),
                ));
            }
        }
        let objects = self.repo.objects();
        let mut wanted: Vec<_> = self.wanted_objects.iter().collect();
        wanted.sort();
        for (object, (snapshot, path)) in wanted {
            if !self.object_set.contains(object) && !objects.contains(object) {
                return Err(Error::bundle(
                    BundleProblem::Missing,
                    format!(
                        "snapshot {snapshot} names object {object} for {path:?}, which is missing: neither in the bundle nor in this repository"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Publishes the quarantine in one write batch.
    fn publish(&self) -> Result<Unpacked> {
        let Some(q) = &self.q else {
            // Nothing was received (an empty bundle).
            return Ok(Unpacked {
                branch_heads: self.branch_heads.clone(),
                ..Unpacked::default()
            });
        };
        let batch = self.repo.writer().batch();
        let objects = self.repo.objects().with_writer(batch.writer().clone());
        let records = self.repo.records().with_writer(batch.writer().clone());
        let mut out = Unpacked {
            commits: self.commits.clone(),
            bytes: self.bytes,
            branch_heads: self.branch_heads.clone(),
            ..Unpacked::default()
        };
        for (id, len) in &self.objects {
            // Hashed as it was received into this file; renamed into the
            // store by the batch (copied when it cannot be).
            if objects.adopt_received(id, &q.object_path(id), *len)? {
                out.objects_written += 1;
            } else {
                out.objects_skipped += 1;
            }
        }
        // Records as objects: written here from verified records, renamed
        // into place by the batch.
        for id in &self.snapshots {
            if records.adopt_received_snapshot(id, &q.snapshot_path(id))? {
                out.snapshots_written += 1;
            }
        }
        for id in &self.commits {
            if records.adopt_received_commit(id, &q.commit_path(id))? {
                out.commits_written += 1;
            }
        }
        batch.commit()?;
        Ok(out)
    }
}
