//! `pack-objects`, `unpack-objects`, `verify-pack`: the `PackBundle` plumbing.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{
    CmdResult, Context, EXIT_INTERNAL, EXIT_USER, Failure, Format, FormatError, emit, emit_line,
    output_failure, parse_format,
};
use muse_store::{BundleProblem, Error, ObjectId, python_repr};

#[derive(Debug, Args)]
pub(super) struct PackObjectsArgs {
    /// The commits to send: anything the revision syntax accepts.
    #[arg(required = true)]
    wants: Vec<String>,
    /// A commit the receiver has (with everything behind it): not sent.
    #[arg(long = "have", value_name = "ID")]
    haves: Vec<String>,
}

pub(super) fn pack_objects(
    ctx: &Context,
    args: &PackObjectsArgs,
    out: &mut dyn Write,
) -> CmdResult {
    let repo = ctx.repo()?;
    let mut wants = Vec::new();
    for want in &args.wants {
        match repo.resolve(want) {
            Ok(id) => wants.push(id),
            Err(Error::UnbornBranch { .. } | Error::UnknownRevision { .. })
                if want.eq_ignore_ascii_case("HEAD") && repo.refs().head_commit()?.is_none() =>
            {
                // The reference prints this JSON on stderr.
                return Err(Failure {
                    code: EXIT_USER,
                    message: r#"{"error": "HEAD has no commits"}"#.to_owned(),
                    verbatim: true,
                    stdout: None,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut haves = Vec::new();
    for have in &args.haves {
        // A have may be a commit only the receiver knows: an id is taken as
        // it is; anything else must resolve here.
        match ObjectId::from_hex(have) {
            Ok(id) => haves.push(id),
            Err(_) => haves.push(repo.resolve(have)?),
        }
    }
    let mut buffered = BufWriter::with_capacity(64 * 1024, out);
    muse_store::pack(&repo, &wants, &haves, &mut buffered).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => {
            output_failure(source)
        }
        other => other.into(),
    })?;
    buffered.flush().map_err(output_failure)
}

#[derive(Debug, Args)]
pub(super) struct UnpackObjectsArgs {
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// A refused bundle in the reference's words where it has them.
fn bundle_failure(err: Error, source: &str) -> Failure {
    match &err {
        Error::BadBundle(refusal) => match refusal.problem {
            BundleProblem::NotMsgpack => Failure::json(
                EXIT_USER,
                format!("Invalid msgpack{source}: {}", refusal.detail),
            ),
            BundleProblem::NotAMap => {
                Failure::json(EXIT_USER, "Expected a msgpack map at the top level.")
            }
            _ => Failure::json_from(err),
        },
        _ => Failure::json_from(err),
    }
}

pub(super) fn unpack_objects(
    ctx: &Context,
    args: &UnpackObjectsArgs,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let repo = ctx.repo()?;
    let got = muse_store::unpack(&repo, input, Path::new("<stdin>"))
        .map_err(|e| bundle_failure(e, " from stdin"))?;
    match format {
        Format::Json => emit_line(
            out,
            &json!({
                "commits_written": got.commits_written,
                "snapshots_written": got.snapshots_written,
                "objects_written": got.objects_written,
                "objects_skipped": got.objects_skipped,
            }),
        ),
        Format::Text => emit(
            out,
            format_args!(
                "Wrote {} commits, {} snapshots, {} objects ({} skipped).\n",
                got.commits_written,
                got.snapshots_written,
                got.objects_written,
                got.objects_skipped
            ),
        ),
    }
}

#[derive(Debug, Args)]
pub(super) struct VerifyPackArgs {
    /// Read the bundle from this file (default: stdin).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Do not look in the local store for what the bundle does not carry.
    #[arg(short = 'L', long = "no-local")]
    no_local: bool,
    /// Print nothing; the exit code says it.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

/// Python's text for an OS error on `path`: `[Errno 2] No such file or
/// directory: 'x'`.
fn python_os_error(e: &std::io::Error, path: &Path) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    let shown = python_repr(&path.to_string_lossy());
    match e.raw_os_error() {
        Some(n) => format!("[Errno {n}] {text}: {shown}"),
        None => format!("{text}: {shown}"),
    }
}

pub(super) fn verify_pack(
    ctx: &Context,
    args: &VerifyPackArgs,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn Write,
) -> CmdResult {
    let format = parse_format(&args.format, FormatError::Json)?;
    let local = if args.no_local {
        None
    } else {
        match ctx.repo() {
            Ok(repo) => Some(repo),
            Err(f) if f.code == super::EXIT_USAGE => None,
            Err(f) => return Err(f),
        }
    };
    let mut file;
    let (reader, name): (&mut dyn Read, PathBuf) = match &args.input {
        Some(path) => {
            let full = ctx.cwd.join(path);
            file = std::fs::File::open(&full).map_err(|e| {
                Failure::json(
                    EXIT_INTERNAL,
                    format!("Cannot read file: {}", python_os_error(&e, path)),
                )
            })?;
            (&mut file, full)
        }
        None => (input, PathBuf::from("<stdin>")),
    };
    let mut buffered = std::io::BufReader::with_capacity(64 * 1024, reader);
    let report = muse_store::verify(&mut buffered, &name, local.as_ref())
        .map_err(|e| bundle_failure(e, ""))?;
    if !args.quiet {
        match format {
            Format::Json => emit_line(out, &report.to_json())?,
            Format::Text => emit(
                out,
                format_args!(
                    "objects={}  snapshots={}  commits={}  all_ok={}\n",
                    report.objects_checked,
                    report.snapshots_checked,
                    report.commits_checked,
                    if report.all_ok() { "True" } else { "False" }
                ),
            )?,
        }
    }
    if report.all_ok() {
        Ok(())
    } else {
        Err(Failure::silent(EXIT_USER))
    }
}
