//! `gc`: removes unreachable objects and records older than a prune age,
//! and temp files left by crashes.
//!
//! Invariants:
//! - nothing reachable from a root is removed: HEAD, every branch, every old
//!   and new id of every reflog line, `MERGE_STATE.json`,
//!   `REBASE_STATE.json`, pending ref-transaction journals and op-log
//!   checkpoints (see `reach.rs`), nor anything reachable from an
//!   unreachable commit or snapshot that is itself too young to prune (a
//!   writer may be about to point a ref at it);
//! - gc refuses to remove anything when a root cannot be read or a record
//!   reachable from a branch, HEAD or a state file is missing or corrupt:
//!   it could not know what that record reaches;
//! - an unreachable file is removed only when its mtime is older than the
//!   prune age, checked again right before the removal; a temp file only
//!   when older than the repository's temp grace period, whatever the prune
//!   age;
//! - every removal goes through [`DurableWriter::remove_file`](crate::DurableWriter::remove_file).
//!
//! Concurrent writers: gc marks and sweeps holding `.muse/locks/gc`
//! exclusively, and every writer of this crate holds it shared from its
//! first object write until its ref moved (`Repository::write_guard`). So no
//! commit is half-way while gc decides, and none starts until gc is done:
//! whatever a writer references is either reachable when gc looks or
//! written after gc finished, at any prune age, `now` included. A writer
//! that does not take the guard (an embedder writing objects and moving
//! refs on its own) is still protected by the age rule: an object or record
//! written while gc runs has an mtime after gc started and is kept, and a
//! re-used object's mtime is refreshed.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::problem::{Problem, Severity};
use super::reach::Reachable;
use super::root::Root;
use crate::durable::FileLock;
use crate::error::{Error, Result};
use crate::files::{self, Entry, LeftoverKind, Shards};
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::repo::Repository;

/// The default prune age: two weeks, as git.
pub const DEFAULT_PRUNE_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// Slack under a zero prune age: file mtimes come from the kernel's coarse
/// clock, which can lag the precise clock gc reads its start time from by a
/// scheduler tick. Without it an object written just after gc started could
/// look older than the start.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// How gc runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreachable objects and records modified less than this long ago are
    /// kept. `None` never prunes them (temp files are still removed).
    pub prune_age: Option<Duration>,
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            prune_age: Some(DEFAULT_PRUNE_AGE),
            dry_run: false,
        }
    }
}

/// One removed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// `object`, `commit`, `snapshot` or `temp`.
    pub kind: &'static str,
    /// Its id (not for temp files).
    pub id: Option<ObjectId>,
    /// Where it was.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// What gc did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Whether this was a dry run (nothing was removed).
    pub dry_run: bool,
    /// Everything removed (or that would be, in a dry run).
    pub removed: Vec<Removed>,
    /// Objects removed.
    pub objects_removed: u64,
    /// Commit records removed.
    pub commits_removed: u64,
    /// Snapshot records removed.
    pub snapshots_removed: u64,
    /// Temp files removed.
    pub temps_removed: u64,
    /// Total bytes of what was removed.
    pub bytes_freed: u64,
    /// Unreachable files kept because they are younger than the prune age.
    pub kept_recent: u64,
    /// Reachable commits, snapshots and objects (kept).
    pub reachable_commits: u64,
    /// See `reachable_commits`.
    pub reachable_snapshots: u64,
    /// See `reachable_commits`.
    pub reachable_objects: u64,
    /// Notes from the reachability walk (for example a reflog line naming
    /// a commit that is gone); they do not stop gc.
    pub notes: Vec<Problem>,
}

/// A file gc may remove: unreachable, with its mtime.
struct Candidate {
    kind: &'static str,
    id: ObjectId,
    path: PathBuf,
}

/// Runs gc on `repo`: removes unreachable objects and records older than
/// [`GcOptions::prune_age`], and temp files older than the repository's
/// grace period. Nothing reachable from a root (HEAD, branches, every
/// reflog line, merge and rebase state, pending journals, op-log
/// checkpoints) is removed; damage or an unreadable root makes gc refuse
/// ([`Error::GcRefused`]) rather than guess. It marks and sweeps holding
/// the gc lock exclusively, so no writer is half-way (writers hold it
/// shared, see [`Repository::write_guard`]).
#[expect(
    clippy::too_many_lines,
    reason = "the steps are ordered for safety (walk, protect recent, remove records before objects) and read best in one place"
)]
pub fn gc(repo: &Repository, options: &GcOptions) -> Result<GcReport> {
    let start = SystemTime::now();
    let cutoff = options.prune_age.map(|age| {
        start
            .checked_sub(age + CLOCK_SLACK)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    let layout = repo.layout();
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };

    if let Some(cutoff) = cutoff {
        // Writers hold this lock shared from their first write until their
        // ref moved; holding it exclusively, gc sees no writer half-way, and
        // none starts until the sweep is over.
        let _exclusive =
            FileLock::acquire_exclusive_kept(&layout.gc_lock(), repo.options().lock_timeout)
                .map_err(|e| match Error::from(e) {
                    Error::Locked { path, .. } => Error::Locked {
                        path,
                        holder: "writers in progress (commits, ref updates); gc waited for them"
                            .to_owned(),
                    },
                    other => other,
                })?;
        let present: HashSet<ObjectId> = list_object_ids(layout)?.into_iter().collect();
        let mut problems = Vec::new();
        let (_, mut reach) = Reachable::from_roots(repo, &present, &mut problems);
        refuse_on_damage(&problems)?;

        // Unreachable records too young to prune may be about to be named
        // by a ref: keep what they reach as well.
        let commits = record_ids(repo.records().list_commits()?);
        let snapshots = record_ids(repo.records().list_snapshots()?);
        let recent = |files: &[(ObjectId, PathBuf)], seen: &HashSet<ObjectId>| -> Vec<Root> {
            files
                .iter()
                .filter(|(id, path)| !seen.contains(id) && !older_than(path, cutoff))
                .map(|(id, path)| Root {
                    id: *id,
                    source: "a recent unreachable record".into(),
                    path: path.clone(),
                    strong: false,
                })
                .collect()
        };
        let recent_commits = recent(&commits, &reach.commits);
        let recent_snapshots = recent(&snapshots, &reach.snapshots);
        reach.walk(
            repo,
            &recent_commits,
            &recent_snapshots,
            &present,
            &mut problems,
        );
        refuse_on_damage(&problems)?;
        report.notes = problems;
        report.reachable_commits = reach.commits.len() as u64;
        report.reachable_snapshots = reach.snapshots.len() as u64;
        report.reachable_objects = reach.objects.len() as u64;

        // Records first, then objects: a crash in between leaves only
        // unreachable objects, which the next gc removes.
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut add = |kind, files: Vec<(ObjectId, PathBuf)>, seen: &HashSet<ObjectId>| {
            for (id, path) in files {
                if !seen.contains(&id) {
                    candidates.push(Candidate { kind, id, path });
                }
            }
        };
        add("commit", commits, &reach.commits);
        add("snapshot", snapshots, &reach.snapshots);
        let mut objects: Vec<ObjectId> = present
            .into_iter()
            .filter(|id| !reach.objects.contains(id))
            .collect();
        objects.sort_unstable();
        add(
            "object",
            objects
                .into_iter()
                .map(|id| (id, layout.object_path(&id)))
                .collect(),
            &HashSet::new(),
        );
        for c in candidates {
            let meta = match fs::symlink_metadata(&c.path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &c.path, e)),
            };
            let old = meta.modified().is_ok_and(|m| m < cutoff);
            if !old {
                report.kept_recent += 1;
                continue;
            }
            if !options.dry_run {
                repo.writer().remove_file(&c.path)?;
                // Killed here, gc has removed one record (records go first)
                // and kept everything else: the chaos tests stop it here.
                crate::failpoint::crash_point("gc-removed-one");
            }
            match c.kind {
                "commit" => report.commits_removed += 1,
                "snapshot" => report.snapshots_removed += 1,
                _ => report.objects_removed += 1,
            }
            report.bytes_freed += meta.len();
            report.removed.push(Removed {
                kind: c.kind,
                id: Some(c.id),
                path: c.path,
                bytes: meta.len(),
            });
        }
    }

    // Temp files older than the grace period, wherever they can be.
    let grace = repo.temp_grace();
    for leftover in files::leftovers(layout, Shards::All)? {
        if leftover.kind != LeftoverKind::Temp
            || leftover.age(start) <= grace
            || !files::still_older_than(&leftover.path, SystemTime::now(), grace)
        {
            continue;
        }
        if !options.dry_run {
            repo.writer().remove_file(&leftover.path)?;
        }
        report.temps_removed += 1;
        report.bytes_freed += leftover.size;
        report.removed.push(Removed {
            kind: "temp",
            id: None,
            path: leftover.path,
            bytes: leftover.size,
        });
    }
    Ok(report)
}

fn refuse_on_damage(problems: &[Problem]) -> Result<()> {
    if let Some(p) = problems.iter().find(|p| p.severity != Severity::Note) {
        return Err(Error::GcRefused {
            reason: p.message.clone(),
        });
    }
    Ok(())
}

fn older_than(path: &std::path::Path, cutoff: SystemTime) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m < cutoff)
}

/// Every stored object id (names only).
fn list_object_ids(layout: &Layout) -> Result<Vec<ObjectId>> {
    let mut ids = Vec::new();
    for shard in files::shard_dirs(layout)? {
        for entry in files::list_shard(&shard)? {
            if let Entry::Item(id, _) = entry {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The records of a record-directory listing.
fn record_ids(entries: Vec<Entry>) -> Vec<(ObjectId, PathBuf)> {
    entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Item(id, path) => Some((id, path)),
            Entry::Temp(_) | Entry::Stray(_) => None,
        })
        .collect()
}

/// Parses a prune age: `now`, `never`, or a number and a unit
/// (`s`, `m`/`min`, `h`, `d`, `w`, `month`, `y`, singular or plural, written
/// `2.weeks`, `2.weeks.ago`, `2weeks`, `1h` or `2 weeks ago`). `None` means
/// never prune.
pub fn parse_prune_age(text: &str) -> std::result::Result<Option<Duration>, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix(".ago")
        .or_else(|| t.strip_suffix(" ago"))
        .unwrap_or(&t);
    match t {
        "now" => return Ok(Some(Duration::ZERO)),
        "never" => return Ok(None),
        _ => {}
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let bad = || {
        format!(
            "invalid prune age '{text}': expected 'now', 'never' or a number and a unit, like '2.weeks' or '1h'"
        )
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start_matches(['.', ' ']);
    let seconds: u64 = match unit
        .strip_suffix('s')
        .filter(|u| u.len() > 1)
        .unwrap_or(unit)
    {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        "w" | "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "y" | "year" => 365 * 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds)
        .map(|s| Some(Duration::from_secs(s)))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_ages_parse() {
        let d = |s| Some(Duration::from_secs(s));
        assert_eq!(parse_prune_age("now"), Ok(Some(Duration::ZERO)));
        assert_eq!(parse_prune_age("never"), Ok(None));
        assert_eq!(parse_prune_age("2.weeks"), Ok(d(14 * 86_400)));
        assert_eq!(parse_prune_age("2.weeks.ago"), Ok(d(14 * 86_400)));
        assert_eq!(parse_prune_age("1h"), Ok(d(3600)));
        assert_eq!(parse_prune_age("30.minutes"), Ok(d(1800)));
        assert_eq!(parse_prune_age("1s"), Ok(d(1)));
        assert_eq!(parse_prune_age("3days"), Ok(d(3 * 86_400)));
        assert!(parse_prune_age("soon").is_err(), "no number");
        assert!(parse_prune_age("2.fortnights").is_err(), "unknown unit");
        assert!(parse_prune_age("").is_err(), "empty");
    }
}
