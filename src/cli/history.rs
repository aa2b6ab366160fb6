//! History plumbing: `read-commit`, `read-snapshot`, `ls-files`,
//! `commit-tree`, `commit-graph`, `merge-base`, `snapshot-diff`, `name-rev`.

use std::io::Write;

use clap::Args;
use serde_json::{Value, json};

use super::refs::resolve;
use super::{CmdResult, Context, Failure, emit_json, parse_id};
use muse_store::{
    BranchName, CommitRecord, Head, ManifestDiff, ObjectId, Repository, SnapshotRecord, Timestamp,
};

#[derive(Debug, Args)]
pub(super) struct ReadCommitArgs {
    /// The commit (anything rev-parse accepts).
    rev: String,
}

pub(super) fn read_commit(ctx: &Context, args: &ReadCommitArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let id = resolve(&repo, &args.rev)?;
    let record = repo.records().read_commit(&id)?;
    let value = serde_json::to_value(&record).map_err(|e| Failure::internal(e.to_string()))?;
    emit_json(out, &value)
}

#[derive(Debug, Args)]
pub(super) struct ReadSnapshotArgs {
    /// The snapshot id.
    id: String,
}

fn snapshot_json(record: &SnapshotRecord) -> Value {
    json!({
        "snapshot_id": record.snapshot_id,
        "created_at": record.created_at,
        "file_count": record.manifest.len(),
        "manifest": record.manifest,
    })
}

pub(super) fn read_snapshot(
    ctx: &Context,
    args: &ReadSnapshotArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let id = parse_id(&args.id)?;
    let repo = ctx.repo()?;
    emit_json(out, &snapshot_json(&repo.records().read_snapshot(&id)?))
}

#[derive(Debug, Args)]
pub(super) struct LsFilesArgs {
    /// The commit to list (default HEAD).
    #[arg(short = 'c', long = "commit", default_value = "HEAD")]
    commit: String,
}

pub(super) fn ls_files(ctx: &Context, args: &LsFilesArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let id = resolve(&repo, &args.commit)?;
    let records = repo.records();
    let commit = records.read_commit(&id)?;
    let snapshot = records.read_snapshot(&commit.snapshot_id)?;
    let files: Vec<_> = snapshot
        .manifest
        .iter()
        .map(|(path, object)| json!({ "path": path, "object_id": object }))
        .collect();
    emit_json(
        out,
        &json!({
            "commit_id": id,
            "snapshot_id": snapshot.snapshot_id,
            "file_count": files.len(),
            "files": files,
        }),
    )
}

#[derive(Debug, Args)]
pub(super) struct CommitTreeArgs {
    /// The snapshot the commit records.
    #[arg(short = 's', long = "snapshot")]
    snapshot: String,
    /// A parent (at most two).
    #[arg(short = 'p', long = "parent")]
    parents: Vec<String>,
    /// The message.
    #[arg(short = 'm', long = "message", default_value = "")]
    message: String,
    /// The author.
    #[arg(short = 'a', long = "author", default_value = "")]
    author: String,
    /// The branch recorded in the commit (default: HEAD's branch).
    #[arg(short = 'b', long = "branch")]
    branch: Option<String>,
}

pub(super) fn commit_tree(ctx: &Context, args: &CommitTreeArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let _guard = repo.write_guard()?;
    let records = repo.records();
    let snapshot = parse_id(&args.snapshot)?;
    if !records.contains_snapshot(&snapshot) {
        return Err(Failure::user(format!(
            "snapshot {snapshot} does not exist in this repository"
        )));
    }
    if args.parents.len() > 2 {
        return Err(Failure::user("a commit has at most two parents"));
    }
    let mut parents = Vec::new();
    for p in &args.parents {
        let id = resolve(&repo, p)?;
        records.read_commit(&id)?;
        parents.push(id);
    }
    let branch = match &args.branch {
        Some(b) => BranchName::new(b)
            .map_err(|e| Failure::user(e.to_string()))?
            .to_string(),
        None => match repo.refs().head()? {
            Head::Branch(b) => b.to_string(),
            Head::Detached(_) => String::new(),
        },
    };
    let record = CommitRecord::new(
        repo.info()?.repo_id.clone(),
        branch,
        snapshot,
        &parents,
        args.message.as_str(),
        args.author.as_str(),
        Timestamp::now(),
    );
    records.write_commit(&record)?;
    emit_json(out, &json!({ "commit_id": record.commit_id }))
}

#[derive(Debug, Args)]
pub(super) struct CommitGraphArgs {
    /// Where to start (default HEAD).
    #[arg(short = 't', long = "tip", default_value = "HEAD")]
    tip: String,
    /// Stop before this commit and its ancestors.
    #[arg(short = 's', long = "stop-at")]
    stop_at: Option<String>,
    /// At most this many commits.
    #[arg(short = 'n', long = "max", default_value_t = 10_000)]
    max: usize,
    /// Only count the commits (the list is left empty).
    #[arg(short = 'c', long = "count")]
    count_only: bool,
    /// Follow first parents only.
    #[arg(short = '1', long = "first-parent")]
    first_parent: bool,
}

fn commit_row(c: &CommitRecord) -> Value {
    json!({
        "commit_id": c.commit_id,
        "parent_commit_id": c.parent_commit_id,
        "parent2_commit_id": c.parent2_commit_id,
        "message": c.message,
        "committed_at": c.committed_at,
    })
}

pub(super) fn commit_graph(
    ctx: &Context,
    args: &CommitGraphArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let repo = ctx.repo()?;
    let tip = resolve(&repo, &args.tip)?;
    let stop = args
        .stop_at
        .as_deref()
        .map(|s| resolve(&repo, s))
        .transpose()?;
    let (commits, truncated) =
        muse_store::walk(repo.records(), tip, stop, args.first_parent, args.max)?;
    let rows: Vec<_> = if args.count_only {
        Vec::new()
    } else {
        commits.iter().map(commit_row).collect()
    };
    emit_json(
        out,
        &json!({ "tip": tip, "count": commits.len(), "truncated": truncated, "commits": rows }),
    )
}

#[derive(Debug, Args)]
pub(super) struct MergeBaseArgs {
    /// One commit.
    a: String,
    /// The other.
    b: String,
}

pub(super) fn merge_base(ctx: &Context, args: &MergeBaseArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let (a, b) = (resolve(&repo, &args.a)?, resolve(&repo, &args.b)?);
    let base = muse_store::merge_base(repo.records(), a, b)?;
    emit_json(
        out,
        &json!({ "commit_a": a, "commit_b": b, "merge_base": base }),
    )
}

#[derive(Debug, Args)]
pub(super) struct SnapshotDiffArgs {
    /// The old side: a snapshot id or anything rev-parse accepts.
    a: String,
    /// The new side.
    b: String,
    /// Only the counts.
    #[arg(short = 's', long = "stat")]
    stat: bool,
}

/// A snapshot's manifest from a snapshot id, or from a commit.
fn manifest_of(
    repo: &Repository,
    text: &str,
) -> Result<std::collections::BTreeMap<String, ObjectId>, Failure> {
    let records = repo.records();
    if let Ok(id) = ObjectId::from_hex(text)
        && records.contains_snapshot(&id)
    {
        return Ok(records.read_snapshot(&id)?.manifest);
    }
    let commit = resolve(repo, text)?;
    let record = records.read_commit(&commit)?;
    Ok(records.read_snapshot(&record.snapshot_id)?.manifest)
}

pub(super) fn snapshot_diff(
    ctx: &Context,
    args: &SnapshotDiffArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let repo = ctx.repo()?;
    let diff = ManifestDiff::between(&manifest_of(&repo, &args.a)?, &manifest_of(&repo, &args.b)?);
    let value = if args.stat {
        json!({
            "added": diff.added.len(), "modified": diff.modified.len(),
            "deleted": diff.deleted.len(), "total_changes": diff.total(),
        })
    } else {
        json!({
            "added": diff.added, "modified": diff.modified,
            "deleted": diff.deleted, "total_changes": diff.total(),
        })
    };
    emit_json(out, &value)
}

#[derive(Debug, Args)]
pub(super) struct NameRevArgs {
    /// Commit ids to name.
    #[arg(required = true)]
    ids: Vec<String>,
}

pub(super) fn name_rev(ctx: &Context, args: &NameRevArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let ids = args
        .ids
        .iter()
        .map(|t| resolve(&repo, t))
        .collect::<Result<Vec<_>, _>>()?;
    let branches: Vec<_> = repo
        .refs()
        .branches()?
        .into_iter()
        .filter_map(|(b, s)| s.commit().map(|id| (b, id)))
        .collect();
    let names = muse_store::name_revs(repo.records(), &branches, &ids)?;
    let rows: Vec<_> = ids
        .iter()
        .map(|id| match names.get(id) {
            Some(n) => json!({ "commit_id": id, "name": n.name(), "branch": n.branch.as_str(), "distance": n.distance, "undefined": false }),
            None => json!({ "commit_id": id, "name": null, "branch": null, "distance": null, "undefined": true }),
        })
        .collect();
    emit_json(out, &json!({ "results": rows }))
}
