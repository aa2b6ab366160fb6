//! Committing a tree without a working tree: store the blobs, build the
//! snapshot, write the commit record, move the branch.
//!
//! Invariants:
//! - every object, the snapshot record and the commit record are durable
//!   (one write batch, two barriers) before the branch moves;
//! - the branch moves by one compare-and-swap from the parent the commit was
//!   built on: if it moved meanwhile, nothing is changed and
//!   [`Error::CasMismatch`] says so (the stored records are harmless and
//!   the commit can be retried);
//! - the reflog line is the conventional `commit: <first line of message>`;
//! - gc is held off ([`Repository::write_guard`]) from the first object
//!   written (or found already stored) until the branch has moved, so
//!   nothing the new commit names can be pruned in between.

use std::collections::BTreeMap;

use super::{Repository, WriteGuard};
use crate::clock::Timestamp;
use crate::durable::WriteBatch;
use crate::error::{Error, Expected, Result};
use crate::failpoint;
use crate::id::ObjectId;
use crate::name::BranchName;
use crate::record::{CommitRecord, SnapshotRecord};
use crate::refs::Head;

/// What a new commit says and where it goes; see [`Repository::commit_files`].
#[derive(Debug, Clone, Default)]
pub struct NewCommit {
    /// The message (must not be empty or only whitespace).
    pub message: String,
    /// The author recorded in the commit; `None`: the configured
    /// `user.name` (empty when unset).
    pub author: Option<String>,
    /// The branch to commit on; `None`: the branch HEAD is on
    /// ([`Error::DetachedHead`] when HEAD is detached).
    pub branch: Option<BranchName>,
    /// A second parent (the other side of a merge). It must be a stored
    /// commit.
    pub merge_parent: Option<ObjectId>,
    /// Commit even when the tree is the parent's tree.
    pub allow_empty: bool,
}

impl NewCommit {
    /// A commit with `message` on HEAD's branch by the configured author.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// The same commit by `author`.
    #[must_use]
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// The same commit on `branch`.
    #[must_use]
    pub fn branch(mut self, branch: BranchName) -> Self {
        self.branch = Some(branch);
        self
    }

    /// The same commit with `parent` as its second parent.
    #[must_use]
    pub fn merge_parent(mut self, parent: ObjectId) -> Self {
        self.merge_parent = Some(parent);
        self
    }

    /// The same commit, allowed to record the parent's tree again.
    #[must_use]
    pub fn allow_empty(mut self) -> Self {
        self.allow_empty = true;
        self
    }
}

/// What a commit made.
#[derive(Debug, Clone)]
pub struct CommitOutcome {
    /// The new commit record.
    pub commit: CommitRecord,
    /// Its snapshot record.
    pub snapshot: SnapshotRecord,
    /// The branch it moved.
    pub branch: BranchName,
    /// The previous tip (`None` for a root commit).
    pub parent: Option<ObjectId>,
}

impl Repository {
    /// Commits a tree given as (path, content) pairs, with no working tree:
    /// stores every blob, builds the snapshot, writes the commit with this
    /// repository's id and the configured author, and moves the branch by
    /// compare-and-swap with the conventional reflog line. All of it is
    /// durable before the branch moves.
    ///
    /// When another writer moved the branch meanwhile, nothing moves and
    /// this fails with [`Error::CasMismatch`]: the stored objects and
    /// records stay (unreferenced until gc prunes them) and the call can be
    /// retried on the new tip.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::{NewCommit, Repository};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let repo = Repository::init(dir.path())?;
    /// let made = repo.commit_files(
    ///     [("README.md", &b"hello\n"[..]), ("src/lib.rs", b"")],
    ///     &NewCommit::new("first").author("Ada"),
    /// )?;
    /// assert_eq!(made.branch.as_str(), "main");
    /// assert_eq!(repo.refs().head_commit()?, Some(made.commit.commit_id));
    /// assert_eq!(made.snapshot.manifest.len(), 2);
    /// assert_eq!(repo.records().read_commit(&made.commit.commit_id)?.author, "Ada");
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit_files<I, P, B>(&self, files: I, spec: &NewCommit) -> Result<CommitOutcome>
    where
        I: IntoIterator<Item = (P, B)>,
        P: Into<String>,
        B: AsRef<[u8]>,
    {
        let guard = self.write_guard()?;
        let batch = self.writer().batch();
        let objects = self.objects().with_writer(batch.writer().clone());
        let mut manifest = BTreeMap::new();
        for (path, bytes) in files {
            let (id, _) = objects.write(bytes.as_ref())?;
            manifest.insert(path.into(), id);
        }
        self.commit_staged(&guard, batch, manifest, spec)
    }

    /// Commits `manifest` (path -> id of an object already stored), as
    /// [`Repository::commit_files`] does. A manifest naming an object that
    /// is not stored is refused ([`Error::NotFound`]) before anything is
    /// written.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use std::collections::BTreeMap;
    /// use muse_store::{NewCommit, Repository};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let repo = Repository::init(dir.path())?;
    /// let (id, _) = repo.objects().write(b"data")?;
    /// let manifest = BTreeMap::from([("a.bin".to_owned(), id)]);
    /// let made = repo.commit_manifest(manifest.clone(), &NewCommit::new("add a.bin"))?;
    /// assert_eq!(made.snapshot.manifest, manifest);
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit_manifest(
        &self,
        manifest: BTreeMap<String, ObjectId>,
        spec: &NewCommit,
    ) -> Result<CommitOutcome> {
        // Checked under the guard: gc cannot remove an object between this
        // check and the branch update.
        let guard = self.write_guard()?;
        for id in manifest.values() {
            if !self.objects().contains(id) {
                return Err(Error::NotFound { id: *id });
            }
        }
        self.commit_staged(&guard, self.writer().batch(), manifest, spec)
    }

    /// Commits `manifest`, whose objects are stored or staged in `batch`:
    /// the snapshot and commit records join the batch, the batch is
    /// published, then the branch moves. The caller holds `_guard` from
    /// before its first object was staged.
    pub(crate) fn commit_staged(
        &self,
        _guard: &WriteGuard,
        batch: WriteBatch,
        manifest: BTreeMap<String, ObjectId>,
        spec: &NewCommit,
    ) -> Result<CommitOutcome> {
        if spec.message.trim().is_empty() {
            return Err(Error::EmptyMessage);
        }
        let refs = self.refs();
        let branch = match &spec.branch {
            Some(b) => b.clone(),
            None => match refs.head()? {
                Head::Branch(b) => b,
                Head::Detached(at) => return Err(Error::DetachedHead { at }),
            },
        };
        let parent = refs.branch(&branch)?;
        let records = self.records();
        let snapshot = SnapshotRecord::new(manifest, Timestamp::now());
        let mut parents: Vec<ObjectId> = parent.into_iter().collect();
        if let Some(other) = spec.merge_parent {
            // A merge commit naming a missing parent would be a hole in the
            // history.
            records.read_commit(&other)?;
            parents.push(other);
        } else if let Some(p) = parent
            && !spec.allow_empty
            && records.read_commit(&p)?.snapshot_id == snapshot.snapshot_id
        {
            return Err(Error::NothingToCommit);
        }
        let author = match &spec.author {
            Some(a) => a.clone(),
            None => self.config()?.user_name().unwrap_or_default(),
        };
        let commit = CommitRecord::new(
            self.info()?.repo_id.clone(),
            branch.as_str(),
            snapshot.snapshot_id,
            &parents,
            spec.message.as_str(),
            author,
            Timestamp::now(),
        );
        let staged = records.with_writer(batch.writer().clone());
        staged.write_snapshot(&snapshot)?;
        staged.write_commit(&commit)?;
        batch.commit()?;
        let first_line = spec.message.lines().next().unwrap_or_default();
        let expected = parent.map_or(Expected::Absent, Expected::Value);
        failpoint::barrier("commit-before-cas");
        refs.update(
            &branch,
            commit.commit_id,
            expected,
            &format!("commit: {first_line}"),
        )?;
        Ok(CommitOutcome {
            commit,
            snapshot,
            branch,
            parent,
        })
    }
}
