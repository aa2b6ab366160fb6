//! Progress reporting for long operations (fsck, commit, checkout, clone,
//! fetch, push).
//!
//! The library reports through this trait and draws nothing itself; the CLI
//! shows a bar on a terminal and nothing otherwise.

/// Receives fsck's progress (a terminal progress bar, or nothing). Called
/// from several threads.
pub trait Progress: Sync {
    /// A phase starts; `total` units of work are expected (0: unknown).
    fn start(&self, phase: &'static str, total: u64) {
        let _ = (phase, total);
    }
    /// `n` more units are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// `n` more bytes were moved in the current phase (transport: the
    /// units are objects, and the bytes are shown beside them).
    fn advance_bytes(&self, n: u64) {
        let _ = n;
    }
    /// Everything is done.
    fn finish(&self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
