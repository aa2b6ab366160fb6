//! Every path of the on-disk layout (shared/FORMAT.md), built in one place.
//!
//! Invariant: an id becomes a path only in [`Layout::object_path`],
//! [`Layout::commit_path`] and [`Layout::snapshot_path`], and only from a parsed
//! [`ObjectId`], so no text from outside can steer a path out of `.muse/`.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::id::ObjectId;
use crate::name::{BranchName, SessionId};

/// The name of the directory that holds a repository inside its working tree.
pub const MUSE_DIR: &str = crate::durable::METADATA_DIR;

/// The paths of one repository.
#[derive(Debug, Clone)]
pub struct Layout {
    work_tree: PathBuf,
    muse: PathBuf,
}

impl Layout {
    /// The layout of the repository whose working tree is `work_tree`.
    #[must_use]
    pub fn new(work_tree: impl Into<PathBuf>) -> Self {
        let work_tree = work_tree.into();
        let muse = work_tree.join(MUSE_DIR);
        Self { work_tree, muse }
    }

    /// The working tree (the directory that holds `.muse/`).
    #[must_use]
    pub fn work_tree(&self) -> &Path {
        &self.work_tree
    }

    /// `.muse/`.
    #[must_use]
    pub fn muse_dir(&self) -> &Path {
        &self.muse
    }

    /// `.muse/repo.json`.
    #[must_use]
    pub fn repo_json(&self) -> PathBuf {
        self.muse.join("repo.json")
    }

    /// `.muse/config.toml`.
    #[must_use]
    pub fn config(&self) -> PathBuf {
        self.muse.join("config.toml")
    }

    /// `.muse/HEAD`.
    #[must_use]
    pub fn head(&self) -> PathBuf {
        self.muse.join("HEAD")
    }

    /// `.muse/refs/heads/`.
    #[must_use]
    pub fn heads_dir(&self) -> PathBuf {
        self.muse.join("refs").join("heads")
    }

    /// `.muse/refs/heads/<branch>`.
    #[must_use]
    pub fn branch_path(&self, branch: &BranchName) -> PathBuf {
        self.heads_dir().join(branch.as_str())
    }

    /// `.muse/logs/HEAD`.
    #[must_use]
    pub fn head_log(&self) -> PathBuf {
        self.logs_dir().join("HEAD")
    }

    /// `.muse/logs/refs/heads/`.
    #[must_use]
    pub fn branch_logs_dir(&self) -> PathBuf {
        self.logs_dir().join("refs").join("heads")
    }

    /// `.muse/logs/refs/heads/<branch>`.
    #[must_use]
    pub fn branch_log(&self, branch: &BranchName) -> PathBuf {
        self.branch_logs_dir().join(branch.as_str())
    }

    /// `.muse/ref-transactions/` (extension): journals of multi-ref
    /// transactions, present only while one is being applied.
    #[must_use]
    pub fn transactions_dir(&self) -> PathBuf {
        self.muse.join("ref-transactions")
    }

    /// `.muse/objects/`.
    #[must_use]
    pub fn objects_dir(&self) -> PathBuf {
        self.muse.join("objects")
    }

    /// `.muse/objects/<id[0..2]>/<id[2..]>`: the one function that turns an
    /// object id into a path.
    #[must_use]
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.to_hex();
        let mut path = self.objects_dir();
        path.push(&hex[..2]);
        path.push(&hex[2..]);
        path
    }

    /// `.muse/commits/`.
    #[must_use]
    pub fn commits_dir(&self) -> PathBuf {
        self.muse.join("commits")
    }

    /// `.muse/commits/<id>.json`.
    #[must_use]
    pub fn commit_path(&self, id: &ObjectId) -> PathBuf {
        self.commits_dir().join(format!("{id}.json"))
    }

    /// `.muse/snapshots/`.
    #[must_use]
    pub fn snapshots_dir(&self) -> PathBuf {
        self.muse.join("snapshots")
    }

    /// `.muse/snapshots/<id>.json`.
    #[must_use]
    pub fn snapshot_path(&self, id: &ObjectId) -> PathBuf {
        self.snapshots_dir().join(format!("{id}.json"))
    }

    /// `.muse/logs/`.
    #[must_use]
    pub fn logs_dir(&self) -> PathBuf {
        self.muse.join("logs")
    }

    /// `.muse/MERGE_STATE.json`.
    #[must_use]
    pub fn merge_state(&self) -> PathBuf {
        self.muse.join("MERGE_STATE.json")
    }

    /// `.muse/CHECKOUT_IN_PROGRESS.json`: present only while a checkout is
    /// changing the working tree (this project's own file).
    #[must_use]
    pub fn checkout_journal(&self) -> PathBuf {
        self.muse.join("CHECKOUT_IN_PROGRESS.json")
    }

    /// `.muse/REBASE_STATE.json`.
    #[must_use]
    pub fn rebase_state(&self) -> PathBuf {
        self.muse.join("REBASE_STATE.json")
    }

    /// `.muse/tags/` (the reference's tag records).
    #[must_use]
    pub fn tags_root(&self) -> PathBuf {
        self.muse.join("tags")
    }

    /// `.muse/tags/<repo_id>/`. `repo_id` must be one safe path component
    /// (the tag store checks it before calling this).
    #[must_use]
    pub fn tags_dir(&self, repo_id: &str) -> PathBuf {
        self.tags_root().join(repo_id)
    }

    /// `.muse/tags/<repo_id>/<tag_id>.json`. Both must be safe components
    /// (checked by the tag store).
    #[must_use]
    pub fn tag_path(&self, repo_id: &str, tag_id: &str) -> PathBuf {
        self.tags_dir(repo_id).join(format!("{tag_id}.json"))
    }

    /// `.muse/remotes/` (remote-tracking pointers).
    #[must_use]
    pub fn remotes_dir(&self) -> PathBuf {
        self.muse.join("remotes")
    }

    /// `.muse/remotes/<remote>/<branch>`: the last known tip of `branch` on
    /// `remote`. `remote` must be one safe path component (checked by the
    /// ref store).
    #[must_use]
    pub fn remote_ref(&self, remote: &str, branch: &BranchName) -> PathBuf {
        self.remotes_dir().join(remote).join(branch.as_str())
    }

    /// `.muse/stash.json` (the reference's stash).
    #[must_use]
    pub fn stash(&self) -> PathBuf {
        self.muse.join("stash.json")
    }

    /// `.muse/stat_cache.json` (the reference's hash cache; never a root).
    #[must_use]
    pub fn reference_stat_cache(&self) -> PathBuf {
        self.muse.join("stat_cache.json")
    }

    /// `.muse/coordination/`.
    #[must_use]
    pub fn coordination_dir(&self) -> PathBuf {
        self.muse.join("coordination")
    }

    /// `.muse/op_log/`.
    #[must_use]
    pub fn op_log_dir(&self) -> PathBuf {
        self.muse.join("op_log")
    }

    /// `.muse/stat-cache` (extension): the working tree's stat cache (the
    /// reference implementation's `stat_cache.json` is a different file).
    #[must_use]
    pub fn muse_stat_cache(&self) -> PathBuf {
        self.muse.join("stat-cache")
    }

    /// `.muse/locks/` (extension): every lock file, outside the branch
    /// namespace (a branch may be named `x.lock`).
    #[must_use]
    pub fn locks_dir(&self) -> PathBuf {
        self.muse.join("locks")
    }

    /// The lock of branch `branch`: `.muse/locks/ref-<40 hex>.lock`, named
    /// by a hash of `refs/heads/<branch>` so that every branch, however
    /// nested (`a` and `a.lock/b`), has its own flat lock file.
    #[must_use]
    pub fn ref_lock(&self, branch: &BranchName) -> PathBuf {
        let digest = ObjectId::hash(format!("refs/heads/{branch}").as_bytes()).to_hex();
        self.locks_dir().join(format!("ref-{}.lock", &digest[..40]))
    }

    /// `.muse/locks/refs.seq`: a counter every multi-ref transaction bumps
    /// once its journal is durable, before its first ref moves, so that a
    /// reader of several refs can tell it overlapped one (not repository
    /// state: never fsynced).
    #[must_use]
    pub fn ref_seq(&self) -> PathBuf {
        self.locks_dir().join("refs.seq")
    }

    /// `.muse/locks/refs.seq.lock`: serialises bumps of [`Layout::ref_seq`].
    #[must_use]
    pub fn ref_seq_lock(&self) -> PathBuf {
        self.locks_dir().join("refs.seq.lock")
    }

    /// `.muse/locks/HEAD.lock`: serialises writes of HEAD.
    #[must_use]
    pub fn head_lock(&self) -> PathBuf {
        self.locks_dir().join("HEAD.lock")
    }

    /// `.muse/locks/config.lock`: serialises read-modify-write of `config.toml`.
    #[must_use]
    pub fn config_lock(&self) -> PathBuf {
        self.locks_dir().join("config.lock")
    }

    /// `.muse/locks/worktree.lock`: held by every command that reads or
    /// writes the working tree together with HEAD (commit, checkout, branch
    /// delete and rename).
    #[must_use]
    pub fn worktree_lock(&self) -> PathBuf {
        self.locks_dir().join("worktree.lock")
    }

    /// `.muse/locks/gc`: held shared by writers from their first write to
    /// their ref update, and exclusively by gc while it marks and sweeps.
    /// Taken shared, so never removed; named without `.lock` so nothing
    /// takes it for a leftover.
    #[must_use]
    pub fn gc_lock(&self) -> PathBuf {
        self.locks_dir().join("gc")
    }

    /// `.muse/quarantine/`: where received bundles are decoded and checked
    /// before anything is published (one directory per unpack in progress).
    #[must_use]
    pub fn quarantine_root(&self) -> PathBuf {
        self.muse.join("quarantine")
    }

    /// `.muse/quarantine/<32 hex>/`: the one function that turns a
    /// quarantine id into a directory.
    #[must_use]
    pub fn quarantine_dir(&self, id: &Uuid) -> PathBuf {
        self.quarantine_root().join(id.simple().to_string())
    }

    /// `.muse/quarantine/<32 hex>.lock`: held by the unpack that owns the
    /// quarantine directory of that id, so recovery removes only the
    /// directories of dead unpacks.
    #[must_use]
    pub fn quarantine_lock(&self, dir: &Path) -> PathBuf {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        dir.with_file_name(name)
    }

    /// `.muse/coordination/reservations/`.
    #[must_use]
    pub fn reservations_dir(&self) -> PathBuf {
        self.coordination_dir().join("reservations")
    }

    /// `.muse/coordination/reservations/<uuid>.json`: the one function that
    /// turns a reservation id into a path.
    #[must_use]
    pub fn reservation_path(&self, id: &Uuid) -> PathBuf {
        self.reservations_dir()
            .join(format!("{}.json", id.hyphenated()))
    }

    /// `.muse/coordination/intents/`.
    #[must_use]
    pub fn intents_dir(&self) -> PathBuf {
        self.coordination_dir().join("intents")
    }

    /// `.muse/coordination/intents/<uuid>.json`: the one function that turns
    /// an intent id into a path.
    #[must_use]
    pub fn intent_path(&self, id: &Uuid) -> PathBuf {
        self.intents_dir().join(format!("{}.json", id.hyphenated()))
    }

    /// `.muse/op_log/<session_id>/`: the one function that turns a session id
    /// into a path (the id is validated by [`SessionId`]).
    #[must_use]
    pub fn op_log_session_dir(&self, session: &SessionId) -> PathBuf {
        self.op_log_dir().join(session.as_str())
    }

    /// `.muse/op_log/<session_id>/ops.jsonl`.
    #[must_use]
    pub fn ops_path(&self, session: &SessionId) -> PathBuf {
        self.op_log_session_dir(session).join("ops.jsonl")
    }

    /// `.muse/op_log/<session_id>/checkpoint.json`.
    #[must_use]
    pub fn checkpoint_path(&self, session: &SessionId) -> PathBuf {
        self.op_log_session_dir(session).join("checkpoint.json")
    }

    /// The object id that an object path names, if `shard` and `rest` are a
    /// valid split of one (`iter` uses this to skip everything else).
    #[must_use]
    pub fn object_id_from_parts(shard: &str, rest: &str) -> Option<ObjectId> {
        if shard.len() != 2 || rest.len() != 62 {
            return None;
        }
        ObjectId::from_hex(&format!("{shard}{rest}")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_path_is_sharded_by_first_two_hex() {
        let layout = Layout::new("/w");
        let id = ObjectId::EMPTY;
        assert_eq!(
            layout.object_path(&id),
            Path::new(
                "/w/.muse/objects/e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        );
        let hex = id.to_hex();
        assert_eq!(Layout::object_id_from_parts(&hex[..2], &hex[2..]), Some(id));
        assert_eq!(Layout::object_id_from_parts("e3", ".obj-tmp-1234"), None);
    }
}
