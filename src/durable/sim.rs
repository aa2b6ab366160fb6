//! A simulated disk for power-cut tests.
//!
//! [`SimFs`] is a test tool, not a filesystem to run a repository on. It
//! passes every call through to a real directory, so the crate's plain
//! `std::fs` reads see the live ("page cache") view, and beside it keeps a
//! model of what a power cut would keep:
//!
//! - every file (inode) has volatile and durable contents; `fsync` of a file
//!   makes only its contents durable, never its directory entry;
//! - every directory has volatile and durable entries; only an `fsync` of the
//!   directory makes the creates, renames and unlinks in it durable, a new
//!   directory included (its parent must be synced);
//! - a rename inside one directory is one atomic entry change; a rename
//!   across directories is two independent ones (link in the target
//!   directory, unlink in the source), so it needs both directories synced.
//!
//! Every call that changed something is recorded as one operation, in order,
//! with the index of the sync that made each of its effects durable. A power
//! cut "after operation `k`" ([`SimFs::power_cut`]) therefore needs no rerun:
//! it keeps the effects made durable by a sync among the first `k`
//! operations, plus the chosen [`Survivors`] among the other effects of those
//! `k` operations, and writes that image into a fresh directory that a test
//! reopens.
//!
//! Only the tree under the root given to [`SimFs::new`] is modelled, and what
//! it held then counts as durable. The tree must change only through this
//! `SimFs` afterwards (reads may use `std::fs` freely); a call on a path under
//! the root whose parent the model does not know fails with `NotFound`
//! without touching the disk. Calls on paths outside the root go to the real
//! filesystem unrecorded.
//!
//! Every file of a materialised image gets a modification time long before
//! the current boot, as after a real power cut and reboot: nothing in the
//! image can belong to a process that is still running.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::fault::{Op, OpKind};
use super::vfs::{RealFs, Vfs, VfsFile};

/// The page size at which pending writes may tear.
pub const TEAR_GRANULE: u64 = 4096;

/// The modification time given to every file of a materialised image
/// (2001-09-09): before any boot of the machine running the tests.
const IMAGE_MTIME_SECS: u64 = 1_000_000_000;

/// Which of the effects that were not yet durable survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivors {
    /// None: the image holds exactly the durable state.
    Nothing,
    /// All of them, whole: the image is the live view at the cut (what a
    /// killed process leaves behind).
    Everything,
    /// A random subset drawn from this seed, applied in order; a surviving
    /// write may be torn at a [`TEAR_GRANULE`] boundary, and a region a write
    /// appended may hold garbage instead of the written bytes (its length
    /// reached the disk, its data did not). The same seed always gives the
    /// same image.
    Random(u64),
}

/// What a power cut kept, for test diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutSummary {
    /// Effects that were durable at the cut.
    pub durable: usize,
    /// Effects that were pending at the cut.
    pub pending: usize,
    /// Pending effects that survived (whole, torn or as garbage).
    pub survived: usize,
    /// Surviving writes that were torn or replaced by garbage.
    pub damaged_writes: usize,
}

type DirId = usize;
type Ino = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    File(Ino),
    Dir(DirId),
}

/// The thing an fsync makes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    File(Ino),
    Dir(DirId),
}

#[derive(Debug, Clone)]
enum Effect {
    Write {
        ino: Ino,
        offset: u64,
        data: Vec<u8>,
    },
    SetLen {
        ino: Ino,
        len: u64,
    },
    /// Adds (or replaces) entry `name` of `dir`.
    Link {
        dir: DirId,
        name: OsString,
        node: Node,
    },
    /// Removes entry `name` of `dir`.
    Unlink {
        dir: DirId,
        name: OsString,
    },
    /// Moves `node` from `from` to `to` inside `dir`, atomically.
    Rename {
        dir: DirId,
        from: OsString,
        to: OsString,
        node: Node,
    },
}

impl Effect {
    fn target(&self) -> Target {
        match self {
            Effect::Write { ino, .. } | Effect::SetLen { ino, .. } => Target::File(*ino),
            Effect::Link { dir, .. } | Effect::Unlink { dir, .. } | Effect::Rename { dir, .. } => {
                Target::Dir(*dir)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Part {
    effect: Effect,
    /// Index of the operation (a sync) that made this effect durable.
    durable_at: Option<usize>,
}

#[derive(Debug, Clone)]
struct Record {
    op: Op,
    parts: Vec<Part>,
}

/// The durable-and-pending image a cut is computed from.
#[derive(Debug, Clone, Default)]
struct Image {
    dirs: Vec<BTreeMap<OsString, Node>>,
    files: Vec<Vec<u8>>,
    modes: Vec<u32>,
}

impl Image {
    fn resolve(&self, rel: &[OsString]) -> Option<Node> {
        let mut node = Node::Dir(0);
        for name in rel {
            let Node::Dir(dir) = node else { return None };
            node = *self.dirs.get(dir)?.get(name)?;
        }
        Some(node)
    }

    fn new_dir(&mut self) -> DirId {
        self.dirs.push(BTreeMap::new());
        self.dirs.len() - 1
    }

    fn new_file(&mut self, mode: u32) -> Ino {
        self.files.push(Vec::new());
        self.modes.push(mode);
        self.files.len() - 1
    }
}

#[derive(Debug, Default)]
struct Model {
    /// The tree as it was when the `SimFs` was attached (all durable), sized
    /// for every inode and directory created since.
    initial: Image,
    /// The live tree (what the page cache shows).
    live: Image,
    records: Vec<Record>,
    /// Not-yet-durable parts by what would sync them: (record, part).
    pending: HashMap<Target, Vec<(usize, usize)>>,
}

impl Model {
    fn push(&mut self, op: Op, effects: Vec<Effect>) {
        let index = self.records.len();
        for (i, effect) in effects.iter().enumerate() {
            self.pending
                .entry(effect.target())
                .or_default()
                .push((index, i));
        }
        let parts = effects
            .into_iter()
            .map(|effect| Part {
                effect,
                durable_at: None,
            })
            .collect();
        self.records.push(Record { op, parts });
    }

    /// Records a sync of `target` as operation `op`.
    fn sync(&mut self, op: Op, target: Target) {
        let index = self.records.len();
        for (r, p) in self.pending.remove(&target).unwrap_or_default() {
            self.records[r].parts[p].durable_at = Some(index);
        }
        self.records.push(Record {
            op,
            parts: Vec::new(),
        });
    }

    /// A filesystem-wide flush (`syncfs`): every pending effect becomes
    /// durable at this operation.
    fn sync_everything(&mut self, op: Op) {
        let index = self.records.len();
        for (_, parts) in self.pending.drain() {
            for (r, p) in parts {
                self.records[r].parts[p].durable_at = Some(index);
            }
        }
        self.records.push(Record {
            op,
            parts: Vec::new(),
        });
    }

    /// Applies one effect to the live tree.
    fn apply_live(&mut self, effect: &Effect) {
        apply(&mut self.live, effect, None);
    }

    fn new_file(&mut self, mode: u32) -> Ino {
        self.initial.new_file(mode);
        self.live.new_file(mode)
    }

    fn new_dir(&mut self) -> DirId {
        self.initial.new_dir();
        self.live.new_dir()
    }
}

/// Applies `effect` to `image`; `garbage` fills the gap when a write lands
/// beyond the end of the file (an earlier write was lost).
fn apply(image: &mut Image, effect: &Effect, garbage: Option<&mut Rng>) {
    match effect {
        Effect::Write { ino, offset, data } => {
            let Some(file) = image.files.get_mut(*ino) else {
                return;
            };
            let offset = *offset as usize;
            if file.len() < offset {
                let start = file.len();
                file.resize(offset, 0);
                if let Some(rng) = garbage {
                    rng.fill(&mut file[start..]);
                }
            }
            let end = offset + data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[offset..end].copy_from_slice(data);
        }
        Effect::SetLen { ino, len } => {
            if let Some(file) = image.files.get_mut(*ino) {
                file.resize(*len as usize, 0);
            }
        }
        Effect::Link { dir, name, node } => {
            if let Some(entries) = image.dirs.get_mut(*dir) {
                entries.insert(name.clone(), *node);
            }
        }
        Effect::Unlink { dir, name } => {
            if let Some(entries) = image.dirs.get_mut(*dir) {
                entries.remove(name);
            }
        }
        Effect::Rename {
            dir,
            from,
            to,
            node,
        } => {
            if let Some(entries) = image.dirs.get_mut(*dir) {
                if entries.get(from) == Some(node) {
                    entries.remove(from);
                }
                entries.insert(to.clone(), *node);
            }
        }
    }
}

/// A small deterministic generator (splitmix64): no dependency, and the same
/// seed gives the same image on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A simulated disk over a real directory; see the module docs.
///
/// Cloning gives another handle on the same model.
#[derive(Debug, Clone)]
pub struct SimFs {
    root: PathBuf,
    model: Arc<Mutex<Model>>,
}

impl SimFs {
    /// Models the tree under `root` (which must exist); everything in it now
    /// counts as durable.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = std::path::absolute(root.as_ref())?;
        let mut initial = Image::default();
        let top = initial.new_dir();
        scan(&root, top, &mut initial)?;
        let model = Model {
            live: initial.clone(),
            initial,
            records: Vec::new(),
            pending: HashMap::new(),
        };
        Ok(Self {
            root,
            model: Arc::new(Mutex::new(model)),
        })
    }

    /// The modelled root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many operations were recorded: the crash points are `0..=ops()`.
    #[must_use]
    pub fn ops(&self) -> usize {
        self.model.lock().records.len()
    }

    /// The recorded operations, in order (for diagnostics).
    #[must_use]
    pub fn op_log(&self) -> Vec<Op> {
        self.model
            .lock()
            .records
            .iter()
            .map(|r| r.op.clone())
            .collect()
    }

    /// How many effects of the first `after` operations were not yet durable
    /// after them (a random cut there can differ from [`Survivors::Nothing`]
    /// only when this is not zero).
    #[must_use]
    pub fn pending_at(&self, after: usize) -> usize {
        let model = self.model.lock();
        model.records[..after.min(model.records.len())]
            .iter()
            .flat_map(|r| &r.parts)
            .filter(|p| p.durable_at.is_none_or(|j| j >= after))
            .count()
    }

    /// Cuts the power right after the first `after` operations (clamped to
    /// [`SimFs::ops`]) and writes what survives, chosen by `survivors`, into
    /// the directory `into` (created; it must not exist or be empty). The
    /// live tree is left as it is.
    pub fn power_cut(
        &self,
        after: usize,
        survivors: Survivors,
        into: &Path,
    ) -> io::Result<CutSummary> {
        let (image, summary) = {
            let model = self.model.lock();
            crash_image(&model, after, survivors)
        };
        materialise(&image, into)?;
        Ok(summary)
    }

    /// The path of `path` relative to the root, as names; `None` when it is
    /// outside the root (or is the root itself).
    fn relative(&self, path: &Path) -> Option<Vec<OsString>> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let mut names = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => names.push(name.to_os_string()),
                Component::CurDir => {}
                // `..` or anything else: not modelled, the caller decides.
                _ => return None,
            }
        }
        if names.is_empty() { None } else { Some(names) }
    }

    /// Resolves the parent directory and the last name of a modelled path.
    fn parent_entry(model: &Model, rel: &[OsString], path: &Path) -> io::Result<(DirId, OsString)> {
        let (name, parent) = rel
            .split_last()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))?;
        match model.live.resolve(parent) {
            Some(Node::Dir(dir)) => Ok((dir, name.clone())),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "SimFs: the parent of '{}' is not in the model",
                    path.display()
                ),
            )),
        }
    }

    fn op(kind: OpKind, path: &Path) -> Op {
        Op {
            kind,
            path: path.to_path_buf(),
        }
    }

    fn open_file(&self, inner: Box<dyn VfsFile>, ino: Ino, path: &Path, append: bool) -> SimFile {
        SimFile {
            inner,
            ino,
            pos: 0,
            append,
            path: path.to_path_buf(),
            model: self.model.clone(),
        }
    }

    fn rename_impl(&self, from: &Path, to: &Path, noreplace: bool) -> io::Result<()> {
        let call = |from: &Path, to: &Path| {
            if noreplace {
                RealFs.rename_noreplace(from, to)
            } else {
                RealFs.rename(from, to)
            }
        };
        let (Some(rel_from), Some(rel_to)) = (self.relative(from), self.relative(to)) else {
            if self.relative(from).is_some() || self.relative(to).is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "SimFs: rename into or out of the modelled tree",
                ));
            }
            return call(from, to);
        };
        let mut model = self.model.lock();
        let (from_dir, from_name) = Self::parent_entry(&model, &rel_from, from)?;
        let (to_dir, to_name) = Self::parent_entry(&model, &rel_to, to)?;
        call(from, to)?;
        let Some(node) = model.live.dirs[from_dir].get(&from_name).copied() else {
            return Ok(());
        };
        let effects = if from_dir == to_dir {
            vec![Effect::Rename {
                dir: from_dir,
                from: from_name,
                to: to_name,
                node,
            }]
        } else {
            vec![
                Effect::Link {
                    dir: to_dir,
                    name: to_name,
                    node,
                },
                Effect::Unlink {
                    dir: from_dir,
                    name: from_name,
                },
            ]
        };
        for effect in &effects {
            model.apply_live(effect);
        }
        model.push(Self::op(OpKind::Rename, to), effects);
        Ok(())
    }

    fn unlink_impl(&self, path: &Path, kind: OpKind) -> io::Result<()> {
        let call = |p: &Path| match kind {
            OpKind::RemoveDir => RealFs.remove_dir(p),
            _ => RealFs.remove_file(p),
        };
        let Some(rel) = self.relative(path) else {
            return call(path);
        };
        let mut model = self.model.lock();
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        call(path)?;
        let effect = Effect::Unlink { dir, name };
        model.apply_live(&effect);
        model.push(Self::op(kind, path), vec![effect]);
        Ok(())
    }
}

impl Vfs for SimFs {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let Some(rel) = self.relative(path) else {
            return RealFs.create_new(path, mode);
        };
        let mut model = self.model.lock();
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        let inner = RealFs.create_new(path, mode)?;
        let ino = model.new_file(mode);
        let effect = Effect::Link {
            dir,
            name,
            node: Node::File(ino),
        };
        model.apply_live(&effect);
        model.push(Self::op(OpKind::Create, path), vec![effect]);
        Ok(Box::new(self.open_file(inner, ino, path, false)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let Some(rel) = self.relative(path) else {
            return RealFs.open_append(path);
        };
        let mut model = self.model.lock();
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        let existing = model.live.dirs[dir].get(&name).copied();
        let inner = RealFs.open_append(path)?;
        let ino = match existing {
            Some(Node::File(ino)) => {
                // Opening an existing file changes nothing; still one
                // operation, so crash points match the seam's calls.
                model.push(Self::op(OpKind::OpenAppend, path), Vec::new());
                ino
            }
            Some(Node::Dir(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "SimFs: open_append on a directory",
                ));
            }
            None => {
                let ino = model.new_file(0o666);
                let effect = Effect::Link {
                    dir,
                    name,
                    node: Node::File(ino),
                };
                model.apply_live(&effect);
                model.push(Self::op(OpKind::OpenAppend, path), vec![effect]);
                ino
            }
        };
        Ok(Box::new(self.open_file(inner, ino, path, true)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.rename_impl(from, to, false)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.rename_impl(from, to, true)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.unlink_impl(path, OpKind::Remove)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let Some(rel) = self.relative(path) else {
            return RealFs.create_dir(path);
        };
        let mut model = self.model.lock();
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        RealFs.create_dir(path)?;
        let new = model.new_dir();
        let effect = Effect::Link {
            dir,
            name,
            node: Node::Dir(new),
        };
        model.apply_live(&effect);
        model.push(Self::op(OpKind::CreateDir, path), vec![effect]);
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.unlink_impl(path, OpKind::RemoveDir)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let target = if path == self.root {
            Some(0)
        } else if let Some(rel) = self.relative(path) {
            let model = self.model.lock();
            match model.live.resolve(&rel) {
                Some(Node::Dir(dir)) => Some(dir),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "SimFs: '{}' is not a directory in the model",
                            path.display()
                        ),
                    ));
                }
            }
        } else {
            None
        };
        let mut model = self.model.lock();
        RealFs.sync_dir(path)?;
        if let Some(dir) = target {
            model.sync(Self::op(OpKind::SyncDir, path), Target::Dir(dir));
        }
        Ok(())
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        // The model is what tests read after a cut; flushing the real
        // filesystem underneath would only cost time.
        let mut model = self.model.lock();
        model.sync_everything(Self::op(OpKind::SyncFs, path));
        Ok(())
    }
}

/// An open file of a [`SimFs`].
struct SimFile {
    inner: Box<dyn VfsFile>,
    ino: Ino,
    /// Where the next write lands (files opened by `create_new`).
    pos: u64,
    /// Writes land at the end of the file (`O_APPEND`).
    append: bool,
    path: PathBuf,
    model: Arc<Mutex<Model>>,
}

impl SimFile {
    fn sync(&mut self, data_only: bool) -> io::Result<()> {
        let mut model = self.model.lock();
        if data_only {
            self.inner.sync_data()?;
        } else {
            self.inner.sync_all()?;
        }
        model.sync(
            SimFs::op(OpKind::SyncFile, &self.path),
            Target::File(self.ino),
        );
        Ok(())
    }
}

impl VfsFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut model = self.model.lock();
        self.inner.write_all(buf)?;
        let offset = if self.append {
            model.live.files[self.ino].len() as u64
        } else {
            self.pos
        };
        self.pos = offset + buf.len() as u64;
        let effect = Effect::Write {
            ino: self.ino,
            offset,
            data: buf.to_vec(),
        };
        model.apply_live(&effect);
        model.push(SimFs::op(OpKind::Write, &self.path), vec![effect]);
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync(false)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync(true)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut model = self.model.lock();
        self.inner.set_len(len)?;
        let effect = Effect::SetLen { ino: self.ino, len };
        model.apply_live(&effect);
        model.push(SimFs::op(OpKind::Truncate, &self.path), vec![effect]);
        Ok(())
    }
}

/// Reads the tree under `path` into `image` as directory `dir`.
fn scan(path: &Path, dir: DirId, image: &mut Image) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(path)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let file_type = entry.file_type()?;
        let name = entry.file_name();
        if file_type.is_dir() {
            let sub = image.new_dir();
            image.dirs[dir].insert(name, Node::Dir(sub));
            scan(&entry.path(), sub, image)?;
        } else if file_type.is_file() {
            let mode = entry.metadata()?.permissions().mode() & 0o7777;
            let ino = image.new_file(mode);
            image.files[ino] = fs::read(entry.path())?;
            image.dirs[dir].insert(name, Node::File(ino));
        }
        // Symlinks and special files are not modelled (the store makes none).
    }
    Ok(())
}

/// The image that survives a cut after `after` operations.
fn crash_image(model: &Model, after: usize, survivors: Survivors) -> (Image, CutSummary) {
    let after = after.min(model.records.len());
    let mut image = model.initial.clone();
    let mut summary = CutSummary::default();
    let seed = match survivors {
        Survivors::Random(seed) => seed,
        Survivors::Nothing | Survivors::Everything => 0,
    };
    let mut rng = Rng(seed ^ (after as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    for record in &model.records[..after] {
        for part in &record.parts {
            if part.durable_at.is_some_and(|j| j < after) {
                summary.durable += 1;
                apply(&mut image, &part.effect, None);
                continue;
            }
            summary.pending += 1;
            match survivors {
                Survivors::Nothing => {}
                Survivors::Everything => {
                    summary.survived += 1;
                    apply(&mut image, &part.effect, None);
                }
                Survivors::Random(_) => {
                    if rng.below(2) == 0 {
                        continue;
                    }
                    summary.survived += 1;
                    if survive_damaged(&mut image, &part.effect, &mut rng) {
                        summary.damaged_writes += 1;
                    }
                }
            }
        }
    }
    (image, summary)
}

/// Applies a surviving pending effect, possibly torn or as garbage; returns
/// whether it was damaged.
fn survive_damaged(image: &mut Image, effect: &Effect, rng: &mut Rng) -> bool {
    let Effect::Write { ino, offset, data } = effect else {
        apply(image, effect, Some(rng));
        return false;
    };
    let end = offset + data.len() as u64;
    let old_len = image.files.get(*ino).map_or(0, |f| f.len() as u64);
    match rng.below(5) {
        // Torn at a page boundary inside the write: the pages before it
        // reached the disk, the rest did not.
        0 => {
            let first = (offset / TEAR_GRANULE + 1) * TEAR_GRANULE;
            if first >= end {
                apply(image, effect, Some(rng));
                return false;
            }
            let pages = (end - first).div_ceil(TEAR_GRANULE);
            let cut = first + rng.below(pages) * TEAR_GRANULE;
            let kept = (cut - offset) as usize;
            apply(
                image,
                &Effect::Write {
                    ino: *ino,
                    offset: *offset,
                    data: data[..kept].to_vec(),
                },
                Some(rng),
            );
            // The file's new length may have reached the disk even though the
            // rest of the data did not: the tail is garbage.
            if end > old_len.max(cut) && rng.below(2) == 0 {
                garbage(image, *ino, cut.max(old_len), end, rng);
            }
            true
        }
        // The length reached the disk, the appended data did not.
        1 if end > old_len => {
            apply(
                image,
                &Effect::Write {
                    ino: *ino,
                    offset: *offset,
                    data: data[..(old_len.saturating_sub(*offset) as usize).min(data.len())]
                        .to_vec(),
                },
                Some(rng),
            );
            garbage(image, *ino, old_len.max(*offset), end, rng);
            true
        }
        _ => {
            apply(image, effect, Some(rng));
            false
        }
    }
}

/// Fills `start..end` of file `ino` with random bytes, growing it as needed.
fn garbage(image: &mut Image, ino: Ino, start: u64, end: u64, rng: &mut Rng) {
    let Some(file) = image.files.get_mut(ino) else {
        return;
    };
    let (start, end) = (start as usize, end as usize);
    if file.len() < end {
        file.resize(end, 0);
    }
    if start < end {
        rng.fill(&mut file[start..end]);
    }
}

/// Writes `image` into the directory `into`.
fn materialise(image: &Image, into: &Path) -> io::Result<()> {
    fs::create_dir_all(into)?;
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(IMAGE_MTIME_SECS);
    let mut seen = HashSet::new();
    let mut stack = vec![(0, into.to_path_buf())];
    while let Some((dir, path)) = stack.pop() {
        if !seen.insert(Node::Dir(dir)) {
            continue;
        }
        let Some(entries) = image.dirs.get(dir) else {
            continue;
        };
        for (name, node) in entries {
            let child = path.join(name);
            match *node {
                Node::Dir(sub) => {
                    fs::create_dir(&child)?;
                    stack.push((sub, child));
                }
                Node::File(inode) => {
                    let data = image.files.get(inode).map_or(&[][..], Vec::as_slice);
                    let mode = image.modes.get(inode).copied().unwrap_or(0o644);
                    write_image_file(&child, data, mode, mtime)?;
                }
            }
        }
    }
    Ok(())
}

#[expect(
    clippy::disallowed_methods,
    reason = "materialises a simulated disk image for tests; nothing here writes a repository"
)]
fn write_image_file(path: &Path, data: &[u8], mode: u32, mtime: SystemTime) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.set_modified(mtime)?;
    // The recorded mode is the one asked for, before the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Option<Vec<u8>> {
        fs::read(path).ok()
    }

    #[test]
    fn fsync_of_a_file_does_not_make_its_entry_durable() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        let path = dir.path().join("a");
        let mut file = sim.create_new(&path, 0o644)?;
        file.write_all(b"hello")?;
        file.sync_all()?;
        drop(file);
        let after_file_sync = sim.ops();
        sim.sync_dir(dir.path())?;
        let cuts = tempfile::tempdir()?;
        let out = cuts.path().join("1");
        sim.power_cut(after_file_sync, Survivors::Nothing, &out)?;
        assert_eq!(
            read(&out.join("a")),
            None,
            "entry not durable before dir sync"
        );
        let out = cuts.path().join("2");
        sim.power_cut(sim.ops(), Survivors::Nothing, &out)?;
        assert_eq!(read(&out.join("a")).as_deref(), Some(&b"hello"[..]));
        let out = cuts.path().join("3");
        sim.power_cut(after_file_sync, Survivors::Everything, &out)?;
        assert_eq!(read(&out.join("a")).as_deref(), Some(&b"hello"[..]));
        Ok(())
    }

    #[test]
    fn dir_sync_without_file_sync_keeps_an_empty_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        let mut file = sim.create_new(&dir.path().join("a"), 0o644)?;
        file.write_all(b"data")?;
        sim.sync_dir(dir.path())?;
        let cuts = tempfile::tempdir()?;
        sim.power_cut(sim.ops(), Survivors::Nothing, cuts.path())?;
        assert_eq!(read(&cuts.path().join("a")).as_deref(), Some(&b""[..]));
        Ok(())
    }

    #[test]
    fn pre_existing_files_are_durable_and_rename_is_atomic() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("d"))?;
        #[expect(clippy::disallowed_methods, reason = "planting a pre-existing file")]
        fs::write(dir.path().join("d/t"), b"old")?;
        let sim = SimFs::new(dir.path())?;
        let tmp = dir.path().join("d/.tmp");
        let mut file = sim.create_new(&tmp, 0o644)?;
        file.write_all(b"new")?;
        file.sync_all()?;
        sim.rename(&tmp, &dir.path().join("d/t"))?;
        for seed in 0..64 {
            let out = tempfile::tempdir()?;
            sim.power_cut(sim.ops(), Survivors::Random(seed), out.path())?;
            let got = read(&out.path().join("d/t"));
            assert!(
                got.as_deref() == Some(b"old") || got.as_deref() == Some(b"new"),
                "seed {seed}: {got:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn random_cuts_tear_large_appends() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        let mut file = sim.open_append(&dir.path().join("log"))?;
        sim.sync_dir(dir.path())?;
        file.sync_all()?;
        file.write_all(&vec![7u8; 3 * TEAR_GRANULE as usize])?;
        let mut lengths = HashSet::new();
        let mut damaged = 0;
        for seed in 0..200 {
            let out = tempfile::tempdir()?;
            let summary = sim.power_cut(sim.ops(), Survivors::Random(seed), out.path())?;
            damaged += summary.damaged_writes;
            let got = read(&out.path().join("log")).unwrap_or_default();
            lengths.insert(got.len());
            assert!(
                (got.len() as u64).is_multiple_of(TEAR_GRANULE),
                "torn at a page boundary"
            );
        }
        assert!(damaged > 0 && lengths.len() > 2, "{lengths:?}");
        Ok(())
    }
}
