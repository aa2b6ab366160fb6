//! What a root is: an id something under `.muse/` names, and where that
//! name came from (shared by `reach.rs`, which walks from roots, and
//! `foreign.rs`, which finds them in other tools' files).

use std::path::PathBuf;

use crate::id::ObjectId;

/// Where a root came from.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub(crate) id: ObjectId,
    /// `HEAD`, `refs/heads/main`, `logs/HEAD`, `MERGE_STATE.json`, ...
    pub(crate) source: String,
    pub(crate) path: PathBuf,
    /// A strong root must resolve (a branch, HEAD, a state file); a weak one
    /// (a reflog line, a journal, a checkpoint) may name something gone,
    /// which is a note rather than damage.
    pub(crate) strong: bool,
}

/// The roots of a repository, and what reading them found.
#[derive(Debug, Default)]
pub(crate) struct Roots {
    pub(crate) commits: Vec<Root>,
    pub(crate) snapshots: Vec<Root>,
    /// Objects named directly (the stash's manifests, ids in unknown files).
    pub(crate) objects: Vec<Root>,
    pub(crate) branches: usize,
    pub(crate) reflogs: usize,
    pub(crate) reflog_entries: usize,
}
