//! Snapshotting a working tree (shared/FORMAT.md, "What a snapshot of a
//! working tree contains").
//!
//! Invariants:
//! - only regular files are taken; symlinks are skipped and never followed
//!   (a symlink to a directory is not entered, and files are opened with
//!   `O_NOFOLLOW` so one swapped in after the walk is refused, not read);
//! - the directories and files FORMAT.md lists are never taken, whatever
//!   `.museignore` says; `.museignore` itself is always taken;
//! - paths are POSIX, relative, UTF-8; a name that is not UTF-8 is an error
//!   naming it, never a lossy conversion;
//! - each file is read once: files under 1 MiB are read into a per-worker
//!   buffer, hashed and stored from it; larger ones are streamed with fixed
//!   buffers, so memory stays at about one MiB per rayon worker.
//!
//! Extension: this project's own temp files (`.restore-tmp-*`, left by a
//! crashed restore) are never taken.

mod ignore;
#[expect(dead_code, reason = "wired into status, commit and checkout next")]
mod stat_cache;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use ignore::{IgnoreRules, MUSEIGNORE};

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

/// Directories never entered, at any depth.
pub(crate) const SKIPPED_DIRS: &[&str] = &[
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
];

/// Whether a file with this name is never taken (secrets and OS litter:
/// `.env`, `.env.*`, `.envrc`, `*.pem`, `*.key`, `*.p12`, `*.pfx`,
/// `.DS_Store`, `Thumbs.db`), whatever the ignore file says.
#[must_use]
pub(crate) fn is_always_excluded(name: &str) -> bool {
    matches!(name, ".env" | ".envrc" | ".DS_Store" | "Thumbs.db")
        || name.starts_with(".env.")
        || [".pem", ".key", ".p12", ".pfx"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || name.starts_with(RESTORE_TMP_PREFIX)
}

/// The ignore rules of `repo`: its `.museignore` for the domain named in
/// `repo.json` (default `code`).
pub(crate) fn load_ignore(repo: &Repository) -> Result<IgnoreRules> {
    IgnoreRules::load(repo.work_tree(), &repo.info()?.domain)
}

/// Lists the files a snapshot of `work_tree` takes, as (POSIX relative path,
/// absolute path), sorted by path. Reads directories only, no file content.
pub(crate) fn scan_tree(work_tree: &Path, ignore: &IgnoreRules) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let prune = !ignore.has_negations();
    walk(work_tree, "", ignore, prune, &mut out)?;
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    ignore: &IgnoreRules,
    prune: bool,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        // `DirEntry::file_type` does not follow symlinks.
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if kind.is_symlink() {
            continue;
        }
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
        if kind.is_dir() {
            if SKIPPED_DIRS.contains(&name) || (prune && ignore.is_ignored(&rel, true)) {
                continue;
            }
            walk(&entry.path(), &rel, ignore, prune, out)?;
        } else if kind.is_file() {
            let is_root_museignore = rel == MUSEIGNORE;
            if is_always_excluded(name) || (!is_root_museignore && ignore.is_ignored(&rel, false)) {
                continue;
            }
            out.push((rel, entry.path()));
        }
        // Sockets, FIFOs and devices are not content.
    }
    Ok(())
}

/// Opens a working-tree file for reading without following a symlink, and
/// checks it is still a regular file.
fn open_regular(path: &Path) -> Result<(File, u64)> {
    #[expect(
        clippy::disallowed_methods,
        reason = "read-only open; OpenOptions is the only way to pass O_NOFOLLOW"
    )]
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::SourceChanged {
                path: path.to_path_buf(),
            },
            _ => Error::io("open", path, e),
        })?;
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::SourceChanged {
            path: path.to_path_buf(),
        });
    }
    Ok((file, meta.len()))
}

/// The id of one file, stored in `store` when given. `buf` is the worker's
/// reusable buffer for small files.
fn file_id(path: &Path, buf: &mut Vec<u8>, store: Option<&ObjectStore>) -> Result<ObjectId> {
    let (mut file, len) = open_regular(path)?;
    buf.clear();
    if len < SMALL_FILE {
        // Read at most one byte past the limit: a file that grew since the
        // stat is streamed instead of filling memory.
        (&mut file)
            .take(SMALL_FILE + 1)
            .read_to_end(buf)
            .map_err(|e| Error::io("read", path, e))?;
        if (buf.len() as u64) <= SMALL_FILE {
            return match store {
                Some(store) => Ok(store.write(buf)?.0),
                None => Ok(ObjectId::hash(buf)),
            };
        }
    }
    if let Some(store) = store {
        // Streams with fixed buffers from this same descriptor (never the
        // path again, which a symlink may have replaced); reports a file
        // changed mid-copy.
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        return Ok(store.write_from_file(&mut file, len, path)?.0);
    }
    // Whatever was already read, then the rest: the file is read once.
    let (id, _) = hash_stream(&mut buf.as_slice().chain(&mut file), path, "read")?;
    Ok(id)
}

/// Hashes (and with `store`, stores) every file in parallel and builds the
/// manifest.
fn build_manifest(
    files: &[(String, PathBuf)],
    store: Option<&ObjectStore>,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, ObjectId>> {
    progress.start(
        if store.is_some() {
            "storing files"
        } else {
            "hashing files"
        },
        files.len() as u64,
    );
    let ids: Vec<ObjectId> = files
        .par_iter()
        .map_init(Vec::new, |buf, (_, path)| {
            let id = file_id(path, buf, store);
            progress.advance(1);
            id
        })
        .collect::<Result<_>>()?;
    progress.finish();
    Ok(files.iter().map(|(rel, _)| rel.clone()).zip(ids).collect())
}

/// The manifest of `files` (from [`scan_tree`]) without writing anything:
/// what `muse status` compares against a commit.
pub(crate) fn hash_tree(files: &[(String, PathBuf)]) -> Result<BTreeMap<String, ObjectId>> {
    build_manifest(files, None, &NoProgress)
}

/// Stores every file of `files` (from [`scan_tree`]) in `store` and returns
/// the manifest.
#[cfg(test)]
pub(crate) fn store_tree(
    store: &ObjectStore,
    files: &[(String, PathBuf)],
) -> Result<BTreeMap<String, ObjectId>> {
    build_manifest(files, Some(store), &NoProgress)
}

/// The manifest of `repo`'s working tree as it is now, writing nothing.
pub fn worktree_manifest(repo: &Repository) -> Result<BTreeMap<String, ObjectId>> {
    let files = scan_tree(repo.work_tree(), &load_ignore(repo)?)?;
    hash_tree(&files)
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
    let batch = repo.writer().batch();
    let manifest = stage_worktree(repo, &batch, &NoProgress)?;
    let record = SnapshotRecord::new(manifest, Timestamp::now());
    repo.records()
        .with_writer(batch.writer().clone())
        .write_snapshot(&record)?;
    batch.commit()?;
    Ok(record)
}

/// Stores every file of `repo`'s working tree into `batch` (published when
/// the batch is committed), reporting each file to `progress`, and returns
/// the manifest.
pub(crate) fn stage_worktree(
    repo: &Repository,
    batch: &WriteBatch,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, ObjectId>> {
    let files = scan_tree(repo.work_tree(), &load_ignore(repo)?)?;
    let objects = repo.objects().with_writer(batch.writer().clone());
    build_manifest(&files, Some(&objects), progress)
}

#[cfg(test)]
mod tests;
