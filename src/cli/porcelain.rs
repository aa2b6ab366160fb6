//! Porcelain: `commit`, `status`, `log`, `checkout`.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::{CmdResult, Context, Failure, Format, FormatError, emit, emit_line, parse_format};
use muse_store::{BranchName, Error, Head, NewCommit, ObjectId, RefState, Repository};

#[derive(Debug, Args)]
pub(super) struct CommitArgs {
    /// The commit message.
    #[arg(short = 'm', long = "message")]
    message: String,
    /// The author (default: config user.name).
    #[arg(short = 'a', long = "author")]
    author: Option<String>,
}

pub(super) fn commit(ctx: &Context, args: &CommitArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let spec = NewCommit {
        message: args.message.clone(),
        author: args.author.clone(),
        ..NewCommit::default()
    };
    let done = super::with_progress(|progress| muse_store::commit_worktree(&repo, &spec, progress))
        .map_err(|e| match e {
            Error::CasMismatch(conflict) => Failure::user(format!(
                "conflict: branch '{}' moved while this commit was being made; nothing was changed, commit again",
                conflict.branch
            )),
            e => e.into(),
        })?;
    let first_line = done.commit.message.lines().next().unwrap_or_default();
    emit(
        out,
        format_args!(
            "[{} {}] {first_line}\n {} files\n",
            done.branch,
            &done.commit.commit_id.to_hex()[..12],
            done.snapshot.manifest.len()
        ),
    )
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// Output format: text or json.
    #[arg(short = 'f', long = "format", default_value = "text")]
    format: String,
}

#[expect(
    clippy::too_many_lines,
    reason = "the JSON and the text forms of one report, side by side"
)]
pub(super) fn status(
    ctx: &Context,
    args: &StatusArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Stderr)?;
    let repo = ctx.repo()?;
    let st = muse_store::worktree_status(&repo)?;
    let branch = match &st.head {
        Head::Branch(b) => Some(b.to_string()),
        Head::Detached(_) => None,
    };
    // Once per pattern whose meaning is not git's, so nobody is surprised
    // silently (stderr, whatever the format).
    for w in &st.ignore_warnings {
        let _ = writeln!(err, "warning: .museignore: {}", w.message);
    }
    let ex = &st.exclusions;
    if format == Format::Json {
        let renamed: Vec<_> = st
            .renamed
            .iter()
            .map(|(from, to)| json!({ "from": from, "to": to }))
            .collect();
        let secret_files: Vec<_> = ex
            .builtin_files
            .iter()
            .map(|(path, pattern)| json!({ "path": path, "pattern": pattern }))
            .collect();
        return emit_line(
            out,
            &json!({
                "branch": branch,
                "upstream": st.upstream,
                "head_commit": st.head_commit,
                "added": st.changes.added,
                "modified": st.changes.modified,
                "deleted": st.changes.deleted,
                "renamed": renamed,
                "clean": st.changes.is_empty(),
                "merge_in_progress": st.merge.is_some(),
                "conflict_paths": st.merge.as_ref().map(|m| m.conflict_paths.clone()),
                "rebase_in_progress": st.rebase.is_some(),
                "checkout_interrupted": st.interrupted_checkout.as_ref().map(|j| j.label.clone()),
                "excluded": {
                    "builtin_total": ex.builtin_total(),
                    "builtin_dirs": ex.builtin_dirs,
                    "builtin_files": secret_files,
                    "symlinks": ex.symlinks,
                    "museignore_files": ex.museignore_files,
                    "museignore_dirs": ex.museignore_dirs,
                },
                "ignore_warnings": st.ignore_warnings,
            }),
        );
    }
    match (&branch, st.head_commit) {
        (Some(b), _) => emit(out, format_args!("On branch {b}\n"))?,
        (None, Some(id)) => emit(
            out,
            format_args!("HEAD detached at {}\n", &id.to_hex()[..12]),
        )?,
        (None, None) => {}
    }
    if st.head_commit.is_none() {
        emit(out, format_args!("No commits yet\n"))?;
    }
    if let Some(m) = &st.merge {
        let other = m.other_branch.as_deref().unwrap_or("another branch");
        emit(
            out,
            format_args!("You are in the middle of a merge with {other}.\n"),
        )?;
        for p in &m.conflict_paths {
            emit(out, format_args!("  conflict:  {p}\n"))?;
        }
        emit(
            out,
            format_args!("  (fix the conflicts, then muse commit)\n"),
        )?;
    }
    if let Some(j) = &st.interrupted_checkout {
        emit(
            out,
            format_args!(
                "A checkout of {} was interrupted; the next checkout or commit completes it.\n",
                j.label
            ),
        )?;
    }
    if let Some(r) = &st.rebase {
        emit(
            out,
            format_args!("You are in the middle of rebasing {}.\n", r.original_branch),
        )?;
    }
    if let Some(up) = &st.upstream {
        let at = match (up.ahead, up.behind) {
            (Some(0), Some(0)) => "up to date".to_owned(),
            (Some(a), Some(b)) => format!("{a} ahead, {b} behind"),
            _ if up.commit_id.is_none() => "not pushed yet".to_owned(),
            _ => "not comparable here".to_owned(),
        };
        emit(
            out,
            format_args!("Tracking {}/{} ({at})\n", up.remote, up.branch),
        )?;
    }
    if ex.builtin_total() > 0 {
        let mut parts = Vec::new();
        if !ex.builtin_dirs.is_empty() {
            parts.push(format!("{} directories", ex.builtin_dirs.len()));
        }
        if !ex.builtin_files.is_empty() {
            parts.push(format!("{} secret or OS files", ex.builtin_files.len()));
        }
        if !ex.symlinks.is_empty() {
            parts.push(format!("{} symlinks", ex.symlinks.len()));
        }
        emit(
            out,
            format_args!(
                "{} paths left out by built-in rules ({}); `muse plumbing check-ignore <path>` says which rule\n",
                ex.builtin_total(),
                parts.join(", ")
            ),
        )?;
    }
    if st.changes.is_empty() {
        return emit(out, format_args!("nothing to commit, working tree clean\n"));
    }
    emit(out, format_args!("Changes against HEAD:\n"))?;
    for (from, to) in &st.renamed {
        emit(out, format_args!("  renamed   {from} -> {to}\n"))?;
    }
    for (label, paths) in [
        ("added", &st.changes.added),
        ("modified", &st.changes.modified),
        ("deleted", &st.changes.deleted),
    ] {
        for p in paths {
            emit(out, format_args!("  {label:<9} {p}\n"))?;
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct LogArgs {
    /// Where to start (default HEAD).
    rev: Option<String>,
    /// Show at most this many commits.
    #[arg(short = 'n', long = "max-count")]
    max: Option<usize>,
    /// One line per commit.
    #[arg(short = 'o', long = "oneline")]
    oneline: bool,
}

/// ` (tag: a, tag: b)` for the tags on `id`, or nothing.
fn decoration(tags: &[(ObjectId, String)], id: &ObjectId) -> String {
    let names: Vec<String> = tags
        .iter()
        .filter(|(c, _)| c == id)
        .map(|(_, t)| format!("tag: {t}"))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// Every tag as `(commit, text)`, each text once per commit.
fn all_tags(repo: &Repository) -> Result<Vec<(ObjectId, String)>, Failure> {
    let mut tags: Vec<(ObjectId, String)> = repo
        .tags()?
        .list()?
        .into_iter()
        .map(|t| (t.commit_id, t.tag))
        .collect();
    tags.sort();
    tags.dedup();
    Ok(tags)
}

pub(super) fn log(ctx: &Context, args: &LogArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let refs = repo.refs();
    let tags = all_tags(&repo)?;
    let tip = match &args.rev {
        Some(r) => repo.resolve(r)?,
        None => match refs.head_commit()? {
            Some(id) => id,
            None => return emit(out, format_args!("No commits yet\n")),
        },
    };
    let (commits, _) = muse_store::walk(
        repo.records(),
        tip,
        None,
        false,
        args.max.unwrap_or(usize::MAX),
    )?;
    for c in &commits {
        if args.oneline {
            let first = c.message.lines().next().unwrap_or_default();
            emit(
                out,
                format_args!(
                    "{}{} {first}\n",
                    &c.commit_id.to_hex()[..12],
                    decoration(&tags, &c.commit_id)
                ),
            )?;
            continue;
        }
        emit(
            out,
            format_args!(
                "commit {}{}\n",
                c.commit_id,
                decoration(&tags, &c.commit_id)
            ),
        )?;
        if let Some(p2) = c.parent2_commit_id {
            let p1 = c
                .parent_commit_id
                .map(|p| p.to_hex()[..12].to_owned())
                .unwrap_or_default();
            emit(out, format_args!("Merge: {p1} {}\n", &p2.to_hex()[..12]))?;
        }
        let author = if c.author.is_empty() {
            "(unknown)"
        } else {
            c.author.as_str()
        };
        emit(
            out,
            format_args!("Author: {author}\nDate:   {}\n\n", c.committed_at),
        )?;
        for line in c.message.lines() {
            emit(out, format_args!("    {line}\n"))?;
        }
        emit(out, format_args!("\n"))?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct CheckoutArgs {
    /// A branch, or anything that names a commit (HEAD becomes detached).
    target: String,
    /// Overwrite uncommitted changes.
    #[arg(short = 'f', long = "force")]
    force: bool,
}

pub(super) fn checkout(ctx: &Context, args: &CheckoutArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let target = match BranchName::from_stored(&args.target) {
        Ok(b) if matches!(repo.refs().branch_state(&b)?, RefState::At(_)) => Head::Branch(b),
        _ => Head::Detached(repo.resolve(&args.target)?),
    };
    let done = super::with_progress(|progress| {
        muse_store::checkout(&repo, &target, args.force, progress)
    })?;
    match &target {
        Head::Branch(b) => emit(out, format_args!("Switched to branch '{b}'"))?,
        Head::Detached(id) => emit(out, format_args!("HEAD is now at {}", &id.to_hex()[..12]))?,
    }
    emit(
        out,
        format_args!(" ({} written, {} removed)\n", done.restored, done.removed),
    )
}
