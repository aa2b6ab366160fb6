//! The `muse` command line: argument parsing, dispatch, output formats, and
//! the one place where errors become exit codes and output. No repository
//! logic lives here: every command is a call into the library's public API.
//!
//! The plumbing contract is the reference implementation's
//! (shared/PLUMBING.md, shared/vectors/plumbing.json): JSON on stdout exactly
//! as Python's `json.dumps` prints it; in JSON mode an error is the
//! reference's `{"error": ...}` object on stdout with a `❌ ` line on stderr
//! (the reference's own stderr-only errors stay stderr-only); exit codes 0
//! success, 1 user error, 2 not a repository or bad arguments, 3 internal
//! error (I/O failure, integrity check failed, corrupt record). The
//! deliberate differences are listed in docs/compatibility.md.

mod history;
mod maint;
mod objects;
mod porcelain;
mod refs;
mod remote;
mod sync;
mod tag;
mod transport;
mod worktree;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use muse_store::{Durability, Error, JsonStyle, Options, Repository, python_json, python_repr};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The caller's input is at fault.
pub const EXIT_USER: u8 = 1;
/// Not a repository, or bad command-line arguments.
pub const EXIT_USAGE: u8 = 2;
/// Damage or an I/O failure.
pub const EXIT_INTERNAL: u8 = 3;

/// What the reference prints on stderr outside a repository.
const NOT_A_REPO: &str = "fatal: not a muse repository (or any parent up to mount point /)\nRun \"muse init\" to initialize a new repository.";

/// A command's failure: an exit code, what to tell the user on stderr, and
/// what goes on stdout (the JSON error object of JSON mode).
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message for stderr (empty: nothing).
    pub message: String,
    /// Whether `message` is printed as it is (no `❌ ` or `muse: error: `).
    pub verbatim: bool,
    /// What to print on stdout (one JSON line), if anything.
    pub stdout: Option<Value>,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        if matches!(err, Error::NotARepository { .. }) {
            return Failure {
                code: EXIT_USAGE,
                message: NOT_A_REPO.to_owned(),
                verbatim: true,
                stdout: None,
            };
        }
        Failure {
            code: exit_code(&err),
            message: err.to_string(),
            verbatim: false,
            stdout: None,
        }
    }
}

impl Failure {
    /// A user error with `message`, on stderr only.
    pub fn user(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USER,
            message: message.into(),
            verbatim: false,
            stdout: None,
        }
    }

    /// An internal error with `message`, on stderr only.
    pub fn internal(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_INTERNAL,
            message: message.into(),
            verbatim: false,
            stdout: None,
        }
    }

    /// The reference's JSON error: `{"error": message}` on stdout (and the
    /// message on stderr), with `code`.
    pub(crate) fn json(code: u8, message: impl Into<String>) -> Self {
        let message = message.into();
        Failure {
            code,
            stdout: Some(json!({ "error": message })),
            message,
            verbatim: false,
        }
    }

    /// A JSON error object with more keys than `error` (`rev-parse`'s
    /// `ref` and `commit_id`, `cas_mismatch`'s values).
    pub(crate) fn json_value(code: u8, value: Value) -> Self {
        let message = value["error"].as_str().unwrap_or_default().to_owned();
        Failure {
            code,
            message,
            verbatim: false,
            stdout: Some(value),
        }
    }

    /// A library error in JSON mode: the reference's `{"error": ...}` with
    /// the error's message; not being in a repository stays stderr-only,
    /// as in the reference.
    pub(crate) fn json_from(err: Error) -> Self {
        let plain = Failure::from(err);
        if plain.verbatim {
            return plain;
        }
        Failure {
            stdout: Some(json!({ "error": plain.message })),
            ..plain
        }
    }

    /// A failure that carries only an exit code: the command already printed
    /// what the user needs (for example a report listing the failures).
    pub(crate) fn silent(code: u8) -> Self {
        Failure {
            code,
            message: String::new(),
            verbatim: false,
            stdout: None,
        }
    }
}

/// The exit code for an error: the only mapping from errors to exit codes.
#[must_use]
pub fn exit_code(err: &Error) -> u8 {
    match err {
        Error::NotARepository { .. } => EXIT_USAGE,
        e if e.is_user_error() => EXIT_USER,
        _ => EXIT_INTERNAL,
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
    /// Attach, list and remove tags (`tag add|list|remove`, or git's
    /// `tag <name> [<rev>]`, `tag -l`, `tag -d <name>`).
    Tag(tag::TagArgs),
    /// Low-level commands with the reference's JSON contract.
    #[command(subcommand)]
    Plumbing(Plumbing),
    /// Manage the remotes in config.toml.
    #[command(subcommand)]
    Remote(remote::RemoteCommand),
    /// Copy a repository (a path or a file:// URL): every branch, remote
    /// origin, the default branch checked out.
    Clone(sync::CloneArgs),
    /// Receive what a remote has and this repository lacks; move the
    /// tracking pointers.
    Fetch(sync::FetchArgs),
    /// Fetch, then fast-forward the current branch.
    Pull(sync::PullArgs),
    /// Move remote branches to local ones (compare-and-swap, all or none).
    Push(sync::PushArgs),
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
    /// Resolve HEAD, a branch, a tag, an id or an id prefix to a commit id.
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
    /// Say whether paths are ignored by .museignore, and by which pattern.
    CheckIgnore(worktree::CheckIgnoreArgs),
    /// Say which merge strategy .museattributes gives paths.
    CheckAttr(worktree::CheckAttrArgs),
    /// Describe the repository's domain plugin.
    DomainInfo(worktree::DomainInfoArgs),
    /// Write a pack bundle of commits (and what they need) to stdout.
    PackObjects(transport::PackObjectsArgs),
    /// Receive a pack bundle from stdin: verify everything, then store it.
    UnpackObjects(transport::UnpackObjectsArgs),
    /// Check a pack bundle without storing it.
    VerifyPack(transport::VerifyPackArgs),
    /// List a remote's branches.
    LsRemote(sync::LsRemoteArgs),
}

impl Command {
    /// Whether failures print the reference's plumbing style (`❌ `).
    fn is_plumbing(&self) -> bool {
        matches!(self, Command::Plumbing(_))
    }
}

/// The output format of a plumbing command: `json` or `text`, given as
/// free text so that a wrong value gets the reference's message and exit 1
/// rather than a usage error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON on stdout.
    Json,
    /// The short text form.
    Text,
}

/// Where a command reports an unknown `--format` (the reference differs by
/// command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// `❌ Unknown format 'x'. Valid choices: json, text` on stderr.
    Stderr,
    /// `{"error": "Unknown format 'x'. Valid: json, text"}` on stdout.
    Json,
    /// `{"error": "Unknown format 'x'. Valid choices: json, text"}`.
    JsonChoices,
}

/// Parses a `--format` value as the reference checks it.
pub(crate) fn parse_format(text: &str, style: FormatError) -> Result<Format, Failure> {
    match text {
        "json" => Ok(Format::Json),
        "text" => Ok(Format::Text),
        other => {
            let repr = python_repr(other);
            Err(match style {
                FormatError::Stderr => {
                    Failure::user(format!("Unknown format {repr}. Valid choices: json, text"))
                }
                FormatError::Json => Failure::json(
                    EXIT_USER,
                    format!("Unknown format {repr}. Valid: json, text"),
                ),
                FormatError::JsonChoices => Failure::json(
                    EXIT_USER,
                    format!("Unknown format {repr}. Valid choices: json, text"),
                ),
            })
        }
    }
}

/// The command-line environment: where it runs and how it writes.
struct Context {
    cwd: PathBuf,
    options: Options,
}

impl Context {
    /// The repository around `cwd`, opened with recovery, and a checkout
    /// that was interrupted completed (said on stderr). A completion that
    /// fails is said too and does not stop the command: a command that
    /// changes the tree tries again and fails with the reason, and status
    /// shows the interrupted checkout.
    fn repo(&self) -> Result<Repository, Failure> {
        let repo = Repository::discover_with(&self.cwd, self.options.clone())?;
        warn_skipped(&repo.recovery_on_open().skipped);
        match muse_store::resume_checkout(&repo, &muse_store::NoProgress) {
            Ok(None) => {}
            Ok(Some(done)) => eprintln!(
                "muse: completed the checkout of {} that was interrupted (moving from {})",
                done.label, done.from
            ),
            Err(e) => eprintln!("muse: an interrupted checkout could not be completed: {e}"),
        }
        Ok(repo)
    }
}

/// Says once, on stderr, what recovery on open left alone because this user
/// may not change it (a read-only repository): the command goes on.
fn warn_skipped(skipped: &[PathBuf]) {
    if let Some(first) = skipped.first() {
        let more = match skipped.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        eprintln!(
            "warning: the repository is not writable here; recovery left '{}'{more} as it is (fsck lists them)",
            first.display()
        );
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
            // Usage errors are exit 2, as argparse (the reference) and clap.
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    let plumbing = cli.command.is_plumbing();
    match dispatch(cli, input, out, err) {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            if let Some(value) = &failure.stdout {
                let _ = emit_json(out, value, JsonStyle::Line);
            }
            if !failure.message.is_empty() {
                let _ = if failure.verbatim {
                    writeln!(err, "{}", failure.message)
                } else if plumbing {
                    writeln!(err, "❌ {}", failure.message)
                } else {
                    writeln!(err, "muse: error: {}", failure.message)
                };
            }
            failure.code
        }
    }
}

fn dispatch(
    cli: Cli,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CmdResult {
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
        Command::Tag(args) => tag::tag(&ctx, &args, out),
        Command::Commit(args) => porcelain::commit(&ctx, &args, out),
        Command::Status(args) => porcelain::status(&ctx, &args, out, err),
        Command::Log(args) => porcelain::log(&ctx, &args, out),
        Command::Checkout(args) => porcelain::checkout(&ctx, &args, out),
        Command::Remote(cmd) => remote::remote(&ctx, &cmd, out),
        Command::Clone(args) => sync::clone(&ctx, &args, out),
        Command::Fetch(args) => sync::fetch(&ctx, &args, out),
        Command::Pull(args) => sync::pull(&ctx, &args, out),
        Command::Push(args) => sync::push(&ctx, &args, out),
        Command::Fsck(args) => maint::fsck(&ctx, &args, out),
        Command::Gc(args) => maint::gc(&ctx, &args, out),
        Command::Plumbing(p) => match p {
            Plumbing::HashObject(args) => objects::hash_object(&ctx, &args, out),
            Plumbing::CatObject(args) => objects::cat_object(&ctx, &args, out),
            Plumbing::VerifyObject(args) => objects::verify_object(&ctx, &args, out),
            Plumbing::RevParse(args) => refs::rev_parse(&ctx, &args, out, err),
            Plumbing::ShowRef(args) => refs::show_ref(&ctx, &args, out),
            Plumbing::SymbolicRef(args) => refs::symbolic_ref(&ctx, &args, out),
            Plumbing::UpdateRef(args) => refs::update_ref(&ctx, &args, input, out),
            Plumbing::CheckRefFormat(args) => refs::check_ref_format(&args, out),
            Plumbing::ForEachRef(args) => refs::for_each_ref(&ctx, &args, out),
            Plumbing::ReadCommit(args) => history::read_commit(&ctx, &args, out),
            Plumbing::ReadSnapshot(args) => history::read_snapshot(&ctx, &args, out),
            Plumbing::LsFiles(args) => history::ls_files(&ctx, &args, out),
            Plumbing::CommitTree(args) => history::commit_tree(&ctx, &args, out, err),
            Plumbing::CommitGraph(args) => history::commit_graph(&ctx, &args, out),
            Plumbing::MergeBase(args) => history::merge_base(&ctx, &args, out, err),
            Plumbing::SnapshotDiff(args) => history::snapshot_diff(&ctx, &args, out, err),
            Plumbing::NameRev(args) => history::name_rev(&ctx, &args, out),
            Plumbing::CheckIgnore(args) => worktree::check_ignore(&ctx, &args, out),
            Plumbing::CheckAttr(args) => worktree::check_attr(&ctx, &args, out),
            Plumbing::DomainInfo(args) => worktree::domain_info(&ctx, &args, out),
            Plumbing::PackObjects(args) => transport::pack_objects(&ctx, &args, out),
            Plumbing::UnpackObjects(args) => transport::unpack_objects(&ctx, &args, input, out),
            Plumbing::VerifyPack(args) => transport::verify_pack(&ctx, &args, input, out),
            Plumbing::LsRemote(args) => sync::ls_remote(&ctx, &args, out),
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

/// Writes `value` as Python's `json.dumps` in `style` does.
fn emit_json(out: &mut dyn Write, value: &Value, style: JsonStyle) -> CmdResult {
    let bytes = python_json(value, style).map_err(|e| Failure::internal(e.to_string()))?;
    out.write_all(&bytes).map_err(output_failure)
}

/// Writes `value` on one line (`json.dumps(value)`).
fn emit_line(out: &mut dyn Write, value: &Value) -> CmdResult {
    emit_json(out, value, JsonStyle::Line)
}

/// A warning on stderr (never fails the command).
fn warn(err: &mut dyn Write, message: &str) {
    let _ = writeln!(err, "⚠️ {message}");
}

/// The reference's message for text that is not an id.
fn invalid_id(text: &str) -> String {
    format!(
        "Invalid object ID {}: expected exactly 64 lowercase hex characters.",
        python_repr(text)
    )
}

/// Parses an id as the reference validates one: `what` names it in the
/// message (`Invalid commit ID: Invalid object ID 'x': ...`).
fn parse_id_as(text: &str, what: &str) -> Result<muse_store::ObjectId, String> {
    muse_store::ObjectId::from_hex(text)
        .map_err(|_| format!("Invalid {what}: {}", invalid_id(text)))
}

/// A progress bar on stderr, shown only when stderr is a terminal: the
/// phase, a bar of its units, and the bytes moved when the phase moves any.
pub(super) struct Bar {
    shown: indicatif::ProgressBar,
    phase: std::sync::Mutex<&'static str>,
    bytes: std::sync::atomic::AtomicU64,
}

impl muse_store::Progress for Bar {
    fn start(&self, phase: &'static str, total: u64) {
        if let Ok(mut current) = self.phase.lock() {
            *current = phase;
        }
        self.bytes.store(0, std::sync::atomic::Ordering::Relaxed);
        self.shown.set_message(phase);
        self.shown.set_position(0);
        self.shown.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.shown.inc(n);
    }
    fn advance_bytes(&self, n: u64) {
        let total = self
            .bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
            + n;
        let phase = self.phase.lock().map_or("", |p| *p);
        self.shown
            .set_message(format!("{phase}, {}", indicatif::HumanBytes(total)));
    }
    fn finish(&self) {
        self.shown.finish_and_clear();
    }
}

fn progress_bar() -> Option<Bar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>30} [{bar:30}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(Bar {
        shown: bar,
        phase: std::sync::Mutex::new(""),
        bytes: std::sync::atomic::AtomicU64::new(0),
    })
}

/// Runs `f` with a progress bar on a terminal, and with none otherwise.
pub(super) fn with_progress<T>(f: impl FnOnce(&dyn muse_store::Progress) -> T) -> T {
    match progress_bar() {
        Some(bar) => f(&bar),
        None => f(&muse_store::NoProgress),
    }
}
