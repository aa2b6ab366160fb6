//! The registry of this process's temp files, removed when the process is
//! interrupted (SIGINT, SIGTERM) before it exits.
//!
//! Invariants:
//! - a temp file is registered before it is created and forgotten only once
//!   it was renamed into place or removed, so at any instant the registry
//!   names every temp file this process may have left;
//! - once an interrupt is being handled no new temp file is registered (the
//!   writer fails instead), the handler waits for creations already under
//!   way, removes every registered file, and only then exits: an
//!   interrupted command leaves no temp file behind (recovery on the next
//!   open still removes what a SIGKILL or a power cut leaves);
//! - nothing here runs in a signal handler: signal-hook delivers the signal
//!   to an ordinary thread.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Registry {
    paths: HashSet<PathBuf>,
    /// Registered temp files whose creation has not returned yet.
    in_flight: usize,
    /// An interrupt is being handled: register nothing more.
    exiting: bool,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `path` before it is created. Fails when the process is being
/// interrupted: no temp file may appear after the cleanup.
pub(crate) fn register(path: &Path) -> io::Result<()> {
    let mut guard = registry();
    let registry = guard.get_or_insert_with(Registry::default);
    if registry.exiting {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "the process is being interrupted",
        ));
    }
    registry.paths.insert(path.to_path_buf());
    registry.in_flight += 1;
    Ok(())
}

/// The creation of a registered `path` returned; `created` says whether
/// the file exists now (it stays registered until [`forget`]).
pub(crate) fn creation_done(path: &Path, created: bool) {
    let mut guard = registry();
    if let Some(registry) = guard.as_mut() {
        registry.in_flight = registry.in_flight.saturating_sub(1);
        if !created {
            registry.paths.remove(path);
        }
    }
}

/// `path` was renamed into place or removed: nothing to clean up.
pub(crate) fn forget(path: &Path) {
    if let Some(registry) = registry().as_mut() {
        registry.paths.remove(path);
    }
}

/// Installs (once per process) a handler for SIGINT and SIGTERM that
/// removes every temp file this process registered, then exits with
/// 128 + the signal number (130, 143). For programs built on this crate
/// that want an interrupted command to leave nothing behind, as the `muse`
/// CLI does; without it a default signal kills the process and recovery on
/// the next open removes its temp files once they are older than the grace
/// period.
pub fn remove_temp_files_on_signals() -> io::Result<()> {
    static INSTALLED: OnceLock<io::Result<()>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        std::thread::Builder::new()
            .name("muse-signals".to_owned())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    remove_all();
                    std::process::exit(128 + signal);
                }
            })?;
        Ok(())
    });
    match installed {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

/// Stops new registrations, waits (up to a second) for creations under way,
/// and removes every registered temp file.
#[expect(
    clippy::disallowed_methods,
    reason = "removing this process's own temp files on the way out, not repository state"
)]
fn remove_all() {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let mut guard = registry();
        let registry = guard.get_or_insert_with(Registry::default);
        registry.exiting = true;
        if registry.in_flight == 0 || Instant::now() >= deadline {
            for path in registry.paths.drain() {
                let _ = std::fs::remove_file(&path);
            }
            return;
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_are_tracked_until_forgotten() -> io::Result<()> {
        let path = Path::new("/nonexistent/.muse-tmp-registry-test");
        register(path)?;
        creation_done(path, true);
        assert!(registry().as_ref().is_some_and(|r| r.paths.contains(path)));
        forget(path);
        assert!(!registry().as_ref().is_some_and(|r| r.paths.contains(path)));
        register(path)?;
        creation_done(path, false);
        assert!(
            !registry().as_ref().is_some_and(|r| r.paths.contains(path)),
            "a failed creation leaves nothing to clean"
        );
        Ok(())
    }
}
