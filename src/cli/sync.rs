//! `clone`, `fetch`, `pull`, `push` and `plumbing ls-remote`: remotes on
//! local paths and `file://` URLs.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value, json};

use super::{CmdResult, Context, Failure, emit, emit_json};
use muse_store::{
    BranchName, Error, Expected, Head, JsonStyle, ObjectId, PushOptions, Transport, python_repr,
};

fn short(id: &ObjectId) -> String {
    id.to_hex()[..8].to_owned()
}

#[derive(Debug, Args)]
pub(super) struct CloneArgs {
    /// The repository to clone: a path or a file:// URL.
    url: String,
    /// Where to put the clone (default: the source's directory name).
    dir: Option<PathBuf>,
}

pub(super) fn clone(ctx: &Context, args: &CloneArgs, out: &mut dyn Write) -> CmdResult {
    let source = muse_store::remote_path(&args.url, &ctx.cwd)?;
    let dir = match &args.dir {
        Some(d) => ctx.cwd.join(d),
        None => ctx.cwd.join(
            source
                .file_name()
                .ok_or_else(|| Failure::user("cannot name the clone's directory; give one"))?,
        ),
    };
    let url = if args.url.starts_with("file://") {
        args.url.clone()
    } else {
        source.display().to_string()
    };
    // The checkout runs before the clone appears at `dir`: a killed clone
    // leaves no half-written tree there.
    let received = |progress: &dyn muse_store::Progress| {
        muse_store::clone_with(&url, &dir, &ctx.options, progress, |repo| {
            if let Head::Branch(branch) = repo.refs().head()?
                && let Some(tip) = repo.refs().branch(&branch)?
            {
                // A fresh clone has nothing of its own in the working tree: the
                // checkout may write every file.
                super::with_progress(|p| {
                    muse_store::checkout(repo, &Head::Detached(tip), true, p)
                })?;
                super::with_progress(|p| {
                    muse_store::checkout(repo, &Head::Branch(branch), true, p)
                })?;
            }
            Ok(())
        })
    };
    super::with_progress(received)?;
    emit(out, format_args!("Cloned into '{}'\n", dir.display()))
}

#[derive(Debug, Args)]
pub(super) struct FetchArgs {
    /// The remote (default: origin).
    remote: Option<String>,
    /// Branches to fetch (default: every branch).
    branches: Vec<String>,
    /// A branch to fetch (the reference's spelling).
    #[arg(short = 'b', long = "branch")]
    branch: Vec<String>,
    /// Remove the tracking pointers of branches the remote no longer has.
    #[arg(short = 'p', long)]
    prune: bool,
}

fn branch_names(names: &[String]) -> Result<Vec<BranchName>, Failure> {
    names
        .iter()
        .map(|b| BranchName::new(b).map_err(|e| Failure::from(Error::from(e))))
        .collect()
}

pub(super) fn fetch(ctx: &Context, args: &FetchArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let remote = args.remote.as_deref().unwrap_or("origin");
    let mut names = args.branches.clone();
    names.extend(args.branch.iter().cloned());
    let options = muse_store::FetchOptions { prune: args.prune };
    let branches = branch_names(&names)?;
    let fetched =
        super::with_progress(|p| muse_store::fetch_with(&repo, remote, &branches, &options, p))?;
    for branch in &fetched.pruned {
        emit(
            out,
            format_args!("{remote}/{branch} pruned (gone on the remote)\n"),
        )?;
    }
    for (branch, tip, old) in &fetched.branches {
        if *old == Some(*tip) {
            emit(
                out,
                format_args!("{remote}/{branch} is already up to date ({})\n", short(tip)),
            )?;
        } else {
            emit(out, format_args!("{remote}/{branch} -> {}\n", short(tip)))?;
        }
    }
    let r = &fetched.received;
    emit(
        out,
        format_args!(
            "Fetched {} commit(s), {} new object(s) ({} bytes) from {remote}\n",
            r.commits_written, r.objects_written, r.bytes
        ),
    )
}

#[derive(Debug, Args)]
pub(super) struct PullArgs {
    /// The remote (default: origin).
    remote: Option<String>,
}

pub(super) fn pull(ctx: &Context, args: &PullArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let remote = args.remote.as_deref().unwrap_or("origin");
    let Head::Branch(branch) = repo.refs().head()? else {
        return Err(Failure::user(
            "HEAD is detached: pull needs a current branch",
        ));
    };
    let fetched = muse_store::fetch(&repo, remote, std::slice::from_ref(&branch))?;
    let Some((_, theirs, _)) = fetched.branches.first() else {
        return Err(Failure::user(format!("{remote} has no branch '{branch}'")));
    };
    let ours = repo.refs().branch(&branch)?;
    if ours == Some(*theirs) {
        return emit(
            out,
            format_args!("Already up to date ({})\n", short(theirs)),
        );
    }
    if let Some(ours) = ours
        && !muse_store::ancestors(repo.records(), *theirs)?.contains(&ours)
    {
        return Err(Failure::user(format!(
            "'{branch}' and {remote}/{branch} have diverged; pull only fast-forwards (merge is not available yet)"
        )));
    }
    // The working tree first (refusing uncommitted changes), then the
    // branch by compare-and-swap, then HEAD back on the branch.
    super::with_progress(|p| muse_store::checkout(&repo, &Head::Detached(*theirs), false, p))?;
    let mut tx = repo
        .refs()
        .transaction(&format!("pull: fast-forward from {remote}"));
    tx.update(
        branch.clone(),
        *theirs,
        ours.map_or(Expected::Absent, Expected::Value),
    );
    tx.commit()?;
    repo.refs()
        .set_head(&Head::Branch(branch.clone()), "pull")?;
    emit(
        out,
        format_args!("Fast-forwarded {branch} to {}\n", short(theirs)),
    )
}

#[derive(Debug, Args)]
pub(super) struct PushArgs {
    /// The remote (default: origin).
    remote: Option<String>,
    /// Branches to push (default: the current branch); all move or none.
    branches: Vec<String>,
    /// Move the remote branches whatever they hold.
    #[arg(long)]
    force: bool,
    /// `<branch>:<id>`: move branch only if the remote holds id there.
    #[arg(long = "force-with-lease", value_name = "BRANCH:ID")]
    leases: Vec<String>,
    /// Record the (first) pushed branch as the remote's upstream
    /// (`branch = "<b>"` under `[remotes.<remote>]`).
    #[arg(short = 'u', long = "set-upstream")]
    set_upstream: bool,
}

pub(super) fn push(ctx: &Context, args: &PushArgs, out: &mut dyn Write) -> CmdResult {
    let repo = ctx.repo()?;
    let remote = args.remote.as_deref().unwrap_or("origin");
    let mut branches = branch_names(&args.branches)?;
    if branches.is_empty() {
        match repo.refs().head()? {
            Head::Branch(b) => branches.push(b),
            Head::Detached(_) => {
                return Err(Failure::user("HEAD is detached: name the branches to push"));
            }
        }
    }
    let mut options = PushOptions {
        force: args.force,
        ..PushOptions::default()
    };
    for lease in &args.leases {
        let (b, id) = lease.split_once(':').ok_or_else(|| {
            Failure::user(format!(
                "--force-with-lease {}: expected <branch>:<id>",
                python_repr(lease)
            ))
        })?;
        options.leases.push((
            BranchName::new(b).map_err(Error::from)?,
            ObjectId::from_hex(id).map_err(Error::from)?,
        ));
    }
    let moved = super::with_progress(|p| muse_store::push(&repo, remote, &branches, &options, p))?;
    if args.set_upstream
        && let Some(first) = branches.first()
    {
        muse_store::Config::set_remote_branch(&repo, remote, first.as_str())?;
        emit(
            out,
            format_args!("Branch '{first}' set up to track {remote}/{first}\n"),
        )?;
    }
    for change in &moved {
        emit(
            out,
            format_args!(
                "{remote}/{}: {} -> {}\n",
                change.branch,
                change
                    .old
                    .commit()
                    .map_or_else(|| "(new)".to_owned(), |o| short(&o)),
                change
                    .new
                    .commit()
                    .map_or_else(|| "(deleted)".to_owned(), |n| short(&n))
            ),
        )?;
    }
    if moved.is_empty() {
        emit(out, format_args!("Everything up to date.\n"))?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct LsRemoteArgs {
    /// A configured remote, a path or a file:// URL.
    remote: String,
    /// Output format: json or text.
    #[arg(short = 'f', long = "format", default_value = "json")]
    format: String,
}

pub(super) fn ls_remote(ctx: &Context, args: &LsRemoteArgs, out: &mut dyn Write) -> CmdResult {
    let format = super::parse_format(&args.format, super::FormatError::Stderr)?;
    let configured = match ctx.repo() {
        Ok(repo) => repo.config()?.remote(&args.remote)?.map(|r| (r.url, repo)),
        Err(_) => None,
    };
    let transport = match configured {
        Some((url, repo)) => {
            muse_store::LocalTransport::open(&url, repo.work_tree(), ctx.options.clone())?
        }
        None if args.remote.starts_with("file://")
            || muse_store::remote_path(&args.remote, &ctx.cwd).is_ok() =>
        {
            muse_store::LocalTransport::open(&args.remote, &ctx.cwd, ctx.options.clone())?
        }
        None => {
            return Err(Failure::user(format!(
                "{} is not a configured remote and does not look like a URL.\n  Configure it with: muse remote add <name> <url>",
                python_repr(&args.remote)
            )));
        }
    };
    let refs = transport.list_refs()?;
    match format {
        super::Format::Json => {
            let info = transport.repository().info()?;
            let mut heads = Map::new();
            for (b, id) in &refs {
                heads.insert(b.to_string(), Value::String(id.to_hex()));
            }
            emit_json(
                out,
                &json!({
                    "repo_id": info.repo_id,
                    "domain": info.domain,
                    "default_branch": transport.default_branch()?.map(|b| b.to_string()),
                    "branch_heads": heads,
                }),
                JsonStyle::Indent2,
            )
        }
        super::Format::Text => {
            for (b, id) in &refs {
                emit(out, format_args!("{id}\t{b}\n"))?;
            }
            Ok(())
        }
    }
}
