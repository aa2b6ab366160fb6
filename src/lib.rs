//! A crash-safe, read-verified, content-addressed object store for version
//! control, in the on-disk format of the Muse version-control system.
//!
//! - Objects live at `.muse/objects/<2 hex>/<62 hex>`, named by the SHA-256 of
//!   their bytes; every read checks the bytes against the id first. Commit
//!   and snapshot records are re-hashed on read too: every field the id
//!   covers (a commit's parents, snapshot, message and time; a snapshot's
//!   manifest) is checked. Other commit fields (author, branch, metadata)
//!   are carried along unhashed, as in the format.
//! - Every file the repository persists goes through one [`DurableWriter`]:
//!   temp file in the target's directory, write, fsync, rename, fsync the
//!   directory.
//! - Refs move by compare-and-swap under a lock; multi-ref [`Transaction`]s
//!   are journaled and finished on the next open after a crash.
//!
//! ```
//! # fn main() -> muse_store::Result<()> {
//! use muse_store::{Durability, NewCommit, Options, Repository};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let options = Options { durability: Durability::None, ..Options::default() };
//! let repo = Repository::init_with(dir.path(), options)?;
//! let (id, stored) = repo.objects().write(b"hello world\n")?;
//! assert!(stored);
//! assert_eq!(repo.objects().read(&id)?, b"hello world\n");
//!
//! let made = repo.commit_files([("hello.txt", "hello world\n")], &NewCommit::new("hello"))?;
//! assert_eq!(repo.resolve("HEAD")?, made.commit.commit_id);
//! # Ok(())
//! # }
//! ```
//!
//! # Threads, processes and blocking
//!
//! [`Repository`] and the stores it hands out are `Send + Sync` and cheap to
//! clone. That is a statement about this process's memory; across processes
//! the guarantees are the repository's own: ref updates are compare-and-swap
//! under lock files, so concurrent writers (threads or processes) never lose
//! an update, and a crash at any instant leaves old or new content, never a
//! mix (docs/durability.md states what each operation promises).
//!
//! Every call blocks the calling thread until its I/O is done. Work that
//! fans out over many files (hashing a working tree, verifying objects,
//! checkout, fsck) runs on rayon's global thread pool; configure that pool
//! (`rayon::ThreadPoolBuilder::build_global`) before the first call to bound
//! it.
//!
//! # Platforms
//!
//! Linux only. The writer relies on `syncfs(2)` for batch barriers,
//! `renameat2(RENAME_NOREPLACE)` for lock files, fsync of directories, and
//! `O_NOFOLLOW`; on other Unix systems those calls do not exist or mean less
//! (macOS `fsync` does not reach the disk), and nothing here is built or
//! tested for Windows.
//!
//! # Cargo features
//!
//! - `cli` (default): the `muse` binary (clap, indicatif). The library
//!   builds without it: `cargo build --lib --no-default-features`.
//! - `testing`: the simulated and fault-injecting filesystems in
//!   [`testing`], for crash tests of code built on this crate.
//! - `failpoints`: environment-driven crash points and barriers for this
//!   crate's own crash and race tests. A default build contains none.

#![deny(missing_docs)]

mod clock;
mod durable;
mod error;
mod failpoint;
mod files;
mod history;
mod id;
mod layout;
mod maint;
mod name;
mod porcelain;
mod progress;
mod record;
mod refs;
mod repo;
mod revision;
mod state;
mod store;
mod sys;
mod transport;
mod worktree;

#[cfg(test)]
mod testutil;

#[cfg(feature = "testing")]
pub mod testing;

pub use clock::Timestamp;
pub use durable::{
    DEFAULT_LOCK_TIMEOUT, Durability, DurableWriter, FileLock, LockError, LockOwner, RealFs,
    RemovedFiles, Staged, TempKind, Vfs, VfsFile, WriteBatch, WriteError, WriteStep, is_temp_name,
    remove_temp_files_on_signals,
};
pub use error::{
    BundleProblem, BundleRefusal, CasConflict, Error, Expected, InvalidName, ObjectCorruption,
    PushRefusal, RecordCorruption, Result,
};
pub use history::{
    GraphWalk, ManifestDiff, RevName, ancestors, commit_graph, merge_base, name_revs, walk,
};
pub use id::{Hasher, InvalidId, ObjectId};
pub use layout::{Layout, MUSE_DIR};
pub use maint::{
    Counts, DEFAULT_PRUNE_AGE, FsckReport, GcOptions, GcReport, Problem, ProblemKind, Removed,
    Severity, fsck, gc, parse_prune_age,
};
pub use name::{
    BranchName, Glob, MAX_COMPONENT_BYTES, MAX_PATH_BYTES, PathRefusal, SessionId, case_collision,
    check_manifest, check_path, fnmatch, names_metadata, python_repr, validate_remote_name,
};
pub use porcelain::{
    CheckoutOutcome, Status, Upstream, checkout, commit_worktree, resume_checkout, worktree_status,
};
pub use progress::{NoProgress, Progress};
pub use record::{
    CommitRecord, JsonStyle, RecordStore, SnapshotRecord, commit_id, python_json, snapshot_id,
};
pub use refs::{
    Head, RefChange, RefState, RefStore, Reflog, ReflogEntry, RemoteRef, TagRecord, TagStore,
    Transaction,
};
pub use repo::{
    CommitOutcome, Config, DEFAULT_TEMP_GRACE, DomainInfo, NewCommit, Options, REGISTERED_DOMAINS,
    RecoveryReport, Remote, RepoInfo, Repository, WriteGuard,
};
pub use revision::{MIN_PREFIX, Resolved, RevisionBase, RevisionSyntax};
pub use state::{
    CheckoutJournal, Checkpoint, Intent, MergeState, OpEntry, OpLog, RebaseState, Reservation,
};
pub use store::{ObjectIter, ObjectStore, STREAM_BUFFER, VerifiedReader, hash_file};
pub use transport::{
    FetchOptions, Fetched, LocalTransport, PackCounts, PushOptions, PushUpdate, RECORD_LIMIT,
    Transport, Unpacked, VerifyReport, clone, clone_with, commits_to_send, fetch, fetch_from,
    fetch_with, open_configured, pack, push, remote_path, unpack, verify,
};
pub use worktree::{
    AttributeRule, Attributes, BUILTIN_PATTERNS, BUILTIN_SKIPPED_DIRS, Exclusions, IgnoreMatch,
    IgnoreRules, IgnoreWarning, MUSEATTRIBUTES, MUSEIGNORE, PathVerdict, STRATEGIES, explain_path,
    snapshot_worktree, worktree_manifest,
};
