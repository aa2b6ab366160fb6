//! The content-addressed object store: `objects/<2 hex>/<62 hex>`.
//!
//! Invariants:
//! - an object's bytes hash to its id; every read path checks that before it
//!   hands out a byte that could be mistaken for good data (whole reads and
//!   restores verify first; the streaming reader reports an error, never a
//!   clean end-of-file, when the bytes it delivered do not verify);
//! - writes go through the [`DurableWriter`] only; an existing valid object is
//!   never rewritten, an existing corrupt one is replaced by verified bytes;
//! - memory stays bounded by fixed buffers whatever the object size
//!   (large objects are hashed through a memory map or streamed).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::ops::Deref;
use std::path::{Component, Path, PathBuf};

use memmap2::Mmap;

use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};
use crate::id::{Hasher, ObjectId};
use crate::layout::Layout;

/// Size of the fixed buffers used to stream files.
pub const STREAM_BUFFER: usize = 256 * 1024;

/// Objects at least this large are hashed through a memory map instead of
/// being copied into a buffer.
const MMAP_THRESHOLD: u64 = 1024 * 1024;

/// The bytes of a verified object.
#[derive(Debug)]
pub struct ObjectBytes(Repr);

#[derive(Debug)]
enum Repr {
    Owned(Vec<u8>),
    Mapped(Mmap),
}

impl Deref for ObjectBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped(m) => m,
        }
    }
}

impl AsRef<[u8]> for ObjectBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl ObjectBytes {
    /// Copies the bytes into a `Vec`.
    #[must_use]
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped(m) => m.to_vec(),
        }
    }
}

/// Maps `file` read-only.
///
/// This is the crate's only `unsafe`.
fn map(file: &File) -> io::Result<Mmap> {
    // SAFETY: a memory map is undefined behaviour only if the file is changed
    // in place while mapped. Stored objects are never written in place: they
    // are created under a temp name, renamed into place and kept read-only
    // (0444); a repair renames a new inode over the name, which leaves this
    // mapping's inode untouched. A process that truncates a stored object
    // behind the store's back can still make reads fault; that is outside
    // what any store can defend against.
    unsafe { memmap2::MmapOptions::new().populate().map(file) }
}

/// Reads the whole of `file` (known to be `len` bytes) into memory or a map,
/// hashing it.
fn load(file: &mut File, len: u64) -> io::Result<(ObjectBytes, ObjectId)> {
    if len >= MMAP_THRESHOLD {
        let mapped = map(file)?;
        let id = ObjectId::hash(&mapped);
        Ok((ObjectBytes(Repr::Mapped(mapped)), id))
    } else {
        let mut buf = Vec::with_capacity(len as usize + 1);
        file.read_to_end(&mut buf)?;
        let id = ObjectId::hash(&buf);
        Ok((ObjectBytes(Repr::Owned(buf)), id))
    }
}

/// Hashes everything `reader` yields, in fixed buffers.
pub(crate) fn hash_stream(reader: &mut impl Read) -> io::Result<(ObjectId, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; STREAM_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finish(), total))
}

/// The object store of one repository.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    layout: Layout,
    writer: DurableWriter,
}

impl ObjectStore {
    /// The store inside `layout`, writing through `writer`.
    #[must_use]
    pub fn new(layout: Layout, writer: DurableWriter) -> Self {
        Self { layout, writer }
    }

    /// The same store writing through `writer` (for example a
    /// [`crate::durable::WriteBatch`]'s writer).
    #[must_use]
    pub fn with_writer(&self, writer: DurableWriter) -> Self {
        Self {
            layout: self.layout.clone(),
            writer,
        }
    }

    /// Where object `id` is (or would be) stored.
    #[must_use]
    pub fn path(&self, id: &ObjectId) -> PathBuf {
        self.layout.object_path(id)
    }

    /// Whether a file is stored under `id` (without verifying it).
    #[must_use]
    pub fn contains(&self, id: &ObjectId) -> bool {
        fs::symlink_metadata(self.path(id)).is_ok_and(|m| m.is_file())
    }

    /// Opens the stored file of `id`.
    fn open_file(&self, id: &ObjectId) -> Result<(File, u64, PathBuf)> {
        let path = self.path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { id: *id });
            }
            Err(e) => return Err(Error::io("open object", path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("stat object", &path, e))?;
        if !meta.is_file() {
            return Err(Error::Corrupt {
                path,
                reason: "an object must be a regular file".into(),
            });
        }
        Ok((file, meta.len(), path))
    }

    fn check(id: &ObjectId, path: PathBuf, actual: ObjectId) -> Result<()> {
        if actual == *id {
            Ok(())
        } else {
            Err(Error::Integrity {
                id: *id,
                path,
                expected: *id,
                actual,
            })
        }
    }

    /// Reads object `id`, verified: its bytes hash to `id` or this fails with
    /// [`Error::Integrity`].
    pub fn read(&self, id: &ObjectId) -> Result<ObjectBytes> {
        let (mut file, len, path) = self.open_file(id)?;
        let (bytes, actual) =
            load(&mut file, len).map_err(|e| Error::io("read object", &path, e))?;
        Self::check(id, path, actual)?;
        Ok(bytes)
    }

    /// Verifies object `id` and returns its size.
    pub fn verify(&self, id: &ObjectId) -> Result<u64> {
        let (mut file, len, path) = self.open_file(id)?;
        let (actual, size) = if len >= MMAP_THRESHOLD {
            let mapped = map(&file).map_err(|e| Error::io("map object", &path, e))?;
            (ObjectId::hash(&mapped), mapped.len() as u64)
        } else {
            // Small objects are read whole into a buffer of their size (at
            // most 1 MiB): one read call and no fixed 256 KiB allocation per
            // object, which dominated `fsck` on many small objects.
            let (bytes, id) =
                load(&mut file, len).map_err(|e| Error::io("read object", &path, e))?;
            (id, bytes.len() as u64)
        };
        Self::check(id, path, actual)?;
        Ok(size)
    }

    /// The stored size of object `id` (not verified).
    pub fn size(&self, id: &ObjectId) -> Result<u64> {
        self.open_file(id).map(|(_, len, _)| len)
    }

    /// A streaming reader over object `id` that verifies as it goes: when the
    /// bytes it delivered do not hash to `id`, the read that reaches the end
    /// returns an error instead of end-of-file.
    pub fn open(&self, id: &ObjectId) -> Result<VerifiedReader> {
        let (file, _, path) = self.open_file(id)?;
        Ok(VerifiedReader::new(file, *id, path))
    }

    /// Writes object `id` to `out`, verified before the first byte is written
    /// (a first pass hashes, the second copies and hashes again, so a file
    /// changed in between is still reported). Memory stays at one buffer.
    pub fn copy_to(&self, id: &ObjectId, out: &mut dyn Write) -> Result<u64> {
        let (mut file, len, path) = self.open_file(id)?;
        if len < MMAP_THRESHOLD {
            let (bytes, actual) =
                load(&mut file, len).map_err(|e| Error::io("read object", &path, e))?;
            Self::check(id, path.clone(), actual)?;
            out.write_all(&bytes)
                .map_err(|e| Error::io("write object to output", &path, e))?;
            return Ok(bytes.len() as u64);
        }
        self.verify(id)?;
        let mut reader = VerifiedReader::new(file, *id, path.clone());
        let mut buf = vec![0u8; STREAM_BUFFER];
        let mut total = 0u64;
        loop {
            let n = reader.read_verified(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write object to output", &path, e))?;
            total += n as u64;
        }
    }

    /// Stores `bytes`; returns the id and whether a new file was written.
    pub fn write(&self, bytes: &[u8]) -> Result<(ObjectId, bool)> {
        let id = ObjectId::hash(bytes);
        let stored = self.store_verified(&id, bytes)?;
        Ok((id, stored))
    }

    /// Stores `bytes` under `id` after checking they hash to it; a mismatch
    /// writes nothing and fails with [`Error::IdMismatch`]. Returns whether a
    /// new file was written.
    pub fn write_with_id(&self, id: &ObjectId, bytes: &[u8]) -> Result<bool> {
        let actual = ObjectId::hash(bytes);
        if actual != *id {
            return Err(Error::IdMismatch {
                expected: *id,
                actual,
            });
        }
        self.store_verified(id, bytes)
    }

    /// Whether an object must be (re)written: absent or failing verification.
    fn needs_write(&self, id: &ObjectId, len: u64) -> Result<bool> {
        let path = self.path(id);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io("stat object", path, e)),
            // A wrong size is corruption; no need to hash to know it.
            Ok(meta) if !meta.is_file() || meta.len() != len => return Ok(true),
            Ok(_) => {}
        }
        match self.verify(id) {
            Ok(_) => Ok(false),
            Err(Error::Integrity { .. } | Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Stores bytes already known to hash to `id`.
    fn store_verified(&self, id: &ObjectId, bytes: &[u8]) -> Result<bool> {
        if !self.needs_write(id, bytes.len() as u64)? {
            self.writer.confirm_durable(&self.path(id))?;
            // A concurrent gc prunes unreachable objects by age: the caller
            // is about to use this one, so it must look new.
            self.writer.freshen(&self.path(id));
            return Ok(false);
        }
        self.writer
            .write_file(&self.path(id), TempKind::Object, bytes)?;
        Ok(true)
    }

    /// Stores the contents of the file at `source` with memory bounded by one
    /// buffer, whatever its size. The bytes hashed are the bytes written to the
    /// temp file; if they differ from a first hashing pass (the source changed
    /// during the copy), nothing is stored and [`Error::SourceChanged`] is
    /// returned. Returns the id and whether a new file was written.
    pub fn write_from_path(&self, source: &Path) -> Result<(ObjectId, bool)> {
        let mut file = open_source(source)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", source, e))?
            .len();
        if len < MMAP_THRESHOLD {
            let mut buf = Vec::with_capacity(len as usize + 1);
            file.read_to_end(&mut buf)
                .map_err(|e| Error::io("read", source, e))?;
            return self.write(&buf);
        }
        // The temp file must live in the target's shard directory, which the
        // id names: hash first, then copy while hashing again.
        let (id, _) = hash_stream(&mut file).map_err(|e| Error::io("read", source, e))?;
        if !self.needs_write(&id, len)? {
            self.writer.confirm_durable(&self.path(&id))?;
            self.writer.freshen(&self.path(&id));
            return Ok((id, false));
        }
        let mut file = open_source(source)?;
        let mut staged = self.writer.stage(&self.path(&id), TempKind::Object)?;
        if copy_hashing(&mut file, &mut staged, source, "read")? != id {
            // Dropping `staged` removes the temp file.
            return Err(Error::SourceChanged {
                path: source.to_path_buf(),
            });
        }
        staged.commit()?;
        Ok((id, true))
    }

    /// Writes object `id` to `work_tree/rel_path` through the writer: the
    /// bytes are verified as they are copied (a mismatch leaves the
    /// destination untouched), an existing file is replaced atomically, and
    /// the file gets a fresh mtime. Symlinks are never followed: a symlink at
    /// the destination is replaced, not written through, and a symlink among
    /// the parent directories below `work_tree` is refused.
    pub fn restore(&self, id: &ObjectId, work_tree: &Path, rel_path: &Path) -> Result<()> {
        let dest = safe_destination(work_tree, rel_path)?;
        let (mut file, _, path) = self.open_file(id)?;
        let mut staged = self.writer.stage(&dest, TempKind::Restore)?;
        let actual = copy_hashing(&mut file, &mut staged, &path, "read object")?;
        // On a mismatch `staged` is dropped here, removing the temp file.
        Self::check(id, path, actual)?;
        staged.commit()?;
        Ok(())
    }

    /// Every stored object id, skipping temp files and anything else that is
    /// not a valid object path. Order is unspecified; a directory that cannot
    /// be listed is reported as an error item.
    #[must_use]
    pub fn iter(&self) -> ObjectIter {
        ObjectIter {
            dir: self.layout.objects_dir(),
            shards: None,
            current: None,
        }
    }
}

/// Copies everything `reader` yields into `staged` in fixed buffers and
/// returns the id of exactly the bytes written. `path` and `action` name the
/// source in a read error.
fn copy_hashing(
    reader: &mut impl Read,
    staged: &mut crate::durable::Staged<'_>,
    path: &Path,
    action: &'static str,
) -> Result<ObjectId> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(action, path, e)),
        };
        hasher.update(&buf[..n]);
        staged.write(&buf[..n])?;
    }
}

/// Opens a caller-supplied source file, refusing what is not a regular file.
fn open_source(source: &Path) -> Result<File> {
    let input = |reason: String| Error::Input {
        path: source.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(source).map_err(|e| input(e.to_string()))?;
    if meta.is_dir() {
        return Err(input("it is a directory, not a file".into()));
    }
    if !meta.is_file() {
        return Err(input("it is not a regular file".into()));
    }
    File::open(source).map_err(|e| input(e.to_string()))
}

/// Resolves `work_tree/rel_path`, refusing absolute paths, `..`, and
/// symlinks or non-directories among the parents below `work_tree`.
fn safe_destination(work_tree: &Path, rel_path: &Path) -> Result<PathBuf> {
    let refuse = |reason: &str| Error::Input {
        path: rel_path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let mut dest = work_tree.to_path_buf();
    let components: Vec<_> = rel_path.components().collect();
    if components.is_empty() {
        return Err(refuse("empty path"));
    }
    for (i, component) in components.iter().enumerate() {
        let Component::Normal(part) = component else {
            return Err(refuse(
                "a working-tree path must be relative and must not contain '..'",
            ));
        };
        dest.push(part);
        let is_last = i + 1 == components.len();
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.file_type().is_symlink() => {
                // A symlink at the destination itself is replaced by the
                // rename, never written through.
                if !is_last {
                    return Err(Error::Symlink { path: dest });
                }
            }
            Ok(meta) if !is_last && !meta.is_dir() => {
                return Err(refuse("a parent of this path is not a directory"));
            }
            Ok(meta) if is_last && meta.is_dir() => {
                return Err(refuse("a directory is in the way"));
            }
            Ok(_) => {}
            // Missing parents are created by the writer.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspect", dest, e)),
        }
    }
    Ok(dest)
}

/// A reader over one object that verifies it as it goes.
#[derive(Debug)]
pub struct VerifiedReader {
    file: File,
    state: ReadState,
    id: ObjectId,
    path: PathBuf,
}

#[derive(Debug)]
enum ReadState {
    Reading(Hasher),
    Verified,
    /// Stays failed: a later read must not report a clean end either.
    Failed(ObjectId),
}

impl VerifiedReader {
    fn new(file: File, id: ObjectId, path: PathBuf) -> Self {
        Self {
            file,
            state: ReadState::Reading(Hasher::new()),
            id,
            path,
        }
    }

    fn integrity(&self, actual: ObjectId) -> Error {
        Error::Integrity {
            id: self.id,
            path: self.path.clone(),
            expected: self.id,
            actual,
        }
    }

    /// Reads into `buf`; at the end of the object checks the hash and returns
    /// [`Error::Integrity`] rather than `Ok(0)` when it does not match.
    pub fn read_verified(&mut self, buf: &mut [u8]) -> Result<usize> {
        let hasher = match &mut self.state {
            ReadState::Reading(hasher) => hasher,
            ReadState::Verified => return Ok(0),
            ReadState::Failed(actual) => {
                let actual = *actual;
                return Err(self.integrity(actual));
            }
        };
        // A zero-length buffer reads nothing; its Ok(0) is not end-of-file,
        // so it must not end (and judge) the hash over a partial read.
        if buf.is_empty() {
            return Ok(0);
        }
        let n = loop {
            match self.file.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read object", &self.path, e)),
            }
        };
        if n > 0 {
            hasher.update(&buf[..n]);
            return Ok(n);
        }
        let actual = std::mem::take(hasher).finish();
        if actual == self.id {
            self.state = ReadState::Verified;
            Ok(0)
        } else {
            self.state = ReadState::Failed(actual);
            Err(self.integrity(actual))
        }
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_verified(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl IntoIterator for &ObjectStore {
    type Item = Result<ObjectId>;
    type IntoIter = ObjectIter;
    fn into_iter(self) -> ObjectIter {
        self.iter()
    }
}

/// Iterator over stored object ids; see [`ObjectStore::iter`].
#[derive(Debug)]
pub struct ObjectIter {
    dir: PathBuf,
    /// Shard directory names still to list (`None` until the first call).
    shards: Option<Vec<String>>,
    current: Option<(String, fs::ReadDir)>,
}

impl ObjectIter {
    fn list_shards(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir, e)),
        };
        let mut shards = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            if let Some(name) = entry.file_name().to_str()
                && name.len() == 2
                && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                shards.push(name.to_owned());
            }
        }
        // Popped from the end: reverse order gives ascending shards.
        shards.sort_unstable_by(|a, b| b.cmp(a));
        Ok(shards)
    }
}

impl Iterator for ObjectIter {
    type Item = Result<ObjectId>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.shards.is_none() {
            match self.list_shards() {
                Ok(shards) => self.shards = Some(shards),
                Err(e) => {
                    self.shards = Some(Vec::new());
                    return Some(Err(e));
                }
            }
        }
        loop {
            if let Some((shard, entries)) = self.current.as_mut() {
                match entries.next() {
                    Some(Ok(entry)) => {
                        let name = entry.file_name();
                        if let Some(id) = name
                            .to_str()
                            .and_then(|rest| Layout::object_id_from_parts(shard, rest))
                        {
                            return Some(Ok(id));
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        return Some(Err(Error::io("list", self.dir.join(shard.as_str()), e)));
                    }
                    None => self.current = None,
                }
            }
            let shard = self.shards.as_mut()?.pop()?;
            let path = self.dir.join(&shard);
            match fs::read_dir(&path) {
                Ok(entries) => self.current = Some((shard, entries)),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {}
                Err(e) => return Some(Err(Error::io("list", path, e))),
            }
        }
    }
}
