//! A crash-safe, read-verified, content-addressed object store for version
//! control, in the on-disk format of the Muse version-control system.
//!
//! - Objects live at `.muse/objects/<2 hex>/<62 hex>`, named by the SHA-256 of
//!   their bytes; every read checks the bytes against the id first.
//! - Every file the repository persists goes through one
//!   [`DurableWriter`]: temp file in the target's directory, write, fsync,
//!   rename, fsync the directory.
//!
//! ```
//! # fn main() -> muse_store::Result<()> {
//! use muse_store::{Durability, Options, Repository};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let options = Options { durability: Durability::None, ..Options::default() };
//! let repo = Repository::init_with(dir.path(), options)?;
//! let (id, stored) = repo.objects().write(b"hello world\n")?;
//! assert!(stored);
//! assert_eq!(&*repo.objects().read(&id)?, b"hello world\n");
//! # Ok(())
//! # }
//! ```

pub mod cli;
mod clock;
pub mod durable;
mod error;
mod fsck;
mod gc;
pub mod history;
mod id;
mod layout;
pub mod porcelain;
mod progress;
mod reach;
mod record;
mod recovery;
pub mod refs;
mod repo;
mod state;
mod store;
mod testhook;
mod worktree;

pub use clock::Timestamp;
pub use durable::{Durability, DurableWriter, TempKind, WriteBatch, WriteError, WriteStep};
pub use error::{Error, Result};
pub use fsck::{Counts, FsckReport, Problem, ProblemKind, Severity, fsck};
pub use gc::{DEFAULT_PRUNE_AGE, GcOptions, GcReport, Removed, gc, parse_prune_age};
pub use id::{Hasher, InvalidId, ObjectId};
pub use layout::{Layout, MUSE_DIR, is_temp_name};
pub use progress::{NoProgress, Progress};
pub use record::{
    COMMIT_FORMAT_VERSION, CommitRecord, RecordStore, SnapshotRecord, commit_id, commit_to_json,
    read_commit_file, read_snapshot_file, snapshot_id, snapshot_to_json,
};
pub use recovery::{DEFAULT_TEMP_GRACE, RecoveryReport};
pub use refs::{BranchName, Expected, Head, RefState, RefStore, Transaction};
pub use repo::{Options, RepoInfo, Repository, SCHEMA_VERSION};
pub use state::{
    Checkpoint, Config, Intent, MergeState, OpEntry, OpLog, RebaseState, Remote, Reservation,
    SessionId, validate_remote_name,
};
pub use store::{ObjectBytes, ObjectIter, ObjectStore, STREAM_BUFFER, VerifiedReader};
pub use worktree::{
    IgnoreRules, MUSEIGNORE, SKIPPED_DIRS, SMALL_FILE, hash_tree, is_always_excluded, load_ignore,
    scan_tree, snapshot_tree, snapshot_tree_in, snapshot_tree_with, store_tree, worktree_manifest,
};
