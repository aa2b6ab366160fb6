//! Lock files: mutual exclusion across threads and processes that the
//! operating system releases when the holder dies.
//!
//! A lock is an `flock(2)` lock (the standard library's [`File::lock`]) on a
//! file under `.muse/locks/`. Holding it means holding the kernel lock on
//! the inode that is linked at the lock's path at that moment.
//!
//! Invariants:
//! - at most one exclusive holder per lock path, or any number of shared
//!   holders: the kernel enforces it, and a holder that dies (killed, power
//!   cut, crash) releases its lock with its last descriptor; no takeover
//!   protocol exists, so any number of processes waiting on a dead holder's
//!   lock give exactly one new holder;
//! - an exclusive lock is released by unlinking its file while it is still
//!   held, then closing it. A waiter that locked the inode just unlinked sees
//!   that the path no longer names its inode and starts over, so two
//!   processes can never both believe they hold one path;
//! - a lock file left behind (its holder died before unlinking) is not a
//!   lock: nothing holds it, the next acquirer takes it, and recovery removes
//!   it. Its content, the last holder's [`LockOwner`] record, is only for
//!   messages and for the recovery of what that holder was doing;
//! - lock files are not repository state: they are never fsynced and live
//!   outside the branch namespace, so no branch name (the reference
//!   implementation accepts `x.lock`) can collide with one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::sys;

/// How long [`FileLock::acquire`] waits for a live holder by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Who holds (or last held) a lock: the content of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the holder.
    pub host: String,
    /// When the lock was taken (ISO-8601).
    pub created_at: String,
    /// A random value that makes this lock instance unique.
    pub nonce: String,
    /// What the holder is doing, in the terms of the layer that took the
    /// lock (for a ref lock: the update in progress), so that recovery can
    /// finish or report it when the holder died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<serde_json::Value>,
}

impl LockOwner {
    fn current(intent: Option<serde_json::Value>) -> Self {
        Self {
            pid: std::process::id(),
            host: sys::host_name(),
            created_at: Timestamp::now().to_isoformat(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            intent,
        }
    }

    /// Whether the owner is provably dead: same host and no such process.
    #[must_use]
    pub fn is_dead(&self) -> bool {
        self.host == sys::host_name() && self.pid != std::process::id() && !sys::pid_alive(self.pid)
    }

    /// Reads the owner record of the lock file at `path`: `Ok(None)` when
    /// the file is gone, `Ok(Some(Err(text)))` when it does not parse. The
    /// one parser of the lock-owner format.
    pub fn read(path: &Path) -> io::Result<Option<OwnerRecord>> {
        // Never followed nor blocked on: what is planted under a lock's
        // name in a received repository is no owner record.
        let mut file = match crate::sys::open_nofollow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if crate::sys::is_symlink_refusal(&e) => {
                return Ok(Some(Err("a symbolic link, not a lock file".to_owned())));
            }
            Err(e) => return Err(e),
        };
        if !file.metadata()?.is_file() {
            return Ok(Some(Err("not a regular file".to_owned())));
        }
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut file, &mut bytes)?;
        Ok(Some(
            serde_json::from_slice(&bytes)
                .map_err(|_| String::from_utf8_lossy(&bytes).into_owned()),
        ))
    }
}

/// What a lock file holds: its owner, or the raw text when it does not parse.
pub type OwnerRecord = std::result::Result<LockOwner, String>;

/// This machine's host name, as lock owners record it.
#[must_use]
pub fn host_name() -> String {
    sys::host_name()
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// A live process holds it.
    #[error("'{path}' is locked by {holder}; wait for it to finish, or stop it")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// A system call on the lock file failed.
    #[error("could not {action} '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

fn lock_io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io {
        action,
        path,
        source,
    }
}

/// Exclusive or shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exclusive,
    Shared,
}

/// What an exclusive acquirer writes into the lock file.
#[derive(Debug)]
enum Keep {
    /// Its own owner record, with this intent.
    Owner(Option<serde_json::Value>),
    /// Nothing: the last holder's record stays for recovery to read.
    Record,
}

/// A held lock; released when dropped (an exclusive lock's file is removed
/// first).
#[must_use = "the lock is released when this value is dropped"]
#[derive(Debug)]
pub struct FileLock {
    file: Option<File>,
    path: PathBuf,
    /// Whether releasing removes the file (exclusive locks nobody takes
    /// shared).
    remove_on_release: bool,
}

impl FileLock {
    /// Takes the exclusive lock at `path` (creating its directory when
    /// needed), waiting up to `timeout` for a live holder. `intent` is
    /// recorded in the lock file for recovery (see [`LockOwner::intent`]).
    pub fn acquire(
        path: &Path,
        timeout: Duration,
        intent: Option<serde_json::Value>,
    ) -> Result<Self, LockError> {
        Self::take(path, Mode::Exclusive, true, timeout, Keep::Owner(intent))
    }

    /// Takes the exclusive lock at `path` only if nobody holds it right now.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, LockError> {
        match Self::take(
            path,
            Mode::Exclusive,
            true,
            Duration::ZERO,
            Keep::Owner(None),
        ) {
            Ok(lock) => Ok(Some(lock)),
            Err(LockError::Held { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes the exclusive lock at `path` if nobody holds it, without
    /// replacing its content: returns the lock and the record the last
    /// holder left (a holder that died before releasing), for recovery to
    /// act on before it releases the lock.
    pub fn try_take_over(path: &Path) -> Result<Option<(Self, Option<OwnerRecord>)>, LockError> {
        let mut lock = match Self::take(path, Mode::Exclusive, true, Duration::ZERO, Keep::Record) {
            Ok(lock) => lock,
            Err(LockError::Held { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let record = lock.read_record();
        Ok(Some((lock, record)))
    }

    /// Takes the lock at `path` shared (any number of shared holders, no
    /// exclusive one), waiting up to `timeout`. A shared lock's file stays
    /// in place when released.
    pub fn acquire_shared(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        Self::take(path, Mode::Shared, false, timeout, Keep::Record)
    }

    /// Takes the exclusive lock at `path` for a holder that keeps its file
    /// in place when released (a lock others take shared).
    pub fn acquire_exclusive_kept(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        Self::take(path, Mode::Exclusive, false, timeout, Keep::Owner(None))
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "lock files are not repository state: opened, locked and unlinked outside the durable writer, never fsynced"
    )]
    fn take(
        path: &Path,
        mode: Mode,
        remove_on_release: bool,
        timeout: Duration,
        keep: Keep,
    ) -> Result<Self, LockError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(lock_io("create the lock directory for", path))?;
        }
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(path)
                .map_err(lock_io("open lock", path))?;
            let locked = match mode {
                Mode::Exclusive => file.try_lock(),
                Mode::Shared => file.try_lock_shared(),
            };
            match locked {
                Ok(()) => {
                    // The file may have been unlinked (released) between our
                    // open and our lock: then we hold a lock on nothing.
                    if !same_file(&file, path).map_err(lock_io("inspect lock", path))? {
                        continue;
                    }
                    let mut lock = Self {
                        file: Some(file),
                        path: path.to_path_buf(),
                        remove_on_release,
                    };
                    if let (Mode::Exclusive, Keep::Owner(intent)) = (mode, keep) {
                        lock.write_owner(&LockOwner::current(intent))
                            .map_err(lock_io("write lock", path))?;
                    }
                    return Ok(lock);
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_io("lock", path)(e)),
            }
            drop(file);
            if Instant::now() >= deadline {
                let holder = match LockOwner::read(path) {
                    Ok(Some(Ok(o))) => format!(
                        "process {} on host '{}' since {}",
                        o.pid, o.host, o.created_at
                    ),
                    Ok(Some(Err(_)) | None) | Err(_) => "another process".to_owned(),
                };
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn write_owner(&mut self, owner: &LockOwner) -> io::Result<()> {
        let bytes = serde_json::to_vec(owner).map_err(io::Error::other)?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("lock released"))?;
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(&bytes)
    }

    /// Records what the holder is doing now (see [`LockOwner::intent`]),
    /// replacing the previous record. Not durable.
    pub fn set_intent(&mut self, intent: serde_json::Value) -> Result<(), LockError> {
        let mut owner = self.owner().unwrap_or_else(|| LockOwner::current(None));
        owner.intent = Some(intent);
        self.write_owner(&owner)
            .map_err(lock_io("write lock", &self.path))
    }

    fn owner(&mut self) -> Option<LockOwner> {
        self.read_record()?.ok()
    }

    /// The record in the lock file, read through the held descriptor
    /// (`None` when the file is empty or unreadable).
    fn read_record(&mut self) -> Option<OwnerRecord> {
        let file = self.file.as_mut()?;
        file.rewind().ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        if bytes.is_empty() {
            return None;
        }
        Some(
            serde_json::from_slice(&bytes)
                .map_err(|_| String::from_utf8_lossy(&bytes).into_owned()),
        )
    }

    /// Whether someone holds the lock at `path` exclusively right now,
    /// probed without changing anything (the file is opened read-only and
    /// locked shared for an instant). `false` when there is no such file.
    pub fn is_held(path: &Path) -> io::Result<bool> {
        // Never followed nor blocked on: a FIFO planted under a lock's name
        // must not stall fsck.
        let file = match crate::sys::open_nofollow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The lock file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock, reporting a failure to remove its file.
    pub fn release(mut self) -> Result<(), LockError> {
        self.unlock()
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "a lock file is removed while held, outside the durable writer: it is not repository state"
    )]
    fn unlock(&mut self) -> Result<(), LockError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        if self.remove_on_release && same_file(&file, &self.path).unwrap_or(false) {
            // Unlinked while still held: a waiter that locks this inode now
            // sees it is no longer the lock's file and starts over.
            match fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => result = Err(lock_io("release lock", &self.path)(e)),
            }
        }
        drop(file);
        result
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Err(e) = self.unlock() {
            log::warn!("{e}");
        }
    }
}

/// Replaces the small file at `path` (under `.muse/locks/`) with `bytes`
/// atomically (temp file in the same directory, rename) but without fsync
/// and outside the seam: for hints that live beside the locks and are not
/// repository state (a counter readers compare, never trust across a
/// crash).
#[expect(
    clippy::disallowed_methods,
    reason = "not repository state: lives with the lock files, outside the durable writer"
)]
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    fs::create_dir_all(dir)?;
    let temp = dir.join(super::temp::temp_name(super::temp::STATE_TMP_PREFIX));
    let written = fs::write(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Whether the open `file` is the file now linked at `path`.
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(linked) => Ok((open.dev(), open.ino()) == (linked.dev(), linked.ino())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_blocks_and_a_released_one_is_gone() -> Result<(), LockError> {
        let dir = tempfile::tempdir().map_err(lock_io("tempdir", Path::new("/tmp")))?;
        let path = dir.path().join("locks/x.lock");
        let held = FileLock::acquire(&path, Duration::ZERO, None)?;
        assert!(FileLock::try_acquire(&path)?.is_none(), "exclusive");
        match FileLock::acquire(&path, Duration::from_millis(10), None) {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            other => panic!("expected the lock to be held: {other:?}"),
        }
        held.release()?;
        assert!(!path.exists(), "an exclusive lock's file goes with it");
        let again = FileLock::try_acquire(&path)?;
        assert!(again.is_some(), "free again");
        Ok(())
    }

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() -> Result<(), LockError> {
        let dir = tempfile::tempdir().map_err(lock_io("tempdir", Path::new("/tmp")))?;
        let path = dir.path().join("gc.lock");
        let a = FileLock::acquire_shared(&path, Duration::ZERO)?;
        let b = FileLock::acquire_shared(&path, Duration::ZERO)?;
        assert!(
            FileLock::acquire_exclusive_kept(&path, Duration::ZERO).is_err(),
            "shared holders exclude an exclusive one"
        );
        drop((a, b));
        let x = FileLock::acquire_exclusive_kept(&path, Duration::ZERO)?;
        assert!(FileLock::acquire_shared(&path, Duration::ZERO).is_err());
        drop(x);
        assert!(path.exists(), "a lock taken shared keeps its file");
        Ok(())
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "plants a leftover lock file, as a dead holder leaves it"
    )]
    fn a_leftover_lock_file_is_not_a_lock() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.lock");
        std::fs::write(
            &path,
            b"{\"pid\": 1, \"host\": \"h\", \"created_at\": \"\", \"nonce\": \"n\"}",
        )?;
        let lock = FileLock::acquire(&path, Duration::ZERO, None)?;
        let owner = LockOwner::read(&path)?.ok_or("gone")??;
        assert_eq!(owner.pid, std::process::id(), "the new holder's record");
        drop(lock);
        Ok(())
    }
}
