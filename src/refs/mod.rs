//! HEAD and branches: reads, compare-and-swap updates, transactions, reflog.
//!
//! Invariants:
//! - every ref file is written by the durable writer while its `<ref>.lock`
//!   is held, after the expected value was checked under that lock, so two
//!   racing writers give one winner and one [`Error::CasMismatch`];
//! - a transaction takes its locks in name order (no deadlock between two
//!   transactions), checks every expectation, and only then changes
//!   anything. When it changes more than one ref it first writes a durable
//!   journal of the new values; if the process dies mid-way, the next open
//!   rolls the journal forward, so either every ref moved or none did;
//! - every movement appends one line to the branch's reflog (and to
//!   `logs/HEAD` when HEAD points at the branch).

mod journal;
mod reflog;
mod remote;
mod tag;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use journal::Journal;
pub use reflog::{Reflog, ReflogEntry};
pub use remote::RemoteRef;
pub use tag::{TagRecord, TagStore};

use crate::clock::Timestamp;
use crate::durable::{
    DEFAULT_LOCK_TIMEOUT, DurableWriter, FileLock, LockOwner, TempKind, host_name, write_unsynced,
};
use crate::error::{Error, Expected, InvalidName, Result};
use crate::failpoint::crash_point;
use crate::files;
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::name::BranchName;

/// What HEAD says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// `ref: refs/heads/<branch>`: on a branch (possibly unborn).
    Branch(BranchName),
    /// `commit: <id>`: detached at a commit.
    Detached(ObjectId),
}

impl Head {
    /// Parses the content of a HEAD file.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let line = text.strip_suffix('\n').unwrap_or(text);
        if let Some(target) = line.strip_prefix("ref: refs/heads/") {
            return BranchName::from_stored(target)
                .map(Head::Branch)
                .map_err(|e| e.to_string());
        }
        if let Some(id) = line.strip_prefix("commit: ") {
            return ObjectId::from_hex(id)
                .map(Head::Detached)
                .map_err(|e| e.to_string());
        }
        Err(format!(
            "expected 'ref: refs/heads/<branch>' or 'commit: <id>', found {:?}",
            line.chars().take(100).collect::<String>()
        ))
    }

    /// The content of a HEAD file for this value.
    #[must_use]
    pub fn to_file_content(&self) -> String {
        match self {
            Head::Branch(b) => format!("ref: refs/heads/{b}\n"),
            Head::Detached(id) => format!("commit: {id}\n"),
        }
    }
}

/// The state of a branch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "id")]
pub enum RefState {
    /// No file.
    Missing,
    /// An empty file: a branch with no commit yet.
    Unborn,
    /// A commit id.
    At(ObjectId),
}

impl RefState {
    /// The commit, if any.
    #[must_use]
    pub fn commit(self) -> Option<ObjectId> {
        match self {
            RefState::At(id) => Some(id),
            RefState::Missing | RefState::Unborn => None,
        }
    }
}

/// One operation of a [`Transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Set(ObjectId),
    Delete,
    Verify,
}

/// A ref that a transaction moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefChange {
    /// The branch.
    pub branch: BranchName,
    /// Its state before.
    pub old: RefState,
    /// Its state after (`Missing` when deleted).
    pub new: RefState,
}

/// What a single-ref update records in its lock file while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefUpdateIntent {
    change: RefChange,
    message: String,
    author: String,
}

/// The refs of one repository.
#[derive(Debug, Clone)]
pub struct RefStore {
    layout: Layout,
    writer: DurableWriter,
    author: String,
    lock_timeout: Duration,
}

impl RefStore {
    /// The refs in `layout`, written through `writer`, with reflog lines
    /// attributed to `author`, waiting up to `lock_timeout` for a ref lock.
    #[must_use]
    pub(crate) fn new(
        layout: Layout,
        writer: DurableWriter,
        author: String,
        lock_timeout: Duration,
    ) -> Self {
        Self {
            layout,
            writer,
            author,
            lock_timeout,
        }
    }

    /// The refs in `layout` for recovery: no author is needed (replayed
    /// reflog lines name the journal's own author) and nothing waits.
    pub(crate) fn for_recovery(layout: Layout, writer: DurableWriter) -> Self {
        Self::new(layout, writer, "unknown".to_owned(), DEFAULT_LOCK_TIMEOUT)
    }

    /// The author reflog lines written through this store name.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::{NewCommit, Repository};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let repo = Repository::init(dir.path())?;
    /// let made = repo.commit_files([("a", "1")], &NewCommit::new("one"))?;
    /// let bot = repo.refs().with_author("release-bot");
    /// assert_eq!(bot.author(), "release-bot");
    /// let tag = muse_store::BranchName::new("v1")?;
    /// bot.update(&tag, made.commit.commit_id, muse_store::Expected::Absent, "mark v1")?;
    /// assert_eq!(bot.reflog(&tag)?.entries[0].author, "release-bot");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn author(&self) -> &str {
        &self.author
    }

    /// The same store with another lock wait limit.
    #[must_use]
    pub fn with_lock_timeout(&self, timeout: Duration) -> Self {
        Self {
            lock_timeout: timeout,
            ..self.clone()
        }
    }

    /// The same store with another author for reflog lines.
    #[must_use]
    pub fn with_author(&self, author: impl Into<String>) -> Self {
        Self {
            author: author.into(),
            ..self.clone()
        }
    }

    /// Takes the working-tree lock (see `Repository::lock_worktree`).
    pub(crate) fn lock_worktree(&self) -> Result<FileLock> {
        Ok(FileLock::acquire(
            &self.layout.worktree_lock(),
            self.lock_timeout,
            None,
        )?)
    }

    /// Takes the lock of `branch` (`.muse/locks/ref-*.lock`).
    fn lock_branch(&self, branch: &BranchName) -> Result<FileLock> {
        Ok(FileLock::acquire(
            &self.layout.ref_lock(branch),
            self.lock_timeout,
            None,
        )?)
    }

    /// Reads HEAD.
    pub fn head(&self) -> Result<Head> {
        let path = self.layout.head();
        // Never followed nor blocked on: HEAD may be anything in a received
        // repository.
        let bytes = match files::read_stored(&path)? {
            files::Stored::Bytes(bytes) => bytes,
            files::Stored::Absent => {
                return Err(Error::io(
                    "read",
                    &path,
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
            files::Stored::Directory => {
                return Err(Error::corrupt(
                    path,
                    "HEAD is a directory, not a regular file",
                ));
            }
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::corrupt(&path, "HEAD is not valid UTF-8"))?;
        Head::parse(&text).map_err(|reason| Error::Corrupt { path, reason })
    }

    /// The commit HEAD resolves to (`None` on an unborn branch).
    pub fn head_commit(&self) -> Result<Option<ObjectId>> {
        match self.head()? {
            Head::Branch(b) => Ok(self.branch_state(&b)?.commit()),
            Head::Detached(id) => Ok(Some(id)),
        }
    }

    /// The state of branch `branch`.
    pub fn branch_state(&self, branch: &BranchName) -> Result<RefState> {
        let path = self.layout.branch_path(branch);
        // A symlink is never followed and a FIFO never blocks the read: a
        // branch file that is not a regular file is damage naming it.
        let text = match files::read_stored(&path)? {
            files::Stored::Bytes(t) => t,
            // Absent, or `feat/a/b` when `feat/a` is a branch file: no such
            // branch. A directory holds nested branches (`feat` when
            // `feat/x` exists).
            files::Stored::Absent | files::Stored::Directory => return Ok(RefState::Missing),
        };
        let text = String::from_utf8_lossy(&text);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(RefState::Unborn);
        }
        ObjectId::from_hex(trimmed)
            .map(RefState::At)
            .map_err(|e| Error::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// The commit branch `branch` points at (`None` when absent or unborn).
    pub fn branch(&self, branch: &BranchName) -> Result<Option<ObjectId>> {
        Ok(self.branch_state(branch)?.commit())
    }

    /// Every branch with its state, sorted by name. Lock and temp files, and
    /// names that break Muse's rules, are skipped.
    ///
    /// The listing is consistent with every multi-ref transaction: it never
    /// shows some refs of one moved and others not. A transaction bumps a
    /// counter (`.muse/locks/refs.seq`) once its journal is durable and
    /// before its first ref moves; the listing reads the counter, the
    /// pending journals, the branch files and the counter again, retrying
    /// when the counter moved, and shows every ref a pending journal names
    /// at that journal's new value (the value recovery would roll it forward
    /// to). Separate calls of [`RefStore::branch_state`] make no such
    /// promise.
    pub fn branches(&self) -> Result<Vec<(BranchName, RefState)>> {
        let mut pause = Duration::from_micros(50);
        for _ in 0..200 {
            let before = self.read_ref_seq();
            let journals: Vec<Journal> = Journal::list(&self.layout)?
                .iter()
                .filter_map(|path| Journal::read(path).transpose())
                .collect::<Result<_>>()?;
            let mut names = Vec::new();
            for (name, path) in self.branch_files()? {
                match name {
                    Ok(b) => names.push(b),
                    Err(e) => log::warn!("skipping ref file '{}': {e}", path.display()),
                }
            }
            let mut states: std::collections::BTreeMap<BranchName, RefState> =
                std::collections::BTreeMap::new();
            for name in names {
                let state = self.branch_state(&name)?;
                states.insert(name, state);
            }
            if self.read_ref_seq() != before {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
                continue;
            }
            for change in journals.iter().flat_map(|j| &j.changes) {
                let now = states
                    .get(&change.branch)
                    .copied()
                    .unwrap_or(RefState::Missing);
                // A ref that holds neither side was moved by something that
                // ignores journals (another implementation): it is shown
                // as it is.
                if now == change.old || now == change.new {
                    match change.new {
                        RefState::Missing => states.remove(&change.branch),
                        new => states.insert(change.branch.clone(), new),
                    };
                }
            }
            return Ok(states.into_iter().collect());
        }
        Err(Error::Locked {
            path: self.layout.ref_seq(),
            holder: "ref transactions that kept moving while the refs were read".to_owned(),
        })
    }

    /// The multi-ref transaction counter (0 when absent or unreadable).
    fn read_ref_seq(&self) -> u64 {
        fs::read_to_string(self.layout.ref_seq())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Bumps the multi-ref transaction counter, atomically (temp file and
    /// rename, under its own lock) but not durably: it only tells readers
    /// that refs moved while they read.
    fn bump_ref_seq(&self) -> Result<()> {
        let _lock = FileLock::acquire(&self.layout.ref_seq_lock(), self.lock_timeout, None)?;
        let next = self.read_ref_seq().wrapping_add(1);
        let path = self.layout.ref_seq();
        write_unsynced(&path, next.to_string().as_bytes())
            .map_err(|e| Error::io("write the ref transaction counter", path, e))
    }

    /// Every file under `refs/heads/` (temp and lock files skipped) with the
    /// branch name it stands for, or why that name is not one, sorted: the
    /// one listing of branches.
    pub(crate) fn branch_files(
        &self,
    ) -> Result<Vec<(std::result::Result<BranchName, InvalidName>, PathBuf)>> {
        Ok(files::ref_files(&self.layout.heads_dir())?
            .into_iter()
            // A lock an older version of this project kept beside its ref
            // (a lock-owner record, not an id) is no branch; recovery removes
            // it once its owner is dead.
            .filter(|(name, path)| {
                !(name.ends_with(".lock") && matches!(LockOwner::read(path), Ok(Some(Ok(_)))))
            })
            .map(|(name, path)| (BranchName::from_stored(&name), path))
            .collect())
    }

    /// Everything where a branch file or reflog could be that is not a
    /// regular file: symlinks, FIFOs, sockets and devices under
    /// `refs/heads/`, `logs/refs/heads/` and `remotes/`, anything but a
    /// regular file at `logs/HEAD`, and a directory where an existing
    /// branch's reflog belongs. Each with what it is; none of them is
    /// opened.
    pub(crate) fn odd_ref_files(&self) -> Result<Vec<(PathBuf, &'static str)>> {
        let mut odd = files::odd_ref_files(&self.layout.heads_dir())?;
        odd.extend(files::odd_ref_files(&self.layout.branch_logs_dir())?);
        odd.extend(files::odd_ref_files(&self.layout.remotes_dir())?);
        let head_log = self.layout.head_log();
        if let Ok(meta) = fs::symlink_metadata(&head_log)
            && !meta.is_file()
        {
            odd.push((head_log, files::kind_name(meta.file_type())));
        }
        for (name, _) in self.branch_files()? {
            let Ok(branch) = name else { continue };
            let log = self.layout.branch_log(&branch);
            if fs::symlink_metadata(&log).is_ok_and(|m| m.is_dir()) {
                odd.push((log, "a directory"));
            }
        }
        Ok(odd)
    }

    /// Every reflog file: `logs/HEAD` (when present), then each branch's.
    pub(crate) fn reflog_files(&self) -> Result<Vec<PathBuf>> {
        let mut logs = Vec::new();
        // Not followed: a symlink or directory there is listed by
        // [`RefStore::odd_ref_files`].
        if fs::symlink_metadata(self.layout.head_log()).is_ok_and(|m| m.is_file()) {
            logs.push(self.layout.head_log());
        }
        logs.extend(
            files::ref_files(&self.layout.branch_logs_dir())?
                .into_iter()
                .map(|(_, path)| path),
        );
        Ok(logs)
    }

    /// Compare-and-swap of one branch: sets it to `new` if it holds what
    /// `expected` says; returns its previous commit.
    pub fn update(
        &self,
        branch: &BranchName,
        new: ObjectId,
        expected: Expected,
        message: &str,
    ) -> Result<Option<ObjectId>> {
        let mut tx = self.transaction(message);
        tx.update(branch.clone(), new, expected);
        let changes = tx.commit()?;
        Ok(changes.first().and_then(|c| c.old.commit()))
    }

    /// Deletes branch `branch` if it holds what `expected` says; returns its
    /// previous commit.
    pub fn delete(
        &self,
        branch: &BranchName,
        expected: Expected,
        message: &str,
    ) -> Result<Option<ObjectId>> {
        let mut tx = self.transaction(message);
        tx.delete(branch.clone(), expected);
        let changes = tx.commit()?;
        Ok(changes.first().and_then(|c| c.old.commit()))
    }

    /// Creates `branch` at the commit HEAD resolves to and returns that
    /// commit. Fails with [`Error::BranchExists`] when the branch exists,
    /// [`Error::BranchNameClash`] when it would nest with another, and
    /// [`Error::UnbornBranch`] when HEAD has no commit yet.
    pub fn create_branch_at_head(&self, branch: &BranchName) -> Result<ObjectId> {
        let start = match self.head()? {
            Head::Detached(id) => id,
            Head::Branch(current) => self.branch(&current)?.ok_or(Error::UnbornBranch {
                branch: current.to_string(),
            })?,
        };
        match self.update(
            branch,
            start,
            Expected::Absent,
            &format!("branch: created from {start}"),
        ) {
            Ok(_) => Ok(start),
            Err(Error::CasMismatch(_)) => Err(Error::BranchExists {
                branch: branch.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Deletes `branch` and returns its last commit. Refuses the branch HEAD
    /// is on ([`Error::BranchCheckedOut`]); a branch that does not exist is
    /// [`Error::NoSuchBranch`]. HEAD is checked under the working-tree lock
    /// (which checkout holds while it moves HEAD) and the branch is deleted
    /// by compare-and-swap from the value read under it, so a concurrent
    /// checkout of the branch, or a commit on it, is never lost.
    pub fn delete_branch(&self, branch: &BranchName) -> Result<Option<ObjectId>> {
        let _worktree = self.lock_worktree()?;
        if self.head()? == Head::Branch(branch.clone()) {
            return Err(Error::BranchCheckedOut {
                branch: branch.to_string(),
            });
        }
        let expected = match self.branch_state(branch)? {
            RefState::Missing => {
                return Err(Error::NoSuchBranch {
                    branch: branch.to_string(),
                });
            }
            RefState::Unborn => Expected::Absent,
            RefState::At(id) => Expected::Value(id),
        };
        self.delete(branch, expected, &format!("branch: deleted {branch}"))
    }

    /// Renames branch `old` to `new` (which must not exist), keeping its
    /// reflog, and moves HEAD along when it is on `old`. Under the
    /// working-tree lock, in three steps that each leave a usable state:
    /// `new` is created at `old`'s value (compare-and-swap from absent),
    /// HEAD moves to `new`, `old` is deleted (compare-and-swap from the
    /// value copied). A crash in between leaves both branches, never none,
    /// each with its whole reflog; a crash before `new` exists may leave a
    /// copy of `old`'s reflog at `new`'s path, which a retried rename
    /// replaces.
    pub fn rename_branch(&self, old: &BranchName, new: &BranchName) -> Result<ObjectId> {
        let _worktree = self.lock_worktree()?;
        let value = match self.branch_state(old)? {
            RefState::At(id) => id,
            RefState::Unborn => {
                return Err(Error::UnbornBranch {
                    branch: old.to_string(),
                });
            }
            RefState::Missing => {
                return Err(Error::NoSuchBranch {
                    branch: old.to_string(),
                });
            }
        };
        if self.branch_state(new)? != RefState::Missing {
            return Err(Error::BranchExists {
                branch: new.to_string(),
            });
        }
        let message = format!("branch: renamed {old} to {new}");
        // The reflog is copied first, so the history of `old` continues
        // under `new` (the creation below appends to the copy), and `old`
        // keeps its own until it is deleted: killed at any step, every
        // branch that exists still has its whole reflog. (It was moved
        // before: a kill after the move left `old` with none.) A reflog
        // already at `new`'s path belongs to no branch (`new` does not
        // exist): it is what such a kill left, and is replaced.
        let (from, to) = (self.layout.branch_log(old), self.layout.branch_log(new));
        if let Some(history) = files::read_optional(&from)? {
            self.writer.write_file(&to, TempKind::State, &history)?;
        }
        crash_point("branch-rename-reflog-copied");
        match self.update(new, value, Expected::Absent, &message) {
            Ok(_) => {}
            Err(Error::CasMismatch(_)) => {
                return Err(Error::BranchExists {
                    branch: new.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
        crash_point("branch-rename-created");
        if self.head()? == Head::Branch(old.clone()) {
            self.set_head(&Head::Branch(new.clone()), &message)?;
        }
        crash_point("branch-rename-head-moved");
        self.delete(old, Expected::Value(value), &message)?;
        Ok(value)
    }

    /// Starts a transaction whose reflog lines say `message`.
    pub fn transaction(&self, message: &str) -> Transaction<'_> {
        Transaction {
            refs: self,
            message: message.to_owned(),
            ops: Vec::new(),
        }
    }

    /// Points HEAD at `head` under `HEAD.lock`, logging `message` in
    /// `logs/HEAD` when HEAD ends on a commit.
    pub fn set_head(&self, head: &Head, message: &str) -> Result<()> {
        let path = self.layout.head();
        let _lock = FileLock::acquire(&self.layout.head_lock(), self.lock_timeout, None)?;
        let old = self.head_commit().unwrap_or(None);
        // Everything is read (and a branch HEAD could never become is
        // refused) before HEAD is written.
        let new = match head {
            Head::Branch(b) => {
                let state = self.branch_state(b)?;
                if state == RefState::Missing
                    && let Some(existing) = self.clash(b)?
                {
                    return Err(Error::BranchNameClash {
                        branch: b.to_string(),
                        existing,
                    });
                }
                state.commit()
            }
            Head::Detached(id) => Some(*id),
        };
        self.writer
            .write_file(&path, TempKind::State, head.to_file_content().as_bytes())?;
        if let Some(new) = new {
            self.log(
                &self.layout.head_log(),
                old.unwrap_or(ObjectId::ZERO),
                new,
                message,
            )?;
        }
        Ok(())
    }

    /// The reflog of `branch`.
    pub fn reflog(&self, branch: &BranchName) -> Result<Reflog> {
        Reflog::read(&self.layout.branch_log(branch))
    }

    /// The reflog of HEAD.
    pub fn head_reflog(&self) -> Result<Reflog> {
        Reflog::read(&self.layout.head_log())
    }

    /// A branch name that `branch` cannot coexist with as a path: an
    /// existing branch that is a directory prefix of it (`feat` for
    /// `feat/a`), or one below it (`feat/a` for `feat`).
    fn clash(&self, branch: &BranchName) -> Result<Option<String>> {
        let heads = self.layout.heads_dir();
        let path = self.layout.branch_path(branch);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                // A directory with no branch in it is debris, not a clash.
                return Ok(files::ref_files(&path)?
                    .first()
                    .map(|(rest, _)| format!("{branch}/{rest}")));
            }
            Ok(_) => return Ok(None),
            // `feat/a` when `feat` is a file: the walk below names it.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            Err(e) => return Err(Error::io("inspect ref", path, e)),
        }
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == heads || !d.starts_with(&heads) {
                break;
            }
            if fs::symlink_metadata(d).is_ok_and(|m| m.is_file())
                && let Ok(rel) = d.strip_prefix(&heads)
            {
                return Ok(Some(rel.to_string_lossy().into_owned()));
            }
            dir = d.parent();
        }
        Ok(None)
    }

    fn log(&self, path: &Path, old: ObjectId, new: ObjectId, message: &str) -> Result<()> {
        let now = Timestamp::now();
        reflog::append(
            &self.writer,
            path,
            &ReflogEntry {
                old,
                new,
                author: self.author.clone(),
                unix_seconds: now.unix_seconds,
                tz: "+0000".to_owned(),
                operation: message.to_owned(),
            },
        )
    }

    /// Writes one branch file to `state` (removing it and the directories it
    /// leaves empty when `Missing`).
    fn write_state(&self, branch: &BranchName, state: RefState) -> Result<()> {
        let path = self.layout.branch_path(branch);
        if state != RefState::Missing && path.is_dir() {
            // An empty directory left where the branch goes (no branch is
            // under it: `clash` checked): it must go before the file can.
            self.writer.remove_dir(&path)?;
        }
        match state {
            RefState::At(id) => {
                self.writer
                    .write_file(&path, TempKind::State, id.to_hex().as_bytes())?;
            }
            RefState::Unborn => self.writer.write_file(&path, TempKind::State, b"")?,
            RefState::Missing => {
                self.writer.remove_file(&path)?;
                self.prune_empty_dirs(&path, &self.layout.heads_dir());
            }
        }
        Ok(())
    }

    /// Removes the now-empty directories between `path` and `stop`.
    fn prune_empty_dirs(&self, path: &Path, stop: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == stop || !d.starts_with(stop) {
                break;
            }
            // Not empty (or already gone): stop quietly; nothing is lost.
            if self.writer.remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Appends the reflog lines for `change` (branch log, and HEAD's when HEAD
    /// is on that branch). A deleted branch loses its reflog, as in git.
    fn log_change(&self, change: &RefChange, message: &str) -> Result<()> {
        let log_path = self.layout.branch_log(&change.branch);
        let old = change.old.commit().unwrap_or(ObjectId::ZERO);
        let Some(new) = change.new.commit() else {
            if change.new == RefState::Missing {
                self.writer.remove_file(&log_path)?;
                self.prune_empty_dirs(&log_path, &self.layout.branch_logs_dir());
            }
            return Ok(());
        };
        self.log(&log_path, old, new, message)?;
        if matches!(self.head(), Ok(Head::Branch(ref b)) if *b == change.branch) {
            self.log(&self.layout.head_log(), old, new, message)?;
        }
        Ok(())
    }

    /// Applies a journal's changes (idempotent), skipping reflog lines that
    /// are already the last line of their log. The branch's log and HEAD's
    /// are checked separately: the crash may have fallen between the two
    /// appends.
    fn roll_forward(&self, journal: &Journal) -> Result<()> {
        // Replayed reflog lines name whoever made the transaction.
        let refs = Self {
            author: journal.author.clone(),
            ..self.clone()
        };
        // A ref that holds neither the journal's old nor its new value was
        // moved by a later writer (one that took over the dead owner's lock
        // before any open recovered the journal): that later, acknowledged
        // update wins and this change is not replayed over it.
        let mut changes = Vec::with_capacity(journal.changes.len());
        for change in &journal.changes {
            let now = refs.branch_state(&change.branch)?;
            if now == change.old || now == change.new {
                changes.push(change);
            } else {
                log::warn!(
                    "not replaying transaction {} on '{}': it was moved since ({now:?})",
                    journal.transaction_id,
                    change.branch
                );
            }
        }
        for change in &changes {
            refs.write_state(&change.branch, change.new)?;
        }
        for change in changes {
            refs.log_missing(change, &journal.message)?;
        }
        Ok(())
    }

    /// Takes over the lock file at `path` if its holder is gone (a live
    /// holder keeps it: `Ok(false)`), finishes what that holder recorded
    /// (a single-ref update cut between its ref write and its reflog line
    /// gets the line), and removes the file.
    pub(crate) fn recover_lock(&self, path: &Path) -> Result<bool> {
        let Some((lock, record)) = FileLock::try_take_over(path)? else {
            return Ok(false);
        };
        if let Some(Ok(owner)) = record
            && let Some(intent) = owner.intent
            && let Ok(update) = serde_json::from_value::<RefUpdateIntent>(intent)
        {
            let refs = self.with_author(update.author);
            let now = refs.branch_state(&update.change.branch)?;
            if now == update.change.new && now != update.change.old {
                refs.log_missing(&update.change, &update.message)?;
                log::warn!(
                    "completed the reflog of an interrupted update of '{}'",
                    update.change.branch
                );
            }
        }
        lock.release()?;
        Ok(true)
    }

    /// Appends the reflog lines of `change` that are not already the last
    /// line of their log (the branch's and, when HEAD is on it, HEAD's: a
    /// crash may have fallen between the two appends).
    fn log_missing(&self, change: &RefChange, message: &str) -> Result<()> {
        let old = change.old.commit().unwrap_or(ObjectId::ZERO);
        let Some(new) = change.new.commit() else {
            // A deletion: removing the reflog is idempotent.
            return self.log_change(change, message);
        };
        let logged = |log: Reflog| {
            log.entries
                .last()
                .is_some_and(|e| e.old == old && e.new == new)
        };
        if !logged(self.reflog(&change.branch)?) {
            self.log(&self.layout.branch_log(&change.branch), old, new, message)?;
        }
        if matches!(self.head(), Ok(Head::Branch(ref b)) if *b == change.branch)
            && !logged(self.head_reflog()?)
        {
            self.log(&self.layout.head_log(), old, new, message)?;
        }
        Ok(())
    }

    /// Whether a pending transaction journal names any of `branches`.
    fn pending_journal_names(&self, branches: &BTreeSet<BranchName>) -> Result<bool> {
        for path in Journal::list(&self.layout)? {
            if let Some(journal) = Journal::read(&path)?
                && journal.changes.iter().any(|c| branches.contains(&c.branch))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Finishes every multi-ref transaction that a dead process left
    /// half-applied. Journals whose locks a live process holds are in
    /// progress and left alone. Returns how many were rolled forward.
    pub fn recover(&self) -> Result<usize> {
        let mut recovered = 0;
        for path in Journal::list(&self.layout)? {
            let Some(journal) = Journal::read(&path)? else {
                continue;
            };
            let mut branches: Vec<&BranchName> =
                journal.changes.iter().map(|c| &c.branch).collect();
            branches.sort();
            let mut locks = Vec::new();
            for branch in branches {
                match FileLock::try_acquire(&self.layout.ref_lock(branch))? {
                    Some(lock) => locks.push(lock),
                    None => break,
                }
            }
            if locks.len() != journal.changes.len() || !path.exists() {
                // A live process holds it: in progress, not ours to finish.
                continue;
            }
            self.roll_forward(&journal)?;
            self.writer.remove_file(&path)?;
            log::warn!(
                "completed interrupted ref transaction {} ({} refs)",
                journal.transaction_id,
                journal.changes.len()
            );
            recovered += 1;
        }
        Ok(recovered)
    }
}

/// Several ref updates applied all-or-nothing.
///
/// [`Transaction::commit`] takes the refs' locks in name order (so two
/// transactions never wait on each other), checks every expectation, and
/// only then changes anything. With more than one ref it first writes a
/// durable journal of the new values: a crash part-way is rolled forward
/// by the next open (or by the next writer of one of its refs), so either
/// every ref moved or none did, and [`RefStore::branches`] never shows half
/// of it. A failed expectation is [`Error::CasMismatch`] and changes nothing.
#[must_use = "a transaction does nothing until committed"]
#[derive(Debug)]
pub struct Transaction<'r> {
    refs: &'r RefStore,
    message: String,
    ops: Vec<(BranchName, Change, Expected)>,
}

impl Transaction<'_> {
    /// Sets `branch` to `new` if it holds what `expected` says.
    pub fn update(&mut self, branch: BranchName, new: ObjectId, expected: Expected) -> &mut Self {
        self.ops.push((branch, Change::Set(new), expected));
        self
    }

    /// Creates `branch` at `new`; it must be absent (or unborn).
    pub fn create(&mut self, branch: BranchName, new: ObjectId) -> &mut Self {
        self.update(branch, new, Expected::Absent)
    }

    /// Deletes `branch` if it holds what `expected` says.
    pub fn delete(&mut self, branch: BranchName, expected: Expected) -> &mut Self {
        self.ops.push((branch, Change::Delete, expected));
        self
    }

    /// Checks that `branch` holds what `expected` says, without changing it.
    pub fn verify(&mut self, branch: BranchName, expected: Expected) -> &mut Self {
        self.ops.push((branch, Change::Verify, expected));
        self
    }

    /// Applies every operation or none. Returns the refs that moved.
    pub fn commit(self) -> Result<Vec<RefChange>> {
        let refs = self.refs;
        let mut seen = BTreeSet::new();
        for (branch, change, _) in &self.ops {
            if !seen.insert(branch.clone()) {
                return Err(Error::DuplicateRef {
                    branch: branch.to_string(),
                });
            }
            if matches!(change, Change::Set(_))
                && let Some(existing) = refs.clash(branch)?
            {
                return Err(Error::BranchNameClash {
                    branch: branch.to_string(),
                    existing,
                });
            }
        }
        // Locks in name order: two transactions can never wait on each other.
        let mut locks = Vec::with_capacity(seen.len());
        for attempt in 0.. {
            for branch in &seen {
                locks.push(refs.lock_branch(branch)?);
            }
            crate::failpoint::barrier("ref-locked");
            // A journal naming a branch whose lock we now hold belongs to a
            // transaction whose process died part-way (a live one would hold
            // that lock): finish it before building on its refs.
            if attempt >= 3 || !refs.pending_journal_names(&seen)? {
                break;
            }
            locks.clear();
            refs.recover()?;
        }
        let mut changes = Vec::new();
        for (branch, change, expected) in &self.ops {
            let old = refs.branch_state(branch)?;
            if !expected.matches(old.commit()) {
                return Err(Error::cas(branch.as_str(), *expected, old.commit()));
            }
            let new = match change {
                Change::Verify => continue,
                Change::Set(id) => RefState::At(*id),
                Change::Delete if old == RefState::Missing => {
                    return Err(Error::NoSuchBranch {
                        branch: branch.to_string(),
                    });
                }
                Change::Delete => RefState::Missing,
            };
            changes.push(RefChange {
                branch: branch.clone(),
                old,
                new,
            });
        }
        if changes.is_empty() {
            return Ok(changes);
        }
        let journal_path = if let [change] = changes.as_slice() {
            // One ref: its lock file records the update, so that recovery can
            // add the reflog line if this process dies between the ref write
            // and the append (see `RefStore::recover_lock`).
            let at = seen.iter().position(|b| *b == change.branch).unwrap_or(0);
            if let Some(lock) = locks.get_mut(at) {
                lock.set_intent(self.intent(change))?;
            }
            None
        } else {
            let path = self.write_journal(&changes)?;
            // Readers of several refs retry when this moved while they read;
            // from here on they find the journal and read its new values.
            refs.bump_ref_seq()?;
            Some(path)
        };
        crash_point("ref-txn-journaled");
        if let Err(e) = self.apply(&changes) {
            return Err(self.undo(&changes, journal_path.as_deref(), locks, e));
        }
        if let Some(path) = &journal_path {
            refs.writer.remove_file(path)?;
        }
        drop(locks);
        Ok(changes)
    }

    /// The record of a single-ref update kept in its lock file.
    fn intent(&self, change: &RefChange) -> serde_json::Value {
        serde_json::to_value(RefUpdateIntent {
            change: change.clone(),
            message: self.message.clone(),
            author: self.refs.author.clone(),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    fn write_journal(&self, changes: &[RefChange]) -> Result<PathBuf> {
        let refs = self.refs;
        let journal = Journal {
            transaction_id: uuid::Uuid::new_v4().simple().to_string(),
            pid: std::process::id(),
            host: host_name(),
            created_at: Timestamp::now().to_isoformat(),
            message: self.message.clone(),
            author: refs.author.clone(),
            changes: changes.to_vec(),
        };
        journal.write(&refs.layout, &refs.writer)
    }

    fn apply(&self, changes: &[RefChange]) -> Result<()> {
        for (i, change) in changes.iter().enumerate() {
            self.refs.write_state(&change.branch, change.new)?;
            if i == 0 {
                crash_point("ref-txn-first-applied");
                crate::failpoint::barrier("ref-txn-first-applied");
            }
        }
        // A failed append undoes itself; lines of this transaction already
        // appended to other logs are cut back here, so that a failed update
        // leaves no reflog line at all.
        let mut logs = vec![self.refs.layout.head_log()];
        logs.extend(
            changes
                .iter()
                .map(|c| self.refs.layout.branch_log(&c.branch)),
        );
        let sizes: Vec<(PathBuf, Option<u64>)> = logs
            .into_iter()
            .map(|p| {
                let len = fs::symlink_metadata(&p).ok().map(|m| m.len());
                (p, len)
            })
            .collect();
        for change in changes {
            if let Err(e) = self.refs.log_change(change, &self.message) {
                for (path, len) in &sizes {
                    if let Err(cut) = self.refs.writer.cut_back(path, *len) {
                        log::warn!("{cut}");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// After a failure while applying: put every ref back. If that works the
    /// journal is removed and the original error returned. If it does not,
    /// the journal and the locks are left in place (the locks name this
    /// process, so nobody moves these refs until it exits; the next open
    /// after that rolls the journal forward).
    fn undo(
        &self,
        changes: &[RefChange],
        journal: Option<&Path>,
        locks: Vec<FileLock>,
        error: Error,
    ) -> Error {
        let refs = self.refs;
        let restored = changes
            .iter()
            .all(|c| refs.write_state(&c.branch, c.old).is_ok());
        match journal {
            Some(path) if restored && refs.writer.remove_file(path).is_ok() => drop(locks),
            Some(_) => std::mem::forget(locks),
            None => {}
        }
        error
    }
}
