//! History plumbing: `read-commit`, `read-snapshot`, `ls-files`,
//! `commit-tree`, `commit-graph`, `merge-base`, `snapshot-diff`, `name-rev`.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use serde_json::{Map, Value, json};

use super::refs::resolve;
use super::{
    CmdResult, Context, EXIT_USER, Failure, Format, FormatError, JsonStyle, emit, emit_json,
    emit_line, parse_format, parse_id_as, warn,
};
use muse_store::{
    CommitRecord, Error, GraphWalk, Head, ObjectId, Repository, RevisionSyntax, Timestamp,
    python_repr,
};

/// The record of commit `id` for a plumbing command: `None` when it is not
/// stored; a record that does not verify is an error (exit 3, JSON).
fn commit_record(repo: &Repository, id: &ObjectId) -> Result<Option<CommitRecord>, Failure> {
    match repo.records().read_commit(id) {
        Ok(record) => Ok(Some(record)),
        Err(Error::RecordNotFound { .. }) => Ok(None),
        Err(e) => Err(Failure::json_from(e)),
    }
}

#[derive(Debug, Args)]
pub(super) struct ReadCommitArgs {
    /// A full commit id or a unique prefix.
    id: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn read_commit(ctx: &Context, args: &ReadCommitArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let text = &args.id;
    let not_found = || Failure::json(EXIT_USER, format!("Commit not found: {text}"));
    let record = if text.len() == 64 {
        let id = parse_id_as(text, "commit ID").map_err(|m| Failure::json(EXIT_USER, m))?;
        commit_record(&repo, &id)?.ok_or_else(not_found)?
    } else {
        let candidates = repo
            .records()
            .commits_with_prefix(text)
            .map_err(Failure::json_from)?;
        match candidates.as_slice() {
            [] => return Err(not_found()),
            [id] => commit_record(&repo, id)?.ok_or_else(not_found)?,
            _ => {
                return Err(Failure::json_value(
                    EXIT_USER,
                    json!({ "error": "ambiguous prefix", "candidates": candidates }),
                ));
            }
        }
    };
    match format {
        Format::Json => {
            let value =
                serde_json::to_value(&record).map_err(|e| Failure::internal(e.to_string()))?;
            emit_json(out, &value, JsonStyle::Indent2)
        }
        Format::Text => emit(
            out,
            format_args!(
                "{}  {}  {}  {}  {}\n",
                &record.commit_id.to_hex()[..12],
                record.branch,
                record.author,
                record.committed_at,
                record.message.replace('\n', " ")
            ),
        ),
    }
}

#[derive(Debug, Args)]
pub(super) struct ReadSnapshotArgs {
    /// The snapshot id.
    id: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn read_snapshot(
    ctx: &Context,
    args: &ReadSnapshotArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let id = parse_id_as(&args.id, "snapshot ID").map_err(|m| Failure::json(EXIT_USER, m))?;
    let record = match repo.records().read_snapshot(&id) {
        Ok(record) => record,
        Err(Error::RecordNotFound { .. }) => {
            return Err(Failure::json(
                EXIT_USER,
                format!("Snapshot not found: {id}"),
            ));
        }
        Err(e) => return Err(Failure::json_from(e)),
    };
    match format {
        Format::Json => {
            // The manifest in the order the reference writes (and wrote) it.
            let manifest: Map<String, Value> = record
                .walk_ordered()
                .into_iter()
                .map(|(path, id)| (path.to_owned(), json!(id)))
                .collect();
            emit_json(
                out,
                &json!({
                    "snapshot_id": record.snapshot_id,
                    "created_at": record.created_at,
                    "file_count": record.manifest.len(),
                    "manifest": manifest,
                }),
                JsonStyle::Indent2,
            )
        }
        Format::Text => emit(
            out,
            format_args!(
                "{}  {} files  {}\n",
                &record.snapshot_id.to_hex()[..12],
                record.manifest.len(),
                record.created_at
            ),
        ),
    }
}

#[derive(Debug, Args)]
pub(super) struct LsFilesArgs {
    /// The commit to list (a full id; default HEAD).
    #[arg(short = 'c', long = "commit")]
    commit: Option<String>,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// HEAD's commit, or the reference's error when there is none.
fn head_commit(repo: &Repository) -> Result<ObjectId, Failure> {
    repo.refs()
        .head_commit()
        .map_err(Failure::json_from)?
        .ok_or_else(|| Failure::json(EXIT_USER, "No commits on current branch."))
}

pub(super) fn ls_files(ctx: &Context, args: &LsFilesArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Stderr)?;
    let repo = ctx.repo()?;
    let id = match &args.commit {
        None => head_commit(&repo)?,
        Some(text) => parse_id_as(text, "commit ID").map_err(|m| Failure::json(EXIT_USER, m))?,
    };
    let commit = commit_record(&repo, &id)?
        .ok_or_else(|| Failure::json(EXIT_USER, format!("Commit not found: {id}")))?;
    let snapshot = match repo.records().read_snapshot(&commit.snapshot_id) {
        Ok(s) => s,
        Err(Error::RecordNotFound { .. }) => {
            return Err(Failure::json(
                EXIT_USER,
                format!("Snapshot not found for commit: {id}"),
            ));
        }
        Err(e) => return Err(Failure::json_from(e)),
    };
    match format {
        Format::Json => {
            let files: Vec<Value> = snapshot
                .manifest
                .iter()
                .map(|(path, object)| json!({ "path": path, "object_id": object }))
                .collect();
            emit_json(
                out,
                &json!({
                    "commit_id": id,
                    "snapshot_id": commit.snapshot_id,
                    "file_count": files.len(),
                    "files": files,
                }),
                JsonStyle::Indent2,
            )
        }
        Format::Text => {
            for (path, object) in &snapshot.manifest {
                emit(out, format_args!("{object}\t{path}\n"))?;
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct CommitTreeArgs {
    /// The snapshot the commit records (a full id).
    #[arg(short = 's', long = "snapshot")]
    snapshot: String,
    /// A parent (a full id); the first two are recorded.
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
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn commit_tree(
    ctx: &Context,
    args: &CommitTreeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let _guard = repo.write_guard()?;
    let records = repo.records();
    let snapshot =
        parse_id_as(&args.snapshot, "snapshot ID").map_err(|m| Failure::json(EXIT_USER, m))?;
    if !records.contains_snapshot(&snapshot) {
        return Err(Failure::json(
            EXIT_USER,
            format!("Snapshot not found: {snapshot}"),
        ));
    }
    // Verified, manifest paths included: a commit never names a snapshot
    // that checkout would refuse.
    records
        .read_snapshot(&snapshot)
        .map_err(Failure::json_from)?;
    let mut parents = Vec::new();
    for text in &args.parents {
        let id = parse_id_as(text, "parent commit ID").map_err(|m| Failure::json(EXIT_USER, m))?;
        if commit_record(&repo, &id)?.is_none() {
            return Err(Failure::json(
                EXIT_USER,
                format!("Parent commit not found: {id}"),
            ));
        }
        parents.push(id);
    }
    if parents.len() > 2 {
        warn(
            err,
            &format!(
                "a commit records two parents; {} more were given and are not recorded",
                parents.len() - 2
            ),
        );
        parents.truncate(2);
    }
    let branch = match &args.branch {
        Some(b) => b.clone(),
        None => match repo.refs().head().map_err(Failure::json_from)? {
            Head::Branch(b) => b.to_string(),
            Head::Detached(_) => String::new(),
        },
    };
    let record = CommitRecord::new(
        repo.info().map_err(Failure::json_from)?.repo_id.clone(),
        branch,
        snapshot,
        &parents,
        args.message.as_str(),
        args.author.as_str(),
        Timestamp::now(),
    );
    records.write_commit(&record).map_err(Failure::json_from)?;
    match format {
        Format::Json => emit_line(out, &json!({ "commit_id": record.commit_id })),
        Format::Text => emit(out, format_args!("{}\n", record.commit_id)),
    }
}

#[derive(Debug, Args)]
pub(super) struct CommitGraphArgs {
    /// Where to start (a full id; default HEAD).
    #[arg(long = "tip")]
    tip: Option<String>,
    /// Do not enter this commit (a full id).
    #[arg(long = "stop-at")]
    stop_at: Option<String>,
    /// At most this many commits.
    #[arg(short = 'n', long = "max", default_value_t = 10_000)]
    max: usize,
    /// Only the tip and the count.
    #[arg(short = 'c', long = "count")]
    count_only: bool,
    /// Follow first parents only.
    #[arg(short = '1', long = "first-parent")]
    first_parent: bool,
    /// With --stop-at: list only the tip and the ancestors of the stop
    /// commit.
    #[arg(short = 'a', long = "ancestry-path")]
    ancestry_path: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

fn graph_row(c: &CommitRecord) -> Value {
    json!({
        "commit_id": c.commit_id,
        "parent_commit_id": c.parent_commit_id,
        "parent2_commit_id": c.parent2_commit_id,
        "message": c.message,
        "branch": c.branch,
        "committed_at": c.committed_at,
        "snapshot_id": c.snapshot_id,
        "author": c.author,
    })
}

pub(super) fn commit_graph(
    ctx: &Context,
    args: &CommitGraphArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::JsonChoices)?;
    if args.ancestry_path && args.stop_at.is_none() {
        return Err(Failure::json(
            EXIT_USER,
            "--ancestry-path requires --stop-at to be set.",
        ));
    }
    let repo = ctx.repo()?;
    let tip = match &args.tip {
        None => head_commit(&repo)?,
        Some(text) => ObjectId::from_hex(text)
            .map_err(|_| Failure::json(EXIT_USER, format!("Tip commit not found: {text}")))?,
    };
    if commit_record(&repo, &tip)?.is_none() {
        return Err(Failure::json(
            EXIT_USER,
            format!("Tip commit not found: {tip}"),
        ));
    }
    // A stop that is no id stops nothing (the reference compares text).
    let stop_at = args
        .stop_at
        .as_deref()
        .and_then(|s| ObjectId::from_hex(s).ok());
    let (commits, truncated) = muse_store::commit_graph(
        repo.records(),
        tip,
        GraphWalk {
            stop_at,
            max: args.max,
            first_parent: args.first_parent,
            ancestry_path: args.ancestry_path,
        },
    )
    .map_err(Failure::json_from)?;
    if args.count_only {
        return emit_line(out, &json!({ "tip": tip, "count": commits.len() }));
    }
    match format {
        Format::Text => {
            for c in &commits {
                emit(out, format_args!("{}\n", c.commit_id))?;
            }
            Ok(())
        }
        Format::Json => emit_json(
            out,
            &json!({
                "tip": tip,
                "count": commits.len(),
                "truncated": truncated,
                "commits": commits.iter().map(graph_row).collect::<Vec<_>>(),
            }),
            JsonStyle::Indent2,
        ),
    }
}

/// A `merge-base` or `snapshot-diff` side: HEAD, a branch, a tag or a full
/// id (no prefixes, as the reference), with `~N`/`^N`; `None` when it
/// names nothing.
fn resolve_side(
    repo: &Repository,
    text: &str,
    err: &mut dyn Write,
) -> Result<Option<ObjectId>, Failure> {
    match resolve(repo, text, RevisionSyntax::NO_PREFIXES, err) {
        Ok(found) => Ok(Some(found.commit)),
        Err(
            Error::UnknownRevision { .. }
            | Error::MalformedRevision { .. }
            | Error::UnbornBranch { .. },
        ) => Ok(None),
        Err(e) => Err(Failure::json_from(e)),
    }
}

fn cannot_resolve(text: &str) -> Failure {
    Failure::json(
        EXIT_USER,
        format!("Cannot resolve ref: {}", python_repr(text)),
    )
}

#[derive(Debug, Args)]
pub(super) struct MergeBaseArgs {
    /// One commit: HEAD, a branch, a tag or a full id.
    a: String,
    /// The other.
    b: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn merge_base(
    ctx: &Context,
    args: &MergeBaseArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let a = resolve_side(&repo, &args.a, err)?.ok_or_else(|| cannot_resolve(&args.a))?;
    let b = resolve_side(&repo, &args.b, err)?.ok_or_else(|| cannot_resolve(&args.b))?;
    let base = muse_store::merge_base(repo.records(), a, b).map_err(Failure::json_from)?;
    match (format, base) {
        (Format::Text, Some(base)) => emit(out, format_args!("{base}\n")),
        (Format::Text, None) => emit(out, format_args!("(no common ancestor)\n")),
        (Format::Json, Some(base)) => emit_line(
            out,
            &json!({ "commit_a": a, "commit_b": b, "merge_base": base }),
        ),
        (Format::Json, None) => emit_line(
            out,
            &json!({ "commit_a": a, "commit_b": b, "merge_base": null, "error": "no common ancestor" }),
        ),
    }
}

#[derive(Debug, Args)]
pub(super) struct SnapshotDiffArgs {
    /// The old side: a snapshot id, or HEAD, a branch, a tag or a commit id.
    a: String,
    /// The new side.
    b: String,
    /// In text, add a summary line.
    #[arg(short = 's', long = "stat")]
    stat: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// A snapshot's id and manifest from a snapshot id, or from a commit.
fn snapshot_of(
    repo: &Repository,
    text: &str,
    err: &mut dyn Write,
) -> Result<(ObjectId, BTreeMap<String, ObjectId>), Failure> {
    let records = repo.records();
    let read = |id: &ObjectId| match records.read_snapshot(id) {
        Ok(s) => Ok(s),
        Err(Error::RecordNotFound { .. }) => Err(Failure::json(
            EXIT_USER,
            format!("Snapshot not found: {id}"),
        )),
        Err(e) => Err(Failure::json_from(e)),
    };
    // A full id is a snapshot's before it is a commit's (the reference's
    // order); anything else is a revision.
    if let Ok(id) = ObjectId::from_hex(text)
        && records.contains_snapshot(&id)
    {
        let snapshot = read(&id)?;
        return Ok((id, snapshot.manifest));
    }
    let commit = resolve_side(repo, text, err)?.ok_or_else(|| cannot_resolve(text))?;
    let record = commit_record(repo, &commit)?.ok_or_else(|| cannot_resolve(text))?;
    let snapshot = read(&record.snapshot_id)?;
    Ok((record.snapshot_id, snapshot.manifest))
}

pub(super) fn snapshot_diff(
    ctx: &Context,
    args: &SnapshotDiffArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let (id_a, a) = snapshot_of(&repo, &args.a, err)?;
    let (id_b, b) = snapshot_of(&repo, &args.b, err)?;
    let diff = muse_store::ManifestDiff::between(&a, &b);
    match format {
        Format::Text => {
            for (mark, paths) in [
                ("A", &diff.added),
                ("M", &diff.modified),
                ("D", &diff.deleted),
            ] {
                for p in paths {
                    emit(out, format_args!("{mark}  {p}\n"))?;
                }
            }
            if args.stat {
                emit(
                    out,
                    format_args!(
                        "\n{} added, {} modified, {} deleted\n",
                        diff.added.len(),
                        diff.modified.len(),
                        diff.deleted.len()
                    ),
                )?;
            }
            Ok(())
        }
        Format::Json => {
            let added: Vec<Value> = diff
                .added
                .iter()
                .map(|p| json!({ "path": p, "object_id": b[p] }))
                .collect();
            let modified: Vec<Value> = diff
                .modified
                .iter()
                .map(|p| json!({ "path": p, "object_id_a": a[p], "object_id_b": b[p] }))
                .collect();
            let deleted: Vec<Value> = diff
                .deleted
                .iter()
                .map(|p| json!({ "path": p, "object_id": a[p] }))
                .collect();
            emit_line(
                out,
                &json!({
                    "snapshot_a": id_a,
                    "snapshot_b": id_b,
                    "added": added,
                    "modified": modified,
                    "deleted": deleted,
                    "total_changes": diff.total(),
                }),
            )
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct NameRevArgs {
    /// Commit ids to name (full ids; anything else is undefined).
    #[arg(required = true)]
    ids: Vec<String>,
    /// In text, print only the names.
    #[arg(short = 'n', long = "name-only")]
    name_only: bool,
    /// What text prints for a commit that cannot be named.
    #[arg(short = 'u', long = "undefined", default_value = "undefined")]
    undefined: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn name_rev(ctx: &Context, args: &NameRevArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let targets: Vec<ObjectId> = args
        .ids
        .iter()
        .filter_map(|t| ObjectId::from_hex(t).ok())
        .collect();
    let branches: Vec<_> = repo
        .refs()
        .branches()
        .map_err(Failure::json_from)?
        .into_iter()
        .filter_map(|(b, s)| s.commit().map(|id| (b, id)))
        .collect();
    let names =
        muse_store::name_revs(repo.records(), &branches, &targets).map_err(Failure::json_from)?;
    let lookup = |text: &str| ObjectId::from_hex(text).ok().and_then(|id| names.get(&id));
    match format {
        Format::Json => {
            let rows: Vec<Value> = args
                .ids
                .iter()
                .map(|text| match lookup(text) {
                    Some(n) => json!({ "commit_id": text, "name": n.name(), "branch": n.branch.as_str(), "distance": n.distance, "undefined": false }),
                    None => json!({ "commit_id": text, "name": null, "branch": null, "distance": null, "undefined": true }),
                })
                .collect();
            emit_line(out, &json!({ "results": rows }))
        }
        Format::Text => {
            for text in &args.ids {
                let name =
                    lookup(text).map_or_else(|| args.undefined.clone(), muse_store::RevName::name);
                if args.name_only {
                    emit(out, format_args!("{name}\n"))?;
                } else {
                    emit(out, format_args!("{text}  {name}\n"))?;
                }
            }
            Ok(())
        }
    }
}
