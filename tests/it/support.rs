//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The test result type: any error, with its message.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// `../shared/` next to the crate.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Copies `src` to `dst` recursively, making everything writable (shared/
/// is read-only and must never be written).
pub fn copy_tree(src: &Path, dst: &Path) -> TestResult {
    let status = Command::new("cp").arg("-r").arg(src).arg(dst).status()?;
    assert!(
        status.success(),
        "cp -r {} {}",
        src.display(),
        dst.display()
    );
    let status = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(dst)
        .status()?;
    assert!(status.success(), "chmod -R u+w {}", dst.display());
    Ok(())
}

/// A copy of the named fixture repository in a fresh temp dir.
pub fn fixture(name: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let dst = dir.path().join(name);
    copy_tree(&shared_dir().join("fixtures").join(name), &dst)?;
    Ok((dir, dst))
}

/// Every file below `dir` whose name starts with a temp prefix or ends in
/// `.lock`.
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if muse_store::is_temp_name(&name) || name.ends_with(".lock") {
                found.push(path);
            }
        }
    }
    found
}

/// Runs the `muse` binary in `dir` with `args`; returns (exit code, stdout, stderr).
pub fn muse(dir: &Path, args: &[&str]) -> TestResult<(i32, String, String)> {
    muse_env(dir, args, &[], None)
}

/// [`muse`] with extra environment variables and optional stdin text.
pub fn muse_env(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> TestResult<(i32, String, String)> {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muse"));
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or("").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
