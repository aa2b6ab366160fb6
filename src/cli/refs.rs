//! Ref plumbing (`rev-parse`, `show-ref`, `symbolic-ref`, `update-ref`,
//! `check-ref-format`, `for-each-ref`) and the `branch` porcelain.

use std::io::{BufRead, Write};

use clap::Args;
use serde_json::{Value, json};

use super::{
    CmdResult, Context, EXIT_INTERNAL, EXIT_USER, Failure, Format, FormatError, emit, emit_line,
    parse_format, parse_id_as, warn,
};
use muse_store::{
    BranchName, Error, Expected, Head, ObjectId, RefState, Repository, Resolved, RevisionSyntax,
    fnmatch, python_repr,
};

/// A branch name by the reference's rules (what it accepts and writes),
/// refused with its own words.
fn stored_branch(text: &str) -> Result<BranchName, String> {
    BranchName::from_stored(text).map_err(|e| BranchName::refusal(text).unwrap_or(e.to_string()))
}

/// Resolves a revision (HEAD, a branch, a tag, an id or a unique prefix,
/// with `~N` / `^N`) through the library, warning on stderr when a name
/// shadowed another.
pub(super) fn resolve(
    repo: &Repository,
    text: &str,
    syntax: RevisionSyntax,
    err: &mut dyn Write,
) -> Result<Resolved, Error> {
    let found = repo.resolve_revision(text, syntax)?;
    if let Some(other) = &found.shadowed {
        warn(
            err,
            &format!("'{text}' also names {other}; using {}", describe(&found)),
        );
    }
    Ok(found)
}

fn describe(found: &Resolved) -> String {
    match &found.base {
        muse_store::RevisionBase::Head => "HEAD".to_owned(),
        muse_store::RevisionBase::Branch(b) => format!("branch '{b}'"),
        muse_store::RevisionBase::Tag(t) => format!("tag '{t}'"),
        muse_store::RevisionBase::Id | muse_store::RevisionBase::Prefix => {
            "the commit id".to_owned()
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct RevParseArgs {
    /// HEAD, a branch, a tag, a full id or a unique id prefix (4+ hex),
    /// optionally followed by `~N` / `^N`.
    rev: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn rev_parse(
    ctx: &Context,
    args: &RevParseArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Stderr)?;
    let repo = ctx.repo()?;
    let failed = |error: &str, extra: Option<Vec<ObjectId>>| {
        let mut value = json!({ "ref": args.rev, "commit_id": null, "error": error });
        if let Some(candidates) = extra {
            value["candidates"] = json!(candidates);
        }
        Failure::json_value(EXIT_USER, value)
    };
    let id = match resolve(&repo, &args.rev, RevisionSyntax::FULL, err) {
        Ok(found) => found.commit,
        Err(Error::UnbornBranch { .. }) if args.rev.eq_ignore_ascii_case("HEAD") => {
            return Err(failed("HEAD has no commits", None));
        }
        Err(Error::AmbiguousRevision { candidates, .. }) => {
            return Err(failed("ambiguous", Some(candidates)));
        }
        Err(
            Error::UnknownRevision { .. }
            | Error::MalformedRevision { .. }
            | Error::UnbornBranch { .. },
        ) => return Err(failed("not found", None)),
        Err(e) => return Err(Failure::json_from(e)),
    };
    match format {
        Format::Json => emit_line(out, &json!({ "ref": args.rev, "commit_id": id })),
        Format::Text => emit(out, format_args!("{id}\n")),
    }
}

#[derive(Debug, Args)]
pub(super) struct ShowRefArgs {
    /// Only refs whose full name (`refs/heads/<branch>`) matches this glob.
    #[arg(short = 'p', long = "pattern", default_value = "")]
    pattern: String,
    /// Only HEAD.
    #[arg(short = 'H', long = "head")]
    head_only: bool,
    /// Exit 0 when this full ref exists, 1 otherwise; print nothing.
    #[arg(short = 'v', long = "verify", value_name = "REF", default_value = "")]
    verify: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// Every branch with a commit, as `(refs/heads/<b>, branch, id)`, sorted;
/// each commit's record is read and verified (a tampered one stops the
/// listing with exit 3; a missing one is listed, as in the reference).
fn listed_refs(repo: &Repository) -> Result<Vec<(String, BranchName, ObjectId)>, Failure> {
    let mut out = Vec::new();
    for (branch, state) in repo.refs().branches().map_err(Failure::json_from)? {
        let Some(id) = state.commit() else { continue };
        match repo.records().read_commit(&id) {
            Ok(_) | Err(Error::RecordNotFound { .. }) => {}
            Err(e) => return Err(Failure::json_from(e)),
        }
        out.push((format!("refs/heads/{branch}"), branch, id));
    }
    Ok(out)
}

/// What HEAD points at: `{"ref", "branch", "commit_id"}`, or null on an
/// unborn branch. A detached HEAD (the reference cannot have one in
/// plumbing) is `{"ref": "HEAD", "branch": null, "commit_id"}`.
fn head_info(repo: &Repository) -> Result<Value, Failure> {
    let refs = repo.refs();
    Ok(match refs.head().map_err(Failure::json_from)? {
        Head::Branch(b) => match refs.branch(&b).map_err(Failure::json_from)? {
            Some(id) => {
                json!({ "ref": format!("refs/heads/{b}"), "branch": b.as_str(), "commit_id": id })
            }
            None => Value::Null,
        },
        Head::Detached(id) => json!({ "ref": "HEAD", "branch": null, "commit_id": id }),
    })
}

pub(super) fn show_ref(ctx: &Context, args: &ShowRefArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    if !args.verify.is_empty() {
        let refs = listed_refs(&repo).map_err(|f| Failure::silent(f.code))?;
        return if refs.iter().any(|(full, _, _)| *full == args.verify) {
            Ok(())
        } else {
            Err(Failure::silent(EXIT_USER))
        };
    }
    let head = head_info(&repo)?;
    if args.head_only {
        return match format {
            Format::Json => emit_line(out, &json!({ "head": head })),
            Format::Text if head.is_null() => emit(out, format_args!("(no HEAD commit)\n")),
            Format::Text => emit(
                out,
                format_args!(
                    "{}  {}  (HEAD)\n",
                    head["commit_id"].as_str().unwrap_or_default(),
                    head["ref"].as_str().unwrap_or_default()
                ),
            ),
        };
    }
    let refs: Vec<_> = listed_refs(&repo)?
        .into_iter()
        .filter(|(full, _, _)| args.pattern.is_empty() || fnmatch(&args.pattern, full))
        .collect();
    match format {
        Format::Json => {
            let rows: Vec<Value> = refs
                .iter()
                .map(|(full, _, id)| json!({ "ref": full, "commit_id": id }))
                .collect();
            emit_line(
                out,
                &json!({ "refs": rows, "head": head, "count": refs.len() }),
            )
        }
        Format::Text => {
            let head_ref = head["ref"].as_str();
            for (full, _, id) in &refs {
                if head_ref == Some(full.as_str()) {
                    emit(out, format_args!("{id}  * {full}  (HEAD)\n"))?;
                } else {
                    emit(out, format_args!("{id}    {full}\n"))?;
                }
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct SymbolicRefArgs {
    /// Only `HEAD` is a symbolic ref.
    #[arg(default_value = "HEAD")]
    name: String,
    /// Point HEAD at this (existing) branch.
    #[arg(short = 's', long = "set", value_name = "BRANCH", default_value = "")]
    set: String,
    /// Text output gives the branch name instead of `refs/heads/<branch>`.
    #[arg(short = 'S', long = "short")]
    short: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn symbolic_ref(
    ctx: &Context,
    args: &SymbolicRefArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    if !args.name.eq_ignore_ascii_case("HEAD") {
        return Err(Failure::json(
            EXIT_USER,
            format!(
                "Unsupported ref {}. Only HEAD is supported.",
                python_repr(&args.name)
            ),
        ));
    }
    let repo = ctx.repo()?;
    let refs = repo.refs();
    if !args.set.is_empty() {
        let branch = stored_branch(&args.set).map_err(|m| Failure::json(EXIT_USER, m))?;
        // The branch must exist; an unborn one (an empty file) does.
        if refs.branch_state(&branch).map_err(Failure::json_from)? == RefState::Missing {
            return Err(Failure::json(
                EXIT_USER,
                format!("Branch {} does not exist.", python_repr(&args.set)),
            ));
        }
        refs.set_head(
            &Head::Branch(branch.clone()),
            &format!("symbolic-ref: moving to {branch}"),
        )
        .map_err(Failure::json_from)?;
    }
    let Head::Branch(branch) = refs.head().map_err(Failure::json_from)? else {
        return Err(Failure::json(
            EXIT_USER,
            "HEAD is detached: it is not a symbolic ref",
        ));
    };
    let commit = refs.branch(&branch).map_err(Failure::json_from)?;
    match format {
        Format::Json => emit_line(
            out,
            &json!({
                "ref": "HEAD",
                "symbolic_target": format!("refs/heads/{branch}"),
                "branch": branch.as_str(),
                "commit_id": commit,
            }),
        ),
        Format::Text if args.short => emit(out, format_args!("{branch}\n")),
        Format::Text => emit(out, format_args!("refs/heads/{branch}\n")),
    }
}

#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each bool is one command-line flag"
)]
pub(super) struct UpdateRefArgs {
    /// The branch to move (not with --stdin).
    #[arg(required_unless_present = "stdin")]
    branch: Option<String>,
    /// The commit to point it at (not with --delete or --stdin).
    commit_id: Option<String>,
    /// Compare-and-swap (an extension): only if the branch still holds this id.
    #[arg(
        short = 'o',
        long = "old-value",
        value_name = "ID",
        conflicts_with = "create"
    )]
    old_value: Option<String>,
    /// Only if the branch does not exist yet or is unborn (an extension).
    #[arg(short = 'c', long = "create")]
    create: bool,
    /// Delete the branch.
    #[arg(short = 'd', long = "delete", conflicts_with = "create")]
    delete: bool,
    /// Do not check that the commit record exists.
    #[arg(short = 'n', long = "no-verify")]
    no_verify: bool,
    /// Read a transaction from standard input, one instruction a line (an
    /// extension).
    #[arg(short = 'i', long = "stdin", conflicts_with_all = ["branch", "commit_id", "old_value", "create", "delete"])]
    stdin: bool,
    /// Output format: json, or text (silent on success).
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// The failure for a compare-and-swap mismatch: the JSON error object with
/// what was expected and found.
fn cas_failure(err: Error) -> Failure {
    match &err {
        Error::CasMismatch(conflict) => Failure::json_value(
            EXIT_USER,
            json!({
                "error": "cas_mismatch",
                "branch": conflict.branch,
                "expected": conflict.expected.to_string(),
                "actual": conflict.actual,
            }),
        ),
        _ => Failure::json_from(err),
    }
}

fn check_commit_exists(repo: &Repository, id: &ObjectId) -> Result<(), Failure> {
    if repo.records().contains_commit(id) {
        Ok(())
    } else {
        Err(Failure::json(
            EXIT_USER,
            format!("Commit not found in store: {id}"),
        ))
    }
}

pub(super) fn update_ref(
    ctx: &Context,
    args: &UpdateRefArgs,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    if args.stdin {
        // gc cannot remove a commit between the check that it exists and
        // the update that points at it.
        let _guard = repo.write_guard()?;
        return update_ref_stdin(&repo, args, format, input, out);
    }
    let text = args.branch.as_deref().unwrap_or_default();
    let branch = stored_branch(text)
        .map_err(|m| Failure::json(EXIT_USER, format!("Invalid branch name: {m}")))?;
    let _guard = repo.write_guard()?;
    let expected = match (&args.old_value, args.create) {
        (Some(old), _) => {
            Expected::Value(parse_id_as(old, "old value").map_err(|m| Failure::json(EXIT_USER, m))?)
        }
        (None, true) => Expected::Absent,
        (None, false) => Expected::Any,
    };
    let refs = repo.refs();
    if args.delete {
        if refs.branch_state(&branch).map_err(Failure::json_from)? == RefState::Missing {
            return Err(Failure::json(
                EXIT_USER,
                format!("Branch ref does not exist: {branch}"),
            ));
        }
        let previous = refs
            .delete(&branch, expected, "update-ref: delete")
            .map_err(cas_failure)?;
        return match format {
            Format::Json => emit_line(
                out,
                &json!({ "branch": branch.as_str(), "deleted": true, "previous": previous }),
            ),
            Format::Text => Ok(()),
        };
    }
    let Some(commit) = &args.commit_id else {
        return Err(Failure::json(
            EXIT_USER,
            "commit_id is required unless --delete is used.",
        ));
    };
    let new = parse_id_as(commit, "commit ID").map_err(|m| Failure::json(EXIT_USER, m))?;
    if !args.no_verify {
        check_commit_exists(&repo, &new)?;
    }
    let previous = refs
        .update(&branch, new, expected, "update-ref")
        .map_err(cas_failure)?;
    match format {
        Format::Json => emit_line(
            out,
            &json!({ "branch": branch.as_str(), "commit_id": new, "previous": previous }),
        ),
        Format::Text => Ok(()),
    }
}

/// An old value in a transaction line: 64 zeros means "must not exist".
fn expected_arg(text: Option<&str>) -> Result<Expected, Failure> {
    match text {
        None => Ok(Expected::Any),
        Some(t) => {
            let id = parse_id_as(t, "old value").map_err(|m| Failure::json(EXIT_USER, m))?;
            Ok(if id == ObjectId::ZERO {
                Expected::Absent
            } else {
                Expected::Value(id)
            })
        }
    }
}

fn update_ref_stdin(
    repo: &Repository,
    args: &UpdateRefArgs,
    format: Format,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> CmdResult {
    let refs = repo.refs();
    let mut tx = refs.transaction("update-ref: transaction");
    for (n, line) in input.lines().enumerate() {
        let line = line
            .map_err(|e| Failure::json(EXIT_USER, format!("could not read standard input: {e}")))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let at_line = |f: Failure| {
            let message = format!("line {}: {}", n + 1, f.message);
            Failure::json(f.code, message)
        };
        let branch_of = |text: &str| {
            stored_branch(text).map_err(|m| {
                Failure::json(
                    EXIT_USER,
                    format!("line {}: Invalid branch name: {m}", n + 1),
                )
            })
        };
        let id_of =
            |text: &str| parse_id_as(text, "commit ID").map_err(|m| Failure::json(EXIT_USER, m));
        match words.as_slice() {
            [] => {}
            [first, ..] if first.starts_with('#') => {}
            ["update", branch, new] | ["update", branch, new, _] => {
                let expected = expected_arg(words.get(3).copied()).map_err(at_line)?;
                let new = id_of(new).map_err(at_line)?;
                if !args.no_verify {
                    check_commit_exists(repo, &new).map_err(at_line)?;
                }
                tx.update(branch_of(branch)?, new, expected);
            }
            ["create", branch, new] => {
                let new = id_of(new).map_err(at_line)?;
                if !args.no_verify {
                    check_commit_exists(repo, &new).map_err(at_line)?;
                }
                tx.create(branch_of(branch)?, new);
            }
            ["delete", branch] | ["delete", branch, _] => {
                let expected = expected_arg(words.get(2).copied()).map_err(at_line)?;
                tx.delete(branch_of(branch)?, expected);
            }
            ["verify", branch, old] => {
                let expected = expected_arg(Some(old)).map_err(at_line)?;
                tx.verify(branch_of(branch)?, expected);
            }
            _ => {
                return Err(Failure::json(
                    EXIT_USER,
                    format!(
                        "line {}: expected 'update <branch> <new> [<old>]', 'create <branch> <new>', 'delete <branch> [<old>]' or 'verify <branch> <old>': {line:?}",
                        n + 1
                    ),
                ));
            }
        }
    }
    let changes = tx.commit().map_err(cas_failure)?;
    match format {
        Format::Json => {
            let rows: Vec<Value> = changes
                .iter()
                .map(|c| json!({ "branch": c.branch.as_str(), "commit_id": c.new.commit(), "previous": c.old.commit() }))
                .collect();
            emit_line(out, &json!({ "updated": rows, "count": changes.len() }))
        }
        Format::Text => Ok(()),
    }
}

#[derive(Debug, Args)]
pub(super) struct CheckRefFormatArgs {
    /// Names to check.
    #[arg(required = true)]
    names: Vec<String>,
    /// Print nothing; the exit code says whether all are valid.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn check_ref_format(args: &CheckRefFormatArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let results: Vec<(&String, Option<String>)> = args
        .names
        .iter()
        .map(|n| (n, BranchName::refusal(n)))
        .collect();
    let all_valid = results.iter().all(|(_, r)| r.is_none());
    if !args.quiet {
        match format {
            Format::Json => {
                let rows: Vec<Value> = results
                    .iter()
                    .map(|(n, r)| json!({ "name": n, "valid": r.is_none(), "error": r }))
                    .collect();
                emit_line(out, &json!({ "results": rows, "all_valid": all_valid }))?;
            }
            Format::Text => {
                for (n, r) in &results {
                    match r {
                        None => emit(out, format_args!("ok    {n}\n"))?,
                        Some(e) => emit(out, format_args!("FAIL  {n}  \u{2192}  {e}\n"))?,
                    }
                }
            }
        }
    }
    if all_valid {
        Ok(())
    } else {
        Err(Failure::silent(EXIT_USER))
    }
}

#[derive(Debug, Args)]
pub(super) struct ForEachRefArgs {
    /// Only refs whose full name (`refs/heads/<branch>`) matches this glob.
    #[arg(short = 'p', long = "pattern", default_value = "")]
    pattern: String,
    /// Sort by this field: `ref`, `branch`, `commit_id`, `author`,
    /// `committed_at`, `message`.
    #[arg(short = 's', long = "sort", default_value = "ref")]
    sort: String,
    /// Sort descending.
    #[arg(short = 'd', long = "desc")]
    desc: bool,
    /// At most this many refs (0: all).
    #[arg(short = 'n', long = "count", default_value_t = 0)]
    count: usize,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

const SORT_FIELDS: [&str; 6] = [
    "ref",
    "branch",
    "commit_id",
    "author",
    "committed_at",
    "message",
];

pub(super) fn for_each_ref(ctx: &Context, args: &ForEachRefArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    if !SORT_FIELDS.contains(&args.sort.as_str()) {
        return Err(Failure::json(
            EXIT_USER,
            format!(
                "Unknown sort field {}. Valid: {}",
                python_repr(&args.sort),
                SORT_FIELDS.join(", ")
            ),
        ));
    }
    let repo = ctx.repo()?;
    let mut rows = Vec::new();
    for (full, branch, id) in listed_refs(&repo)? {
        if !args.pattern.is_empty() && !fnmatch(&args.pattern, &full) {
            continue;
        }
        rows.push(ref_row(&repo, &full, &branch, id)?);
    }
    // Stable both ways (Python's sort with reverse=True keeps ties in order).
    let key = |v: &Value| v[&args.sort].as_str().unwrap_or_default().to_owned();
    if args.desc {
        rows.sort_by_key(|v| std::cmp::Reverse(key(v)));
    } else {
        rows.sort_by_key(key);
    }
    if args.count > 0 {
        rows.truncate(args.count);
    }
    match format {
        Format::Json => emit_line(out, &json!({ "refs": rows, "count": rows.len() })),
        Format::Text => {
            for r in &rows {
                emit(
                    out,
                    format_args!(
                        "{}  {}  {}  {}\n",
                        r["commit_id"].as_str().unwrap_or_default(),
                        r["ref"].as_str().unwrap_or_default(),
                        r["committed_at"].as_str().unwrap_or_default(),
                        r["author"].as_str().unwrap_or_default()
                    ),
                )?;
            }
            Ok(())
        }
    }
}

/// One `for-each-ref` row; the commit fields come from the commit record,
/// read and verified (a tampered record is an error, exit 3); a missing
/// record gives the reference's placeholders.
fn ref_row(
    repo: &Repository,
    full: &str,
    branch: &BranchName,
    id: ObjectId,
) -> Result<Value, Failure> {
    match repo.records().read_commit(&id) {
        Ok(record) => Ok(json!({
            "ref": full, "branch": branch.as_str(), "commit_id": id,
            "author": record.author, "message": record.message,
            "committed_at": record.committed_at, "snapshot_id": record.snapshot_id,
        })),
        Err(Error::RecordNotFound { .. }) => Ok(json!({
            "ref": full, "branch": branch.as_str(), "commit_id": id,
            "author": "", "message": "(commit record missing)",
            "committed_at": "", "snapshot_id": "",
        })),
        Err(e) => Err(Failure {
            code: EXIT_INTERNAL,
            ..Failure::json_from(e)
        }),
    }
}

#[derive(Debug, Args)]
pub(super) struct BranchArgs {
    /// Create this branch at HEAD's commit (git's naming rules: no `x.lock`,
    /// spaces, `~ ^ : ? * [`; the plumbing `update-ref` takes every name the
    /// reference accepts).
    name: Option<String>,
    /// Delete this branch.
    #[arg(
        short = 'd',
        long = "delete",
        value_name = "NAME",
        conflicts_with = "name"
    )]
    delete: Option<String>,
    /// Rename a branch: `-m <old> <new>`, keeping its reflog (HEAD follows).
    #[arg(
        short = 'm',
        long = "move",
        num_args = 2,
        value_names = ["OLD", "NEW"],
        conflicts_with_all = ["name", "delete"]
    )]
    rename: Option<Vec<String>>,
}

pub(super) fn branch(ctx: &Context, args: &BranchArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let refs = repo.refs();
    if let Some([old, new]) = args.rename.as_deref() {
        // The old name may be one the reference wrote; the new one follows
        // the stricter rules of names this project creates.
        let old = BranchName::from_stored(old).map_err(|e| Failure::user(e.to_string()))?;
        let new = BranchName::new(new).map_err(|e| Failure::user(e.to_string()))?;
        let at = refs.rename_branch(&old, &new)?;
        return emit(
            out,
            format_args!(
                "Renamed branch {old} to {new} (at {})\n",
                &at.to_hex()[..12]
            ),
        );
    }
    if let Some(name) = &args.delete {
        // Any name the reference may have written can be deleted.
        let branch = stored_branch(name).map_err(Failure::user)?;
        let previous = refs.delete_branch(&branch)?;
        let short = previous
            .map(|id| id.to_hex()[..12].to_owned())
            .unwrap_or_default();
        return emit(out, format_args!("Deleted branch {branch} (was {short})\n"));
    }
    if let Some(name) = &args.name {
        let branch = BranchName::new(name).map_err(|e| Failure::user(e.to_string()))?;
        let start = refs.create_branch_at_head(&branch)?;
        return emit(
            out,
            format_args!("Created branch {branch} at {}\n", &start.to_hex()[..12]),
        );
    }
    let head = refs.head()?;
    for (b, _) in refs.branches()? {
        let mark = if head == Head::Branch(b.clone()) {
            '*'
        } else {
            ' '
        };
        emit(out, format_args!("{mark} {b}\n"))?;
    }
    Ok(())
}
