//! The report vocabulary of repository health, shared by `fsck` and `gc`:
//! what a problem is, how bad it is, and what kind.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;
use crate::id::ObjectId;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Lost or corrupted data.
    Damage,
    /// fsck could not read something.
    Io,
    /// Harmless: unreachable data, crash leftovers, a torn log tail.
    Note,
}

/// What kind of problem fsck found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// An object whose bytes do not hash to its id.
    CorruptObject,
    /// An object named by a snapshot that is not stored.
    MissingObject,
    /// A commit or snapshot record that does not parse or whose id does not
    /// match its fields or file name.
    CorruptRecord,
    /// A commit reached from a root that is not stored.
    MissingCommit,
    /// A snapshot named by a commit or checkpoint that is not stored.
    MissingSnapshot,
    /// HEAD or a branch file that does not parse.
    BadRef,
    /// A ref (HEAD, a branch, a state file) naming a commit that is missing.
    DanglingRef,
    /// A reflog line that does not parse.
    BadReflog,
    /// A reflog ending in a torn line (a crash mid-append; ignored by readers).
    TornReflog,
    /// A branch whose reflog's last line does not name its current value:
    /// it moved without a reflog line (another tool, or a crash between the
    /// ref write and the append whose record did not survive).
    ReflogGap,
    /// A state file (merge, rebase, coordination, op log, config, repo.json,
    /// transaction journal) that does not parse.
    BadStateFile,
    /// A temp file left behind (by a crash, or a writer still at work).
    OrphanTemp,
    /// A lock file whose owner is provably dead.
    StaleLock,
    /// HEAD names a branch that does not exist yet (an unborn branch: the
    /// next commit creates it). Not damage.
    UnbornBranch,
    /// A quarantine directory (`.muse/quarantine/<id>/`) left by an unpack
    /// that died: what it received was never published.
    LeftoverQuarantine,
    /// An object no root reaches.
    UnreachableObject,
    /// A commit record no root reaches.
    UnreachableCommit,
    /// A snapshot record no root reaches.
    UnreachableSnapshot,
    /// A file that has no business where it is.
    StrayFile,
    /// Something fsck could not read.
    IoError,
    /// A checkout stopped after it began changing the working tree and was
    /// not completed yet (`CHECKOUT_IN_PROGRESS.json`).
    InterruptedCheckout,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// What it is.
    pub kind: ProblemKind,
    /// The file concerned, when there is one.
    pub path: Option<PathBuf>,
    /// The id concerned, when there is one.
    pub id: Option<ObjectId>,
    /// What is wrong, naming the thing.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        severity: Severity,
        kind: ProblemKind,
        path: Option<PathBuf>,
        id: Option<ObjectId>,
        message: String,
    ) -> Self {
        Self {
            severity,
            kind,
            path,
            id,
            message,
        }
    }

    /// An error met while checking: an I/O error when it is one, damage of
    /// `kind` otherwise.
    pub(crate) fn from_error(kind: ProblemKind, err: &Error, path: PathBuf) -> Self {
        if matches!(err, Error::Io { .. }) {
            return Self::io(err, path);
        }
        Self::new(Severity::Damage, kind, Some(path), None, err.to_string())
    }

    /// An I/O error.
    pub(crate) fn io(err: &Error, path: PathBuf) -> Self {
        Self::new(
            Severity::Io,
            ProblemKind::IoError,
            Some(path),
            None,
            err.to_string(),
        )
    }
}
