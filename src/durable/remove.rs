//! Removing many files at once: one durable step for all of them.
//!
//! A checkout that removes thousands of tracked files should not pay one
//! directory fsync per file and one failing `rmdir` per file: it unlinks
//! every file, prunes the directories that became empty once, bottom-up, and
//! then makes every changed directory entry durable together.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use super::writer::{Durability, DurableWriter, WriteError, WriteStep, parent_of};

/// Above this many changed directories, one `syncfs` per filesystem beats
/// one fsync per directory.
const DIR_SYNCS_BEFORE_BARRIER: usize = 32;

/// What [`DurableWriter::remove_files_and_prune`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemovedFiles {
    /// Files that existed and were removed.
    pub files: usize,
    /// Directories that became empty and were removed.
    pub dirs: usize,
}

impl DurableWriter {
    /// Removes every file of `files` (a missing one is already the wanted
    /// outcome), then every directory strictly below `root` that this left
    /// empty, deepest first and each at most once, then makes all of it
    /// durable with one sync of each directory whose entries changed (or,
    /// for many, one barrier per filesystem). `after_each` is called after
    /// each file removed (progress).
    ///
    /// Never follows a symlink: a directory is removed only when `rmdir`
    /// finds it empty, and `root` and anything outside it are never touched.
    /// On an error the removals already made stay made (the caller's
    /// journal, not this call, makes a checkout all-or-nothing) and nothing
    /// is reported durable.
    pub fn remove_files_and_prune(
        &self,
        root: &Path,
        files: &[PathBuf],
        after_each: &dyn Fn(),
    ) -> Result<RemovedFiles, WriteError> {
        let mut removed = RemovedFiles::default();
        // Directories whose entries changed, and candidates for pruning,
        // keyed by depth so the deepest come first.
        let mut changed: HashSet<PathBuf> = HashSet::new();
        let mut candidates: BTreeSet<(usize, PathBuf)> = BTreeSet::new();
        let below_root = |dir: &Path| dir != root && dir.starts_with(root);
        for path in files {
            match self.vfs.remove_file(path) {
                Ok(()) => removed.files += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(WriteError::failed(path, WriteStep::Remove, e)),
            }
            after_each();
            let dir = parent_of(path)?;
            changed.insert(dir.to_path_buf());
            if below_root(dir) {
                candidates.insert((dir.components().count(), dir.to_path_buf()));
            }
        }
        while let Some((_, dir)) = candidates.pop_last() {
            // A directory that is not empty (untracked files, other tracked
            // files), already gone, or not ours to remove stays, and so do
            // its ancestors.
            if self.vfs.remove_dir(&dir).is_ok() {
                removed.dirs += 1;
                changed.remove(&dir);
                let parent = parent_of(&dir)?;
                changed.insert(parent.to_path_buf());
                if below_root(parent) {
                    candidates.insert((parent.components().count(), parent.to_path_buf()));
                }
            }
        }
        if self.durability == Durability::None || changed.is_empty() {
            return Ok(removed);
        }
        let first = files.first().cloned().unwrap_or_else(|| root.to_path_buf());
        let not_durable = |source| WriteError::NotDurable {
            path: first.clone(),
            source,
        };
        if changed.len() > DIR_SYNCS_BEFORE_BARRIER {
            let mut devices = HashSet::new();
            for dir in &changed {
                let fresh = self
                    .vfs
                    .filesystem_id(dir)
                    .map_or(true, |d| devices.insert(d));
                if fresh {
                    self.barrier(dir).map_err(not_durable)?;
                }
            }
        } else {
            for dir in &changed {
                self.sync_dir(dir).map_err(not_durable)?;
            }
        }
        Ok(removed)
    }
}
