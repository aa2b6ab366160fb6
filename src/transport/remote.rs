//! Remotes: the [`Transport`] trait (list refs, fetch, push) and its
//! implementation for repositories on a local path or a `file://` URL,
//! laid out as the reference lays them out (REFERENCE.md section 3):
//! `[remotes.<name>]` in `config.toml`, tracking pointers in
//! `.muse/remotes/<remote>/<branch>`.
//!
//! Invariants:
//! - everything received goes through the receiver's quarantine
//!   ([`super::unpack`]): objects and records are published only after every
//!   check passed, and refs and tracking pointers move only after that
//!   publish is durable;
//! - a push moves the remote's branches in one ref transaction on the
//!   remote, each by compare-and-swap against the value the pusher last saw
//!   there (its tracking pointer; `--force-with-lease` names another; only
//!   `--force` moves a branch whatever it holds), so a push never silently
//!   overwrites another push: every branch moves or none does, and the
//!   remote's reflog records each move;
//! - a push to the branch checked out in the remote is refused unless the
//!   remote's `config.toml` says `receive.denyCurrentBranch = "ignore"`
//!   (git's rule: that working tree would silently go stale).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::bundle::{commits_to_send, objects_covered_by, pack_commits};
use super::quarantine::{Unpacked, unpack_guarded};
use crate::error::{Error, Expected, PushRefusal, Result};
use crate::id::{ObjectId, is_lower_hex};
use crate::name::BranchName;
use crate::progress::{NoProgress, Progress};
use crate::refs::{Head, RefChange};
use crate::repo::{Options, Repository};

/// What a transport reaches: a repository that lists its branches, sends
/// what a receiver lacks, and takes pushes. A network transport implements
/// the same three calls.
pub trait Transport {
    /// Every branch of the remote with its tip, sorted by name.
    fn list_refs(&self) -> Result<Vec<(BranchName, ObjectId)>>;
    /// The branch the remote's HEAD is on (its default branch).
    fn default_branch(&self) -> Result<Option<BranchName>>;
    /// Sends `wants` and what they need, less what `haves` already cover,
    /// into `into` (through its quarantine), telling `progress` each object
    /// and its bytes as they arrive. Moves no ref.
    fn fetch(
        &self,
        into: &Repository,
        wants: &[ObjectId],
        haves: &[ObjectId],
        progress: &dyn Progress,
    ) -> Result<Unpacked>;
    /// Sends what `updates` need from `from` (telling `progress` as
    /// [`Transport::fetch`] does) and moves the remote's branches, all or
    /// none (see the module docs).
    fn push(
        &self,
        from: &Repository,
        updates: &[PushUpdate],
        progress: &dyn Progress,
    ) -> Result<Vec<RefChange>>;
}

/// One branch a push moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUpdate {
    /// The remote branch.
    pub branch: BranchName,
    /// Its new tip.
    pub new: ObjectId,
    /// What it must hold now for the push to go ahead.
    pub expected: Expected,
    /// Whether a tip that does not descend from the current one is allowed.
    pub force: bool,
}

/// A repository on this machine, reached through its path.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    remote: Repository,
}

/// The directory a remote URL names: `file:///abs/path` (the host part
/// joined with the path, as the reference reads it) or a plain path,
/// relative to `base`.
pub fn remote_path(url: &str, base: &Path) -> Result<PathBuf> {
    let path = if let Some(rest) = url.strip_prefix("file://") {
        PathBuf::from(if rest.starts_with('/') {
            rest.to_owned()
        } else {
            format!("/{rest}")
        })
    } else if url.contains("://") {
        return Err(Error::BadRemote {
            url: url.to_owned(),
            reason: "only local paths and file:// URLs are supported".to_owned(),
        });
    } else {
        base.join(url)
    };
    if !path.join(crate::layout::MUSE_DIR).is_dir() {
        return Err(Error::BadRemote {
            url: url.to_owned(),
            reason: format!("'{}' holds no .muse/ directory", path.display()),
        });
    }
    Ok(path)
}

impl LocalTransport {
    /// The repository `url` names (see [`remote_path`]), opened with
    /// `options` (recovery runs there as on any open).
    pub fn open(url: &str, base: &Path, options: Options) -> Result<Self> {
        let path = remote_path(url, base)?;
        Ok(Self {
            remote: Repository::open_with(path, options)?,
        })
    }

    /// The remote repository.
    #[must_use]
    pub fn repository(&self) -> &Repository {
        &self.remote
    }
}

/// Packs `commits` of `from` into `into` through an OS pipe: the packer runs
/// on its own thread, so neither side holds the bundle.
fn stream(
    from: &Repository,
    into: &Repository,
    commits: &[crate::record::CommitRecord],
    haves: &[ObjectId],
    progress: &dyn Progress,
) -> Result<Unpacked> {
    // Only what the receiver lacks crosses: the objects of its tips' trees
    // stay behind (a change of 1% sends 1% of the objects).
    let skip = objects_covered_by(from, haves);
    let (mut reader, writer) =
        std::io::pipe().map_err(|e| Error::io("make a pipe", into.work_tree(), e))?;
    std::thread::scope(|scope| {
        let packer = scope.spawn(move || {
            let mut writer = std::io::BufWriter::with_capacity(64 * 1024, writer);
            let packed = pack_commits(from, commits, None, &skip, &mut writer);
            // Closing the pipe ends the receiver's input.
            drop(writer);
            packed
        });
        let mut input = std::io::BufReader::with_capacity(64 * 1024, &mut reader as &mut dyn Read);
        let received = unpack_guarded(into, &mut input, Path::new("<transport>"), progress);
        // A refusal stops reading: drain so the packer sees the end, not a
        // broken pipe it would report instead of the refusal.
        let _ = std::io::copy(&mut input, &mut std::io::sink());
        let pack_result = packer.join().map_err(|_| {
            Error::io(
                "pack",
                from.work_tree(),
                std::io::Error::other("the packer panicked"),
            )
        })?;
        // A packer that failed (a corrupt object on the sending side, say)
        // cut the stream short: its error is the cause, the receiver's
        // "truncated" only the consequence.
        pack_result?;
        received
    })
}

impl LocalTransport {
    /// A record missing on the remote side names the remote: a branch tip
    /// (one of `wants`) or a parent it does not have is its damage, not an
    /// id this user asked for.
    fn remote_damage(&self, error: Error, wants: &[ObjectId]) -> Error {
        let remote = self.remote.work_tree().display();
        match error {
            Error::RecordNotFound { kind, id } if wants.contains(&id) => Error::MissingRecord {
                kind,
                id,
                named_by: format!("a branch of the remote repository '{remote}'"),
            },
            Error::MissingRecord { kind, id, named_by } => Error::MissingRecord {
                kind,
                id,
                named_by: format!("{named_by} in the remote repository '{remote}'"),
            },
            other => other,
        }
    }
}

impl Transport for LocalTransport {
    fn list_refs(&self) -> Result<Vec<(BranchName, ObjectId)>> {
        let mut out: Vec<_> = self
            .remote
            .refs()
            .branches()?
            .into_iter()
            .filter_map(|(b, state)| state.commit().map(|c| (b, c)))
            .collect();
        out.sort();
        Ok(out)
    }

    fn default_branch(&self) -> Result<Option<BranchName>> {
        Ok(match self.remote.refs().head()? {
            Head::Branch(b) => Some(b),
            Head::Detached(_) => None,
        })
    }

    fn fetch(
        &self,
        into: &Repository,
        wants: &[ObjectId],
        haves: &[ObjectId],
        progress: &dyn Progress,
    ) -> Result<Unpacked> {
        let _guard = into.write_guard()?;
        let _remote_guard = self.remote.write_guard()?;
        let commits = commits_to_send(&self.remote, wants, haves)
            .map_err(|e| self.remote_damage(e, wants))?;
        stream(&self.remote, into, &commits, haves, progress)
    }

    fn push(
        &self,
        from: &Repository,
        updates: &[PushUpdate],
        progress: &dyn Progress,
    ) -> Result<Vec<RefChange>> {
        let remote = &self.remote;
        let _guard = remote.write_guard()?;
        let checked_out = self.default_branch()?;
        let allow_current = remote
            .config()?
            .get("receive.denyCurrentBranch")
            .is_some_and(|v| v == "ignore" || v == "false");
        for update in updates {
            if Some(&update.branch) == checked_out.as_ref() && !allow_current {
                return Err(reject(
                    &update.branch,
                    "it is the branch checked out in the remote's working tree, which would go stale; push to another branch, or set receive.denyCurrentBranch = \"ignore\" in the remote's config.toml",
                ));
            }
        }
        let haves: Vec<ObjectId> = self.list_refs()?.into_iter().map(|(_, c)| c).collect();
        let wants: Vec<ObjectId> = updates.iter().map(|u| u.new).collect();
        let commits = commits_to_send(from, &wants, &haves)?;
        if !commits.is_empty() {
            stream(from, remote, &commits, &haves, progress)?;
        }
        // Fast-forward checks, now that the remote has every commit.
        for update in updates.iter().filter(|u| !u.force) {
            if let Some(current) = remote.refs().branch(&update.branch)?
                && current != update.new
                && !crate::history::ancestors(remote.records(), update.new)?.contains(&current)
            {
                return Err(reject(
                    &update.branch,
                    "the remote branch has commits this push does not contain (it is not a fast-forward); fetch and merge first, or push with --force",
                ));
            }
        }
        // A branch that already holds what is pushed is done: the retry of a
        // push that moved it but died before its tracking pointer did must
        // not be refused for finding its own update there.
        let mut pending = Vec::new();
        for update in updates {
            if remote.refs().branch(&update.branch)? != Some(update.new) {
                pending.push(update);
            }
        }
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = remote.refs().transaction("push");
        for update in pending {
            tx.update(update.branch.clone(), update.new, update.expected);
        }
        tx.commit().map_err(|e| match e {
            Error::CasMismatch(conflict) => Error::PushRejected(Box::new(PushRefusal {
                branch: conflict.branch.clone(),
                reason: format!(
                    "the remote branch moved since this repository last saw it (expected {}, found {}); fetch first, or push with --force",
                    conflict.expected,
                    conflict.actual.map_or_else(|| "absent".to_owned(), |id| id.to_string())
                ),
            })),
            other => other,
        })
    }
}

fn reject(branch: &BranchName, reason: &str) -> Error {
    Error::PushRejected(Box::new(PushRefusal {
        branch: branch.to_string(),
        reason: reason.to_owned(),
    }))
}

/// Every commit this repository knows a tip of (its branches and tracking
/// pointers): what a fetch tells the remote it has.
fn local_haves(repo: &Repository) -> Result<Vec<ObjectId>> {
    let mut haves: Vec<ObjectId> = repo
        .refs()
        .branches()?
        .into_iter()
        .filter_map(|(_, s)| s.commit())
        .collect();
    for pointer in repo.refs().remote_tracking_files()? {
        if let Ok(id) = repo.refs().read_remote_ref(&pointer) {
            haves.push(id);
        }
    }
    haves.sort();
    haves.dedup();
    Ok(haves)
}

/// What a [`fetch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Each branch fetched with its tip there and the tracking pointer's
    /// previous value.
    pub branches: Vec<(BranchName, ObjectId, Option<ObjectId>)>,
    /// What was received.
    pub received: Unpacked,
    /// Tracking pointers removed because the remote no longer has their
    /// branch (only with [`FetchOptions::prune`]).
    pub pruned: Vec<BranchName>,
}

/// How [`fetch_with`] fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Remove the tracking pointers of branches the remote no longer has
    /// (`fetch --prune`). Unlike the reference, which prunes only pointers
    /// directly in `remotes/<remote>/`, a nested one (`feature/x`) goes too:
    /// the remote's whole branch list is known here.
    pub prune: bool,
}

/// Fetches `branches` (every branch of the remote when empty) of the
/// configured remote `name`: only what this repository lacks crosses,
/// through the quarantine; then the tracking pointers move.
pub fn fetch(repo: &Repository, name: &str, branches: &[BranchName]) -> Result<Fetched> {
    fetch_with(repo, name, branches, &FetchOptions::default(), &NoProgress)
}

/// [`fetch`] with `options`, telling `progress` what arrives.
pub fn fetch_with(
    repo: &Repository,
    name: &str,
    branches: &[BranchName],
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let transport = open_configured(repo, name)?;
    let mut fetched = fetch_from(repo, &transport, name, branches, progress)?;
    if options.prune {
        let remote_branches = transport.list_refs()?;
        for pointer in repo.refs().remote_tracking_files()? {
            if pointer.remote != name {
                continue;
            }
            // A pointer file whose name is no branch name was never written
            // by a fetch; it is left for fsck to report.
            let Ok(branch) = BranchName::new(&pointer.branch) else {
                continue;
            };
            if !remote_branches.iter().any(|(b, _)| *b == branch) {
                repo.refs().delete_remote_tracking(name, &branch)?;
                fetched.pruned.push(branch);
            }
        }
    }
    Ok(fetched)
}

/// [`fetch`] through a given transport, telling `progress` what arrives.
pub fn fetch_from(
    repo: &Repository,
    transport: &dyn Transport,
    name: &str,
    branches: &[BranchName],
    progress: &dyn Progress,
) -> Result<Fetched> {
    let refs = transport.list_refs()?;
    let mut chosen = Vec::new();
    if branches.is_empty() {
        chosen.clone_from(&refs);
    } else {
        for branch in branches {
            match refs.iter().find(|(b, _)| b == branch) {
                Some(found) => chosen.push(found.clone()),
                None => {
                    return Err(Error::NoSuchBranch {
                        branch: format!("{branch} (on remote '{name}')"),
                    });
                }
            }
        }
    }
    let wants: Vec<ObjectId> = chosen
        .iter()
        .map(|(_, c)| *c)
        .filter(|c| !repo.records().contains_commit(c))
        .collect();
    let received = if wants.is_empty() {
        Unpacked::default()
    } else {
        transport.fetch(repo, &wants, &local_haves(repo)?, progress)?
    };
    let mut out = Fetched {
        received,
        ..Fetched::default()
    };
    for (branch, tip) in chosen {
        let old = repo.refs().remote_tracking(name, &branch)?;
        if old != Some(tip) {
            repo.refs().set_remote_tracking(name, &branch, tip)?;
            crate::failpoint::crash_point("fetch-pointer-moved");
        }
        out.branches.push((branch, tip, old));
    }
    Ok(out)
}

/// The transport of the configured remote `name`.
pub fn open_configured(repo: &Repository, name: &str) -> Result<LocalTransport> {
    let remote = repo
        .config()?
        .remote(name)?
        .ok_or_else(|| Error::NoSuchRemote {
            name: name.to_owned(),
        })?;
    LocalTransport::open(&remote.url, repo.work_tree(), repo.options().clone())
}

/// How a [`push`] may move each branch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// Move the branches whatever they hold.
    pub force: bool,
    /// `--force-with-lease=<branch>:<id>`: move `branch` only if it holds
    /// `id` there (not a fast-forward check).
    pub leases: Vec<(BranchName, ObjectId)>,
}

/// Pushes the local `branches` to the same names on the configured remote
/// `name`: one transaction there (all move or none), each a compare-and-swap
/// against this repository's tracking pointer (absent: the branch must be
/// absent there), unless `options` say otherwise. Then the tracking pointers
/// move here. `progress` is told each object and its bytes as the remote
/// receives them.
pub fn push(
    repo: &Repository,
    name: &str,
    branches: &[BranchName],
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Vec<RefChange>> {
    let transport = open_configured(repo, name)?;
    let mut updates = Vec::new();
    for branch in branches {
        let new = repo
            .refs()
            .branch(branch)?
            .ok_or_else(|| Error::UnbornBranch {
                branch: branch.to_string(),
            })?;
        let lease = options.leases.iter().find(|(b, _)| b == branch);
        let (expected, force) = match lease {
            Some((_, id)) => (Expected::Value(*id), true),
            None if options.force => (Expected::Any, true),
            None => (
                repo.refs()
                    .remote_tracking(name, branch)?
                    .map_or(Expected::Absent, Expected::Value),
                false,
            ),
        };
        updates.push(PushUpdate {
            branch: branch.clone(),
            new,
            expected,
            force,
        });
    }
    let moved = transport.push(repo, &updates, progress)?;
    crate::failpoint::crash_point("push-remote-moved");
    for update in &updates {
        repo.refs()
            .set_remote_tracking(name, &update.branch, update.new)?;
        crate::failpoint::crash_point("push-pointer-moved");
    }
    Ok(moved)
}

/// Clones the repository `url` names into `dir` (which must not exist or
/// be empty): every branch, remote `origin` with its tracking pointers,
/// HEAD on the remote's default branch. The working tree is the caller's to
/// check out (see [`clone_with`] to do it before the clone appears).
pub fn clone(url: &str, dir: &Path, options: &Options) -> Result<Repository> {
    clone_with(url, dir, options, &NoProgress, |_| Ok(()))
}

/// Prefix of the directory a clone is built in, beside its destination.
const CLONE_TEMP_PREFIX: &str = ".muse-tmp-clone-";

/// [`clone`], telling `progress` what arrives and running `prepare` (a
/// checkout, say) on the new repository before it appears at `dir`. Everything is built in a temp directory
/// beside `dir`, locked while its clone runs, and renamed into place last:
/// a failed or killed clone leaves nothing at `dir`, and the temp directory
/// of a killed one (its lock free) is removed by the next clone into the
/// same place.
pub fn clone_with(
    url: &str,
    dir: &Path,
    options: &Options,
    progress: &dyn Progress,
    prepare: impl FnOnce(&Repository) -> Result<()>,
) -> Result<Repository> {
    let base =
        std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
    let source = LocalTransport::open(url, &base, options.clone())?;
    let (parent, name) = clone_destination(&base, dir)?;
    let dir = parent.join(&name);
    let parent = parent.as_path();
    let name = name.to_string_lossy();
    let stem = format!("{CLONE_TEMP_PREFIX}{name}-");
    remove_dead_clone_temps(parent, &stem);
    let suffix = uuid::Uuid::new_v4().simple();
    let temp = parent.join(format!("{stem}{suffix}"));
    let writer = repo_writer(options);
    // The lock lives on the directory itself (its inode), so it moves with
    // each rename and nothing is left behind to remove. The directory is
    // locked under a name no remover looks at, then renamed to `stem*`: a
    // remover never sees it unlocked.
    let unlocked = parent.join(format!("{CLONE_UNLOCKED_PREFIX}{suffix}"));
    writer.create_dir_all(&unlocked)?;
    let live = lock_clone_temp(&unlocked)?;
    writer.rename_file(&unlocked, &temp)?;
    let built = (|| {
        let identity = source.repository().info()?;
        let repo = Repository::init_as(&temp, options.clone(), Some(identity))?;
        let absolute = remote_path(url, &base)?;
        let url_text = if url.starts_with("file://") {
            url.to_owned()
        } else {
            absolute.display().to_string()
        };
        let default = source.default_branch()?;
        crate::repo::Config::add_remote(
            &repo,
            "origin",
            &url_text,
            default.as_ref().map(BranchName::as_str),
        )?;
        let repo = Repository::open_with(&temp, options.clone())?;
        let fetched = fetch_from(&repo, &source, "origin", &[], progress)?;
        crate::failpoint::crash_point("clone-fetched");
        let mut tx = repo.refs().transaction("clone");
        for (branch, tip, _) in &fetched.branches {
            tx.update(branch.clone(), *tip, Expected::Absent);
        }
        tx.commit()?;
        if let Some(default) = &default {
            repo.refs()
                .set_head(&Head::Branch(default.clone()), "clone")?;
        }
        prepare(&repo)?;
        crate::failpoint::crash_point("clone-prepared");
        Ok::<_, Error>(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    // rename(2) replaces an empty directory at `dir` atomically; one that
    // gained an entry meanwhile (a concurrent clone's, say) makes it fail.
    if let Err(e) = writer.rename_file(&temp, &dir) {
        let _ = std::fs::remove_dir_all(&temp);
        if std::fs::symlink_metadata(&dir).is_ok() {
            return Err(not_empty(dir));
        }
        return Err(e.into());
    }
    drop(live);
    Repository::open_with(&dir, options.clone())
}

fn not_empty(dir: PathBuf) -> Error {
    Error::Input {
        path: dir,
        reason: "the clone's directory exists and is not empty".to_owned(),
    }
}

/// Where a clone into `dir` goes: its parent directory (which must exist,
/// symlinks in it resolved) and its name. Checked before any work is done:
/// `dir` must be absent or an empty real directory (not a symlink), must
/// name a directory (not end in `..`; `..` before its name is resolved
/// with the parent), and must not be the current
/// directory or hold it (the clone replaces the directory at `dir`).
fn clone_destination(base: &Path, dir: &Path) -> Result<(PathBuf, std::ffi::OsString)> {
    let joined: PathBuf = base.join(dir).components().collect();
    let refuse = |reason: &str| Error::Input {
        path: dir.to_path_buf(),
        reason: reason.to_owned(),
    };
    let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
        return Err(refuse("the clone's destination must name a directory"));
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            refuse("the clone's parent directory does not exist")
        } else {
            Error::io("find the clone's parent directory", parent, e)
        }
    })?;
    let target = parent.join(name);
    match std::fs::symlink_metadata(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat the clone's directory", target, e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(refuse(
                "the clone's destination is a symlink; name a new or empty directory",
            ));
        }
        Ok(meta) if !meta.is_dir() => return Err(not_empty(target)),
        Ok(_) => {
            if std::fs::read_dir(&target).map_or(true, |mut d| d.next().is_some()) {
                return Err(not_empty(target));
            }
            if std::fs::canonicalize(base).is_ok_and(|cwd| cwd.starts_with(&target)) {
                return Err(refuse(
                    "cannot clone into the current directory (the clone replaces it); name a new directory",
                ));
            }
        }
    }
    Ok((parent, name.to_owned()))
}

/// Locks the clone directory `temp` for as long as the returned handle
/// lives.
fn lock_clone_temp(temp: &Path) -> Result<std::fs::File> {
    let handle = crate::sys::open_nofollow(temp)
        .map_err(|e| Error::io("open the clone directory", temp, e))?;
    handle
        .try_lock()
        .map_err(|e| Error::io("lock the clone directory", temp, std::io::Error::other(e)))?;
    Ok(handle)
}

/// Prefix of a clone directory between its creation and its lock.
const CLONE_UNLOCKED_PREFIX: &str = ".muse-tmp-cloning-";

/// How long a `.muse-tmp-cloning-*` directory may be unlocked before it is
/// taken for a dead clone's: a live clone locks it right after creating it.
const CLONE_UNLOCKED_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the directories in `parent` that killed clones left: those
/// named `stem*` whose lock nobody holds, and those named
/// `.muse-tmp-cloning-*` (a clone killed between creating and locking its
/// directory) unlocked and older than [`CLONE_UNLOCKED_GRACE`]. Real
/// directories only, never through a symlink. Best effort: what cannot be
/// removed now is tried again next time.
fn remove_dead_clone_temps(parent: &Path, stem: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let named = entry.file_name();
        let Some(named) = named.to_str() else {
            continue;
        };
        // Only names a clone makes: the prefix, then exactly a simple uuid.
        let made_by_clone = |prefix: &str| {
            named
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.len() == 32 && is_lower_hex(rest.as_bytes()))
        };
        let ours = made_by_clone(stem);
        let never_locked = made_by_clone(CLONE_UNLOCKED_PREFIX);
        if !(ours || never_locked) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(handle) = crate::sys::open_nofollow(&path) else {
            continue;
        };
        let Ok(meta) = handle.metadata() else {
            continue;
        };
        let old_enough = ours
            || meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > CLONE_UNLOCKED_GRACE);
        if meta.is_dir() && old_enough && handle.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn repo_writer(options: &Options) -> crate::durable::DurableWriter {
    crate::durable::DurableWriter::new(options.vfs.clone(), options.durability)
}
