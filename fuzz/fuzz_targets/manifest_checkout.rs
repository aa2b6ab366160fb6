//! The path policy and checkout planning over arbitrary manifests. The
//! input is split on newlines into up to 12 manifest paths.
//! - A refused manifest names one of its own paths, and every path an
//!   independent oracle knows to be hostile (`..`, an absolute path, a
//!   backslash, NUL, a component that is `.git`/`.muse` in any case with
//!   trailing dots or spaces) is refused.
//! - An accepted manifest is committed and checked out (`--force`) into an
//!   empty working tree: afterwards the working tree outside `.muse/` holds
//!   exactly the manifest's files with their bytes, and `.muse/objects/`
//!   and `.muse/refs/` are exactly as the commit left them.
#![no_main]
#![expect(
    clippy::disallowed_methods,
    reason = "the check reads the working tree and the repository behind the writer's back"
)]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use muse_store::{
    Durability, Head, NewCommit, NoProgress, Options, Repository, check_manifest, checkout,
};

/// What the oracle knows to be hostile without the policy's code.
fn obviously_hostile(path: &str) -> bool {
    path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path.split('/').any(|c| {
            let trimmed = c.trim_end_matches(['.', ' ']).to_ascii_lowercase();
            c.is_empty() || c == "." || c == ".." || trimmed == ".git" || trimmed == ".muse"
        })
}

/// Every regular file below `root` (relative path, bytes), `.muse/` left out
/// when `skip_muse`.
fn files(root: &Path, skip_muse: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("below root");
            let rel = rel.to_string_lossy().into_owned();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                if !(skip_muse && rel == ".muse") {
                    stack.push(path);
                }
            } else {
                assert!(kind.is_file(), "checkout made a non-file at {rel}");
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let paths: Vec<&str> = text.split('\n').take(12).collect();
    match check_manifest(paths.iter().copied()) {
        Err(refusal) => {
            assert!(
                paths.contains(&refusal.path.as_str()),
                "the refusal names a path of the manifest: {refusal}"
            );
            return;
        }
        Ok(()) => {
            for path in &paths {
                assert!(!obviously_hostile(path), "accepted a hostile path {path:?}");
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        durability: Durability::None,
        ..Options::default()
    };
    let repo = Repository::init_with(dir.path(), options).expect("init");
    let mut manifest = BTreeMap::new();
    for path in &paths {
        let (id, _) = repo.objects().write(path.as_bytes()).expect("object");
        manifest.insert((*path).to_owned(), id);
    }
    let outcome = repo
        .commit_manifest(manifest.clone(), &NewCommit::new("fuzz"))
        .expect("an accepted manifest commits");
    let objects = files(&repo.layout().muse_dir().join("objects"), false);
    let refs = files(&repo.layout().muse_dir().join("refs"), false);
    let target = Head::Detached(outcome.commit.commit_id);
    if let Err(e) = checkout(&repo, &target, true, &NoProgress) {
        // Only a case collision may stop it (a case-insensitive tree).
        assert!(
            matches!(e, muse_store::Error::RefusedPath(_)),
            "checkout of an accepted manifest failed: {e}"
        );
        return;
    }
    let tree = files(dir.path(), true);
    let expected: BTreeMap<String, Vec<u8>> = manifest
        .keys()
        .map(|p| (p.clone(), p.as_bytes().to_vec()))
        .collect();
    assert_eq!(tree, expected, "the working tree is exactly the manifest");
    assert_eq!(
        files(&repo.layout().muse_dir().join("objects"), false),
        objects
    );
    assert_eq!(files(&repo.layout().muse_dir().join("refs"), false), refs);
});
