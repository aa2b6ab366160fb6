//! Every direct call into the C library, and the crate's only `unsafe`.
//!
//! Each function is a thin, safe wrapper over one system call whose
//! preconditions it checks itself; the rest of the crate never writes
//! `unsafe`. Linux only: `syncfs` and `renameat2` are Linux system calls.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Renames `from` to `to` only if `to` does not exist
/// (`renameat2(RENAME_NOREPLACE)`); fails with `AlreadyExists` otherwise.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive
    // the call; AT_FDCWD makes the paths relative to the working directory
    // exactly as `rename` would.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Flushes everything written to the filesystem that holds `file`
/// (`syncfs`). Reports writeback errors of that filesystem since Linux 5.8.
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the duration of the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a process with this pid exists on this host (a process of
/// another user counts: `EPERM` means it exists).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Opens `path` for reading without following a symlink at its last
/// component (`O_NOFOLLOW`: a symlink is `ELOOP`) and without blocking on a
/// FIFO or device (`O_NONBLOCK`, which changes nothing for the reads of a
/// regular file). The caller checks what it opened with `fstat`
/// (`File::metadata`) before it reads.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    #[expect(
        clippy::disallowed_methods,
        reason = "read-only open; OpenOptions is the only way to pass O_NOFOLLOW"
    )]
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Opens `path` for reading, following symlinks, without blocking (a FIFO
/// opens at once; its reads then return nothing instead of waiting).
pub(crate) fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    #[expect(
        clippy::disallowed_methods,
        reason = "read-only open; OpenOptions is the only way to pass O_NONBLOCK"
    )]
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Whether an open error is the `ELOOP` of [`open_nofollow`] meeting a
/// symlink.
pub(crate) fn is_symlink_refusal(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ELOOP)
}

/// Whether this process may create and remove entries in directory `dir`
/// (`faccessat(W_OK | X_OK, AT_EACCESS)`: the effective user, and a
/// read-only mount counts as not writable).
pub(crate) fn may_write(dir: &Path) -> bool {
    let Ok(path) = c_path(dir) else {
        return false;
    };
    // SAFETY: the pointer is a valid NUL-terminated string that outlives
    // the call; faccessat only reads it.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    rc == 0
}

/// This machine's host name (`unknown` when it cannot be read).
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes and gethostname
    // writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_huge_pid_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(999_999_999));
        assert!(!pid_alive(0));
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "scratch files in a temp dir, not a repository"
    )]
    fn rename_noreplace_refuses_an_existing_target() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a")?;
        std::fs::write(&b, b"b")?;
        let err = rename_noreplace(&a, &b).expect_err("b exists");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_file(&b)?;
        rename_noreplace(&a, &b)?;
        assert_eq!(std::fs::read(&b)?, b"a");
        Ok(())
    }
}
