//! Repositories the reference implementation wrote are read, kept and shown
//! as the reference shows them (issue 12): every fixture's log, status,
//! checkouts, fsck and gc; branch names the reference accepts; its
//! multi-line reflog entries; its stash, tags and other files under
//! `.muse/`; the `.museignore` warnings and built-in exclusions of status;
//! a hostile `.museignore` that would blow up a backtracking matcher.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use muse_store::{BranchName, ObjectId, Repository, worktree_manifest};
use serde_json::Value;

use crate::TestResult;
use crate::support::{fixture, muse};

const C1: &str = "e5b76f6caac3d84de95a271d63ff7a145c4f529be30f64fb9eb2b9c8da7a780f";
const C2: &str = "42a3e43d2f7480ad579d2d9cfd9807a64df551b773a98219cf0ac5158b6c2d31";
const C3: &str = "98c18a6b6d2c948a454d872e407ac2f72e6f5bcdad646ac857c53a5b7bc25ab3";
const C4: &str = "25f1662a7331006a908d714acb4b8f30805583c9ac5f0ad304130d4d42d0cdee";
/// The two objects only `stash.json` names in ref-history.
const STASHED: [&str; 2] = [
    "984dd49f17aaa81e289458c3691768429fa29f2508fafbe2cd7e1847eeee8cf1",
    "d3a1c6d0c5af711deb8e2c26cf8416e03e0be5af12d5b6baa2851a9824a178a0",
];

const FIXTURES: [&str; 3] = ["ref-history", "ref-rebase-stopped", "muse-merge-conflict"];

fn ok(root: &Path, args: &[&str]) -> TestResult<String> {
    let (code, out, err) = muse(root, args)?;
    assert_eq!(code, 0, "muse {args:?}: {err}");
    Ok(out)
}

fn json(root: &Path, args: &[&str]) -> TestResult<Value> {
    Ok(serde_json::from_str(&ok(root, args)?)?)
}

/// Makes every stored object look a month old, so that gc's prune age
/// (and its slack for objects written this second) does not protect them.
fn age_objects(root: &Path) -> TestResult {
    let old = std::time::SystemTime::now() - Duration::from_secs(30 * 86_400);
    for path in stored(root)? {
        fs::File::open(root.join(path))?.set_modified(old)?;
    }
    Ok(())
}

/// Every file under `.muse/objects`, `commits` and `snapshots`.
fn stored(root: &Path) -> TestResult<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    for dir in ["objects", "commits", "snapshots"] {
        let mut stack = vec![root.join(".muse").join(dir)];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    stack.push(entry.path());
                } else {
                    out.insert(entry.path().strip_prefix(root)?.to_path_buf());
                }
            }
        }
    }
    Ok(out)
}

fn fsck_healthy(root: &Path, when: &str) -> TestResult {
    let (code, out, err) = muse(root, &["fsck"])?;
    let report: Value = serde_json::from_str(&out)?;
    assert_eq!(code, 0, "{when}: fsck exit ({err}): {report}");
    assert_eq!(report["ok"], true, "{when}: {report}");
    assert_eq!(report["counts"]["damage"], 0, "{when}: {report}");
    Ok(())
}

#[test]
fn every_fixture_logs_checks_out_and_survives_fsck_and_gc() -> TestResult {
    for name in FIXTURES {
        let (_tmp, root) = fixture(name)?;
        let repo = Repository::open(&root)?;
        // Log walks the whole history from HEAD.
        let log = ok(&root, &["log", "--oneline"])?;
        assert!(!log.is_empty(), "{name}: log");
        // Status of the reference's own checkout is clean (ignored files
        // stay out, as the reference left them out).
        let st = json(&root, &["status", "-f", "json"])?;
        assert_eq!(st["clean"], true, "{name}: status {st}");

        fsck_healthy(&root, &format!("{name} as written"))?;
        let before = stored(&root)?;
        ok(&root, &["gc", "--prune=now"])?;
        assert_eq!(
            stored(&root)?,
            before,
            "{name}: gc --prune=now removed what the reference can still reach"
        );
        fsck_healthy(&root, &format!("{name} after gc"))?;

        // Every commit checks out to exactly its snapshot.
        let commits: Vec<ObjectId> = fs::read_dir(root.join(".muse/commits"))?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                ObjectId::from_hex(name.strip_suffix(".json")?).ok()
            })
            .collect();
        assert!(commits.len() >= 3, "{name}: {commits:?}");
        for commit in commits {
            ok(&root, &["checkout", "--force", &commit.to_string()])?;
            let want = repo.records().tree_of(Some(commit))?;
            assert_eq!(
                worktree_manifest(&repo)?,
                want,
                "{name}: checkout of {commit} is its snapshot"
            );
            let st = json(&root, &["status", "-f", "json"])?;
            assert_eq!(st["clean"], true, "{name} at {commit}: {st}");
        }
        fsck_healthy(&root, &format!("{name} after the checkouts"))?;
    }
    Ok(())
}

#[test]
fn ref_history_log_shows_tags_and_the_whole_history() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    assert_eq!(
        ok(&root, &["log", "--oneline"])?,
        "25f1662a7331 (tag: stage:rough-mix) c4: main work\n42a3e43d2f74 c2: a message with a body\ne5b76f6caac3 (tag: v1.0) c1: initial import\n"
    );
    let long = ok(&root, &["log", "-n", "1", "dev"])?;
    assert!(long.starts_with(&format!("commit {C3}\n")), "{long}");
    assert!(long.contains("Bob Ö <bob@example.com>"), "{long}");
    Ok(())
}

/// The data-loss case of the issue: a stash older than the prune age.
#[test]
fn gc_keeps_what_only_the_stash_names() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    let path = |id: &str| root.join(".muse/objects").join(&id[..2]).join(&id[2..]);
    for id in STASHED {
        assert!(path(id).is_file(), "fixture holds {id}");
    }
    // Make every file look old: gc with a prune age of a day must still
    // keep the stash.
    age_objects(&root)?;
    let report = json(&root, &["gc", "--prune=1.day"])?;
    assert_eq!(report["objects_removed"], 0, "{report}");
    let report = json(&root, &["gc", "--prune=now"])?;
    assert_eq!(report["objects_removed"], 0, "{report}");
    for id in STASHED {
        assert!(
            path(id).is_file(),
            "gc removed {id}, named only by stash.json"
        );
    }
    // An object nothing names is removed (gc prunes at all).
    let orphan = root.join("orphan.txt");
    fs::write(&orphan, b"named by nothing")?;
    ok(&root, &["plumbing", "hash-object", "-w", "orphan.txt"])?;
    age_objects(&root)?;
    let report = json(&root, &["gc", "--prune=now"])?;
    assert_eq!(report["objects_removed"], 1, "{report}");
    // A stash.json gc cannot read stops it, naming the file.
    fs::write(root.join(".muse/stash.json"), b"{not json")?;
    let (code, _, err) = muse(&root, &["gc", "--prune=now"])?;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("stash.json"), "{err}");
    Ok(())
}

#[test]
fn files_gc_does_not_know_keep_every_id_they_name() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    let kept = |id: &str| root.join(".muse/objects").join(&id[..2]).join(&id[2..]);
    fs::write(root.join("a.txt"), b"named by bisect state")?;
    fs::write(root.join("b.txt"), b"named by a rerere resolution")?;
    fs::write(root.join("c.txt"), b"named by nothing")?;
    let a = json(&root, &["plumbing", "hash-object", "-w", "a.txt"])?["object_id"]
        .as_str()
        .ok_or("id")?
        .to_owned();
    let b = json(&root, &["plumbing", "hash-object", "-w", "b.txt"])?["object_id"]
        .as_str()
        .ok_or("id")?
        .to_owned();
    let c = json(&root, &["plumbing", "hash-object", "-w", "c.txt"])?["object_id"]
        .as_str()
        .ok_or("id")?
        .to_owned();
    fs::write(
        root.join(".muse/BISECT_STATE.toml"),
        format!("bad_id = \"{a}\"\ngood_ids = []\n"),
    )?;
    fs::create_dir_all(root.join(".muse/rr-cache/fp"))?;
    fs::write(root.join(".muse/rr-cache/fp/resolution"), &b)?;
    age_objects(&root)?;
    let report = json(&root, &["gc", "--prune=now"])?;
    assert_eq!(report["objects_removed"], 1, "only c goes: {report}");
    assert!(kept(&a).is_file() && kept(&b).is_file(), "{report}");
    assert!(!kept(&c).exists());
    fsck_healthy(&root, "with foreign files")?;
    Ok(())
}

#[test]
fn multi_line_reflog_entries_are_whole_healthy_and_gc_runs() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    fsck_healthy(&root, "the reference's five-line entry")?;
    ok(&root, &["gc", "--prune=now"])?;
    let repo = Repository::open(&root)?;
    let c2 = ObjectId::from_hex(C2)?;
    let record = repo.records().read_commit(&c2)?;
    for log in [
        repo.refs().head_reflog()?,
        repo.refs().reflog(&BranchName::new("main")?)?,
    ] {
        assert!(log.malformed.is_empty(), "{:?}", log.malformed);
        let entry = log
            .entries
            .iter()
            .find(|e| e.new == c2)
            .ok_or("the c2 entry")?;
        assert_eq!(
            entry.operation,
            format!("commit: {}", record.message),
            "the whole message reads back"
        );
        assert_eq!(entry.author, "Ann Example <ann@example.com>");
    }
    // A multi-line commit made here is logged on one line (its subject).
    let log_path = root.join(".muse/logs/HEAD");
    let lines_before = fs::read_to_string(&log_path)?.lines().count();
    fs::write(root.join("song.txt"), b"new verse\n")?;
    ok(
        &root,
        &["commit", "-m", "subject line\n\nbody one\nbody two"],
    )?;
    let text = fs::read_to_string(&log_path)?;
    assert_eq!(text.lines().count(), lines_before + 1, "one physical line");
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.ends_with("\tcommit: subject line")),
        "{text}"
    );
    fsck_healthy(&root, "after a commit here")?;
    Ok(())
}

#[test]
fn lock_like_and_nested_branch_names_are_listed_and_moved() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    // Laid out as the reference lays them out: plain files, nested dirs.
    let heads = root.join(".muse/refs/heads");
    for (name, id) in [
        ("x.lock", C1),
        ("x", C2),
        ("feat/x", C3),
        ("feat/y.lock", C1),
        ("a b", C2),
    ] {
        let path = heads.join(name);
        fs::create_dir_all(path.parent().ok_or("parent")?)?;
        fs::write(&path, id)?;
    }
    let refs = json(&root, &["plumbing", "show-ref"])?;
    let names: Vec<&str> = refs["refs"]
        .as_array()
        .ok_or("refs")?
        .iter()
        .filter_map(|r| r["ref"].as_str())
        .collect();
    for want in [
        "refs/heads/x.lock",
        "refs/heads/x",
        "refs/heads/feat/x",
        "refs/heads/feat/y.lock",
        "refs/heads/a b",
        "refs/heads/topic.lock",
    ] {
        assert!(names.contains(&want), "{want} listed: {names:?}");
    }
    let each = json(
        &root,
        &["plumbing", "for-each-ref", "-p", "refs/heads/feat/*"],
    )?;
    assert_eq!(each["count"], 2, "{each}");
    let listing = ok(&root, &["branch"])?;
    assert!(
        listing.contains("  x.lock\n") && listing.contains("  feat/y.lock\n"),
        "{listing}"
    );
    let parsed = json(&root, &["plumbing", "rev-parse", "feat/y.lock"])?;
    assert_eq!(parsed["commit_id"], C1);

    // Moving `x.lock` neither waits for nor blocks `x` (no shared lock).
    let start = Instant::now();
    let moved = json(&root, &["plumbing", "update-ref", "x.lock", C4])?;
    assert_eq!(moved["previous"], C1);
    ok(&root, &["plumbing", "update-ref", "x", C3])?;
    ok(
        &root,
        &[
            "plumbing",
            "update-ref",
            "feat/y.lock",
            C2,
            "--old-value",
            C1,
        ],
    )?;
    assert!(start.elapsed() < Duration::from_secs(5), "no lock wait");
    assert_eq!(fs::read_to_string(heads.join("x.lock"))?, C4);
    assert_eq!(fs::read_to_string(heads.join("x"))?, C3);

    // Checked out and committed on.
    ok(&root, &["checkout", "x.lock"])?;
    assert_eq!(
        fs::read_to_string(root.join(".muse/HEAD"))?,
        "ref: refs/heads/x.lock\n"
    );
    fs::write(root.join("song.txt"), b"on x.lock\n")?;
    ok(&root, &["commit", "-m", "work on x.lock"])?;
    let tip = fs::read_to_string(heads.join("x.lock"))?;
    assert_ne!(tip, C4, "the commit moved x.lock");
    assert_eq!(fs::read_to_string(heads.join("x"))?, C3, "x untouched");
    ok(&root, &["checkout", "a b"])?;
    ok(&root, &["checkout", "main"])?;
    let out = ok(&root, &["branch", "-d", "feat/y.lock"])?;
    assert!(out.contains("Deleted branch feat/y.lock"), "{out}");
    assert!(!heads.join("feat/y.lock").exists());
    let names = json(&root, &["plumbing", "name-rev", C3])?;
    assert!(names["results"][0]["name"].is_string(), "{names}");
    // Unsafe names stay refused, by every command.
    for bad in ["../x", "a/./b", "x/"] {
        let (code, _, _) = muse(&root, &["plumbing", "update-ref", bad, C1])?;
        assert_eq!(code, 1, "{bad}");
        let (code, _, _) = muse(&root, &["branch", "-d", bad])?;
        assert_eq!(code, 1, "{bad}");
    }
    fsck_healthy(&root, "after moving odd names")?;
    Ok(())
}

#[test]
fn tags_resolve_after_branches_and_say_what_they_shadow() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    assert_eq!(
        json(&root, &["plumbing", "rev-parse", "v1.0"])?["commit_id"],
        C1
    );
    assert_eq!(
        json(&root, &["plumbing", "rev-parse", "stage:rough-mix~1"])?["commit_id"],
        C2
    );
    // A branch of the same name wins, and the ambiguity is reported.
    ok(&root, &["plumbing", "update-ref", "v1.0", C3])?;
    let (code, out, err) = muse(&root, &["plumbing", "rev-parse", "v1.0"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(C3), "{out}");
    assert!(
        err.contains("tag 'v1.0'") && err.contains("branch 'v1.0'"),
        "{err}"
    );
    ok(&root, &["plumbing", "update-ref", "v1.0", "-d"])?;
    // One text on two commits is ambiguous.
    ok(&root, &["tag", "add", "twice", C1])?;
    ok(&root, &["tag", "twice", C4])?;
    let (code, out, _) = muse(&root, &["plumbing", "rev-parse", "twice"])?;
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["error"], "ambiguous", "{v}");
    assert_eq!(v["candidates"].as_array().map(Vec::len), Some(2), "{v}");
    // Listing, removing, git's habits.
    assert_eq!(ok(&root, &["tag", "-l"])?, "stage:rough-mix\ntwice\nv1.0\n");
    assert_eq!(ok(&root, &["tag", "-l", "t*"])?, "twice\n");
    let list = ok(&root, &["tag", "list", C1])?;
    assert_eq!(list, "e5b76f6c  twice\ne5b76f6c  v1.0\n");
    ok(&root, &["tag", "remove", "twice", C1])?;
    assert_eq!(
        json(&root, &["plumbing", "rev-parse", "twice"])?["commit_id"],
        C4
    );
    ok(&root, &["tag", "-d", "twice"])?;
    let (code, _, _) = muse(&root, &["plumbing", "rev-parse", "twice"])?;
    assert_eq!(code, 1, "deleted");
    // A record written here is the reference's format.
    ok(&root, &["tag", "add", "new"])?;
    let repo = Repository::open(&root)?;
    let tag = repo.tags()?.named("new")?.pop().ok_or("the new tag")?;
    let path = repo.tags()?.dir().join(format!("{}.json", tag.tag_id));
    let text = fs::read_to_string(&path)?;
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&text)?
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["tag_id", "repo_id", "commit_id", "tag", "created_at"]
    );
    assert!(
        text.starts_with("{\n  \"tag_id\": ") && text.ends_with("\n}\n"),
        "{text}"
    );
    fsck_healthy(&root, "with tags")?;
    Ok(())
}

#[test]
fn status_carries_upstream_renames_exclusions_and_git_warnings() -> TestResult {
    let (_tmp, root) = fixture("ref-history")?;
    let st = json(&root, &["status", "-f", "json"])?;
    let upstream = &st["upstream"];
    assert_eq!(upstream["remote"], "origin", "{st}");
    assert_eq!(upstream["branch"], "main");
    assert_eq!(upstream["commit_id"], C4);
    assert_eq!(
        (upstream["ahead"].clone(), upstream["behind"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(st["renamed"], serde_json::json!([]));

    fs::rename(root.join("README.md"), root.join("READ.md"))?;
    fs::write(root.join(".env"), b"SECRET=1\n")?;
    fs::create_dir_all(root.join("sub/build"))?;
    fs::write(root.join("sub/build/out.o"), b"o")?;
    std::os::unix::fs::symlink("song.txt", root.join("link"))?;
    let st = json(&root, &["status", "-f", "json"])?;
    assert_eq!(
        st["renamed"],
        serde_json::json!([{"from": "README.md", "to": "READ.md"}]),
        "{st}"
    );
    assert_eq!(st["excluded"]["builtin_total"], 3, "{st}");
    let (code, text, _) = muse(&root, &["status"])?;
    assert_eq!(code, 0);
    assert!(
        text.contains("3 paths left out by built-in rules"),
        "{text}"
    );
    assert!(text.contains("renamed   README.md -> READ.md"), "{text}");
    let verdict = json(
        &root,
        &[
            "plumbing",
            "check-ignore",
            ".env",
            "sub/build/out.o",
            "link",
        ],
    )?;
    let rules: Vec<&Value> = verdict["results"]
        .as_array()
        .ok_or("results")?
        .iter()
        .map(|r| &r["builtin_rule"])
        .collect();
    assert_eq!(rules, [".env", "build/", "symlink"], "{verdict}");

    // Warnings: once per pattern whose meaning is not git's, none for the
    // rest.
    fs::write(
        root.join(".museignore"),
        "[global]\npatterns = [\"logs/**\", \"/src/*.rs\", \"*.tmp\", \"logs/**\"]\n",
    )?;
    let (code, _, err) = muse(&root, &["status"])?;
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains("'logs/**'") && warnings[1].contains("'/src/*.rs'"),
        "{err}"
    );
    Ok(())
}

/// The attack of issue 10: a `.museignore` with thirty `**` and a 4 KiB
/// path. A backtracking matcher needs exponential time (twenty `**` took
/// 50 s); this one is linear (the step-count tests in `name::glob` and
/// `worktree::ignore` bound it), so status finishes at once. The bound
/// here is generous on purpose: it only separates "linear" from
/// "exponential".
#[test]
fn thirty_double_stars_and_a_4k_path_do_not_stall_status() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    ok(root, &["init"])?;
    // A relative path of about 4 KiB: 16 components of 245 characters.
    let component = "d".repeat(245);
    let deep: PathBuf = std::iter::repeat_n(component.as_str(), 16).collect();
    fs::create_dir_all(root.join(&deep))?;
    fs::write(root.join(&deep).join("end.txt"), b"deep")?;
    let rel_len = deep.to_string_lossy().len() + "/end.txt".len();
    assert!(rel_len >= 3900, "{rel_len}");
    let stars = vec!["**"; 30].join("/");
    let patterns = [
        format!("{stars}/x.txt"),
        format!("/{stars}/x.txt"),
        format!("/{}x", "*d".repeat(30)),
        format!("a{}b", "**".repeat(30)),
        format!("**/{stars}/"),
    ];
    let list: Vec<String> = patterns.iter().map(|p| format!("{p:?}")).collect();
    fs::write(
        root.join(".museignore"),
        format!("[global]\npatterns = [{}]\n", list.join(", ")),
    )?;
    let began = Instant::now();
    let st = json(root, &["status", "-f", "json"])?;
    let took = began.elapsed();
    assert!(took < Duration::from_secs(30), "status took {took:?}");
    let added: Vec<&str> = st["added"]
        .as_array()
        .ok_or("added")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        added.iter().any(|p| p.ends_with("/end.txt")),
        "no pattern matches the deep file: {added:?}"
    );
    Ok(())
}
