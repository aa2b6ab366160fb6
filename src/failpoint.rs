//! Failpoints: hooks that let crash and race tests stop a real process at an
//! exact step of a protocol, which timing alone cannot do reliably.
//!
//! Compiled only with the `failpoints` cargo feature. Without it (every
//! default build) both functions are empty and inlined away: a default build
//! never reads `MUSE_CRASH_AT` or `MUSE_TEST_BARRIER`, so an embedder whose
//! environment happens to carry them is not affected.
//!
//! With the feature, each reads its environment variable once per process
//! and costs one comparison otherwise.

/// Aborts the process at a named point when `MUSE_CRASH_AT` names it.
#[cfg(feature = "failpoints")]
pub(crate) fn crash_point(name: &str) {
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    if TARGET
        .get_or_init(|| std::env::var("MUSE_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        std::process::abort();
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// When `MUSE_TEST_BARRIER=<name>:<dir>:<count>` names this point, records
/// this process in `<dir>` and waits (up to 30 s) until `<count>` processes
/// have arrived, so that they all pass the point together.
#[cfg(feature = "failpoints")]
#[expect(
    clippy::disallowed_methods,
    reason = "the marker lives in the test's own directory, not in a repository"
)]
pub(crate) fn barrier(name: &str) {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};
    static SPEC: OnceLock<Option<(String, PathBuf, usize)>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        let text = std::env::var("MUSE_TEST_BARRIER").ok()?;
        let mut parts = text.splitn(3, ':');
        let point = parts.next()?.to_owned();
        let dir = PathBuf::from(parts.next()?);
        let count = parts.next()?.parse().ok()?;
        Some((point, dir, count))
    });
    let Some((point, dir, count)) = spec else {
        return;
    };
    if point != name {
        return;
    }
    let marker = dir.join(std::process::id().to_string());
    if std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&marker)
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let arrived = std::fs::read_dir(dir.as_path()).map_or(0, Iterator::count);
        if arrived >= *count {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn barrier(_name: &str) {}
