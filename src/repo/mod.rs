//! A repository: its layout, its one writer, its stores, and its
//! configuration read once.
//!
//! Invariants:
//! - every handle on a repository writes through one [`DurableWriter`]
//!   configured by [`Options`], so the durability level and the filesystem
//!   seam are chosen once, at open;
//! - `repo.json` and `config.toml` are read once, at open, and held; a file
//!   that cannot be read or parsed does not stop the open (fsck must be able
//!   to report it) but makes [`Repository::info`] or [`Repository::config`]
//!   return the error. [`Repository::reload_config`] re-reads the config;
//! - opening runs recovery (see `recovery.rs`) unless asked not to; a clean
//!   open of a healthy repository makes no mutating system call.

mod commit;
mod config;
mod domain;
mod recovery;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use commit::{CommitOutcome, NewCommit};

pub use config::{Config, Remote};
pub use domain::{DomainInfo, REGISTERED_DOMAINS};
pub use recovery::{DEFAULT_TEMP_GRACE, RecoveryReport};

use crate::clock::Timestamp;
use crate::durable::{
    DEFAULT_LOCK_TIMEOUT, Durability, DurableWriter, FileLock, RealFs, TempKind, Vfs, WriteError,
    WriteStep,
};
use crate::error::{Error, Result};
use crate::files::{self, Shards};
use crate::layout::{Layout, MUSE_DIR};
use crate::record::RecordStore;
use crate::refs::{RefStore, TagStore};
use crate::store::ObjectStore;

/// The schema version this implementation writes into `repo.json`.
pub const SCHEMA_VERSION: &str = "0.1.5";

/// How a repository is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// How hard writes work to survive a power cut.
    pub durability: Durability,
    /// The filesystem seam (the real filesystem unless a test says otherwise).
    pub vfs: Arc<dyn Vfs>,
    /// How old a temp file must be before recovery on open (and `gc`)
    /// treats it as left by a crash and removes it. A live writer's temp
    /// file is younger than this, so it is never removed from under it.
    pub temp_grace: Duration,
    /// How long a ref update (or any other lock) waits for another writer
    /// (default [`DEFAULT_LOCK_TIMEOUT`], 10 s).
    pub lock_timeout: Duration,
    /// Who reflog lines name as having moved a ref. `None`: the configured
    /// `user.name`, else `unknown`. The library never reads the environment;
    /// the `muse` CLI fills this from `MUSE_AUTHOR`.
    pub reflog_author: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            vfs: Arc::new(RealFs),
            temp_grace: DEFAULT_TEMP_GRACE,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            reflog_author: None,
        }
    }
}

/// `repo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoInfo {
    /// A uuid4 naming the repository.
    pub repo_id: String,
    /// The format version that wrote it.
    pub schema_version: String,
    /// When it was created (ISO-8601).
    pub created_at: String,
    /// The Muse domain (`code` unless another was chosen).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Unknown fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_domain() -> String {
    "code".to_owned()
}

/// The `config.toml` a new repository starts with (the same sections Muse
/// writes, so its tools find what they expect).
const DEFAULT_CONFIG: &str = r#"[user]
name = ""
email = ""
type = "human"    # "human" | "agent"

[hub]

[remotes]

[domain]
# Domain-specific configuration. Keys depend on the active domain plugin.
"#;

/// A file read at open, or why it could not be.
#[derive(Debug, Clone)]
enum Loaded<T> {
    Ok(T),
    /// It could not be read (the I/O error's kind and text).
    Unreadable(PathBuf, io::ErrorKind, String),
    /// It was read but is not what the format says.
    Malformed(PathBuf, String),
}

impl<T> Loaded<T> {
    fn from(result: Result<T>) -> Self {
        match result {
            Ok(value) => Loaded::Ok(value),
            Err(Error::Io { path, source, .. }) => {
                Loaded::Unreadable(path, source.kind(), source.to_string())
            }
            Err(Error::Corrupt { path, reason }) => Loaded::Malformed(path, reason),
            Err(other) => Loaded::Malformed(PathBuf::new(), other.to_string()),
        }
    }

    fn get(&self) -> Result<&T> {
        match self {
            Loaded::Ok(value) => Ok(value),
            Loaded::Unreadable(path, kind, text) => {
                Err(Error::io("read", path, io::Error::new(*kind, text.clone())))
            }
            Loaded::Malformed(path, reason) => Err(Error::corrupt(path, reason.clone())),
        }
    }
}

/// Proof that gc is held off; see [`Repository::write_guard`]. Released
/// when dropped.
#[must_use = "gc is held off only while the guard lives"]
#[derive(Debug)]
pub struct WriteGuard {
    /// Held for its effect: the shared flock lives as long as this value.
    _lock: FileLock,
}

/// An open repository.
///
/// `Repository` is `Send + Sync` and cheap to clone: threads may share one
/// handle or hold clones. That is a promise about memory safety and this
/// process only; what several *processes* may do to one repository at once
/// is stated in docs/durability.md (ref updates are compare-and-swap under
/// locks, so no update is lost).
#[derive(Debug, Clone)]
pub struct Repository {
    layout: Layout,
    writer: DurableWriter,
    objects: ObjectStore,
    records: RecordStore,
    refs: RefStore,
    info: Loaded<RepoInfo>,
    config: Loaded<Config>,
    options: Options,
    /// What the recovery run when this handle was opened did and skipped.
    opened: RecoveryReport,
}

impl Repository {
    /// Creates a repository in `work_tree` (created if missing) with default
    /// options.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let repo = muse_store::Repository::init(dir.path())?;
    /// assert!(repo.refs().head_commit()?.is_none(), "main is unborn");
    /// # Ok(())
    /// # }
    /// ```
    pub fn init(work_tree: impl AsRef<Path>) -> Result<Self> {
        Self::init_with(work_tree, Options::default())
    }

    /// Creates a repository in `work_tree`, refusing one that already holds
    /// a `.muse/` ([`Error::AlreadyInitialized`]).
    pub fn init_with(work_tree: impl AsRef<Path>, options: Options) -> Result<Self> {
        Self::init_as(work_tree.as_ref(), options, None)
    }

    /// [`Repository::init_with`] under the identity (`repo_id`, `domain`) of
    /// the repository this one is cloned from, as the reference's clone
    /// does, so its tags (`tags/<repo_id>/`) and domain carry over. An id
    /// that cannot name a directory is refused.
    pub(crate) fn init_as(
        work_tree: &Path,
        options: Options,
        identity: Option<&RepoInfo>,
    ) -> Result<Self> {
        if let Some(info) = identity {
            crate::name::check_component("repository id", &info.repo_id)?;
            // Both are printed in messages: no terminal escapes from a remote.
            for (what, text) in [("repository id", &info.repo_id), ("domain", &info.domain)] {
                if text.chars().any(char::is_control) {
                    return Err(crate::error::InvalidName::new(
                        what,
                        text,
                        "it contains a control character",
                    )
                    .into());
                }
            }
        }
        let work_tree = absolute(work_tree)?;
        let writer = DurableWriter::new(options.vfs.clone(), options.durability);
        writer.create_dir_all(&work_tree)?;
        let layout = Layout::new(&work_tree);
        // Creating `.muse/` exclusively makes two racing inits give one winner.
        match writer.vfs().create_dir(layout.muse_dir()) {
            // Make `.muse/` itself durable in the working tree before
            // anything inside it is acknowledged.
            Ok(()) => writer.sync_parent(layout.muse_dir())?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && layout.muse_dir().is_dir() => {
                return Err(Error::AlreadyInitialized {
                    path: layout.muse_dir().to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Input {
                    path: layout.muse_dir().to_path_buf(),
                    reason: "it exists and is not a directory".to_owned(),
                });
            }
            Err(source) => {
                return Err(WriteError::Failed {
                    path: layout.muse_dir().to_path_buf(),
                    step: WriteStep::CreateDir,
                    source,
                }
                .into());
            }
        }
        for dir in [
            layout.objects_dir(),
            layout.commits_dir(),
            layout.snapshots_dir(),
            layout.heads_dir(),
            layout.locks_dir(),
        ] {
            writer.create_dir_all(&dir)?;
        }
        // The gc lock file is permanent (writers take it shared).
        writer.write_file(&layout.gc_lock(), TempKind::State, b"")?;
        let info = RepoInfo {
            repo_id: identity.map_or_else(
                || uuid::Uuid::new_v4().to_string(),
                |info| info.repo_id.clone(),
            ),
            schema_version: SCHEMA_VERSION.to_owned(),
            created_at: Timestamp::now().to_isoformat(),
            domain: identity.map_or_else(default_domain, |info| info.domain.clone()),
            extra: serde_json::Map::new(),
        };
        let mut json = serde_json::to_vec_pretty(&info)
            .map_err(|e| Error::corrupt(layout.repo_json(), e.to_string()))?;
        json.push(b'\n');
        writer.write_file(&layout.config(), TempKind::State, DEFAULT_CONFIG.as_bytes())?;
        writer.write_file(&layout.heads_dir().join("main"), TempKind::State, b"")?;
        writer.write_file(&layout.head(), TempKind::State, b"ref: refs/heads/main\n")?;
        // repo.json last: its presence marks a complete initialisation.
        writer.write_file(&layout.repo_json(), TempKind::State, &json)?;
        Ok(Self::from_parts(layout, writer, options))
    }

    /// Opens the repository whose working tree is `work_tree`, creating it
    /// first when there is none. Safe against several processes doing this
    /// at once: one creates it, the others wait (up to
    /// [`Options::lock_timeout`]) for that initialisation to finish and open
    /// it.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::Repository;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let first = Repository::open_or_init(dir.path(), Default::default())?;
    /// let again = Repository::open_or_init(dir.path(), Default::default())?;
    /// assert_eq!(first.info()?.repo_id, again.info()?.repo_id);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_or_init(work_tree: impl AsRef<Path>, options: Options) -> Result<Self> {
        let work_tree = work_tree.as_ref();
        match Self::init_with(work_tree, options.clone()) {
            Err(Error::AlreadyInitialized { .. }) => {}
            done => return done,
        }
        // Someone else created `.muse/`; repo.json is written last, so its
        // presence means that initialisation is complete.
        let layout = Layout::new(absolute(work_tree)?);
        let deadline = Instant::now() + options.lock_timeout;
        let mut pause = Duration::from_millis(1);
        while !layout.repo_json().exists() {
            if Instant::now() >= deadline {
                return Err(Error::corrupt(
                    layout.repo_json(),
                    "missing: the initialisation of this repository did not finish (remove .muse/ and init again)",
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Self::open_with(work_tree, options)
    }

    /// Opens the repository whose working tree is `work_tree`.
    pub fn open(work_tree: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(work_tree, Options::default())
    }

    /// Opens the repository whose working tree is `work_tree` with `options`.
    pub fn open_with(work_tree: impl AsRef<Path>, options: Options) -> Result<Self> {
        let mut repo = Self::open_without_recovery(work_tree, options)?;
        repo.opened = repo.recover_on_open()?;
        Ok(repo)
    }

    /// Opens the repository whose working tree is `work_tree` without
    /// running recovery, so that it is seen exactly as a crash left it:
    /// for inspection (`fsck` reports the temp files and stale locks that
    /// recovery would remove). Writing through such a handle is allowed but
    /// no different from writing after a normal open.
    pub fn open_without_recovery(work_tree: impl AsRef<Path>, options: Options) -> Result<Self> {
        let work_tree = absolute(work_tree.as_ref())?;
        let layout = Layout::new(&work_tree);
        if !layout.muse_dir().is_dir() {
            return Err(Error::NotARepository { path: work_tree });
        }
        // repo.json is written last by init and HEAD just before it: with
        // neither, this is an initialisation that never finished.
        if !layout.repo_json().exists() && !layout.head().exists() {
            return Err(Error::corrupt(
                layout.muse_dir(),
                "not a complete repository: it has neither HEAD nor repo.json (an init that did not finish?); remove it and run init again",
            ));
        }
        let writer = DurableWriter::new(options.vfs.clone(), options.durability);
        Ok(Self::from_parts(layout, writer, options))
    }

    /// Finds the repository containing `start` by walking up to the first
    /// directory that holds `.muse/`, and opens it with default options.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::Repository;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// Repository::init(dir.path())?;
    /// std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
    /// let repo = Repository::discover(dir.path().join("src/deep"))?;
    /// assert_eq!(repo.work_tree(), std::path::absolute(dir.path()).unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub fn discover(start: impl AsRef<Path>) -> Result<Self> {
        Self::discover_with(start, Options::default())
    }

    /// [`Repository::discover`] with `options`.
    pub fn discover_with(start: impl AsRef<Path>, options: Options) -> Result<Self> {
        let mut repo = Self::discover_without_recovery(start, options)?;
        repo.opened = repo.recover_on_open()?;
        Ok(repo)
    }

    /// [`Repository::discover_with`] without recovery (see
    /// [`Repository::open_without_recovery`]).
    pub fn discover_without_recovery(start: impl AsRef<Path>, options: Options) -> Result<Self> {
        let start = absolute(start.as_ref())?;
        let mut dir = Some(start.as_path());
        while let Some(candidate) = dir {
            if candidate.join(MUSE_DIR).is_dir() {
                return Self::open_without_recovery(candidate, options);
            }
            dir = candidate.parent();
        }
        Err(Error::NotARepository { path: start })
    }

    /// Full recovery (safe to run at any time): finishes ref transactions
    /// that a dead process left half-applied, removes lock files of provably
    /// dead owners and temp files older than [`Options::temp_grace`]. Lists
    /// only the directories where such files can be, including all 256
    /// object shards; never reads an object, and writes nothing when there
    /// is nothing to recover.
    pub fn recover(&self) -> Result<RecoveryReport> {
        recovery::recover(
            &self.layout,
            &self.writer,
            self.options.temp_grace,
            Shards::All,
        )
    }

    /// The recovery run on every open: as [`Repository::recover`], but it
    /// lists one object shard (at random) rather than all 256, so that
    /// opening does not grow with the number of objects (see
    /// `recovery.rs` for the measurement behind this).
    fn recover_on_open(&self) -> Result<RecoveryReport> {
        recovery::recover(
            &self.layout,
            &self.writer,
            self.options.temp_grace,
            Shards::OneAtRandom,
        )
    }

    fn from_parts(layout: Layout, writer: DurableWriter, options: Options) -> Self {
        let objects = ObjectStore::new(layout.clone(), writer.clone());
        let records = RecordStore::new(layout.clone(), writer.clone());
        let info = Loaded::from(read_info(&layout));
        let config = Loaded::from(Config::read(&layout));
        let refs = RefStore::new(
            layout.clone(),
            writer.clone(),
            reflog_author(&options, &config),
            options.lock_timeout,
        );
        Self {
            layout,
            writer,
            objects,
            records,
            refs,
            info,
            config,
            options,
            opened: RecoveryReport::default(),
        }
    }

    /// What recovery did when this handle was opened (empty for a handle
    /// opened without recovery): its `skipped` list names what it may not
    /// change in a repository this user cannot write.
    #[must_use]
    pub fn recovery_on_open(&self) -> &RecoveryReport {
        &self.opened
    }

    /// The options this repository was opened with.
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The grace period before a temp file counts as left by a crash.
    #[must_use]
    pub fn temp_grace(&self) -> Duration {
        self.options.temp_grace
    }

    /// The paths of this repository.
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The working tree.
    #[must_use]
    pub fn work_tree(&self) -> &Path {
        self.layout.work_tree()
    }

    /// The one durable writer of this repository.
    #[must_use]
    pub fn writer(&self) -> &DurableWriter {
        &self.writer
    }

    /// The object store.
    #[must_use]
    pub fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    /// The commit and snapshot records.
    #[must_use]
    pub fn records(&self) -> &RecordStore {
        &self.records
    }

    /// The refs (HEAD, branches, reflogs, transactions). Reflog lines name
    /// [`Options::reflog_author`], else the configured `user.name`, else
    /// `unknown`.
    #[must_use]
    pub fn refs(&self) -> &RefStore {
        &self.refs
    }

    /// Takes the working-tree lock (`.muse/locks/worktree.lock`), waiting up
    /// to [`Options::lock_timeout`]. Every operation that reads or writes
    /// the working tree together with HEAD holds it (commit of the working
    /// tree, checkout, branch delete and rename), so they exclude each
    /// other; readers never take it.
    pub fn lock_worktree(&self) -> Result<FileLock> {
        self.refs.lock_worktree()
    }

    /// The working-tree lock if nobody holds it right now; `None` when it is
    /// held or cannot be taken (a read-only repository). For readers that
    /// write a hint (the stat cache) only when nobody else could be
    /// changing the tree through this repository.
    pub(crate) fn try_lock_worktree(&self) -> Option<FileLock> {
        match FileLock::try_acquire(&self.layout.worktree_lock()) {
            Ok(lock) => lock,
            Err(e) => {
                log::debug!("working-tree lock not taken: {e}");
                None
            }
        }
    }

    /// Holds off `gc`: a shared lock on `.muse/locks/gc`, which gc
    /// takes exclusively while it marks and sweeps. Hold it from the first
    /// object or record written until the ref that names them has moved
    /// (the commit calls here do), so gc can never remove what a writer is
    /// about to reference. Any number of writers hold it at once.
    pub fn write_guard(&self) -> Result<WriteGuard> {
        Ok(WriteGuard {
            _lock: FileLock::acquire_shared(&self.layout.gc_lock(), self.options.lock_timeout)?,
        })
    }

    /// `repo.json`, as read at open.
    pub fn info(&self) -> Result<&RepoInfo> {
        self.info.get()
    }

    /// The tags (`tags/<repo_id>/`, the reference's tag records). Fails when
    /// `repo.json` cannot be read or its id cannot name a directory.
    pub fn tags(&self) -> Result<TagStore> {
        TagStore::new(
            self.layout.clone(),
            self.writer.clone(),
            &self.info()?.repo_id,
        )
    }

    /// `config.toml`, as read at open (or at the last
    /// [`Repository::reload_config`]).
    pub fn config(&self) -> Result<&Config> {
        self.config.get()
    }

    /// Re-reads `config.toml` (after this or another process changed it) and
    /// everything derived from it, such as the reflog author.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::{Config, Repository};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut repo = Repository::init(dir.path())?;
    /// Config::set(&repo, "user.name", "Ada")?;
    /// assert_eq!(repo.refs().author(), "unknown", "read at open");
    /// repo.reload_config()?;
    /// assert_eq!(repo.config()?.user_name().as_deref(), Some("Ada"));
    /// assert_eq!(repo.refs().author(), "Ada");
    /// # Ok(())
    /// # }
    /// ```
    pub fn reload_config(&mut self) -> Result<()> {
        self.config = Loaded::from(Config::read(&self.layout));
        self.refs = self
            .refs
            .with_author(reflog_author(&self.options, &self.config));
        self.config.get().map(drop)
    }
}

fn reflog_author(options: &Options, config: &Loaded<Config>) -> String {
    options
        .reflog_author
        .clone()
        .or_else(|| match config {
            Loaded::Ok(c) => c.user_name(),
            _ => None,
        })
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn read_info(layout: &Layout) -> Result<RepoInfo> {
    let path = layout.repo_json();
    match files::read_json(&path)? {
        Some(info) => Ok(info),
        None => Err(Error::io(
            "read",
            &path,
            io::Error::from(io::ErrorKind::NotFound),
        )),
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))
}
