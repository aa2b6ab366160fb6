//! `fsck`: checks a whole repository and reports what is wrong with it.
//!
//! Invariants:
//! - fsck only reads: it never repairs, removes or rewrites anything (temp
//!   files and stale locks are reported, recovery on open or `gc` removes
//!   them);
//! - every stored object is hashed, in parallel, with memory bounded per
//!   worker (small objects are read whole, large ones streamed; see
//!   [`ObjectStore::verify`](crate::ObjectStore::verify));
//! - every commit and snapshot record is read and its id recomputed;
//! - a problem is *damage* (the repository lost or corrupted data, exit 1),
//!   a *note* (harmless: unreachable data, leftovers of crashes, a torn log
//!   tail) or an *I/O error* (fsck could not look, exit 3).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use serde::Serialize;

use super::problem::{Problem, ProblemKind, Severity};
use super::reach::Reachable;
use crate::durable::{FileLock, LockOwner};
use crate::error::{Error, Result};
use crate::files::{self, Entry, LeftoverKind, Shards};
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::record::{CommitRecord, SnapshotRecord};
use crate::repo::Repository;
use crate::state::{Intent, OpLog, Reservation};

/// What fsck looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Objects stored (and hashed).
    pub objects: u64,
    /// Their total size.
    pub object_bytes: u64,
    /// Commit records stored.
    pub commits: u64,
    /// Snapshot records stored.
    pub snapshots: u64,
    /// Branches.
    pub branches: u64,
    /// Reflog files.
    pub reflogs: u64,
    /// Reflog lines that parse.
    pub reflog_entries: u64,
    /// Commits reachable from a root.
    pub reachable_commits: u64,
    /// Snapshots reachable from a root.
    pub reachable_snapshots: u64,
    /// Objects reachable from a root.
    pub reachable_objects: u64,
    /// Problems that are damage.
    pub damage: u64,
    /// Problems that are notes.
    pub notes: u64,
    /// I/O errors.
    pub io_errors: u64,
}

/// The result of [`fsck`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    /// What was looked at.
    pub counts: Counts,
    /// Everything found, damage first.
    pub problems: Vec<Problem>,
    /// Leftovers recovery would remove but this user may not (a read-only
    /// repository): recovery on open skips them.
    pub skipped: Vec<PathBuf>,
}

impl FsckReport {
    /// Whether no damage and no I/O error was found (notes are fine).
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.counts.damage == 0 && self.counts.io_errors == 0
    }

    /// The problems of one kind.
    pub fn of_kind(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }
}

/// Checks the whole of `repo`: every object is hashed, every commit and
/// snapshot record re-hashed, every ref, reflog, state file and leftover
/// looked at, and reachability walked from every root. It only reads. Each
/// finding is a [`Problem`]: damage (lost or corrupted data), an I/O error,
/// or a note (unreachable data, crash leftovers). Fails only when the
/// repository cannot be looked at at all; everything else is a problem in
/// the report.
#[expect(
    clippy::too_many_lines,
    reason = "one linear pass per kind of check, each short; splitting would only thread the same report through helpers"
)]
pub fn fsck(repo: &Repository, progress: &dyn Progress) -> Result<FsckReport> {
    let layout = repo.layout();
    let mut problems = Vec::new();
    let mut counts = Counts::default();

    // 1. Objects: list names, then hash every one in parallel.
    progress.start("listing objects", 0);
    let mut ids = Vec::new();
    list_objects(layout, &mut ids, &mut problems);
    counts.objects = ids.len() as u64;
    progress.start("verifying objects", counts.objects);
    let results: Vec<(ObjectId, std::result::Result<u64, Error>)> = ids
        .par_iter()
        .map(|id| {
            let r = repo.objects().verify(id);
            progress.advance(1);
            (*id, r)
        })
        .collect();
    let mut present = HashSet::with_capacity(ids.len());
    for (id, result) in results {
        match result {
            Ok(size) => {
                counts.object_bytes += size;
                present.insert(id);
            }
            // Removed while we looked (a concurrent gc): not damage.
            Err(Error::NotFound { .. }) => counts.objects -= 1,
            Err(e) => {
                // Present but bad: a snapshot naming it must not also
                // report it missing.
                present.insert(id);
                let path = repo.objects().path(&id);
                let mut p = Problem::from_error(ProblemKind::CorruptObject, &e, path);
                p.id = Some(id);
                problems.push(p);
            }
        }
    }
    drop(ids);

    // 2. Refs, reflogs and state files naming commits; reachability.
    progress.start("checking refs and records", 0);
    let (roots, reach) = Reachable::from_roots(repo, &present, &mut problems);
    counts.branches = roots.branches as u64;
    counts.reflogs = roots.reflogs as u64;
    counts.reflog_entries = roots.reflog_entries as u64;
    counts.reachable_commits = reach.commits.len() as u64;
    counts.reachable_snapshots = reach.snapshots.len() as u64;
    counts.reachable_objects = reach.objects.len() as u64;

    // 3. Every record file: verify those the walk did not read.
    let commits = records_of(
        repo.records().list_commits(),
        &layout.commits_dir(),
        &mut problems,
    );
    let snapshots = records_of(
        repo.records().list_snapshots(),
        &layout.snapshots_dir(),
        &mut problems,
    );
    counts.commits = commits.len() as u64;
    counts.snapshots = snapshots.len() as u64;
    let unreached = |files: &[(ObjectId, PathBuf)], seen: &HashSet<ObjectId>| {
        files
            .iter()
            .filter(|(id, _)| !seen.contains(id))
            .cloned()
            .collect::<Vec<_>>()
    };
    let loose_commits = unreached(&commits, &reach.commits);
    let loose_snapshots = unreached(&snapshots, &reach.snapshots);
    let checked: Vec<Problem> =
        loose_commits
            .par_iter()
            .map(|(id, path)| match CommitRecord::read_file(path) {
                Ok(_) => Problem::new(
                    Severity::Note,
                    ProblemKind::UnreachableCommit,
                    Some(path.clone()),
                    Some(*id),
                    format!("commit {id} is not reachable from any ref, reflog or state file"),
                ),
                Err(e) => Problem::from_error(ProblemKind::CorruptRecord, &e, path.clone()),
            })
            .chain(loose_snapshots.par_iter().map(|(id, path)| {
                match SnapshotRecord::read_file(path) {
                    Ok(_) => Problem::new(
                        Severity::Note,
                        ProblemKind::UnreachableSnapshot,
                        Some(path.clone()),
                        Some(*id),
                        format!("snapshot {id} is not reachable from any commit or checkpoint"),
                    ),
                    Err(e) => Problem::from_error(ProblemKind::CorruptRecord, &e, path.clone()),
                }
            }))
            .collect();
    problems.extend(checked);
    for id in present.iter().filter(|id| !reach.objects.contains(id)) {
        problems.push(Problem::new(
            Severity::Note,
            ProblemKind::UnreachableObject,
            Some(repo.objects().path(id)),
            Some(*id),
            format!("object {id} is not named by any reachable snapshot"),
        ));
    }

    // 4. State files.
    check_state(repo, &mut problems);

    // 5. Leftovers: temp files and stale locks.
    let mut skipped = Vec::new();
    match files::leftovers(layout, Shards::All) {
        Ok(leftovers) => {
            let now = SystemTime::now();
            for l in leftovers {
                if l.path
                    .parent()
                    .is_some_and(|dir| !crate::sys::may_write(dir))
                {
                    skipped.push(l.path.clone());
                }
                let age = l.age(now).as_secs();
                match l.kind {
                    LeftoverKind::Temp => problems.push(Problem::new(
                        Severity::Note,
                        ProblemKind::OrphanTemp,
                        Some(l.path.clone()),
                        None,
                        format!(
                            "temp file '{}' ({} bytes, modified {age} s ago) left by a crashed or running writer; {}",
                            l.path.display(),
                            l.size,
                            if l.age(now) > repo.temp_grace() {
                                "it will be removed on the next open or gc"
                            } else {
                                "younger than the grace period, so kept"
                            }
                        ),
                    )),
                    LeftoverKind::Lock => {
                        if !FileLock::is_held(&l.path).unwrap_or(true) {
                            let who = match LockOwner::read(&l.path) {
                                Ok(Some(Ok(owner))) => format!("process {}", owner.pid),
                                _ => "a process".to_owned(),
                            };
                            problems.push(Problem::new(
                                Severity::Note,
                                ProblemKind::StaleLock,
                                Some(l.path.clone()),
                                None,
                                format!(
                                    "lock file '{}' was left by {who}, which died holding it; nothing holds it now, and it will be removed on the next open",
                                    l.path.display()
                                ),
                            ));
                        }
                    }
                    LeftoverKind::Quarantine => {
                        let lock = layout.quarantine_lock(&l.path);
                        if !FileLock::is_held(&lock).unwrap_or(true) {
                            problems.push(Problem::new(
                                Severity::Note,
                                ProblemKind::LeftoverQuarantine,
                                Some(l.path.clone()),
                                None,
                                format!(
                                    "quarantine '{}' was left by an unpack that died; nothing from it was published, and it will be removed on the next open",
                                    l.path.display()
                                ),
                            ));
                        }
                    }
                    LeftoverKind::LegacyLock => {
                        if let Ok(Some(Ok(owner))) = LockOwner::read(&l.path)
                            && owner.is_dead()
                        {
                            problems.push(Problem::new(
                                Severity::Note,
                                ProblemKind::StaleLock,
                                Some(l.path.clone()),
                                None,
                                format!(
                                    "lock '{}' (the format of older versions) is held by process {}, which is dead; it will be removed on the next open",
                                    l.path.display(),
                                    owner.pid
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Err(e) => problems.push(Problem::io(&e, layout.muse_dir().to_path_buf())),
    }
    progress.finish();

    problems.sort_by(|a, b| {
        (a.severity, a.kind, &a.path, a.id).cmp(&(b.severity, b.kind, &b.path, b.id))
    });
    for p in &problems {
        match p.severity {
            Severity::Damage => counts.damage += 1,
            Severity::Note => counts.notes += 1,
            Severity::Io => counts.io_errors += 1,
        }
    }
    for p in &mut problems {
        if p.path.as_ref().is_some_and(|path| skipped.contains(path)) {
            p.message.push_str(
                "; this user may not remove it (the repository is not writable here), so recovery leaves it",
            );
        }
    }
    Ok(FsckReport {
        counts,
        problems,
        skipped,
    })
}

/// Lists every object id; stray (non-object, non-temp) files are notes.
fn list_objects(layout: &Layout, ids: &mut Vec<ObjectId>, problems: &mut Vec<Problem>) {
    let (shards, links) = match files::shards(layout) {
        Ok(s) => s,
        Err(e) => {
            problems.push(Problem::io(&e, layout.objects_dir()));
            return;
        }
    };
    for shard in shards {
        match files::list_shard(&shard) {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Entry::Item(id, _) => ids.push(id),
                        Entry::Temp(_) => {}
                        Entry::Stray(path) => problems.push(stray(path)),
                    }
                }
            }
            Err(e) => problems.push(Problem::io(&e, shard)),
        }
    }
    // A symlinked shard is never followed: its objects count as missing,
    // and the link itself is damage named here.
    for link in links {
        let message = format!(
            "'{}' is a symlink; object shards are never followed through one (replace it with a directory)",
            link.display()
        );
        problems.push(Problem::new(
            Severity::Damage,
            ProblemKind::CorruptObject,
            Some(link),
            None,
            message,
        ));
    }
}

fn stray(path: PathBuf) -> Problem {
    let message = format!("'{}' is not a file this store writes", path.display());
    Problem::new(
        Severity::Note,
        ProblemKind::StrayFile,
        Some(path),
        None,
        message,
    )
}

/// The records of a record-directory listing; stray files are notes and a
/// listing that failed is an I/O problem.
fn records_of(
    listing: Result<Vec<Entry>>,
    dir: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<(ObjectId, PathBuf)> {
    let entries = match listing {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(Problem::io(&e, dir.to_path_buf()));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Entry::Item(id, path) => out.push((id, path)),
            Entry::Temp(_) => {}
            Entry::Stray(path) => problems.push(stray(path)),
        }
    }
    out
}

/// Parses every state file that no root walk reads.
fn check_state(repo: &Repository, problems: &mut Vec<Problem>) {
    let layout = repo.layout();
    let mut check = |result: Result<()>, path: PathBuf| {
        if let Err(e) = result {
            problems.push(Problem::from_error(ProblemKind::BadStateFile, &e, path));
        }
    };
    check(repo.info().map(drop), layout.repo_json());
    check(repo.config().map(drop), layout.config());
    check(Reservation::list(repo).map(drop), layout.reservations_dir());
    check(Intent::list(repo).map(drop), layout.intents_dir());
    match OpLog::sessions(repo) {
        Ok(sessions) => {
            for session in sessions {
                let log = OpLog::new(repo, session);
                let path = log.ops_path().to_path_buf();
                check(log.read().map(drop), path);
            }
        }
        Err(e) => check(Err(e), layout.op_log_dir()),
    }
}
