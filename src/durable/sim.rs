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
//!   directory, unlink in the source), so it needs both directories synced;
//! - the tree may span several filesystems: [`SimFs::mount`] declares a
//!   directory the root of another one. Every file and directory belongs to
//!   the filesystem of the directory it was created in; `sync_fs(path)`
//!   (`syncfs`) makes durable only the pending effects of the filesystem
//!   holding `path`, and a rename from one filesystem to another fails with
//!   `EXDEV`, as the kernel's does;
//! - an injected failure ([`SimFs::fail_nth`], as [`FaultFs`](super::fault::FaultFs)
//!   injects them) of a file's `fsync`, or of a `syncfs`, loses the dirty
//!   pages it was writing back: the pending writes of that file (of every
//!   file of that filesystem, for `syncfs`) never become durable, a later
//!   successful fsync does not bring them back, and the live view (the real
//!   file under the root) reverts to the durable contents, as Linux reads
//!   back once the pages it marked clean after the writeback error are
//!   evicted. A failed directory fsync makes nothing durable and loses
//!   nothing; a failure of any other call changes nothing and records
//!   nothing;
//! - a random cut may keep a pending write torn at a page boundary, or keep
//!   the new length of a file that a write extended but not the data: the
//!   tail then holds garbage or reads as zeros (an unwritten extent).
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
///
/// Effects lost to a failed fsync before the cut never survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivors {
    /// None: the image holds exactly the durable state.
    Nothing,
    /// All of them, whole: the image is the live view at the cut (what a
    /// killed process leaves behind).
    Everything,
    /// A random subset drawn from this seed, applied in order; a surviving
    /// write may be torn at a [`TEAR_GRANULE`] boundary, and a region a write
    /// appended may hold garbage or zeros instead of the written bytes (its
    /// length reached the disk, its data did not). The same seed always
    /// gives the same image.
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
    /// Surviving writes that were torn or replaced by garbage or zeros.
    pub damaged_writes: usize,
    /// Of the damaged writes, those whose new length reached the disk while
    /// (part of) their data reads as zeros.
    pub zeroed_writes: usize,
    /// Effects dropped by a failed fsync before the cut (never durable).
    pub lost: usize,
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
    /// Index of the failed sync that lost this effect's pages: from then on
    /// it can never reach the disk.
    lost_at: Option<usize>,
}

impl Part {
    /// Durable in a cut after the first `after` operations.
    fn durable_by(&self, after: usize) -> bool {
        self.durable_at.is_some_and(|j| j < after)
    }

    /// Lost in a cut after the first `after` operations.
    fn lost_by(&self, after: usize) -> bool {
        self.lost_at.is_some_and(|j| j < after)
    }
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
    /// The modelled root (absolute).
    root: PathBuf,
    /// The tree as it was when the `SimFs` was attached (all durable), sized
    /// for every inode and directory created since.
    initial: Image,
    /// The live tree (what the page cache shows).
    live: Image,
    records: Vec<Record>,
    /// Not-yet-durable parts by what would sync them: (record, part).
    pending: HashMap<Target, Vec<(usize, usize)>>,
    /// The filesystem of every directory, by [`DirId`] (0: the root's).
    dir_fs: Vec<usize>,
    /// The filesystem of every file, by [`Ino`].
    file_fs: Vec<usize>,
    /// The mount point of filesystem `i + 1`.
    mounts: Vec<PathBuf>,
    /// Injected failures: (kind, occurrence index to fail, errno).
    faults: Vec<(OpKind, usize, i32)>,
    /// Calls of each kind on modelled paths so far.
    seen: HashMap<OpKind, usize>,
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
                lost_at: None,
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

    /// The filesystem a sync of `target` writes to.
    fn target_fs(&self, target: Target) -> usize {
        match target {
            Target::File(ino) => self.file_fs.get(ino).copied().unwrap_or(0),
            Target::Dir(dir) => self.dir_fs.get(dir).copied().unwrap_or(0),
        }
    }

    /// A filesystem-wide flush (`syncfs`) of filesystem `fs`: every pending
    /// effect on it becomes durable at this operation, and only those.
    fn sync_filesystem(&mut self, op: Op, fs: usize) {
        let index = self.records.len();
        let targets: Vec<Target> = self
            .pending
            .keys()
            .copied()
            .filter(|t| self.target_fs(*t) == fs)
            .collect();
        for target in targets {
            for (r, p) in self.pending.remove(&target).unwrap_or_default() {
                self.records[r].parts[p].durable_at = Some(index);
            }
        }
        self.records.push(Record {
            op,
            parts: Vec::new(),
        });
    }

    /// Records the failed sync `op`, which lost the dirty pages of `inos`:
    /// their pending writes never become durable, and the live files (the
    /// model's and the real ones) revert to their durable contents.
    fn lose_pages(&mut self, op: Op, inos: &[Ino]) -> io::Result<()> {
        let index = self.records.len();
        for &ino in inos {
            for (r, p) in self.pending.remove(&Target::File(ino)).unwrap_or_default() {
                self.records[r].parts[p].lost_at = Some(index);
            }
            let durable = self.durable_file(ino);
            if let Some(rel) = self.live_path(ino) {
                let mut path = self.root.clone();
                path.extend(&rel);
                overwrite_live_file(&path, &durable)?;
            }
            if let Some(file) = self.live.files.get_mut(ino) {
                *file = durable;
            }
        }
        self.records.push(Record {
            op,
            parts: Vec::new(),
        });
        Ok(())
    }

    /// The files of filesystem `fs` with pending data.
    fn dirty_files(&self, fs: usize) -> Vec<Ino> {
        let mut inos: Vec<Ino> = self
            .pending
            .keys()
            .filter_map(|t| match *t {
                Target::File(ino) if self.target_fs(*t) == fs => Some(ino),
                _ => None,
            })
            .collect();
        inos.sort_unstable();
        inos
    }

    /// The contents of file `ino` that are durable now.
    fn durable_file(&self, ino: Ino) -> Vec<u8> {
        let mut data = self.initial.files.get(ino).cloned().unwrap_or_default();
        for record in &self.records {
            for part in &record.parts {
                if part.durable_at.is_some() && part.effect.target() == Target::File(ino) {
                    apply_to_file(&mut data, &part.effect, None);
                }
            }
        }
        data
    }

    /// A live path of file `ino` (relative to the root), if it is linked.
    fn live_path(&self, ino: Ino) -> Option<Vec<OsString>> {
        let mut stack = vec![(0, Vec::new())];
        let mut seen = HashSet::new();
        while let Some((dir, path)) = stack.pop() {
            if !seen.insert(dir) {
                continue;
            }
            for (name, node) in self.live.dirs.get(dir)? {
                let mut child: Vec<OsString> = path.clone();
                child.push(name.clone());
                match *node {
                    Node::File(i) if i == ino => return Some(child),
                    Node::File(_) => {}
                    Node::Dir(sub) => stack.push((sub, child)),
                }
            }
        }
        None
    }

    /// Counts a call of `kind` on a modelled path and returns the injected
    /// failure it must report, if any.
    fn fault(&mut self, kind: OpKind) -> Option<io::Error> {
        let count = self.seen.entry(kind).or_insert(0);
        let index = *count;
        *count += 1;
        let pos = self
            .faults
            .iter()
            .position(|&(k, n, _)| k == kind && n == index)?;
        let (_, _, errno) = self.faults.remove(pos);
        Some(io::Error::from_raw_os_error(errno))
    }

    /// Applies one effect to the live tree.
    fn apply_live(&mut self, effect: &Effect) {
        apply(&mut self.live, effect, None);
    }

    /// A new file in directory `dir` (on that directory's filesystem).
    fn new_file(&mut self, mode: u32, dir: DirId) -> Ino {
        let fs = self.dir_fs.get(dir).copied().unwrap_or(0);
        self.file_fs.push(fs);
        self.initial.new_file(mode);
        self.live.new_file(mode)
    }

    /// A new directory in directory `parent`.
    fn new_dir(&mut self, parent: DirId) -> DirId {
        let fs = self.dir_fs.get(parent).copied().unwrap_or(0);
        self.dir_fs.push(fs);
        self.initial.new_dir();
        self.live.new_dir()
    }
}

/// Applies `effect` to `image`; `garbage` fills the gap when a write lands
/// beyond the end of the file (an earlier write was lost).
fn apply(image: &mut Image, effect: &Effect, garbage: Option<&mut Rng>) {
    match effect {
        Effect::Write { ino, .. } | Effect::SetLen { ino, .. } => {
            if let Some(file) = image.files.get_mut(*ino) {
                apply_to_file(file, effect, garbage);
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

/// Applies a write or truncation to the contents of one file.
fn apply_to_file(file: &mut Vec<u8>, effect: &Effect, garbage: Option<&mut Rng>) {
    match effect {
        Effect::Write { offset, data, .. } => {
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
        Effect::SetLen { len, .. } => file.resize(*len as usize, 0),
        Effect::Link { .. } | Effect::Unlink { .. } | Effect::Rename { .. } => {}
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
    /// counts as durable, and all of it is on one filesystem until
    /// [`SimFs::mount`] says otherwise.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = std::path::absolute(root.as_ref())?;
        let mut initial = Image::default();
        let top = initial.new_dir();
        scan(&root, top, &mut initial)?;
        let model = Model {
            root: root.clone(),
            dir_fs: vec![0; initial.dirs.len()],
            file_fs: vec![0; initial.files.len()],
            live: initial.clone(),
            initial,
            ..Model::default()
        };
        Ok(Self {
            root,
            model: Arc::new(Mutex::new(model)),
        })
    }

    /// Declares the existing directory `dir` (below the root) the root of
    /// another filesystem, as if something were mounted there when the
    /// machine booted: it and everything below it (until a nested mount)
    /// belong to the new filesystem, whose id is returned (1 for the first
    /// mount; the root's filesystem is 0). Only before the first recorded
    /// operation: the filesystems of a tree do not change under a workload.
    pub fn mount(&self, dir: impl AsRef<Path>) -> io::Result<usize> {
        let dir = std::path::absolute(dir.as_ref())?;
        let rel = self.relative(&dir).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "SimFs: a mount point must be below the root: '{}'",
                    dir.display()
                ),
            )
        })?;
        let mut model = self.model.lock();
        if !model.records.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "SimFs: mount before the first operation",
            ));
        }
        let Some(Node::Dir(top)) = model.live.resolve(&rel) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("SimFs: '{}' is not a directory in the model", dir.display()),
            ));
        };
        model.mounts.push(dir);
        let fs = model.mounts.len();
        let old = model.dir_fs[top];
        let mut stack = vec![top];
        while let Some(d) = stack.pop() {
            // A nested mount keeps its own filesystem.
            if model.dir_fs[d] != old {
                continue;
            }
            model.dir_fs[d] = fs;
            let children: Vec<Node> = model.live.dirs[d].values().copied().collect();
            for child in children {
                match child {
                    Node::Dir(sub) => stack.push(sub),
                    Node::File(ino) => model.file_fs[ino] = fs,
                }
            }
        }
        Ok(fs)
    }

    /// The filesystem holding `path` in the live tree (0: the root's, then
    /// the mounts in order); `None` when it is not in the model.
    #[must_use]
    pub fn filesystem_of(&self, path: &Path) -> Option<usize> {
        let model = self.model.lock();
        let node = if path == self.root {
            Node::Dir(0)
        } else {
            model.live.resolve(&self.relative(path)?)?
        };
        Some(match node {
            Node::Dir(d) => model.dir_fs[d],
            Node::File(ino) => model.file_fs[ino],
        })
    }

    /// How many filesystems the tree spans (1 plus the mounts).
    #[must_use]
    pub fn filesystems(&self) -> usize {
        self.model.lock().mounts.len() + 1
    }

    /// Makes the `nth` (0-based) call of `kind` on a modelled path from now
    /// on fail with `errno`, as [`FaultFs::fail_nth`](super::fault::FaultFs::fail_nth)
    /// does. A failed fsync (`SyncFile`) or `syncfs` (`SyncFs`) is recorded
    /// and loses the pages it was writing back (see the module docs); any
    /// other failed call changes nothing.
    pub fn fail_nth(&self, kind: OpKind, nth: usize, errno: i32) {
        let mut model = self.model.lock();
        let already = model.seen.get(&kind).copied().unwrap_or(0);
        model.faults.push((kind, already + nth, errno));
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
    /// only when this is not zero). Effects a failed fsync lost do not count.
    #[must_use]
    pub fn pending_at(&self, after: usize) -> usize {
        self.pending_where(after, |_| true)
    }

    /// [`SimFs::pending_at`] for the effects on filesystem `fs` only: zero
    /// after a `syncfs` of `fs` (until something changes it again), whatever
    /// other filesystems still hold.
    #[must_use]
    pub fn pending_on(&self, fs: usize, after: usize) -> usize {
        self.pending_where(after, |model_fs| model_fs == fs)
    }

    fn pending_where(&self, after: usize, on: impl Fn(usize) -> bool) -> usize {
        let model = self.model.lock();
        model.records[..after.min(model.records.len())]
            .iter()
            .flat_map(|r| &r.parts)
            .filter(|p| {
                !p.durable_by(after) && !p.lost_by(after) && on(model.target_fs(p.effect.target()))
            })
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
        if let Some(err) = model.fault(OpKind::Rename) {
            return Err(err);
        }
        let (from_dir, from_name) = Self::parent_entry(&model, &rel_from, from)?;
        let (to_dir, to_name) = Self::parent_entry(&model, &rel_to, to)?;
        if model.dir_fs[from_dir] != model.dir_fs[to_dir] {
            // rename(2) never crosses filesystems.
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
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
        if let Some(err) = model.fault(kind) {
            return Err(err);
        }
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        call(path)?;
        let effect = Effect::Unlink { dir, name };
        model.apply_live(&effect);
        model.push(Self::op(kind, path), vec![effect]);
        Ok(())
    }
}

impl Vfs for SimFs {
    fn filesystem_id(&self, path: &Path) -> io::Result<u64> {
        match self.filesystem_of(path) {
            Some(fs) => Ok(fs as u64),
            None => RealFs.filesystem_id(path),
        }
    }

    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let Some(rel) = self.relative(path) else {
            return RealFs.create_new(path, mode);
        };
        let mut model = self.model.lock();
        if let Some(err) = model.fault(OpKind::Create) {
            return Err(err);
        }
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        let inner = RealFs.create_new(path, mode)?;
        let ino = model.new_file(mode, dir);
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
        if let Some(err) = model.fault(OpKind::OpenAppend) {
            return Err(err);
        }
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
                let ino = model.new_file(0o666, dir);
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
        if let Some(err) = model.fault(OpKind::CreateDir) {
            return Err(err);
        }
        let (dir, name) = Self::parent_entry(&model, &rel, path)?;
        RealFs.create_dir(path)?;
        let new = model.new_dir(dir);
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
        let Some(dir) = self.modelled_node(path, "directory", |n| match n {
            Node::Dir(d) => Some(d),
            Node::File(_) => None,
        })?
        else {
            return RealFs.sync_dir(path);
        };
        let mut model = self.model.lock();
        let op = Self::op(OpKind::SyncDir, path);
        if let Some(err) = model.fault(OpKind::SyncDir) {
            // Nothing became durable; what was pending still may or may not
            // reach the disk.
            model.push(op, Vec::new());
            return Err(err);
        }
        RealFs.sync_dir(path)?;
        model.sync(op, Target::Dir(dir));
        Ok(())
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        let Some(fs) = self.modelled_node(path, "file or directory", Some)? else {
            return RealFs.sync_fs(path);
        };
        let mut model = self.model.lock();
        let fs = match fs {
            Node::Dir(d) => model.dir_fs[d],
            Node::File(ino) => model.file_fs[ino],
        };
        let op = Self::op(OpKind::SyncFs, path);
        if let Some(err) = model.fault(OpKind::SyncFs) {
            let dirty = model.dirty_files(fs);
            model.lose_pages(op, &dirty)?;
            return Err(err);
        }
        // The model is what tests read after a cut; flushing the real
        // filesystem underneath would only cost time.
        model.sync_filesystem(op, fs);
        Ok(())
    }
}

impl SimFs {
    /// The model's node for `path` (the root included), picked by `pick`:
    /// `Ok(None)` when `path` is outside the root, `NotFound` when it is
    /// inside but not a `what` in the model.
    fn modelled_node<T>(
        &self,
        path: &Path,
        what: &str,
        pick: impl Fn(Node) -> Option<T>,
    ) -> io::Result<Option<T>> {
        let node = if path == self.root {
            Some(Node::Dir(0))
        } else {
            let Some(rel) = self.relative(path) else {
                return Ok(None);
            };
            self.model.lock().live.resolve(&rel)
        };
        match node.and_then(pick) {
            Some(found) => Ok(Some(found)),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("SimFs: '{}' is not a {what} in the model", path.display()),
            )),
        }
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
        let op = SimFs::op(OpKind::SyncFile, &self.path);
        if let Some(err) = model.fault(OpKind::SyncFile) {
            model.lose_pages(op, &[self.ino])?;
            return Err(err);
        }
        if data_only {
            self.inner.sync_data()?;
        } else {
            self.inner.sync_all()?;
        }
        model.sync(op, Target::File(self.ino));
        Ok(())
    }
}

impl VfsFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut model = self.model.lock();
        if let Some(err) = model.fault(OpKind::Write) {
            return Err(err);
        }
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
        if let Some(err) = model.fault(OpKind::Truncate) {
            return Err(err);
        }
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
            if part.durable_by(after) {
                summary.durable += 1;
                apply(&mut image, &part.effect, None);
                continue;
            }
            if part.lost_by(after) {
                summary.lost += 1;
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
                    match survive_damaged(&mut image, &part.effect, &mut rng) {
                        Damage::None => {}
                        Damage::Garbage => summary.damaged_writes += 1,
                        Damage::Zeros => {
                            summary.damaged_writes += 1;
                            summary.zeroed_writes += 1;
                        }
                    }
                }
            }
        }
    }
    (image, summary)
}

/// How a surviving write reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// Whole.
    None,
    /// Torn, or with garbage where its data should be.
    Garbage,
    /// Its new length reached the disk while (part of) its data reads as
    /// zeros.
    Zeros,
}

/// What fills the region of a file whose length reached the disk before
/// its data.
#[derive(Debug)]
enum Fill<'r> {
    Garbage(&'r mut Rng),
    Zeros,
}

/// Applies a surviving pending effect, possibly torn, as garbage or as
/// zeros; says how it was damaged.
fn survive_damaged(image: &mut Image, effect: &Effect, rng: &mut Rng) -> Damage {
    let Effect::Write { ino, offset, data } = effect else {
        apply(image, effect, Some(rng));
        return Damage::None;
    };
    let end = offset + data.len() as u64;
    let old_len = image.files.get(*ino).map_or(0, |f| f.len() as u64);
    let prefix = |kept: usize| Effect::Write {
        ino: *ino,
        offset: *offset,
        data: data[..kept].to_vec(),
    };
    match rng.below(6) {
        // Torn at a page boundary inside the write: the pages before it
        // reached the disk, the rest did not.
        0 => {
            let first = (offset / TEAR_GRANULE + 1) * TEAR_GRANULE;
            if first >= end {
                apply(image, effect, Some(rng));
                return Damage::None;
            }
            let pages = (end - first).div_ceil(TEAR_GRANULE);
            let cut = first + rng.below(pages) * TEAR_GRANULE;
            let kept = (cut - offset) as usize;
            apply(image, &prefix(kept), Some(rng));
            // The file's new length may have reached the disk even though the
            // rest of the data did not: the tail is garbage or zeros.
            if end > old_len.max(cut) {
                match rng.below(3) {
                    0 => {
                        fill(image, *ino, cut.max(old_len), end, Fill::Garbage(rng));
                    }
                    1 => {
                        fill(image, *ino, cut.max(old_len), end, Fill::Zeros);
                        return Damage::Zeros;
                    }
                    _ => {}
                }
            }
            Damage::Garbage
        }
        // The length reached the disk, the appended data did not: the region
        // holds whatever the blocks held (garbage), or reads as zeros (an
        // unwritten extent, as ext4 and XFS show after a crash).
        choice @ (1 | 2) if end > old_len => {
            let kept = (old_len.saturating_sub(*offset) as usize).min(data.len());
            let zeros = choice == 2;
            apply(
                image,
                &prefix(kept),
                if zeros { None } else { Some(&mut *rng) },
            );
            let start = old_len.max(*offset);
            if zeros {
                fill(image, *ino, start, end, Fill::Zeros);
                Damage::Zeros
            } else {
                fill(image, *ino, start, end, Fill::Garbage(rng));
                Damage::Garbage
            }
        }
        _ => {
            apply(image, effect, Some(rng));
            Damage::None
        }
    }
}

/// Fills `start..end` of file `ino` with `with`, growing it as needed.
fn fill(image: &mut Image, ino: Ino, start: u64, end: u64, with: Fill<'_>) {
    let Some(file) = image.files.get_mut(ino) else {
        return;
    };
    let (start, end) = (start as usize, end as usize);
    if file.len() < end {
        file.resize(end, 0);
    }
    if start < end {
        match with {
            Fill::Garbage(rng) => rng.fill(&mut file[start..end]),
            Fill::Zeros => file[start..end].fill(0),
        }
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "reverts a live file to its durable contents after a simulated failed fsync, as the page cache would read it back; only tests run a SimFs"
)]
fn overwrite_live_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.set_len(0)?;
    file.write_all(data)
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
    // The recorded mode is the one asked for, before the umask (set through
    // the descriptor: a cut writes many files, and a path walk each costs).
    file.set_permissions(fs::Permissions::from_mode(mode & 0o755))
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

    /// A tree with `mnt/` mounted as a second filesystem.
    fn two_filesystems() -> io::Result<(tempfile::TempDir, SimFs)> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("mnt"))?;
        let sim = SimFs::new(dir.path())?;
        assert_eq!(sim.mount(dir.path().join("mnt"))?, 1);
        Ok((dir, sim))
    }

    fn write_new(sim: &SimFs, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = sim.create_new(path, 0o644)?;
        file.write_all(data)
    }

    #[test]
    fn syncfs_makes_only_its_own_filesystem_durable() -> io::Result<()> {
        let (dir, sim) = two_filesystems()?;
        let (root, mnt) = (dir.path(), dir.path().join("mnt"));
        assert_eq!(sim.filesystems(), 2);
        assert_eq!(sim.filesystem_of(root), Some(0));
        assert_eq!(sim.filesystem_of(&mnt), Some(1));
        write_new(&sim, &root.join("a"), b"on root")?;
        write_new(&sim, &mnt.join("b"), b"on mnt")?;
        assert_eq!(sim.filesystem_of(&mnt.join("b")), Some(1));
        let written = sim.ops();
        assert!(sim.pending_on(0, written) > 0 && sim.pending_on(1, written) > 0);

        sim.sync_fs(root)?;
        let one = sim.ops();
        assert_eq!(sim.pending_on(0, one), 0, "the root's filesystem is clean");
        assert!(sim.pending_on(1, one) > 0, "the mount is not");
        let cuts = tempfile::tempdir()?;
        let out = cuts.path().join("one");
        sim.power_cut(one, Survivors::Nothing, &out)?;
        assert_eq!(read(&out.join("a")).as_deref(), Some(&b"on root"[..]));
        assert_eq!(read(&out.join("mnt/b")), None, "syncfs of / missed mnt");

        // A file path names its filesystem as well as a directory does.
        sim.sync_fs(&mnt.join("b"))?;
        let out = cuts.path().join("both");
        sim.power_cut(sim.ops(), Survivors::Nothing, &out)?;
        assert_eq!(read(&out.join("a")).as_deref(), Some(&b"on root"[..]));
        assert_eq!(read(&out.join("mnt/b")).as_deref(), Some(&b"on mnt"[..]));
        assert_eq!(sim.pending_on(1, sim.ops()), 0);
        Ok(())
    }

    #[test]
    fn a_batch_shaped_sequence_needs_one_syncfs_per_filesystem() -> io::Result<()> {
        // The write batch's protocol by hand: temp files, barrier, renames,
        // barrier. Barriers on the first target's filesystem only (what
        // `WriteBatch::commit` did) lose the other filesystem's file; one
        // barrier per filesystem keeps both.
        for per_fs in [false, true] {
            let (dir, sim) = two_filesystems()?;
            let targets = [dir.path().join("a"), dir.path().join("mnt/b")];
            let temps: Vec<PathBuf> = targets.iter().map(|t| t.with_file_name(".tmp")).collect();
            for (temp, n) in temps.iter().zip([b"1", b"2"]) {
                write_new(&sim, temp, n)?;
            }
            let barrier = |sim: &SimFs| -> io::Result<()> {
                sim.sync_fs(dir.path())?;
                if per_fs {
                    sim.sync_fs(&dir.path().join("mnt"))?;
                }
                Ok(())
            };
            barrier(&sim)?;
            for (temp, target) in temps.iter().zip(&targets) {
                sim.rename(temp, target)?;
            }
            barrier(&sim)?;
            let out = tempfile::tempdir()?;
            sim.power_cut(sim.ops(), Survivors::Nothing, out.path())?;
            assert_eq!(read(&out.path().join("a")).as_deref(), Some(&b"1"[..]));
            let b = read(&out.path().join("mnt/b"));
            if per_fs {
                assert_eq!(b.as_deref(), Some(&b"2"[..]));
                assert_eq!(sim.pending_on(1, sim.ops()), 0);
            } else {
                assert_eq!(b, None, "an acknowledged file lost: the model must see it");
                assert!(sim.pending_on(1, sim.ops()) > 0);
            }
        }
        Ok(())
    }

    #[test]
    fn rename_across_filesystems_fails_with_exdev_and_changes_nothing() -> io::Result<()> {
        let (dir, sim) = two_filesystems()?;
        write_new(&sim, &dir.path().join("a"), b"x")?;
        let before = sim.ops();
        let err = sim
            .rename(&dir.path().join("a"), &dir.path().join("mnt/a"))
            .expect_err("EXDEV");
        assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
        assert_eq!(sim.ops(), before);
        assert!(dir.path().join("a").exists() && !dir.path().join("mnt/a").exists());
        // Inside the mount, renames work, and new directories inherit it.
        sim.create_dir(&dir.path().join("mnt/d"))?;
        assert_eq!(sim.filesystem_of(&dir.path().join("mnt/d")), Some(1));
        write_new(&sim, &dir.path().join("mnt/d/t"), b"y")?;
        sim.rename(&dir.path().join("mnt/d/t"), &dir.path().join("mnt/t"))?;
        Ok(())
    }

    #[test]
    fn mounts_are_declared_before_any_operation_and_nest() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::create_dir_all(dir.path().join("m/n"))?;
        #[expect(clippy::disallowed_methods, reason = "planting a pre-existing file")]
        fs::write(dir.path().join("m/n/f"), b"f")?;
        let sim = SimFs::new(dir.path())?;
        assert_eq!(sim.mount(dir.path().join("m/n"))?, 1);
        assert_eq!(sim.mount(dir.path().join("m"))?, 2);
        assert_eq!(sim.filesystem_of(&dir.path().join("m")), Some(2));
        assert_eq!(sim.filesystem_of(&dir.path().join("m/n")), Some(1));
        assert_eq!(sim.filesystem_of(&dir.path().join("m/n/f")), Some(1));
        assert!(sim.mount(dir.path()).is_err(), "the root is not a mount");
        assert!(sim.mount(dir.path().join("m/n/f")).is_err(), "not a dir");
        sim.create_dir(&dir.path().join("d"))?;
        assert!(sim.mount(dir.path().join("d")).is_err(), "too late");
        Ok(())
    }

    #[test]
    fn a_failed_fsync_loses_the_pages_for_good_and_reads_back_stale() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("log");
        #[expect(clippy::disallowed_methods, reason = "planting a pre-existing file")]
        fs::write(&log, b"old\n")?;
        let sim = SimFs::new(dir.path())?;
        let mut file = sim.open_append(&log)?;
        file.write_all(b"new\n")?;
        let before_sync = sim.ops();
        sim.fail_nth(OpKind::SyncFile, 0, libc::EIO);
        let err = file.sync_all().expect_err("injected");
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        let failed = sim.ops();
        assert_eq!(failed, before_sync + 1, "the failed fsync is an operation");
        assert_eq!(read(&log).as_deref(), Some(&b"old\n"[..]), "stale read");
        assert_eq!(sim.pending_at(failed), 0, "nothing left to write back");

        let cuts = tempfile::tempdir()?;
        // Before the failure the write was pending: it may still survive.
        let out = cuts.path().join("before");
        sim.power_cut(before_sync, Survivors::Everything, &out)?;
        assert_eq!(read(&out.join("log")).as_deref(), Some(&b"old\nnew\n"[..]));
        // After it, never.
        for (i, survivors) in [Survivors::Everything, Survivors::Random(1)]
            .into_iter()
            .chain((0..32).map(Survivors::Random))
            .enumerate()
        {
            let out = cuts.path().join(format!("after-{i}"));
            let summary = sim.power_cut(failed, survivors, &out)?;
            assert_eq!(summary.lost, 1);
            assert_eq!(read(&out.join("log")).as_deref(), Some(&b"old\n"[..]));
        }
        // A later, successful fsync does not bring the lost write back.
        file.sync_all()?;
        let out = cuts.path().join("resynced");
        sim.power_cut(sim.ops(), Survivors::Nothing, &out)?;
        assert_eq!(read(&out.join("log")).as_deref(), Some(&b"old\n"[..]));
        // New writes land after the stale end and are durable once synced.
        file.write_all(b"more\n")?;
        file.sync_all()?;
        let out = cuts.path().join("more");
        sim.power_cut(sim.ops(), Survivors::Nothing, &out)?;
        assert_eq!(read(&out.join("log")).as_deref(), Some(&b"old\nmore\n"[..]));
        assert_eq!(read(&log).as_deref(), Some(&b"old\nmore\n"[..]));
        Ok(())
    }

    #[test]
    fn a_failed_fsync_of_a_new_file_leaves_it_empty() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        let path = dir.path().join("t");
        let mut file = sim.create_new(&path, 0o644)?;
        file.write_all(&vec![1u8; 10_000])?;
        sim.fail_nth(OpKind::SyncFile, 0, libc::EIO);
        assert!(file.sync_data().is_err());
        assert_eq!(read(&path).as_deref(), Some(&b""[..]));
        // Written again after the failure: the old handle's position stays,
        // so the start of the file reads as zeros, as from a real hole.
        file.write_all(b"x")?;
        assert_eq!(read(&path).map(|d| d.len()), Some(10_001));
        Ok(())
    }

    #[test]
    fn a_failed_syncfs_loses_the_dirty_pages_of_its_filesystem_only() -> io::Result<()> {
        let (dir, sim) = two_filesystems()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("mnt/b"));
        write_new(&sim, &a, b"root data")?;
        write_new(&sim, &b, b"mnt data")?;
        sim.fail_nth(OpKind::SyncFs, 0, libc::EIO);
        assert!(sim.sync_fs(&dir.path().join("mnt")).is_err());
        assert_eq!(read(&b).as_deref(), Some(&b""[..]), "mnt's pages lost");
        assert_eq!(read(&a).as_deref(), Some(&b"root data"[..]), "root's kept");
        sim.sync_fs(dir.path())?;
        sim.sync_fs(&dir.path().join("mnt"))?;
        let out = tempfile::tempdir()?;
        sim.power_cut(sim.ops(), Survivors::Everything, out.path())?;
        assert_eq!(
            read(&out.path().join("a")).as_deref(),
            Some(&b"root data"[..])
        );
        // The entry was never lost (only data pages are), the data was.
        assert_eq!(read(&out.path().join("mnt/b")).as_deref(), Some(&b""[..]));
        Ok(())
    }

    #[test]
    fn a_failed_dir_fsync_makes_nothing_durable_and_loses_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        let mut file = sim.create_new(&dir.path().join("a"), 0o644)?;
        file.write_all(b"a")?;
        file.sync_all()?;
        sim.fail_nth(OpKind::SyncDir, 0, libc::EIO);
        assert!(sim.sync_dir(dir.path()).is_err());
        let cuts = tempfile::tempdir()?;
        sim.power_cut(sim.ops(), Survivors::Nothing, &cuts.path().join("1"))?;
        assert_eq!(read(&cuts.path().join("1/a")), None);
        sim.power_cut(sim.ops(), Survivors::Everything, &cuts.path().join("2"))?;
        assert_eq!(read(&cuts.path().join("2/a")).as_deref(), Some(&b"a"[..]));
        sim.sync_dir(dir.path())?;
        sim.power_cut(sim.ops(), Survivors::Nothing, &cuts.path().join("3"))?;
        assert_eq!(read(&cuts.path().join("3/a")).as_deref(), Some(&b"a"[..]));
        Ok(())
    }

    #[test]
    fn other_injected_failures_change_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        sim.fail_nth(OpKind::Create, 1, libc::ENOSPC);
        write_new(&sim, &dir.path().join("first"), b"1")?;
        let ops = sim.ops();
        let err = sim
            .create_new(&dir.path().join("second"), 0o644)
            .err()
            .expect("the second create fails");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(sim.ops(), ops);
        assert!(!dir.path().join("second").exists());
        write_new(&sim, &dir.path().join("third"), b"3")?;
        Ok(())
    }

    #[test]
    fn random_cuts_keep_lengths_whose_data_reads_as_zeros() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sim = SimFs::new(dir.path())?;
        let mut file = sim.open_append(&dir.path().join("log"))?;
        file.write_all(b"head")?;
        file.sync_all()?;
        sim.sync_dir(dir.path())?;
        file.write_all(&vec![7u8; 2 * TEAR_GRANULE as usize])?;
        let full = 4 + 2 * TEAR_GRANULE as usize;
        let (mut zeroed, mut garbage, mut whole) = (0, 0, 0);
        for seed in 0..300 {
            let out = tempfile::tempdir()?;
            let summary = sim.power_cut(sim.ops(), Survivors::Random(seed), out.path())?;
            let got = read(&out.path().join("log")).unwrap_or_default();
            assert_eq!(&got[..4], b"head", "the synced prefix is durable");
            let tail = &got[4..];
            if got.len() == full && tail.iter().all(|&b| b == 0) {
                zeroed += 1;
                assert_eq!(summary.zeroed_writes, 1);
            } else if tail.iter().all(|&b| b == 7) {
                whole += 1;
            } else {
                garbage += 1;
            }
        }
        assert!(
            zeroed > 0 && garbage > 0 && whole > 0,
            "{zeroed} {garbage} {whole}"
        );
        Ok(())
    }
}
