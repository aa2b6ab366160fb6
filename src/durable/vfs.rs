//! The filesystem seam: every system call that changes repository files.
//!
//! The durable writer never calls `std::fs` directly to create, write, sync,
//! rename or remove; it goes through [`Vfs`]. [`RealFs`] is the real thing;
//! tests put a recording, failure-injecting or simulated filesystem behind the
//! same trait. Reads do not go through the seam: a simulated filesystem wraps
//! the real one and materialises its durable image into a directory when it
//! "loses power", so plain reads see exactly what survived.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// An open file handle behind the seam.
pub trait VfsFile: Send {
    /// Writes all of `buf` at the current position.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Flushes data and metadata to stable storage (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Flushes data (and the metadata needed to read it back) (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The system calls that change repository files.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Creates `path` exclusively (`O_CREAT | O_EXCL`, which never follows a
    /// symlink) for writing, with permission bits `mode` (before the umask).
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>>;
    /// Opens `path` for appending, creating it (mode 0o666 before the umask)
    /// when absent.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Renames `from` over `to` (atomic replace within one directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Renames `from` to `to` only if `to` does not exist
    /// (`renameat2(RENAME_NOREPLACE)`); fails with `AlreadyExists` otherwise.
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates the single directory `path` (its parent must exist).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` durable (`fsync` on the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Which filesystem holds `path`: equal numbers mean one filesystem, so
    /// one [`Vfs::sync_fs`] covers both (the real filesystem answers with
    /// `st_dev`). A batch syncs each filesystem it wrote to once.
    fn filesystem_id(&self, path: &Path) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(fs::metadata(path)?.dev())
    }

    /// Makes everything written to the filesystem holding `path` durable:
    /// file data, metadata and directory entries (`syncfs`). The batch
    /// writer's barrier.
    fn sync_fs(&self, path: &Path) -> io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

impl VfsFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "this is the seam: the one place that makes these calls"
)]
impl Vfs for RealFs {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Box<dyn VfsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        crate::sys::rename_noreplace(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // A directory opened read-only can be fsynced on Linux; that is what
        // makes creates, renames and unlinks inside it durable.
        File::open(path)?.sync_all()
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        crate::sys::syncfs(&File::open(path)?)
    }
}
