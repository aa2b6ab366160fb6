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
//! - a lock file is removed only when its owner is provably dead (same host,
//!   pid gone), through [`FileLock`]'s steal, which renames the lock aside
//!   and checks it is the very lock judged dead before removing it;
//! - recovery never reads objects: it lists the names in the few
//!   directories where temp files and locks can be. The object shards
//!   (`objects/<2 hex>/`) hold `.obj-tmp-*` files too, but listing all 256
//!   of them is a pass over every object name: measured on a 10,000-object
//!   repository it took a `show-ref` from 1.5 ms to 12.4 ms (median), and it
//!   grows with the store. So recovery on open lists *one* shard, chosen at
//!   random (1/256 of that cost); over many opens every shard is visited.
//!   [`Repository::recover`] (explicit) and `gc` list all of them. An object
//!   temp file waiting for its turn costs only disk space: it is never read
//!   as an object (its name is not an object name).
//!
//! Torn log tails need nothing here: readers ignore an incomplete last line
//! and the next append cuts it off.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::layout::{Layout, is_temp_name};
use crate::refs::RefStore;
use crate::refs::{FileLock, LockOwner};
use crate::repo::Repository;

/// The default grace period before an orphaned temp file is removed.
pub const DEFAULT_TEMP_GRACE: Duration = Duration::from_secs(15 * 60);

/// What a leftover file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeftoverKind {
    /// A temp file (one of the three prefixes).
    Temp,
    /// A `<file>.lock` lock file.
    Lock,
}

/// A temp or lock file found where such files can be.
#[derive(Debug, Clone)]
pub(crate) struct Leftover {
    pub(crate) path: PathBuf,
    pub(crate) kind: LeftoverKind,
    pub(crate) modified: SystemTime,
    pub(crate) size: u64,
}

impl Leftover {
    /// How long ago it was last modified (zero when its mtime is in the
    /// future).
    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.modified).unwrap_or_default()
    }
}

/// What one recovery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Interrupted ref transactions rolled forward.
    pub transactions: usize,
    /// Lock files of dead owners removed.
    pub locks: Vec<PathBuf>,
    /// Temp files older than the grace period removed.
    pub temps: Vec<PathBuf>,
}

impl RecoveryReport {
    /// Whether recovery changed nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.transactions == 0 && self.locks.is_empty() && self.temps.is_empty()
    }
}

/// Which object shards a recovery pass lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shards {
    /// All 256 (explicit recovery, gc, fsck).
    All,
    /// One, chosen at random (recovery on open).
    OneAtRandom,
}

/// Runs recovery on `repo`: finishes ref transactions, recovers locks of
/// dead owners, removes temp files older than `grace`.
pub(crate) fn recover(
    repo: &Repository,
    grace: Duration,
    shards: Shards,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport {
        // Built without reading config.toml (no author is needed: replayed
        // reflog lines name the journal's own author), so a clean open only
        // lists directories.
        transactions: RefStore::new(
            repo.layout().clone(),
            repo.writer().clone(),
            "unknown".to_owned(),
        )
        .recover()?,
        ..RecoveryReport::default()
    };
    let now = SystemTime::now();
    let mut leftovers = scan(repo.layout(), false)?;
    match shards {
        Shards::All => {
            for shard in shard_dirs(repo.layout())? {
                list(&shard, false, &mut leftovers)?;
            }
        }
        Shards::OneAtRandom => {
            let pick = uuid::Uuid::new_v4().as_bytes()[0];
            let shard = repo.layout().objects_dir().join(format!("{pick:02x}"));
            list(&shard, false, &mut leftovers)?;
        }
    }
    for leftover in leftovers {
        match leftover.kind {
            LeftoverKind::Lock => {
                if lock_owner_is_dead(&leftover.path)
                    && let Some(lock) = FileLock::try_acquire(repo.writer().vfs(), &leftover.path)?
                {
                    // try_acquire stole the dead lock (checking it was the
                    // one judged dead) and now holds a fresh one: release it.
                    lock.release()?;
                    log::warn!(
                        "removed lock '{}' left by a dead process",
                        leftover.path.display()
                    );
                    report.locks.push(leftover.path);
                }
            }
            LeftoverKind::Temp => {
                if leftover.age(now) > grace && still_old(&leftover.path, now, grace) {
                    repo.writer().remove_file(&leftover.path)?;
                    log::warn!(
                        "removed temp file '{}' left by a crashed writer",
                        leftover.path.display()
                    );
                    report.temps.push(leftover.path);
                }
            }
        }
    }
    Ok(report)
}

/// Re-checks a temp file's age just before it is removed (the listing may be
/// old by now on a big repository).
pub(crate) fn still_old(path: &Path, now: SystemTime, grace: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > grace)
}

/// The owner recorded in a lock file, when it can be read and parsed.
pub(crate) fn lock_owner(path: &Path) -> Option<LockOwner> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a lock file names an owner that is provably dead.
pub(crate) fn lock_owner_is_dead(path: &Path) -> bool {
    lock_owner(path).is_some_and(|o| o.is_dead())
}

/// Every temp and lock file in the places where they can be: `.muse/`
/// itself, `refs/**`, `logs/**`, `coordination/**`, `op_log/**`,
/// `commits/`, `snapshots/`, `ref-transactions/`, `objects/` and, when
/// `shards` is set, each `objects/<2 hex>/` shard. Reads names and one
/// `lstat` per leftover; never opens a stored file.
pub(crate) fn scan(layout: &Layout, shards: bool) -> Result<Vec<Leftover>> {
    let mut found = Vec::new();
    let muse = layout.muse_dir();
    for dir in [
        muse.to_path_buf(),
        muse.join("refs"),
        layout.commits_dir(),
        layout.snapshots_dir(),
        layout.transactions_dir(),
        layout.objects_dir(),
    ] {
        list(&dir, false, &mut found)?;
    }
    for dir in [
        layout.heads_dir(),
        layout.logs_dir(),
        layout.coordination_dir(),
        layout.op_log_dir(),
    ] {
        list(&dir, true, &mut found)?;
    }
    if shards {
        for shard in shard_dirs(layout)? {
            list(&shard, false, &mut found)?;
        }
    }
    Ok(found)
}

/// The `objects/<2 hex>/` directories.
pub(crate) fn shard_dirs(layout: &Layout) -> Result<Vec<PathBuf>> {
    let dir = layout.objects_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut shards = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
        let name = entry.file_name();
        let is_shard = name.to_str().is_some_and(|n| {
            n.len() == 2 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if is_shard && entry.file_type().is_ok_and(|t| t.is_dir()) {
            shards.push(entry.path());
        }
    }
    shards.sort();
    Ok(shards)
}

/// Lists `dir` (recursing into subdirectories when `recursive`, never
/// following symlinks), collecting temp and lock files.
fn list(dir: &Path, recursive: bool, found: &mut Vec<Leftover>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        // Absent, or replaced by a file: nothing of ours can be inside.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let kind = if is_temp_name(name) {
            Some(LeftoverKind::Temp)
        } else if name.ends_with(".lock") {
            Some(LeftoverKind::Lock)
        } else {
            None
        };
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspect", entry.path(), e)),
        };
        if let Some(kind) = kind
            && !file_type.is_dir()
        {
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Gone meanwhile (a writer renamed or removed it): fine.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", entry.path(), e)),
            };
            found.push(Leftover {
                path: entry.path(),
                kind,
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: meta.len(),
            });
        } else if recursive && file_type.is_dir() {
            list(&entry.path(), true, found)?;
        }
    }
    Ok(())
}
