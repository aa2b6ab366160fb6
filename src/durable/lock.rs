//! `<file>.lock`: mutual exclusion across threads and processes.
//!
//! A lock is a file created exclusively (`O_CREAT | O_EXCL`) next to the file
//! it protects, holding one JSON line naming its owner (pid, host, time and a
//! random nonce). Whoever created it owns it until it is removed.
//!
//! Invariants:
//! - at most one live holder per lock path: creation is exclusive, and a lock
//!   is taken from its owner only when that owner is provably dead (same
//!   host, pid gone). Stealing renames the dead lock aside and checks that
//!   what was moved is the very lock judged dead; anything else is put back;
//! - a lock whose owner cannot be proven dead (another host, unreadable
//!   content, a live pid) is never removed: after the wait times out the
//!   error names the lock file and how to clear it;
//! - lock files are not durable state: they are neither fsynced nor needed
//!   after a power cut (recovery treats a missing lock as free). A lock file
//!   last modified before this machine booted is left over from a power cut
//!   or a reboot (often empty: its content was never synced), so no running
//!   process holds it and it is recovered like a dead owner's, unless it
//!   names another host.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::temp::{STATE_TMP_PREFIX, temp_name};
use super::vfs::Vfs;
use crate::clock::Timestamp;
use crate::sys;

/// How long [`FileLock::acquire`] waits for a live holder by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Who holds a lock: the content of a lock file.
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
}

impl LockOwner {
    fn current() -> Self {
        Self {
            pid: std::process::id(),
            host: host_name(),
            created_at: Timestamp::now().to_isoformat(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Whether the owner is provably dead: same host and no such process.
    #[must_use]
    pub fn is_dead(&self) -> bool {
        self.host == host_name() && self.pid != std::process::id() && !sys::pid_alive(self.pid)
    }
}

/// This machine's host name, as lock owners record it.
#[must_use]
pub fn host_name() -> String {
    sys::host_name()
}

/// What a lock file holds: its owner, or the raw text when it does not parse.
pub type OwnerRecord = std::result::Result<LockOwner, String>;

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// A live process holds it, or one that cannot be proven dead.
    #[error(
        "'{path}' is locked by {holder}; if no muse process is using this repository, remove '{path}' and retry"
    )]
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

impl LockOwner {
    /// Reads the owner record of the lock file at `path`: `Ok(None)` when
    /// the file is gone, `Ok(Some(Err(text)))` when it does not parse (for
    /// example a lock another implementation wrote). The one parser of the
    /// lock-owner format.
    pub fn read(path: &Path) -> io::Result<Option<OwnerRecord>> {
        read_owner(path)
    }
}

fn read_owner(path: &Path) -> io::Result<Option<OwnerRecord>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .map_err(|_| String::from_utf8_lossy(&bytes).into_owned()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A held lock; released (its file removed) when dropped.
#[must_use = "the lock is released when this value is dropped"]
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    vfs: Arc<dyn Vfs>,
}

impl FileLock {
    /// The lock file path for `target`: `<target>.lock`.
    #[must_use]
    pub fn path_for(target: &Path) -> PathBuf {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        target.with_file_name(name)
    }

    /// Takes the lock at `path`, waiting up to `timeout` for a live holder and
    /// recovering a lock whose holder is provably dead.
    pub fn acquire(vfs: &Arc<dyn Vfs>, path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let me = LockOwner::current();
        let content =
            serde_json::to_string(&me).map_err(|e| lock_io("encode", path)(io::Error::other(e)))?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            if create_complete(vfs, path, &content).map_err(lock_io("create lock", path))? {
                return Ok(Self {
                    path: path.to_path_buf(),
                    vfs: vfs.clone(),
                });
            }
            let owner = read_owner(path).map_err(lock_io("read lock", path))?;
            let foreign = matches!(&owner, Some(Ok(o)) if o.host != host_name());
            if !foreign
                && let Some(inode) =
                    from_previous_boot(path).map_err(lock_io("inspect lock", path))?
            {
                let same =
                    |aside: &Path| fs::symlink_metadata(aside).map(|m| (m.dev(), m.ino()) == inode);
                if steal(vfs, path, same).map_err(lock_io("recover lock", path))? {
                    log::warn!(
                        "recovered lock '{}' left from before this machine booted",
                        path.display()
                    );
                }
                continue;
            }
            match &owner {
                None => continue,
                Some(Ok(owner)) if owner.is_dead() => {
                    let same = |aside: &Path| {
                        read_owner(aside).map(|moved| matches!(moved, Some(Ok(o)) if o == *owner))
                    };
                    if steal(vfs, path, same).map_err(lock_io("recover lock", path))? {
                        log::warn!(
                            "recovered lock '{}' left by dead process {} on {}",
                            path.display(),
                            owner.pid,
                            owner.host
                        );
                    }
                    continue;
                }
                Some(_) => {}
            }
            if Instant::now() >= deadline {
                let holder = match owner {
                    Some(Ok(o)) => format!(
                        "process {} on host '{}' since {}",
                        o.pid, o.host, o.created_at
                    ),
                    Some(Err(raw)) => format!("an unreadable owner record {raw:?}"),
                    None => "nobody".to_owned(),
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

    /// Takes the lock only if it is free (or held by a dead process) right now.
    pub fn try_acquire(vfs: &Arc<dyn Vfs>, path: &Path) -> Result<Option<Self>, LockError> {
        match Self::acquire(vfs, path, Duration::ZERO) {
            Ok(lock) => Ok(Some(lock)),
            Err(LockError::Held { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The lock file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock, reporting a failure to remove its file (which
    /// would block every later writer until the file is removed by hand).
    pub fn release(self) -> Result<(), LockError> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY-free take of the fields: `this` is never dropped, so each
        // field is read out exactly once.
        let (path, vfs) = (this.path.clone(), this.vfs.clone());
        match vfs.remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LockError::Io {
                action: "release lock",
                path,
                source: e,
            }),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if let Err(e) = self.vfs.remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("could not release lock '{}': {e}", self.path.display());
        }
    }
}

/// When this machine booted (`btime` in `/proc/stat`); `None` when unknown.
fn boot_time() -> Option<SystemTime> {
    static BOOT: OnceLock<Option<SystemTime>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let secs = stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    })
}

/// The inode (device, number) of the lock file at `path` if it was last
/// modified before this machine booted: then no running process can hold
/// it, whatever it says (it may well be empty, its content never synced).
fn from_previous_boot(path: &Path) -> io::Result<Option<(u64, u64)>> {
    let Some(boot) = boot_time() else {
        return Ok(None);
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok((meta.modified()? < boot).then(|| (meta.dev(), meta.ino())))
}

/// Creates the lock file at `path` with its owner record already in it;
/// `Ok(false)` when a lock exists. The record is written to a temp file
/// beside the lock and renamed into place only if no lock exists
/// (`RENAME_NOREPLACE`), so a process killed at any instant leaves no lock or
/// a complete one whose owner can be proven dead, never an empty lock that
/// nobody may remove (found by the SIGKILL chaos test: a kill between
/// creating the lock and writing its record blocked every later writer). At
/// worst a kill leaves an orphaned temp file.
fn create_complete(vfs: &Arc<dyn Vfs>, path: &Path, content: &str) -> io::Result<bool> {
    let temp = path.with_file_name(temp_name(&format!("{STATE_TMP_PREFIX}lock-")));
    let mut file = vfs.create_new(&temp, 0o644)?;
    let written = file.write_all(content.as_bytes());
    drop(file);
    let placed = written.and_then(|()| vfs.rename_noreplace(&temp, path));
    match placed {
        Ok(()) => Ok(true),
        Err(e) => {
            // Best effort: the temp file is not a lock, and a leftover one
            // is only an orphan for gc.
            let _ = vfs.remove_file(&temp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Removes a lock judged dead, making sure it is the same lock instance:
/// it is renamed aside first, and if what was moved is not the one judged
/// (`is_judged` says no: someone replaced it meanwhile) it is put back
/// without overwriting. Returns whether the dead lock was removed.
fn steal(
    vfs: &Arc<dyn Vfs>,
    path: &Path,
    is_judged: impl Fn(&Path) -> io::Result<bool>,
) -> io::Result<bool> {
    let aside = path.with_file_name(temp_name(&format!("{STATE_TMP_PREFIX}stale-lock-")));
    match vfs.rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if is_judged(&aside)? {
        vfs.remove_file(&aside)?;
        return Ok(true);
    }
    // Not the lock we judged dead: a live one. Put it back unless a new lock
    // was created meanwhile (then the moved one's holder lost it; it is
    // removed so it cannot be mistaken for data).
    match vfs.rename_noreplace(&aside, path) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            log::warn!(
                "lock '{}' changed hands while being recovered",
                path.display()
            );
            vfs.remove_file(&aside)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
