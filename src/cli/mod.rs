//! The `muse` command line: argument parsing, dispatch, output formats, and
//! the one place where errors become exit codes. No repository logic lives
//! here: every command is a call into the library's public API.
//!
//! Exit codes (shared/PLUMBING.md): 0 success, 1 user error (bad input,
//! unknown name, invalid id, missing object), 3 internal error (I/O failure,
//! integrity check failed, corrupt record).

mod history;
mod maint;
mod objects;
mod porcelain;
mod refs;
mod remote;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use muse_store::{Durability, Error, Options, Repository};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The caller's input is at fault.
pub const EXIT_USER: u8 = 1;
/// Damage or an I/O failure.
pub const EXIT_INTERNAL: u8 = 3;

/// A command's failure: an exit code and what to tell the user.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message for stderr.
    pub message: String,
    /// Whether `message` is a JSON document, printed as it is.
    pub json: bool,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure {
            code: exit_code(&err),
            message: err.to_string(),
            json: false,
        }
    }
}

impl Failure {
    /// A user error with `message`.
    pub fn user(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USER,
            message: message.into(),
            json: false,
        }
    }

    /// An internal error with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_INTERNAL,
            message: message.into(),
            json: false,
        }
    }

    /// A failure that carries only an exit code: the command already printed
    /// what the user needs (for example a report listing the failures).
    pub(crate) fn silent(code: u8) -> Self {
        Failure {
            code,
            message: String::new(),
            json: false,
        }
    }
}

/// The exit code for an error: the only mapping from errors to exit codes.
#[must_use]
pub fn exit_code(err: &Error) -> u8 {
    if err.is_user_error() {
        EXIT_USER
    } else {
        EXIT_INTERNAL
    }
}

/// What a command returns.
pub type CmdResult = Result<(), Failure>;

/// muse: a crash-safe, verified, content-addressed store for version control.
#[derive(Debug, Parser)]
#[command(name = "muse", version, about)]
struct Cli {
    /// Run as if started in <DIR>.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an empty repository.
    Init {
        /// Where to create it (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Snapshot the working tree and commit it on the current branch.
    Commit(porcelain::CommitArgs),
    /// Show what changed in the working tree against HEAD.
    Status(porcelain::StatusArgs),
    /// Show the history from HEAD (or a given commit).
    Log(porcelain::LogArgs),
    /// Switch the working tree and HEAD to a branch or commit.
    Checkout(porcelain::CheckoutArgs),
    /// List branches, create one at HEAD, or delete one.
    Branch(refs::BranchArgs),
    /// Low-level commands with a stable JSON contract.
    #[command(subcommand)]
    Plumbing(Plumbing),
    /// Manage the remotes in config.toml.
    #[command(subcommand)]
    Remote(remote::RemoteCommand),
    /// Check every object, record, ref, reflog and state file (exit 0
    /// healthy, 1 damage found, 3 I/O error).
    Fsck(maint::FsckArgs),
    /// Remove unreachable objects and records older than the prune age, and
    /// temp files left by crashes.
    Gc(maint::GcArgs),
}

#[derive(Debug, Subcommand)]
enum Plumbing {
    /// Hash a file, and with -w store it.
    HashObject(objects::HashObjectArgs),
    /// Print an object's bytes (verified) or information about it.
    CatObject(objects::CatObjectArgs),
    /// Verify that stored objects hash to their ids.
    VerifyObject(objects::VerifyObjectArgs),
    /// Resolve HEAD, a branch, an id or an id prefix to a commit id.
    RevParse(refs::RevParseArgs),
    /// List branches and HEAD.
    ShowRef(refs::ShowRefArgs),
    /// Read or set what HEAD points at.
    SymbolicRef(refs::SymbolicRefArgs),
    /// Move, create or delete a branch (compare-and-swap), or apply a
    /// transaction from stdin.
    UpdateRef(refs::UpdateRefArgs),
    /// Check branch names against the naming rules.
    CheckRefFormat(refs::CheckRefFormatArgs),
    /// List branches with their commit's fields.
    ForEachRef(refs::ForEachRefArgs),
    /// Print a commit record.
    ReadCommit(history::ReadCommitArgs),
    /// Print a snapshot record.
    ReadSnapshot(history::ReadSnapshotArgs),
    /// List the files of a commit.
    LsFiles(history::LsFilesArgs),
    /// Make a commit record from a snapshot (moves no ref).
    CommitTree(history::CommitTreeArgs),
    /// List the commits reachable from a tip.
    CommitGraph(history::CommitGraphArgs),
    /// Find the best common ancestor of two commits.
    MergeBase(history::MergeBaseArgs),
    /// Compare two snapshots (or commits).
    SnapshotDiff(history::SnapshotDiffArgs),
    /// Name commits relative to branch tips.
    NameRev(history::NameRevArgs),
}

/// Output format of most plumbing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// JSON on stdout.
    #[default]
    Json,
    /// The short text form.
    Text,
}

/// The command-line environment: where it runs and how it writes.
struct Context {
    cwd: PathBuf,
    options: Options,
}

impl Context {
    fn repo(&self) -> Result<Repository, Failure> {
        Ok(Repository::discover_with(&self.cwd, self.options.clone())?)
    }
}

/// Durability for the CLI: `MUSE_DURABILITY=full|relaxed|none` (default full).
fn durability_from_env() -> Result<Durability, Failure> {
    match std::env::var("MUSE_DURABILITY").ok().as_deref() {
        None | Some("" | "full") => Ok(Durability::Full),
        Some("relaxed") => Ok(Durability::Relaxed),
        Some("none") => Ok(Durability::None),
        Some(other) => Err(Failure::user(format!(
            "MUSE_DURABILITY='{other}' is not one of full, relaxed, none"
        ))),
    }
}

/// Runs `muse` with `args` (the first is the program name), writing to `out`
/// and `err`, and returns the exit code.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let stdin = std::io::stdin();
    run_with_input(args, &mut stdin.lock(), out, err)
}

/// [`run`] with an explicit standard input (for `update-ref --stdin`).
pub fn run_with_input<I, T>(
    args: I,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USER } else { EXIT_OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    match dispatch(cli, input, out) {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            if failure.json {
                let _ = writeln!(err, "{}", failure.message);
            } else if !failure.message.is_empty() {
                let _ = writeln!(err, "muse: error: {}", failure.message);
            }
            failure.code
        }
    }
}

fn dispatch(cli: Cli, input: &mut dyn std::io::BufRead, out: &mut dyn Write) -> CmdResult {
    let cwd = match cli.directory {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| Failure::internal(format!("could not read the current directory: {e}")))?,
    };
    // The environment is read here, by the command line only; the library
    // takes everything as options.
    let ctx = Context {
        cwd,
        options: Options {
            durability: durability_from_env()?,
            reflog_author: std::env::var("MUSE_AUTHOR").ok(),
            ..Options::default()
        },
    };
    match cli.command {
        Command::Init { dir } => init(&ctx, dir, out),
        Command::Branch(args) => refs::branch(&ctx, &args, out),
        Command::Commit(args) => porcelain::commit(&ctx, &args, out),
        Command::Status(args) => porcelain::status(&ctx, &args, out),
        Command::Log(args) => porcelain::log(&ctx, &args, out),
        Command::Checkout(args) => porcelain::checkout(&ctx, &args, out),
        Command::Remote(cmd) => remote::remote(&ctx, &cmd, out),
        Command::Fsck(args) => maint::fsck(&ctx, &args, out),
        Command::Gc(args) => maint::gc(&ctx, &args, out),
        Command::Plumbing(p) => match p {
            Plumbing::HashObject(args) => objects::hash_object(&ctx, &args, out),
            Plumbing::CatObject(args) => objects::cat_object(&ctx, &args, out),
            Plumbing::VerifyObject(args) => objects::verify_object(&ctx, &args, out),
            Plumbing::RevParse(args) => refs::rev_parse(&ctx, &args, out),
            Plumbing::ShowRef(args) => refs::show_ref(&ctx, &args, out),
            Plumbing::SymbolicRef(args) => refs::symbolic_ref(&ctx, &args, out),
            Plumbing::UpdateRef(args) => refs::update_ref(&ctx, &args, input, out),
            Plumbing::CheckRefFormat(args) => refs::check_ref_format(&args, out),
            Plumbing::ForEachRef(args) => refs::for_each_ref(&ctx, &args, out),
            Plumbing::ReadCommit(args) => history::read_commit(&ctx, &args, out),
            Plumbing::ReadSnapshot(args) => history::read_snapshot(&ctx, &args, out),
            Plumbing::LsFiles(args) => history::ls_files(&ctx, &args, out),
            Plumbing::CommitTree(args) => history::commit_tree(&ctx, &args, out),
            Plumbing::CommitGraph(args) => history::commit_graph(&ctx, &args, out),
            Plumbing::MergeBase(args) => history::merge_base(&ctx, &args, out),
            Plumbing::SnapshotDiff(args) => history::snapshot_diff(&ctx, &args, out),
            Plumbing::NameRev(args) => history::name_rev(&ctx, &args, out),
        },
    }
}

fn init(ctx: &Context, dir: Option<PathBuf>, out: &mut dyn Write) -> CmdResult {
    let target = match dir {
        Some(d) if d.is_absolute() => d,
        Some(d) => ctx.cwd.join(d),
        None => ctx.cwd.clone(),
    };
    let repo = Repository::init_with(&target, ctx.options.clone())?;
    emit(
        out,
        format_args!(
            "Initialised empty muse repository in {}\n",
            repo.layout().muse_dir().display()
        ),
    )
}

/// Writes to stdout, mapping a closed pipe or full disk to an internal error.
fn emit(out: &mut dyn Write, args: std::fmt::Arguments<'_>) -> CmdResult {
    out.write_fmt(args).map_err(output_failure)
}

/// A failed write to stdout. A reader that closed the pipe early (`| head`)
/// got what it wanted: the command stops quietly with success.
#[expect(clippy::needless_pass_by_value, reason = "used as a map_err function")]
fn output_failure(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::silent(EXIT_OK)
    } else {
        Failure::internal(format!("could not write to standard output: {e}"))
    }
}

/// Writes `value` as one line of JSON.
fn emit_json(out: &mut dyn Write, value: &serde_json::Value) -> CmdResult {
    emit(out, format_args!("{value}\n"))
}

/// Parses a command-line id, naming the bad value on failure (exit 1).
fn parse_id(text: &str) -> Result<muse_store::ObjectId, Failure> {
    muse_store::ObjectId::from_hex(text).map_err(|e| Failure::user(e.to_string()))
}

/// A progress bar on stderr, shown only when stderr is a terminal.
pub(super) struct Bar(indicatif::ProgressBar);

impl muse_store::Progress for Bar {
    fn start(&self, phase: &'static str, total: u64) {
        self.0.set_message(phase);
        self.0.set_position(0);
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn progress_bar() -> Option<Bar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>26} [{bar:40}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(Bar(bar))
}

/// Runs `f` with a progress bar on a terminal, and with none otherwise.
pub(super) fn with_progress<T>(f: impl FnOnce(&dyn muse_store::Progress) -> T) -> T {
    match progress_bar() {
        Some(bar) => f(&bar),
        None => f(&muse_store::NoProgress),
    }
}
