//! The state files a version-control front end keeps beside the object store
//! (shared/FORMAT.md, "State files").
//!
//! Invariants:
//! - every file here is written through the repository's one
//!   [`DurableWriter`](crate::DurableWriter): whole-file replacements by temp
//!   file + fsync + rename + directory fsync, so a reader sees the old content
//!   or the new, never a mix, and a failed write leaves no temp file;
//!   `ops.jsonl` is the one append-only file and a torn last line is cut
//!   before the next append;
//! - a file that exists but does not parse is an [`Error::Corrupt`] that
//!   names it; an absent optional file reads as `None`;
//! - fields this implementation does not know are kept and written back
//!   (the `extra` maps), so a round trip never drops another tool's data;
//! - caller-supplied names that become paths (session ids, reservation and
//!   intent ids) are validated or typed before any path is built from them.

mod config;
mod coordination;
mod merge;
mod oplog;
mod rebase;

use std::io;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use config::{Config, Remote, validate_remote_name};
pub use coordination::{Intent, Reservation};
pub use merge::MergeState;
pub use oplog::{Checkpoint, OpEntry, OpLog, SessionId};
pub use rebase::RebaseState;

use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};

/// Reads a whole file; `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Parses a JSON state file, naming it when it is malformed.
pub(crate) fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| corrupt(path, format!("not valid JSON for this file: {e}")))
}

/// Reads and parses a JSON state file; `None` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    read_optional(path)?
        .map(|bytes| parse_json(path, &bytes))
        .transpose()
}

/// Writes `value` as 2-space-indented JSON without a trailing newline (what
/// Muse writes for its state files; readers accept either).
pub(crate) fn write_json<T: Serialize>(
    writer: &DurableWriter,
    path: &Path,
    value: &T,
) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| corrupt(path, format!("could not be serialised: {e}")))?;
    writer.write_file(path, TempKind::State, &json)?;
    Ok(())
}

/// An [`Error::Corrupt`] for `path`.
pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks a name that is stored in a file or becomes a path component: not
/// empty, at most 255 bytes, no control characters.
pub(crate) fn check_plain_text(what: &'static str, name: &str) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::InvalidName {
            what,
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > 255 {
        return refuse("it is longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers shared by the state tests.

    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use crate::durable::{Durability, FaultFs, OpKind};
    use crate::layout::is_temp_name;
    use crate::repo::{Options, Repository};

    /// The test result type.
    pub type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A fresh repository in a temp dir, without fsyncs.
    pub fn repo() -> Result<(tempfile::TempDir, Repository), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let options = Options {
            durability: Durability::None,
            ..Options::default()
        };
        let repo = Repository::init_with(dir.path(), options)?;
        Ok((dir, repo))
    }

    /// A fresh repository behind a [`FaultFs`], at full durability.
    pub fn fault_repo()
    -> Result<(tempfile::TempDir, Repository, FaultFs), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let fault = FaultFs::new();
        let options = Options {
            vfs: Arc::new(fault.clone()),
            durability: Durability::Full,
            ..Options::default()
        };
        let repo = Repository::init_with(dir.path(), options)?;
        Ok((dir, repo, fault))
    }

    /// A writable copy of `shared/fixtures/<name>` in a temp dir (the
    /// shared fixtures are read-only and must never be written), opened.
    pub fn fixture(
        name: &str,
    ) -> Result<(tempfile::TempDir, Repository), Box<dyn std::error::Error>> {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures")
            .join(name);
        let source = if source.is_dir() {
            source
        } else {
            Path::new("/work/shared/fixtures").join(name)
        };
        let dir = tempfile::tempdir()?;
        let target = dir.path().join(name);
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(&source)
            .arg(&target)
            .status()?;
        assert!(status.success(), "cp -r {} failed", source.display());
        let status = std::process::Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&target)
            .status()?;
        assert!(status.success(), "chmod -R u+w failed");
        let options = Options {
            durability: Durability::None,
            ..Options::default()
        };
        let repo = Repository::open_with(&target, options)?;
        Ok((dir, repo))
    }

    /// Every temp file (any of the project's prefixes) under `dir`.
    pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return found;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(temp_files(&path));
            } else if entry.file_name().to_str().is_some_and(is_temp_name) {
                found.push(path);
            }
        }
        found
    }

    /// The kinds of system call a state write can make.
    pub const KINDS: [OpKind; 9] = [
        OpKind::Create,
        OpKind::OpenAppend,
        OpKind::Write,
        OpKind::SyncFile,
        OpKind::Truncate,
        OpKind::Rename,
        OpKind::Remove,
        OpKind::CreateDir,
        OpKind::SyncDir,
    ];

    /// Runs `op` once per (kind, nth) with that call failing with EIO, on a
    /// fresh repository prepared by `setup`. After each run: no temp file is
    /// left anywhere in `.muse/`, and `check(repo, failed)` holds (`failed`
    /// says whether `op` returned an error). Also checks that at least one
    /// injection really failed the operation.
    pub fn fault_matrix(
        setup: &dyn Fn(&Repository) -> crate::Result<()>,
        op: &dyn Fn(&Repository) -> crate::Result<()>,
        check: &dyn Fn(&Repository, Option<&crate::Error>) -> TestResult,
    ) -> TestResult {
        let mut failures = 0;
        for kind in KINDS {
            for nth in 0..4 {
                let (_dir, repo, fault) = fault_repo()?;
                setup(&repo)?;
                fault.fail_nth(kind, nth, libc::EIO);
                let result = op(&repo);
                let temps = temp_files(repo.layout().muse_dir());
                assert!(
                    temps.is_empty(),
                    "failing {kind:?} #{nth} left temp files {temps:?} (result {result:?})"
                );
                if let Err(e) = &result {
                    failures += 1;
                    assert!(
                        !e.to_string().is_empty(),
                        "failing {kind:?} #{nth}: the error says something"
                    );
                }
                check(&repo, result.as_ref().err())
                    .map_err(|e| format!("failing {kind:?} #{nth}: {e}"))?;
            }
        }
        assert!(failures > 0, "some injected failure reached the operation");
        Ok(())
    }
}
