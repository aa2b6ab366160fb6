//! Behaviour tests for the durable core (issue 2), one binary with a module
//! per concern so it links once.
//!
//! Helpers shared by the modules live here: repositories over the real or the
//! recording filesystem, a walk that finds leftover temp files, object
//! corruption, and a CLI runner.

#![expect(
    clippy::disallowed_methods,
    reason = "tests corrupt stored objects and plant files behind the writer's back on purpose"
)]

mod api;
mod batch;
mod chaos;
mod cli;
mod compat;
mod concurrency;
mod examples;
mod faults;
mod fsck;
mod gc;
mod history;
mod hostile;
mod layers;
mod model;
mod objects;
mod order;
mod powercut;
mod processes;
mod received;
mod recovery;
mod reference;
mod refs;
mod restore;
mod statcache;
mod store_model;
mod support;
mod transport;
mod transport_chaos;
mod vectors;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use muse_store::testing::FaultFs;
use muse_store::{Durability, ObjectId, Options, Repository, is_temp_name};
use tempfile::TempDir;

/// The porcelain calls the tests make, in the shape they were written
/// against (message and author, no progress).
pub(crate) mod porcelain {
    use std::collections::BTreeMap;

    use muse_store::{
        CheckoutOutcome, CommitOutcome, Head, NewCommit, NoProgress, ObjectId, Repository, Result,
        Status,
    };

    /// Commits the working tree with `message`, by `author` (default: the
    /// configured one).
    pub(crate) fn commit(
        repo: &Repository,
        message: &str,
        author: Option<&str>,
    ) -> Result<CommitOutcome> {
        let spec = NewCommit {
            message: message.to_owned(),
            author: author.map(str::to_owned),
            ..NewCommit::default()
        };
        muse_store::commit_worktree(repo, &spec, &NoProgress)
    }

    /// Checks out `target`.
    pub(crate) fn checkout(
        repo: &Repository,
        target: &Head,
        force: bool,
    ) -> Result<CheckoutOutcome> {
        muse_store::checkout(repo, target, force, &NoProgress)
    }

    /// The working tree against HEAD.
    pub(crate) fn status(repo: &Repository) -> Result<Status> {
        muse_store::worktree_status(repo)
    }

    /// The manifest of `commit` (empty for `None`).
    pub(crate) fn commit_manifest(
        repo: &Repository,
        commit: Option<ObjectId>,
    ) -> Result<BTreeMap<String, ObjectId>> {
        repo.records().tree_of(commit)
    }
}

/// What every test returns.
pub(crate) type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A fresh repository on the real filesystem.
pub(crate) fn repo(durability: Durability) -> TestResult<(TempDir, Repository)> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(
        dir.path(),
        Options {
            durability,
            ..Options::default()
        },
    )?;
    Ok((dir, repo))
}

/// A fresh repository whose writer goes through a recording, failure-injecting
/// filesystem; the calls made by `init` are already forgotten.
pub(crate) fn faulty_repo(durability: Durability) -> TestResult<(TempDir, Repository, FaultFs)> {
    let dir = tempfile::tempdir()?;
    let fs = FaultFs::new();
    let repo = Repository::init_with(
        dir.path(),
        Options {
            durability,
            vfs: Arc::new(fs.clone()),
            ..Options::default()
        },
    )?;
    fs.clear();
    Ok((dir, repo, fs))
}

/// Every file under `root` whose name marks it as one of our temp files
/// (symlinks are listed, never followed).
pub(crate) fn temp_files(root: &Path) -> TestResult<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_str().is_some_and(is_temp_name) {
                found.push(path.clone());
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(found)
}

/// Fails when any temp file is left under `root`.
pub(crate) fn assert_no_temp_files(root: &Path, context: &str) -> TestResult {
    let left = temp_files(root)?;
    assert!(
        left.is_empty(),
        "{context}: temp files left behind: {left:?}"
    );
    Ok(())
}

/// The ways a stored object is damaged in these tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Every byte set to zero (same length).
    Zeroed,
    /// The last half cut off.
    Truncated,
    /// Length zero.
    Emptied,
    /// One bit of one byte inverted.
    FlippedBit,
}

impl Damage {
    /// All of them.
    pub(crate) const ALL: [Damage; 4] = [
        Damage::Zeroed,
        Damage::Truncated,
        Damage::Emptied,
        Damage::FlippedBit,
    ];

    /// `bytes` after this damage.
    pub(crate) fn apply(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Damage::Zeroed => vec![0; bytes.len()],
            Damage::Truncated => bytes[..bytes.len() / 2].to_vec(),
            Damage::Emptied => Vec::new(),
            Damage::FlippedBit => {
                let mut out = bytes.to_vec();
                let middle = out.len() / 2;
                out[middle] ^= 0x10;
                out
            }
        }
    }
}

/// Makes `path` writable (stored objects are 0444).
pub(crate) fn make_writable(path: &Path) -> TestResult {
    let mut perms = fs::metadata(path)?.permissions();
    perms.set_mode(0o644);
    fs::set_permissions(path, perms)?;
    Ok(())
}

/// Damages the stored file of `id` in place and returns its new bytes.
pub(crate) fn damage_object(
    repo: &Repository,
    id: &ObjectId,
    damage: Damage,
) -> TestResult<Vec<u8>> {
    let path = repo.objects().path(id);
    let original = fs::read(&path)?;
    let damaged = damage.apply(&original);
    assert_ne!(damaged, original, "{damage:?} must change the bytes");
    make_writable(&path)?;
    fs::write(&path, &damaged)?;
    Ok(damaged)
}

/// Deterministic, non-repeating-looking test bytes.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// The output of one CLI run.
#[derive(Debug)]
pub(crate) struct CliRun {
    /// Exit code.
    pub(crate) code: u8,
    /// Standard output.
    pub(crate) out: Vec<u8>,
    /// Standard error, lossily decoded.
    pub(crate) err: String,
}

impl CliRun {
    /// Standard output as text.
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    /// Standard output parsed as one JSON document.
    pub(crate) fn json(&self) -> TestResult<serde_json::Value> {
        serde_json::from_slice(&self.out).map_err(|e| {
            format!(
                "stdout is not JSON ({e}): {:?} (stderr: {:?})",
                self.stdout(),
                self.err
            )
            .into()
        })
    }
}

/// Runs the `muse` binary with `args` (no standard input).
pub(crate) fn muse<I, S>(args: I) -> CliRun
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_muse"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(out) => CliRun {
            code: out
                .status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(255),
            out: out.stdout,
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => CliRun {
            code: 255,
            out: Vec::new(),
            err: format!("could not run the muse binary: {e}"),
        },
    }
}
