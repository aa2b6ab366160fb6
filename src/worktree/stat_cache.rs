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
//!   clock (the mtime of the cache's temp file, created *before* the walk
//!   that fills it begins), the same clock that stamps the files it
//!   describes. An entry's stat data is taken from the open descriptor
//!   before its content is read, so a file changed during the read has a
//!   later mtime (no earlier than the walk's start) than the one recorded
//!   and is a miss next time;
//! - it is written only by a holder of the working-tree lock (commit,
//!   checkout, and a status that finds the lock free), through the one
//!   writer: inside the commit's batch, or as its own durable write.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::durable::{DurableWriter, Staged, TempKind};
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

    /// The file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

const MAGIC: &str = "muse-stat-cache";
const VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct Disk {
    magic: String,
    version: u32,
    repo_id: String,
    /// The filesystem time the cache was written (seconds, nanoseconds).
    written_at: (i64, u32),
    /// The device whose clock `written_at` was read from.
    dev: u64,
    entries: Vec<(String, FileStat, ObjectId)>,
}

/// The stat cache of one working tree; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct StatCache {
    entries: HashMap<String, (FileStat, ObjectId)>,
    written_at: (i64, u32),
    dev: u64,
    changed: bool,
}

impl StatCache {
    /// Loads the cache of the repository `repo_id` in `layout`; empty when
    /// there is none, or it is damaged, of another version or of another
    /// repository.
    pub(crate) fn load(layout: &Layout, repo_id: &str) -> Self {
        // Never followed nor blocked on (a received repository's
        // `.muse/stat-cache` may be anything): a hint, so any trouble is
        // an empty cache.
        let Ok(Some(bytes)) = crate::files::read_optional(&layout.muse_stat_cache()) else {
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
            dev: disk.dev,
            changed: false,
        })
    }

    /// The id recorded for `path` if `stat` proves the file unchanged since
    /// (see the module docs for the rule).
    pub(crate) fn lookup(&self, path: &str, stat: &FileStat) -> Option<ObjectId> {
        let (cached, id) = self.entries.get(path)?;
        (cached == stat && Clock::proves(self.written_at, self.dev, stat)).then_some(*id)
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
    /// that batch), judging every entry recorded so far by the moment of
    /// this call.
    #[cfg(test)]
    pub(crate) fn save(
        &mut self,
        writer: &DurableWriter,
        layout: &Layout,
        repo_id: &str,
    ) -> Result<()> {
        let pending = PendingSave::stage(writer, layout)?;
        pending.finish(self, layout, repo_id)
    }
}

/// A moment on the clock of the filesystem that holds the cache: the mtime
/// of a temp file created for the purpose (and removed at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clock {
    at: (i64, u32),
    dev: u64,
}

impl Clock {
    /// Reads the clock of `layout`'s filesystem through `writer`.
    pub(crate) fn read(writer: &DurableWriter, layout: &Layout) -> Result<Self> {
        let probe = writer.stage(&layout.muse_stat_cache(), TempKind::State)?;
        let created = std::fs::symlink_metadata(probe.temp_path())
            .map_err(|e| Error::io("stat", probe.temp_path(), e))?;
        // Dropping the probe removes its temp file.
        Ok(Self {
            at: FileStat::of(&created).mtime,
            dev: created.dev(),
        })
    }

    /// Whether stat data `stat`, seen before the moment `at` of device
    /// `dev`'s clock, proves the file unchanged since it was seen: the
    /// file is on that device (another filesystem's clock, a whole-second
    /// mount inside the tree, is not this one), and both its mtime and its
    /// ctime are strictly older (a write restoring the mtime, `touch -d` or
    /// `cp -p`, still moves the ctime, which nobody can set).
    fn proves(at: (i64, u32), dev: u64, stat: &FileStat) -> bool {
        stat.dev == dev && stat.mtime < at && stat.ctime < at
    }
}

/// A cache write whose clock was read before the walk it will describe
/// (see the module docs); the file itself is staged only when the walk is
/// done, so a long walk leaves no temp file for recovery to take.
#[derive(Debug)]
pub(crate) struct PendingSave<'w> {
    writer: &'w DurableWriter,
    clock: Clock,
}

impl<'w> PendingSave<'w> {
    /// Reads the clock of `layout`'s filesystem, for a save through
    /// `writer` later.
    pub(crate) fn stage(writer: &'w DurableWriter, layout: &Layout) -> Result<Self> {
        Ok(Self {
            writer,
            clock: Clock::read(writer, layout)?,
        })
    }

    /// Writes `cache` and commits the write (into the writer's batch, if
    /// it has one).
    pub(crate) fn finish(
        self,
        cache: &mut StatCache,
        layout: &Layout,
        repo_id: &str,
    ) -> Result<()> {
        let mut entries: Vec<(String, FileStat, ObjectId)> = cache
            .entries
            .iter()
            .map(|(path, (stat, id))| (path.clone(), *stat, *id))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let disk = Disk {
            magic: MAGIC.to_owned(),
            version: VERSION,
            repo_id: repo_id.to_owned(),
            written_at: self.clock.at,
            dev: self.clock.dev,
            entries,
        };
        let target = layout.muse_stat_cache();
        let mut bytes = rmp_serde::to_vec(&disk)
            .map_err(|e| Error::corrupt(&target, format!("cannot encode the stat cache: {e}")))?;
        let sum = ObjectId::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        let mut staged: Staged<'_> = self.writer.stage(&target, TempKind::State)?;
        staged.write(&bytes)?;
        staged.commit()?;
        cache.written_at = self.clock.at;
        cache.dev = self.clock.dev;
        cache.changed = false;
        Ok(())
    }
}

/// The stat cache as one walk of the working tree uses it: lookups from the
/// cache as loaded, and, when this process may write it (it holds the
/// working-tree lock and the repository is writable), the pending save
/// begun before the walk.
#[derive(Debug)]
pub(crate) struct Refresh<'w> {
    cache: StatCache,
    pending: Option<PendingSave<'w>>,
    layout: Layout,
    repo_id: String,
}

impl<'w> Refresh<'w> {
    /// Lookups only: nothing will be written.
    pub(crate) fn lookups_only(layout: &Layout, repo_id: &str) -> Self {
        Self {
            cache: StatCache::load(layout, repo_id),
            pending: None,
            layout: layout.clone(),
            repo_id: repo_id.to_owned(),
        }
    }

    /// Lookups, and a save through `writer` at [`Refresh::finish`]. Call it
    /// before the walk begins (the save's clock is read here). Where the
    /// temp file cannot be created (a read-only repository) the cache is
    /// used for lookups only: it is a hint, never a reason to fail.
    pub(crate) fn writing(writer: &'w DurableWriter, layout: &Layout, repo_id: &str) -> Self {
        let mut refresh = Self::lookups_only(layout, repo_id);
        match PendingSave::stage(writer, layout) {
            Ok(pending) => refresh.pending = Some(pending),
            Err(e) => log::debug!("the stat cache will not be saved: {e}"),
        }
        refresh
    }

    /// The cache as loaded.
    pub(crate) fn cache(&self) -> &StatCache {
        &self.cache
    }

    /// Records what one walk found: `fresh[i]` is the stat data of
    /// `files[i]` when its id in `manifest` was read from the file (a
    /// miss), `None` when the cache supplied it. Paths the walk did not
    /// see are forgotten.
    pub(crate) fn update(
        &mut self,
        files: &[(String, std::path::PathBuf)],
        fresh: Vec<Option<FileStat>>,
        manifest: &std::collections::BTreeMap<String, ObjectId>,
    ) {
        // Only entries older than the walk's start are kept: they stay safe
        // whatever later moment the cache is saved at (a change after the
        // walk began gives a file an mtime no older than that start).
        let walk_start = self.pending.as_ref().map(|p| p.clock);
        for ((rel, _), stat) in files.iter().zip(fresh) {
            if let (Some(stat), Some(id), Some(start)) = (stat, manifest.get(rel), walk_start)
                && Clock::proves(start.at, start.dev, &stat)
            {
                self.cache.record(rel, stat, *id);
            }
        }
        self.cache.retain(|path| manifest.contains_key(path));
    }

    /// Records that checkout just wrote object `id` to `path`, whose `lstat`
    /// (after the rename) is `stat`, and forgets the paths it removed. Only
    /// [`Refresh::finish_now`] may save such entries: their mtimes are newer
    /// than the walk's start.
    ///
    /// The one window this leaves is git's own: another program rewriting
    /// the file with the same size between checkout's rename and this
    /// `lstat`, within the same timestamp tick as checkout's write.
    pub(crate) fn record_written(&mut self, path: &str, stat: FileStat, id: ObjectId) {
        self.cache.record(path, stat, id);
    }

    /// Forgets `path` (checkout removed it).
    pub(crate) fn forget(&mut self, path: &str) {
        self.cache.retain(|p| p != path);
    }

    /// Saves the cache, if it changed, at a moment read now (after
    /// checkout's writes, so the files it wrote in an earlier tick are
    /// trusted next time and those of this tick are not).
    pub(crate) fn finish_now(mut self, writer: &'w DurableWriter, layout: &Layout) -> Result<()> {
        if self.pending.take().is_none() || !self.cache.is_changed() {
            return Ok(());
        }
        let pending = PendingSave::stage(writer, layout)?;
        pending.finish(&mut self.cache, layout, &self.repo_id)
    }

    /// Saves the cache if it changed and this refresh may write it.
    pub(crate) fn finish(mut self) -> Result<()> {
        match self.pending.take() {
            Some(pending) if self.cache.is_changed() => {
                pending.finish(&mut self.cache, &self.layout, &self.repo_id)
            }
            _ => Ok(()),
        }
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

    /// Records `rel` with its real stat data but `id`, and saves the cache
    /// for repository `repo_id` once the clock has moved past the file's
    /// mtime (so the entry is not racy).
    fn plant(repo: &crate::Repository, rel: &str, id: ObjectId, repo_id: &str) -> TestResult {
        let path = repo.work_tree().join(rel);
        let stat = FileStat::of(&std::fs::symlink_metadata(&path)?);
        let mut cache = StatCache::default();
        cache.record(rel, stat, id);
        loop {
            let pending = PendingSave::stage(repo.writer(), repo.layout())?;
            if stat.mtime < pending.clock.at && stat.ctime < pending.clock.at {
                pending.finish(&mut cache, repo.layout(), repo_id)?;
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[test]
    fn status_takes_a_proven_unchanged_file_from_the_cache_without_reading_it() -> TestResult {
        let (dir, repo) = repo()?;
        file(dir.path(), "a", b"real content")?;
        // A wrong id under the file's exact stat data: only a cache hit can
        // produce it, so this shows hits are used (white-box).
        let planted = ObjectId::hash(b"not the content");
        plant(&repo, "a", planted, &repo.info()?.repo_id)?;
        let manifest = crate::worktree::worktree_manifest(&repo)?;
        assert_eq!(manifest.get("a"), Some(&planted));
        Ok(())
    }

    #[test]
    fn another_repositorys_cache_is_never_used() -> TestResult {
        let (dir, repo) = repo()?;
        file(dir.path(), "a", b"real content")?;
        plant(
            &repo,
            "a",
            ObjectId::hash(b"not the content"),
            "another-repo",
        )?;
        let manifest = crate::worktree::worktree_manifest(&repo)?;
        assert_eq!(manifest.get("a"), Some(&ObjectId::hash(b"real content")));
        Ok(())
    }

    /// Changes the file at a path behind the cache's back.
    type Change = dyn Fn(&std::path::Path) -> std::io::Result<()>;

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "changes working-tree files behind the cache's back"
    )]
    fn any_change_of_stat_data_is_a_miss() -> TestResult {
        let (dir, repo) = repo()?;
        let planted = ObjectId::hash(b"not the content");
        let truth = ObjectId::hash(b"real content");
        let cases: [(&str, &Change); 3] = [
            ("touched", &|p| {
                let f = std::fs::File::options().write(true).open(p)?;
                f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            }),
            ("chmod", &|p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
            }),
            ("another inode, same size and mtime", &|p| {
                let old = std::fs::symlink_metadata(p)?;
                let other = p.with_extension("new");
                std::fs::write(&other, b"real content")?;
                let f = std::fs::File::options().write(true).open(&other)?;
                f.set_modified(old.modified()?)?;
                std::fs::rename(&other, p)
            }),
        ];
        for (what, change) in cases {
            file(dir.path(), "a", b"real content")?;
            plant(&repo, "a", planted, &repo.info()?.repo_id)?;
            change(&dir.path().join("a"))?;
            let manifest = crate::worktree::worktree_manifest(&repo)?;
            assert_eq!(manifest.get("a"), Some(&truth), "{what}");
        }
        Ok(())
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "removes a stored object on purpose"
    )]
    fn a_commit_stores_a_cached_files_object_again_when_it_is_gone() -> TestResult {
        let (dir, repo) = repo()?;
        file(dir.path(), "a", b"content")?;
        let id = ObjectId::hash(b"content");
        let spec = crate::NewCommit::new("one");
        crate::porcelain::commit_worktree(&repo, &spec, &crate::NoProgress)?;
        // Make sure the next walk can trust the entry, then lose the object.
        std::thread::sleep(std::time::Duration::from_millis(20));
        crate::worktree::worktree_manifest(&repo)?;
        let reloaded = StatCache::load(repo.layout(), &repo.info()?.repo_id);
        let stat = FileStat::of(&std::fs::symlink_metadata(dir.path().join("a"))?);
        assert_eq!(reloaded.lookup("a", &stat), Some(id), "status refreshed it");
        std::fs::remove_file(repo.layout().object_path(&id))?;
        file(dir.path(), "b", b"other")?;
        crate::porcelain::commit_worktree(
            &repo,
            &crate::NewCommit::new("two"),
            &crate::NoProgress,
        )?;
        assert_eq!(repo.objects().read(&id)?, b"content");
        Ok(())
    }

    #[test]
    #[expect(clippy::disallowed_methods, reason = "edits working-tree files")]
    fn checkout_refreshes_the_entries_of_the_files_it_writes() -> TestResult {
        let (dir, repo) = repo()?;
        file(dir.path(), "a", b"one")?;
        crate::porcelain::commit_worktree(&repo, &crate::NewCommit::new("1"), &crate::NoProgress)?;
        let first = repo.refs().head_commit()?.ok_or("no commit")?;
        file(dir.path(), "a", b"two")?;
        file(dir.path(), "b", b"new")?;
        crate::porcelain::commit_worktree(&repo, &crate::NewCommit::new("2"), &crate::NoProgress)?;
        crate::porcelain::checkout(
            &repo,
            &crate::Head::Detached(first),
            false,
            &crate::NoProgress,
        )?;
        let cache = StatCache::load(repo.layout(), &repo.info()?.repo_id);
        let stat = FileStat::of(&std::fs::symlink_metadata(dir.path().join("a"))?);
        if stat.mtime < cache.written_at {
            assert_eq!(cache.lookup("a", &stat), Some(ObjectId::hash(b"one")));
        } else {
            assert_eq!(cache.lookup("a", &stat), None, "written in the save's tick");
        }
        assert!(
            !cache.entries.contains_key("b"),
            "a removed file is forgotten"
        );
        // Rewritten at once, same size: seen.
        std::fs::write(dir.path().join("a"), b"six")?;
        let manifest = crate::worktree::worktree_manifest(&repo)?;
        assert_eq!(manifest.get("a"), Some(&ObjectId::hash(b"six")));
        Ok(())
    }
}
