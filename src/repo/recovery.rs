//! Recovery on open, and the walk that finds leftovers of crashed writers.
//!
//! Invariants:
//! - opening a repository that needs no recovery performs no mutating system
//!   call: every step below only lists and reads until it finds something to
//!   remove;
//! - a temp file is removed only when its mtime is older than the grace
//!   period ([`Options::temp_grace`](crate::Options::temp_grace), default 15
//!   minutes). A live writer's temp file is younger than that (every write
//!   to it moves its mtime), so it is never taken from under the writer;
//! - a lock file in `.muse/locks/` is taken over only when nobody holds its
//!   `flock` (the kernel released it when its holder died), so a live
//!   holder's lock is never touched; what the dead holder recorded in it
//!   (a single-ref update in progress) is finished before the file goes;
//! - a lock file of the format older versions of this project kept beside
//!   the file it protected (`refs/heads/main.lock` holding a lock-owner
//!   record) is removed when its owner is provably dead; any other
//!   `x.lock` there is a branch and left alone;
//! - a checkout's `.restore-tmp-` files in the working tree are removed,
//!   whatever their age, when recovery takes over the working-tree lock of
//!   a dead holder: only a checkout writes them, and only under that lock,
//!   so they are a dead process's (the walk of the working tree happens only
//!   then, never on a clean open). Explicit recovery also walks the working
//!   tree and removes those older than the grace period;
//! - recovery never reads objects: it lists the names in the few
//!   directories where temp files and locks can be. The object shards
//!   (`objects/<2 hex>/`) hold `.obj-tmp-*` files too, but listing all 256
//!   of them is a pass over every object name: measured on a 10,000-object
//!   repository it took a `show-ref` from 1.5 ms to 12.4 ms (median), and it
//!   grows with the store. So recovery on open lists *one* shard, chosen at
//!   random (1/256 of that cost); over many opens every shard is visited.
//!   [`Repository::recover`](super::Repository::recover) (explicit) and
//!   `gc` list all of them. An object temp file waiting for its turn costs
//!   only disk space: it is never read as an object (its name is not an
//!   object name).
//!
//! - recovery never makes a read fail for want of permission: what it may
//!   not change (a repository of another user, a read-only mount: `EACCES`,
//!   `EPERM`, `EROFS`) is left as it is and listed in
//!   [`RecoveryReport::skipped`]; the command goes on, and one that must
//!   write fails on its own write, naming the path.
//! - a quarantine directory (`.muse/quarantine/<id>/`, a bundle being
//!   received) is removed, whatever its age, when nobody holds its lock:
//!   its unpack died. A live unpack's lock is held, so its files stay;
//!
//! Torn log tails need nothing here: readers ignore an incomplete last line
//! and the next append cuts it off.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::durable::{DurableWriter, FileLock, LockOwner};
use crate::error::{Error, Result};
use crate::files::{self, LeftoverKind, Shards};
use crate::layout::Layout;
use crate::refs::RefStore;

/// The default grace period before an orphaned temp file is removed.
pub const DEFAULT_TEMP_GRACE: Duration = Duration::from_secs(15 * 60);

/// What one recovery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Interrupted ref transactions rolled forward.
    pub transactions: usize,
    /// Lock files left by dead holders, taken over and removed.
    pub locks: Vec<PathBuf>,
    /// Temp files older than the grace period removed.
    pub temps: Vec<PathBuf>,
    /// What recovery would have changed but may not (no permission, a
    /// read-only filesystem), left as it was.
    pub skipped: Vec<PathBuf>,
}

impl RecoveryReport {
    /// Whether recovery changed nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.transactions == 0
            && self.locks.is_empty()
            && self.temps.is_empty()
            && self.skipped.is_empty()
    }
}

/// Runs recovery on the repository in `layout`, writing through `writer`:
/// finishes ref transactions and single-ref updates of dead processes,
/// removes their lock files and temp files older than `grace` (listing the
/// object shards `shards` says).
pub(crate) fn recover(
    layout: &Layout,
    writer: &DurableWriter,
    grace: Duration,
    shards: Shards,
) -> Result<RecoveryReport> {
    let refs = RefStore::for_recovery(layout.clone(), writer.clone());
    let mut report = RecoveryReport::default();
    match refs.recover() {
        Ok(n) => report.transactions = n,
        Err(e) if e.is_permission_refusal() => report.skipped.push(layout.transactions_dir()),
        Err(e) => return Err(e),
    }
    let now = SystemTime::now();
    for leftover in files::leftovers(layout, shards)? {
        let path = leftover.path.clone();
        let step = recover_one(layout, writer, &refs, &leftover, now, grace, &mut report);
        match step {
            Ok(()) => {}
            Err(e) if e.is_permission_refusal() => report.skipped.push(path),
            Err(e) => return Err(e),
        }
    }
    if shards == Shards::All {
        // Explicit recovery also walks the working tree, for the temp files
        // of a checkout whose lock file did not survive (a power cut), with
        // the grace period.
        for temp in files::restore_temps(layout)? {
            if temp.age(now) > grace && files::still_older_than(&temp.path, now, grace) {
                match writer.remove_file(&temp.path).map_err(Error::from) {
                    Ok(()) => report.temps.push(temp.path),
                    Err(e) if e.is_permission_refusal() => report.skipped.push(temp.path),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(report)
}

/// Recovers one leftover of a crashed writer, recording what it did in
/// `report`.
fn recover_one(
    layout: &Layout,
    writer: &DurableWriter,
    refs: &RefStore,
    leftover: &files::Leftover,
    now: SystemTime,
    grace: Duration,
    report: &mut RecoveryReport,
) -> Result<()> {
    match leftover.kind {
        LeftoverKind::Lock if leftover.path == layout.worktree_lock() => {
            // Its holder died holding it: a checkout killed part-way
            // leaves the `.restore-tmp-` files it had not renamed yet.
            // Only a checkout writes them, and only under this lock, so
            // while recovery holds it every one of them is a dead
            // process's, whatever its age.
            if let Some((lock, _)) = FileLock::try_take_over(&leftover.path)? {
                for temp in files::restore_temps(layout)? {
                    match writer.remove_file(&temp.path).map_err(Error::from) {
                        Ok(()) => {}
                        Err(e) if e.is_permission_refusal() => {
                            report.skipped.push(temp.path);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                    log::warn!(
                        "removed temp file '{}' left by a killed checkout",
                        temp.path.display()
                    );
                    report.temps.push(temp.path);
                }
                lock.release()?;
                report.locks.push(leftover.path.clone());
            }
        }
        LeftoverKind::Lock => {
            if refs.recover_lock(&leftover.path)? {
                report.locks.push(leftover.path.clone());
            }
        }
        LeftoverKind::LegacyLock => {
            if legacy_lock_is_dead(&leftover.path) {
                writer.remove_file(&leftover.path)?;
                log::warn!(
                    "removed lock '{}' left by a dead process of an older muse-store",
                    leftover.path.display()
                );
                report.locks.push(leftover.path.clone());
            }
        }
        LeftoverKind::Quarantine => {
            if remove_if_abandoned(layout, writer, &leftover.path)? {
                log::warn!(
                    "removed quarantine '{}' left by a killed unpack",
                    leftover.path.display()
                );
                report.temps.push(leftover.path.clone());
            }
        }
        LeftoverKind::Temp => {
            if leftover.age(now) > grace && files::still_older_than(&leftover.path, now, grace) {
                writer.remove_file(&leftover.path)?;
                log::warn!(
                    "removed temp file '{}' left by a crashed writer",
                    leftover.path.display()
                );
                report.temps.push(leftover.path.clone());
            }
        }
    }
    Ok(())
}

/// Removes the quarantine directory `dir` (`.muse/quarantine/<id>/`) when
/// the unpack that owned it is gone: nobody holds its lock (the kernel
/// released the `flock` when the holder died), so no live unpack loses its
/// files. Returns whether it was removed.
pub(crate) fn remove_if_abandoned(
    layout: &Layout,
    writer: &DurableWriter,
    dir: &std::path::Path,
) -> Result<bool> {
    let Some((lock, _)) = FileLock::try_take_over(&layout.quarantine_lock(dir))? else {
        return Ok(false);
    };
    files::remove_quarantine_files(writer.vfs().as_ref(), dir);
    match writer.vfs().remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::error::Error::io("remove the quarantine", dir, e));
        }
        _ => {}
    }
    lock.release()?;
    Ok(true)
}

/// Whether a `*.lock` file outside `.muse/locks/` is a lock an older
/// version of this project left (its content is a lock-owner record) whose
/// owner is provably dead.
pub(crate) fn legacy_lock_is_dead(path: &std::path::Path) -> bool {
    matches!(LockOwner::read(path), Ok(Some(Ok(owner))) if owner.is_dead())
}
