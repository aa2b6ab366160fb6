//! `gc`: keeps everything reachable (refs, reflog, `MERGE_STATE`, recent
//! records) and objects written while it runs; removes old unreachable data
//! and old temp files.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use muse_store::{
    BranchName, Expected, GcOptions, MergeState, NoProgress, ObjectId, Repository, fsck, gc,
};

use crate::fsck::{age_file, loose_commit, scratch, two_commits};
use crate::{TestResult, muse};

const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

/// Makes every object and record of `repo` a month old.
fn age_everything(repo: &Repository) -> TestResult {
    let mut stack = vec![
        repo.layout().objects_dir(),
        repo.layout().commits_dir(),
        repo.layout().snapshots_dir(),
    ];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                age_file(&entry.path(), MONTH)?;
            }
        }
    }
    Ok(())
}

fn present(repo: &Repository, id: &ObjectId) -> bool {
    repo.objects().contains(id)
}

#[test]
fn gc_keeps_refs_reflog_and_merge_state_and_removes_old_unreachable() -> TestResult {
    let (dir, repo, first, second, second_objects) = two_commits()?;
    let main = BranchName::new("main")?;
    // `second` stays reachable only through main's reflog.
    repo.refs()
        .update(&main, first, Expected::Value(second), "reset: back")?;
    // `merged` only through MERGE_STATE.json.
    let (merged, merged_snap, merged_objects) =
        loose_commit(&repo, &[("m.txt", b"theirs\n")], &[first], "theirs")?;
    MergeState::new(Some(first), first, merged, vec!["m.txt".into()], None).write(&repo)?;
    // Garbage: a commit, its snapshot and object, and a bare object.
    let (junk, junk_snap, junk_objects) =
        loose_commit(&repo, &[("junk.txt", b"junk\n")], &[], "junk")?;
    let (bare, _) = repo.objects().write(b"bare unreachable object")?;
    age_everything(&repo)?;

    let report = gc(&repo, &GcOptions::default())?;
    assert_eq!(report.objects_removed, 2, "{report:?}");
    assert_eq!(report.commits_removed, 1, "{report:?}");
    assert_eq!(report.snapshots_removed, 1, "{report:?}");
    let removed: HashSet<ObjectId> = report.removed.iter().filter_map(|r| r.id).collect();
    let expected: HashSet<ObjectId> = [junk, junk_snap, junk_objects[0], bare].into();
    assert_eq!(removed, expected, "exactly the garbage");
    assert!(report.bytes_freed > 0, "{report:?}");
    assert!(!present(&repo, &bare) && !present(&repo, &junk_objects[0]));
    assert!(!repo.records().contains_commit(&junk));

    for id in [first, second, merged] {
        assert!(repo.records().contains_commit(&id), "commit {id} kept");
    }
    assert!(repo.records().contains_snapshot(&merged_snap));
    for id in second_objects.iter().chain(&merged_objects) {
        assert!(present(&repo, id), "object {id} kept");
    }
    let check = fsck(&repo, &NoProgress)?;
    assert!(check.is_healthy(), "fsck after gc: {check:?}");

    // The CLI reports the same (nothing left to remove) in JSON and text.
    let run = muse([
        "-C".as_ref(),
        dir.path().as_os_str(),
        "gc".as_ref(),
        "--prune=now".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    let json = run.json()?;
    assert_eq!(json["objects_removed"], 0, "{json}");
    assert_eq!(json["reachable_commits"], 3, "{json}");
    Ok(())
}

#[test]
fn gc_keeps_unreachable_data_younger_than_the_prune_age() -> TestResult {
    let (_dir, repo, _, _, _) = two_commits()?;
    age_everything(&repo)?;
    // Written "just now" by a writer that has not moved a ref yet.
    let (fresh, _) = repo.objects().write(b"fresh, about to be committed")?;
    let (commit, snap, objects) = loose_commit(&repo, &[("n.txt", b"new work\n")], &[], "new")?;
    let report = gc(&repo, &GcOptions::default())?;
    assert_eq!(report.objects_removed, 0, "{report:?}");
    assert!(present(&repo, &fresh) && present(&repo, &objects[0]));
    assert!(repo.records().contains_commit(&commit) && repo.records().contains_snapshot(&snap));
    // Only the bare object: the recent commit is walked as a root, so it,
    // its snapshot and its object are not even candidates.
    assert_eq!(report.kept_recent, 1, "{report:?}");
    Ok(())
}

#[test]
fn a_recent_commit_protects_the_old_data_it_names() -> TestResult {
    let (_dir, repo, _, _, _) = two_commits()?;
    let (_, old_snap, old_objects) = loose_commit(&repo, &[("o", b"old")], &[], "old")?;
    age_everything(&repo)?;
    // A writer makes a new commit of the old (unreachable) snapshot.
    let commit = muse_store::CommitRecord::new(
        repo.info()?.repo_id.clone(),
        "main",
        old_snap,
        &[],
        "re-commit",
        "tester",
        muse_store::Timestamp::now(),
    );
    repo.records().write_commit(&commit)?;
    let report = gc(
        &repo,
        &GcOptions {
            prune_age: Some(Duration::from_secs(3600)),
            dry_run: false,
        },
    )?;
    assert!(repo.records().contains_snapshot(&old_snap), "{report:?}");
    assert!(present(&repo, &old_objects[0]), "{report:?}");
    Ok(())
}

#[test]
fn rewriting_an_old_unreachable_object_refreshes_it() -> TestResult {
    let (_dir, repo, _, _, _) = two_commits()?;
    let (id, _) = repo.objects().write(b"re-used")?;
    age_everything(&repo)?;
    let (again, stored) = repo.objects().write(b"re-used")?;
    assert!(!stored && again == id, "idempotent");
    gc(&repo, &GcOptions::default())?;
    assert!(
        present(&repo, &id),
        "a writer that just re-used it keeps it"
    );
    Ok(())
}

#[test]
fn objects_written_while_gc_runs_survive_prune_now() -> TestResult {
    let (_dir, repo, _, _, _) = two_commits()?;
    // Enough old garbage that gc takes a while.
    let mut garbage = Vec::new();
    for i in 0..3000u32 {
        garbage.push(repo.objects().write(format!("garbage {i}").as_bytes())?.0);
    }
    age_everything(&repo)?;
    let barrier = Arc::new(Barrier::new(2));
    let writer_repo = repo.clone();
    let writer_barrier = barrier.clone();
    let writer = std::thread::spawn(move || -> muse_store::Result<Vec<ObjectId>> {
        writer_barrier.wait();
        let mut written = Vec::new();
        for i in 0..400u32 {
            written.push(
                writer_repo
                    .objects()
                    .write(format!("concurrent {i}").as_bytes())?
                    .0,
            );
        }
        Ok(written)
    });
    barrier.wait();
    let report = gc(
        &repo,
        &GcOptions {
            prune_age: Some(Duration::ZERO),
            dry_run: false,
        },
    )?;
    let written = writer.join().map_err(|_| "writer panicked")??;
    for id in &written {
        assert!(present(&repo, id), "object {id} written during gc survives");
        repo.objects().verify(id)?;
    }
    assert_eq!(report.objects_removed, 3000, "all old garbage went");
    assert!(garbage.iter().all(|id| !present(&repo, id)));
    Ok(())
}

#[test]
fn gc_removes_old_temp_files_and_keeps_fresh_ones() -> TestResult {
    let (_dir, repo, _, _, objects) = two_commits()?;
    let shard = repo.objects().path(&objects[0]);
    let shard = shard.parent().ok_or("no shard")?;
    let old = shard.join(".obj-tmp-old");
    let fresh = shard.join(".obj-tmp-fresh");
    fs::write(&old, b"crashed")?;
    fs::write(&fresh, b"being written")?;
    age_file(&old, Duration::from_secs(3600))?;
    let report = gc(&repo, &GcOptions::default())?;
    assert_eq!(report.temps_removed, 1, "{report:?}");
    assert!(!old.exists(), "old temp removed");
    assert!(fresh.exists(), "a live writer's temp is kept");
    Ok(())
}

#[test]
fn gc_refuses_when_a_ref_is_dangling() -> TestResult {
    let (_dir, repo, _, _, _) = two_commits()?;
    let (bare, _) = repo.objects().write(b"garbage")?;
    age_everything(&repo)?;
    fs::write(
        repo.layout().heads_dir().join("broken"),
        ObjectId::hash(b"gone").to_string(),
    )?;
    let err = gc(&repo, &GcOptions::default()).expect_err("must refuse");
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(present(&repo, &bare), "nothing removed");
    Ok(())
}

#[test]
fn dry_run_and_bad_prune_age() -> TestResult {
    let (dir, repo) = scratch()?;
    let (bare, _) = repo.objects().write(b"garbage")?;
    age_everything(&repo)?;
    let root: &Path = dir.path();
    let run = muse([
        "-C".as_ref(),
        root.as_os_str(),
        "gc".as_ref(),
        "-n".as_ref(),
        "-f".as_ref(),
        "text".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.stdout().contains("would remove 1 objects"),
        "{}",
        run.stdout()
    );
    assert!(present(&repo, &bare), "dry run removes nothing");
    let run = muse([
        "-C".as_ref(),
        root.as_os_str(),
        "gc".as_ref(),
        "-p".as_ref(),
        "soon".as_ref(),
    ]);
    assert_eq!(run.code, 1, "bad age is a user error");
    assert!(run.err.contains("soon"), "{}", run.err);
    Ok(())
}
