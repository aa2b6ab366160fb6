//! Remote-tracking pointers: `.muse/remotes/<remote>/<branch>`, the last
//! known tip of a branch on a remote, written by the reference's push,
//! fetch and clone (shared/REFERENCE.md section 3): the id, 64 hex, no
//! newline; nested directories for a branch with `/`.
//!
//! Invariant: a remote name becomes a path only after the one-component
//! check, a branch name only as a [`BranchName`], so no pointer path leaves
//! `remotes/`. Pointers are written through the durable writer, after the
//! objects they name are published (transport calls
//! [`RefStore::set_remote_tracking`] only then).

use std::path::PathBuf;

use super::RefStore;
use crate::error::{Error, Result};
use crate::files;
use crate::id::ObjectId;
use crate::name::{BranchName, check_component};

/// One remote-tracking pointer file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// The remote (`origin`).
    pub remote: String,
    /// The branch on it, as the file's path below the remote's directory.
    pub branch: String,
    /// The file.
    pub path: PathBuf,
}

impl RefStore {
    /// The commit `remote`'s `branch` was last seen at, if a pointer exists.
    pub fn remote_tracking(&self, remote: &str, branch: &BranchName) -> Result<Option<ObjectId>> {
        check_component("remote name", remote)?;
        let path = self.layout.remote_ref(remote, branch);
        let text = match crate::files::read_stored(&path)? {
            crate::files::Stored::Bytes(t) => t,
            crate::files::Stored::Absent | crate::files::Stored::Directory => return Ok(None),
        };
        let text = String::from_utf8_lossy(&text);
        ObjectId::from_hex(text.trim())
            .map(Some)
            .map_err(|e| Error::corrupt(path, e.to_string()))
    }

    /// Records that `remote`'s `branch` was seen at `id` (the reference's
    /// format: 64 hex, no newline). No reflog line, as the reference.
    pub fn set_remote_tracking(
        &self,
        remote: &str,
        branch: &BranchName,
        id: ObjectId,
    ) -> Result<()> {
        check_component("remote name", remote)?;
        let path = self.layout.remote_ref(remote, branch);
        self.writer.write_file(
            &path,
            crate::durable::TempKind::State,
            id.to_hex().as_bytes(),
        )?;
        Ok(())
    }

    /// Removes the pointer of `remote`'s `branch` (a branch the remote no
    /// longer has: `fetch --prune`), durably; absent is fine.
    pub fn delete_remote_tracking(&self, remote: &str, branch: &BranchName) -> Result<()> {
        check_component("remote name", remote)?;
        let path = self.layout.remote_ref(remote, branch);
        self.writer.remove_file(&path)?;
        // A nested pointer's emptied directories go too, or a later branch
        // named like one of them could never get its pointer.
        let top = self.layout.remotes_dir().join(remote);
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&top) && *d != top) {
            if self.writer.vfs().remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// Every pointer file under `remotes/` (temp files skipped), sorted.
    pub fn remote_tracking_files(&self) -> Result<Vec<RemoteRef>> {
        let root = self.layout.remotes_dir();
        let mut out = Vec::new();
        for (name, path) in files::ref_files(&root)? {
            let (remote, branch) = name.split_once('/').unwrap_or((name.as_str(), ""));
            out.push(RemoteRef {
                remote: remote.to_owned(),
                branch: branch.to_owned(),
                path,
            });
        }
        Ok(out)
    }

    /// The commit a pointer file holds.
    pub fn read_remote_ref(&self, remote_ref: &RemoteRef) -> Result<ObjectId> {
        let path = &remote_ref.path;
        let text = crate::files::read_existing(path, "read")?;
        ObjectId::from_hex(String::from_utf8_lossy(&text).trim())
            .map_err(|e| Error::corrupt(path, e.to_string()))
    }
}
