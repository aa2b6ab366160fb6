//! `muse remote add|remove|list`: the remotes in `config.toml`.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{CmdResult, Context, Format, FormatError, emit, emit_line, parse_format};
use muse_store::Config;

#[derive(Debug, Subcommand)]
pub(super) enum RemoteCommand {
    /// Add a remote.
    Add(AddArgs),
    /// Remove a remote.
    Remove {
        /// The remote's name.
        name: String,
    },
    /// List the remotes.
    List {
        /// Output format: json or text.
        #[arg(short = 'f', long = "format", default_value = "json")]
        format: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// The remote's name.
    name: String,
    /// Where it is.
    url: String,
    /// The branch it tracks.
    #[arg(short = 'b', long = "branch")]
    branch: Option<String>,
}

pub(super) fn remote(ctx: &Context, command: &RemoteCommand, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    match command {
        RemoteCommand::Add(args) => {
            Config::add_remote(&repo, &args.name, &args.url, args.branch.as_deref())?;
            Ok(())
        }
        RemoteCommand::Remove { name } => {
            Config::remove_remote(&repo, name)?;
            Ok(())
        }
        RemoteCommand::List { format } => {
            let format = parse_format(format, FormatError::Stderr)?;
            let remotes = repo.config()?.remotes()?;
            match format {
                Format::Json => emit_line(out, &json!({ "remotes": remotes })),
                Format::Text => {
                    for r in &remotes {
                        let branch = r
                            .branch
                            .as_deref()
                            .map_or(String::new(), |b| format!("\t{b}"));
                        emit(out, format_args!("{}\t{}{branch}\n", r.name, r.url))?;
                    }
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::run;

    fn muse(args: &[&str]) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run(
            std::iter::once("muse").chain(args.iter().copied()),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn remote_add_list_remove() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_str().ok_or("non-UTF-8 temp dir")?;
        assert_eq!(muse(&["init", root]).0, 0, "init");
        let (code, _, err) = muse(&[
            "-C",
            root,
            "remote",
            "add",
            "origin",
            "https://h/r",
            "-b",
            "main",
        ]);
        assert_eq!(code, 0, "add: {err}");
        assert_eq!(
            muse(&["-C", root, "remote", "add", "backup", "/srv/r"]).0,
            0
        );
        let (code, out, _) = muse(&["-C", root, "remote", "list"]);
        assert_eq!(code, 0);
        let value: serde_json::Value = serde_json::from_str(&out)?;
        assert_eq!(
            value,
            serde_json::json!({"remotes": [
                {"name": "origin", "url": "https://h/r", "branch": "main"},
                {"name": "backup", "url": "/srv/r", "branch": null},
            ]}),
            "json listing"
        );
        let (_, out, _) = muse(&["-C", root, "remote", "list", "-f", "text"]);
        assert_eq!(out, "origin\thttps://h/r\tmain\nbackup\t/srv/r\n");
        let (code, _, err) = muse(&["-C", root, "remote", "add", "origin", "x"]);
        assert_eq!(code, 1, "duplicate is a user error");
        assert!(err.contains("already exists"), "{err}");
        let (code, _, err) = muse(&["-C", root, "remote", "add", "bad name", "x"]);
        assert_eq!(code, 1, "bad name is a user error: {err}");
        assert_eq!(muse(&["-C", root, "remote", "remove", "origin"]).0, 0);
        let (code, _, err) = muse(&["-C", root, "remote", "remove", "origin"]);
        assert_eq!(code, 1, "unknown remote: {err}");
        let (_, out, _) = muse(&["-C", root, "remote", "list", "-f", "text"]);
        assert_eq!(out, "backup\t/srv/r\n");
        Ok(())
    }
}
