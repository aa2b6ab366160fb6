//! Snapshotting a working tree (shared/FORMAT.md, "What a snapshot of a
//! working tree contains").
//!
//! Invariants:
//! - only regular files are taken; symlinks are skipped and never followed
//!   (a symlink to a directory is not entered, and files are opened with
//!   `O_NOFOLLOW` so one swapped in after the walk is refused, not read);
//! - the directories FORMAT.md lists are never entered, whatever
//!   `.museignore` says; every file is tested against the built-in patterns
//!   then the `.museignore` ones, the last match deciding (the reference's
//!   rule, so a user's `!.env` does bring `.env` back, and a pattern may
//!   leave out `.museignore` itself);
//! - paths are POSIX, relative, UTF-8; a name that is not UTF-8 is an error
//!   naming it, never a lossy conversion;
//! - each file is read once: files under 1 MiB are read into a per-worker
//!   buffer, hashed and stored from it; larger ones are streamed with fixed
//!   buffers, so memory stays at about one MiB per rayon worker.
//!
//! Extension: this project's own temp files (`.restore-tmp-*`, left by a
//! crashed restore) are never taken.

mod attributes;
mod ignore;
mod stat_cache;

pub(crate) use stat_cache::{FileStat, Refresh};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use attributes::{AttributeRule, Attributes, MUSEATTRIBUTES, STRATEGIES};
pub use ignore::{BUILTIN_PATTERNS, IgnoreMatch, IgnoreRules, IgnoreWarning, MUSEIGNORE};

use crate::clock::Timestamp;
use crate::durable::{RESTORE_TMP_PREFIX, WriteBatch};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::progress::{NoProgress, Progress};
use crate::record::SnapshotRecord;
use crate::repo::Repository;
use crate::store::{ObjectStore, hash_stream};

/// Files smaller than this are read whole into a buffer; larger ones are
/// streamed.
pub(crate) const SMALL_FILE: u64 = 1024 * 1024;

/// The directories a snapshot walk never enters, at any depth, whatever
/// `.museignore` says (the reference's list).
pub const BUILTIN_SKIPPED_DIRS: &[&str] = &[
    ".muse",
    ".git",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".coverage",
    "htmlcov",
    "dist",
    "build",
    ".eggs",
    ".DS_Store",
];

/// What a walk of the working tree left out, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Exclusions {
    /// Directories not entered because their name is on the built-in list
    /// ([`BUILTIN_SKIPPED_DIRS`]), as relative paths.
    pub builtin_dirs: Vec<String>,
    /// Files left out by a built-in pattern ([`BUILTIN_PATTERNS`]), with
    /// the pattern.
    pub builtin_files: Vec<(String, String)>,
    /// Symlinks (never taken, never followed).
    pub symlinks: Vec<String>,
    /// Files left out by a `.museignore` pattern.
    pub museignore_files: usize,
    /// Directories not entered because `.museignore` leaves out everything
    /// below them.
    pub museignore_dirs: usize,
}

impl Exclusions {
    /// How many paths the built-in rules left out (directories, files and
    /// symlinks), the count `muse status` reports.
    #[must_use]
    pub fn builtin_total(&self) -> usize {
        self.builtin_dirs.len() + self.builtin_files.len() + self.symlinks.len()
    }
}

/// Why a path is or is not in a snapshot of the working tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathVerdict {
    /// The `.museignore` pattern that ignores it (`None`: none does, or a
    /// `!` pattern brought it back): what the reference's `check-ignore`
    /// reports.
    pub museignore: Option<String>,
    /// The built-in rule that leaves it out, if one does: a skipped
    /// directory above it (`build/`), a built-in pattern the `.museignore`
    /// does not override (`.env`), or `symlink`.
    pub builtin: Option<String>,
    /// Whether a snapshot takes it (were it a regular file).
    pub in_snapshot: bool,
}

/// Explains `rel` (a relative POSIX path, which need not exist) against the
/// `.museignore` rules `rules` and the built-in ones, as a snapshot of
/// `work_tree` would decide it.
#[must_use]
pub fn explain_path(work_tree: &Path, rules: &IgnoreRules, rel: &str) -> PathVerdict {
    let museignore = rules
        .decide(rel)
        .filter(|m| m.ignores)
        .map(|m| m.pattern.to_owned());
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let skipped_dir = parts
        .split_last()
        .and_then(|(_, dirs)| dirs.iter().find(|d| BUILTIN_SKIPPED_DIRS.contains(d)));
    let full = rules.with_builtins();
    let decided = full.decide(rel);
    let builtin = if let Some(dir) = skipped_dir {
        Some(format!("{dir}/"))
    } else if let Some(m) = decided.filter(|m| m.builtin && m.ignores) {
        Some(m.pattern.to_owned())
    } else if std::fs::symlink_metadata(work_tree.join(rel)).is_ok_and(|m| m.is_symlink()) {
        Some("symlink".to_owned())
    } else {
        None
    };
    let in_snapshot = builtin.is_none() && !decided.is_some_and(|m| m.ignores);
    PathVerdict {
        museignore,
        builtin,
        in_snapshot,
    }
}

/// The ignore rules of `repo`: its `.museignore` for the domain named in
/// `repo.json` (default `code`).
pub(crate) fn load_ignore(repo: &Repository) -> Result<IgnoreRules> {
    IgnoreRules::load(repo.work_tree(), &repo.info()?.domain)
}

/// Lists the files a snapshot of `work_tree` takes, as (POSIX relative path,
/// absolute path), sorted by path. `ignore` holds the `.museignore` rules;
/// the built-in patterns go before them. Reads directories only, no file
/// content.
pub(crate) fn scan_tree(work_tree: &Path, ignore: &IgnoreRules) -> Result<Vec<(String, PathBuf)>> {
    Ok(scan_tree_reporting(work_tree, ignore)?.0)
}

/// [`scan_tree`], also reporting what was left out.
pub(crate) fn scan_tree_reporting(
    work_tree: &Path,
    ignore: &IgnoreRules,
) -> Result<(Vec<(String, PathBuf)>, Exclusions)> {
    let mut out = Vec::new();
    let mut excluded = Exclusions::default();
    walk(
        work_tree,
        "",
        &ignore.with_builtins(),
        &mut out,
        &mut excluded,
    )?;
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok((out, excluded))
}

/// The manifest of `repo`'s working tree as it is now (writing nothing but
/// the stat cache), what the walk left out, and the `.museignore` rules it
/// used: what `muse status` shows.
pub(crate) fn worktree_manifest_reporting(
    repo: &Repository,
) -> Result<(BTreeMap<String, ObjectId>, Exclusions, IgnoreRules)> {
    let rules = load_ignore(repo)?;
    // A reader never waits: the cache is saved only when the working-tree
    // lock is free right now, and used for lookups either way.
    let lock = repo.try_lock_worktree();
    let repo_id = &repo.info()?.repo_id;
    let mut refresh = match &lock {
        Some(_) => Refresh::writing(repo.writer(), repo.layout(), repo_id),
        None => Refresh::lookups_only(repo.layout(), repo_id),
    };
    let (files, excluded) = scan_tree_reporting(repo.work_tree(), &rules)?;
    let manifest = build_manifest(&files, None, &NoProgress, Some(&mut refresh))?;
    if let Err(e) = refresh.finish() {
        log::debug!("could not save the stat cache: {e}");
    }
    Ok((manifest, excluded, rules))
}

fn walk(
    dir: &Path,
    prefix: &str,
    rules: &IgnoreRules,
    out: &mut Vec<(String, PathBuf)>,
    excluded: &mut Exclusions,
) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        // A directory removed (or replaced by a file) since its parent was
        // listed holds nothing now: it is not part of the tree.
        Err(e) if gone(&e) && !prefix.is_empty() => return Ok(()),
        entries => entries.map_err(|e| Error::io("read directory", dir, e))?,
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        // `DirEntry::file_type` does not follow symlinks.
        let kind = match entry.file_type() {
            Err(e) if gone(&e) => continue,
            kind => kind.map_err(|e| Error::io("stat", entry.path(), e))?,
        };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            return Err(Error::Input {
                path: entry.path(),
                reason: "the file name is not valid UTF-8; snapshot paths must be UTF-8".into(),
            });
        };
        let rel = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        if kind.is_symlink() {
            excluded.symlinks.push(rel);
        } else if crate::name::names_metadata(name) && rel != crate::layout::MUSE_DIR {
            // `.GIT`, `git~1`, `.muse.` and the like: what checkout would
            // take for repository metadata is never content (the path
            // policy refuses it in every manifest).
            if kind.is_dir() {
                excluded.builtin_dirs.push(rel);
            } else {
                excluded
                    .builtin_files
                    .push((rel, "<repository metadata name>".to_owned()));
            }
        } else if kind.is_dir() {
            if BUILTIN_SKIPPED_DIRS.contains(&name) {
                // The repository's own `.muse/` is not something left out.
                if rel != crate::layout::MUSE_DIR {
                    excluded.builtin_dirs.push(rel);
                }
            } else if rules.ignores_everything_below(&rel) {
                excluded.museignore_dirs += 1;
            } else {
                walk(&entry.path(), &rel, rules, out, excluded)?;
            }
        } else if kind.is_file() {
            // This project's own temp files (a crashed restore) are never
            // content.
            if name.starts_with(RESTORE_TMP_PREFIX) {
                continue;
            }
            match rules.decide(&rel) {
                Some(m) if m.ignores && m.builtin => {
                    excluded.builtin_files.push((rel, m.pattern.to_owned()));
                }
                Some(m) if m.ignores => excluded.museignore_files += 1,
                _ => out.push((rel, entry.path())),
            }
        }
        // Sockets, FIFOs and devices are not content.
    }
    Ok(())
}

/// Whether `e` says a path listed a moment ago is no longer there (removed,
/// or a parent replaced by a file): such a path was deleted while the tree
/// was walked, which a snapshot records as a deletion.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Opens a working-tree file for reading without following a symlink (nor
/// blocking on a FIFO swapped in since the walk), and checks on that
/// descriptor that it is a regular file. Everything read of the file is
/// read through this descriptor.
fn open_regular(path: &Path) -> Result<(File, fs::Metadata)> {
    crate::failpoint::barrier("commit-before-open");
    let file = crate::sys::open_nofollow(path).map_err(|e| {
        if crate::sys::is_symlink_refusal(&e) {
            Error::SourceChanged {
                path: path.to_path_buf(),
            }
        } else {
            Error::io("open", path, e)
        }
    })?;
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::SourceChanged {
            path: path.to_path_buf(),
        });
    }
    crate::failpoint::barrier("commit-file-opened");
    Ok((file, meta))
}

/// The id of one file, stored in `store` when given, and the file's stat
/// data as its open descriptor reported it before the content was read.
/// `buf` is the worker's reusable buffer for small files.
fn file_id(
    path: &Path,
    buf: &mut Vec<u8>,
    store: Option<&ObjectStore>,
) -> Result<(ObjectId, FileStat)> {
    let (mut file, meta) = open_regular(path)?;
    let stat = FileStat::of(&meta);
    buf.clear();
    if meta.len() < SMALL_FILE {
        // Read at most one byte past the limit: a file that grew since the
        // stat is streamed instead of filling memory.
        (&mut file)
            .take(SMALL_FILE + 1)
            .read_to_end(buf)
            .map_err(|e| Error::io("read", path, e))?;
        if (buf.len() as u64) <= SMALL_FILE {
            let id = match store {
                Some(store) => store.write(buf)?.0,
                None => ObjectId::hash(buf),
            };
            return Ok((id, stat));
        }
    }
    if let Some(store) = store {
        // Streams with fixed buffers from this same descriptor (never the
        // path again, which a symlink may have replaced), from its start
        // (a small file that grew was partly read above); reports a file
        // changed mid-copy.
        file.rewind().map_err(|e| Error::io("read", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        return Ok((store.write_from_file(&mut file, len, path)?.0, stat));
    }
    // Whatever was already read, then the rest: the file is read once.
    let (id, _) = hash_stream(&mut buf.as_slice().chain(&mut file), path, "read")?;
    Ok((id, stat))
}

/// The id of one file from the stat cache when its stat data proves it
/// unchanged (and, when storing, its object is already stored), or else
/// read from the file; the stat data is returned on a miss, for the cache.
fn cached_or_read(
    rel: &str,
    path: &Path,
    buf: &mut Vec<u8>,
    store: Option<&ObjectStore>,
    cache: Option<&stat_cache::StatCache>,
) -> Result<Option<(ObjectId, Option<FileStat>)>> {
    if let Some(cache) = cache
        && let Ok(meta) = fs::symlink_metadata(path)
        && meta.is_file()
    {
        let stat = FileStat::of(&meta);
        if let Some(id) = cache.lookup(rel, &stat) {
            let reusable = match store {
                None => true,
                Some(store) => store.holds(&id, stat.size())?,
            };
            if reusable {
                return Ok(Some((id, None)));
            }
        }
    }
    match file_id(path, buf, store) {
        Ok((id, stat)) => Ok(Some((id, Some(stat)))),
        // Removed since the walk listed it: a deletion, not a failure.
        Err(Error::Io {
            action: "open",
            source,
            ..
        }) if gone(&source) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Hashes (and with `store`, stores) every file in parallel and builds the
/// manifest, taking unchanged files' ids from `refresh`'s cache and
/// recording the others in it.
fn build_manifest(
    files: &[(String, PathBuf)],
    store: Option<&ObjectStore>,
    progress: &dyn Progress,
    refresh: Option<&mut Refresh<'_>>,
) -> Result<BTreeMap<String, ObjectId>> {
    progress.start(
        if store.is_some() {
            "storing files"
        } else {
            "hashing files"
        },
        files.len() as u64,
    );
    let cache = refresh.as_ref().map(|r| r.cache());
    let found: Vec<Option<(ObjectId, Option<FileStat>)>> = files
        .par_iter()
        .map_init(Vec::new, |buf, (rel, path)| {
            let found = cached_or_read(rel, path, buf, store, cache);
            progress.advance(1);
            found
        })
        .collect::<Result<_>>()?;
    progress.finish();
    let mut manifest = BTreeMap::new();
    let mut fresh = Vec::with_capacity(files.len());
    for ((rel, _), found) in files.iter().zip(found) {
        match found {
            Some((id, stat)) => {
                manifest.insert(rel.clone(), id);
                fresh.push(stat);
            }
            None => fresh.push(None),
        }
    }
    if let Some(refresh) = refresh {
        refresh.update(files, fresh, &manifest);
    }
    Ok(manifest)
}

/// The manifest of `files` (from [`scan_tree`]) without writing anything:
/// every file read and hashed.
#[cfg(test)]
pub(crate) fn hash_tree(files: &[(String, PathBuf)]) -> Result<BTreeMap<String, ObjectId>> {
    build_manifest(files, None, &NoProgress, None)
}

/// Stores every file of `files` (from [`scan_tree`]) in `store` and returns
/// the manifest.
#[cfg(test)]
pub(crate) fn store_tree(
    store: &ObjectStore,
    files: &[(String, PathBuf)],
) -> Result<BTreeMap<String, ObjectId>> {
    build_manifest(files, Some(store), &NoProgress, None)
}

/// The manifest of `repo`'s working tree as it is now, writing nothing but
/// the stat cache (when the working-tree lock is free).
pub fn worktree_manifest(repo: &Repository) -> Result<BTreeMap<String, ObjectId>> {
    Ok(worktree_manifest_reporting(repo)?.0)
}

/// The manifest of `repo`'s working tree, using and updating `refresh` (a
/// caller that holds the working-tree lock: checkout).
pub(crate) fn worktree_manifest_with(
    repo: &Repository,
    refresh: &mut Refresh<'_>,
) -> Result<BTreeMap<String, ObjectId>> {
    let files = scan_tree(repo.work_tree(), &load_ignore(repo)?)?;
    build_manifest(&files, None, &NoProgress, Some(refresh))
}

/// Snapshots `repo`'s working tree: stores every file's object, then the
/// snapshot record (objects first, so a record never names a missing
/// object), and returns the record. No ref moves.
///
/// ```
/// # fn main() -> muse_store::Result<()> {
/// use muse_store::{Durability, Options, Repository, snapshot_worktree};
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir(dir.path().join("src")).unwrap();
/// std::fs::write(dir.path().join("src/main.rs"), b"fn main() {}\n").unwrap();
/// let options = Options { durability: Durability::None, ..Options::default() };
/// let repo = Repository::init_with(dir.path(), options)?;
/// let snapshot = snapshot_worktree(&repo)?;
/// assert_eq!(snapshot.manifest.keys().collect::<Vec<_>>(), ["src/main.rs"]);
/// assert_eq!(repo.records().read_snapshot(&snapshot.snapshot_id)?, snapshot);
/// # Ok(())
/// # }
/// ```
pub fn snapshot_worktree(repo: &Repository) -> Result<SnapshotRecord> {
    // Held until the batch is published: gc never prunes objects and a
    // record that are written but not yet visible.
    let _guard = repo.write_guard()?;
    let batch = repo.writer().batch();
    // No working-tree lock here: the stat cache is used, not written.
    let mut refresh = Refresh::lookups_only(repo.layout(), &repo.info()?.repo_id);
    let manifest = stage_worktree(repo, &batch, &NoProgress, &mut refresh)?;
    let record = SnapshotRecord::new(manifest, Timestamp::now());
    repo.records()
        .with_writer(batch.writer().clone())
        .write_snapshot(&record)?;
    batch.commit()?;
    Ok(record)
}

/// Stores every file of `repo`'s working tree into `batch` (published when
/// the batch is committed), reporting each file to `progress`, and returns
/// the manifest. Unchanged files whose objects are stored are taken from
/// `refresh`'s cache without being read.
pub(crate) fn stage_worktree(
    repo: &Repository,
    batch: &WriteBatch,
    progress: &dyn Progress,
    refresh: &mut Refresh<'_>,
) -> Result<BTreeMap<String, ObjectId>> {
    let files = scan_tree(repo.work_tree(), &load_ignore(repo)?)?;
    let objects = repo.objects().with_writer(batch.writer().clone());
    build_manifest(&files, Some(&objects), progress, Some(refresh))
}

#[cfg(test)]
mod tests;
