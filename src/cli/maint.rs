//! `fsck` and `gc`.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::{
    CmdResult, Context, EXIT_INTERNAL, EXIT_USER, Failure, Format, FormatError, emit, emit_line,
    parse_format,
};
use muse_store::{
    FsckReport, GcOptions, Severity, fsck as run_fsck, gc as run_gc, parse_prune_age,
};

#[derive(Debug, Args)]
pub(super) struct FsckArgs {
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn fsck(ctx: &Context, args: &FsckArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Stderr)?;
    // Without recovery: fsck only reads, and reports the temp files and
    // stale locks that recovery would otherwise remove before it looked.
    let repo = muse_store::Repository::discover_without_recovery(&ctx.cwd, ctx.options.clone())?;
    let report = super::with_progress(|progress| run_fsck(&repo, progress))?;
    match format {
        Format::Json => emit_line(out, &fsck_json(&report))?,
        Format::Text => {
            for p in &report.problems {
                let severity = match p.severity {
                    Severity::Damage => "damage",
                    Severity::Io => "error",
                    Severity::Note => "note",
                };
                let kind = serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                emit(out, format_args!("{severity} {kind}: {}\n", p.message))?;
            }
            let c = &report.counts;
            emit(
                out,
                format_args!(
                    "checked {} objects ({} bytes), {} commits, {} snapshots, {} branches, {} reflogs: {} damaged, {} I/O errors, {} notes\n",
                    c.objects,
                    c.object_bytes,
                    c.commits,
                    c.snapshots,
                    c.branches,
                    c.reflogs,
                    c.damage,
                    c.io_errors,
                    c.notes
                ),
            )?;
        }
    }
    if report.counts.io_errors > 0 {
        Err(Failure::silent(EXIT_INTERNAL))
    } else if report.counts.damage > 0 {
        Err(Failure::silent(EXIT_USER))
    } else {
        Ok(())
    }
}

fn fsck_json(report: &FsckReport) -> serde_json::Value {
    json!({
        "ok": report.is_healthy(),
        "counts": report.counts,
        "problems": report.problems,
        "skipped": report.skipped,
    })
}

#[derive(Debug, Args)]
pub(super) struct GcArgs {
    /// Remove unreachable objects and records older than this (`2.weeks`,
    /// `1h`, `now`, `never`).
    #[arg(short = 'p', long = "prune", default_value = "2.weeks")]
    prune: String,
    /// Report what would be removed, remove nothing.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn gc(ctx: &Context, args: &GcArgs, out: &mut dyn Write) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Stderr)?;
    let prune_age = parse_prune_age(&args.prune).map_err(Failure::user)?;
    let repo = ctx.repo()?;
    let report = run_gc(
        &repo,
        &GcOptions {
            prune_age,
            dry_run: args.dry_run,
        },
    )?;
    match format {
        Format::Json => emit_line(out, &json!(report)),
        Format::Text => {
            let verb = if report.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for r in &report.removed {
                emit(
                    out,
                    format_args!(
                        "{verb} {} {} ({} bytes)\n",
                        r.kind,
                        r.path.display(),
                        r.bytes
                    ),
                )?;
            }
            emit(
                out,
                format_args!(
                    "{verb} {} objects, {} commits, {} snapshots, {} temp files; {} bytes freed; kept {} recent unreachable files\n",
                    report.objects_removed,
                    report.commits_removed,
                    report.snapshots_removed,
                    report.temps_removed,
                    report.bytes_freed,
                    report.kept_recent
                ),
            )
        }
    }
}
