//! Hostile manifests (issue 10): snapshot records whose ids recompute
//! correctly but whose paths name repository metadata, escape the working
//! tree or cannot be a tree. Checkout (with and without --force),
//! commit-tree and fsck refuse them by name, and nothing outside the
//! allowed working-tree paths changes: not the working tree, not `.muse/`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use muse_store::{
    CommitRecord, Durability, NewCommit, ObjectId, SnapshotRecord, Timestamp, check_manifest,
};

use crate::support::muse;
use crate::{TestResult, repo};

/// Every file and directory under `root` with its bytes (symlinks by their
/// target), in order: a before/after fingerprint of the whole tree.
fn fingerprint(root: &Path) -> TestResult<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            // Lock files and the stat cache are bookkeeping every command
            // may touch; the stat cache is a hint and is checked elsewhere.
            if rel.starts_with(".muse/locks") || rel == ".muse/stat-cache" {
                continue;
            }
            if kind.is_symlink() {
                out.insert(
                    rel,
                    fs::read_link(&path)?.into_os_string().into_encoded_bytes(),
                );
            } else if kind.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(path);
            } else {
                out.insert(rel, fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

/// Plants a snapshot holding `paths` (each with a stored object) and a
/// commit on branch `evil` naming it, written as raw files: the way a
/// received repository would hold them. Returns the snapshot id.
fn plant(repo: &muse_store::Repository, paths: &[&str]) -> TestResult<ObjectId> {
    let (object, _) = repo
        .objects()
        .write(b"[core]\n\tfsmonitor = \"touch /tmp/pwned\"\n")?;
    let manifest: BTreeMap<String, ObjectId> =
        paths.iter().map(|p| ((*p).to_owned(), object)).collect();
    let snapshot = SnapshotRecord::new(manifest, Timestamp::now());
    fs::write(
        repo.layout().snapshot_path(&snapshot.snapshot_id),
        snapshot.to_json()?,
    )?;
    let commit = CommitRecord::new(
        repo.info()?.repo_id.clone(),
        "evil",
        snapshot.snapshot_id,
        &[],
        "evil",
        "mallory",
        Timestamp::now(),
    );
    fs::write(
        repo.layout().commit_path(&commit.commit_id),
        commit.to_json()?,
    )?;
    fs::write(
        repo.layout().muse_dir().join("refs/heads/evil"),
        commit.commit_id.to_hex(),
    )?;
    Ok(snapshot.snapshot_id)
}

const HOSTILE: &[&[&str]] = &[
    &[".muse/HEAD"],
    &[".muse/refs/heads/main"],
    &[".muse/config.toml"],
    &[".muse/objects/ab/cd"],
    &["x/.muse/refs/heads/main"],
    &[".git/config"],
    &[".GIT/config"],
    &[".Git/hooks/post-checkout"],
    &[".git./config"],
    &[".git /config"],
    &["git~1/config"],
    &["GIT~1/config"],
    &[".MUSE~1/HEAD", "MUSE~1/HEAD"],
    &[".git::$INDEX_ALLOCATION/config"],
    &[".g\u{200c}it/config"],
    &["d//e"],
    &["d/./e"],
    &["g/"],
    &["a\\b"],
    &["tab\there"],
    &["new\nline"],
    &["../outside"],
    &["/abs"],
    &["a.txt", "d", "d/f"],
];

#[test]
fn hostile_manifests_are_refused_everywhere_and_change_nothing() -> TestResult {
    let mut tried = 0;
    for paths in HOSTILE {
        let (dir, repo) = repo(Durability::None)?;
        fs::write(dir.path().join("a.txt"), b"mine\n")?;
        repo.commit_files([("a.txt", "mine\n")], &NewCommit::new("base"))?;
        let snapshot = plant(&repo, paths)?;
        let refused = check_manifest(paths.iter().copied()).expect_err("the table is hostile");
        let before = fingerprint(dir.path())?;
        for args in [
            vec!["checkout", "evil"],
            vec!["checkout", "--force", "evil"],
            vec![
                "plumbing",
                "commit-tree",
                "-s",
                &snapshot.to_hex(),
                "-m",
                "again",
            ],
        ] {
            let (code, out, err) = muse(dir.path(), &args)?;
            assert_eq!(code, 3, "{paths:?} {args:?}: damage is exit 3\n{out}{err}");
            let shown = format!("{:?}", refused.path);
            assert!(
                out.contains(&shown) || err.contains(&shown) || err.contains(&refused.path),
                "{paths:?} {args:?}: the message names {shown}: {out}{err}"
            );
            assert_eq!(
                fingerprint(dir.path())?,
                before,
                "{paths:?} {args:?} changed files"
            );
            tried += 1;
        }
        let (code, out, err) = muse(dir.path(), &["fsck"])?;
        assert_ne!(code, 0, "{paths:?}: fsck must report the snapshot");
        assert!(
            out.contains(&snapshot.to_hex()) || err.contains(&snapshot.to_hex()),
            "{paths:?}: fsck names the snapshot: {out}{err}"
        );
        assert_eq!(
            fingerprint(dir.path())?,
            before,
            "{paths:?}: fsck changed files"
        );
    }
    eprintln!(
        "{} hostile manifests, {tried} refused commands",
        HOSTILE.len()
    );
    Ok(())
}

#[test]
fn a_crafted_commit_cannot_plant_git_config_or_move_main() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    repo.commit_files([("a.txt", "mine\n")], &NewCommit::new("base"))?;
    let main_ref = repo.layout().muse_dir().join("refs/heads/main");
    let main_log = repo.layout().muse_dir().join("logs/refs/heads/main");
    let (main_before, log_before) = (fs::read(&main_ref)?, fs::read(&main_log)?);
    plant(&repo, &[".git/config", ".muse/refs/heads/main", "ok.txt"])?;
    for force in [false, true] {
        let mut args = vec!["checkout"];
        if force {
            args.push("--force");
        }
        args.push("evil");
        let (code, out, err) = muse(dir.path(), &args)?;
        assert_eq!(code, 3, "{out}{err}");
        assert!(err.contains(".git/config"), "{err}");
    }
    assert!(!dir.path().join(".git").exists(), "no .git/ planted");
    assert!(!dir.path().join("ok.txt").exists(), "refused whole");
    assert_eq!(fs::read(&main_ref)?, main_before, "main unmoved");
    assert_eq!(fs::read(&main_log)?, log_before, "main's reflog unchanged");
    let (code, out, err) = muse(dir.path(), &["fsck"])?;
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains(".git/config"), "{out}{err}");
    Ok(())
}

#[test]
fn commit_apis_refuse_hostile_paths_as_user_errors() -> TestResult {
    let (_dir, repo) = repo(Durability::None)?;
    for path in [".git/config", "x/.MUSE/HEAD", "a\\b", "d//e"] {
        let err = repo
            .commit_files([(path, "x")], &NewCommit::new("no"))
            .expect_err(path);
        assert!(err.is_user_error(), "{path}: {err}");
        assert!(
            err.to_string().contains(&format!("{path:?}")),
            "{path}: {err}"
        );
    }
    assert_eq!(repo.refs().head_commit()?, None, "nothing was committed");
    Ok(())
}

/// A working tree on branch `main` holding `a.txt`, and a branch `theirs`
/// whose commit adds `paths` (as a received repository could): what the
/// obstacle tests check out.
fn with_theirs(paths: &[&str]) -> TestResult<(tempfile::TempDir, muse_store::Repository)> {
    let (dir, repo) = repo(Durability::None)?;
    fs::write(dir.path().join("a.txt"), b"mine\n")?;
    repo.commit_files([("a.txt", "mine\n")], &NewCommit::new("base"))?;
    let mut files: Vec<(&str, &str)> = vec![("a.txt", "theirs\n")];
    files.extend(paths.iter().map(|p| (*p, "planted\n")));
    let theirs = muse_store::BranchName::new("theirs")?;
    repo.refs().create_branch_at_head(&theirs)?;
    repo.commit_files(
        files,
        &NewCommit {
            branch: Some(theirs),
            ..NewCommit::new("theirs")
        },
    )?;
    Ok((dir, repo))
}

#[test]
fn checkout_never_writes_through_an_untracked_symlink_or_a_symlinked_parent() -> TestResult {
    let outside = tempfile::tempdir()?;
    fs::write(outside.path().join("f"), b"outside, must stay\n")?;
    let outside_before = fingerprint(outside.path())?;
    // An untracked symlink at a path to write (to a file outside), and a
    // symlinked directory among the parents of a path to write.
    for (paths, link, target) in [
        (&["f"][..], "f", outside.path().join("f")),
        (&["d/f"][..], "d", outside.path().to_path_buf()),
    ] {
        let (dir, _repo) = with_theirs(paths)?;
        std::os::unix::fs::symlink(&target, dir.path().join(link))?;
        let before = fingerprint(dir.path())?;
        for force in [false, true] {
            let args: Vec<&str> = if force {
                vec!["checkout", "--force", "theirs"]
            } else {
                vec!["checkout", "theirs"]
            };
            let (code, out, err) = muse(dir.path(), &args)?;
            assert_eq!(
                fingerprint(outside.path())?,
                outside_before,
                "{link} {args:?}: nothing outside the tree changed"
            );
            if force && link == "f" {
                // --force replaces the untracked symlink itself (never the
                // file it points to), as git does.
                assert_eq!(code, 0, "{out}{err}");
                assert!(!fs::symlink_metadata(dir.path().join("f"))?.is_symlink());
                continue;
            }
            assert_ne!(code, 0, "{link} {args:?}: refused\n{out}{err}");
            assert!(err.contains(link), "{link} {args:?}: names the path: {err}");
            assert_eq!(
                fingerprint(dir.path())?,
                before,
                "{link} {args:?}: refused before anything changed"
            );
        }
    }
    Ok(())
}

#[test]
fn a_crafted_checkout_journal_cannot_remove_or_write_outside_its_checkout() -> TestResult {
    let outside = tempfile::tempdir()?;
    fs::write(outside.path().join("victim"), b"must stay\n")?;
    let (dir, repo) = with_theirs(&["t.txt"])?;
    let head = repo.refs().head_commit()?.ok_or("a commit")?;
    let theirs = repo
        .refs()
        .branch(&muse_store::BranchName::new("theirs")?)?
        .ok_or("theirs")?;
    let victim = outside.path().join("victim");
    let dots = std::iter::repeat_n("..", dir.path().components().count())
        .collect::<Vec<_>>()
        .join("/");
    let escape = format!("{dots}{}/victim", outside.path().display());
    let journal = repo.layout().checkout_journal();
    for (to_write, to_remove) in [
        (vec![], vec![escape.clone()]),
        (vec![], vec![victim.to_string_lossy().into_owned()]),
        (vec![], vec![".muse/refs/heads/main".to_owned()]),
        (vec![], vec![".muse/HEAD".to_owned()]),
        // A path of HEAD's commit that the target keeps.
        (vec![], vec!["a.txt".to_owned()]),
        (vec![".git/config".to_owned()], vec![]),
        (vec!["../x".to_owned()], vec![]),
    ] {
        let planted = serde_json::json!({
            "target_commit": theirs.to_hex(),
            "target_branch": "theirs",
            "label": "theirs",
            "from": "main",
            "from_commit": head.to_hex(),
            "to_write": to_write,
            "to_remove": to_remove,
        });
        fs::write(&journal, serde_json::to_vec(&planted)?)?;
        let before = fingerprint(dir.path())?;
        let (code, out, err) = muse(dir.path(), &["status"])?;
        assert_eq!(code, 0, "{planted}: status still works\n{out}{err}");
        assert!(
            err.contains("could not be completed"),
            "{planted}: said on stderr: {err}"
        );
        let (code, _, err) = muse(dir.path(), &["checkout", "theirs"])?;
        assert_eq!(code, 3, "{planted}: a crafted journal is damage: {err}");
        assert!(err.contains("CHECKOUT_IN_PROGRESS.json"), "{err}");
        assert_eq!(fs::read(&victim)?, b"must stay\n", "{planted}");
        assert_eq!(
            fingerprint(dir.path())?,
            before,
            "{planted}: nothing changed"
        );
        let (code, out, _) = muse(dir.path(), &["fsck", "--format", "json"])?;
        assert!(
            out.contains("interrupted_checkout"),
            "{planted}: fsck shows it ({code}): {out}"
        );
    }
    Ok(())
}

#[test]
fn an_interrupted_checkout_whose_branch_moved_detaches_head_and_a_bad_journal_stops_nothing_forced()
-> TestResult {
    let (dir, repo) = with_theirs(&["t.txt"])?;
    let theirs_name = muse_store::BranchName::new("theirs")?;
    let from = repo.refs().head_commit()?.ok_or("a commit")?;
    let theirs = repo.refs().branch(&theirs_name)?.ok_or("theirs")?;
    // A checkout of `theirs` killed after the tree was switched, before
    // HEAD moved; meanwhile `theirs` moved on.
    let (code, out, err) = muse(dir.path(), &["checkout", "theirs"])?;
    assert_eq!(code, 0, "{out}{err}");
    repo.refs().set_head(
        &muse_store::Head::Branch(muse_store::BranchName::new("main")?),
        "rewind",
    )?;
    muse_store::CheckoutJournal {
        target_commit: theirs,
        target_branch: Some("theirs".into()),
        label: "theirs".into(),
        from: "main".into(),
        from_commit: Some(from),
        to_write: vec!["a.txt".into(), "t.txt".into()],
        to_remove: vec![],
    }
    .write(&repo)?;
    let later = repo
        .commit_files(
            [("a.txt", "later\n")],
            &NewCommit::new("later").branch(theirs_name.clone()),
        )?
        .commit
        .commit_id;
    let (code, out, err) = muse(dir.path(), &["status", "--format", "json"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("completed the checkout"), "{err}");
    assert_eq!(
        repo.refs().head()?,
        muse_store::Head::Detached(theirs),
        "HEAD names what the tree holds, not the moved branch"
    );
    assert_eq!(
        repo.refs().branch(&theirs_name)?,
        Some(later),
        "the move is kept"
    );
    assert!(out.contains("\"clean\": true"), "the tree is HEAD's: {out}");

    // A journal that does not parse: status still works, checkout refuses,
    // checkout --force discards it and checks out.
    fs::write(repo.layout().checkout_journal(), b"{not json")?;
    let (code, out, err) = muse(dir.path(), &["status"])?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = muse(dir.path(), &["checkout", "main"])?;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("CHECKOUT_IN_PROGRESS.json"), "{err}");
    let (code, out, err) = muse(dir.path(), &["checkout", "--force", "main"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!repo.layout().checkout_journal().exists(), "discarded");
    assert_eq!(fs::read(dir.path().join("a.txt"))?, b"mine\n");
    Ok(())
}

/// `base/work`, made by `muse init` with one commit of `a.txt`.
fn committed_work(base: &Path) -> TestResult<std::path::PathBuf> {
    let work = base.join("work");
    let (code, _, err) = muse(base, &["init", "work"])?;
    assert_eq!(code, 0, "{err}");
    fs::write(work.join("a.txt"), "one\n")?;
    let (code, _, err) = muse(&work, &["commit", "-m", "one"])?;
    assert_eq!(code, 0, "{err}");
    Ok(work)
}

/// A received repository whose `.muse/` holds a symlinked directory at any
/// depth (`logs/refs`, `refs/heads`, `objects`, `commits`, a remote's
/// tracking directory) never has the repository's own writes go
/// through it: commit and fetch fail naming the symlink, the directory it
/// points at is byte-identical afterwards, and fsck names it.
#[test]
fn a_symlinked_directory_inside_muse_is_never_written_through() -> TestResult {
    for inside in [
        "logs/refs",
        "logs/refs/heads",
        "refs/heads",
        "commits",
        "snapshots",
        "objects",
        "remotes/origin",
    ] {
        let base = tempfile::tempdir()?;
        let work = committed_work(base.path())?;
        let source = base.path().join("source");
        let (code, _, err) = muse(base.path(), &["clone", "work", "source"])?;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = muse(&work, &["remote", "add", "origin", "../source"])?;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = muse(&work, &["fetch"])?;
        assert_eq!(code, 0, "{err}");

        // Move the directory out and point a symlink at it.
        let planted = work.join(".muse").join(inside);
        let outside = base.path().join("outside");
        fs::rename(&planted, &outside)?;
        std::os::unix::fs::symlink(&outside, &planted)?;
        let before = fingerprint(&outside)?;

        fs::write(work.join("b.txt"), "two\n")?;
        fs::write(source.join("c.txt"), "three\n")?;
        let (code, _, err) = muse(&source, &["commit", "-m", "upstream"])?;
        assert_eq!(code, 0, "{err}");
        let mut refusals = 0;
        for args in [&["commit", "-m", "two"][..], &["fetch"][..]] {
            let (code, out, err) = muse(&work, args)?;
            if code != 0 {
                refusals += 1;
                assert_eq!(code, 3, "{inside}: muse {args:?}: {out}{err}");
                assert!(
                    err.contains("symlink") && err.contains(&planted.display().to_string()),
                    "{inside}: muse {args:?} names the symlink: {err}"
                );
            }
        }
        assert!(refusals > 0, "{inside}: neither commit nor fetch needed it");
        assert_eq!(
            fingerprint(&outside)?,
            before,
            "{inside}: nothing written through the symlink"
        );
        let (_, report, _) = muse(&work, &["fsck"])?;
        assert!(
            report.contains("\"ok\": false") && report.contains(&planted.display().to_string()),
            "{inside}: fsck names the symlink: {report}"
        );
    }
    Ok(())
}

/// A name below `.muse/` may hold a `.muse` component of its own (a branch
/// `x/.muse/main`, as the reference allows): the symlink check still runs
/// from the repository's own `.muse/`, so a symlinked `remotes/origin/x` or
/// `refs/heads/x` is refused, not written through into another
/// repository's `.muse/refs/heads/main`. A work tree that lives inside an
/// unrelated directory named `.muse` (reached through a symlink there) still
/// works.
#[test]
fn a_muse_component_inside_a_ref_name_does_not_hide_a_symlinked_directory() -> TestResult {
    let base = tempfile::tempdir()?;
    let ok = |dir: &Path, args: &[&str]| -> TestResult<String> {
        let (code, out, err) = muse(dir, args)?;
        assert_eq!(code, 0, "muse {args:?}: {out}{err}");
        Ok(out)
    };
    let src = base.path().join("src");
    ok(base.path(), &["init", "src"])?;
    fs::write(src.join("a.txt"), "one\n")?;
    ok(&src, &["commit", "-m", "one"])?;
    let tip = |dir: &Path| -> TestResult<String> {
        Ok(ok(dir, &["plumbing", "rev-parse", "main", "-f", "text"])?
            .trim()
            .to_owned())
    };
    let one = tip(&src)?;
    ok(
        &src,
        &["plumbing", "update-ref", "x/.muse/refs/heads/main", &one],
    )?;
    ok(base.path(), &["clone", "src", "work"])?;
    let work = base.path().join("work");

    // A victim repository, and the received one's remotes/origin/x pointing
    // at it: the fetch of x/.muse/refs/heads/main would write its main.
    let victim = base.path().join("victim");
    ok(base.path(), &["init", "victim"])?;
    fs::write(victim.join("v.txt"), "mine\n")?;
    ok(&victim, &["commit", "-m", "victim"])?;
    let before = fingerprint(&victim.join(".muse"))?;
    let planted = work.join(".muse/remotes/origin/x");
    fs::remove_dir_all(&planted)?;
    std::os::unix::fs::symlink(&victim, &planted)?;
    fs::write(src.join("a.txt"), "two\n")?;
    ok(&src, &["commit", "-m", "two"])?;
    let two = tip(&src)?;
    ok(
        &src,
        &["plumbing", "update-ref", "x/.muse/refs/heads/main", &two],
    )?;
    let (code, out, err) = muse(&work, &["fetch"])?;
    assert_eq!(
        code, 3,
        "fetch through a symlinked remotes/origin/x: {out}{err}"
    );
    assert!(
        err.contains("symlink") && err.contains(&planted.display().to_string()),
        "the fetch names the symlink: {err}"
    );
    assert_eq!(
        fingerprint(&victim.join(".muse"))?,
        before,
        "nothing written into the victim"
    );

    // The same for a branch of this repository.
    let heads = work.join(".muse/refs/heads/x");
    fs::remove_dir_all(&heads)?;
    std::os::unix::fs::symlink(&victim, &heads)?;
    let (code, out, err) = muse(
        &work,
        &["plumbing", "update-ref", "x/.muse/refs/heads/main", &two],
    )?;
    assert_ne!(
        code, 0,
        "update-ref through a symlinked refs/heads/x: {out}{err}"
    );
    assert_eq!(
        fingerprint(&victim.join(".muse"))?,
        before,
        "update-ref wrote into the victim"
    );

    // An outer directory named `.muse` is not a repository's: a work tree
    // inside it, reached through a symlink, commits as any other.
    let outer = base.path().join(".muse");
    fs::create_dir(&outer)?;
    ok(&outer, &["init", "real"])?;
    std::os::unix::fs::symlink(outer.join("real"), outer.join("link"))?;
    fs::write(outer.join("link/f.txt"), "f\n")?;
    ok(
        &outer.join("link"),
        &["commit", "-m", "inside an outer .muse"],
    )?;
    Ok(())
}

/// A symlinked object shard (`objects/ab` pointing elsewhere) is damage
/// fsck names, whether or not its objects are still reachable through it.
#[test]
fn fsck_names_a_symlinked_object_shard() -> TestResult {
    let base = tempfile::tempdir()?;
    let work = committed_work(base.path())?;
    let objects = work.join(".muse/objects");
    let shard = fs::read_dir(&objects)?.next().ok_or("no shard")??.path();
    let outside = base.path().join("outside");
    fs::rename(&shard, &outside)?;
    std::os::unix::fs::symlink(&outside, &shard)?;
    let (code, report, _) = muse(&work, &["fsck"])?;
    assert_eq!(code, 1, "fsck of a symlinked shard: {report}");
    assert!(
        report.contains(&shard.display().to_string()) && report.contains("symlink"),
        "fsck names the symlinked shard: {report}"
    );
    Ok(())
}
