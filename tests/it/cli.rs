//! The `muse` command line: the plumbing contract of shared/PLUMBING.md
//! (JSON keys, formats, exit codes) and refusal of bad input.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use muse_store::ObjectId;
use serde_json::Value;

use crate::{TestResult, muse, pattern};

/// A directory with `muse init` run in it.
fn init_repo() -> TestResult<(tempfile::TempDir, String)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_str().ok_or("non-UTF-8 temp dir")?.to_owned();
    let run = muse(["init", &path]);
    assert_eq!(run.code, 0, "init exit code, stderr {:?}", run.err);
    Ok((dir, path))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Every file under `root` with its bytes, to prove a command changed nothing.
fn snapshot_tree(root: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                out.push((path.display().to_string(), Vec::new()));
                stack.push(path);
            } else {
                out.push((path.display().to_string(), fs::read(&path)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn bad_ids() -> Vec<(&'static str, String)> {
    let good = ObjectId::hash(b"x").to_string();
    vec![
        ("non-hex", "g".repeat(64)),
        ("non-hex with a space", format!("{} ", &good[..63])),
        ("short", "abc123".to_owned()),
        ("short, 63 chars", good[..63].to_owned()),
        ("long, 65 chars", format!("{good}0")),
        ("upper-case", good.to_uppercase()),
        ("../ id", format!("../{}", &good[3..])),
        ("../ path", "../../../../etc/passwd".to_owned()),
        ("empty", String::new()),
    ]
}

#[test]
fn bad_ids_are_refused_with_exit_1_naming_them() -> TestResult {
    let (dir, path) = init_repo()?;
    let before = snapshot_tree(dir.path())?;
    let good = ObjectId::hash(b"x").to_string();
    for (what, id) in bad_ids() {
        for command in [
            vec!["cat-object", id.as_str()],
            vec!["cat-object", id.as_str(), "-f", "info"],
        ] {
            let mut args = vec!["-C", path.as_str(), "plumbing"];
            args.extend(&command);
            let run = muse(&args);
            assert_eq!(
                run.code, 1,
                "{what} id {id:?} via {command:?}: exit code (stderr {:?})",
                run.err
            );
            assert!(
                run.err.contains(&format!(
                    "Invalid object ID {}",
                    muse_store::python_repr(&id)
                )),
                "{what} id via {command:?}: stderr must name the bad value {id:?}: {:?}",
                run.err
            );
            assert!(
                run.out.is_empty(),
                "{what} via {command:?}: nothing on stdout, got {:?}",
                run.stdout()
            );
        }
        // verify-object reports a bad id inside its results, as the
        // reference does, and fails.
        for command in [
            vec!["verify-object", id.as_str()],
            vec!["verify-object", good.as_str(), id.as_str()],
        ] {
            let mut args = vec!["-C", path.as_str(), "plumbing"];
            args.extend(&command);
            let run = muse(&args);
            assert_eq!(run.code, 1, "{what} via {command:?}: exit code");
            let json = run.json()?;
            let rows = json["results"].as_array().ok_or("results")?;
            let row = rows.last().ok_or("a row")?;
            assert_eq!(row["object_id"], id.as_str(), "{what}: {json}");
            assert_eq!(row["ok"], false, "{what}: {json}");
            assert!(
                row["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(&muse_store::python_repr(&id))),
                "{what}: the error names the value: {json}"
            );
        }
    }
    assert_eq!(
        snapshot_tree(dir.path())?,
        before,
        "refused commands must not change the repository"
    );
    Ok(())
}

#[test]
fn hash_object_refuses_missing_file_and_directory() -> TestResult {
    let (dir, path) = init_repo()?;
    let missing = dir.path().join("no-such-file.txt");
    let missing = missing.to_str().ok_or("path")?;
    let subdir = dir.path().join("a-directory");
    fs::create_dir(&subdir)?;
    let subdir = subdir.to_str().ok_or("path")?;
    for (what, file, fragment) in [
        ("missing file", missing, "no-such-file.txt"),
        ("directory", subdir, "a-directory"),
    ] {
        for write in [false, true] {
            let mut args = vec!["-C", path.as_str(), "plumbing", "hash-object", file];
            if write {
                args.push("-w");
            }
            let run = muse(&args);
            assert_eq!(
                run.code, 1,
                "{what} (write {write}): exit code, stderr {:?}",
                run.err
            );
            assert!(
                run.err.contains(fragment),
                "{what} (write {write}): stderr must name it: {:?}",
                run.err
            );
            assert!(run.out.is_empty(), "{what}: nothing on stdout");
        }
    }
    let run = muse(["-C", &path, "plumbing", "hash-object", subdir]);
    assert!(
        run.err.contains("directory"),
        "a directory must be called a directory: {:?}",
        run.err
    );
    Ok(())
}

#[test]
fn init_creates_the_layout_and_refuses_reinitialising() -> TestResult {
    let (dir, path) = init_repo()?;
    let muse_dir = dir.path().join(".muse");
    let repo_json: Value = serde_json::from_slice(&fs::read(muse_dir.join("repo.json"))?)?;
    for key in ["repo_id", "schema_version", "domain", "created_at"] {
        assert!(
            repo_json.get(key).is_some(),
            "repo.json lacks {key}: {repo_json}"
        );
    }
    let repo_id = repo_json["repo_id"]
        .as_str()
        .ok_or("repo_id not a string")?;
    assert!(
        repo_id.len() == 36 && repo_id.as_bytes()[14] == b'4',
        "repo_id must be a uuid4: {repo_id}"
    );
    assert_eq!(
        fs::read(muse_dir.join("HEAD"))?,
        b"ref: refs/heads/main\n",
        "HEAD"
    );
    assert_eq!(
        fs::read(muse_dir.join("refs/heads/main"))?,
        b"",
        "main is an empty (unborn) ref"
    );
    assert!(muse_dir.join("config.toml").is_file(), "config.toml");
    assert!(muse_dir.join("objects").is_dir(), "objects/");

    let before = snapshot_tree(dir.path())?;
    let run = muse(["init", &path]);
    assert_eq!(run.code, 1, "re-init must be exit 1, stderr {:?}", run.err);
    assert!(
        run.err.contains(&muse_dir.display().to_string()) && run.err.contains("already"),
        "re-init message must name the repository: {:?}",
        run.err
    );
    let run = muse(["-C", &path, "init"]);
    assert_eq!(run.code, 1, "re-init via -C must be exit 1");
    assert_eq!(
        snapshot_tree(dir.path())?,
        before,
        "a refused init must change nothing"
    );
    Ok(())
}

#[test]
fn hash_object_json_and_text() -> TestResult {
    let (dir, path) = init_repo()?;
    let file = dir.path().join("hello.txt");
    fs::write(&file, b"hello world\n")?;
    let file = file.to_str().ok_or("path")?;
    let expected = ObjectId::hash(b"hello world\n").to_string();

    let run = muse(["-C", &path, "plumbing", "hash-object", file]);
    assert_eq!(run.code, 0, "hash-object, stderr {:?}", run.err);
    let json = run.json()?;
    assert_eq!(keys(&json), set(&["object_id", "stored"]), "keys: {json}");
    assert_eq!(json["object_id"], expected.as_str(), "id");
    assert_eq!(json["stored"], false, "without -w nothing is stored");
    assert!(
        !dir.path()
            .join(".muse/objects")
            .join(&expected[..2])
            .join(&expected[2..])
            .exists(),
        "hash-object without -w must not store"
    );

    for (flag, stored) in [("-w", true), ("--write", false)] {
        let run = muse(["-C", &path, "plumbing", "hash-object", file, flag]);
        assert_eq!(run.code, 0, "hash-object {flag}");
        let json = run.json()?;
        assert_eq!(keys(&json), set(&["object_id", "stored"]), "keys: {json}");
        assert_eq!(json["stored"], stored, "{flag}: stored only when new");
    }

    let run = muse(["-C", &path, "plumbing", "hash-object", file, "-f", "text"]);
    assert_eq!(run.code, 0, "text format");
    assert_eq!(run.stdout(), format!("{expected}\n"), "text is the id");
    Ok(())
}

#[test]
fn hash_object_streams_a_large_file() -> TestResult {
    let (dir, path) = init_repo()?;
    let bytes = pattern(3 * 1024 * 1024 + 1, 9);
    let file = dir.path().join("large.bin");
    fs::write(&file, &bytes)?;
    let run = muse([
        "-C",
        &path,
        "plumbing",
        "hash-object",
        "-w",
        file.to_str().ok_or("path")?,
    ]);
    assert_eq!(run.code, 0, "hash-object -w large, stderr {:?}", run.err);
    let id = ObjectId::hash(&bytes).to_string();
    assert_eq!(run.json()?["object_id"], id.as_str(), "large id");
    let run = muse(["-C", &path, "plumbing", "cat-object", &id]);
    assert_eq!(run.code, 0, "cat-object large");
    assert!(
        run.out == bytes,
        "cat-object returns the large object's bytes"
    );
    Ok(())
}

#[test]
fn cat_object_info_and_missing() -> TestResult {
    let (dir, path) = init_repo()?;
    let file = dir.path().join("f");
    fs::write(&file, b"twelve bytes")?;
    let run = muse([
        "-C",
        &path,
        "plumbing",
        "hash-object",
        "-w",
        file.to_str().ok_or("path")?,
    ]);
    assert_eq!(run.code, 0, "store");
    let id = ObjectId::hash(b"twelve bytes").to_string();

    let run = muse(["-C", &path, "plumbing", "cat-object", &id, "-f", "info"]);
    assert_eq!(run.code, 0, "info exit");
    let json = run.json()?;
    assert_eq!(
        keys(&json),
        set(&["object_id", "present", "size_bytes"]),
        "keys: {json}"
    );
    assert_eq!(json["present"], true, "present");
    assert_eq!(json["size_bytes"], 12, "size");
    assert_eq!(json["object_id"], id.as_str(), "id");

    let run = muse(["-C", &path, "plumbing", "cat-object", &id]);
    assert_eq!(run.code, 0, "raw exit");
    assert_eq!(run.out, b"twelve bytes", "raw bytes");

    let absent = ObjectId::hash(b"absent").to_string();
    let run = muse(["-C", &path, "plumbing", "cat-object", &absent]);
    assert_eq!(run.code, 1, "a missing object is exit 1");
    assert!(
        run.err.contains(&absent),
        "names the missing id: {:?}",
        run.err
    );
    let run = muse(["-C", &path, "plumbing", "cat-object", &absent, "-f", "info"]);
    assert_eq!(run.code, 1, "missing object info is exit 1");
    let json = run.json()?;
    assert_eq!(
        keys(&json),
        set(&["object_id", "present", "size_bytes"]),
        "keys: {json}"
    );
    assert_eq!(json["present"], false, "present false");
    Ok(())
}

#[test]
fn verify_object_json_text_and_quiet() -> TestResult {
    let (dir, path) = init_repo()?;
    let file = dir.path().join("f");
    fs::write(&file, b"verify me")?;
    let stored = muse([
        "-C",
        &path,
        "plumbing",
        "hash-object",
        "-w",
        file.to_str().ok_or("path")?,
    ]);
    assert_eq!(stored.code, 0, "store");
    let id = ObjectId::hash(b"verify me").to_string();
    let absent = ObjectId::hash(b"absent").to_string();

    let run = muse(["-C", &path, "plumbing", "verify-object", &id]);
    assert_eq!(run.code, 0, "verify ok exit, stderr {:?}", run.err);
    let json = run.json()?;
    assert_eq!(
        keys(&json),
        set(&["results", "all_ok", "checked", "failed"]),
        "keys: {json}"
    );
    assert_eq!(json["all_ok"], true, "all_ok");
    assert_eq!(json["checked"], 1, "checked");
    assert_eq!(json["failed"], 0, "failed");
    let row = &json["results"][0];
    assert_eq!(
        keys(row),
        set(&["object_id", "ok", "size_bytes", "error"]),
        "row keys: {row}"
    );
    assert_eq!(row["ok"], true, "ok");
    assert_eq!(row["size_bytes"], 9, "size");
    assert!(row["error"].is_null(), "no error: {row}");

    let run = muse(["-C", &path, "plumbing", "verify-object", &id, &absent]);
    assert_eq!(run.code, 1, "any failure is exit 1");
    let json = run.json()?;
    assert_eq!(json["checked"], 2, "checked both");
    assert_eq!(json["failed"], 1, "one failed");
    assert_eq!(json["all_ok"], false, "not all ok");
    assert_eq!(
        json["results"][1]["object_id"],
        absent.as_str(),
        "order kept"
    );
    assert_eq!(
        json["results"][1]["error"], "object not found in store",
        "the reference's words: {json}"
    );

    let run = muse(["-C", &path, "plumbing", "verify-object", "-q", &id, &absent]);
    assert_eq!(run.code, 1, "quiet failure exit");
    assert!(run.out.is_empty(), "-q prints nothing: {:?}", run.stdout());
    let run = muse(["-C", &path, "plumbing", "verify-object", "-q", &id]);
    assert_eq!(run.code, 0, "quiet success exit");
    assert!(run.out.is_empty(), "-q prints nothing");

    let run = muse(["-C", &path, "plumbing", "verify-object", "-f", "text", &id]);
    assert_eq!(run.code, 0, "text exit");
    assert!(
        run.stdout().contains(&id),
        "text names the id: {}",
        run.stdout()
    );
    Ok(())
}

#[test]
fn plumbing_outside_a_repository_is_exit_2() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_str().ok_or("path")?;
    let id = ObjectId::hash(b"x").to_string();
    let run = muse(["-C", path, "plumbing", "cat-object", &id]);
    assert_eq!(run.code, 2, "not a repository is exit 2, as the reference");
    assert!(
        run.err.contains("not a muse repository"),
        "message says so: {:?}",
        run.err
    );
    Ok(())
}
