//! Helpers shared by the unit tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::durable::is_temp_name;
use crate::durable::{Durability, FaultFs, OpKind};
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
pub fn fault_repo() -> Result<(tempfile::TempDir, Repository, FaultFs), Box<dyn std::error::Error>>
{
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
pub fn fixture(name: &str) -> Result<(tempfile::TempDir, Repository), Box<dyn std::error::Error>> {
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
