//! Roots and reachability, shared by `fsck` and `gc`.
//!
//! Invariant: the roots are everything that may name a commit, snapshot or
//! object the user can still get back to: HEAD, every branch, every old and
//! new id of every reflog line, `MERGE_STATE.json`, `REBASE_STATE.json`,
//! pending ref-transaction journals, op-log checkpoints, and every file
//! other tools keep under `.muse/` (tags, remote-tracking pointers, the
//! stash, and any file this project does not know, see `foreign.rs`). `gc`
//! removes only what the walk from all of them does not reach.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use super::problem::{Problem, ProblemKind, Severity};
use super::root::{Root, Roots};
use crate::error::Error;
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::refs::{Head, Journal, RefState, Reflog};
use crate::repo::Repository;
use crate::state::{CheckoutJournal, MergeState, OpLog, RebaseState};

fn rel(layout: &Layout, path: &Path) -> String {
    path.strip_prefix(layout.muse_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Reads every root; problems reading them are pushed to `problems`.
#[expect(
    clippy::too_many_lines,
    reason = "one short block per kind of root, in the order the module docs list them"
)]
pub(crate) fn collect_roots(repo: &Repository, problems: &mut Vec<Problem>) -> Roots {
    let layout = repo.layout();
    let mut roots = Roots::default();
    let refs = repo.refs();

    // HEAD.
    let head_path = layout.head();
    match refs.head() {
        Ok(Head::Detached(id)) => roots.commits.push(Root {
            id,
            source: "HEAD".into(),
            path: head_path,
            strong: true,
        }),
        Ok(Head::Branch(branch)) => {
            if matches!(refs.branch_state(&branch), Ok(RefState::Missing)) {
                problems.push(Problem::new(
                    Severity::Note,
                    ProblemKind::UnbornBranch,
                    Some(head_path),
                    None,
                    format!(
                        "HEAD names branch '{branch}', which does not exist: an unborn branch, which the next commit creates"
                    ),
                ));
            }
        }
        Err(e) => problems.push(Problem::from_error(ProblemKind::BadRef, &e, head_path)),
    }

    // What stands where a branch file or a reflog belongs and is not a
    // regular file (listed, never opened: a FIFO must not stall fsck).
    match refs.odd_ref_files() {
        Ok(odd) => {
            for (path, what) in odd {
                let (kind, role) = if path.starts_with(layout.logs_dir()) {
                    (ProblemKind::BadReflog, "reflog")
                } else {
                    (ProblemKind::BadRef, "branch file")
                };
                let name = rel(layout, &path);
                problems.push(Problem::new(
                    Severity::Damage,
                    kind,
                    Some(path),
                    None,
                    format!("{role} '{name}' is {what}, not a regular file"),
                ));
            }
        }
        Err(e) => problems.push(Problem::io(&e, layout.heads_dir())),
    }

    // Branches.
    let files = refs.branch_files().unwrap_or_else(|e| {
        problems.push(Problem::io(&e, layout.heads_dir()));
        Vec::new()
    });
    for (name, path) in files {
        let branch = match name {
            Ok(b) => b,
            Err(e) => {
                problems.push(Problem::new(
                    Severity::Note,
                    ProblemKind::StrayFile,
                    Some(path),
                    None,
                    format!("not a valid branch name, ignored: {e}"),
                ));
                continue;
            }
        };
        roots.branches += 1;
        match refs.branch_state(&branch) {
            Ok(state) => {
                if let Some(id) = state.commit() {
                    if let Ok(log) = refs.reflog(&branch)
                        && let Some(last) = log.entries.last()
                        && last.new != id
                    {
                        problems.push(Problem::new(
                            Severity::Note,
                            ProblemKind::ReflogGap,
                            Some(layout.branch_log(&branch)),
                            Some(id),
                            format!(
                                "branch '{branch}' is at {id} but its reflog ends at {}: it moved without a reflog line",
                                last.new
                            ),
                        ));
                    }
                    roots.commits.push(Root {
                        id,
                        source: format!("refs/heads/{branch}"),
                        path,
                        strong: true,
                    });
                }
            }
            Err(e) => problems.push(Problem::from_error(ProblemKind::BadRef, &e, path)),
        }
    }

    // Reflogs.
    let logs = refs.reflog_files().unwrap_or_else(|e| {
        problems.push(Problem::io(&e, layout.logs_dir()));
        Vec::new()
    });
    for path in logs {
        roots.reflogs += 1;
        let log = match Reflog::read(&path) {
            Ok(log) => log,
            Err(e) => {
                problems.push(Problem::from_error(ProblemKind::BadReflog, &e, path));
                continue;
            }
        };
        let source = rel(layout, &path);
        for line in &log.malformed {
            problems.push(Problem::new(
                Severity::Damage,
                ProblemKind::BadReflog,
                Some(path.clone()),
                None,
                format!("reflog '{source}': line {line} is malformed"),
            ));
        }
        if log.torn_tail {
            problems.push(Problem::new(
                Severity::Note,
                ProblemKind::TornReflog,
                Some(path.clone()),
                None,
                format!(
                    "reflog '{source}' ends in a torn line left by a crash (ignored by readers)"
                ),
            ));
        }
        roots.reflog_entries += log.entries.len();
        for entry in &log.entries {
            for id in [entry.old, entry.new] {
                if id != ObjectId::ZERO {
                    roots.commits.push(Root {
                        id,
                        source: source.clone(),
                        path: path.clone(),
                        strong: false,
                    });
                }
            }
        }
    }

    // State files naming commits.
    let merge_path = layout.merge_state();
    match MergeState::read(repo) {
        Ok(Some(state)) => {
            let ids = [
                Some(state.ours_commit),
                Some(state.theirs_commit),
                state.base_commit,
            ];
            for id in ids.into_iter().flatten() {
                roots.commits.push(Root {
                    id,
                    source: "MERGE_STATE.json".into(),
                    path: merge_path.clone(),
                    strong: true,
                });
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(Problem::from_error(
            ProblemKind::BadStateFile,
            &e,
            merge_path,
        )),
    }
    let rebase_path = layout.rebase_state();
    match RebaseState::read(repo) {
        Ok(Some(state)) => {
            let ids = [state.original_head, state.onto]
                .into_iter()
                .chain(state.remaining)
                .chain(state.completed);
            for id in ids {
                roots.commits.push(Root {
                    id,
                    source: "REBASE_STATE.json".into(),
                    path: rebase_path.clone(),
                    strong: true,
                });
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(Problem::from_error(
            ProblemKind::BadStateFile,
            &e,
            rebase_path,
        )),
    }

    // An interrupted checkout: both ends stay until it is completed, and
    // fsck says the working tree is between them.
    let checkout_path = layout.checkout_journal();
    match CheckoutJournal::read(repo) {
        Ok(Some(journal)) => {
            problems.push(Problem::new(
                Severity::Note,
                ProblemKind::InterruptedCheckout,
                Some(checkout_path.clone()),
                Some(journal.target_commit),
                format!(
                    "a checkout from {} to {} was interrupted: {} paths may be between the two \
                     commits; the next muse command completes it",
                    journal.from,
                    journal.label,
                    journal.to_write.len() + journal.to_remove.len()
                ),
            ));
            for id in journal
                .from_commit
                .into_iter()
                .chain([journal.target_commit])
            {
                roots.commits.push(Root {
                    id,
                    source: "CHECKOUT_IN_PROGRESS.json".into(),
                    path: checkout_path.clone(),
                    strong: true,
                });
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(Problem::from_error(
            ProblemKind::BadStateFile,
            &e,
            checkout_path,
        )),
    }

    // Pending ref-transaction journals: every id they name.
    journal_roots(layout, &mut roots, problems);

    // Op-log checkpoints name snapshots.
    match OpLog::sessions(repo) {
        Ok(sessions) => {
            for session in sessions {
                let log = OpLog::new(repo, session);
                let path = layout.checkpoint_path(log.session());
                match log.read_checkpoint() {
                    Ok(Some(cp)) => {
                        if let Some(id) = cp.snapshot_id {
                            roots.snapshots.push(Root {
                                id,
                                source: rel(layout, &path),
                                path,
                                strong: false,
                            });
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        problems.push(Problem::from_error(ProblemKind::BadStateFile, &e, path));
                    }
                }
            }
        }
        Err(e) => problems.push(Problem::from_error(
            ProblemKind::BadStateFile,
            &e,
            layout.op_log_dir(),
        )),
    }

    // Tags, remote-tracking pointers, the stash and every other file under
    // `.muse/` this project does not write.
    super::foreign::collect(repo, &mut roots, problems);
    roots
}

fn journal_roots(layout: &Layout, roots: &mut Roots, problems: &mut Vec<Problem>) {
    let paths = match Journal::list(layout) {
        Ok(paths) => paths,
        Err(e) => {
            problems.push(Problem::io(&e, layout.transactions_dir()));
            return;
        }
    };
    for path in paths {
        let journal = match Journal::read(&path) {
            Ok(Some(journal)) => journal,
            Ok(None) => continue,
            Err(e) => {
                problems.push(Problem::from_error(ProblemKind::BadStateFile, &e, path));
                continue;
            }
        };
        for change in &journal.changes {
            for id in [change.old.commit(), change.new.commit()]
                .into_iter()
                .flatten()
            {
                roots.commits.push(Root {
                    id,
                    source: rel(layout, &path),
                    path: path.clone(),
                    strong: false,
                });
            }
        }
    }
}

/// What the walk reached.
#[derive(Debug, Default)]
pub(crate) struct Reachable {
    pub(crate) commits: HashSet<ObjectId>,
    pub(crate) snapshots: HashSet<ObjectId>,
    pub(crate) objects: HashSet<ObjectId>,
}

impl Reachable {
    /// Reads every root ([`collect_roots`]) and walks from all of them: what
    /// fsck and gc both start with.
    pub(crate) fn from_roots(
        repo: &Repository,
        present: &HashSet<ObjectId>,
        problems: &mut Vec<Problem>,
    ) -> (Roots, Self) {
        let roots = collect_roots(repo, problems);
        let mut reach = Self::default();
        reach.walk(repo, &roots.commits, &roots.snapshots, present, problems);
        reach.add_objects(repo, &roots.objects, present, problems);
        (roots, reach)
    }

    /// Adds objects named directly by a root; a missing one is a problem
    /// (damage under a strong root, a note under a weak one).
    pub(crate) fn add_objects(
        &mut self,
        repo: &Repository,
        object_roots: &[Root],
        present: &HashSet<ObjectId>,
        problems: &mut Vec<Problem>,
    ) {
        for root in object_roots {
            if !present.contains(&root.id) {
                problems.push(Problem::new(
                    if root.strong {
                        Severity::Damage
                    } else {
                        Severity::Note
                    },
                    ProblemKind::MissingObject,
                    Some(repo.objects().path(&root.id)),
                    Some(root.id),
                    format!("object {} (named by {}) is missing", root.id, root.source),
                ));
            }
            self.objects.insert(root.id);
        }
    }

    /// Walks from `commit_roots` and `snapshot_roots`, adding to what was
    /// reached before (so a second call with more roots only reads what is
    /// new). Every record read is verified. A missing or corrupt record or a
    /// missing object is a problem: damage under a strong root, a note under
    /// a weak one. `present` is the set of stored object ids.
    #[expect(
        clippy::too_many_lines,
        reason = "the commit walk and the parallel snapshot pass share their bookkeeping"
    )]
    pub(crate) fn walk(
        &mut self,
        repo: &Repository,
        commit_roots: &[Root],
        snapshot_roots: &[Root],
        present: &HashSet<ObjectId>,
        problems: &mut Vec<Problem>,
    ) {
        let records = repo.records();
        // Strong roots first, so that what a branch reaches is judged as
        // damage even when a reflog line reaches it too.
        let mut ordered: Vec<&Root> = commit_roots.iter().collect();
        ordered.sort_by_key(|r| !r.strong);
        let mut new_snapshots: HashMap<ObjectId, (bool, String)> = HashMap::new();
        for root in snapshot_roots {
            if !self.snapshots.contains(&root.id) {
                let e = new_snapshots
                    .entry(root.id)
                    .or_insert((root.strong, root.source.clone()));
                e.0 |= root.strong;
            }
        }
        for root in ordered {
            if self.commits.contains(&root.id) {
                continue;
            }
            // (commit, strong, who names it)
            let mut stack = vec![(root.id, root.strong, None::<ObjectId>)];
            while let Some((id, strong, child)) = stack.pop() {
                if !self.commits.insert(id) {
                    continue;
                }
                match records.read_commit(&id) {
                    Ok(commit) => {
                        for parent in [commit.parent_commit_id, commit.parent2_commit_id]
                            .into_iter()
                            .flatten()
                        {
                            if !self.commits.contains(&parent) {
                                stack.push((parent, strong, Some(id)));
                            }
                        }
                        if !self.snapshots.contains(&commit.snapshot_id) {
                            let e = new_snapshots
                                .entry(commit.snapshot_id)
                                .or_insert((strong, format!("commit {id}")));
                            e.0 |= strong;
                        }
                    }
                    Err(e) => {
                        let severity = if strong {
                            Severity::Damage
                        } else {
                            Severity::Note
                        };
                        let path = repo.layout().commit_path(&id);
                        let mut problem = match (&e, child) {
                            (Error::RecordNotFound { .. }, None) => Problem::new(
                                severity,
                                if strong {
                                    ProblemKind::DanglingRef
                                } else {
                                    ProblemKind::MissingCommit
                                },
                                Some(root.path.clone()),
                                Some(id),
                                format!("{} points to commit {id}, which is missing", root.source),
                            ),
                            (Error::RecordNotFound { .. }, Some(child)) => Problem::new(
                                severity,
                                ProblemKind::MissingCommit,
                                Some(path),
                                Some(id),
                                format!(
                                    "commit {id} (parent of {child}, reachable from {}) is missing",
                                    root.source
                                ),
                            ),
                            _ => Problem::from_error(ProblemKind::CorruptRecord, &e, path),
                        };
                        problem.id = Some(id);
                        problems.push(problem);
                    }
                }
            }
        }

        // Snapshots, read and verified in parallel.
        let list: Vec<(ObjectId, bool, String)> = new_snapshots
            .into_iter()
            .map(|(id, (strong, who))| (id, strong, who))
            .collect();
        let results: Vec<_> = list
            .par_iter()
            .map(|(id, strong, who)| {
                let mut found = Vec::new();
                let mut local = Vec::new();
                let severity = if *strong {
                    Severity::Damage
                } else {
                    Severity::Note
                };
                match records.read_snapshot(id) {
                    Ok(snapshot) => {
                        for (path, object) in &snapshot.manifest {
                            found.push(*object);
                            if !present.contains(object) {
                                local.push(Problem::new(
                                    severity,
                                    ProblemKind::MissingObject,
                                    Some(repo.objects().path(object)),
                                    Some(*object),
                                    format!(
                                        "object {object} ('{path}' in snapshot {id}) is missing"
                                    ),
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        let path = repo.layout().snapshot_path(id);
                        let mut problem = if matches!(e, Error::RecordNotFound { .. }) {
                            Problem::new(
                                severity,
                                ProblemKind::MissingSnapshot,
                                Some(path),
                                Some(*id),
                                format!("snapshot {id} (named by {who}) is missing"),
                            )
                        } else {
                            Problem::from_error(ProblemKind::CorruptRecord, &e, path)
                        };
                        problem.id = Some(*id);
                        local.push(problem);
                    }
                }
                (*id, found, local)
            })
            .collect();
        for (id, found, local) in results {
            self.snapshots.insert(id);
            self.objects.extend(found);
            problems.extend(local);
        }
    }
}
