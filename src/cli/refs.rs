//! Ref plumbing (`rev-parse`, `show-ref`, `symbolic-ref`, `update-ref`,
//! `check-ref-format`, `for-each-ref`) and the `branch` porcelain.

use std::io::{BufRead, Write};

use clap::Args;
use serde_json::{Value, json};

use super::{CmdResult, Context, EXIT_USER, Failure, Format, emit, emit_json, parse_id};
use muse_store::{BranchName, Error, Expected, Head, ObjectId, Repository};

/// Parses a branch name from the command line (exit 1 naming it when bad).
fn branch_arg(text: &str) -> Result<BranchName, Failure> {
    BranchName::new(text).map_err(|e| Failure::user(e.to_string()))
}

/// Resolves a revision (HEAD, a branch, an id or a unique prefix, with
/// `~N` / `^N`) through the library.
pub(super) fn resolve(repo: &Repository, text: &str) -> Result<ObjectId, Failure> {
    Ok(repo.resolve(text)?)
}

fn opt_id(id: Option<ObjectId>) -> Value {
    id.map_or(Value::Null, |id| json!(id))
}

#[derive(Debug, Args)]
pub(super) struct RevParseArgs {
    /// HEAD, a branch, a full id or a unique id prefix (4+ hex characters).
    rev: String,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

pub(super) fn rev_parse(ctx: &Context, args: &RevParseArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let id = resolve(&repo, &args.rev)?;
    match args.format {
        Format::Json => emit_json(out, &json!({ "ref": args.rev, "commit_id": id })),
        Format::Text => emit(out, format_args!("{id}\n")),
    }
}

#[derive(Debug, Args)]
pub(super) struct ShowRefArgs {
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

fn head_json(repo: &Repository) -> Result<Value, Failure> {
    let refs = repo.refs();
    Ok(match refs.head()? {
        Head::Branch(b) => json!({
            "ref": "HEAD",
            "symbolic_target": format!("refs/heads/{b}"),
            "branch": b.as_str(),
            "commit_id": opt_id(refs.branch(&b)?),
        }),
        Head::Detached(id) => json!({
            "ref": "HEAD",
            "symbolic_target": null,
            "branch": null,
            "commit_id": id,
        }),
    })
}

pub(super) fn show_ref(ctx: &Context, args: &ShowRefArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let branches = repo.refs().branches()?;
    // Every commit shown is read through the verified record store: a
    // tampered record stops the listing (exit 3) rather than being shown.
    for (_, state) in &branches {
        if let Some(id) = state.commit() {
            match repo.records().read_commit(&id) {
                Ok(_) | Err(Error::RecordNotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    match args.format {
        Format::Json => {
            let refs: Vec<_> = branches
                .iter()
                .filter_map(|(b, s)| {
                    s.commit()
                        .map(|id| json!({ "ref": format!("refs/heads/{b}"), "commit_id": id }))
                })
                .collect();
            emit_json(out, &json!({ "refs": refs, "head": head_json(&repo)? }))
        }
        Format::Text => {
            for (b, s) in &branches {
                if let Some(id) = s.commit() {
                    emit(out, format_args!("{id} refs/heads/{b}\n"))?;
                }
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct SymbolicRefArgs {
    /// Only `HEAD` is a symbolic ref.
    name: String,
    /// Point HEAD at this branch.
    #[arg(short = 's', long = "set", value_name = "BRANCH")]
    set: Option<String>,
    /// Text output gives the branch name instead of `refs/heads/<branch>`.
    #[arg(short = 'S', long = "short")]
    short: bool,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

pub(super) fn symbolic_ref(
    ctx: &Context,
    args: &SymbolicRefArgs,
    out: &mut dyn Write,
) -> CmdResult {
    if args.name != "HEAD" {
        return Err(Failure::user(format!(
            "'{}' is not a symbolic ref; only HEAD is",
            args.name
        )));
    }
    let repo = ctx.repo()?;
    let refs = repo.refs();
    if let Some(target) = &args.set {
        let branch = branch_arg(target)?;
        refs.set_head(
            &Head::Branch(branch.clone()),
            &format!("symbolic-ref: moving to {branch}"),
        )?;
    }
    let Head::Branch(branch) = refs.head()? else {
        return Err(Failure::user("HEAD is detached: it is not a symbolic ref"));
    };
    match args.format {
        Format::Json => emit_json(out, &head_json(&repo)?),
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
    #[arg(required_unless_present_any = ["delete", "stdin"])]
    commit_id: Option<String>,
    /// Compare-and-swap: only if the branch still holds this id.
    #[arg(
        short = 'o',
        long = "old-value",
        value_name = "ID",
        conflicts_with = "create"
    )]
    old_value: Option<String>,
    /// Only if the branch does not exist yet (or is unborn).
    #[arg(short = 'c', long = "create")]
    create: bool,
    /// Delete the branch.
    #[arg(short = 'd', long = "delete", conflicts_with_all = ["commit_id", "create"])]
    delete: bool,
    /// Do not check that the commit record exists.
    #[arg(short = 'n', long = "no-verify")]
    no_verify: bool,
    /// Read a transaction from standard input, one instruction a line.
    #[arg(short = 'i', long = "stdin", conflicts_with_all = ["branch", "commit_id", "old_value", "create", "delete"])]
    stdin: bool,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

/// The failure for a compare-and-swap mismatch: JSON on stderr in JSON mode.
fn cas_failure(err: Error, format: Format) -> Failure {
    match (&err, format) {
        (Error::CasMismatch(conflict), Format::Json) => Failure {
            code: EXIT_USER,
            json: true,
            message: json!({
                "error": "cas_mismatch",
                "branch": conflict.branch,
                "expected": conflict.expected.to_string(),
                "actual": opt_id(conflict.actual),
            })
            .to_string(),
        },
        _ => err.into(),
    }
}

fn check_commit_exists(repo: &Repository, id: &ObjectId) -> Result<(), Failure> {
    if repo.records().contains_commit(id) {
        Ok(())
    } else {
        Err(Failure::user(format!(
            "commit {id} does not exist in this repository (use --no-verify to set it anyway)"
        )))
    }
}

pub(super) fn update_ref(
    ctx: &Context,
    args: &UpdateRefArgs,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> CmdResult {
    let repo = ctx.repo()?;
    if args.stdin {
        // gc cannot remove a commit between the check that it exists and
        // the update that points at it.
        let _guard = repo.write_guard()?;
        return update_ref_stdin(&repo, args, input, out);
    }
    let branch = branch_arg(args.branch.as_deref().unwrap_or_default())?;
    let _guard = repo.write_guard()?;
    let expected = match (&args.old_value, args.create) {
        (Some(old), _) => Expected::Value(parse_id(old)?),
        (None, true) => Expected::Absent,
        (None, false) => Expected::Any,
    };
    let refs = repo.refs();
    if args.delete {
        let previous = refs
            .delete(&branch, expected, "update-ref: delete")
            .map_err(|e| cas_failure(e, args.format))?;
        return match args.format {
            Format::Json => emit_json(
                out,
                &json!({ "branch": branch.as_str(), "deleted": true, "previous": opt_id(previous) }),
            ),
            Format::Text => emit(out, format_args!("deleted {branch}\n")),
        };
    }
    let new = parse_id(args.commit_id.as_deref().unwrap_or_default())?;
    if !args.no_verify {
        check_commit_exists(&repo, &new)?;
    }
    let previous = refs
        .update(&branch, new, expected, "update-ref")
        .map_err(|e| cas_failure(e, args.format))?;
    match args.format {
        Format::Json => emit_json(
            out,
            &json!({ "branch": branch.as_str(), "commit_id": new, "previous": opt_id(previous) }),
        ),
        Format::Text => emit(out, format_args!("{new}\n")),
    }
}

/// An old value in a transaction line: 64 zeros means "must not exist".
fn expected_arg(text: Option<&str>) -> Result<Expected, Failure> {
    match text {
        None => Ok(Expected::Any),
        Some(t) => {
            let id = parse_id(t)?;
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
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> CmdResult {
    let refs = repo.refs();
    let mut tx = refs.transaction("update-ref: transaction");
    for (n, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| Failure::user(format!("could not read standard input: {e}")))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = |why: &str| Failure::user(format!("line {}: {why}: {line:?}", n + 1));
        let with_line = |f: Failure| Failure {
            message: format!("line {}: {}", n + 1, f.message),
            ..f
        };
        match words.as_slice() {
            [] => {}
            [first, ..] if first.starts_with('#') => {}
            ["update", branch, new] | ["update", branch, new, _] => {
                let expected = expected_arg(words.get(3).copied()).map_err(with_line)?;
                let new = parse_id(new).map_err(with_line)?;
                if !args.no_verify {
                    check_commit_exists(repo, &new).map_err(with_line)?;
                }
                tx.update(branch_arg(branch).map_err(with_line)?, new, expected);
            }
            ["create", branch, new] => {
                let new = parse_id(new).map_err(with_line)?;
                if !args.no_verify {
                    check_commit_exists(repo, &new).map_err(with_line)?;
                }
                tx.create(branch_arg(branch).map_err(with_line)?, new);
            }
            ["delete", branch] | ["delete", branch, _] => {
                let expected = expected_arg(words.get(2).copied()).map_err(with_line)?;
                tx.delete(branch_arg(branch).map_err(with_line)?, expected);
            }
            ["verify", branch, old] => {
                let expected = expected_arg(Some(old)).map_err(with_line)?;
                tx.verify(branch_arg(branch).map_err(with_line)?, expected);
            }
            _ => {
                return Err(bad(
                    "expected 'update <branch> <new> [<old>]', 'create <branch> <new>', 'delete <branch> [<old>]' or 'verify <branch> <old>'",
                ));
            }
        }
    }
    let changes = tx.commit().map_err(|e| cas_failure(e, args.format))?;
    match args.format {
        Format::Json => {
            let rows: Vec<_> = changes
                .iter()
                .map(|c| json!({ "branch": c.branch.as_str(), "commit_id": opt_id(c.new.commit()), "previous": opt_id(c.old.commit()) }))
                .collect();
            emit_json(out, &json!({ "updated": rows, "count": changes.len() }))
        }
        Format::Text => {
            for c in &changes {
                emit(
                    out,
                    format_args!("{} {}\n", c.branch, opt_id(c.new.commit())),
                )?;
            }
            Ok(())
        }
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
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

pub(super) fn check_ref_format(args: &CheckRefFormatArgs, out: &mut dyn Write) -> CmdResult {
    let results: Vec<_> = args.names.iter().map(|n| (n, BranchName::new(n))).collect();
    let all_valid = results.iter().all(|(_, r)| r.is_ok());
    if !args.quiet {
        match args.format {
            Format::Json => {
                let rows: Vec<_> = results
                    .iter()
                    .map(|(n, r)| json!({ "name": n, "valid": r.is_ok(), "error": r.as_ref().err().map(|e| e.reason) }))
                    .collect();
                emit_json(out, &json!({ "results": rows, "all_valid": all_valid }))?;
            }
            Format::Text => {
                for (n, r) in &results {
                    match r {
                        Ok(_) => emit(out, format_args!("valid {n}\n"))?,
                        Err(e) => emit(out, format_args!("invalid {n}: {}\n", e.reason))?,
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
    /// Only refs matching this glob (`*` and `?`), against the branch name
    /// or the full `refs/heads/<branch>`.
    #[arg(short = 'p', long = "pattern")]
    pattern: Option<String>,
    /// Sort by this field.
    #[arg(short = 's', long = "sort", default_value = "ref")]
    sort: String,
    /// Sort descending.
    #[arg(short = 'd', long = "desc")]
    desc: bool,
    /// At most this many refs.
    #[arg(short = 'n', long = "count")]
    count: Option<usize>,
}

const REF_FIELDS: [&str; 7] = [
    "ref",
    "branch",
    "commit_id",
    "author",
    "message",
    "committed_at",
    "snapshot_id",
];

pub(super) fn for_each_ref(ctx: &Context, args: &ForEachRefArgs, out: &mut dyn Write) -> CmdResult {
    if !REF_FIELDS.contains(&args.sort.as_str()) {
        return Err(Failure::user(format!(
            "cannot sort by '{}': expected one of {}",
            args.sort,
            REF_FIELDS.join(", ")
        )));
    }
    let repo = ctx.repo()?;
    let mut rows = Vec::new();
    for (branch, state) in repo.refs().branches()? {
        let full = format!("refs/heads/{branch}");
        if let Some(p) = &args.pattern
            && !glob_match(p, branch.as_str())
            && !glob_match(p, &full)
        {
            continue;
        }
        let Some(id) = state.commit() else { continue };
        rows.push(ref_row(&repo, &full, &branch, id)?);
    }
    rows.sort_by(|a, b| {
        let key = |v: &Value| {
            v.get(&args.sort)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        key(a).cmp(&key(b))
    });
    if args.desc {
        rows.reverse();
    }
    if let Some(n) = args.count {
        rows.truncate(n);
    }
    emit_json(out, &json!({ "count": rows.len(), "refs": rows }))
}

/// One `for-each-ref` row; the commit fields come from the commit record,
/// read and verified (a tampered record is an error, exit 3), and are null
/// when the record is missing.
fn ref_row(
    repo: &Repository,
    full: &str,
    branch: &BranchName,
    id: ObjectId,
) -> Result<Value, Failure> {
    let mut row = json!({
        "ref": full, "branch": branch.as_str(), "commit_id": id,
        "author": null, "message": null, "committed_at": null, "snapshot_id": null,
    });
    match repo.records().read_commit(&id) {
        Ok(record) => {
            row["author"] = json!(record.author);
            row["message"] = json!(record.message);
            row["committed_at"] = json!(record.committed_at);
            row["snapshot_id"] = json!(record.snapshot_id);
        }
        Err(Error::RecordNotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(row)
}

/// Matches `*` (any run of characters) and `?` (one character).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Args)]
pub(super) struct BranchArgs {
    /// Create this branch at HEAD's commit.
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
        let new = branch_arg(new)?;
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
        let branch = branch_arg(name)?;
        let previous = refs.delete_branch(&branch)?;
        let short = previous
            .map(|id| id.to_hex()[..12].to_owned())
            .unwrap_or_default();
        return emit(out, format_args!("Deleted branch {branch} (was {short})\n"));
    }
    if let Some(name) = &args.name {
        let branch = branch_arg(name)?;
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

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("feat/*", "feat/x"));
        assert!(glob_match("*", "main"));
        assert!(glob_match("ma?n", "main"));
        assert!(!glob_match("feat/*", "main"));
        assert!(glob_match("refs/heads/*", "refs/heads/a/b"));
    }
}
