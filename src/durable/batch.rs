//! Write batches: many writes made durable together.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cleanup;

use super::writer::{
    BatchState, Durability, DurableWriter, WriteError, WriteStep, lock_ignoring_poison, parent_of,
    pending_dirs,
};

impl DurableWriter {
    /// Starts a batch: staged writes made through [`WriteBatch::writer`] are
    /// written to temp files without a per-file flush and published together
    /// by [`WriteBatch::commit`] with two filesystem-wide barriers.
    pub fn batch(&self) -> WriteBatch {
        let state = Arc::new(BatchState::default());
        let mut writer = self.clone();
        writer.batch = Some(state.clone());
        WriteBatch::new(writer, state)
    }
}

/// Many writes made durable together (git's `core.fsyncMethod=batch`, but
/// with a barrier for the renames too).
///
/// Protocol of [`WriteBatch::commit`]:
/// 1. every staged write is already complete in its temp file (no per-file
///    fsync);
/// 2. barrier: one `syncfs` per filesystem written to makes every temp
///    file's data, and every directory created for the batch, durable;
/// 3. every temp file is renamed over its target;
/// 4. barrier: one `syncfs` per filesystem makes the renames durable.
///
/// Only after `commit` returns `Ok` may anything point at the batch's files
/// (a ref moved with a full compare-and-swap), so nothing a ref names can be
/// visible but not durable after a power cut. Dropping an uncommitted batch
/// removes its temp files.
#[must_use = "a batch publishes nothing until committed"]
#[derive(Debug)]
pub struct WriteBatch {
    writer: DurableWriter,
    state: Arc<BatchState>,
    committed: bool,
}

impl WriteBatch {
    pub(super) fn new(writer: DurableWriter, state: Arc<BatchState>) -> Self {
        Self {
            writer,
            state,
            committed: false,
        }
    }

    /// The writer to give to the stores whose writes join this batch.
    #[must_use]
    pub fn writer(&self) -> &DurableWriter {
        &self.writer
    }

    /// How many writes are staged.
    #[must_use]
    pub fn len(&self) -> usize {
        lock_ignoring_poison(&self.state.files).len()
    }

    /// Whether nothing is staged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes every staged write (see the type's docs). Returns how many
    /// files were published. On an error, temp files not yet renamed are
    /// removed; files already renamed are complete but not known durable.
    pub fn commit(mut self) -> Result<usize, WriteError> {
        self.committed = true;
        let files = std::mem::take(&mut *lock_ignoring_poison(&self.state.files));
        let dirs = std::mem::take(&mut *lock_ignoring_poison(&self.state.dirs));
        let Some((_, first_target)) = files.first() else {
            return Ok(0);
        };
        // One anchor per filesystem the batch wrote to: `syncfs` flushes one
        // filesystem, and a batch may span several (a mount inside the
        // working tree).
        let anchors = filesystems(
            self.writer.vfs.as_ref(),
            files.iter().map(|(_, target)| target.as_path()),
        )?;
        // Every temp file of the batch exists here: a test interrupts here.
        crate::failpoint::barrier("batch-before-publish");
        let cleanup = |from: usize| {
            for (temp, _) in &files[from..] {
                match self.writer.vfs.remove_file(temp) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        log::warn!("could not remove temp file '{}': {e}", temp.display());
                    }
                    _ => cleanup::forget(temp),
                }
            }
        };
        for anchor in &anchors {
            if let Err(e) = self.writer.barrier(anchor) {
                cleanup(0);
                self.remove_created_dirs(&dirs);
                return Err(WriteError::failed(first_target, WriteStep::Fsync, e));
            }
        }
        if self.writer.durability != Durability::None {
            let mut pending = pending_dirs();
            for dir in &dirs {
                pending.remove(dir);
            }
        }
        for (i, (temp, target)) in files.iter().enumerate() {
            if let Err(e) = self.writer.vfs.rename(temp, target) {
                cleanup(i);
                return Err(WriteError::failed(target, WriteStep::Rename, e));
            }
            cleanup::forget(temp);
        }
        for anchor in &anchors {
            self.writer
                .barrier(anchor)
                .map_err(|source| WriteError::NotDurable {
                    path: first_target.clone(),
                    source,
                })?;
        }
        Ok(files.len())
    }
}

/// One directory per filesystem (device) among the directories of
/// `targets`, in first-seen order. A directory whose device cannot be read
/// is its own anchor, so it is synced whatever it is on.
fn filesystems<'a>(
    vfs: &dyn super::vfs::Vfs,
    targets: impl Iterator<Item = &'a Path>,
) -> Result<Vec<PathBuf>, WriteError> {
    let mut dirs_seen = HashSet::new();
    let mut devices = HashSet::new();
    let mut anchors = Vec::new();
    for target in targets {
        let dir = parent_of(target)?;
        if !dirs_seen.insert(dir.to_path_buf()) {
            continue;
        }
        match vfs.filesystem_id(dir) {
            Ok(device) => {
                if devices.insert(device) {
                    anchors.push(dir.to_path_buf());
                }
            }
            Err(_) => anchors.push(dir.to_path_buf()),
        }
    }
    Ok(anchors)
}

impl WriteBatch {
    /// Removes the directories this batch created, newest first, when they
    /// are empty (a batch that publishes nothing leaves no trace).
    fn remove_created_dirs(&self, dirs: &[PathBuf]) {
        for dir in dirs.iter().rev() {
            // Not empty (someone else wrote there) or gone: leave it.
            let _ = self.writer.vfs.remove_dir(dir);
        }
    }
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (temp, _) in lock_ignoring_poison(&self.state.files).drain(..) {
            match self.writer.vfs.remove_file(&temp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    log::warn!("could not remove temp file '{}': {e}", temp.display());
                }
                _ => cleanup::forget(&temp),
            }
        }
        let dirs = std::mem::take(&mut *lock_ignoring_poison(&self.state.dirs));
        self.remove_created_dirs(&dirs);
    }
}
