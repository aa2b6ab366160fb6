//! `hash-object`, `cat-object`, `verify-object`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{CmdResult, Context, EXIT_USER, Failure, Format, emit, emit_json, parse_id};
use muse_store::Error;

#[derive(Debug, Args)]
pub(super) struct HashObjectArgs {
    /// The file to hash.
    file: PathBuf,
    /// Store the object too.
    #[arg(short = 'w', long = "write")]
    write: bool,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

pub(super) fn hash_object(ctx: &Context, args: &HashObjectArgs, out: &mut dyn Write) -> CmdResult {
    let file = ctx.cwd.join(&args.file);
    let (id, stored) = if args.write {
        let repo = ctx.repo()?;
        let _guard = repo.write_guard()?;
        repo.objects().write_from_path(&file)?
    } else {
        (muse_store::hash_file(&file)?.0, false)
    };
    match args.format {
        Format::Json => emit_json(out, &json!({ "object_id": id, "stored": stored })),
        Format::Text => emit(out, format_args!("{id}\n")),
    }
}

/// Output of `cat-object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(super) enum CatFormat {
    /// The object's bytes.
    #[default]
    Raw,
    /// `{"object_id", "present", "size_bytes"}`.
    Info,
}

#[derive(Debug, Args)]
pub(super) struct CatObjectArgs {
    /// The object's id (64 lowercase hex characters).
    id: String,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: CatFormat,
}

pub(super) fn cat_object(ctx: &Context, args: &CatObjectArgs, out: &mut dyn Write) -> CmdResult {
    let id = parse_id(&args.id)?;
    let repo = ctx.repo()?;
    match args.format {
        CatFormat::Raw => {
            repo.objects().copy_to(&id, out)?;
            out.flush().map_err(super::output_failure)
        }
        CatFormat::Info => match repo.objects().verify(&id) {
            Ok(size) => emit_json(
                out,
                &json!({ "object_id": id, "present": true, "size_bytes": size }),
            ),
            Err(Error::NotFound { .. }) => {
                emit_json(
                    out,
                    &json!({ "object_id": id, "present": false, "size_bytes": null }),
                )?;
                Err(Failure::user(format!("object {id} not found")))
            }
            Err(e) => Err(e.into()),
        },
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
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    format: Format,
}

pub(super) fn verify_object(
    ctx: &Context,
    args: &VerifyObjectArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let ids = args
        .ids
        .iter()
        .map(|text| parse_id(text))
        .collect::<Result<Vec<_>, _>>()?;
    let repo = ctx.repo()?;
    // Verified in parallel: reads of many small objects wait on the disk.
    let results: Vec<_> = {
        use rayon::prelude::*;
        ids.par_iter()
            .map(|id| (id, repo.objects().verify(id)))
            .collect()
    };
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if !args.quiet {
        match args.format {
            Format::Json => {
                let rows: Vec<_> = results
                    .iter()
                    .map(|(id, r)| match r {
                        Ok(size) => json!({ "object_id": id, "ok": true, "size_bytes": size, "error": null }),
                        Err(e) => json!({ "object_id": id, "ok": false, "size_bytes": null, "error": e.to_string() }),
                    })
                    .collect();
                emit_json(
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
                for (id, r) in &results {
                    match r {
                        Ok(size) => emit(out, format_args!("ok {id} {size}\n"))?,
                        Err(e) => emit(out, format_args!("FAIL {id} {e}\n"))?,
                    }
                }
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::silent(EXIT_USER))
    }
}
