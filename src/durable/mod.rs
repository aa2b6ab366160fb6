//! Durable writes: the filesystem seam, the one writer that goes through it,
//! write batches, lock files and temp-file naming.
//!
//! Nothing else in the crate creates, replaces, renames or removes a
//! repository file (clippy.toml's `disallowed-methods` enforces it).

mod batch;
mod cleanup;
mod lock;
mod remove;
mod temp;
mod vfs;
mod writer;

#[cfg(any(test, feature = "testing"))]
pub(crate) mod fault;
#[cfg(feature = "testing")]
pub(crate) mod sim;

pub use batch::WriteBatch;
pub use cleanup::remove_temp_files_on_signals;
pub(crate) use lock::write_unsynced;
pub use lock::{DEFAULT_LOCK_TIMEOUT, FileLock, LockError, LockOwner, host_name};
pub use remove::RemovedFiles;
pub use temp::{RESTORE_TMP_PREFIX, TempKind, is_temp_name};
pub use vfs::{RealFs, Vfs, VfsFile};
pub(crate) use writer::symlink_inside_metadata;
pub(crate) use writer::torn_tail_start;
pub use writer::{Durability, DurableWriter, METADATA_DIR, Staged, WriteError, WriteStep};

#[cfg(test)]
pub(crate) use fault::{FaultFs, OpKind};
