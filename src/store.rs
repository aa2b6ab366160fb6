//! The content-addressed object store: `objects/<2 hex>/<62 hex>`.
//!
//! Invariants:
//! - an object's bytes hash to its id; every read path checks that before it
//!   hands out a byte that could be mistaken for good data (whole reads and
//!   restores verify first; the streaming reader reports an error, never a
//!   clean end-of-file, when the bytes it delivered do not verify);
//! - writes go through the [`DurableWriter`] only; an existing valid object is
//!   never rewritten, an existing corrupt one is replaced by verified bytes;
//! - memory stays bounded by fixed buffers whatever the object size (large
//!   objects are streamed), except [`ObjectStore::read`], which returns the
//!   whole object;
//! - no read can die of a signal: objects are read with `read(2)`, never
//!   memory-mapped, so a file truncated under a reader is a short read and
//!   then an integrity error naming the object, not a `SIGBUS`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use crate::durable::{DurableWriter, Staged, TempKind};
use crate::error::{Error, Result};
use crate::files::{self, Entry};
use crate::id::{Hasher, ObjectId};
use crate::layout::Layout;

/// Size of the fixed buffers used to stream files.
pub const STREAM_BUFFER: usize = 256 * 1024;

/// Objects smaller than this are read whole into a buffer of their size;
/// larger ones are streamed through [`STREAM_BUFFER`]-sized buffers.
const WHOLE_READ_LIMIT: u64 = 1024 * 1024;

/// Reads all of `file` (expected to be about `len` bytes) into memory.
fn read_whole(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len as usize + 1);
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// The one hashing copy loop: reads `reader` to its end in fixed buffers,
/// hashes every byte and hands it to `sink`. Returns the id and length of
/// exactly the bytes read. `source` and `action` name the reader in a read
/// error.
pub(crate) fn hash_copy(
    reader: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
    source: &Path,
    action: &'static str,
) -> Result<(ObjectId, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; STREAM_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok((hasher.finish(), total)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(action, source, e)),
        };
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
}

/// Hashes everything `reader` yields (see [`hash_copy`]).
pub(crate) fn hash_stream(
    reader: &mut dyn Read,
    source: &Path,
    action: &'static str,
) -> Result<(ObjectId, u64)> {
    hash_copy(reader, |_| Ok(()), source, action)
}

/// The id and size of the file at `path`, computed without a repository
/// (what `hash-object` without `-w` prints). Refuses a directory or anything
/// else that is not a regular file.
pub fn hash_file(path: &Path) -> Result<(ObjectId, u64)> {
    let mut file = open_source(path)?;
    hash_stream(&mut file, path, "read")
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

    /// Whether `id` is stored as a file of `len` bytes, so a writer may name
    /// it without storing it again (its content is not re-hashed: reads
    /// verify it, and fsck does). The caller holds the write guard, so gc
    /// cannot remove it before the ref that names it moves.
    pub fn holds(&self, id: &ObjectId, len: u64) -> Result<bool> {
        let path = self.path(id);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == len => {
                self.writer.confirm_durable(&path)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("stat object", path, e)),
        }
    }

    /// Opens the stored file of `id`.
    fn open_file(&self, id: &ObjectId) -> Result<(File, u64, PathBuf)> {
        let path = self.path(id);
        // Never followed, never blocked on: a received repository may hold
        // a symlink or a FIFO where an object belongs.
        let file = match crate::sys::open_nofollow(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { id: *id });
            }
            Err(e) if crate::sys::is_symlink_refusal(&e) => {
                return Err(Error::Corrupt {
                    path,
                    reason: "an object must be a regular file, and this is a symbolic link".into(),
                });
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
        // Where a test truncates the object under the reader.
        crate::failpoint::barrier("object-opened");
        Ok((file, meta.len(), path))
    }

    fn check(id: &ObjectId, path: PathBuf, actual: ObjectId) -> Result<()> {
        if actual == *id {
            Ok(())
        } else {
            Err(Error::integrity(*id, path, actual))
        }
    }

    /// Reads object `id` whole, verified: its bytes hash to `id` or this
    /// fails with [`Error::Integrity`].
    pub fn read(&self, id: &ObjectId) -> Result<Vec<u8>> {
        let (mut file, len, path) = self.open_file(id)?;
        let bytes = read_whole(&mut file, len).map_err(|e| Error::io("read object", &path, e))?;
        Self::check(id, path, ObjectId::hash(&bytes))?;
        Ok(bytes)
    }

    /// Verifies object `id` and returns its size. Memory stays at one
    /// buffer: small objects are read whole (one read call, no fixed 256 KiB
    /// allocation per object, which dominated `fsck` on many small objects),
    /// larger ones streamed.
    pub fn verify(&self, id: &ObjectId) -> Result<u64> {
        let (mut file, len, path) = self.open_file(id)?;
        let (actual, size) = if len < WHOLE_READ_LIMIT {
            let bytes =
                read_whole(&mut file, len).map_err(|e| Error::io("read object", &path, e))?;
            (ObjectId::hash(&bytes), bytes.len() as u64)
        } else {
            hash_stream(&mut file, &path, "read object")?
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
        self.copy_framed(id, out, |_, _| Ok(()))
    }

    /// [`ObjectStore::copy_to`], with `frame` called with the object's size
    /// once it is verified and before its first byte is written (a
    /// container's length header, say): one open of the file for both.
    pub(crate) fn copy_framed(
        &self,
        id: &ObjectId,
        out: &mut dyn Write,
        frame: impl FnOnce(u64, &mut dyn Write) -> Result<()>,
    ) -> Result<u64> {
        let (mut file, len, path) = self.open_file(id)?;
        if len < WHOLE_READ_LIMIT {
            let bytes =
                read_whole(&mut file, len).map_err(|e| Error::io("read object", &path, e))?;
            Self::check(id, path.clone(), ObjectId::hash(&bytes))?;
            frame(bytes.len() as u64, out)?;
            out.write_all(&bytes)
                .map_err(|e| Error::io("write object to output", &path, e))?;
            return Ok(bytes.len() as u64);
        }
        let (first, size) = hash_stream(&mut file, &path, "read object")?;
        Self::check(id, path.clone(), first)?;
        frame(size, out)?;
        let mut write = |bytes: &[u8]| {
            out.write_all(bytes)
                .map_err(|e| Error::io("write object to output", &path, e))
        };
        file.rewind()
            .map_err(|e| Error::io("read object", &path, e))?;
        let mut reader = VerifiedReader::new(file, *id, path.clone());
        let mut buf = vec![0u8; STREAM_BUFFER];
        let mut total = 0u64;
        loop {
            let n = reader.read_verified(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            write(&buf[..n])?;
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
        if !self.writer.claim(&self.path(id)) {
            // Another file of this batch has the same content.
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
        self.write_from_file(&mut file, len, source)
    }

    /// Publishes the file at `source`, whose `len` bytes this process hashed
    /// to `id` as it wrote them (a quarantine file of a received bundle).
    /// Under a batch writer on the same filesystem the file itself is
    /// renamed into the store by the batch (no copy, no second read);
    /// otherwise it is copied and hashed again like
    /// [`ObjectStore::write_from_path`]. Returns whether a new object was
    /// stored.
    pub(crate) fn adopt_received(&self, id: &ObjectId, source: &Path, len: u64) -> Result<bool> {
        let target = self.path(id);
        if !self.writer.adoptable(source, &target)? {
            let (stored, written) = self.write_from_path(source)?;
            if stored != *id {
                return Err(Error::SourceChanged {
                    path: source.to_path_buf(),
                });
            }
            return Ok(written);
        }
        if !self.needs_write(id, len)? {
            self.writer.confirm_durable(&target)?;
            self.writer.freshen(&target);
            return Ok(false);
        }
        if !self.writer.claim(&target) {
            return Ok(false);
        }
        self.writer.adopt(source, &target)?;
        Ok(true)
    }

    /// Stores the contents of the open regular file `file` (about `len`
    /// bytes; `source` names it in errors), reading only through this
    /// descriptor: a path swapped for a symlink after it was opened is never
    /// read. Memory is bounded by one buffer. The bytes hashed are the bytes
    /// written to the temp file; if they differ from a first hashing pass
    /// (the file changed during the copy), nothing is stored and
    /// [`Error::SourceChanged`] is returned.
    pub(crate) fn write_from_file(
        &self,
        file: &mut File,
        len: u64,
        source: &Path,
    ) -> Result<(ObjectId, bool)> {
        if len < WHOLE_READ_LIMIT {
            let buf = read_whole(file, len).map_err(|e| Error::io("read", source, e))?;
            return self.write(&buf);
        }
        // The temp file must live in the target's shard directory, which the
        // id names: hash first, then copy while hashing again, both from
        // this descriptor.
        let (id, _) = hash_stream(file, source, "read")?;
        crate::failpoint::barrier("store-file-hashed");
        if !self.needs_write(&id, len)? {
            self.writer.confirm_durable(&self.path(&id))?;
            self.writer.freshen(&self.path(&id));
            return Ok((id, false));
        }
        if !self.writer.claim(&self.path(&id)) {
            return Ok((id, false));
        }
        file.rewind().map_err(|e| Error::io("read", source, e))?;
        let mut staged = self.writer.stage(&self.path(&id), TempKind::Object)?;
        if copy_into(file, &mut staged, source, "read")? != id {
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
        let actual = copy_into(&mut file, &mut staged, &path, "read object")?;
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
            layout: self.layout.clone(),
            shards: None,
            current: Vec::new(),
        }
    }
}

/// Copies everything `reader` yields into `staged` (the one hashing copy
/// loop) and returns the id of exactly the bytes written.
fn copy_into(
    reader: &mut dyn Read,
    staged: &mut Staged<'_>,
    path: &Path,
    action: &'static str,
) -> Result<ObjectId> {
    let (id, _) = hash_copy(reader, |bytes| Ok(staged.write(bytes)?), path, action)?;
    Ok(id)
}

/// Opens a caller-supplied source file, refusing what is not a regular file.
/// Opened once (a symlink the caller named is followed, as `git
/// hash-object` does; a FIFO does not block the open), then checked with
/// `fstat` on that descriptor, which is all that is read afterwards.
fn open_source(source: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let input = |reason: String| Error::Input {
        path: source.to_path_buf(),
        reason,
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "read-only open; OpenOptions is the only way to pass O_NONBLOCK"
    )]
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(source)
        .map_err(|e| input(e.to_string()))?;
    let meta = file.metadata().map_err(|e| input(e.to_string()))?;
    if meta.is_dir() {
        return Err(input("it is a directory, not a file".into()));
    }
    if !meta.is_file() {
        return Err(input("it is not a regular file".into()));
    }
    Ok(file)
}

/// Resolves `work_tree/rel_path`, refusing absolute paths, `..`, and
/// symlinks or non-directories among the parents below `work_tree`.
fn safe_destination(work_tree: &Path, rel_path: &Path) -> Result<PathBuf> {
    let refuse = |reason: &str| Error::Input {
        path: rel_path.to_path_buf(),
        reason: reason.to_owned(),
    };
    // The path policy again, in depth: whatever the caller checked.
    if let Some(text) = rel_path.to_str() {
        crate::name::check_path(text)?;
    } else {
        return Err(refuse("the path is not valid UTF-8"));
    }
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
        Error::integrity(self.id, self.path.clone(), actual)
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
    layout: Layout,
    /// Shard directories still to list, last first (`None` until the first
    /// call).
    shards: Option<Vec<PathBuf>>,
    /// Ids of the shard being handed out, last first.
    current: Vec<ObjectId>,
}

impl Iterator for ObjectIter {
    type Item = Result<ObjectId>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.shards.is_none() {
            match files::shard_dirs(&self.layout) {
                Ok(mut shards) => {
                    shards.reverse();
                    self.shards = Some(shards);
                }
                Err(e) => {
                    self.shards = Some(Vec::new());
                    return Some(Err(e));
                }
            }
        }
        loop {
            if let Some(id) = self.current.pop() {
                return Some(Ok(id));
            }
            let shard = self.shards.as_mut()?.pop()?;
            match files::list_shard(&shard) {
                Ok(entries) => {
                    self.current = entries
                        .into_iter()
                        .filter_map(|e| match e {
                            Entry::Item(id, _) => Some(id),
                            Entry::Temp(_) | Entry::Stray(_) => None,
                        })
                        .collect();
                    self.current.sort_unstable_by(|a, b| b.cmp(a));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
