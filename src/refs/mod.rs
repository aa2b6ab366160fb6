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

mod lock;
mod name;
pub mod reflog;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use lock::{DEFAULT_LOCK_TIMEOUT, FileLock, LockOwner, host_name};
pub use name::{BranchName, InvalidName, MAX_NAME_LEN};
pub use reflog::{Reflog, ReflogEntry};

use crate::clock::Timestamp;
use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::layout::{Layout, is_temp_name};
use crate::testhook::crash_point;

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

/// What a ref must hold for an update to go ahead.
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
    fn matches(self, actual: Option<ObjectId>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => actual.is_none(),
            Expected::Value(id) => actual == Some(id),
        }
    }

    fn describe(self) -> String {
        match self {
            Expected::Any => "any value".to_owned(),
            Expected::Absent => "absent".to_owned(),
            Expected::Value(id) => id.to_string(),
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

impl Serialize for BranchName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BranchName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BranchName::from_stored(&text).map_err(serde::de::Error::custom)
    }
}

/// The journal of a multi-ref transaction (`.muse/ref-transactions/<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    transaction_id: String,
    pid: u32,
    host: String,
    created_at: String,
    message: String,
    author: String,
    changes: Vec<RefChange>,
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
    /// attributed to `author`.
    #[must_use]
    pub fn new(layout: Layout, writer: DurableWriter, author: String) -> Self {
        Self {
            layout,
            writer,
            author,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// The same store with another lock wait limit.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    fn lock(&self, target: &Path) -> Result<FileLock> {
        // A nested branch (`feat/x`) may need its directory first.
        if let Some(dir) = target.parent() {
            self.writer.create_dir_all(dir)?;
        }
        FileLock::acquire(
            self.writer.vfs(),
            &FileLock::path_for(target),
            self.lock_timeout,
        )
    }

    /// Reads HEAD.
    pub fn head(&self) -> Result<Head> {
        let path = self.layout.head();
        let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
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
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RefState::Missing),
            // A directory of nested branches (`feat` when `feat/x` exists).
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => return Ok(RefState::Missing),
            Err(e) => return Err(Error::io("read ref", path, e)),
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
    pub fn branches(&self) -> Result<Vec<(BranchName, RefState)>> {
        let mut names = Vec::new();
        let mut files = Vec::new();
        crate::reach::ref_files(&self.layout.heads_dir(), "", &mut files)?;
        for (full, path) in files {
            match BranchName::from_stored(&full) {
                Ok(b) => names.push(b),
                Err(e) => log::warn!("skipping ref file '{}': {e}", path.display()),
            }
        }
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let state = self.branch_state(&name)?;
                Ok((name, state))
            })
            .collect()
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
        let _lock = self.lock(&path)?;
        let old = self.head_commit().unwrap_or(None);
        self.writer
            .write_file(&path, TempKind::State, head.to_file_content().as_bytes())?;
        let new = match head {
            Head::Branch(b) => self.branch(b)?,
            Head::Detached(id) => Some(*id),
        };
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
        reflog::read(&self.layout.branch_log(branch))
    }

    /// The reflog of HEAD.
    pub fn head_reflog(&self) -> Result<Reflog> {
        reflog::read(&self.layout.head_log())
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
            let old = change.old.commit().unwrap_or(ObjectId::ZERO);
            let Some(new) = change.new.commit() else {
                // A deletion: removing the reflog is idempotent.
                refs.log_change(change, &journal.message)?;
                continue;
            };
            let logged = |log: Reflog| {
                log.entries
                    .last()
                    .is_some_and(|e| e.old == old && e.new == new)
            };
            if !logged(refs.reflog(&change.branch)?) {
                refs.log(
                    &refs.layout.branch_log(&change.branch),
                    old,
                    new,
                    &journal.message,
                )?;
            }
            if matches!(refs.head(), Ok(Head::Branch(ref b)) if *b == change.branch)
                && !logged(refs.head_reflog()?)
            {
                refs.log(&refs.layout.head_log(), old, new, &journal.message)?;
            }
        }
        Ok(())
    }

    /// Finishes every multi-ref transaction that a dead process left
    /// half-applied. Journals whose locks a live process holds are in
    /// progress and left alone. Returns how many were rolled forward.
    pub fn recover(&self) -> Result<usize> {
        let dir = self.layout.transactions_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut recovered = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_temp_name(name) || !name.ends_with(".json") {
                continue;
            }
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", path, e)),
            };
            let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                reason: format!("ref transaction journal: {e}"),
            })?;
            let mut branches: Vec<&BranchName> =
                journal.changes.iter().map(|c| &c.branch).collect();
            branches.sort();
            let mut locks = Vec::new();
            for branch in branches {
                match FileLock::try_acquire(
                    self.writer.vfs(),
                    &FileLock::path_for(&self.layout.branch_path(branch)),
                )? {
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

/// Several ref updates applied all-or-nothing; see the module docs.
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
        for (branch, _, _) in &self.ops {
            if !seen.insert(branch.clone()) {
                return Err(Error::Invalid(format!(
                    "branch '{branch}' appears more than once in one transaction"
                )));
            }
        }
        // Locks in name order: two transactions can never wait on each other.
        let mut locks = Vec::with_capacity(seen.len());
        for branch in &seen {
            locks.push(refs.lock(&refs.layout.branch_path(branch))?);
        }
        let mut changes = Vec::new();
        for (branch, change, expected) in &self.ops {
            let old = refs.branch_state(branch)?;
            if !expected.matches(old.commit()) {
                return Err(Error::CasMismatch {
                    branch: branch.to_string(),
                    expected: expected.describe(),
                    actual: old.commit(),
                });
            }
            let new = match change {
                Change::Verify => continue,
                Change::Set(id) => RefState::At(*id),
                Change::Delete if old == RefState::Missing => {
                    return Err(Error::UnknownRef {
                        name: branch.to_string(),
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
        let journal_path = if changes.len() > 1 {
            Some(self.write_journal(&changes)?)
        } else {
            None
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

    fn write_journal(&self, changes: &[RefChange]) -> Result<PathBuf> {
        let refs = self.refs;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let journal = Journal {
            transaction_id: id.clone(),
            pid: std::process::id(),
            host: host_name(),
            created_at: Timestamp::now().to_isoformat(),
            message: self.message.clone(),
            author: refs.author.clone(),
            changes: changes.to_vec(),
        };
        let path = refs.layout.transactions_dir().join(format!("{id}.json"));
        let bytes =
            serde_json::to_vec_pretty(&journal).map_err(|e| Error::Invalid(e.to_string()))?;
        refs.writer.write_file(&path, TempKind::State, &bytes)?;
        Ok(path)
    }

    fn apply(&self, changes: &[RefChange]) -> Result<()> {
        for (i, change) in changes.iter().enumerate() {
            self.refs.write_state(&change.branch, change.new)?;
            if i == 0 {
                crash_point("ref-txn-first-applied");
            }
        }
        for change in changes {
            self.refs.log_change(change, &self.message)?;
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
