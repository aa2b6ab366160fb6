//! A repository: its layout, its writer and its object store.
//!
//! Invariant: every handle on a repository writes through one
//! [`DurableWriter`] configured by [`Options`], so the durability level and
//! the filesystem seam are chosen once, at open.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::durable::{Durability, DurableWriter, RealFs, TempKind, Vfs, WriteError, WriteStep};
use crate::error::{Error, Result};
use crate::layout::{Layout, MUSE_DIR};
use crate::recovery::{self, DEFAULT_TEMP_GRACE, RecoveryReport, Shards};
use crate::refs::RefStore;
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            vfs: Arc::new(RealFs),
            temp_grace: DEFAULT_TEMP_GRACE,
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

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    layout: Layout,
    writer: DurableWriter,
    objects: ObjectStore,
    temp_grace: Duration,
}

impl Repository {
    /// Creates a repository in `work_tree` (created if missing) with default
    /// options.
    pub fn init(work_tree: impl AsRef<Path>) -> Result<Self> {
        Self::init_with(work_tree, Options::default())
    }

    /// Creates a repository in `work_tree`, refusing one that already holds
    /// a `.muse/`.
    pub fn init_with(work_tree: impl AsRef<Path>, options: Options) -> Result<Self> {
        let work_tree = absolute(work_tree.as_ref())?;
        let writer = DurableWriter::new(options.vfs, options.durability);
        writer.create_dir_all(&work_tree)?;
        let layout = Layout::new(&work_tree);
        // Creating `.muse/` exclusively makes two racing inits give one winner.
        match writer.vfs().create_dir(layout.muse_dir()) {
            // Make `.muse/` itself durable in the working tree before
            // anything inside it is acknowledged.
            Ok(()) => writer.sync_parent(layout.muse_dir())?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyInitialized {
                    path: layout.muse_dir().to_path_buf(),
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
        ] {
            writer.create_dir_all(&dir)?;
        }
        let info = RepoInfo {
            repo_id: uuid::Uuid::new_v4().to_string(),
            schema_version: SCHEMA_VERSION.to_owned(),
            created_at: Timestamp::now().to_isoformat(),
            domain: default_domain(),
            extra: serde_json::Map::new(),
        };
        let mut json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Corrupt {
            path: layout.repo_json(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        writer.write_file(&layout.config(), TempKind::State, DEFAULT_CONFIG.as_bytes())?;
        writer.write_file(&layout.heads_dir().join("main"), TempKind::State, b"")?;
        writer.write_file(&layout.head(), TempKind::State, b"ref: refs/heads/main\n")?;
        // repo.json last: its presence marks a complete initialisation.
        writer.write_file(&layout.repo_json(), TempKind::State, &json)?;
        Ok(Self::from_parts(layout, writer, options.temp_grace))
    }

    /// Opens the repository whose working tree is `work_tree`.
    pub fn open(work_tree: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(work_tree, Options::default())
    }

    /// Opens the repository whose working tree is `work_tree` with `options`.
    pub fn open_with(work_tree: impl AsRef<Path>, options: Options) -> Result<Self> {
        let repo = Self::open_without_recovery(work_tree, options)?;
        repo.recover_on_open()?;
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
        let writer = DurableWriter::new(options.vfs, options.durability);
        Ok(Self::from_parts(layout, writer, options.temp_grace))
    }

    /// Full recovery (safe to run at any time): finishes ref transactions
    /// that a dead process left half-applied, removes lock files of provably
    /// dead owners and temp files older than [`Options::temp_grace`]. Lists
    /// only the directories where such files can be, including all 256
    /// object shards; never reads an object, and writes nothing when there
    /// is nothing to recover.
    pub fn recover(&self) -> Result<RecoveryReport> {
        recovery::recover(self, self.temp_grace, Shards::All)
    }

    /// The recovery run on every open: as [`Repository::recover`], but it
    /// lists one object shard (at random) rather than all 256, so that
    /// opening does not grow with the number of objects (see
    /// `src/recovery.rs` for the measurement behind this).
    fn recover_on_open(&self) -> Result<RecoveryReport> {
        recovery::recover(self, self.temp_grace, Shards::OneAtRandom)
    }

    /// The grace period before a temp file counts as left by a crash.
    #[must_use]
    pub fn temp_grace(&self) -> Duration {
        self.temp_grace
    }

    /// Finds the repository containing `start` by walking up to the first
    /// directory that holds `.muse/`, and opens it.
    pub fn discover_with(start: impl AsRef<Path>, options: Options) -> Result<Self> {
        let repo = Self::discover_without_recovery(start, options)?;
        repo.recover_on_open()?;
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

    fn from_parts(layout: Layout, writer: DurableWriter, temp_grace: Duration) -> Self {
        let objects = ObjectStore::new(layout.clone(), writer.clone());
        Self {
            layout,
            writer,
            objects,
            temp_grace,
        }
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

    /// The refs (HEAD and branches). Reflog lines name the author from
    /// `MUSE_AUTHOR`, else the configured `user.name`, else "unknown".
    #[must_use]
    pub fn refs(&self) -> RefStore {
        let author = std::env::var("MUSE_AUTHOR")
            .ok()
            .or_else(|| crate::state::Config::load(self).ok()?.user_name())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        RefStore::new(self.layout.clone(), self.writer.clone(), author)
    }

    /// Reads `repo.json`.
    pub fn info(&self) -> Result<RepoInfo> {
        let path = self.layout.repo_json();
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path,
            reason: e.to_string(),
        })
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))
}
