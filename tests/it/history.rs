//! History: commit, status, log, checkout and the history plumbing, on
//! fresh repositories and on a copy of the Muse-written fixture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::porcelain::{self, commit_manifest};
use muse_store::{BranchName, Durability, Error, Head, ObjectId, Options, Repository};

use crate::support::{fixture, leftovers, muse, muse_env};
use crate::{Damage, TestResult, damage_object};

fn scratch() -> TestResult<(tempfile::TempDir, Repository)> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init_with(
        dir.path(),
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )?;
    Ok((dir, repo))
}

fn write(root: &Path, rel: &str, bytes: &[u8]) -> TestResult {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Every regular file below `root` (outside `.muse/`) with its bytes.
fn tree(root: &Path) -> TestResult<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
            if rel == ".muse" {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                out.insert(rel, std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

#[test]
fn commit_modify_commit_checkout_restores_the_first_tree_exactly() -> TestResult {
    let (dir, repo) = scratch()?;
    let root = dir.path();
    write(root, "README.md", b"hello\n")?;
    write(root, "src/main.rs", b"fn main() {}\n")?;
    write(root, "dir with space/caf\u{e9} \u{266b}.txt", b"unicode\n")?;
    write(root, "a/b/c/d/deep.bin", &[0, 1, 2, 255])?;
    let first_tree = tree(root)?;
    let first = porcelain::commit(&repo, "first", Some("tester"))?;
    assert_eq!(first.parent, None);

    write(root, "README.md", b"hello, changed\n")?;
    write(root, "added later.txt", b"new\n")?;
    write(root, "a/b/new/nested.txt", b"nested\n")?;
    std::fs::remove_file(root.join("src/main.rs"))?;
    let second = porcelain::commit(&repo, "second", None)?;
    assert_eq!(second.parent, Some(first.commit.commit_id));

    // Backdate everything so a fresh mtime is visible.
    let old = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    for rel in tree(root)?.keys() {
        std::fs::File::options()
            .write(true)
            .open(root.join(rel))?
            .set_modified(old)?;
    }
    let before = SystemTime::now() - Duration::from_secs(5);
    porcelain::checkout(&repo, &Head::Detached(first.commit.commit_id), false)?;
    let restored = tree(root)?;
    assert_eq!(
        restored, first_tree,
        "every file byte for byte, and nothing else"
    );
    assert!(
        !root.join("added later.txt").exists(),
        "a file added later is removed"
    );
    assert!(
        !root.join("a/b/new").exists(),
        "a directory left empty is removed"
    );
    for rel in ["README.md", "src/main.rs"] {
        let mtime = std::fs::metadata(root.join(rel))?.modified()?;
        assert!(mtime >= before, "{rel} restored with a fresh mtime");
    }
    assert_eq!(repo.refs().head()?, Head::Detached(first.commit.commit_id));
    let st = porcelain::status(&repo)?;
    assert!(
        st.changes.is_empty(),
        "clean after checkout: {:?}",
        st.changes
    );

    porcelain::checkout(&repo, &Head::Branch(BranchName::new("main")?), false)?;
    assert_eq!(
        tree(root)?.get("added later.txt").map(Vec::as_slice),
        Some(&b"new\n"[..])
    );
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
    Ok(())
}

#[test]
fn status_reports_added_modified_deleted() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "keep.txt", b"k")?;
    write(dir.path(), "change.txt", b"1")?;
    write(dir.path(), "drop.txt", b"d")?;
    porcelain::commit(&repo, "base", None)?;
    write(dir.path(), "change.txt", b"2")?;
    std::fs::remove_file(dir.path().join("drop.txt"))?;
    write(dir.path(), "new.txt", b"n")?;
    let st = porcelain::status(&repo)?;
    assert_eq!(st.changes.added, ["new.txt"]);
    assert_eq!(st.changes.modified, ["change.txt"]);
    assert_eq!(st.changes.deleted, ["drop.txt"]);
    let err = porcelain::commit(&repo, "  ", None).expect_err("empty message");
    assert!(err.to_string().contains("message"), "{err}");
    porcelain::commit(&repo, "all", None)?;
    let err = porcelain::commit(&repo, "again", None).expect_err("nothing changed");
    assert!(err.to_string().contains("nothing to commit"), "{err}");
    Ok(())
}

#[test]
fn checkout_refuses_to_overwrite_an_uncommitted_change() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "f.txt", b"one")?;
    let first = porcelain::commit(&repo, "one", None)?;
    write(dir.path(), "f.txt", b"two")?;
    porcelain::commit(&repo, "two", None)?;
    write(dir.path(), "f.txt", b"local edit")?;
    let err = porcelain::checkout(&repo, &Head::Detached(first.commit.commit_id), false)
        .expect_err("local edit would be lost");
    assert!(
        err.to_string().contains("f.txt") && err.to_string().contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("f.txt"))?,
        b"local edit",
        "untouched"
    );
    assert_eq!(
        repo.refs().head()?,
        Head::Branch(BranchName::new("main")?),
        "HEAD unmoved"
    );
    // An untracked file in the way counts too.
    let (dir2, repo2) = scratch()?;
    write(dir2.path(), "a.txt", b"a")?;
    let base = porcelain::commit(&repo2, "a", None)?;
    write(dir2.path(), "b.txt", b"tracked b")?;
    let with_b = porcelain::commit(&repo2, "b", None)?;
    porcelain::checkout(&repo2, &Head::Detached(base.commit.commit_id), false)?;
    write(dir2.path(), "b.txt", b"untracked b")?;
    let err = porcelain::checkout(&repo2, &Head::Detached(with_b.commit.commit_id), false)
        .expect_err("untracked file in the way");
    assert!(err.to_string().contains("b.txt"), "{err}");
    porcelain::checkout(&repo2, &Head::Detached(with_b.commit.commit_id), true)?;
    assert_eq!(
        std::fs::read(dir2.path().join("b.txt"))?,
        b"tracked b",
        "--force wins"
    );
    Ok(())
}

#[test]
fn an_untracked_file_inside_a_directory_that_becomes_a_file_stops_checkout_first() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "a.txt", b"a1")?;
    write(dir.path(), "d", b"d is a file")?;
    let file_d = porcelain::commit(&repo, "d file", None)?;
    std::fs::remove_file(dir.path().join("d"))?;
    write(dir.path(), "a.txt", b"a2")?;
    write(dir.path(), "d/f", b"tracked f")?;
    write(dir.path(), "d/sub/g", b"tracked g")?;
    porcelain::commit(&repo, "d dir", None)?;
    // Untracked, deep inside the directory that must become a file.
    write(dir.path(), "d/sub/notes.txt", b"mine")?;
    let before = tree(dir.path())?;
    let head = repo.refs().head()?;
    let err = porcelain::checkout(&repo, &Head::Detached(file_d.commit.commit_id), false)
        .expect_err("the untracked file keeps d from being emptied");
    assert!(err.to_string().contains("d/sub/notes.txt"), "{err}");
    assert_eq!(
        tree(dir.path())?,
        before,
        "nothing changed (a.txt not rewritten)"
    );
    assert_eq!(repo.refs().head()?, head, "HEAD unmoved");
    // An empty untracked directory keeps `d` from being emptied too (pruning
    // never reaches it): refused, naming it.
    std::fs::remove_file(dir.path().join("d/sub/notes.txt"))?;
    std::fs::create_dir_all(dir.path().join("d/sub/empty/deeper"))?;
    let before = tree(dir.path())?;
    let err = porcelain::checkout(&repo, &Head::Detached(file_d.commit.commit_id), false)
        .expect_err("the empty directory keeps d from being emptied");
    assert!(err.to_string().contains("d/sub/empty"), "{err}");
    assert_eq!(tree(dir.path())?, before, "nothing changed");
    assert_eq!(repo.refs().head()?, head, "HEAD unmoved");
    // Once it is gone, the same checkout goes through.
    std::fs::remove_dir_all(dir.path().join("d/sub/empty"))?;
    porcelain::checkout(&repo, &Head::Detached(file_d.commit.commit_id), false)?;
    assert_eq!(std::fs::read(dir.path().join("d"))?, b"d is a file");
    assert_eq!(std::fs::read(dir.path().join("a.txt"))?, b"a1");
    Ok(())
}

#[test]
fn corrupt_object_stops_checkout_before_any_file_changes() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "a.txt", b"version a1")?;
    write(dir.path(), "b.txt", b"version b1")?;
    let first = porcelain::commit(&repo, "one", None)?;
    write(dir.path(), "a.txt", b"version a2")?;
    write(dir.path(), "b.txt", b"version b2")?;
    porcelain::commit(&repo, "two", None)?;
    let before = tree(dir.path())?;
    let damaged = ObjectId::hash(b"version b1");
    damage_object(&repo, &damaged, Damage::FlippedBit)?;
    let err = porcelain::checkout(&repo, &Head::Detached(first.commit.commit_id), false)
        .expect_err("damaged object");
    assert!(err.to_string().contains("integrity check"), "{err}");
    assert!(
        err.to_string().contains(&damaged.to_string()),
        "names the object: {err}"
    );
    assert_eq!(
        tree(dir.path())?,
        before,
        "no file of the working tree changed"
    );
    assert_eq!(
        repo.refs().head()?,
        Head::Branch(BranchName::new("main")?),
        "HEAD unmoved"
    );
    Ok(())
}

#[cfg(unix)]
#[test]
fn symlinks_are_not_followed_or_committed() -> TestResult {
    let (dir, repo) = scratch()?;
    let outside = tempfile::tempdir()?;
    write(outside.path(), "secret.txt", b"outside")?;
    write(dir.path(), "real.txt", b"real")?;
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )?;
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir"))?;
    let c = porcelain::commit(&repo, "with links", None)?;
    let manifest = commit_manifest(&repo, Some(c.commit.commit_id))?;
    assert_eq!(
        manifest.keys().collect::<Vec<_>>(),
        ["real.txt"],
        "symlinks skipped"
    );
    Ok(())
}

/// A `muse commit` stopped at a barrier just before its compare-and-swap
/// while another writer moves the branch: the commit is refused as a
/// conflict (exit 1) and the other update stays.
#[test]
fn a_commit_whose_branch_moved_meanwhile_is_a_conflict_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    muse(root, &["init"])?;
    write(root, "base.txt", b"base")?;
    let (code, _, err) = muse(root, &["commit", "-m", "base"])?;
    assert_eq!(code, 0, "{err}");
    let repo = Repository::open(root)?;
    let base = repo.refs().head_commit()?.ok_or("no base")?;
    // The other writer's commit: a new tree on top of base, made through the
    // library (it does not need the working tree).
    let other = repo
        .commit_files(
            [("other.txt", "other")],
            &muse_store::NewCommit::new("other").allow_empty(),
        )
        .map(|c| c.commit.commit_id);
    // Undo the branch move so that the CLI commit starts from base again.
    let other = other?;
    repo.refs().update(
        &BranchName::new("main")?,
        base,
        muse_store::Expected::Value(other),
        "reset",
    )?;
    write(root, "mine.txt", b"mine")?;
    let barrier = tempfile::tempdir()?;
    let spec = format!("commit-before-cas:{}:2", barrier.path().display());
    let child = {
        let (root, spec) = (root.to_path_buf(), spec.clone());
        std::thread::spawn(move || {
            muse_env(
                &root,
                &["commit", "-m", "mine"],
                &[("MUSE_TEST_BARRIER", &spec)],
                None,
            )
            .map_err(|e| e.to_string())
        })
    };
    // Wait for the commit to reach the barrier, move the branch, then let it go.
    for _ in 0..3000 {
        if std::fs::read_dir(barrier.path())?.count() >= 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_dir(barrier.path())?.count(),
        1,
        "the commit reached the barrier"
    );
    repo.refs().update(
        &BranchName::new("main")?,
        other,
        muse_store::Expected::Value(base),
        "meanwhile",
    )?;
    std::fs::write(barrier.path().join("release"), b"")?;
    let (code, _, err) = child.join().map_err(|_| "commit thread panicked")??;
    assert_eq!(code, 1, "a conflict is a user error: {err}");
    assert!(err.contains("conflict") && err.contains("main"), "{err}");
    assert_eq!(
        repo.refs().head_commit()?,
        Some(other),
        "the other update stays"
    );
    // The loser can retry on top of the winner.
    let (code, _, err) = muse(root, &["commit", "-m", "retry"])?;
    assert_eq!(code, 0, "{err}");
    let tip = repo.refs().head_commit()?.ok_or("no tip")?;
    assert_eq!(
        repo.records().read_commit(&tip)?.parent_commit_id,
        Some(other)
    );
    Ok(())
}

/// Two `muse commit` processes at once are serialised by the working-tree
/// lock: the first commits, the second finds the same tree already
/// committed ("nothing to commit"), and neither is lost or doubled.
#[test]
fn two_processes_committing_the_same_tree_at_once_commit_it_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    muse(root, &["init"])?;
    write(root, "base.txt", b"base")?;
    assert_eq!(muse(root, &["commit", "-m", "base"])?.0, 0);
    write(root, "both.txt", b"same tree for both")?;
    let run = |msg: &'static str| {
        let root = root.to_path_buf();
        std::thread::spawn(move || muse(&root, &["commit", "-m", msg]).map_err(|e| e.to_string()))
    };
    let (a, b) = (run("from A"), run("from B"));
    let results = [
        a.join().map_err(|_| "A panicked")??,
        b.join().map_err(|_| "B panicked")??,
    ];
    assert_eq!(
        results.iter().filter(|r| r.0 == 0).count(),
        1,
        "{results:?}"
    );
    let other = results.iter().find(|r| r.0 != 0).ok_or("no second")?;
    assert_eq!(other.0, 1, "{other:?}");
    assert!(other.2.contains("nothing to commit"), "{}", other.2);
    let repo = Repository::open(root)?;
    assert_eq!(
        repo.refs().reflog(&BranchName::new("main")?)?.entries.len(),
        2,
        "base and one commit"
    );
    Ok(())
}

fn ids(commits: &[&str]) -> Vec<ObjectId> {
    commits
        .iter()
        .map(|c| ObjectId::from_hex(c).expect("fixture ids are valid"))
        .collect()
}

const FIXTURE_COMMITS: [&str; 3] = [
    "43b79123ddbd7b6f7483ff12982ea04f6d88bfafba7b031e4631415568a680ae",
    "07ffd2ae399a014c9fdd4b04a0f48d2a1a8ab362bef18ac5e9eba3051d725798",
    "4a3002d6a8d310fdd03473b7a97775e25d955fba4f0ea0cab8cb185ec698002e",
];

#[test]
fn muse_written_fixture_log_status_records_objects_and_checkouts() -> TestResult {
    let (_tmp, root) = fixture("muse-merge-conflict")?;
    let (code, out, err) = muse(&root, &["log", "--oneline"])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "4a3002d6a8d3 main work\n43b79123ddbd initial import\n");
    let (code, out, _) = muse(&root, &["status"])?;
    assert_eq!(code, 0);
    assert!(
        out.contains("middle of a merge with feat/x") && out.contains("song.txt"),
        "{out}"
    );
    let (code, out, _) = muse(&root, &["status", "-f", "json"])?;
    assert_eq!(code, 0);
    let st: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(st["merge_in_progress"], true);

    let (code, out, _) = muse(&root, &["plumbing", "read-commit", FIXTURE_COMMITS[1]])?;
    assert_eq!(code, 0);
    let c: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(c["message"], "feature work");
    assert_eq!(c["parent_commit_id"], FIXTURE_COMMITS[0]);
    assert_eq!(
        c["structured_delta"]["ops"][0]["address"], "feature.txt",
        "unknown fields kept"
    );
    // ls-files takes full ids only, as the reference's.
    let main_tip = FIXTURE_COMMITS[2];
    let (code, out, _) = muse(&root, &["plumbing", "ls-files", "-c", main_tip])?;
    assert_eq!(code, 0);
    let ls: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(ls["file_count"], 5);

    let objects: Vec<String> = Repository::open(&root)?
        .objects()
        .iter()
        .map(|r| r.map(|id| id.to_string()))
        .collect::<Result<_, _>>()?;
    assert_eq!(objects.len(), 9);
    let mut args = vec!["plumbing", "verify-object"];
    args.extend(objects.iter().map(String::as_str));
    let (code, out, _) = muse(&root, &args)?;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(
        (v["all_ok"].clone(), v["checked"].clone()),
        (true.into(), 9.into())
    );

    // Checkout of each commit reproduces its manifest exactly.
    for commit in ids(&FIXTURE_COMMITS) {
        let (code, _, err) = muse(&root, &["checkout", "--force", &commit.to_string()])?;
        assert_eq!(code, 0, "{commit}: {err}");
        let repo = Repository::open(&root)?;
        let manifest = commit_manifest(&repo, Some(commit))?;
        let files = tree(&root)?;
        let got: BTreeMap<String, ObjectId> = files
            .iter()
            .map(|(p, b)| (p.clone(), ObjectId::hash(b)))
            .collect();
        let expected: BTreeMap<String, ObjectId> = manifest;
        assert_eq!(got, expected, "working tree of {commit}");
    }
    Ok(())
}

#[test]
fn history_plumbing_on_a_small_graph() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root: PathBuf = dir.path().to_path_buf();
    muse(&root, &["init"])?;
    write(&root, "f", b"1")?;
    muse(&root, &["commit", "-m", "one"])?;
    muse(&root, &["branch", "side"])?;
    write(&root, "f", b"2")?;
    muse(&root, &["commit", "-m", "two"])?;
    let (code, _, err) = muse(&root, &["checkout", "side"])?;
    assert_eq!(code, 0, "{err}");
    write(&root, "g", b"side")?;
    muse(&root, &["commit", "-m", "side work"])?;
    let repo = Repository::open(&root)?;
    let refs = repo.refs();
    let main = refs.branch(&BranchName::new("main")?)?.ok_or("main")?;
    let side = refs.branch(&BranchName::new("side")?)?.ok_or("side")?;
    let one = repo
        .records()
        .read_commit(&main)?
        .parent_commit_id
        .ok_or("one")?;

    let (_, out, _) = muse(&root, &["plumbing", "merge-base", "main", "side"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["merge_base"], one.to_string());
    // commit-graph takes full ids only, as the reference's.
    let (_, out, _) = muse(
        &root,
        &["plumbing", "commit-graph", "--tip", &main.to_string()],
    )?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["count"], 2);
    assert_eq!(v["commits"][0]["message"], "two");
    let (_, out, _) = muse(&root, &["plumbing", "name-rev", &one.to_string()])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["results"][0]["distance"], 1);
    let (_, out, _) = muse(&root, &["plumbing", "snapshot-diff", "main", "side"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["added"][0]["path"], "g");
    assert_eq!(v["modified"][0]["path"], "f");
    assert_eq!(v["total_changes"], 2);
    let prefix = &side.to_string()[..8];
    let (code, out, _) = muse(&root, &["plumbing", "rev-parse", prefix, "-f", "text"])?;
    assert_eq!(
        (code, out.trim()),
        (0, side.to_string().as_str()),
        "unique prefix resolves"
    );
    let snapshot = repo.records().read_commit(&side)?.snapshot_id;
    let (code, out, err) = muse(
        &root,
        &[
            "plumbing",
            "commit-tree",
            "-s",
            &snapshot.to_string(),
            "-p",
            &main.to_string(),
            "-p",
            &side.to_string(),
            "-m",
            "merge",
        ],
    )?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let merge = ObjectId::from_hex(v["commit_id"].as_str().ok_or("id")?)?;
    let record = repo.records().read_commit(&merge)?;
    assert_eq!(record.parents(), vec![main, side]);
    assert_eq!(
        refs.branch(&BranchName::new("main")?)?,
        Some(main),
        "commit-tree moves no ref"
    );
    let (_, out, _) = muse(&root, &["plumbing", "for-each-ref"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["refs"][0]["message"], "two", "commit fields filled in");
    // A record edited on disk is refused.
    let path = repo.layout().commit_path(&main);
    let text = std::fs::read_to_string(&path)?.replace("\"two\"", "\"forged\"");
    crate::make_writable(&path)?;
    std::fs::write(&path, text)?;
    let (code, _, err) = muse(&root, &["plumbing", "read-commit", &main.to_string()])?;
    assert_eq!(code, 3, "a corrupt record is an internal error: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    assert!(matches!(
        repo.records().read_commit(&main),
        Err(Error::RecordIntegrity { .. })
    ));
    Ok(())
}

#[test]
fn checkout_carries_an_uncommitted_edit_the_target_does_not_touch() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "f.txt", b"a")?;
    write(dir.path(), "g.txt", b"g1")?;
    porcelain::commit(&repo, "base", None)?;
    let refs = repo.refs();
    refs.update(
        &BranchName::new("other")?,
        refs.head_commit()?.ok_or("head")?,
        muse_store::Expected::Absent,
        "b",
    )?;
    write(dir.path(), "g.txt", b"g2")?;
    porcelain::commit(&repo, "main moves g", None)?;
    write(dir.path(), "f.txt", b"LOCAL WORK")?;
    porcelain::checkout(&repo, &Head::Branch(BranchName::new("other")?), false)?;
    assert_eq!(
        std::fs::read(dir.path().join("f.txt"))?,
        b"LOCAL WORK",
        "the edit is carried over"
    );
    assert_eq!(
        std::fs::read(dir.path().join("g.txt"))?,
        b"g1",
        "the target's change is applied"
    );
    porcelain::checkout(&repo, &Head::Branch(BranchName::new("main")?), true)?;
    assert_eq!(
        std::fs::read(dir.path().join("f.txt"))?,
        b"a",
        "--force makes the target win"
    );
    Ok(())
}

#[test]
fn checkout_turns_a_file_into_a_directory_and_back() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "a", b"file a")?;
    let as_file = porcelain::commit(&repo, "a is a file", None)?;
    std::fs::remove_file(dir.path().join("a"))?;
    write(dir.path(), "a/b", b"inside a")?;
    let as_dir = porcelain::commit(&repo, "a is a directory", None)?;
    porcelain::checkout(&repo, &Head::Detached(as_file.commit.commit_id), false)?;
    assert_eq!(std::fs::read(dir.path().join("a"))?, b"file a");
    porcelain::checkout(&repo, &Head::Detached(as_dir.commit.commit_id), false)?;
    assert_eq!(std::fs::read(dir.path().join("a/b"))?, b"inside a");
    // A damaged object still stops such a checkout before any change.
    damage_object(&repo, &ObjectId::hash(b"file a"), Damage::Zeroed)?;
    let before = tree(dir.path())?;
    let err = porcelain::checkout(&repo, &Head::Detached(as_file.commit.commit_id), false)
        .expect_err("damaged object");
    assert!(err.to_string().contains("integrity check"), "{err}");
    assert_eq!(tree(dir.path())?, before, "nothing changed");
    Ok(())
}

#[test]
fn failed_checkout_leaves_no_new_directory_behind() -> TestResult {
    let (dir, repo) = scratch()?;
    write(dir.path(), "top.txt", b"top")?;
    let first = porcelain::commit(&repo, "one", None)?;
    write(dir.path(), "new/deep/file.txt", b"deep")?;
    let second = porcelain::commit(&repo, "two", None)?;
    porcelain::checkout(&repo, &Head::Detached(first.commit.commit_id), false)?;
    assert!(!dir.path().join("new").exists());
    damage_object(&repo, &ObjectId::hash(b"deep"), Damage::FlippedBit)?;
    porcelain::checkout(&repo, &Head::Detached(second.commit.commit_id), false)
        .expect_err("damaged object");
    assert!(
        !dir.path().join("new").exists(),
        "directories made for the failed checkout are gone"
    );
    Ok(())
}
