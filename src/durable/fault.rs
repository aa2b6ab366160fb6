//! A recording, failure-injecting filesystem for tests.
//!
//! [`FaultFs`] passes every call to the real filesystem, records it in order,
//! and can make the n-th call of a kind fail with a chosen errno instead.
//! Tests use it to prove the order of system calls (fsync before rename,
//! directory fsync after it) and what is left behind when any step fails.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::vfs::{RealFs, Vfs, VfsFile};

/// The kind of a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`Vfs::create_new`].
    Create,
    /// [`Vfs::open_append`].
    OpenAppend,
    /// [`VfsFile::write_all`].
    Write,
    /// [`VfsFile::sync_all`] or [`VfsFile::sync_data`].
    SyncFile,
    /// [`VfsFile::set_len`].
    Truncate,
    /// [`Vfs::rename`].
    Rename,
    /// [`Vfs::remove_file`].
    Remove,
    /// [`Vfs::create_dir`].
    CreateDir,
    /// [`Vfs::remove_dir`].
    RemoveDir,
    /// [`Vfs::sync_dir`].
    SyncDir,
    /// [`Vfs::sync_fs`].
    SyncFs,
}

/// One recorded call: its kind and the path it was about (for a rename, the
/// destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What was called.
    pub kind: OpKind,
    /// On which path.
    pub path: PathBuf,
}

/// Which paths a fault counts calls on.
type PathFilter = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// One armed fault: the call of `kind` on a path `on` accepts that comes
/// after `skip` more such calls fails with `errno`.
struct Fault {
    kind: OpKind,
    skip: usize,
    on: PathFilter,
    errno: i32,
}

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    faults: Vec<Fault>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("ops", &self.ops)
            .field("faults", &self.faults.len())
            .finish()
    }
}

/// A [`Vfs`] that records every call and injects failures.
#[derive(Debug, Default, Clone)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

impl FaultFs {
    /// A recorder with no faults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `nth` (0-based) call of `kind` from now on fail with `errno`.
    pub fn fail_nth(&self, kind: OpKind, nth: usize, errno: i32) {
        self.fail_nth_where(kind, nth, errno, |_| true);
    }

    /// Makes the `nth` (0-based) call of `kind` from now on whose path `on`
    /// accepts fail with `errno` (calls on other paths are not counted).
    pub fn fail_nth_where(
        &self,
        kind: OpKind,
        nth: usize,
        errno: i32,
        on: impl Fn(&Path) -> bool + Send + Sync + 'static,
    ) {
        self.state.lock().faults.push(Fault {
            kind,
            skip: nth,
            on: Arc::new(on),
            errno,
        });
    }

    /// Every call recorded so far, in order.
    #[must_use]
    pub fn ops(&self) -> Vec<Op> {
        self.state.lock().ops.clone()
    }

    /// Forgets the recorded calls (faults stay armed).
    pub fn clear(&self) {
        self.state.lock().ops.clear();
    }

    /// Records a call and says whether it must fail.
    fn enter(&self, kind: OpKind, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.ops.push(Op {
            kind,
            path: path.to_path_buf(),
        });
        let mut failing = None;
        for (pos, fault) in state.faults.iter_mut().enumerate() {
            if fault.kind != kind || !(fault.on)(path) {
                continue;
            }
            if fault.skip == 0 && failing.is_none() {
                failing = Some(pos);
            } else {
                fault.skip = fault.skip.saturating_sub(1);
            }
        }
        match failing {
            Some(pos) => Err(io::Error::from_raw_os_error(state.faults.remove(pos).errno)),
            None => Ok(()),
        }
    }
}

struct FaultFile {
    inner: Box<dyn VfsFile>,
    path: PathBuf,
    fs: FaultFs,
}

impl VfsFile for FaultFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.fs.enter(OpKind::Write, &self.path)?;
        self.inner.write_all(buf)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.fs.enter(OpKind::SyncFile, &self.path)?;
        self.inner.sync_all()
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.enter(OpKind::SyncFile, &self.path)?;
        self.inner.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.fs.enter(OpKind::Truncate, &self.path)?;
        self.inner.set_len(len)
    }
}

impl Vfs for FaultFs {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        self.enter(OpKind::Create, path)?;
        let inner = RealFs.create_new(path, mode)?;
        Ok(Box::new(FaultFile {
            inner,
            path: path.to_path_buf(),
            fs: self.clone(),
        }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        self.enter(OpKind::OpenAppend, path)?;
        let inner = RealFs.open_append(path)?;
        Ok(Box::new(FaultFile {
            inner,
            path: path.to_path_buf(),
            fs: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.enter(OpKind::Rename, to)?;
        RealFs.rename(from, to)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.enter(OpKind::Rename, to)?;
        RealFs.rename_noreplace(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.enter(OpKind::Remove, path)?;
        RealFs.remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.enter(OpKind::CreateDir, path)?;
        RealFs.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.enter(OpKind::RemoveDir, path)?;
        RealFs.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.enter(OpKind::SyncDir, path)?;
        RealFs.sync_dir(path)
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        self.enter(OpKind::SyncFs, path)?;
        RealFs.sync_fs(path)
    }
}
