//! Recovery on open: old temp files and dead owners' locks go, fresh temp
//! files and live locks stay, and a clean open makes no mutating call.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use muse_store::testing::FaultFs;
use muse_store::{Durability, Options, Repository};

use crate::TestResult;
use crate::fsck::{age_file, dead_pid, plant_lock, two_commits};
use crate::support::fixture;

fn fault_options(fs: &FaultFs) -> Options {
    Options {
        durability: Durability::Full,
        vfs: Arc::new(fs.clone()),
        ..Options::default()
    }
}

#[test]
fn open_removes_old_temp_files_and_keeps_fresh_ones() -> TestResult {
    let (dir, repo, _, _, objects) = two_commits()?;
    let shard = repo.objects().path(&objects[0]);
    let shard = shard.parent().ok_or("no shard")?;
    let layout = repo.layout();
    fs::create_dir_all(layout.op_log_dir().join("s1"))?;
    let old = [
        shard.join(".obj-tmp-old"),
        layout.muse_dir().join(".muse-tmp-old"),
        layout.heads_dir().join(".muse-tmp-old"),
        layout.commits_dir().join(".muse-tmp-old"),
        layout.op_log_dir().join("s1").join(".muse-tmp-old"),
    ];
    let fresh = [
        shard.join(".obj-tmp-fresh"),
        layout.muse_dir().join(".muse-tmp-fresh"),
    ];
    for p in old.iter().chain(&fresh) {
        fs::write(p, b"partial")?;
    }
    for p in &old {
        // Older than the 15-minute default grace.
        age_file(p, Duration::from_secs(16 * 60))?;
    }
    let reopened = Repository::open(dir.path())?;
    for p in &old[1..] {
        assert!(!p.exists(), "old temp {} removed on open", p.display());
    }
    // Open lists one random shard; explicit recovery lists all of them.
    reopened.recover()?;
    assert!(!old[0].exists(), "old object temp removed by recover()");
    for p in &fresh {
        assert!(
            p.exists(),
            "fresh temp {} kept (a live writer's)",
            p.display()
        );
    }
    // A shorter grace from Options takes the fresh ones too.
    let report = Repository::open_without_recovery(
        dir.path(),
        Options {
            temp_grace: Duration::ZERO,
            ..Options::default()
        },
    )?
    .recover()?;
    assert_eq!(report.temps.len(), 2, "{report:?}");
    drop(reopened);
    Ok(())
}

#[test]
fn open_recovers_dead_owners_locks_only() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    let dead = repo.layout().heads_dir().join("main.lock");
    let live = repo.layout().muse_dir().join("config.toml.lock");
    plant_lock(&dead, dead_pid()?)?;
    plant_lock(&live, std::process::id())?;
    let fs_rec = FaultFs::new();
    Repository::open_with(dir.path(), fault_options(&fs_rec))?;
    assert!(!dead.exists(), "dead owner's lock recovered");
    assert!(live.exists(), "live owner's lock kept");
    fs::remove_file(&live)?;
    Ok(())
}

#[test]
fn clean_open_makes_no_mutating_call() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    // Leftovers that recovery must leave alone are not "work" either.
    fs::write(repo.layout().muse_dir().join(".muse-tmp-fresh"), b"live")?;
    for _ in 0..2 {
        let fs_rec = FaultFs::new();
        let opened = Repository::open_with(dir.path(), fault_options(&fs_rec))?;
        let _ = opened.refs().head()?;
        assert!(fs_rec.ops().is_empty(), "clean open: {:?}", fs_rec.ops());
    }
    let (_keep, root) = fixture("muse-merge-conflict")?;
    let fs_rec = FaultFs::new();
    Repository::open_with(&root, fault_options(&fs_rec))?;
    assert!(
        fs_rec.ops().is_empty(),
        "clean open of the Muse fixture: {:?}",
        fs_rec.ops()
    );
    Ok(())
}

#[test]
fn recovery_is_idempotent_and_reports_nothing_the_second_time() -> TestResult {
    let (dir, repo, _, _, _) = two_commits()?;
    let t = repo.layout().muse_dir().join(".muse-tmp-old");
    fs::write(&t, b"x")?;
    age_file(&t, Duration::from_secs(3600))?;
    let first = Repository::open_without_recovery(dir.path(), Options::default())?.recover()?;
    assert_eq!(first.temps, vec![t.clone()]);
    let second = Repository::open_without_recovery(dir.path(), Options::default())?.recover()?;
    assert!(second.is_empty(), "{second:?}");
    Ok(())
}
