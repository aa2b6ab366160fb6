//! One lister per directory of the layout, and the small read helpers every
//! store shares.
//!
//! Invariants:
//! - each kind of directory (object shards, record directories, ref trees,
//!   the places temp and lock files can be) is listed by exactly one
//!   function here, which classifies every name it sees: the stores, fsck,
//!   gc and recovery all read the same classification;
//! - listers read names and file types only (one `lstat` for a leftover);
//!   they never open a stored file and never follow a symlink;
//! - a directory that is absent lists as empty; one that cannot be read is
//!   an error naming it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use crate::durable::is_temp_name;
use crate::error::{Error, Result};
use crate::id::{ObjectId, is_lower_hex};
use crate::layout::Layout;

/// What a file type is, in an error message ("a symbolic link").
pub(crate) fn kind_name(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "a regular file"
    }
}

/// What [`read_stored`] found at a path.
#[derive(Debug)]
pub(crate) enum Stored {
    /// Nothing (or a parent that is not a directory).
    Absent,
    /// A directory.
    Directory,
    /// The whole content of a regular file.
    Bytes(Vec<u8>),
}

/// Reads a repository file whole, as a received repository may have planted
/// anything there: a symlink is never followed and a FIFO or device never
/// opened for a blocking read (`sys::open_nofollow`), and what was opened is
/// checked on its own descriptor to be a regular file. A symlink, FIFO,
/// socket or device is [`Error::Corrupt`] naming the path.
pub(crate) fn read_stored(path: &Path) -> Result<Stored> {
    let mut file = match crate::sys::open_nofollow(path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Stored::Absent);
        }
        Err(e) if crate::sys::is_symlink_refusal(&e) => {
            return Err(Error::corrupt(
                path,
                "it is a symbolic link, not a regular file (never followed)".to_owned(),
            ));
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if meta.is_dir() {
        return Ok(Stored::Directory);
    }
    if !meta.is_file() {
        return Err(Error::corrupt(
            path,
            format!("it is {}, not a regular file", kind_name(meta.file_type())),
        ));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| Error::io("read", path, e))?;
    Ok(Stored::Bytes(bytes))
}

/// Reads a whole file that must exist (a missing one is the I/O error
/// `NotFound` of `action`), with [`read_stored`]'s care: never followed,
/// never blocked on, a directory or anything but a regular file
/// [`Error::Corrupt`].
pub(crate) fn read_existing(path: &Path, action: &'static str) -> Result<Vec<u8>> {
    match read_stored(path)? {
        Stored::Bytes(bytes) => Ok(bytes),
        Stored::Absent => Err(Error::io(
            action,
            path,
            io::Error::from(io::ErrorKind::NotFound),
        )),
        Stored::Directory => Err(Error::corrupt(
            path,
            "it is a directory, not a regular file".to_owned(),
        )),
    }
}

/// Reads a whole file; `None` when it does not exist. Never follows a
/// symlink nor blocks on a FIFO (see [`read_stored`]); a directory is
/// [`Error::Corrupt`] too.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match read_stored(path)? {
        Stored::Absent => Ok(None),
        Stored::Bytes(bytes) => Ok(Some(bytes)),
        Stored::Directory => Err(Error::corrupt(
            path,
            "it is a directory, not a regular file".to_owned(),
        )),
    }
}

/// Reads a whole text file of the working tree that a user may keep as a
/// symlink (`.museignore`, `.museattributes`; the reference follows it);
/// `None` when it does not exist. Never blocks on a FIFO: anything that is
/// not a regular file once opened is [`Error::Corrupt`].
pub(crate) fn read_optional_text_following(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let mut file = match crate::sys::open_nonblocking(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::corrupt(
            path,
            format!("it is {}, not a regular file", kind_name(meta.file_type())),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(text))
}

/// Parses a JSON file's bytes, naming the file when they are malformed.
pub(crate) fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(path, format!("not valid JSON for this file: {e}")))
}

/// Reads and parses a JSON file; `None` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    read_optional(path)?
        .map(|bytes| parse_json(path, &bytes))
        .transpose()
}

/// Lists a directory; `None` when it is absent (or replaced by a file).
fn read_dir_optional(dir: &Path) -> Result<Option<fs::ReadDir>> {
    // A directory of `.muse/` is never listed through a symlink: a received
    // repository could point `quarantine/` or `remotes/` anywhere, and
    // recovery and prune remove what they list.
    let link = crate::durable::symlink_inside_metadata(dir).or_else(|| {
        fs::symlink_metadata(dir)
            .is_ok_and(|m| m.file_type().is_symlink())
            .then(|| dir.to_path_buf())
    });
    if let Some(link) = link {
        return Err(Error::corrupt(
            link,
            "this directory of the repository is a symlink, which is never followed (replace it with a directory)",
        ));
    }
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io("list", dir, e)),
    }
}

/// Whether a name is a two-hex-digit object shard.
fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && is_lower_hex(name.as_bytes())
}

/// The `objects/<2 hex>/` directories, sorted (real directories only).
pub(crate) fn shard_dirs(layout: &Layout) -> Result<Vec<PathBuf>> {
    shards(layout).map(|(dirs, _)| dirs)
}

/// One listing of `objects/`: the shard directories and the names of the
/// shard form that are symlinks (never followed; damage for fsck to name),
/// each sorted.
pub(crate) fn shards(layout: &Layout) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let dir = layout.objects_dir();
    let (mut dirs, mut links) = (Vec::new(), Vec::new());
    let Some(entries) = read_dir_optional(&dir)? else {
        return Ok((dirs, links));
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
        if !entry.file_name().to_str().is_some_and(is_shard_name) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => dirs.push(entry.path()),
            Ok(t) if t.is_symlink() => links.push(entry.path()),
            _ => {}
        }
    }
    dirs.sort();
    links.sort();
    Ok((dirs, links))
}

/// What a name in an object shard, or in a record directory, is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A stored object or record with this id.
    Item(ObjectId, PathBuf),
    /// One of this project's temp files.
    Temp(PathBuf),
    /// Anything else: not a file this store writes.
    Stray(PathBuf),
}

/// Lists one object shard (`objects/<2 hex>/`): every name classified.
pub(crate) fn list_shard(shard: &Path) -> Result<Vec<Entry>> {
    let prefix = shard
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let Some(entries) = read_dir_optional(shard)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", shard, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        out.push(if is_temp_name(&name) {
            Entry::Temp(entry.path())
        } else {
            match Layout::object_id_from_parts(&prefix, &name) {
                Some(id) => Entry::Item(id, entry.path()),
                None => Entry::Stray(entry.path()),
            }
        });
    }
    Ok(out)
}

/// Lists a record directory (`commits/` or `snapshots/`): `<id>.json`
/// files are records, everything else is classified too.
pub(crate) fn list_records(dir: &Path) -> Result<Vec<Entry>> {
    let Some(entries) = read_dir_optional(dir)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_temp_name(&name) {
            out.push(Entry::Temp(entry.path()));
            continue;
        }
        let id = name
            .strip_suffix(".json")
            .and_then(|stem| ObjectId::from_hex(stem).ok());
        out.push(match id {
            Some(id) => Entry::Item(id, entry.path()),
            None => Entry::Stray(entry.path()),
        });
    }
    Ok(out)
}

/// Every regular file below `dir` that is not a temp file, as
/// (`name/relative/to/dir`, path), sorted by name. Symlinks are never
/// followed; directories are entered.
pub(crate) fn ref_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    collect_ref_files(dir, "", &mut out, &mut Vec::new())?;
    // Sorted once, not at every level of the recursion.
    out.sort();
    Ok(out)
}

/// Everything under the ref tree `dir` that is neither a directory nor a
/// regular file (a symlink, FIFO, socket or device: never a ref, and never
/// opened), with what it is, sorted.
pub(crate) fn odd_ref_files(dir: &Path) -> Result<Vec<(PathBuf, &'static str)>> {
    let mut odd = Vec::new();
    collect_ref_files(dir, "", &mut Vec::new(), &mut odd)?;
    odd.sort();
    Ok(odd)
}

fn collect_ref_files(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf)>,
    odd: &mut Vec<(PathBuf, &'static str)>,
) -> Result<()> {
    let Some(entries) = read_dir_optional(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Lock files live under `.muse/locks/`, so `x.lock` here is a branch
        // (the reference implementation accepts the name).
        if is_temp_name(&name) {
            continue;
        }
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry
            .file_type()
            .map_err(|e| Error::io("inspect", entry.path(), e))?;
        if file_type.is_dir() {
            collect_ref_files(&entry.path(), &full, out, odd)?;
        } else if file_type.is_file() {
            out.push((full, entry.path()));
        } else {
            odd.push((entry.path(), kind_name(file_type)));
        }
    }
    Ok(())
}

/// A file below `.muse/` that [`other_muse_files`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtherFile {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Whether it is a symlink (listed, never followed).
    pub(crate) symlink: bool,
}

/// Every file below `.muse/` except those under `skip` (the files and
/// directories the caller reads itself), sorted: what another tool (the
/// reference implementation's stash, bisect, rerere, worktrees, ...) keeps
/// there. Temp files are skipped, symlinks listed but never followed,
/// sockets and other special files left out.
pub(crate) fn other_muse_files(layout: &Layout, skip: &[PathBuf]) -> Result<Vec<OtherFile>> {
    let mut out = Vec::new();
    collect_other(layout.muse_dir(), skip, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn collect_other(dir: &Path, skip: &[PathBuf], out: &mut Vec<OtherFile>) -> Result<()> {
    let Some(entries) = read_dir_optional(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        if skip.contains(&path) || entry.file_name().to_str().is_some_and(is_temp_name) {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspect", path, e)),
        };
        if file_type.is_dir() {
            collect_other(&path, skip, out)?;
        } else if file_type.is_file() || file_type.is_symlink() {
            out.push(OtherFile {
                path,
                symlink: file_type.is_symlink(),
            });
        }
    }
    Ok(())
}

/// What a leftover file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeftoverKind {
    /// A temp file (one of the three prefixes).
    Temp,
    /// A file in `.muse/locks/`: a lock, held or left by a dead holder.
    Lock,
    /// A `*.lock` file beside the file it protected, where an older version
    /// of this project kept its locks; only its content (a lock-owner
    /// record) says whether it is one (`x.lock` may be a branch).
    LegacyLock,
    /// A quarantine directory in `.muse/quarantine/` (or the lock of one
    /// whose directory is gone): an unpack in progress, or the leftover of
    /// a killed one when nobody holds its lock. `path` is the directory.
    Quarantine,
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

/// Which object shards a leftover scan lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shards {
    /// All 256 (explicit recovery, gc, fsck).
    All,
    /// One, chosen at random (recovery on open).
    OneAtRandom,
}

/// Every temp and lock file in the places where they can be: `.muse/`
/// itself, `locks/`, `refs/**`, `logs/**`, `coordination/**`, `op_log/**`,
/// `commits/`, `snapshots/`, `ref-transactions/`, `objects/` and the object
/// shards `shards` says. Reads names and one `lstat` per leftover; never
/// opens a stored file.
pub(crate) fn leftovers(layout: &Layout, shards: Shards) -> Result<Vec<Leftover>> {
    let mut found = Vec::new();
    list_leftovers(&layout.locks_dir(), false, &mut found)?;
    for leftover in &mut found {
        if leftover.kind != LeftoverKind::Temp {
            leftover.kind = LeftoverKind::Lock;
        }
    }
    let muse = layout.muse_dir();
    for dir in [
        muse.to_path_buf(),
        muse.join("refs"),
        layout.commits_dir(),
        layout.snapshots_dir(),
        layout.transactions_dir(),
        layout.objects_dir(),
    ] {
        list_leftovers(&dir, false, &mut found)?;
    }
    for dir in [
        layout.heads_dir(),
        layout.logs_dir(),
        layout.coordination_dir(),
        layout.op_log_dir(),
    ] {
        list_leftovers(&dir, true, &mut found)?;
    }
    list_quarantines(layout, &mut found)?;
    match shards {
        Shards::All => {
            for shard in shard_dirs(layout)? {
                list_leftovers(&shard, false, &mut found)?;
            }
        }
        Shards::OneAtRandom => {
            let pick = uuid::Uuid::new_v4().as_bytes()[0];
            let shard = layout.objects_dir().join(format!("{pick:02x}"));
            list_leftovers(&shard, false, &mut found)?;
        }
    }
    Ok(found)
}

/// Every quarantine directory in `.muse/quarantine/`, and every lock there
/// whose directory is gone (as the directory's path).
fn list_quarantines(layout: &Layout, found: &mut Vec<Leftover>) -> Result<()> {
    let root = layout.quarantine_root();
    let Some(entries) = read_dir_optional(&root)? else {
        return Ok(());
    };
    let mut seen = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &root, e))?;
        let path = entry.path();
        let dir = match path.to_str().and_then(|p| p.strip_suffix(".lock")) {
            Some(dir) => PathBuf::from(dir),
            None => path.clone(),
        };
        if !seen.insert(dir.clone()) {
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", path, e)),
        };
        found.push(Leftover {
            path: dir,
            kind: LeftoverKind::Quarantine,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            size: meta.len(),
        });
    }
    Ok(())
}

/// Removes every file directly in the quarantine directory `dir` (a
/// quarantine is flat). Not durable, on purpose: a quarantine is scratch,
/// and one that comes back after a power cut is a leftover that recovery
/// removes.
pub(crate) fn remove_quarantine_files(vfs: &dyn crate::durable::Vfs, dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Err(e) = vfs.remove_file(&entry.path())
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!(
                "could not remove quarantine file '{}': {e}",
                entry.path().display()
            );
        }
    }
}

/// Lists `dir` (recursing into subdirectories when `recursive`, never
/// following symlinks), collecting temp and lock files.
fn list_leftovers(dir: &Path, recursive: bool, found: &mut Vec<Leftover>) -> Result<()> {
    let Some(entries) = read_dir_optional(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let kind = if is_temp_name(name) {
            Some(LeftoverKind::Temp)
        } else if name.ends_with(".lock") {
            Some(LeftoverKind::LegacyLock)
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
            list_leftovers(&entry.path(), true, found)?;
        }
    }
    Ok(())
}

/// Every `.restore-tmp-` file in the working tree of `layout`: where a
/// checkout killed part-way leaves the files it had not renamed into place
/// yet. `.muse/` and nested repositories (a directory holding a `.muse/`
/// of its own: their temp files are theirs) are not entered; symlinks are
/// never followed.
pub(crate) fn restore_temps(layout: &Layout) -> Result<Vec<Leftover>> {
    let mut found = Vec::new();
    let mut stack = vec![layout.work_tree().to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Some(entries) = read_dir_optional(&dir)? else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let path = entry.path();
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("inspect", path, e)),
            };
            if file_type.is_dir() {
                if path != layout.muse_dir() && !path.join(crate::layout::MUSE_DIR).is_dir() {
                    stack.push(path);
                }
                continue;
            }
            let is_restore_temp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(crate::durable::RESTORE_TMP_PREFIX));
            if !is_restore_temp {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", path, e)),
            };
            found.push(Leftover {
                path,
                kind: LeftoverKind::Temp,
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: meta.len(),
            });
        }
    }
    Ok(found)
}

/// Re-checks a file's age just before it is removed (a listing may be old by
/// now on a big repository): whether its mtime is more than `grace` before
/// `now`.
pub(crate) fn still_older_than(path: &Path, now: SystemTime, grace: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > grace)
}
