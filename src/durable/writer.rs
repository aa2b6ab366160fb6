//! The one durable writer.
//!
//! Protocol for every file it writes (see docs/durability.md):
//!
//! 1. create a uniquely named temp file, exclusively, in the target's own
//!    directory (creating missing parent directories and making each new
//!    directory entry durable by syncing its parent);
//! 2. write everything;
//! 3. fsync the temp file;
//! 4. rename it over the target;
//! 5. fsync the target's directory.
//!
//! Invariants:
//! - a failure at any step before the rename removes the temp file and leaves
//!   the target exactly as it was (old content, or absent);
//! - under [`Durability::Full`] a write is acknowledged (returns `Ok`) only
//!   after both the file and its directory entry were reported durable; an
//!   fsync error is never retried (the kernel may have dropped the dirty
//!   pages), it fails the write;
//! - a failed directory fsync after the rename is reported as
//!   [`WriteError::NotDurable`]: the new content is visible but may not
//!   survive a power cut;
//! - an append acknowledges only after the log's directory entry is known
//!   durable: an append that created its file and then failed (its fsync,
//!   say) leaves the directory marked unsynced, so the next append to the
//!   file it left syncs the directory before acknowledging.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::cleanup;
use super::temp::{TempKind, temp_name};
use super::vfs::{RealFs, Vfs, VfsFile};

/// How hard a write works to survive a power cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it; any fsync
    /// error other than "this filesystem cannot sync" fails the write.
    #[default]
    Full,
    /// Same system calls as `Full`, but fsync errors are logged and the write
    /// completes. Atomicity (old or new content, never a mix) still holds.
    Relaxed,
    /// No fsync at all: atomic against a crashed process, not against a power
    /// cut. For scratch stores, benchmarks and tests.
    None,
}

/// A step of the write protocol, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Creating a missing parent directory.
    CreateDir,
    /// Creating the temp file.
    Create,
    /// Writing the temp file.
    Write,
    /// fsync of the temp file.
    Fsync,
    /// Renaming the temp file over the target.
    Rename,
    /// fsync of a directory.
    SyncDir,
    /// Removing a file.
    Remove,
    /// Opening a file for appending.
    Open,
}

impl fmt::Display for WriteStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteStep::CreateDir => "create directory",
            WriteStep::Create => "create temp file",
            WriteStep::Write => "write",
            WriteStep::Fsync => "fsync",
            WriteStep::Rename => "rename",
            WriteStep::SyncDir => "fsync directory",
            WriteStep::Remove => "remove",
            WriteStep::Open => "open",
        })
    }
}

/// A write that did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A step failed; the target keeps its old content (or stays absent).
    #[error("could not write '{path}': {step} failed: {source}")]
    Failed {
        /// The file being written (or directory being created or synced).
        path: PathBuf,
        /// The step that failed.
        step: WriteStep,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The rename happened but the directory fsync failed: the new content is
    /// visible but not known to be durable.
    #[error(
        "wrote '{path}' but could not fsync its directory: the new content is visible but not known to be durable: {source}"
    )]
    NotDurable {
        /// The file that was written.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

impl WriteError {
    /// The path the failed write was about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            WriteError::Failed { path, .. } | WriteError::NotDurable { path, .. } => path,
        }
    }

    pub(super) fn failed(path: &Path, step: WriteStep, source: io::Error) -> Self {
        WriteError::Failed {
            path: path.to_path_buf(),
            step,
            source,
        }
    }
}

/// The name of a repository's metadata directory in its working tree.
pub const METADATA_DIR: &str = ".muse";

/// The file every repository's metadata directory holds (FORMAT.md).
const REPOSITORY_FILE: &str = "repo.json";

/// The first directory strictly inside a repository's metadata directory
/// (`.muse/`), on the way from it down to `dir` (`dir` included), that is a
/// symlink; `None` when there is none or `dir` is not inside one.
///
/// Invariant: nothing under `.muse/` is written, listed or removed through
/// a symlinked directory. A received repository is someone else's data,
/// and a `logs/refs` or `remotes` pointing elsewhere would otherwise turn
/// the repository's own writes and removals into writes and removals
/// anywhere. One `lstat` per level below `.muse/`; paths outside it (the
/// working tree) cost nothing.
///
/// Names below `.muse/` may themselves hold a `.muse` component (a branch
/// `x/.muse/y`, a repository id `.muse` under `tags/`), so the metadata
/// directory is not simply the nearest ancestor of that name: with several,
/// it is the outermost one holding `repo.json` (an outer directory that
/// happens to be named `.muse` holds none), else the outermost.
pub(crate) fn symlink_inside_metadata(dir: &Path) -> Option<PathBuf> {
    let named: Vec<&Path> = dir
        .ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == METADATA_DIR))
        .collect();
    // `ancestors` runs innermost first.
    let metadata = match named.as_slice() {
        [] => return None,
        [only] => *only,
        several => several
            .iter()
            .rev()
            .find(|m| m.join(REPOSITORY_FILE).is_file())
            .copied()
            .unwrap_or(several[several.len() - 1]),
    };
    let mut inside: Vec<&Path> = dir.ancestors().take_while(|a| *a != metadata).collect();
    inside.reverse();
    inside
        .into_iter()
        .find(|level| std::fs::symlink_metadata(level).is_ok_and(|m| m.file_type().is_symlink()))
        .map(Path::to_path_buf)
}

/// Whether an fsync error means "this filesystem cannot sync this kind of
/// file" rather than "your data may be lost". Some filesystems (and pipes,
/// some FUSE mounts) answer EINVAL or ENOTSUP; there is nothing to retry and
/// nothing was lost that a sync could have saved.
fn is_unsupported_sync(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP))
}

static UNSUPPORTED_SYNC_LOGGED: AtomicBool = AtomicBool::new(false);

/// Directories created in this process whose entry in their parent is not
/// yet known durable (the parent's fsync has not succeeded yet). Shared by
/// every writer: two repository handles can race on one shard.
static PENDING_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

pub(super) fn pending_dirs() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // The set stays consistent even if a holder panicked: every operation on
    // it is a single insert, remove or lookup.
    PENDING_DIRS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Directories whose fsync failed in this process (their entries are not
/// known durable until one succeeds).
static UNSYNCED_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn unsynced_dirs() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    UNSYNCED_DIRS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a batch has staged so far (see `batch.rs`).
#[derive(Debug, Default)]
pub(super) struct BatchState {
    /// (temp file, target), in staging order.
    pub(super) files: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// Directories created for the batch, pending until its first barrier.
    pub(super) dirs: Mutex<Vec<PathBuf>>,
    /// Content-addressed targets some write of the batch has taken on.
    pub(super) claimed: Mutex<std::collections::HashSet<PathBuf>>,
    /// [`DurableWriter::adoptable`]'s answers by (target directory, source
    /// directory): the directory exists (created by this batch or checked)
    /// and whether both are on one filesystem. Thousands of objects share a
    /// few hundred shard directories; each pair is checked once.
    pub(super) adoptable: Mutex<std::collections::HashMap<(PathBuf, PathBuf), bool>>,
}

/// The only code that creates, replaces, renames or removes repository files.
#[derive(Clone)]
pub struct DurableWriter {
    pub(super) vfs: Arc<dyn Vfs>,
    pub(super) durability: Durability,
    /// Set on the writer of a [`WriteBatch`]: staged writes are held back
    /// for the batch's barriers instead of being synced one by one.
    pub(super) batch: Option<Arc<BatchState>>,
}

impl fmt::Debug for DurableWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableWriter")
            .field("vfs", &self.vfs)
            .field("durability", &self.durability)
            .field("batched", &self.batch.is_some())
            .finish()
    }
}

impl Default for DurableWriter {
    fn default() -> Self {
        Self::new(Arc::new(RealFs), Durability::Full)
    }
}

impl DurableWriter {
    /// A writer over `vfs` at `durability`.
    #[must_use]
    pub fn new(vfs: Arc<dyn Vfs>, durability: Durability) -> Self {
        Self {
            vfs,
            durability,
            batch: None,
        }
    }

    /// The durability level of this writer.
    #[must_use]
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The filesystem seam behind this writer.
    #[must_use]
    pub fn vfs(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// Writes `bytes` to `target` atomically and durably.
    pub fn write_file(
        &self,
        target: &Path,
        kind: TempKind,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        let mut staged = self.stage(target, kind)?;
        staged.write(bytes)?;
        staged.commit()
    }

    /// Whether this write should stage `target`, a content-addressed file
    /// (whoever writes it writes the same bytes): always outside a batch;
    /// inside one, only the first write of the batch to claim it does, so
    /// identical content is staged once per batch (the others rely on the
    /// first, which the batch publishes with them, or fails with them).
    #[must_use]
    pub fn claim(&self, target: &Path) -> bool {
        match &self.batch {
            None => true,
            Some(batch) => lock_ignoring_poison(&batch.claimed).insert(target.to_path_buf()),
        }
    }

    /// Whether [`DurableWriter::adopt`] can publish the file at `source` as
    /// `target`: only under a batch, and only when both directories are on
    /// one filesystem (a rename cannot cross filesystems).
    pub(crate) fn adoptable(&self, source: &Path, target: &Path) -> Result<bool, WriteError> {
        let Some(batch) = &self.batch else {
            return Ok(false);
        };
        let (dir, from) = (parent_of(target)?, parent_of(source)?);
        let key = (dir.to_path_buf(), from.to_path_buf());
        if let Some(known) = lock_ignoring_poison(&batch.adoptable).get(&key) {
            return Ok(*known);
        }
        self.create_dir_all(dir)?;
        let here = self.vfs.filesystem_id(dir);
        let there = self.vfs.filesystem_id(from);
        let same = matches!((here, there), (Ok(a), Ok(b)) if a == b);
        lock_ignoring_poison(&batch.adoptable).insert(key, same);
        Ok(same)
    }

    /// Hands the complete file `source` to this writer's batch as the temp
    /// file of `target`: the batch's first barrier makes its data durable
    /// and it is renamed into place with the batch's other files, so it is
    /// published without a copy. For files this process wrote itself inside
    /// the repository (a quarantine's), after [`DurableWriter::adoptable`]
    /// said yes; dropping the batch uncommitted removes `source`.
    pub(crate) fn adopt(&self, source: &Path, target: &Path) -> Result<(), WriteError> {
        let Some(batch) = &self.batch else {
            return Err(WriteError::failed(
                target,
                WriteStep::Rename,
                io::Error::other("adopting a file needs a write batch"),
            ));
        };
        lock_ignoring_poison(&batch.files).push((source.to_path_buf(), target.to_path_buf()));
        Ok(())
    }

    /// Creates the temp file for `target` (and any missing parent directory),
    /// ready for [`Staged::write`] and [`Staged::commit`]. Dropping the result
    /// without committing removes the temp file.
    pub fn stage(&self, target: &Path, kind: TempKind) -> Result<Staged<'_>, WriteError> {
        let dir = parent_of(target)?;
        self.create_dir_all(dir)?;
        let mut attempts = 0;
        loop {
            let temp = dir.join(temp_name(kind.prefix()));
            cleanup::register(&temp)
                .map_err(|e| WriteError::failed(target, WriteStep::Create, e))?;
            let created = self.vfs.create_new(&temp, kind.mode());
            cleanup::creation_done(&temp, created.is_ok());
            match created {
                Ok(file) => {
                    return Ok(Staged {
                        writer: self,
                        file: Some(file),
                        temp,
                        target: target.to_path_buf(),
                    });
                }
                // A random 128-bit suffix collides only if something else
                // planted the name; try a fresh one a few times.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 3 => {
                    attempts += 1;
                }
                Err(e) => return Err(WriteError::failed(target, WriteStep::Create, e)),
            }
        }
    }

    /// Creates `dir` and any missing ancestors; each directory created is made
    /// durable by syncing its parent.
    ///
    /// A directory that exists but whose entry is not yet known durable (its
    /// creator, in this process, is still syncing the parent or failed to) is
    /// synced again here, so no write into it is acknowledged before its
    /// entry is durable.
    ///
    /// Inside a repository's metadata directory, a directory on the way that
    /// is a symlink is refused, never written through (see
    /// [`symlink_inside_metadata`]).
    pub fn create_dir_all(&self, dir: &Path) -> Result<(), WriteError> {
        if let Some(link) = symlink_inside_metadata(dir) {
            return Err(WriteError::failed(
                &link,
                WriteStep::CreateDir,
                io::Error::other(
                    "this directory of the repository is a symlink, which is never followed (replace it with a directory)",
                ),
            ));
        }
        self.create_dirs(dir)
    }

    /// [`DurableWriter::create_dir_all`] without the symlink check (done
    /// once, for the whole path).
    fn create_dirs(&self, dir: &Path) -> Result<(), WriteError> {
        if dir.as_os_str().is_empty() {
            return Ok(());
        }
        let track = self.durability != Durability::None;
        if dir.is_dir() && !(track && pending_dirs().contains(dir)) {
            return Ok(());
        }
        let parent = parent_of(dir)?;
        self.create_dirs(parent)?;
        if track {
            // Marked before it exists, so no other writer can see it existing
            // and not pending before its entry is durable.
            pending_dirs().insert(dir.to_path_buf());
        }
        if let Some(batch) = &self.batch {
            // The batch's first barrier makes the new entry durable; until
            // then it stays pending, so a writer outside the batch syncs the
            // parent itself before trusting it.
            match self.vfs.create_dir(dir) {
                // Only directories this batch created are its to remove.
                Ok(()) => lock_ignoring_poison(&batch.dirs).push(dir.to_path_buf()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(WriteError::failed(dir, WriteStep::CreateDir, e)),
            }
            return Ok(());
        }
        match self.vfs.create_dir(dir) {
            Ok(()) => {}
            // Another writer created it; it may not have synced the parent
            // yet, so sync it here too before anything is acknowledged.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(WriteError::failed(dir, WriteStep::CreateDir, e)),
        }
        self.sync_dir(parent)
            .map_err(|e| WriteError::failed(dir, WriteStep::SyncDir, e))?;
        if track {
            pending_dirs().remove(dir);
        }
        Ok(())
    }

    /// Makes the entry of `path` in its parent directory durable (fsyncs the
    /// parent) at this writer's durability level. For an entry created
    /// through [`DurableWriter::vfs`] directly, such as a directory created
    /// exclusively so that it fails when it already exists.
    pub fn sync_parent(&self, path: &Path) -> Result<(), WriteError> {
        let parent = parent_of(path)?;
        self.sync_dir(parent)
            .map_err(|e| WriteError::failed(path, WriteStep::SyncDir, e))
    }

    /// Renames the file `from` to `to` (creating `to`'s directory when
    /// missing) and makes both directory entries durable: `to`'s directory
    /// first, so that after a power cut the file is at `to`, or still at
    /// `from`, or (across directories, where the rename is two entry
    /// changes) at both; never at neither.
    pub fn rename_file(&self, from: &Path, to: &Path) -> Result<(), WriteError> {
        let (from_dir, to_dir) = (parent_of(from)?, parent_of(to)?);
        self.create_dir_all(to_dir)?;
        self.vfs
            .rename(from, to)
            .map_err(|e| WriteError::failed(to, WriteStep::Rename, e))?;
        let not_durable = |source| WriteError::NotDurable {
            path: to.to_path_buf(),
            source,
        };
        self.sync_dir(to_dir).map_err(not_durable)?;
        if from_dir != to_dir {
            self.sync_dir(from_dir).map_err(not_durable)?;
        }
        Ok(())
    }

    /// Removes `path` and makes the removal durable. A missing file is not an
    /// error (the outcome the caller wanted already holds).
    pub fn remove_file(&self, path: &Path) -> Result<(), WriteError> {
        match self.vfs.remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(WriteError::failed(path, WriteStep::Remove, e)),
        }
        let dir = parent_of(path)?;
        self.sync_dir(dir).map_err(|source| WriteError::NotDurable {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Removes the empty directory `dir` and makes that durable. Refuses (with
    /// an error) when it is not empty.
    pub fn remove_dir(&self, dir: &Path) -> Result<(), WriteError> {
        self.vfs
            .remove_dir(dir)
            .map_err(|e| WriteError::failed(dir, WriteStep::Remove, e))?;
        let parent = parent_of(dir)?;
        self.sync_dir(parent)
            .map_err(|source| WriteError::NotDurable {
                path: dir.to_path_buf(),
                source,
            })
    }

    /// Appends `bytes` to `path` (creating it and its directory when absent)
    /// and syncs it. `valid_len` is the length of the file's intact prefix:
    /// when the file is longer (a torn tail left by a crash), it is cut back
    /// to `valid_len` first, so the new bytes never glue onto a torn record.
    pub fn append(
        &self,
        path: &Path,
        valid_len: Option<u64>,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        let dir = parent_of(path)?;
        self.create_dir_all(dir)?;
        let before = std::fs::symlink_metadata(path).ok().map(|m| m.len());
        let existed = before.is_some();
        if let Err(e) = self.append_to(path, valid_len, bytes) {
            // A failed append must not leave a record a reader would take
            // for an acknowledged one (a reflog line for an undone update),
            // nor an empty log it created.
            let restore = if existed { valid_len.or(before) } else { None };
            if let Err(cut) = self.cut_back(path, restore) {
                log::warn!("could not undo a failed append: {cut}");
            }
            if !existed && self.durability != Durability::None {
                // The file may have existed for a while with an entry that
                // was never synced: whoever creates it next must not take
                // the directory for durable.
                unsynced_dirs().insert(dir.to_path_buf());
            }
            return Err(e);
        }
        if existed {
            // Costs nothing unless an earlier append (or write) in this
            // process left the entry not known durable.
            return self.confirm_durable(path);
        }
        self.sync_dir(dir).map_err(|source| WriteError::NotDurable {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The open, cut, write and fsync of [`DurableWriter::append`].
    fn append_to(
        &self,
        path: &Path,
        valid_len: Option<u64>,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        let mut file = self
            .vfs
            .open_append(path)
            .map_err(|e| WriteError::failed(path, WriteStep::Open, e))?;
        if let Some(len) = valid_len {
            file.set_len(len)
                .map_err(|e| WriteError::failed(path, WriteStep::Write, e))?;
        }
        file.write_all(bytes)
            .map_err(|e| WriteError::failed(path, WriteStep::Write, e))?;
        self.sync_file(file.as_mut(), path)
    }

    /// Cuts the append-only file at `path` back to `len` bytes and syncs it,
    /// or removes it when `len` is `None` (it did not exist): undoes appends
    /// of an operation that failed. Nothing happens when it is already no
    /// longer than that.
    pub fn cut_back(&self, path: &Path, len: Option<u64>) -> Result<(), WriteError> {
        let now = match std::fs::symlink_metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(WriteError::failed(path, WriteStep::Open, e)),
        };
        let Some(len) = len else {
            return self.remove_file(path);
        };
        if now <= len {
            return Ok(());
        }
        let mut file = self
            .vfs
            .open_append(path)
            .map_err(|e| WriteError::failed(path, WriteStep::Open, e))?;
        file.set_len(len)
            .map_err(|e| WriteError::failed(path, WriteStep::Write, e))?;
        self.sync_file(file.as_mut(), path)
    }

    /// Appends one newline-terminated record to an append-only log (reflog,
    /// op log). A torn last record left by a crash (bytes after the last
    /// newline) is cut off first, so later appends never glue onto it.
    pub fn append_record(&self, path: &Path, record: &str) -> Result<(), WriteError> {
        let valid_len =
            torn_tail_start(path).map_err(|e| WriteError::failed(path, WriteStep::Open, e))?;
        let mut line = String::with_capacity(record.len() + 1);
        line.push_str(record);
        if !line.ends_with('\n') {
            line.push('\n');
        }
        self.append(path, valid_len, line.as_bytes())
    }

    /// Syncs an open file according to the durability level.
    fn sync_file(&self, file: &mut dyn VfsFile, path: &Path) -> Result<(), WriteError> {
        if self.durability == Durability::None {
            return Ok(());
        }
        let result = file.sync_all();
        self.judge_sync(result)
            .map_err(|e| WriteError::failed(path, WriteStep::Fsync, e))
    }

    /// Syncs a directory according to the durability level.
    pub(super) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.durability == Durability::None {
            return Ok(());
        }
        let result = self.vfs.sync_dir(dir);
        let judged = self.judge_sync(result);
        // Remember a directory whose entries are not known durable, so that a
        // later write that finds its file already there syncs it before
        // acknowledging (see `confirm_durable`).
        if judged.is_err() {
            unsynced_dirs().insert(dir.to_path_buf());
        } else if !unsynced_dirs().is_empty() {
            unsynced_dirs().remove(dir);
        }
        judged
    }

    /// Makes sure the directory entry of an existing `target` is durable
    /// before a caller acknowledges it without rewriting it (an idempotent
    /// write that found the file already there). Costs nothing unless an
    /// earlier directory fsync of the target's directory failed in this
    /// process.
    pub fn confirm_durable(&self, target: &Path) -> Result<(), WriteError> {
        let dir = parent_of(target)?;
        if self.durability == Durability::None || !unsynced_dirs().contains(dir) {
            return Ok(());
        }
        self.sync_dir(dir).map_err(|source| WriteError::NotDurable {
            path: target.to_path_buf(),
            source,
        })
    }

    /// One filesystem-wide flush (`syncfs`) judged like an fsync.
    pub(super) fn barrier(&self, anchor: &Path) -> io::Result<()> {
        if self.durability == Durability::None {
            return Ok(());
        }
        let result = self.vfs.sync_fs(anchor);
        self.judge_sync(result)
    }

    /// Sets the mtime of an existing `target` to now, so that `gc`, which
    /// prunes unreachable files by age, sees a file a writer has just
    /// re-used (an idempotent write that found it already stored) as new.
    /// Best effort: the mtime is a hint to gc, not repository state, so it is
    /// neither fsynced nor an error when it cannot be set (a file owned by
    /// another user); only the content and its directory entry are durable.
    pub fn freshen(&self, target: &Path) {
        let result =
            std::fs::File::open(target).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        if let Err(e) = result {
            log::debug!("could not refresh the mtime of '{}': {e}", target.display());
        }
    }

    /// Decides what an fsync result means at this durability level. Never
    /// retries: after a failed fsync the kernel may already have dropped the
    /// dirty pages, so a second, successful fsync proves nothing.
    fn judge_sync(&self, result: io::Result<()>) -> io::Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_unsupported_sync(&e) => {
                if !UNSUPPORTED_SYNC_LOGGED.swap(true, Ordering::Relaxed) {
                    log::warn!("this filesystem cannot fsync ({e}); continuing without it");
                }
                Ok(())
            }
            Err(e) if self.durability == Durability::Relaxed => {
                log::warn!("fsync failed under relaxed durability ({e}); write completes");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Where the torn tail of an append-only log starts: `None` when the file is
/// missing, empty or ends with a newline; otherwise the length of its intact
/// prefix (up to and including the last newline). Reads only the tail.
pub fn torn_tail_start(path: &Path) -> io::Result<Option<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    // Never followed, never blocked on: a symlink or FIFO planted where a
    // log belongs is refused, not appended through or waited on.
    let mut file = match crate::sys::open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if crate::sys::is_symlink_refusal(&e) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an append-only log must be a regular file, and this is a symlink",
            ));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an append-only log must be a regular file",
        ));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(None);
    }
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if first && chunk.last() == Some(&b'\n') {
            return Ok(None);
        }
        first = false;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + pos as u64 + 1));
        }
        end = start;
    }
    Ok(Some(0))
}

pub(super) fn parent_of(path: &Path) -> Result<&Path, WriteError> {
    path.parent().ok_or_else(|| {
        WriteError::failed(
            path,
            WriteStep::Create,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"),
        )
    })
}

pub(super) fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temp file being written; becomes the target on [`Staged::commit`].
///
/// Dropping it uncommitted removes the temp file, so every early return and
/// every panic cleans up.
#[must_use = "a staged write does nothing until committed"]
pub struct Staged<'w> {
    writer: &'w DurableWriter,
    file: Option<Box<dyn VfsFile>>,
    temp: PathBuf,
    target: PathBuf,
}

impl fmt::Debug for Staged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staged")
            .field("temp", &self.temp)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Staged<'_> {
    /// The error for using a staged write whose file is gone (cannot happen
    /// through the public API: `commit` consumes the value).
    fn closed(&self) -> WriteError {
        WriteError::failed(
            &self.target,
            WriteStep::Write,
            io::Error::other("the staged file is already closed"),
        )
    }

    /// The temp file's path.
    #[must_use]
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The path this write will replace.
    #[must_use]
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Appends `bytes` to the temp file.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let Some(file) = self.file.as_mut() else {
            return Err(self.closed());
        };
        file.write_all(bytes)
            .map_err(|e| WriteError::failed(&self.target, WriteStep::Write, e))
    }

    /// fsyncs the temp file, renames it over the target and fsyncs the
    /// directory. On an error before the rename the temp file is removed.
    ///
    /// Under a [`WriteBatch`](super::WriteBatch) writer it only closes the temp file and hands
    /// it to the batch, which publishes it on [`WriteBatch::commit`](super::WriteBatch::commit).
    pub fn commit(mut self) -> Result<(), WriteError> {
        let Some(mut file) = self.file.take() else {
            return Err(self.closed());
        };
        if let Some(batch) = &self.writer.batch {
            drop(file);
            let temp = std::mem::take(&mut self.temp);
            lock_ignoring_poison(&batch.files).push((temp, self.target.clone()));
            return Ok(());
        }
        self.writer.sync_file(file.as_mut(), &self.target)?;
        drop(file);
        self.writer
            .vfs
            .rename(&self.temp, &self.target)
            .map_err(|e| WriteError::failed(&self.target, WriteStep::Rename, e))?;
        // The temp name no longer exists: nothing for Drop to clean.
        cleanup::forget(&self.temp);
        self.temp = PathBuf::new();
        let dir = parent_of(&self.target)?;
        self.writer
            .sync_dir(dir)
            .map_err(|source| WriteError::NotDurable {
                path: self.target.clone(),
                source,
            })
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        self.file = None;
        if self.temp.as_os_str().is_empty() {
            return;
        }
        match self.writer.vfs.remove_file(&self.temp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                log::warn!("could not remove temp file '{}': {e}", self.temp.display());
            }
            _ => cleanup::forget(&self.temp),
        }
    }
}
