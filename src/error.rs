//! The crate's error type, and the one classification of errors into "the
//! caller's to fix" and "damage or an I/O failure".
//!
//! Every I/O variant names what was being done and to which path; a bare
//! "No such file or directory" is a bug. Hash mismatches are their own
//! variants and their messages always contain `integrity check`. The
//! classification ([`Error::is_user_error`]) is one exhaustive `match`: a new
//! variant does not compile until someone decides which side it is on.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::durable::{LockError, WriteError};
use crate::id::{InvalidId, ObjectId};

/// What a ref must hold for a compare-and-swap to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Anything (an unconditional update).
    Any,
    /// Nothing: the branch is absent or unborn.
    Absent,
    /// Exactly this commit.
    Value(ObjectId),
}

impl Expected {
    /// Whether a ref holding `actual` (`None`: absent or unborn) satisfies
    /// this expectation.
    #[must_use]
    pub fn matches(self, actual: Option<ObjectId>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => actual.is_none(),
            Expected::Value(id) => actual == Some(id),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Any => f.write_str("any value"),
            Expected::Absent => f.write_str("absent"),
            Expected::Value(id) => write!(f, "{id}"),
        }
    }
}

/// Why a manifest path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRefusal {
    /// The path, as the manifest holds it.
    pub path: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

impl std::fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "path {:?} is refused: {}", self.path, self.reason)
    }
}

impl std::error::Error for PathRefusal {}

/// A name supplied from outside (a branch, remote, session id, config key)
/// that breaks its rules; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{name}': {reason}")]
pub struct InvalidName {
    /// What kind of name it is (`branch name`, `remote name`, ...).
    pub what: &'static str,
    /// The refused name, control characters escaped, at most 300 characters.
    pub name: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

impl InvalidName {
    /// A refusal of `name` as a `what` for `reason`.
    #[must_use]
    pub fn new(what: &'static str, name: &str, reason: &'static str) -> Self {
        Self {
            what,
            name: name.escape_debug().take(300).collect(),
            reason,
        }
    }
}

/// The details of a stored object whose bytes no longer hash to its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCorruption {
    /// The object's id (what its bytes should hash to).
    pub id: ObjectId,
    /// Where it is stored.
    pub path: PathBuf,
    /// What its bytes hash to.
    pub actual: ObjectId,
}

/// The details of a commit or snapshot record whose id does not recompute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCorruption {
    /// The record file.
    pub path: PathBuf,
    /// `"commit"` or `"snapshot"`.
    pub kind: &'static str,
    /// What does not match.
    pub reason: &'static str,
    /// The id the record should have.
    pub expected: ObjectId,
    /// The id it has.
    pub actual: ObjectId,
}

/// The details of a compare-and-swap that found another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasConflict {
    /// The branch.
    pub branch: String,
    /// What the caller expected.
    pub expected: Expected,
    /// What the branch holds (`None` when absent or unborn).
    pub actual: Option<ObjectId>,
}

/// What is wrong with a received bundle (see [`Error::BadBundle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleProblem {
    /// The bytes are not msgpack (or end inside a value).
    NotMsgpack,
    /// The top-level value is not a map.
    NotAMap,
    /// Msgpack, but not shaped like a `PackBundle` (a wrong type, a missing
    /// or repeated field, bytes after the bundle).
    Shape,
    /// An id that is not 64 lowercase hex characters.
    InvalidId,
    /// An object whose bytes, or a record whose fields, hash to another id
    /// than the one it declares.
    Integrity,
    /// A manifest path the path policy refuses.
    RefusedPath,
    /// Something a commit or snapshot names is neither in the bundle nor in
    /// the receiving store.
    Missing,
}

impl BundleProblem {
    /// A short name for reports and tests.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BundleProblem::NotMsgpack => "not msgpack",
            BundleProblem::NotAMap => "not a map",
            BundleProblem::Shape => "not a bundle",
            BundleProblem::InvalidId => "invalid id",
            BundleProblem::Integrity => "integrity",
            BundleProblem::RefusedPath => "refused path",
            BundleProblem::Missing => "missing",
        }
    }
}

/// A bundle refused: what kind of problem, and the detail naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRefusal {
    /// What kind of problem.
    pub problem: BundleProblem,
    /// What exactly, naming the entry, id, path or byte offset.
    pub detail: String,
}

/// Why a push was refused by the receiving side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRefusal {
    /// The remote branch.
    pub branch: String,
    /// Why.
    pub reason: String,
}

/// Errors from the store, the repository and its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A read, listing or other non-durable system call failed.
    #[error("could not {action} '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To which path.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A durable write failed (the error names the path and the step).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Stored bytes no longer hash to the id they are stored under.
    #[error(
        "integrity check failed for object {} at '{}': found bytes hashing to {}",
        .0.id, .0.path.display(), .0.actual
    )]
    Integrity(Box<ObjectCorruption>),
    /// Bytes offered under an id they do not hash to; nothing was written.
    #[error("integrity check refused the write: bytes for {expected} hash to {actual}")]
    IdMismatch {
        /// The id the caller claimed.
        expected: ObjectId,
        /// What the bytes hash to.
        actual: ObjectId,
    },
    /// A commit or snapshot record whose stored id is not the id of its
    /// content: its fields were changed after it was written, or it sits
    /// under another id's file name.
    #[error(
        "integrity check failed for {} record '{}': the record is corrupt ({}): expected id {}, found {}",
        .0.kind, .0.path.display(), .0.reason, .0.expected, .0.actual
    )]
    RecordIntegrity(Box<RecordCorruption>),
    /// A repository file exists but its content is not what the format says.
    #[error("'{path}' is malformed: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A commit or snapshot that a stored record or a ref names is not
    /// stored: the repository is damaged (unlike [`Error::RecordNotFound`],
    /// which answers a caller who asked for an id that is not there).
    #[error(
        "{kind} {id} is missing although {named_by} names it: the repository is damaged (run `muse fsck`)"
    )]
    MissingRecord {
        /// `"commit"` or `"snapshot"`.
        kind: &'static str,
        /// The missing id.
        id: ObjectId,
        /// What names it (`commit <id>`, `branch main`).
        named_by: String,
    },
    /// No object with this id is stored.
    #[error("object {id} not found")]
    NotFound {
        /// The id looked up.
        id: ObjectId,
    },
    /// No commit or snapshot record with this id is stored.
    #[error("{kind} {id} not found")]
    RecordNotFound {
        /// `"commit"` or `"snapshot"`.
        kind: &'static str,
        /// The id looked up.
        id: ObjectId,
    },
    /// Text that should have been an id is not one.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// A name that breaks its rules (branch, remote, session id, ...).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A manifest path the caller supplied breaks the path policy
    /// (`name::check_manifest`); nothing was written.
    #[error("refusing the snapshot: {0}")]
    RefusedPath(#[from] PathRefusal),
    /// A file or directory supplied by the caller cannot be used.
    #[error("cannot use '{path}': {reason}")]
    Input {
        /// The path the caller gave.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A source file changed while it was being copied into the store.
    #[error("'{path}' changed while it was being stored; nothing was stored, try again")]
    SourceChanged {
        /// The source file.
        path: PathBuf,
    },
    /// A path in the working tree goes through a symlink, which restore
    /// never follows.
    #[error("refusing to write through symlink '{path}'")]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// No `.muse/` directory was found (`open`: in the directory given;
    /// `discover`: there or in any parent).
    #[error("not a muse repository: no .muse/ in '{path}' (or, when searching, any parent)")]
    NotARepository {
        /// Where the search started.
        path: PathBuf,
    },
    /// `init` on a directory that already holds a repository.
    #[error("'{path}' is already a muse repository; refusing to re-initialise it")]
    AlreadyInitialized {
        /// The existing `.muse/` directory.
        path: PathBuf,
    },
    /// A compare-and-swap found a different value; nothing was changed.
    #[error(
        "cas_mismatch: branch '{}' was expected to be {} but is {}",
        .0.branch, .0.expected,
        .0.actual.map_or_else(|| "absent".to_owned(), |id| id.to_string())
    )]
    CasMismatch(Box<CasConflict>),
    /// A lock is held by a live process, or by one that cannot be proven dead.
    #[error(
        "'{path}' is locked by {holder}; if no muse process is using this repository, remove '{path}' and retry"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// A revision (`HEAD`, a branch, an id or prefix, with `~N` / `^N`) that
    /// names nothing here.
    #[error("unknown revision '{rev}': {reason}")]
    UnknownRevision {
        /// The revision as given.
        rev: String,
        /// Why nothing matches.
        reason: String,
    },
    /// An id prefix that matches more than one commit.
    #[error("revision '{rev}' is ambiguous: it matches {} commits", candidates.len())]
    AmbiguousRevision {
        /// The revision as given.
        rev: String,
        /// Every commit it matches, sorted.
        candidates: Vec<ObjectId>,
    },
    /// Text that is not revision syntax at all (`HEAD~x`, an empty string).
    #[error("malformed revision '{rev}': {reason}")]
    MalformedRevision {
        /// The revision as given.
        rev: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A branch with no commit where one is needed.
    #[error("branch '{branch}' has no commits yet")]
    UnbornBranch {
        /// The branch.
        branch: String,
    },
    /// A commit that would record exactly the tree its parent records.
    #[error("nothing to commit: the tree matches the parent commit")]
    NothingToCommit,
    /// A commit message that is empty or only whitespace.
    #[error("a commit needs a non-empty message")]
    EmptyMessage,
    /// An operation on the working tree would overwrite or remove changes
    /// that are not committed.
    #[error(
        "{operation} would overwrite uncommitted changes in: {} (commit them, or force it: --force)",
        paths.join(", ")
    )]
    DirtyWorkTree {
        /// What was attempted (`checkout of main`).
        operation: String,
        /// The paths with uncommitted changes, sorted.
        paths: Vec<String>,
    },
    /// An operation that needs HEAD on a branch found it detached.
    #[error("HEAD is detached at {at}; create a branch there first")]
    DetachedHead {
        /// The commit HEAD names.
        at: ObjectId,
    },
    /// A merge is in progress (`MERGE_STATE.json`) and the operation would
    /// lose it.
    #[error("a merge is in progress (MERGE_STATE.json): commit it first, or force it: --force")]
    MergeInProgress,
    /// Creating a branch that exists.
    #[error("branch '{branch}' already exists")]
    BranchExists {
        /// The branch.
        branch: String,
    },
    /// A branch name that cannot coexist with another as a path: `feat`
    /// when `feat/a` exists, or `feat/a` when `feat` exists.
    #[error(
        "cannot create branch '{branch}': it clashes with branch '{existing}' (one would be a directory of the other)"
    )]
    BranchNameClash {
        /// The branch that was to be created.
        branch: String,
        /// The existing branch it clashes with.
        existing: String,
    },
    /// Deleting the branch HEAD is on.
    #[error("cannot delete branch '{branch}': HEAD is on it")]
    BranchCheckedOut {
        /// The branch.
        branch: String,
    },
    /// A branch that does not exist.
    #[error("branch '{branch}' not found")]
    NoSuchBranch {
        /// The branch.
        branch: String,
    },
    /// One transaction names a branch twice.
    #[error("branch '{branch}' appears more than once in one transaction")]
    DuplicateRef {
        /// The branch.
        branch: String,
    },
    /// A remote with this name is already configured.
    #[error("remote '{name}' already exists")]
    RemoteExists {
        /// The remote's name.
        name: String,
    },
    /// No remote with this name is configured.
    #[error("no such remote '{name}'")]
    NoSuchRemote {
        /// The remote's name.
        name: String,
    },
    /// A received bundle failed a check; nothing from it was stored and no
    /// ref moved.
    #[error("bad bundle ({}): {}", .0.problem.name(), .0.detail)]
    BadBundle(Box<BundleRefusal>),
    /// A push the receiving repository refused; nothing moved there.
    #[error("push rejected: branch '{}': {}", .0.branch, .0.reason)]
    PushRejected(Box<PushRefusal>),
    /// A remote URL or path that names no repository this transport can
    /// reach.
    #[error("cannot use remote '{url}': {reason}")]
    BadRemote {
        /// The URL or path as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// gc found damage or an unreadable root and removed nothing: it could
    /// not know what the damaged part reaches.
    #[error("gc refused to remove anything: {reason} (run `muse fsck` for the full report)")]
    GcRefused {
        /// The first problem found.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Corrupt`].
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Integrity`] for object `id` at `path` whose bytes hash to
    /// `actual`.
    pub(crate) fn integrity(id: ObjectId, path: PathBuf, actual: ObjectId) -> Self {
        Error::Integrity(Box::new(ObjectCorruption { id, path, actual }))
    }

    /// An [`Error::BadBundle`].
    pub(crate) fn bundle(problem: BundleProblem, detail: impl Into<String>) -> Self {
        Error::BadBundle(Box::new(BundleRefusal {
            problem,
            detail: detail.into(),
        }))
    }

    /// An [`Error::CasMismatch`].
    pub(crate) fn cas(
        branch: impl Into<String>,
        expected: Expected,
        actual: Option<ObjectId>,
    ) -> Self {
        Error::CasMismatch(Box::new(CasConflict {
            branch: branch.into(),
            expected,
            actual,
        }))
    }

    /// Whether the error is the system refusing a change: no permission
    /// (`EACCES`, `EPERM`) or a read-only filesystem (`EROFS`). Recovery on
    /// open skips what it meets such an error on, rather than failing a
    /// read of a repository this user may not write.
    #[must_use]
    pub fn is_permission_refusal(&self) -> bool {
        let (Error::Io { source, .. }
        | Error::Write(
            WriteError::Failed { source, .. } | WriteError::NotDurable { source, .. },
        )) = self
        else {
            return false;
        };
        source.kind() == std::io::ErrorKind::PermissionDenied
            || matches!(
                source.raw_os_error(),
                Some(libc::EROFS | libc::EPERM | libc::EACCES)
            )
    }

    /// Whether the error is the caller's to fix (bad input, an unknown name,
    /// a missing object, a state the repository is in) rather than damage or
    /// an I/O failure. The CLI maps this to exit code 1 versus 3.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        // Exhaustive on purpose: no wildcard arm.
        match self {
            Error::Io { .. }
            | Error::Write(_)
            | Error::Integrity(_)
            | Error::RecordIntegrity(_)
            | Error::Corrupt { .. }
            | Error::MissingRecord { .. }
            | Error::GcRefused { .. } => false,
            Error::IdMismatch { .. }
            | Error::NotFound { .. }
            | Error::RecordNotFound { .. }
            | Error::InvalidId(_)
            | Error::InvalidName(_)
            | Error::Input { .. }
            | Error::RefusedPath(_)
            | Error::SourceChanged { .. }
            | Error::Symlink { .. }
            | Error::NotARepository { .. }
            | Error::AlreadyInitialized { .. }
            | Error::CasMismatch(_)
            | Error::Locked { .. }
            | Error::UnknownRevision { .. }
            | Error::AmbiguousRevision { .. }
            | Error::MalformedRevision { .. }
            | Error::UnbornBranch { .. }
            | Error::NothingToCommit
            | Error::EmptyMessage
            | Error::DirtyWorkTree { .. }
            | Error::DetachedHead { .. }
            | Error::MergeInProgress
            | Error::BranchExists { .. }
            | Error::BranchNameClash { .. }
            | Error::BranchCheckedOut { .. }
            | Error::NoSuchBranch { .. }
            | Error::DuplicateRef { .. }
            | Error::RemoteExists { .. }
            | Error::NoSuchRemote { .. }
            | Error::BadBundle(_)
            | Error::PushRejected(_)
            | Error::BadRemote { .. } => true,
        }
    }
}

impl From<LockError> for Error {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Held { path, holder } => Error::Locked { path, holder },
            LockError::Io {
                action,
                path,
                source,
            } => Error::Io {
                action,
                path,
                source,
            },
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        // Results travel through every call; keep the error no bigger than
        // an I/O error with its path and action (large details are boxed).
        assert!(
            std::mem::size_of::<Error>() <= 72,
            "Error is {} bytes",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn integrity_messages_say_integrity_check() {
        let id = ObjectId::hash(b"x");
        let e = Error::integrity(id, PathBuf::from("/o"), ObjectId::EMPTY);
        assert!(e.to_string().contains("integrity check"), "{e}");
        assert!(!e.is_user_error());
        let cas = Error::cas("main", Expected::Value(id), None);
        assert!(cas.to_string().contains("cas_mismatch"), "{cas}");
        assert!(cas.is_user_error());
    }
}
