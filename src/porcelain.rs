//! What a person does with a working tree: commit, status, checkout.
//!
//! Invariants:
//! - `commit` stores every object and record before it moves the branch, and
//!   moves it with one compare-and-swap from the parent it built on: if the
//!   branch moved meanwhile nothing changes and [`Error::CasMismatch`] says
//!   so (the stored records are harmless and the commit can be retried);
//! - `checkout` writes every file it changes into one batch, verifying each
//!   object as it is copied, and publishes the batch only when all of them
//!   verified, so a damaged object changes no file of the working tree; it
//!   refuses to overwrite uncommitted changes
//!   unless forced, restores files through the store's verified restore
//!   (atomic replace, fresh mtime, no symlink followed) and moves HEAD last.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use std::collections::BTreeMap;

use crate::history::{ManifestDiff, ancestors};
use crate::id::ObjectId;
use crate::name::BranchName;
use crate::progress::Progress;
use crate::refs::{Head, RefState};
use crate::repo::{CommitOutcome, NewCommit, Repository};
use crate::state::{CheckoutJournal, MergeState, RebaseState};
use crate::worktree::{
    Exclusions, IgnoreWarning, Refresh, stage_worktree, worktree_manifest_reporting,
    worktree_manifest_with,
};

/// Snapshots the working tree and commits it as `spec` says (by default on
/// the current branch), reporting the files it stores to `progress`. A
/// merge in progress (`MERGE_STATE.json`) makes this the merge commit: its
/// other side becomes the second parent and the merge state is cleared once
/// the branch has moved.
///
/// ```
/// # fn main() -> muse_store::Result<()> {
/// use muse_store::{NewCommit, NoProgress, Repository, commit_worktree};
///
/// let dir = tempfile::tempdir().unwrap();
/// let repo = Repository::init(dir.path())?;
/// std::fs::write(dir.path().join("notes.txt"), "hi\n").unwrap();
/// let made = commit_worktree(&repo, &NewCommit::new("notes"), &NoProgress)?;
/// assert!(made.snapshot.manifest.contains_key("notes.txt"));
/// # Ok(())
/// # }
/// ```
pub fn commit_worktree(
    repo: &Repository,
    spec: &NewCommit,
    progress: &dyn Progress,
) -> Result<CommitOutcome> {
    if spec.message.trim().is_empty() {
        return Err(Error::EmptyMessage);
    }
    // The working tree and HEAD stay as they are until the branch moved (a
    // checkout waits), and gc cannot prune what the commit will name.
    let _worktree = repo.lock_worktree()?;
    // A checkout interrupted earlier is completed first, so the commit never
    // records a tree half of one commit and half of another.
    resume_locked(repo, &crate::progress::NoProgress)?;
    let guard = repo.write_guard()?;
    let merge = MergeState::read(repo)?;
    let mut spec = spec.clone();
    if let Some(merge) = &merge {
        spec.merge_parent = Some(merge.theirs_commit);
    }
    // Objects, snapshot and commit record share one batch: two barriers for
    // the whole commit, and all of it durable before the branch moves.
    let batch = repo.writer().batch();
    // The stat cache rides in the same batch; its clock is read before the
    // walk.
    let mut refresh = Refresh::writing(batch.writer(), repo.layout(), &repo.info()?.repo_id);
    let manifest = stage_worktree(repo, &batch, progress, &mut refresh)?;
    refresh.finish()?;
    let done = repo.commit_staged(&guard, batch, manifest, &spec)?;
    if merge.is_some() {
        MergeState::clear(repo)?;
    }
    Ok(done)
}

/// The branch a remote tracks for the current branch (`[remotes.<name>]
/// branch = "<current>"` in `config.toml`, as the reference's `push -u` and
/// clone write it), and where the remote-tracking pointer says it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Upstream {
    /// The remote.
    pub remote: String,
    /// The branch on it.
    pub branch: String,
    /// `remotes/<remote>/<branch>`, when it exists.
    pub commit_id: Option<ObjectId>,
    /// Commits on HEAD that the pointer does not have (when both histories
    /// are stored here).
    pub ahead: Option<usize>,
    /// Commits the pointer has that HEAD does not.
    pub behind: Option<usize>,
}

/// The state of a working tree against HEAD.
#[derive(Debug, Clone)]
pub struct Status {
    /// What HEAD says.
    pub head: Head,
    /// The commit HEAD resolves to.
    pub head_commit: Option<ObjectId>,
    /// Added, modified and deleted paths, working tree against HEAD.
    pub changes: ManifestDiff,
    /// The merge in progress, if any.
    pub merge: Option<MergeState>,
    /// The rebase in progress, if any.
    pub rebase: Option<RebaseState>,
    /// A checkout that was interrupted and not completed yet (the next
    /// [`checkout`], [`commit_worktree`] or [`resume_checkout`] completes it).
    pub interrupted_checkout: Option<CheckoutJournal>,
    /// Deleted and added paths whose content is the same object: renames,
    /// as `(from, to)`, sorted (the paths stay in `changes` too).
    pub renamed: Vec<(String, String)>,
    /// The current branch's upstream, if a remote tracks it.
    pub upstream: Option<Upstream>,
    /// What the walk of the working tree left out, and why.
    pub exclusions: Exclusions,
    /// The `.museignore` patterns whose meaning differs from git's.
    pub ignore_warnings: Vec<IgnoreWarning>,
}

/// Compares the working tree with HEAD (writes nothing).
pub fn worktree_status(repo: &Repository) -> Result<Status> {
    let refs = repo.refs();
    let head = refs.head()?;
    let head_commit = refs.head_commit()?;
    let old = repo.records().tree_of(head_commit)?;
    let (new, exclusions, rules) = worktree_manifest_reporting(repo)?;
    let changes = ManifestDiff::between(&old, &new);
    let renamed = renames(&changes, &old, &new);
    let upstream = match &head {
        Head::Branch(b) => upstream(repo, b, head_commit)?,
        Head::Detached(_) => None,
    };
    Ok(Status {
        head,
        head_commit,
        changes,
        merge: MergeState::read(repo)?,
        rebase: RebaseState::read(repo)?,
        // An unreadable journal is reported by the command that tries to
        // complete it (and fsck); status still shows the tree.
        interrupted_checkout: CheckoutJournal::read(repo).unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        }),
        renamed,
        upstream,
        exclusions,
        ignore_warnings: rules.git_differences(),
    })
}

/// Deleted paths paired with added paths of the same content (each path in
/// at most one pair; the first by name wins).
fn renames(
    changes: &ManifestDiff,
    old: &BTreeMap<String, ObjectId>,
    new: &BTreeMap<String, ObjectId>,
) -> Vec<(String, String)> {
    let mut added: Vec<&String> = changes.added.iter().collect();
    let mut out = Vec::new();
    for from in &changes.deleted {
        let Some(id) = old.get(from) else { continue };
        if let Some(at) = added.iter().position(|to| new.get(*to) == Some(id)) {
            out.push((from.clone(), added.remove(at).clone()));
        }
    }
    out
}

/// The upstream of `branch` (see [`Upstream`]).
fn upstream(
    repo: &Repository,
    branch: &BranchName,
    head: Option<ObjectId>,
) -> Result<Option<Upstream>> {
    let Ok(config) = repo.config() else {
        return Ok(None);
    };
    let Some(remote) = config
        .remotes()?
        .into_iter()
        .find(|r| r.branch.as_deref() == Some(branch.as_str()))
    else {
        return Ok(None);
    };
    let commit_id = repo.refs().remote_tracking(&remote.name, branch)?;
    let (mut ahead, mut behind) = (None, None);
    if let (Some(head), Some(up)) = (head, commit_id)
        && let (Ok(ours), Ok(theirs)) = (
            ancestors(repo.records(), head),
            ancestors(repo.records(), up),
        )
    {
        ahead = Some(ours.difference(&theirs).count());
        behind = Some(theirs.difference(&ours).count());
    }
    Ok(Some(Upstream {
        remote: remote.name,
        branch: branch.to_string(),
        commit_id,
        ahead,
        behind,
    }))
}

/// What [`checkout`] did.
#[derive(Debug, Clone, Default)]
pub struct CheckoutOutcome {
    /// Files written.
    pub restored: usize,
    /// Files removed.
    pub removed: usize,
}

/// Checks out `target` (a branch, or a commit to detach HEAD at): the
/// working tree becomes the target's snapshot and HEAD moves to it. Without
/// `force`, refuses ([`Error::DirtyWorkTree`]) when that would overwrite or
/// remove an uncommitted change, and ([`Error::MergeInProgress`]) during a
/// merge. Reports the files it writes to `progress`.
pub fn checkout(
    repo: &Repository,
    target: &Head,
    force: bool,
    progress: &dyn Progress,
) -> Result<CheckoutOutcome> {
    // No commit snapshots the tree half-switched, and no branch delete
    // removes the target while HEAD moves to it.
    let _worktree = repo.lock_worktree()?;
    // A checkout interrupted earlier is completed first: its plan is the
    // tree this one starts from.
    // One that cannot be completed (a damaged or crafted journal, an
    // obstacle) stops a checkout; `--force` discards it and makes the tree
    // the target's from whatever state it is in.
    match resume_locked(repo, progress) {
        Ok(_) => {}
        Err(e) if force => {
            log::warn!("discarding an interrupted checkout that cannot be completed: {e}");
            CheckoutJournal::clear(repo)?;
        }
        Err(e) => return Err(e),
    }
    let refs = repo.refs();
    let (new_commit, label) = checkout_target(repo, target)?;
    if !force && MergeState::read(repo)?.is_some() {
        return Err(Error::MergeInProgress);
    }
    let current = refs.head_commit()?;
    let head_files = repo.records().tree_of(current)?;
    let target_files = repo.records().tree_of(Some(new_commit))?;
    refuse_case_collisions(repo.work_tree(), &target_files)?;
    // The stat cache: used for the walk, refreshed with what checkout writes
    // and removes, saved after HEAD moved (it is only a hint).
    let mut refresh = Refresh::writing(repo.writer(), repo.layout(), &repo.info()?.repo_id);
    let work_files = worktree_manifest_with(repo, &mut refresh)?;

    let mut to_write = Vec::new();
    let mut to_remove = Vec::new();
    let mut conflicts = Vec::new();
    let paths: std::collections::BTreeSet<&String> = head_files
        .keys()
        .chain(target_files.keys())
        .chain(work_files.keys())
        .collect();
    for path in paths {
        let (ours, theirs, work) = (
            head_files.get(path),
            target_files.get(path),
            work_files.get(path),
        );
        if theirs == work {
            continue;
        }
        // The target has this path as HEAD has it: a local change (edit,
        // deletion, untracked file) is carried over untouched, as git does.
        // Only --force makes the target win everywhere.
        if theirs == ours && !force {
            continue;
        }
        // A local change that the checkout would overwrite or remove.
        if !force && work != ours {
            conflicts.push(path.clone());
            continue;
        }
        match theirs {
            Some(id) => to_write.push((path.clone(), *id)),
            // Untracked in both commits: not ours to remove.
            None if ours.is_none() => {}
            None => to_remove.push(path.clone()),
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::DirtyWorkTree {
            operation: format!("checkout of {label}"),
            paths: conflicts,
        });
    }
    let work_tree = repo.work_tree();
    refuse_obstacles(work_tree, &to_write, &to_remove, force)?;
    let from = match refs.head()? {
        Head::Branch(b) => b.to_string(),
        Head::Detached(id) => id.to_string(),
    };
    let journal = CheckoutJournal {
        target_commit: new_commit,
        target_branch: match target {
            Head::Branch(b) => Some(b.to_string()),
            Head::Detached(_) => None,
        },
        label,
        from,
        from_commit: current,
        to_write: to_write.iter().map(|(p, _)| p.clone()).collect(),
        to_remove: to_remove.clone(),
    };
    // The journal is durable before the first file of the tree changes and
    // stays until HEAD moved: whatever stops this checkout in between, the
    // next command completes it (`resume_checkout`).
    apply_checkout(repo, &to_write, &to_remove, progress, &|| {
        journal.write(repo)?;
        crate::failpoint::barrier("checkout-journal-written");
        Ok(())
    })?;
    crate::failpoint::barrier("checkout-before-head");
    move_head_and_finish(repo, &journal)?;
    save_checkout_cache(repo, refresh, &to_write, &to_remove);
    Ok(CheckoutOutcome {
        restored: to_write.len(),
        removed: to_remove.len(),
    })
}

/// Writes `to_write` and removes `to_remove` in the working tree, calling
/// `before_first_change` once every object is known good and before the
/// first file changes (not at all when there is nothing to change).
///
/// A path that turns from a file into a directory (or back) can only be
/// written once the old one is gone: then every object is verified first,
/// so a damaged one still stops the checkout before any file changes, and
/// the removals run before the writes. Otherwise every file is written to a
/// temp file in one batch, each verified as it is copied; only when all are
/// complete (and, at the batch barrier, durable) are they renamed into
/// place, so a damaged object stops the checkout (the batch is dropped, its
/// temp files and new directories removed) before any file changes; the
/// removals follow.
fn apply_checkout(
    repo: &Repository,
    to_write: &[(String, ObjectId)],
    to_remove: &[String],
    progress: &dyn Progress,
    before_first_change: &dyn Fn() -> Result<()>,
) -> Result<()> {
    if to_write.is_empty() && to_remove.is_empty() {
        return Ok(());
    }
    let work_tree = repo.work_tree();
    let reshaped = file_dir_swaps(to_write, to_remove);
    if reshaped {
        to_write
            .par_iter()
            .map(|(_, id)| repo.objects().verify(id).map(|_| ()))
            .collect::<Result<()>>()?;
        before_first_change()?;
        remove_tracked(repo, to_remove, progress)?;
    }
    let batch = repo.writer().batch();
    let objects = repo.objects().with_writer(batch.writer().clone());
    if !to_write.is_empty() {
        progress.start("restoring files", to_write.len() as u64);
        to_write
            .par_iter()
            .map(|(path, id)| {
                let done = objects.restore(id, work_tree, Path::new(path));
                progress.advance(1);
                done
            })
            .collect::<Result<()>>()?;
        progress.finish();
    }
    if !reshaped {
        before_first_change()?;
    }
    batch.commit()?;
    if !reshaped {
        remove_tracked(repo, to_remove, progress)?;
    }
    Ok(())
}

/// Moves HEAD where `journal` says (unless it is there already) and removes
/// the journal: the last step of a checkout, first or resumed.
fn move_head_and_finish(repo: &Repository, journal: &CheckoutJournal) -> Result<()> {
    let mut label = journal.label.clone();
    let target = match &journal.target_branch {
        // Written from a branch HEAD could name: a stored name.
        Some(b) => {
            let branch = BranchName::from_stored(b)?;
            if repo.refs().branch(&branch)? == Some(journal.target_commit) {
                Head::Branch(branch)
            } else {
                // The branch moved (or went) while the tree was switched:
                // HEAD on it would make the tree look like a change that
                // reverts the move. HEAD names what the tree holds.
                log::warn!(
                    "branch '{b}' moved during the checkout; HEAD is detached at {}",
                    journal.target_commit
                );
                label = format!("{} (branch '{b}' moved meanwhile)", journal.target_commit);
                Head::Detached(journal.target_commit)
            }
        }
        None => Head::Detached(journal.target_commit),
    };
    if repo.refs().head()? != target {
        repo.refs().set_head(
            &target,
            &format!("checkout: moving from {} to {label}", journal.from),
        )?;
    }
    CheckoutJournal::clear(repo)
}

/// Completes a checkout that failed or was killed after it began changing
/// the working tree (`CHECKOUT_IN_PROGRESS.json` exists): the paths it was
/// writing get the target's content (each object verified), the paths it
/// was removing go, HEAD moves to the target, and the journal is removed.
/// Returns the journal of the checkout it completed, `None` when there was
/// none. Paths the checkout did not touch are left as they are, so local
/// changes it carried over survive. `muse` runs this on every command but
/// fsck; an embedder calls it after opening a repository.
pub fn resume_checkout(
    repo: &Repository,
    progress: &dyn Progress,
) -> Result<Option<CheckoutJournal>> {
    if CheckoutJournal::read(repo)?.is_none() {
        return Ok(None);
    }
    let _worktree = repo.lock_worktree()?;
    resume_locked(repo, progress)
}

/// [`resume_checkout`] for a caller holding the working-tree lock.
fn resume_locked(repo: &Repository, progress: &dyn Progress) -> Result<Option<CheckoutJournal>> {
    let Some(journal) = CheckoutJournal::read(repo)? else {
        return Ok(None);
    };
    let target_files = repo.records().tree_of(Some(journal.target_commit))?;
    // The journal is input like any file under `.muse/` (a received
    // repository may carry one): every path it would remove must be a path
    // of the commit HEAD was on, which passed the path policy when its
    // snapshot was read, and not one the target keeps.
    let from_files = repo.records().tree_of(journal.from_commit)?;
    let journal_path = repo.layout().checkout_journal();
    for path in &journal.to_remove {
        if !from_files.contains_key(path) || target_files.contains_key(path) {
            return Err(Error::corrupt(
                &journal_path,
                format!(
                    "it would remove '{path}', which is not a path the checkout from {} to {} \
                     removes",
                    journal.from, journal.label
                ),
            ));
        }
    }
    let work_tree = repo.work_tree();
    let mut to_write = Vec::new();
    for path in &journal.to_write {
        let id = *target_files.get(path).ok_or_else(|| {
            Error::corrupt(
                &journal_path,
                format!(
                    "it lists '{path}', which commit {} does not hold",
                    journal.target_commit
                ),
            )
        })?;
        let full = work_tree.join(path);
        let done = std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_file())
            && crate::store::hash_file(&full).is_ok_and(|(have, _)| have == id);
        if !done {
            to_write.push((path.clone(), id));
        }
    }
    let to_remove: Vec<String> = journal
        .to_remove
        .iter()
        // A directory there is the target's (a file that became one).
        .filter(|p| std::fs::symlink_metadata(work_tree.join(p)).is_ok_and(|m| !m.is_dir()))
        .cloned()
        .collect();
    // As a first checkout does: never through a symlink planted since.
    refuse_obstacles(work_tree, &to_write, &to_remove, true)?;
    apply_checkout(repo, &to_write, &to_remove, progress, &|| Ok(()))?;
    move_head_and_finish(repo, &journal)?;
    Ok(Some(journal))
}

/// The commit `target` names, and how the reflog names it.
fn checkout_target(repo: &Repository, target: &Head) -> Result<(ObjectId, String)> {
    Ok(match target {
        Head::Branch(b) => match repo.refs().branch_state(b)? {
            RefState::At(id) => (id, b.to_string()),
            // Deleted since the caller looked (the working-tree lock waited
            // for whoever deleted it).
            RefState::Missing => {
                return Err(Error::NoSuchBranch {
                    branch: b.to_string(),
                });
            }
            RefState::Unborn => {
                return Err(Error::UnbornBranch {
                    branch: b.to_string(),
                });
            }
        },
        Head::Detached(id) => (*id, id.to_string()),
    })
}

/// Finds, before anything changes, what would stop a checkout part-way:
/// a symlink among the parents of a path to write (never written through),
/// a file where a directory must be that the checkout does not remove, a
/// directory where a file must be that it does not empty, and (without
/// `force`) an untracked symlink at a path to write, which would otherwise
/// be replaced silently (git refuses there too).
fn refuse_obstacles(
    work_tree: &Path,
    to_write: &[(String, ObjectId)],
    to_remove: &[String],
    force: bool,
) -> Result<()> {
    let removed: std::collections::BTreeSet<&str> = to_remove.iter().map(String::as_str).collect();
    let mut parents_seen = std::collections::HashSet::new();
    // A removal never goes through a symlinked directory either (each
    // parent looked at once: a switch removes thousands of files from a
    // few directories).
    let mut removal_parents_seen = std::collections::HashSet::new();
    for rel in to_remove {
        for (i, _) in rel.match_indices('/') {
            let parent = &rel[..i];
            if !removal_parents_seen.insert(parent) {
                continue;
            }
            let path = work_tree.join(parent);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::Symlink { path });
            }
        }
    }
    for (rel, _) in to_write {
        for (i, _) in rel.match_indices('/') {
            let parent = &rel[..i];
            if !parents_seen.insert(parent) {
                continue;
            }
            let path = work_tree.join(parent);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::Symlink { path });
                }
                Ok(meta) if !meta.is_dir() && !removed.contains(parent) => {
                    return Err(Error::Input {
                        path,
                        reason: format!(
                            "an untracked file is where checkout needs the directory of '{rel}'"
                        ),
                    });
                }
                _ => {}
            }
        }
        let path = work_tree.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() && !force => {
                return Err(Error::DirtyWorkTree {
                    operation: "checkout (an untracked symlink is in the way)".to_owned(),
                    paths: vec![rel.clone()],
                });
            }
            Ok(meta) if meta.is_dir() => {
                // The directory goes only if checkout empties it: everything
                // in it must be a path checkout removes.
                if let Some(kept) = first_kept_entry(&path, rel, &removed)? {
                    return Err(Error::Input {
                        path: work_tree.join(&kept),
                        reason: format!(
                            "this untracked path is inside the directory '{rel}', where checkout \
                             must write a file"
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The first entry below directory `dir` (relative path `rel`) that would
/// keep checkout from emptying it: a file, symlink or other entry not in
/// `removed`, or a directory that holds no file to remove (an empty one,
/// which pruning never reaches), walking without following symlinks.
fn first_kept_entry(
    dir: &Path,
    rel: &str,
    removed: &std::collections::BTreeSet<&str>,
) -> Result<Option<String>> {
    match scan_emptied(dir, rel, removed)? {
        Emptied::Kept(kept) => Ok(Some(kept)),
        Emptied::Removes(true) => Ok(None),
        Emptied::Removes(false) => Ok(Some(rel.to_owned())),
    }
}

/// What removing `removed` does to a directory.
enum Emptied {
    /// This entry stays: the directory cannot be emptied.
    Kept(String),
    /// It is emptied; `true` when it held at least one file to remove (so
    /// pruning, which starts from removed files' parents, reaches it).
    Removes(bool),
}

fn scan_emptied(
    dir: &Path,
    rel: &str,
    removed: &std::collections::BTreeSet<&str>,
) -> Result<Emptied> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    let mut any = false;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let child = format!("{rel}/{}", entry.file_name().to_string_lossy());
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if kind.is_dir() {
            match scan_emptied(&entry.path(), &child, removed)? {
                Emptied::Kept(kept) => return Ok(Emptied::Kept(kept)),
                Emptied::Removes(false) => return Ok(Emptied::Kept(child)),
                Emptied::Removes(true) => any = true,
            }
        } else if removed.contains(child.as_str()) {
            any = true;
        } else {
            return Ok(Emptied::Kept(child));
        }
    }
    Ok(Emptied::Removes(any))
}

/// On a working tree whose filesystem ignores case, refuses a snapshot
/// holding two paths that would be one file there (`README` and `readme`,
/// or a file `a` and a directory `A/`), before anything changes.
fn refuse_case_collisions(work_tree: &Path, files: &BTreeMap<String, ObjectId>) -> Result<()> {
    if !ignores_case(work_tree) {
        return Ok(());
    }
    match crate::name::case_collision(files.keys().map(String::as_str)) {
        Some((_, path)) => Err(Error::RefusedPath(crate::error::PathRefusal {
            path,
            reason: "another path of the snapshot differs from it only by case, and this \
                     filesystem ignores case",
        })),
        None => Ok(()),
    }
}

/// Whether the filesystem of `work_tree` ignores case: `.MUSE` finds the
/// repository's `.muse`.
fn ignores_case(work_tree: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let lower = std::fs::symlink_metadata(work_tree.join(".muse"));
    let upper = std::fs::symlink_metadata(work_tree.join(".MUSE"));
    matches!((lower, upper), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

/// Records in the stat cache what checkout wrote (from each file's `lstat`
/// now) and removed, and saves it. A hint only: a failure is logged.
fn save_checkout_cache(
    repo: &Repository,
    mut refresh: Refresh<'_>,
    written: &[(String, ObjectId)],
    removed: &[String],
) {
    for (path, id) in written {
        match std::fs::symlink_metadata(repo.work_tree().join(path)) {
            Ok(meta) if meta.is_file() => {
                refresh.record_written(path, crate::worktree::FileStat::of(&meta), *id);
            }
            _ => refresh.forget(path),
        }
    }
    for path in removed {
        refresh.forget(path);
    }
    if let Err(e) = refresh.finish_now(repo.writer(), repo.layout()) {
        log::debug!("could not save the stat cache after checkout: {e}");
    }
}

/// Whether a path to write lies under a path to remove (file `a` becomes
/// directory `a/`) or a path to remove lies under a path to write (the
/// reverse).
fn file_dir_swaps(to_write: &[(String, ObjectId)], to_remove: &[String]) -> bool {
    let removed: std::collections::BTreeSet<&str> = to_remove.iter().map(String::as_str).collect();
    let written: std::collections::BTreeSet<&str> =
        to_write.iter().map(|(p, _)| p.as_str()).collect();
    let has_ancestor_in = |path: &str, set: &std::collections::BTreeSet<&str>| {
        path.match_indices('/')
            .any(|(i, _)| set.contains(&path[..i]))
    };
    written.iter().any(|p| has_ancestor_in(p, &removed))
        || removed.iter().any(|p| has_ancestor_in(p, &written))
}

/// Removes tracked files from the working tree and the directories that
/// leaves empty (never the working tree root, never through a symlink), all
/// made durable together, reporting each file to `progress`.
fn remove_tracked(repo: &Repository, to_remove: &[String], progress: &dyn Progress) -> Result<()> {
    if to_remove.is_empty() {
        return Ok(());
    }
    let work_tree = repo.work_tree();
    let paths: Vec<std::path::PathBuf> = to_remove.iter().map(|rel| work_tree.join(rel)).collect();
    progress.start("removing files", paths.len() as u64);
    repo.writer()
        .remove_files_and_prune(work_tree, &paths, &|| progress.advance(1))?;
    progress.finish();
    Ok(())
}
