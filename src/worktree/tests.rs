use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::durable::Durability;
use crate::record::tests::{fixture_copy, shared_dir};
use crate::repo::Options;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn options() -> Options {
    Options {
        durability: Durability::None,
        ..Options::default()
    }
}

/// Creates `root/rel` with `bytes` (and its directories).
#[expect(
    clippy::disallowed_methods,
    reason = "tests build working trees, which are not repository files"
)]
fn put(root: &Path, rel: &str, bytes: &[u8]) -> TestResult {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, bytes)?;
    Ok(())
}

fn hex_id(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex).unwrap_or(ObjectId::ZERO)
}

fn keys(manifest: &BTreeMap<String, ObjectId>) -> Vec<&str> {
    manifest.keys().map(String::as_str).collect()
}

#[test]
fn fixture_working_tree_snapshots_to_heads_snapshot() -> TestResult {
    // The fixture stopped mid-merge with a conflict in song.txt, but Muse
    // left the working tree at `ours` (HEAD = main, "main work"): every file
    // hashes to the manifest of main's snapshot 6304ba97..., so that is the
    // snapshot a correct walk must produce.
    let (_tmp, copy) = fixture_copy()?;
    let head_snapshot = hex_id("6304ba972ec161cb0b52028459cf6a58e22a8075bef36c268324d59461e1be29");
    let record_path = copy
        .join(".muse/snapshots")
        .join(format!("{head_snapshot}.json"));
    let before = fs::read(&record_path)?;
    // Things the walk must leave out: ignored by the fixture's .museignore,
    // always excluded, or in never-entered directories.
    put(&copy, "scratch.tmp", b"x")?;
    put(&copy, "src/pkg.pyc", b"x")?;
    put(&copy, "__pycache__/m.pyc", b"x")?;
    put(&copy, "pkg.egg-info/PKG-INFO", b"x")?;
    put(&copy, ".env", b"SECRET=1")?;
    put(&copy, ".git/config", b"x")?;
    put(&copy, "node_modules/a/index.js", b"x")?;

    let repo = Repository::open_with(&copy, options())?;
    assert_eq!(
        worktree_manifest(&repo)?.len(),
        5,
        "status view: five files"
    );
    let snap = snapshot_worktree(&repo)?;
    assert_eq!(
        snap.snapshot_id, head_snapshot,
        "manifest: {:?}",
        snap.manifest
    );
    let muse = repo.records().read_snapshot(&head_snapshot)?;
    assert_eq!(snap.manifest, muse.manifest);
    assert_eq!(
        keys(&snap.manifest),
        [
            ".museattributes",
            ".museignore",
            "data.bin",
            "song.txt",
            "src/main.rs"
        ]
    );
    assert_eq!(
        fs::read(&record_path)?,
        before,
        "Muse's record is not rewritten"
    );
    for id in snap.manifest.values() {
        repo.objects().verify(id)?;
    }
    Ok(())
}

#[test]
fn unicode_spaces_and_nesting_reproduce_the_vector() -> TestResult {
    let text = fs::read_to_string(shared_dir().join("vectors/ids.json"))?;
    let vectors: serde_json::Value = serde_json::from_str(&text)?;
    let zeros = hex::decode(
        vectors["objects"][4]["hex_of_bytes"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(dir.path(), options())?;
    let root = repo.work_tree().to_path_buf();
    put(&root, "café/♫.mid", "café ♫\n".as_bytes())?;
    put(&root, "z", &zeros)?;
    put(&root, "A", b"hello world\n")?;
    let snap = snapshot_worktree(&repo)?;
    assert_eq!(
        snap.snapshot_id.to_hex(),
        "27e6faa3232f09b5b2f223cc2e582dae0269e4c89a87779213585e65fee421ec",
        "same id as Muse for the vector tree"
    );
    put(&root, "with space/deeper still/a b.txt", b"spaced")?;
    put(&root, "日本/語/ファイル.txt", b"nihongo")?;
    let snap = snapshot_worktree(&repo)?;
    for path in [
        "with space/deeper still/a b.txt",
        "日本/語/ファイル.txt",
        "café/♫.mid",
    ] {
        let id = snap.manifest.get(path).ok_or(path)?;
        assert_eq!(
            &*repo.objects().read(id)?,
            fs::read(root.join(path))?.as_slice()
        );
    }
    assert_eq!(repo.records().read_snapshot(&snap.snapshot_id)?, snap);
    Ok(())
}

#[test]
fn symlinks_are_skipped_never_followed() -> TestResult {
    let outside = tempfile::tempdir()?;
    put(outside.path(), "secret.txt", b"outside")?;
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(dir.path(), options())?;
    let root = repo.work_tree().to_path_buf();
    put(&root, "real/file.txt", b"in")?;
    std::os::unix::fs::symlink(outside.path(), root.join("dir-link"))?;
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("file-link"))?;
    std::os::unix::fs::symlink("real", root.join("inner-dir-link"))?;
    std::os::unix::fs::symlink("nowhere", root.join("dangling"))?;
    let snap = snapshot_worktree(&repo)?;
    assert_eq!(keys(&snap.manifest), ["real/file.txt"], "no symlink taken");
    // A file swapped for a symlink after the scan is refused, not read.
    let files = vec![("file-link".to_owned(), root.join("file-link"))];
    assert!(
        matches!(hash_tree(&files), Err(Error::SourceChanged { .. })),
        "O_NOFOLLOW refuses a symlink"
    );
    Ok(())
}

#[test]
fn never_taken_dirs_and_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    for rel in [
        "keep.txt",
        "sub/keep.rs",
        ".env",
        ".env.local",
        ".envrc",
        "a/server.pem",
        "id.key",
        "c.p12",
        "c.pfx",
        ".DS_Store",
        "sub/Thumbs.db",
        ".git/HEAD",
        "sub/.git/HEAD",
        "node_modules/x.js",
        "sub/__pycache__/m.pyc",
        ".venv/bin/python",
        "venv/x",
        ".tox/x",
        ".nox/x",
        ".mypy_cache/x",
        ".ruff_cache/x",
        ".pytest_cache/x",
        ".coverage/x",
        "htmlcov/index.html",
        "dist/pkg.whl",
        "build/out.o",
        "sub/.eggs/x",
        "deep/x/dist/y",
        "nested/.muse/repo.json",
        ".restore-tmp-0123",
    ] {
        put(root, rel, b"x")?;
    }
    put(root, "d/.DS_Store/inside", b"x")?;
    let files = scan_tree(root, &IgnoreRules::default())?;
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["keep.txt", "sub/keep.rs"]);
    // As in the reference, a later negation brings back a file a built-in
    // pattern left out, but never a file in a directory the walk skips.
    let files = scan_tree(root, &IgnoreRules::new(["!.env", "!build/out.o", "!*.pem"]))?;
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, [".env", "a/server.pem", "keep.txt", "sub/keep.rs"]);
    let (_, excluded) = super::scan_tree_reporting(root, &IgnoreRules::default())?;
    assert_eq!(
        excluded.builtin_files.len(),
        9,
        "secrets and OS litter: {excluded:?}"
    );
    assert!(
        excluded.builtin_dirs.contains(&"deep/x/dist".to_owned())
            && excluded.builtin_dirs.contains(&"sub/.eggs".to_owned())
            && excluded.builtin_dirs.contains(&"d/.DS_Store".to_owned()),
        "{excluded:?}"
    );
    Ok(())
}

#[test]
fn museignore_rules_apply_per_domain() -> TestResult {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(dir.path(), options())?;
    let root = repo.work_tree().to_path_buf();
    put(
        &root,
        ".museignore",
        br#"
[global]
patterns = ["*.log", "!keep.log", "/top.txt", "out/", "!out/wanted.bin", "docs/**/*.tmp", ".museignore"]

[domain.code]
patterns = ["target/"]

[domain.midi]
patterns = ["*.wav"]
"#,
    )?;
    for rel in [
        "a.log",
        "keep.log",
        "deep/b.log",
        "top.txt",
        "sub/top.txt",
        "out/x.bin",
        "out/wanted.bin",
        "docs/a/b/c.tmp",
        "docs/c.tmp",
        "docs/keep.md",
        "target/debug/app",
        "sound.wav",
        "sub/target",
    ] {
        put(&root, rel, b"x")?;
    }
    let manifest = worktree_manifest(&repo)?;
    assert_eq!(
        keys(&manifest),
        [
            "docs/a/b/c.tmp",
            "docs/c.tmp",
            "docs/keep.md",
            "keep.log",
            "out/wanted.bin",
            "sound.wav",
            "sub/target",
            "sub/top.txt",
        ],
        "the reference's rules: '**' is one component, a pattern may leave out \
         .museignore itself, target/ is a directory rule"
    );
    Ok(())
}

#[test]
fn large_files_stream_and_hash_equals_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(dir.path(), options())?;
    let root = repo.work_tree().to_path_buf();
    let big: Vec<u8> = (0..3 * SMALL_FILE + 17).map(|i| (i % 251) as u8).collect();
    let edge = vec![7u8; SMALL_FILE as usize];
    put(&root, "big.bin", &big)?;
    put(&root, "edge.bin", &edge)?;
    put(&root, "empty", b"")?;
    let files = scan_tree(&root, &IgnoreRules::default())?;
    let hashed = hash_tree(&files)?;
    assert!(
        repo.objects().iter().next().is_none(),
        "hash_tree writes nothing"
    );
    let stored = store_tree(repo.objects(), &files)?;
    assert_eq!(hashed, stored);
    assert_eq!(stored["big.bin"], ObjectId::hash(&big));
    assert_eq!(stored["edge.bin"], ObjectId::hash(&edge));
    assert_eq!(stored["empty"], ObjectId::EMPTY);
    assert_eq!(&*repo.objects().read(&stored["big.bin"])?, big.as_slice());
    Ok(())
}

#[test]
fn non_utf8_names_are_an_error_naming_the_path() -> TestResult {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir()?;
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
    #[expect(clippy::disallowed_methods, reason = "test builds a working tree")]
    fs::write(dir.path().join(name), b"x")?;
    let err = scan_tree(dir.path(), &IgnoreRules::default())
        .err()
        .ok_or("a non-UTF-8 name was accepted")?;
    let text = err.to_string();
    assert!(text.contains("UTF-8") && text.contains("bad"), "{text}");
    Ok(())
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test changes a working tree, which is not repository files"
)]
fn a_file_removed_after_the_walk_is_a_deletion_not_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    put(root, "keep.txt", b"kept")?;
    put(root, "small.txt", b"goes away")?;
    put(root, "d/large.bin", &vec![7u8; (SMALL_FILE as usize) * 2])?;
    put(root, "e/inner.txt", b"parent becomes a file")?;
    let files = scan_tree(root, &IgnoreRules::default())?;
    assert_eq!(files.len(), 4);
    // What a concurrent editor does between the walk and the reads.
    fs::remove_file(root.join("small.txt"))?;
    fs::remove_dir_all(root.join("d"))?;
    fs::remove_dir_all(root.join("e"))?;
    fs::write(root.join("e"), b"now a file")?;
    let hashed = hash_tree(&files)?;
    assert_eq!(keys(&hashed), ["keep.txt"]);
    let repo = Repository::init_with(root, options())?;
    let stored = store_tree(repo.objects(), &files)?;
    assert_eq!(stored, hashed);
    Ok(())
}

#[test]
fn a_directory_removed_during_the_walk_is_skipped() -> TestResult {
    let dir = tempfile::tempdir()?;
    put(dir.path(), "x/y.txt", b"y")?;
    let rules = IgnoreRules::default();
    let mut out = Vec::new();
    let mut excluded = Exclusions::default();
    // The walk reaching a subdirectory its parent listed but which is gone.
    walk(
        &dir.path().join("x/missing"),
        "x/missing",
        &rules,
        &mut out,
        &mut excluded,
    )?;
    assert!(out.is_empty());
    // The tree's root missing stays an error.
    assert!(
        walk(
            &dir.path().join("nope"),
            "",
            &rules,
            &mut out,
            &mut excluded
        )
        .is_err()
    );
    Ok(())
}
