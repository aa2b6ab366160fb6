//! The stat cache is only a hint (issue 13): status and commit are right
//! whatever the cache holds, including files rewritten with the same size
//! within one timestamp tick of the cache's write (git's racy-clean case),
//! and a damaged or foreign cache file.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use muse_store::{
    BranchName, Head, NewCommit, NoProgress, ObjectId, Repository, checkout, commit_worktree,
    worktree_manifest, worktree_status,
};

use crate::{TestResult, repo};
use muse_store::Durability;

/// The manifest of `root`'s files as they are, read and hashed here (every
/// file of the scratch trees these tests make is tracked).
fn truth(root: &Path, names: &[String]) -> TestResult<BTreeMap<String, ObjectId>> {
    let mut out = BTreeMap::new();
    for name in names {
        out.insert(name.clone(), ObjectId::hash(&fs::read(root.join(name))?));
    }
    Ok(out)
}

/// A seed from `MUSE_STATCACHE_SEED` or the clock, printed.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("MUSE_STATCACHE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: seed {seed} (MUSE_STATCACHE_SEED)");
    seed
}

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rewrites tracked files of a repository at `root` with new bytes of the
/// same size as fast as the loop goes, checking status and commit against
/// the files' real content every time; returns how many rewrites kept the
/// previous mtime (landed in the same timestamp tick).
fn rewrite_rounds(test: &str, root: &Path, rounds: usize) -> TestResult<usize> {
    let repo = Repository::init_with(
        root,
        muse_store::Options {
            durability: Durability::None,
            ..muse_store::Options::default()
        },
    )?;
    let mut rng = seed(test);
    let names: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    for name in &names {
        fs::write(root.join(name), [b'0'; 64])?;
    }
    let base = commit_worktree(&repo, &NewCommit::new("base"), &NoProgress)?
        .commit
        .commit_id;
    let main = Head::Branch(BranchName::new("main")?);
    let mut same_mtime = 0;
    for round in 0..rounds {
        let name = &names[(next(&mut rng) % 4) as usize];
        let path = root.join(name);
        let before = fs::symlink_metadata(&path)?.modified()?;
        let bytes: Vec<u8> = (0..64)
            .map(|_| b'a' + (next(&mut rng) % 26) as u8)
            .collect();
        fs::write(&path, &bytes)?;
        if fs::symlink_metadata(&path)?.modified()? == before {
            same_mtime += 1;
        }
        let want = truth(root, &names)?;
        assert_eq!(worktree_manifest(&repo)?, want, "round {round}: status");
        if round % 10 == 9 {
            let made = commit_worktree(&repo, &NewCommit::new(format!("r{round}")), &NoProgress);
            match made {
                Ok(made) => assert_eq!(made.snapshot.manifest, want, "round {round}: commit"),
                Err(muse_store::Error::NothingToCommit) => {}
                Err(e) => return Err(e.into()),
            }
            let status = worktree_status(&repo)?;
            assert!(
                status.changes.is_empty(),
                "round {round}: clean after commit"
            );
        }
        if round % 25 == 24 {
            // Checkout refreshes the entries of what it writes; a rewrite
            // right after it is still seen.
            for target in [Head::Detached(base), main.clone()] {
                checkout(&repo, &target, true, &NoProgress)?;
                let path = root.join(&names[(next(&mut rng) % 4) as usize]);
                let mut bytes = fs::read(&path)?;
                bytes[0] = bytes[0].wrapping_add(1);
                fs::write(&path, &bytes)?;
                let want = truth(root, &names)?;
                assert_eq!(
                    worktree_manifest(&repo)?,
                    want,
                    "round {round}: after checkout"
                );
            }
        }
    }
    eprintln!("{test}: {rounds} rewrites, {same_mtime} kept the previous mtime (same tick)");
    Ok(same_mtime)
}

#[test]
fn same_size_rewrites_are_never_missed() -> TestResult {
    let dir = tempfile::tempdir()?;
    rewrite_rounds("same_size_rewrites_are_never_missed", dir.path(), 300)?;
    Ok(())
}

/// An ext4 filesystem with 128-byte inodes (whole-second timestamps, no
/// multigrain clock) on a loop device, unmounted on drop: where a rewrite
/// within one second leaves every stat field as it was.
struct CoarseFs {
    dir: tempfile::TempDir,
}

impl CoarseFs {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let image = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).ok()?;
        let run = |cmd: &mut std::process::Command| {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let made = fs::File::create(&image)
            .and_then(|f| f.set_len(32 << 20))
            .is_ok()
            && run(std::process::Command::new("mkfs.ext4")
                .args(["-q", "-F", "-I", "128"])
                .arg(&image))
            && run(std::process::Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mnt));
        made.then_some(Self { dir })
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for CoarseFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.root())
            .status();
    }
}

#[test]
fn same_size_rewrites_within_one_second_tick_are_never_missed() -> TestResult {
    let Some(coarse) = CoarseFs::mount() else {
        eprintln!(
            "skipped: cannot make and loop-mount an ext4 filesystem with whole-second \
             timestamps here (needs root, mkfs.ext4 and a loop device)"
        );
        return Ok(());
    };
    let root = coarse.root().join("repo");
    fs::create_dir(&root)?;
    let same = rewrite_rounds(
        "same_size_rewrites_within_one_second_tick_are_never_missed",
        &root,
        150,
    )?;
    // The case the racy-clean rule exists for did happen.
    assert!(
        same > 0,
        "no rewrite kept its mtime on a whole-second filesystem"
    );
    Ok(())
}

#[test]
fn a_damaged_or_planted_cache_file_changes_nothing() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    let names: Vec<String> = (0..3).map(|i| format!("f{i}")).collect();
    for name in &names {
        fs::write(dir.path().join(name), name.as_bytes())?;
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    // A status saves the cache.
    worktree_manifest(&repo)?;
    let cache = repo.layout().muse_dir().join("stat-cache");
    let saved = fs::read(&cache)?;
    assert!(saved.len() > 32, "status wrote a cache");
    let mut variants: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("garbage".into(), b"not a cache at all".to_vec()),
    ];
    for cut in [1, saved.len() / 2, saved.len() - 1] {
        variants.push((format!("cut at {cut}"), saved[..cut].to_vec()));
    }
    for bit in [0, saved.len() * 4, saved.len() * 8 - 1] {
        let mut flipped = saved.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        variants.push((format!("bit {bit} flipped"), flipped));
    }
    for (what, bytes) in variants {
        for name in &names {
            // New content, same size, after the cache was written.
            let mut content = fs::read(dir.path().join(name))?;
            content.reverse();
            content[0] ^= 1;
            fs::write(dir.path().join(name), &content)?;
        }
        fs::write(&cache, &bytes)?;
        let want = truth(dir.path(), &names)?;
        assert_eq!(worktree_manifest(&repo)?, want, "{what}: status");
        fs::write(&cache, &bytes)?;
        let made = commit_worktree(&repo, &NewCommit::new(what.clone()), &NoProgress)?;
        assert_eq!(made.snapshot.manifest, want, "{what}: commit");
    }
    let report = muse_store::fsck(&repo, &NoProgress)?;
    assert!(report.is_healthy(), "{report:?}");
    Ok(())
}

#[test]
fn a_read_only_status_uses_the_cache_and_writes_nothing() -> TestResult {
    let (dir, repo) = repo(Durability::None)?;
    fs::write(dir.path().join("a"), b"one")?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    worktree_manifest(&repo)?;
    // Another process holds the working-tree lock: status still answers,
    // from the cache, and leaves the cache as it was.
    let holder = Repository::open(dir.path())?;
    let _lock = holder.lock_worktree()?;
    let cache = repo.layout().muse_dir().join("stat-cache");
    let before = fs::read(&cache)?;
    fs::write(dir.path().join("b"), b"two")?;
    let want = truth(dir.path(), &["a".to_owned(), "b".to_owned()])?;
    assert_eq!(worktree_manifest(&repo)?, want);
    assert_eq!(fs::read(&cache)?, before, "not saved without the lock");
    Ok(())
}
