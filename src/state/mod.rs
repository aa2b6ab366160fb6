//! The state files a version-control front end keeps beside the object store
//! (shared/FORMAT.md, "State files").
//!
//! Invariants:
//! - every file here is written through the repository's one
//!   [`DurableWriter`](crate::DurableWriter): whole-file replacements by temp
//!   file + fsync + rename + directory fsync, so a reader sees the old content
//!   or the new, never a mix, and a failed write leaves no temp file;
//!   `ops.jsonl` is the one append-only file and a torn last line is cut
//!   before the next append;
//! - a file that exists but does not parse is an [`Error::Corrupt`] that
//!   names it; an absent optional file reads as `None`;
//! - fields this implementation does not know are kept and written back
//!   (the `extra` maps), so a round trip never drops another tool's data;
//! - caller-supplied names that become paths (session ids, reservation and
//!   intent ids) are validated or typed before any path is built from them.

mod checkout;
mod coordination;
mod merge;
mod oplog;
mod rebase;

use std::path::Path;

use serde::Serialize;

pub use checkout::CheckoutJournal;
pub use coordination::{Intent, Reservation};
pub use merge::MergeState;
pub use oplog::{Checkpoint, OpEntry, OpLog};
pub use rebase::RebaseState;

use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};
pub(crate) use crate::files::read_json;

/// Writes `value` as 2-space-indented JSON without a trailing newline (what
/// Muse writes for its state files; readers accept either).
pub(crate) fn write_json<T: Serialize>(
    writer: &DurableWriter,
    path: &Path,
    value: &T,
) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::corrupt(path, format!("could not be serialised: {e}")))?;
    writer.write_file(path, TempKind::State, &json)?;
    Ok(())
}
