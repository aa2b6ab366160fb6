//! Roots in the files other tools keep under `.muse/`: everything the
//! reference implementation may create (shared/REFERENCE.md section 12)
//! that this project does not write itself.
//!
//! Invariant: no file under `.muse/` is a reason to delete anything.
//! - Files whose format is known are parsed and every id they name is a
//!   root: tag records (`tags/<repo_id>/*.json`, commits), remote-tracking
//!   pointers (`remotes/<remote>/<branch>`, commits) and the stash
//!   (`stash.json`: every object of every stashed manifest, and its
//!   snapshot when a record of it exists). One that cannot be read or
//!   parsed is damage naming the file, so gc refuses to prune.
//! - Every other file (bisect state, rerere, the code stage, worktrees,
//!   releases, indices, files no tool documents) is read as bytes, and every
//!   64-hex id in it that names a stored commit, snapshot or object is a
//!   root: nothing it might name is ever pruned. One that cannot be read is
//!   an I/O problem, which also stops gc.
//! - Not roots: the hash cache `stat_cache.json` (it names working-tree
//!   content, REFERENCE.md section 7), and the files this project reads
//!   itself (objects, records, refs, reflogs, HEAD, state files, journals,
//!   locks, op-log checkpoints), whose roots `reach.rs` collects.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::problem::{Problem, ProblemKind, Severity};
use super::root::{Root, Roots};
use crate::error::Error;
use crate::files;
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::repo::Repository;

fn rel(layout: &Layout, path: &Path) -> String {
    path.strip_prefix(layout.muse_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Adds the roots of every file under `.muse/` that is not this project's
/// own; problems reading them go to `problems`.
pub(crate) fn collect(repo: &Repository, roots: &mut Roots, problems: &mut Vec<Problem>) {
    let layout = repo.layout();
    let mut parsed: Vec<PathBuf> = Vec::new();
    tags(repo, roots, problems, &mut parsed);
    remotes(repo, roots, problems);
    stash(repo, roots, problems);
    let mut skip = vec![
        layout.objects_dir(),
        layout.commits_dir(),
        layout.snapshots_dir(),
        layout.muse_dir().join("refs"),
        layout.logs_dir(),
        layout.locks_dir(),
        layout.quarantine_root(),
        layout.transactions_dir(),
        layout.head(),
        layout.merge_state(),
        layout.checkout_journal(),
        layout.rebase_state(),
        layout.remotes_dir(),
        layout.stash(),
        layout.reference_stat_cache(),
        layout.muse_stat_cache(),
        layout.muse_dir().join("stat_cache.json.tmp"),
    ];
    skip.extend(parsed);
    let others = match files::other_muse_files(layout, &skip) {
        Ok(others) => others,
        Err(e) => {
            problems.push(Problem::io(&e, layout.muse_dir().to_path_buf()));
            return;
        }
    };
    for file in others {
        if file.symlink {
            problems.push(Problem::new(
                Severity::Note,
                ProblemKind::StrayFile,
                Some(file.path.clone()),
                None,
                format!(
                    "'{}' is a symlink under .muse/; it is not followed",
                    rel(layout, &file.path)
                ),
            ));
            continue;
        }
        match scan_ids(&file.path) {
            Ok(ids) => {
                let source = rel(layout, &file.path);
                for id in ids {
                    add_existing(repo, roots, id, &source, &file.path, false);
                }
            }
            Err(e) => problems.push(Problem::io(
                &Error::io("read", &file.path, e),
                file.path.clone(),
            )),
        }
    }
}

/// A root for `id` as whatever it names here (a commit record, a snapshot
/// record, an object); nothing when it names nothing stored.
fn add_existing(
    repo: &Repository,
    roots: &mut Roots,
    id: ObjectId,
    source: &str,
    path: &Path,
    strong: bool,
) {
    let root = || Root {
        id,
        source: source.to_owned(),
        path: path.to_path_buf(),
        strong,
    };
    if repo.records().contains_commit(&id) {
        roots.commits.push(root());
    } else if repo.records().contains_snapshot(&id) {
        roots.snapshots.push(root());
    } else if repo.layout().object_path(&id).is_file() {
        roots.objects.push(root());
    }
}

/// Tag records of this repository name commits.
fn tags(
    repo: &Repository,
    roots: &mut Roots,
    problems: &mut Vec<Problem>,
    parsed: &mut Vec<PathBuf>,
) {
    let layout = repo.layout();
    // Without a usable repository id, every tag file is scanned as bytes.
    let Ok(store) = repo.tags() else { return };
    let records = match store.records() {
        Ok(records) => records,
        Err(e) => {
            problems.push(Problem::from_error(
                ProblemKind::BadStateFile,
                &e,
                store.dir(),
            ));
            return;
        }
    };
    for (path, record) in records {
        parsed.push(path.clone());
        match record {
            Ok(tag) => roots.commits.push(Root {
                id: tag.commit_id,
                source: format!("{} (tag '{}')", rel(layout, &path), tag.tag),
                path,
                strong: true,
            }),
            Err(e) => problems.push(Problem::from_error(ProblemKind::BadStateFile, &e, path)),
        }
    }
}

/// Remote-tracking pointers name commits.
fn remotes(repo: &Repository, roots: &mut Roots, problems: &mut Vec<Problem>) {
    let layout = repo.layout();
    let refs = repo.refs();
    let files = match refs.remote_tracking_files() {
        Ok(files) => files,
        Err(e) => {
            problems.push(Problem::io(&e, layout.remotes_dir()));
            return;
        }
    };
    for remote_ref in files {
        match refs.read_remote_ref(&remote_ref) {
            Ok(id) => roots.commits.push(Root {
                id,
                source: rel(layout, &remote_ref.path),
                path: remote_ref.path,
                strong: true,
            }),
            Err(e) => problems.push(Problem::from_error(
                ProblemKind::BadRef,
                &e,
                remote_ref.path,
            )),
        }
    }
}

/// One entry of the reference's `stash.json`.
#[derive(serde::Deserialize)]
struct StashEntry {
    #[serde(default)]
    snapshot_id: Option<String>,
    manifest: BTreeMap<String, String>,
}

/// The stash names whole manifests of objects (and a snapshot with no
/// record, REFERENCE.md section 6).
fn stash(repo: &Repository, roots: &mut Roots, problems: &mut Vec<Problem>) {
    let layout = repo.layout();
    let path = layout.stash();
    let bytes = match files::read_optional(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            problems.push(Problem::io(&e, path));
            return;
        }
    };
    let entries: Vec<StashEntry> = match serde_json::from_slice(&bytes) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(Problem::new(
                Severity::Damage,
                ProblemKind::BadStateFile,
                Some(path),
                None,
                format!(
                    "stash.json is not a list of stash entries ({e}); the objects it may name are kept"
                ),
            ));
            return;
        }
    };
    for (n, entry) in entries.iter().enumerate() {
        let source = format!("stash.json (stash@{{{n}}})");
        for (file, object) in &entry.manifest {
            match ObjectId::from_hex(object) {
                Ok(id) => roots.objects.push(Root {
                    id,
                    source: format!("{source}, '{file}'"),
                    path: path.clone(),
                    strong: true,
                }),
                Err(e) => problems.push(Problem::new(
                    Severity::Damage,
                    ProblemKind::BadStateFile,
                    Some(path.clone()),
                    None,
                    format!("{source}: '{file}' names no object id: {e}"),
                )),
            }
        }
        if let Some(id) = entry
            .snapshot_id
            .as_deref()
            .and_then(|s| ObjectId::from_hex(s).ok())
            && repo.records().contains_snapshot(&id)
        {
            roots.snapshots.push(Root {
                id,
                source: source.clone(),
                path: path.clone(),
                strong: false,
            });
        }
    }
}

/// Every run of exactly 64 lowercase hex characters in the file at `path`
/// (read in fixed-size chunks, so memory does not grow with the file).
pub(crate) fn scan_ids(path: &Path) -> io::Result<Vec<ObjectId>> {
    // Not followed, not blocked on: only a regular file is scanned.
    let mut file = crate::sys::open_nofollow(path)?;
    if !file.metadata()?.is_file() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    let mut run: Vec<u8> = Vec::with_capacity(64);
    // Whether the current run of hex is longer than 64 (not an id).
    let mut overlong = false;
    let mut buf = vec![0u8; 64 * 1024];
    let finish = |run: &mut Vec<u8>, overlong: &mut bool, ids: &mut Vec<ObjectId>| {
        if run.len() == 64
            && !*overlong
            && let Ok(id) = ObjectId::from_hex(&String::from_utf8_lossy(run))
        {
            ids.push(id);
        }
        run.clear();
        *overlong = false;
    };
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b.is_ascii_hexdigit() {
                if run.len() < 64 {
                    run.push(b);
                } else {
                    overlong = true;
                }
            } else {
                finish(&mut run, &mut overlong, &mut ids);
            }
        }
    }
    finish(&mut run, &mut overlong, &mut ids);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_64_hex_runs() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        let a = ObjectId::hash(b"a");
        let b = ObjectId::hash(b"b");
        let text = format!(
            "good_ids = [\"{a}\"]\nx{b} and {a}{a} and {} and upper {}\n",
            &b.to_hex()[..63],
            a.to_hex().to_uppercase()
        );
        #[expect(clippy::disallowed_methods, reason = "test plants a foreign file")]
        std::fs::write(&path, text)?;
        // `x<b>`: x is not hex, so the run is exactly <b>; `<a><a>` is 128
        // hex, no id; 63 hex is none; an upper-case run is no id.
        assert_eq!(scan_ids(&path)?, {
            let mut v = vec![a, b];
            v.sort_unstable();
            v
        });
        Ok(())
    }
}
