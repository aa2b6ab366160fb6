//! Walking the commit graph: logs, merge bases, names, manifest diffs.
//!
//! Every commit is read through the verified record store, so a record
//! whose content no longer matches its id stops a walk with an error instead
//! of feeding it wrong parents, and a commit the history names but that is
//! not stored is [`Error::MissingRecord`](crate::Error::MissingRecord): damage.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::error::Result;
use crate::id::ObjectId;
use crate::name::BranchName;
use crate::record::{CommitRecord, RecordStore};

/// What names a commit reached by walking from `tip` (for errors: a
/// missing commit there is damage, not an unknown id).
fn reached_from(tip: ObjectId) -> String {
    format!("the history of commit {tip}")
}

/// Commits reachable from `tip`, newest first: a breadth-first walk that
/// follows both parents (or only first parents), stopping before `stop_at`
/// and its ancestors, and after `limit` commits. Returns the commits and
/// whether the limit cut the walk short.
pub fn walk(
    records: &RecordStore,
    tip: ObjectId,
    stop_at: Option<ObjectId>,
    first_parent: bool,
    limit: usize,
) -> Result<(Vec<CommitRecord>, bool)> {
    let excluded = match stop_at {
        Some(stop) => ancestors(records, stop)?,
        None => HashSet::new(),
    };
    let mut out = Vec::new();
    let mut seen = HashSet::from([tip]);
    let mut queue = VecDeque::from([tip]);
    while let Some(id) = queue.pop_front() {
        if excluded.contains(&id) {
            continue;
        }
        if out.len() == limit {
            return Ok((out, true));
        }
        let commit = records.read_commit_named_by(&id, || reached_from(tip))?;
        let parents = commit.parents();
        let parents = if first_parent {
            &parents[..parents.len().min(1)]
        } else {
            &parents[..]
        };
        for parent in parents {
            if seen.insert(*parent) {
                queue.push_back(*parent);
            }
        }
        out.push(commit);
    }
    Ok((out, false))
}

/// What [`commit_graph`] walks.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphWalk {
    /// The commit the walk does not enter (nor, through it, its parents).
    pub stop_at: Option<ObjectId>,
    /// At most this many commits are listed.
    pub max: usize,
    /// Follow first parents only.
    pub first_parent: bool,
    /// List only the tip and the ancestors of `stop_at` (the walk still
    /// goes through the others).
    pub ancestry_path: bool,
}

/// The reference implementation's `commit-graph` walk: breadth first from
/// `tip` (first parent queued before second), never entering `stop_at`,
/// listing at most `max` commits; `truncated` when it listed `max` of them
/// (the reference's definition). A commit whose record is missing is
/// skipped, as the reference does; one that does not verify stops the walk
/// with an error.
pub fn commit_graph(
    records: &RecordStore,
    tip: ObjectId,
    walk: GraphWalk,
) -> Result<(Vec<CommitRecord>, bool)> {
    let on_path = match (walk.ancestry_path, walk.stop_at) {
        (true, Some(stop)) => Some(ancestors_present(records, stop)?),
        _ => None,
    };
    let mut visited = HashSet::new();
    let mut queue = VecDeque::from([tip]);
    let mut out = Vec::new();
    while out.len() < walk.max {
        let Some(id) = queue.pop_front() else { break };
        if Some(id) == walk.stop_at || !visited.insert(id) {
            continue;
        }
        let commit = match records.read_commit(&id) {
            Ok(c) => c,
            Err(crate::error::Error::RecordNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(p) = commit.parent_commit_id {
            queue.push_back(p);
        }
        if !walk.first_parent
            && let Some(p) = commit.parent2_commit_id
        {
            queue.push_back(p);
        }
        if on_path.as_ref().is_some_and(|set| !set.contains(&id)) && id != tip {
            continue;
        }
        out.push(commit);
    }
    let truncated = walk.max > 0 && out.len() >= walk.max;
    Ok((out, truncated))
}

/// Every commit reachable from `start` whose record exists (`start`
/// included even when its record does not).
fn ancestors_present(records: &RecordStore, start: ObjectId) -> Result<HashSet<ObjectId>> {
    let mut seen = HashSet::from([start]);
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        let commit = match records.read_commit(&id) {
            Ok(c) => c,
            Err(crate::error::Error::RecordNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        for parent in commit.parents() {
            if seen.insert(parent) {
                stack.push(parent);
            }
        }
    }
    Ok(seen)
}

/// Every commit reachable from `tip`, `tip` included.
pub fn ancestors(records: &RecordStore, tip: ObjectId) -> Result<HashSet<ObjectId>> {
    let mut seen = HashSet::from([tip]);
    let mut stack = vec![tip];
    while let Some(id) = stack.pop() {
        for parent in records
            .read_commit_named_by(&id, || reached_from(tip))?
            .parents()
        {
            if seen.insert(parent) {
                stack.push(parent);
            }
        }
    }
    Ok(seen)
}

/// The best common ancestor of `a` and `b`: a common ancestor that is not an
/// ancestor of another common ancestor (the nearest to `b` when several
/// qualify). `None` when the histories are unrelated.
pub fn merge_base(records: &RecordStore, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>> {
    let of_a = ancestors(records, a)?;
    let mut common = Vec::new();
    let mut seen = HashSet::from([b]);
    let mut queue = VecDeque::from([b]);
    while let Some(id) = queue.pop_front() {
        if of_a.contains(&id) {
            common.push(id);
            // Ancestors of a common ancestor are never better.
            continue;
        }
        for parent in records
            .read_commit_named_by(&id, || reached_from(b))?
            .parents()
        {
            if seen.insert(parent) {
                queue.push_back(parent);
            }
        }
    }
    for candidate in &common {
        let mut dominated = false;
        for other in &common {
            if other != candidate && ancestors(records, *other)?.contains(candidate) {
                dominated = true;
                break;
            }
        }
        if !dominated {
            return Ok(Some(*candidate));
        }
    }
    Ok(None)
}

/// How a commit is named relative to a branch tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevName {
    /// The branch whose tip reaches the commit.
    pub branch: BranchName,
    /// First-parent steps from the tip (0 = the tip), so `branch~N` names
    /// exactly this commit.
    pub distance: usize,
}

impl RevName {
    /// `branch` or `branch~N`.
    #[must_use]
    pub fn name(&self) -> String {
        if self.distance == 0 {
            self.branch.to_string()
        } else {
            format!("{}~{}", self.branch, self.distance)
        }
    }
}

/// For each of `targets`, the branch whose tip reaches it in the fewest
/// first-parent steps (ties go to the branch listed first). Commits reached
/// only through a merge's second parent get no name.
pub fn name_revs(
    records: &RecordStore,
    branches: &[(BranchName, ObjectId)],
    targets: &[ObjectId],
) -> Result<HashMap<ObjectId, RevName>> {
    let wanted: HashSet<_> = targets.iter().copied().collect();
    let mut best: HashMap<ObjectId, RevName> = HashMap::new();
    for (branch, tip) in branches {
        let mut dist = HashMap::from([(*tip, 0usize)]);
        let mut queue = VecDeque::from([*tip]);
        while let Some(id) = queue.pop_front() {
            let d = dist[&id];
            if wanted.contains(&id) {
                let better = best.get(&id).is_none_or(|b| d < b.distance);
                if better {
                    best.insert(
                        id,
                        RevName {
                            branch: branch.clone(),
                            distance: d,
                        },
                    );
                }
            }
            if let Some(parent) = records
                .read_commit_named_by(&id, || format!("the history of branch {branch}"))?
                .parent_commit_id
                && let std::collections::hash_map::Entry::Vacant(e) = dist.entry(parent)
            {
                e.insert(d + 1);
                queue.push_back(parent);
            }
        }
    }
    Ok(best)
}

/// The difference between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestDiff {
    /// Paths only in the new manifest.
    pub added: Vec<String>,
    /// Paths in both with different objects.
    pub modified: Vec<String>,
    /// Paths only in the old manifest.
    pub deleted: Vec<String>,
}

impl ManifestDiff {
    /// Compares `old` with `new`; each list is sorted.
    #[must_use]
    pub fn between(old: &BTreeMap<String, ObjectId>, new: &BTreeMap<String, ObjectId>) -> Self {
        let mut diff = Self::default();
        let paths: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for path in paths {
            match (old.get(path), new.get(path)) {
                (None, Some(_)) => diff.added.push(path.clone()),
                (Some(_), None) => diff.deleted.push(path.clone()),
                (Some(a), Some(b)) if a != b => diff.modified.push(path.clone()),
                _ => {}
            }
        }
        diff
    }

    /// Number of changed paths.
    #[must_use]
    pub fn total(&self) -> usize {
        self.added.len() + self.modified.len() + self.deleted.len()
    }

    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}
