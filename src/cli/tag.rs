//! `muse tag`: the reference's `tag add|list|remove`, and git's habits
//! where they do not clash (`tag <name> [<rev>]`, `tag -l [<glob>]`,
//! `tag -d <name>`).

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::{CmdResult, Context, Failure, Format, FormatError, emit, emit_line, parse_format};
use muse_store::{ObjectId, Repository, fnmatch};

#[derive(Debug, Args)]
pub(super) struct TagArgs {
    /// `add <tag> [<rev>]`, `list [<rev>]`, `remove <tag> [<rev>]`, or
    /// `<tag> [<rev>]` to add one.
    #[arg(trailing_var_arg = true, allow_hyphen_values = false)]
    words: Vec<String>,
    /// List tag names (optionally those matching a glob).
    #[arg(short = 'l', long = "list")]
    list: bool,
    /// Delete every record of this tag.
    #[arg(short = 'd', long = "delete", conflicts_with = "list")]
    delete: bool,
    /// Output format of a listing: text or json.
    #[arg(short = 'f', long = "format", default_value = "text")]
    format: String,
}

fn commit_of(repo: &Repository, rev: Option<&String>) -> Result<ObjectId, Failure> {
    match rev {
        Some(rev) => repo
            .resolve(rev)
            .map_err(|e| Failure::user(format!("Commit '{rev}' not found: {e}"))),
        None => repo
            .refs()
            .head_commit()?
            .ok_or_else(|| Failure::user("HEAD has no commits to tag")),
    }
}

fn short(id: &ObjectId) -> String {
    id.to_hex()[..8].to_owned()
}

pub(super) fn tag(ctx: &Context, args: &TagArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Stderr)?;
    let repo = ctx.repo()?;
    let tags = repo.tags()?;
    let words: Vec<&String> = args.words.iter().collect();
    let first = words.first().map(|w| w.as_str());
    if args.delete {
        let [name] = words.as_slice() else {
            return Err(Failure::user("usage: muse tag -d <tag>"));
        };
        let removed = tags.remove(name, None)?;
        if removed.is_empty() {
            return Err(Failure::user(format!("tag '{name}' not found")));
        }
        for r in &removed {
            emit(
                out,
                format_args!("Deleted tag '{}' (was {})\n", r.tag, short(&r.commit_id)),
            )?;
        }
        return Ok(());
    }
    match (args.list, first) {
        (true, _) | (false, None) => {
            // git's listing: each name once, sorted; `-l <glob>` filters.
            let mut names: Vec<String> = tags.list()?.into_iter().map(|t| t.tag).collect();
            names.dedup();
            let glob = if args.list { first } else { None };
            names.retain(|n| glob.is_none_or(|g| fnmatch(g, n)));
            match format {
                Format::Json => emit_line(out, &json!({ "tags": names })),
                Format::Text => {
                    for n in &names {
                        emit(out, format_args!("{n}\n"))?;
                    }
                    Ok(())
                }
            }
        }
        (false, Some("list")) => {
            let mut records = tags.list()?;
            if let Some(rev) = words.get(1) {
                let commit = commit_of(&repo, Some(rev))?;
                records.retain(|t| t.commit_id == commit);
            }
            match format {
                Format::Json => emit_line(out, &json!({ "tags": records })),
                Format::Text => {
                    for t in &records {
                        emit(out, format_args!("{}  {}\n", short(&t.commit_id), t.tag))?;
                    }
                    Ok(())
                }
            }
        }
        (false, Some("remove")) => {
            let Some(name) = words.get(1) else {
                return Err(Failure::user("usage: muse tag remove <tag> [<rev>]"));
            };
            let commit = commit_of(&repo, words.get(2).copied())?;
            let removed = tags.remove(name, Some(commit))?;
            if removed.is_empty() {
                return Err(Failure::user(format!(
                    "tag '{name}' is not on {}",
                    short(&commit)
                )));
            }
            emit(
                out,
                format_args!("Removed tag '{name}' from {}\n", short(&commit)),
            )
        }
        (false, Some(word)) => {
            // `add <tag> [<rev>]`, or git's `<tag> [<rev>]`.
            let (name, rev) = if word == "add" {
                let Some(name) = words.get(1) else {
                    return Err(Failure::user("usage: muse tag add <tag> [<rev>]"));
                };
                (name.as_str(), words.get(2).copied())
            } else {
                (word, words.get(1).copied())
            };
            let commit = commit_of(&repo, rev)?;
            let record = tags.add(name, commit)?;
            emit(
                out,
                format_args!("Tagged {} with '{}'\n", short(&commit), record.tag),
            )
        }
    }
}
