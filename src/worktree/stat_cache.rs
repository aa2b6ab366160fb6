//! The stat cache: which object id a working-tree file had when its stat
//! data was last seen, so that status, commit and checkout need not re-read
//! and re-hash files that did not change.
//!
//! `.muse/stat-cache` (an extension; the reference implementation's own
//! `stat_cache.json` is left alone): a msgpack map followed by the SHA-256
//! of its bytes, written through the one writer.
//!
//! Invariants:
//! - it is only ever a hint: a missing, stale, truncated, garbled or foreign
//!   (another repository's) cache makes work slower, never a result wrong;
//! - a path's cached id is used only when the file's stat data is exactly
//!   what was recorded with it (size, mtime and ctime with nanoseconds,
//!   inode, device and mode, as git's index records) *and* its mtime is
//!   strictly older than the moment the cache was written (git's racy-clean
//!   rule): a file changed within the same timestamp tick as the cache
//!   write has an mtime not older than that moment and is re-hashed, so no
//!   change is ever missed because the clock did not move;
//! - "the moment the cache was written" is read off the filesystem's own
//!   clock (the mtime of the cache's freshly created temp file), the same
//!   clock that stamps the files it describes.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::layout::Layout;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStat {
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    ino: u64,
    dev: u64,
    mode: u32,
}

impl FileStat {
    /// The stat data of `meta` (from `lstat`, or `fstat` of the open file).
    pub(crate) fn of(meta: &Metadata) -> Self {
        let nanos = |n: i64| u32::try_from(n).unwrap_or(0);
        Self {
            size: meta.size(),
            mtime: (meta.mtime(), nanos(meta.mtime_nsec())),
            ctime: (meta.ctime(), nanos(meta.ctime_nsec())),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
        }
    }
}

const MAGIC: &str = "muse-stat-cache";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Disk {
    magic: String,
    version: u32,
    repo_id: String,
    /// The filesystem time the cache was written (seconds, nanoseconds).
    written_at: (i64, u32),
    entries: Vec<(String, FileStat, ObjectId)>,
}

/// The stat cache of one working tree; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct StatCache {
    entries: HashMap<String, (FileStat, ObjectId)>,
    written_at: (i64, u32),
    changed: bool,
}

impl StatCache {
    /// Loads the cache of the repository `repo_id` in `layout`; empty when
    /// there is none, or it is damaged, of another version or of another
    /// repository.
    pub(crate) fn load(layout: &Layout, repo_id: &str) -> Self {
        let Ok(bytes) = std::fs::read(layout.muse_stat_cache()) else {
            return Self::default();
        };
        Self::decode(&bytes, repo_id).unwrap_or_else(|| {
            log::debug!("ignoring an unusable stat cache");
            Self {
                // Rewrite it at the next save.
                changed: true,
                ..Self::default()
            }
        })
    }

    fn decode(bytes: &[u8], repo_id: &str) -> Option<Self> {
        let split = bytes.len().checked_sub(32)?;
        let (payload, sum) = bytes.split_at(split);
        if ObjectId::hash(payload).as_bytes() != sum {
            return None;
        }
        let disk: Disk = rmp_serde::from_slice(payload).ok()?;
        if disk.magic != MAGIC || disk.version != VERSION || disk.repo_id != repo_id {
            return None;
        }
        Some(Self {
            entries: disk
                .entries
                .into_iter()
                .map(|(path, stat, id)| (path, (stat, id)))
                .collect(),
            written_at: disk.written_at,
            changed: false,
        })
    }

    /// The id recorded for `path` if `stat` proves the file unchanged since
    /// (see the module docs for the rule).
    pub(crate) fn lookup(&self, path: &str, stat: &FileStat) -> Option<ObjectId> {
        let (cached, id) = self.entries.get(path)?;
        (cached == stat && stat.mtime < self.written_at).then_some(*id)
    }

    /// Records that `path`, with `stat`, holds object `id`.
    pub(crate) fn record(&mut self, path: &str, stat: FileStat, id: ObjectId) {
        let fresh = (stat, id);
        if self.entries.get(path) != Some(&fresh) {
            self.entries.insert(path.to_owned(), fresh);
            self.changed = true;
        }
    }

    /// Forgets every path `keep` says no to (files that are gone).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|path, _| keep(path));
        self.changed |= self.entries.len() != before;
    }

    /// Whether anything changed since it was loaded.
    pub(crate) fn is_changed(&self) -> bool {
        self.changed
    }

    /// How many paths it knows.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Writes the cache through `writer` (a batch's writer makes it part of
    /// that batch). The write time recorded is the filesystem time of the
    /// new file's creation, so every entry recorded before is judged by it.
    pub(crate) fn save(
        &mut self,
        writer: &DurableWriter,
        layout: &Layout,
        repo_id: &str,
    ) -> Result<()> {
        let path = layout.muse_stat_cache();
        let mut staged = writer.stage(&path, TempKind::State)?;
        let created = std::fs::symlink_metadata(staged.temp_path())
            .map_err(|e| Error::io("stat", staged.temp_path(), e))?;
        let written_at = FileStat::of(&created).mtime;
        let mut entries: Vec<(String, FileStat, ObjectId)> = self
            .entries
            .iter()
            .map(|(path, (stat, id))| (path.clone(), *stat, *id))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let disk = Disk {
            magic: MAGIC.to_owned(),
            version: VERSION,
            repo_id: repo_id.to_owned(),
            written_at,
            entries,
        };
        let mut bytes = rmp_serde::to_vec(&disk)
            .map_err(|e| Error::corrupt(&path, format!("cannot encode the stat cache: {e}")))?;
        let sum = ObjectId::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        staged.write(&bytes)?;
        staged.commit()?;
        self.written_at = written_at;
        self.changed = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestResult, repo};

    #[expect(
        clippy::disallowed_methods,
        reason = "working-tree files of a scratch repository"
    )]
    fn file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<FileStat> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        Ok(FileStat::of(&std::fs::symlink_metadata(&path)?))
    }

    #[test]
    fn a_hit_needs_equal_stat_data_and_an_mtime_older_than_the_write() -> TestResult {
        let (dir, repo) = repo()?;
        let id = ObjectId::hash(b"a");
        let stat = file(dir.path(), "a", b"a")?;
        let mut cache = StatCache::default();
        cache.record("a", stat, id);
        // Not saved yet: the write time is zero, nothing is trusted.
        assert_eq!(cache.lookup("a", &stat), None);
        // Saved in the same tick as the file's write: racy, not trusted.
        cache.save(repo.writer(), repo.layout(), "r")?;
        let reloaded = StatCache::load(repo.layout(), "r");
        assert_eq!(reloaded.len(), 1);
        if stat.mtime < reloaded.written_at {
            assert_eq!(reloaded.lookup("a", &stat), Some(id));
        } else {
            assert_eq!(reloaded.lookup("a", &stat), None, "same tick: re-hash");
        }
        // Any field that differs is a miss.
        let mut other = stat;
        other.ino += 1;
        assert_eq!(reloaded.lookup("a", &other), None);
        let mut other = stat;
        other.ctime.1 ^= 1;
        assert_eq!(reloaded.lookup("a", &other), None);
        // Another repository's cache, or a damaged one, is empty.
        assert_eq!(StatCache::load(repo.layout(), "other").len(), 0);
        Ok(())
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "damages the cache file on purpose"
    )]
    fn a_damaged_cache_is_ignored() -> TestResult {
        let (_dir, repo) = repo()?;
        let mut cache = StatCache::default();
        cache.record(
            "a",
            FileStat::of(&std::fs::metadata(repo.layout().muse_dir())?),
            ObjectId::EMPTY,
        );
        cache.save(repo.writer(), repo.layout(), "r")?;
        let path = repo.layout().muse_stat_cache();
        let mut bytes = std::fs::read(&path)?;
        for cut in [0, 1, 31, 32, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut])?;
            assert_eq!(StatCache::load(repo.layout(), "r").len(), 0, "cut at {cut}");
        }
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, &bytes)?;
        assert_eq!(
            StatCache::load(repo.layout(), "r").len(),
            0,
            "a flipped bit"
        );
        std::fs::write(&path, b"garbage")?;
        assert_eq!(StatCache::load(repo.layout(), "r").len(), 0, "garbage");
        Ok(())
    }
}
