//! The crate's error type.
//!
//! Every I/O variant names what was being done and to which path; a bare
//! "No such file or directory" is a bug. Hash mismatches are their own
//! variant and their message always contains `integrity check`.

use std::io;
use std::path::PathBuf;

use crate::durable::WriteError;
use crate::id::{InvalidId, ObjectId};

/// Errors from the store, the repository and its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A read or directory listing inside the repository failed.
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
        "integrity check failed for object {id} at '{path}': expected {expected}, found bytes hashing to {actual}"
    )]
    Integrity {
        /// The object's id.
        id: ObjectId,
        /// Where it is stored.
        path: PathBuf,
        /// The id the bytes should hash to.
        expected: ObjectId,
        /// What they hash to.
        actual: ObjectId,
    },
    /// Bytes offered under an id they do not hash to; nothing was written.
    #[error("integrity check refused the write: bytes for {expected} hash to {actual}")]
    IdMismatch {
        /// The id the caller claimed.
        expected: ObjectId,
        /// What the bytes hash to.
        actual: ObjectId,
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
    /// No `.muse/` directory was found.
    #[error("not a muse repository (or any parent up to the root): '{path}'")]
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
    /// A path in the working tree goes through a symlink, which restore
    /// never follows.
    #[error("refusing to write through symlink '{path}'")]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// A branch name that breaks the naming rules.
    #[error(transparent)]
    InvalidBranchName(#[from] crate::refs::InvalidName),
    /// A compare-and-swap found a different value; nothing was changed.
    #[error("cas_mismatch: branch '{branch}' was expected to be {expected} but is {}", actual.map_or_else(|| "absent".to_owned(), |id| id.to_string()))]
    CasMismatch {
        /// The branch.
        branch: String,
        /// What the caller expected (an id, `absent` or `any`).
        expected: String,
        /// What it holds (`None` when absent or unborn).
        actual: Option<ObjectId>,
    },
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
    /// A name that is not a branch, HEAD or a known id.
    #[error("unknown ref '{name}'")]
    UnknownRef {
        /// The name given.
        name: String,
    },
    /// A request that contradicts itself or the repository's state.
    #[error("{0}")]
    Invalid(String),
    /// A commit or snapshot record whose stored id is not the id of its
    /// content: its fields were changed after it was written, or it sits
    /// under another id's file name.
    #[error(
        "integrity check failed for {kind} record '{path}': the record is corrupt ({reason}): expected id {expected}, found {actual}"
    )]
    RecordIntegrity {
        /// The record file.
        path: PathBuf,
        /// `"commit"` or `"snapshot"`.
        kind: &'static str,
        /// What does not match.
        reason: &'static str,
        /// The id the record should have.
        expected: ObjectId,
        /// The id it has.
        actual: ObjectId,
    },
    /// A repository file exists but its content is not what the format says.
    #[error("'{path}' is malformed: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A name supplied by the caller (remote, session id, config key) is not
    /// acceptable; nothing was changed.
    #[error("invalid {what} '{name}': {reason}")]
    InvalidName {
        /// What kind of name it is (`remote name`, `session id`, ...).
        what: &'static str,
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: String,
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

    /// Whether the error is the caller's to fix (bad input, unknown name,
    /// missing object) rather than damage or an I/O failure. The CLI maps
    /// this to exit code 1 versus 3.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::IdMismatch { .. }
                | Error::NotFound { .. }
                | Error::RecordNotFound { .. }
                | Error::InvalidId(_)
                | Error::Input { .. }
                | Error::SourceChanged { .. }
                | Error::NotARepository { .. }
                | Error::AlreadyInitialized { .. }
                | Error::Symlink { .. }
                | Error::InvalidBranchName(_)
                | Error::InvalidName { .. }
                | Error::CasMismatch { .. }
                | Error::Locked { .. }
                | Error::UnknownRef { .. }
                | Error::Invalid(_)
                | Error::RemoteExists { .. }
                | Error::NoSuchRemote { .. }
        )
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
