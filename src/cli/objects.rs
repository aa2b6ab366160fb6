//! `hash-object`, `cat-object`, `verify-object`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::{
    CmdResult, Context, EXIT_INTERNAL, EXIT_USER, Failure, Format, FormatError, emit, emit_line,
    invalid_id, parse_format,
};
use muse_store::{Error, ObjectId, python_repr};

#[derive(Debug, Args)]
pub(super) struct HashObjectArgs {
    /// The file to hash (relative to the current directory).
    file: PathBuf,
    /// Store the object too.
    #[arg(short = 'w', long = "write")]
    write: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn hash_object(ctx: &Context, args: &HashObjectArgs, out: &mut dyn Write) -> CmdResult {
    // The reference prints every hash-object error on stderr only.
    let format = parse_format(&args.format, FormatError::Stderr)?;
    let file = ctx.cwd.join(&args.file);
    let shown = args.file.display();
    // The argument is checked as the reference checks it, before any read.
    if std::fs::symlink_metadata(&file).is_err() {
        return Err(Failure::user(format!("Path does not exist: {shown}")));
    }
    if file.is_dir() {
        return Err(Failure::user(format!(
            "Path is a directory, not a file: {shown}"
        )));
    }
    let (id, stored) = if args.write {
        let repo = match ctx.repo() {
            Ok(repo) => repo,
            Err(f) if f.code == super::EXIT_USAGE => {
                return Err(Failure::user(
                    "Not inside a Muse repository. Cannot write object.",
                ));
            }
            Err(f) => return Err(f),
        };
        let _guard = repo.write_guard()?;
        repo.objects().write_from_path(&file)?
    } else {
        (muse_store::hash_file(&file)?.0, false)
    };
    match format {
        Format::Json => emit_line(out, &json!({ "object_id": id, "stored": stored })),
        Format::Text => emit(out, format_args!("{id}\n")),
    }
}

#[derive(Debug, Args)]
pub(super) struct CatObjectArgs {
    /// The object's id (64 lowercase hex characters).
    id: String,
    /// Output: raw (the bytes) or info (JSON).
    #[arg(short = 'f', long = "format", default_value = "raw")]
    format: String,
}

pub(super) fn cat_object(ctx: &Context, args: &CatObjectArgs, out: &mut dyn Write) -> CmdResult {
    let info = match args.format.as_str() {
        "raw" => false,
        "info" => true,
        other => {
            return Err(Failure::user(format!(
                "Unknown format {}. Valid choices: raw, info",
                python_repr(other)
            )));
        }
    };
    let Ok(id) = ObjectId::from_hex(&args.id) else {
        return Err(Failure::user(format!(
            "Invalid object ID: {}",
            invalid_id(&args.id)
        )));
    };
    let repo = ctx.repo()?;
    if !info {
        return match repo.objects().copy_to(&id, out) {
            Ok(_) => out.flush().map_err(super::output_failure),
            Err(Error::NotFound { .. }) => Err(Failure::user(format!("Object not found: {id}"))),
            // A stored object that fails its hash check is refused (exit 3):
            // deliberate, the reference serves it.
            Err(e) => Err(e.into()),
        };
    }
    match repo.objects().verify(&id) {
        Ok(size) => emit_line(
            out,
            &json!({ "object_id": id, "present": true, "size_bytes": size }),
        ),
        Err(Error::NotFound { .. }) => Err(Failure {
            stdout: Some(json!({ "object_id": id, "present": false, "size_bytes": 0 })),
            ..Failure::user(format!("Object not found: {id}"))
        }),
        Err(e) => Err(Failure::json_from(e)),
    }
}

#[derive(Debug, Args)]
pub(super) struct VerifyObjectArgs {
    /// The ids to verify.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Print nothing; the exit code says whether all verified.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// One verification: the size when known, and what failed.
struct Checked {
    id: String,
    size: Option<u64>,
    error: Option<String>,
    io: bool,
}

fn check_one(repo: &muse_store::Repository, text: &str) -> Checked {
    let fail = |size, error, io| Checked {
        id: text.to_owned(),
        size,
        error: Some(error),
        io,
    };
    let Ok(id) = ObjectId::from_hex(text) else {
        return fail(None, invalid_id(text), false);
    };
    match repo.objects().verify(&id) {
        Ok(size) => Checked {
            id: text.to_owned(),
            size: Some(size),
            error: None,
            io: false,
        },
        Err(Error::NotFound { .. }) => fail(None, "object not found in store".to_owned(), false),
        Err(Error::Integrity(c)) => fail(
            repo.objects().size(&id).ok(),
            format!(
                "hash mismatch: stored {}\u{2026} recomputed {}\u{2026}",
                &c.id.to_hex()[..12],
                &c.actual.to_hex()[..12]
            ),
            false,
        ),
        Err(e) => fail(
            repo.objects().size(&id).ok(),
            e.to_string(),
            matches!(e, Error::Io { .. }),
        ),
    }
}

pub(super) fn verify_object(
    ctx: &Context,
    args: &VerifyObjectArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    // Verified in parallel: reads of many small objects wait on the disk.
    let results: Vec<Checked> = {
        use rayon::prelude::*;
        args.ids.par_iter().map(|t| check_one(&repo, t)).collect()
    };
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if !args.quiet {
        match format {
            Format::Json => {
                let rows: Vec<Value> = results
                    .iter()
                    .map(|r| {
                        json!({
                            "object_id": r.id, "ok": r.error.is_none(),
                            "size_bytes": r.size, "error": r.error,
                        })
                    })
                    .collect();
                emit_line(
                    out,
                    &json!({
                        "results": rows,
                        "all_ok": failed == 0,
                        "checked": results.len(),
                        "failed": failed,
                    }),
                )?;
            }
            Format::Text => {
                for r in &results {
                    let size = r.size.map(|n| format!("({n} bytes)"));
                    let line = match (&r.error, size) {
                        (None, Some(size)) => format!("OK    {}  {size}", r.id),
                        (None, None) => format!("OK    {}", r.id),
                        (Some(e), Some(size)) => format!("FAIL  {}  {size}  {e}", r.id),
                        (Some(e), None) => format!("FAIL  {}  {e}", r.id),
                    };
                    emit(out, format_args!("{line}\n"))?;
                }
            }
        }
    }
    if results.iter().any(|r| r.io) {
        Err(Failure::silent(EXIT_INTERNAL))
    } else if failed > 0 {
        Err(Failure::silent(EXIT_USER))
    } else {
        Ok(())
    }
}
