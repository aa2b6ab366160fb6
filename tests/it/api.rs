//! The embedder's API: open-or-init, committing without a working tree,
//! revision syntax, typed errors, and read paths that verify.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use muse_store::{
    BranchName, CommitRecord, Durability, Error, NewCommit, ObjectId, Options, Repository,
    Timestamp,
};

use crate::{TestResult, muse};

fn scratch() -> TestResult<(tempfile::TempDir, Repository)> {
    crate::repo(Durability::None)
}

#[test]
fn open_or_init_is_safe_against_many_racing_callers() -> TestResult {
    for round in 0..5 {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("repo");
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (root, barrier) = (root.clone(), barrier.clone());
                std::thread::spawn(move || -> muse_store::Result<String> {
                    barrier.wait();
                    let options = Options {
                        durability: Durability::None,
                        ..Options::default()
                    };
                    let repo = Repository::open_or_init(&root, options)?;
                    Ok(repo.info()?.repo_id.clone())
                })
            })
            .collect();
        let mut ids = Vec::new();
        for handle in handles {
            ids.push(handle.join().map_err(|_| "thread panicked")??);
        }
        ids.dedup();
        assert_eq!(
            ids.len(),
            1,
            "round {round}: every caller opened one repository"
        );
    }
    Ok(())
}

#[test]
fn a_manifest_commits_without_a_working_tree_with_the_configured_author() -> TestResult {
    let (dir, repo) = scratch()?;
    muse_store::Config::set(&repo, "user.name", "Grace")?;
    let mut repo = Repository::open_with(dir.path(), repo.options().clone())?;
    repo.reload_config()?;
    let made = repo.commit_files(
        [("a/b.txt", "b"), ("c.txt", "c")],
        &NewCommit::new("one\n\nbody"),
    )?;
    assert_eq!(made.commit.author, "Grace", "configured author");
    assert_eq!(made.commit.repo_id, repo.info()?.repo_id, "repository id");
    assert_eq!(made.parent, None, "root commit");
    assert!(
        !dir.path().join("a").exists(),
        "no working-tree file was written"
    );
    let log = repo.refs().reflog(&made.branch)?;
    assert_eq!(
        log.entries.last().map(|e| e.operation.as_str()),
        Some("commit: one"),
        "conventional reflog line (first line of the message)"
    );
    assert_eq!(log.entries.last().map(|e| e.author.as_str()), Some("Grace"));
    // The same tree again is nothing to commit, unless allowed.
    let again = repo.commit_manifest(made.snapshot.manifest.clone(), &NewCommit::new("again"));
    assert!(matches!(again, Err(Error::NothingToCommit)), "{again:?}");
    let empty = repo.commit_manifest(
        made.snapshot.manifest.clone(),
        &NewCommit::new("again").allow_empty(),
    )?;
    assert_eq!(empty.parent, Some(made.commit.commit_id));
    // A manifest naming an object that is not stored writes nothing.
    let missing = BTreeMap::from([("x".to_owned(), ObjectId::hash(b"never stored"))]);
    let before = repo.refs().head_commit()?;
    let err = repo
        .commit_manifest(missing, &NewCommit::new("bad"))
        .expect_err("missing object");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(repo.refs().head_commit()?, before, "branch unmoved");
    assert!(matches!(
        repo.commit_files([("a", "1")], &NewCommit::new("  ")),
        Err(Error::EmptyMessage)
    ));
    Ok(())
}

#[test]
fn reflog_author_comes_from_options_not_the_environment() -> TestResult {
    let (dir, _) = scratch()?;
    let options = Options {
        durability: Durability::None,
        reflog_author: Some("embedder".into()),
        ..Options::default()
    };
    // SAFETY-free: the variable is only read by the CLI; setting it here
    // must change nothing the library does.
    let repo = Repository::open_with(dir.path(), options)?;
    let made = repo.commit_files([("a", "1")], &NewCommit::new("x"))?;
    let log = repo.refs().reflog(&made.branch)?;
    assert_eq!(log.entries[0].author, "embedder");
    Ok(())
}

/// A commit record whose id starts with `prefix`, found by varying the
/// message (65,536 tries on average for 4 hex characters), and stored.
fn commit_with_prefix(repo: &Repository, snapshot: ObjectId, prefix: &str) -> TestResult<ObjectId> {
    let at = Timestamp {
        unix_seconds: 1_767_225_600,
        micros: 0,
    };
    for n in 0..10_000_000u64 {
        let message = format!("search {n}");
        if muse_store::commit_id(&[], &snapshot, &message, &at.to_isoformat())
            .to_hex()
            .starts_with(prefix)
        {
            let record = CommitRecord::new("r", "main", snapshot, &[], message, "", at);
            repo.records().write_commit(&record)?;
            return Ok(record.commit_id);
        }
    }
    Err("no commit with that prefix found".into())
}

#[test]
fn revision_syntax_table() -> TestResult {
    let (_dir, repo) = scratch()?;
    let c1 = repo
        .commit_files([("f", "1")], &NewCommit::new("c1"))?
        .commit;
    let c2 = repo
        .commit_files([("f", "2")], &NewCommit::new("c2"))?
        .commit;
    // A side branch from c1 and a merge of it into main.
    let side = BranchName::new("side")?;
    repo.refs()
        .update(&side, c1.commit_id, muse_store::Expected::Absent, "side")?;
    let s1 = repo
        .commit_files([("g", "s")], &NewCommit::new("s1").branch(side.clone()))?
        .commit;
    let merge = repo
        .commit_files(
            [("f", "2"), ("g", "s")],
            &NewCommit::new("merge").merge_parent(s1.commit_id),
        )?
        .commit;
    // Two commits sharing a four-hex prefix.
    let snapshot = c1.snapshot_id;
    let first = commit_with_prefix(&repo, snapshot, &c1.commit_id.to_hex()[..4])?;
    let (c1h, m) = (c1.commit_id.to_hex(), merge.commit_id);
    let ok: Vec<(&str, ObjectId)> = vec![
        ("HEAD", m),
        ("head", m),
        ("main", m),
        ("side", s1.commit_id),
        (&c1h[..], c1.commit_id),
        ("HEAD~", c2.commit_id),
        ("HEAD~1", c2.commit_id),
        ("HEAD~2", c1.commit_id),
        ("HEAD^", c2.commit_id),
        ("HEAD^1", c2.commit_id),
        ("HEAD^2", s1.commit_id),
        ("HEAD^2~1", c1.commit_id),
        ("main^0", m),
        ("main~1^1", c1.commit_id),
    ];
    let m_prefix = m.to_hex()[..6].to_owned();
    for (rev, want) in ok
        .iter()
        .chain([(&m_prefix.as_str(), &m)].map(|(a, b)| (*a, *b)).iter())
    {
        assert_eq!(
            repo.resolve(rev).map_err(|e| format!("{rev}: {e}"))?,
            *want,
            "{rev}"
        );
    }
    let unknown = [
        "nope",
        "HEAD~3",
        "HEAD^3",
        "main~1^2",
        &"a".repeat(64),
        "zzzz",
        "side~2",
    ];
    for rev in unknown {
        let err = repo.resolve(rev).expect_err(rev);
        assert!(matches!(err, Error::UnknownRevision { .. }), "{rev}: {err}");
        assert!(err.is_user_error(), "{rev}");
    }
    for rev in ["", "HEAD~x", "main^^y", "~1"] {
        let err = repo.resolve(rev).expect_err(rev);
        assert!(
            matches!(
                err,
                Error::MalformedRevision { .. } | Error::UnknownRevision { .. }
            ),
            "{rev:?}: {err}"
        );
    }
    assert!(matches!(
        repo.resolve("HEAD~x"),
        Err(Error::MalformedRevision { .. })
    ));
    assert!(matches!(
        repo.resolve(""),
        Err(Error::MalformedRevision { .. })
    ));
    let ambiguous = repo
        .resolve(&c1h[..4])
        .expect_err("two commits share the prefix");
    match ambiguous {
        Error::AmbiguousRevision { candidates, .. } => {
            let mut want = vec![c1.commit_id, first];
            want.sort();
            assert_eq!(candidates, want, "every candidate, sorted");
        }
        e => return Err(format!("expected ambiguity, got {e}").into()),
    }
    assert_eq!(
        repo.resolve(&c1h[..10])?,
        c1.commit_id,
        "a longer prefix is unique"
    );
    Ok(())
}

#[test]
fn unborn_and_detached_heads_are_typed() -> TestResult {
    let (_dir, repo) = scratch()?;
    assert!(matches!(
        repo.resolve("HEAD"),
        Err(Error::UnbornBranch { .. })
    ));
    let made = repo.commit_files([("f", "1")], &NewCommit::new("one"))?;
    repo.refs()
        .set_head(&muse_store::Head::Detached(made.commit.commit_id), "detach")?;
    let err = repo
        .commit_files([("f", "2")], &NewCommit::new("two"))
        .expect_err("detached");
    assert!(
        matches!(err, Error::DetachedHead { at } if at == made.commit.commit_id),
        "{err}"
    );
    Ok(())
}

#[test]
fn branch_names_that_nest_clash_as_a_user_error() -> TestResult {
    let (dir, repo) = scratch()?;
    repo.commit_files([("f", "1")], &NewCommit::new("one"))?;
    let root = dir.path().to_str().ok_or("temp dir is not UTF-8")?;
    assert_eq!(muse(["-C", root, "branch", "feat"]).code, 0);
    let run = muse(["-C", root, "branch", "feat/a"]);
    assert_eq!(run.code, 1, "a user error, not exit 3: {}", run.err);
    assert!(
        run.err.contains("clashes with branch 'feat'"),
        "{}",
        run.err
    );
    assert_eq!(muse(["-C", root, "branch", "-d", "feat"]).code, 0);
    assert_eq!(muse(["-C", root, "branch", "feat/a"]).code, 0);
    let run = muse(["-C", root, "branch", "feat"]);
    assert_eq!(run.code, 1, "{}", run.err);
    assert!(
        run.err.contains("clashes with branch 'feat/a'"),
        "{}",
        run.err
    );
    let run = muse(["-C", root, "branch", "main"]);
    assert_eq!(run.code, 1);
    assert!(run.err.contains("already exists"), "{}", run.err);
    Ok(())
}

#[test]
fn for_each_ref_and_show_ref_refuse_a_tampered_commit_record() -> TestResult {
    let (dir, repo) = scratch()?;
    let made = repo.commit_files([("f", "1")], &NewCommit::new("honest"))?;
    let root = dir.path().to_str().ok_or("temp dir is not UTF-8")?;
    for cmd in ["for-each-ref", "show-ref"] {
        assert_eq!(muse(["-C", root, "plumbing", cmd]).code, 0, "{cmd} before");
    }
    let path = repo.layout().commit_path(&made.commit.commit_id);
    let text = std::fs::read_to_string(&path)?;
    let forged = text.replace("\"message\": \"honest\"", "\"message\": \"forged\"");
    assert_ne!(text, forged, "the message field was found");
    std::fs::write(&path, forged)?;
    for cmd in ["for-each-ref", "show-ref"] {
        let run = muse(["-C", root, "plumbing", cmd]);
        assert_eq!(run.code, 3, "{cmd} refuses a tampered record: {}", run.err);
        assert!(
            run.err.contains(&made.commit.commit_id.to_hex())
                && run.err.contains("integrity check"),
            "{cmd} names the record: {}",
            run.err
        );
        assert!(
            !run.stdout().contains("forged"),
            "{cmd} showed the forged field"
        );
    }
    Ok(())
}

#[test]
fn exit_codes_follow_the_error_classification() {
    // One representative per side; the classification itself is one
    // exhaustive match, so a new variant cannot default to either side.
    assert!(Error::NothingToCommit.is_user_error());
    assert!(
        Error::BranchNameClash {
            branch: "a".into(),
            existing: "a/b".into()
        }
        .is_user_error()
    );
    assert!(
        !Error::GcRefused {
            reason: "damage".into()
        }
        .is_user_error()
    );
}

#[test]
fn revisions_that_branch_names_could_confuse() -> TestResult {
    let (dir, repo) = scratch()?;
    let c1 = repo
        .commit_files([("f", "1")], &NewCommit::new("c1"))?
        .commit
        .commit_id;
    let c2 = repo
        .commit_files([("f", "2")], &NewCommit::new("c2"))?
        .commit
        .commit_id;
    let c3 = repo
        .commit_files([("f", "3")], &NewCommit::new("c3"))?
        .commit
        .commit_id;
    // Names the reference implementation accepts, written as it writes them.
    let heads = repo.layout().heads_dir();
    std::fs::write(heads.join("HEAD"), c1.to_hex())?;
    std::fs::write(heads.join("a~1"), c2.to_hex())?;
    std::fs::write(heads.join("a"), c3.to_hex())?;
    assert_eq!(
        repo.resolve("HEAD")?,
        c3,
        "HEAD is HEAD, not the branch named HEAD"
    );
    assert_eq!(
        repo.resolve("refs/heads/HEAD")?,
        c1,
        "the branch, spelled in full"
    );
    assert_eq!(repo.resolve("a~1")?, c2, "a whole branch name wins");
    assert_eq!(
        repo.resolve("a~1~1")?,
        c1,
        "the longest base that names something"
    );
    assert_eq!(repo.resolve("a~2")?, c1, "else the shorter base with steps");
    let err = repo
        .resolve("HEAD~99999999999999999999")
        .expect_err("overflow");
    assert!(
        matches!(err, Error::MalformedRevision { reason, .. } if reason.contains("too large")),
        "{err}"
    );
    // Through a branch file: no such branch, a user error.
    std::fs::write(heads.join("feat"), c1.to_hex())?;
    let err = repo.resolve("feat/x").expect_err("feat is a file");
    assert!(matches!(err, Error::UnknownRevision { .. }), "{err}");
    let root = dir.path().to_str().ok_or("temp dir is not UTF-8")?;
    let run = muse(["-C", root, "plumbing", "rev-parse", "feat/x~1"]);
    assert_eq!(run.code, 1, "{}", run.err);
    // HEAD cannot be pointed where no branch can ever be; HEAD is unchanged.
    let before = std::fs::read(repo.layout().head())?;
    let run = muse([
        "-C",
        root,
        "plumbing",
        "symbolic-ref",
        "HEAD",
        "--set",
        "feat/x",
    ]);
    // The reference contract refuses a branch that does not exist (the
    // message is the reference's "Branch 'feat/x' does not exist.").
    assert_eq!(run.code, 1, "{}", run.err);
    assert!(run.err.contains("feat/x"), "{}", run.err);
    assert_eq!(
        std::fs::read(repo.layout().head())?,
        before,
        "HEAD untouched"
    );
    assert_eq!(
        muse(["-C", root, "status"]).code,
        0,
        "the repository still works"
    );
    Ok(())
}

#[test]
fn a_missing_parent_is_damage_not_a_user_error() -> TestResult {
    let (dir, repo) = scratch()?;
    let c1 = repo
        .commit_files([("f", "1")], &NewCommit::new("c1"))?
        .commit
        .commit_id;
    repo.commit_files([("f", "2")], &NewCommit::new("c2"))?;
    std::fs::remove_file(repo.layout().commit_path(&c1))?;
    let err = repo.resolve("HEAD~2").expect_err("the parent is gone");
    assert!(matches!(err, Error::MissingRecord { .. }), "{err}");
    assert!(!err.is_user_error());
    let root = dir.path().to_str().ok_or("temp dir is not UTF-8")?;
    // `plumbing commit-graph` skips a missing record as the reference does
    // (docs/compatibility.md); `log` walks first parents and must not.
    let run = muse(["-C", root, "log"]);
    assert_eq!(run.code, 3, "log: damage is exit 3: {}", run.err);
    assert!(run.err.contains(&c1.to_hex()), "log names it: {}", run.err);
    // Asking for an id that is not there stays a user error.
    let missing = ObjectId::hash(b"never a commit").to_hex();
    assert_eq!(
        muse(["-C", root, "plumbing", "read-commit", &missing]).code,
        1
    );
    Ok(())
}

#[test]
fn a_half_initialised_repository_says_so() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join(".muse/objects"))?;
    let err = Repository::open(dir.path()).expect_err("no HEAD, no repo.json");
    assert!(
        err.to_string().contains("not a complete repository"),
        "{err}"
    );
    let file = tempfile::tempdir()?;
    std::fs::write(file.path().join(".muse"), b"")?;
    let err = Repository::init(file.path()).expect_err(".muse is a file");
    assert!(matches!(err, Error::Input { .. }), "{err}");
    assert!(err.is_user_error());
    Ok(())
}

#[test]
fn an_empty_directory_where_a_branch_goes_is_not_a_clash() -> TestResult {
    let (dir, repo) = scratch()?;
    repo.commit_files([("f", "1")], &NewCommit::new("c1"))?;
    std::fs::create_dir_all(repo.layout().heads_dir().join("nope"))?;
    let root = dir.path().to_str().ok_or("temp dir is not UTF-8")?;
    let run = muse(["-C", root, "branch", "nope"]);
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(repo.refs().branch(&BranchName::new("nope")?)?.is_some());
    Ok(())
}
