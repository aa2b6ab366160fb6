//! Transport (issue 14): bundles made here are the reference's bytes,
//! round-trip into fresh repositories byte-exact, and a hostile bundle of
//! any kind stores nothing, moves nothing, leaves no quarantine and names
//! what was wrong.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use muse_store::{
    BundleProblem, Durability, Error, Expected, Head, NewCommit, NoProgress, ObjectId, Options,
    Repository, commit_id, snapshot_id,
};
use serde_json::{Value, json};

use crate::support::{copy_tree, shared_dir};
use crate::{TestResult, porcelain};

/// The reference's ids in fixtures/ref-history.
const C1: &str = "e5b76f6caac3d84de95a271d63ff7a145c4f529be30f64fb9eb2b9c8da7a780f";
const C4: &str = "25f1662a7331006a908d714acb4b8f30805583c9ac5f0ad304130d4d42d0cdee";
const C3: &str = "98c18a6b6d2c948a454d872e407ac2f72e6f5bcdad646ac857c53a5b7bc25ab3";

fn open(root: &Path) -> TestResult<Repository> {
    Ok(Repository::open_with(
        root,
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )?)
}

fn fresh() -> TestResult<(tempfile::TempDir, Repository)> {
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

fn ref_history() -> TestResult<(tempfile::TempDir, Repository)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("ref-history");
    copy_tree(&shared_dir().join("fixtures/ref-history"), &root)?;
    let repo = open(&root)?;
    Ok((dir, repo))
}

fn id(hex: &str) -> TestResult<ObjectId> {
    Ok(ObjectId::from_hex(hex)?)
}

fn pack(repo: &Repository, wants: &[ObjectId], haves: &[ObjectId]) -> TestResult<Vec<u8>> {
    let mut out = Vec::new();
    muse_store::pack(repo, wants, haves, &mut out)?;
    Ok(out)
}

fn unpack(repo: &Repository, bytes: &[u8]) -> muse_store::Result<muse_store::Unpacked> {
    muse_store::unpack(repo, &mut &bytes[..], Path::new("<test bundle>"))
}

fn fixture_json(name: &str) -> TestResult<Value> {
    let path = shared_dir().join("fixtures/bundles").join(name);
    Ok(serde_json::from_str(&fs::read_to_string(path)?)?)
}

fn fixture_bytes(name: &str) -> TestResult<Vec<u8>> {
    Ok(fs::read(shared_dir().join("fixtures/bundles").join(name))?)
}

fn sha256_hex(bytes: &[u8]) -> String {
    ObjectId::hash(bytes).to_hex()
}

#[test]
fn pack_objects_writes_the_references_bytes() -> TestResult {
    let (_dir, repo) = ref_history()?;
    let cases = [
        ("full.json", vec![id(C4)?], vec![]),
        ("have-c1.json", vec![id(C4)?], vec![id(C1)?]),
    ];
    for (fixture, wants, haves) in cases {
        let expected = fixture_json(fixture)?;
        let bytes = pack(&repo, &wants, &haves)?;
        assert_eq!(
            bytes.len() as u64,
            expected["bytes"].as_u64().ok_or("bytes")?,
            "{fixture}: length"
        );
        assert_eq!(
            sha256_hex(&bytes),
            expected["sha256"].as_str().ok_or("sha256")?,
            "{fixture}: the bytes are the reference's"
        );
    }
    // plumbing.json's "pack-objects two wants".
    let two = pack(&repo, &[id(C4)?, id(C3)?], &[])?;
    assert_eq!(
        sha256_hex(&two),
        "be1a8324ef3c7ab2d678621de0e7e40f72fec6a7b51689fee1e48d8e6edb3140"
    );
    Ok(())
}

#[test]
fn every_fixture_bundle_unpacks_with_its_counts() -> TestResult {
    let (_src_dir, source) = ref_history()?;
    for name in ["full", "bundle-create", "have-c1"] {
        let meta = fixture_json(&format!("{name}.json"))?;
        let bytes = fixture_bytes(&format!("{name}.msgpack"))?;
        let (_dir, repo) = fresh()?;
        if name == "have-c1" {
            // Its c2 names c1 as parent without carrying it: the receiver
            // must have c1 first (a bundle of c1 alone).
            let base = unpack(&repo, &pack(&source, &[id(C1)?], &[])?)?;
            assert_eq!(base.commits_written, 1, "c1 alone");
        }
        let got = unpack(&repo, &bytes)?;
        let counts = &meta["counts"];
        assert_eq!(
            got.commits.len() as u64,
            counts["commits"].as_u64().ok_or("c")?,
            "{name}: commits"
        );
        assert_eq!(
            got.commits_written as u64,
            counts["commits"].as_u64().ok_or("c")?,
            "{name}"
        );
        assert_eq!(
            got.snapshots_written as u64,
            counts["snapshots"].as_u64().ok_or("s")?,
            "{name}"
        );
        assert_eq!(
            (got.objects_written + got.objects_skipped) as u64,
            counts["objects"].as_u64().ok_or("o")?,
            "{name}: every object, the empty blob included"
        );
        assert!(
            repo.objects().contains(&ObjectId::EMPTY),
            "{name}: the empty blob travelled"
        );
        let report = muse_store::fsck(&repo, &NoProgress)?;
        assert!(
            report.is_healthy(),
            "{name}: fsck after unpack: {:?}",
            report.problems
        );
        assert_no_quarantine(repo.work_tree(), name);
    }
    Ok(())
}

/// Every file and directory under `.muse/` except the lock directory and
/// the (empty) quarantine root, with the hash of its bytes: what an unpack
/// that publishes nothing must leave as it was. A quarantine left inside
/// the root shows up here too.
fn state(root: &Path) -> TestResult<BTreeMap<PathBuf, String>> {
    let muse = root.join(".muse");
    let mut out = BTreeMap::new();
    let mut stack = vec![muse.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if path == muse.join("locks") {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path.clone());
                if path != muse.join("quarantine") {
                    out.insert(path.strip_prefix(&muse)?.to_path_buf(), "<dir>".to_owned());
                }
            } else {
                out.insert(
                    path.strip_prefix(&muse)?.to_path_buf(),
                    ObjectId::hash(&fs::read(&path)?).to_hex(),
                );
            }
        }
    }
    Ok(out)
}

fn assert_no_quarantine(root: &Path, context: &str) {
    let q = root.join(".muse/quarantine");
    let left: Vec<_> = match fs::read_dir(&q) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(
        left.is_empty(),
        "{context}: quarantine left behind: {left:?}"
    );
}

/// A small source repository: two commits on main (the second with an
/// empty file, a binary file and a nested one), and its bundle of both.
struct Small {
    _dir: tempfile::TempDir,
    repo: Repository,
    first: ObjectId,
    second: ObjectId,
}

fn small() -> TestResult<Small> {
    let (dir, repo) = fresh()?;
    let first = repo
        .commit_files([("a.txt", &b"one\n"[..])], &NewCommit::new("first"))?
        .commit
        .commit_id;
    let second = repo
        .commit_files(
            [
                ("a.txt", &b"two\n"[..]),
                ("empty", &b""[..]),
                ("bin/x.dat", &[0u8, 255, 1, 254][..]),
            ],
            &NewCommit::new("second"),
        )?
        .commit
        .commit_id;
    Ok(Small {
        _dir: dir,
        repo,
        first,
        second,
    })
}

/// A receiver that already has a branch (so "no ref moved" is checked on
/// something) and nothing of the small repository.
fn receiver() -> TestResult<(tempfile::TempDir, Repository)> {
    let (dir, repo) = fresh()?;
    repo.commit_files([("mine", &b"mine\n"[..])], &NewCommit::new("mine"))?;
    Ok((dir, repo))
}

/// Unpacks `bytes` into `repo` and requires a refusal of kind `problem`
/// (any kind when `None`) whose message contains `needle`, with nothing
/// changed under `.muse/` and no quarantine left.
fn refused(
    repo: &Repository,
    bytes: &[u8],
    problem: Option<BundleProblem>,
    needle: &str,
    context: &str,
) -> TestResult<BundleProblem> {
    let before = state(repo.work_tree())?;
    let head = repo.refs().head_commit()?;
    let err = match unpack(repo, bytes) {
        Ok(got) => return Err(format!("{context}: accepted: {got:?}").into()),
        Err(e) => e,
    };
    let Error::BadBundle(refusal) = &err else {
        return Err(format!("{context}: not a bundle refusal: {err}").into());
    };
    if let Some(p) = problem {
        assert_eq!(refusal.problem, p, "{context}: {err}");
    }
    assert!(
        err.to_string().contains(needle),
        "{context}: the error names the problem ({needle:?}): {err}"
    );
    assert_eq!(
        state(repo.work_tree())?,
        before,
        "{context}: nothing stored"
    );
    assert_eq!(repo.refs().head_commit()?, head, "{context}: no ref moved");
    assert_no_quarantine(repo.work_tree(), context);
    Ok(refusal.problem)
}

#[test]
fn round_trip_into_a_fresh_repository_checks_out_byte_exact() -> TestResult {
    let src = small()?;
    let bytes = pack(&src.repo, &[src.second], &[])?;
    let (_dir, dst) = fresh()?;
    let got = unpack(&dst, &bytes)?;
    assert_eq!((got.commits_written, got.snapshots_written), (2, 2));
    assert_eq!(got.objects_written, 4, "one, two, empty, x.dat");
    let main = muse_store::BranchName::new("main")?;
    let mut tx = dst.refs().transaction("test: receive");
    tx.update(main.clone(), src.second, Expected::Absent);
    tx.commit()?;
    for commit in [src.first, src.second] {
        porcelain::checkout(&dst, &Head::Detached(commit), true)?;
        let want = src.repo.records().tree_of(Some(commit))?;
        let mut files = BTreeMap::new();
        for (path, object) in &want {
            files.insert(path.clone(), fs::read(dst.work_tree().join(path))?);
            assert_eq!(
                ObjectId::hash(&files[path]),
                *object,
                "{commit}: {path} byte-exact"
            );
        }
        assert_eq!(files.len(), want.len(), "{commit}: every file");
    }
    assert_eq!(
        fs::read(dst.work_tree().join("empty"))?,
        b"",
        "the empty file arrived"
    );
    let report = muse_store::fsck(&dst, &NoProgress)?;
    assert!(report.is_healthy(), "{:?}", report.problems);
    // Packing again from the receiver gives the same bytes.
    assert_eq!(
        pack(&dst, &[src.second], &[])?,
        bytes,
        "same bundle both sides"
    );
    // Unpacking twice stores nothing new.
    let again = unpack(&dst, &bytes)?;
    assert_eq!(
        (
            again.commits_written,
            again.objects_written,
            again.objects_skipped
        ),
        (0, 0, 4)
    );
    Ok(())
}

#[test]
fn truncation_at_every_byte_offset_is_refused() -> TestResult {
    let src = small()?;
    let bytes = pack(&src.repo, &[src.second], &[])?;
    let (_dir, dst) = receiver()?;
    for n in 0..bytes.len() {
        refused(
            &dst,
            &bytes[..n],
            Some(BundleProblem::NotMsgpack),
            "truncated",
            &format!("first {n} of {} bytes", bytes.len()),
        )?;
    }
    println!(
        "truncation: {} variants refused (every prefix)",
        bytes.len()
    );
    Ok(())
}

#[test]
fn every_single_bit_flip_is_refused_or_harmless() -> TestResult {
    // One commit with a one-byte file and the empty blob: every bit of it.
    let (_src_dir, src_repo) = fresh()?;
    let only = src_repo
        .commit_files([("f", &b"x"[..]), ("e", &b""[..])], &NewCommit::new("m"))?
        .commit
        .commit_id;
    let bytes = pack(&src_repo, &[only], &[])?;
    let (_dir, dst) = receiver()?;
    let allowed = [only];
    let mut by_problem: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut accepted = 0usize;
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let before = state(dst.work_tree())?;
        match unpack(&dst, &flipped) {
            Err(Error::BadBundle(refusal)) => {
                *by_problem.entry(refusal.problem.name()).or_default() += 1;
                assert_eq!(state(dst.work_tree())?, before, "bit {bit}: nothing stored");
                assert_no_quarantine(dst.work_tree(), &format!("bit {bit}"));
            }
            Err(e) => return Err(format!("bit {bit}: not a bundle refusal: {e}").into()),
            Ok(_) => {
                // A flip in a field no id covers (a timestamp text, an
                // author) leaves a valid bundle: what it stored must verify
                // and be only what the original bundle names. Then the
                // receiver is put back as it was, for the next flip.
                accepted += 1;
                let own = dst.refs().head_commit()?;
                for c in dst.records().commits_with_prefix("")? {
                    assert!(
                        allowed.contains(&c) || Some(c) == own,
                        "bit {bit}: stored commit {c} the bundle does not name"
                    );
                    dst.records().read_commit(&c)?;
                }
                for (path, _) in state(dst.work_tree())? {
                    if !before.contains_key(&path) {
                        let full = dst.layout().muse_dir().join(&path);
                        if full.is_dir() {
                            continue;
                        }
                        if path.starts_with("objects") {
                            let object = path.to_string_lossy().replace(['/'], "");
                            let object = ObjectId::from_hex(&object["objects".len()..])?;
                            dst.objects().verify(&object)?;
                        }
                        fs::remove_file(full)?;
                    }
                }
                let mut now = state(dst.work_tree())?;
                now.retain(|p, _| before.contains_key(p));
                assert_eq!(now, before, "bit {bit}: receiver restored");
            }
        }
    }
    let refused: usize = by_problem.values().sum();
    println!(
        "bit flips: {} variants, {refused} refused {by_problem:?}, {accepted} accepted (flips in unhashed fields)",
        bytes.len() * 8
    );
    assert!(refused > accepted, "most flips must be refused");
    Ok(())
}

/// A bundle built field by field, to be made hostile.
#[derive(Clone)]
struct Bundle {
    commits: Vec<Value>,
    snapshots: Vec<Value>,
    /// (`object_id` value, content).
    objects: Vec<(Value, Vec<u8>)>,
}

fn put_json(out: &mut Vec<u8>, v: &Value) -> TestResult {
    match v {
        Value::Null => rmp::encode::write_nil(out)?,
        Value::Bool(b) => rmp::encode::write_bool(out, *b)?,
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmp::encode::write_uint(out, u)?;
            } else if let Some(i) = n.as_i64() {
                rmp::encode::write_sint(out, i)?;
            } else {
                rmp::encode::write_f64(out, n.as_f64().unwrap_or(0.0))?;
            }
        }
        Value::String(s) => rmp::encode::write_str(out, s)?,
        Value::Array(items) => {
            rmp::encode::write_array_len(out, u32::try_from(items.len())?)?;
            for item in items {
                put_json(out, item)?;
            }
        }
        Value::Object(map) => {
            rmp::encode::write_map_len(out, u32::try_from(map.len())?)?;
            for (k, item) in map {
                rmp::encode::write_str(out, k)?;
                put_json(out, item)?;
            }
        }
    }
    Ok(())
}

impl Bundle {
    /// The bundle of `wants` in `repo`, read back from its records and
    /// objects (not from a bundle), so that tests can change any field.
    fn of(repo: &Repository, wants: &[ObjectId]) -> TestResult<Self> {
        let commits = muse_store::commits_to_send(repo, wants, &[])?;
        let mut snapshots = BTreeMap::new();
        let mut objects = BTreeMap::new();
        for c in &commits {
            let s = repo.records().read_snapshot(&c.snapshot_id)?;
            for o in s.manifest.values() {
                objects.insert(*o, repo.objects().read(o)?);
            }
            snapshots.insert(c.snapshot_id, s);
        }
        let read = |p: PathBuf| -> TestResult<Value> { Ok(serde_json::from_slice(&fs::read(p)?)?) };
        let muse = repo.layout().muse_dir().to_path_buf();
        Ok(Self {
            commits: commits
                .iter()
                .map(|c| read(muse.join(format!("commits/{}.json", c.commit_id))))
                .collect::<TestResult<_>>()?,
            snapshots: snapshots
                .keys()
                .map(|s| read(muse.join(format!("snapshots/{s}.json"))))
                .collect::<TestResult<_>>()?,
            objects: objects
                .into_iter()
                .map(|(id, bytes)| (json!(id.to_hex()), bytes))
                .collect(),
        })
    }

    fn encode(&self) -> TestResult<Vec<u8>> {
        let mut out = Vec::new();
        rmp::encode::write_map_len(&mut out, 3)?;
        rmp::encode::write_str(&mut out, "commits")?;
        put_json(&mut out, &Value::Array(self.commits.clone()))?;
        rmp::encode::write_str(&mut out, "snapshots")?;
        put_json(&mut out, &Value::Array(self.snapshots.clone()))?;
        rmp::encode::write_str(&mut out, "objects")?;
        rmp::encode::write_array_len(&mut out, u32::try_from(self.objects.len())?)?;
        for (id, bytes) in &self.objects {
            rmp::encode::write_map_len(&mut out, 2)?;
            rmp::encode::write_str(&mut out, "object_id")?;
            put_json(&mut out, id)?;
            rmp::encode::write_str(&mut out, "content")?;
            rmp::encode::write_bin(&mut out, bytes)?;
        }
        Ok(out)
    }
}

/// Sets a commit's field and recomputes its id (so only the intended
/// check can refuse it).
fn rehash_commit(commit: &mut Value) -> TestResult {
    let parents: Vec<ObjectId> = ["parent_commit_id", "parent2_commit_id"]
        .iter()
        .filter_map(|k| commit[*k].as_str())
        .map(ObjectId::from_hex)
        .collect::<Result<_, _>>()?;
    let snapshot = ObjectId::from_hex(commit["snapshot_id"].as_str().ok_or("snapshot_id")?)?;
    let new = commit_id(
        &parents,
        &snapshot,
        commit["message"].as_str().ok_or("message")?,
        commit["committed_at"].as_str().ok_or("committed_at")?,
    );
    commit["commit_id"] = json!(new.to_hex());
    Ok(())
}

/// Replaces a snapshot's manifest and recomputes its id.
fn set_manifest(snapshot: &mut Value, manifest: &[(&str, ObjectId)]) {
    let map: BTreeMap<String, ObjectId> = manifest
        .iter()
        .map(|(p, o)| ((*p).to_owned(), *o))
        .collect();
    snapshot["manifest"] = json!(map);
    snapshot["snapshot_id"] = json!(snapshot_id(&map).to_hex());
}

type Variant = (&'static str, Bundle, BundleProblem, String);

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one table of hostile variants, by class"
)]
fn hostile_bundles_store_nothing_and_name_the_problem() -> TestResult {
    let src = small()?;
    let base = Bundle::of(&src.repo, &[src.second])?;
    let (_dir, dst) = receiver()?;
    // The base is accepted elsewhere; here each variant breaks one thing.
    let some_object = ObjectId::from_hex(base.objects[0].0.as_str().ok_or("id")?)?;
    let absent = ObjectId::hash(b"not in any bundle");
    let mut variants: Vec<Variant> = Vec::new();

    // Wrong ids: well-formed, but not what the content hashes to.
    let mut b = base.clone();
    b.objects[0].0 = json!(absent.to_hex());
    variants.push((
        "object id of other bytes",
        b,
        BundleProblem::Integrity,
        "integrity check".into(),
    ));
    let mut b = base.clone();
    b.objects[1].1.push(b'!');
    variants.push((
        "object bytes changed",
        b,
        BundleProblem::Integrity,
        "integrity check".into(),
    ));
    let mut b = base.clone();
    b.commits[0]["message"] = json!("changed after hashing");
    variants.push((
        "commit fields changed",
        b,
        BundleProblem::Integrity,
        "commit record".into(),
    ));
    let mut b = base.clone();
    b.commits[0]["commit_id"] = json!(absent.to_hex());
    variants.push((
        "commit id of another commit",
        b,
        BundleProblem::Integrity,
        "integrity check".into(),
    ));
    let mut b = base.clone();
    b.snapshots[0]["snapshot_id"] = json!(absent.to_hex());
    variants.push((
        "snapshot id of another manifest",
        b,
        BundleProblem::Integrity,
        "snapshot record".into(),
    ));

    // Ids that are not ids: `../`, upper case, short, not a str.
    for bad in [
        "../../../../tmp/evil",
        "../commits/x",
        &some_object.to_hex().to_uppercase(),
        &some_object.to_hex()[..63],
        "",
    ] {
        for field in ["commit", "snapshot", "object"] {
            let mut b = base.clone();
            match field {
                "commit" => b.commits[0]["commit_id"] = json!(bad),
                "snapshot" => b.snapshots[0]["snapshot_id"] = json!(bad),
                _ => b.objects[0].0 = json!(bad),
            }
            variants.push(("bad id", b, BundleProblem::InvalidId, field.to_owned()));
        }
    }
    let mut b = base.clone();
    b.commits[0]["parent_commit_id"] = json!("../../etc/passwd");
    variants.push((
        "parent id with ../",
        b,
        BundleProblem::Shape,
        "commit".into(),
    ));

    // Hostile manifest paths (ids recomputed, so the path policy refuses).
    for path in [
        "../evil",
        "a/../../evil",
        "/etc/passwd",
        ".muse/HEAD",
        ".MUSE/refs/heads/main",
        ".git/config",
        "a\\b",
        "a/./b",
        "a//b",
        "",
        "tab\there",
        "nul\u{0}",
    ] {
        let mut b = base.clone();
        set_manifest(&mut b.snapshots[0], &[(path, some_object)]);
        let sid = b.snapshots[0]["snapshot_id"].clone();
        b.commits.iter_mut().for_each(|c| {
            c["snapshot_id"] = sid.clone();
        });
        for c in &mut b.commits {
            rehash_commit(c)?;
        }
        variants.push((
            "hostile path",
            b,
            BundleProblem::RefusedPath,
            "snapshot".into(),
        ));
    }
    let mut b = base.clone();
    set_manifest(
        &mut b.snapshots[0],
        &[("d", some_object), ("d/f", some_object)],
    );
    variants.push((
        "file and directory",
        b,
        BundleProblem::RefusedPath,
        "snapshot".into(),
    ));

    // Missing pieces.
    let mut b = base.clone();
    // Breadth-first: the tip first, its parent second; keep the tip only.
    b.commits.truncate(1);
    variants.push(("missing parent", b, BundleProblem::Missing, "parent".into()));
    let mut b = base.clone();
    b.commits[0]["parent_commit_id"] = json!(absent.to_hex());
    rehash_commit(&mut b.commits[0])?;
    variants.push((
        "parent nobody has",
        b,
        BundleProblem::Missing,
        "parent".into(),
    ));
    let mut b = base.clone();
    b.objects.remove(0);
    variants.push(("missing object", b, BundleProblem::Missing, "object".into()));
    let mut b = base.clone();
    b.snapshots.clear();
    variants.push((
        "missing snapshots",
        b,
        BundleProblem::Missing,
        "snapshot".into(),
    ));

    // Shapes that are msgpack but not a bundle.
    let mut b = base.clone();
    b.commits[0] = json!("a commit that is a string");
    variants.push(("commit not a map", b, BundleProblem::Shape, "commit".into()));
    let mut b = base.clone();
    b.objects[0].0 = json!(7);
    variants.push((
        "object id not a str",
        b,
        BundleProblem::Shape,
        "object_id".into(),
    ));

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (what, bundle, problem, needle) in &variants {
        refused(&dst, &bundle.encode()?, Some(*problem), needle, what)?;
        *counts.entry(what).or_default() += 1;
    }

    // Raw bytes: not msgpack, not a map, not a bundle.
    let good = base.encode()?;
    let mut trailing = good.clone();
    trailing.push(0xc0);
    let mut raw: Vec<(&str, Vec<u8>, BundleProblem, &str)> = vec![
        (
            "empty input",
            vec![],
            BundleProblem::NotMsgpack,
            "truncated",
        ),
        (
            "reserved byte",
            b"\xc1not msgpack".to_vec(),
            BundleProblem::NotMsgpack,
            "0xc1",
        ),
        (
            "json text",
            br#"{"commits": []}"#.to_vec(),
            BundleProblem::NotAMap,
            "map",
        ),
        (
            "an array",
            vec![0x93, 1, 2, 3],
            BundleProblem::NotAMap,
            "array",
        ),
        ("an int", vec![0x05], BundleProblem::NotAMap, "int"),
        (
            "trailing bytes",
            trailing,
            BundleProblem::Shape,
            "after the bundle",
        ),
        (
            "invalid utf-8 key",
            vec![0x81, 0xa2, 0xff, 0xfe, 0xc0],
            BundleProblem::NotMsgpack,
            "UTF-8",
        ),
        (
            "commits not an array",
            vec![0x81, 0xa7, b'c', b'o', b'm', b'm', b'i', b't', b's', 0x05],
            BundleProblem::Shape,
            "array",
        ),
        (
            "huge array header, no data",
            [
                &[0x81, 0xa7][..],
                b"commits",
                &[0xdd, 0xff, 0xff, 0xff, 0xff],
            ]
            .concat(),
            BundleProblem::NotMsgpack,
            "truncated",
        ),
        (
            "huge bin header, no data",
            [
                &[0x81, 0xa7][..],
                b"objects",
                &[0x91, 0x82, 0xa9],
                b"object_id",
                &[0xa1, b'x', 0xa7],
                b"content",
                &[0xc6, 0xff, 0xff, 0xff, 0xff],
            ]
            .concat(),
            BundleProblem::NotMsgpack,
            "truncated",
        ),
        (
            "content as str",
            [
                &[0x81, 0xa7][..],
                b"objects",
                &[0x91, 0x82, 0xa9],
                b"object_id",
                &[0xa1, b'x', 0xa7],
                b"content",
                &[0xa1, b'y'],
            ]
            .concat(),
            BundleProblem::Shape,
            "bin",
        ),
        (
            "object without content",
            [
                &[0x81, 0xa7][..],
                b"objects",
                &[0x91, 0x81, 0xa9],
                b"object_id",
                &[0xa1, b'x'],
            ]
            .concat(),
            BundleProblem::Shape,
            "content",
        ),
        (
            "deep nesting",
            [
                &[0x81, 0xa7][..],
                b"commits",
                &[0x91],
                &[0x91; 200][..],
                &[0xc0],
            ]
            .concat(),
            BundleProblem::Shape,
            "nested",
        ),
    ];
    let mut dup = vec![0x81, 0xa7];
    dup.extend_from_slice(b"objects");
    dup.extend_from_slice(&[0x91, 0x82, 0xa7]);
    dup.extend_from_slice(b"content");
    dup.extend_from_slice(&[0xc4, 0x00, 0xa7]);
    dup.extend_from_slice(b"content");
    dup.extend_from_slice(&[0xc4, 0x00]);
    raw.push(("content twice", dup, BundleProblem::Shape, "twice"));
    // A top-level key twice: both copies would be processed (the reference
    // keeps only the last).
    let mut top = vec![0x82, 0xa7];
    top.extend_from_slice(b"objects");
    top.push(0x90);
    top.push(0xa7);
    top.extend_from_slice(b"objects");
    top.push(0x90);
    raw.push(("top-level key twice", top, BundleProblem::Shape, "twice"));
    for (what, bytes, problem, needle) in &raw {
        refused(&dst, bytes, Some(*problem), needle, what)?;
        *counts.entry(what).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    println!("hostile bundles: {total} variants: {counts:?}");
    // And the base itself is accepted (the variants fail for their change).
    unpack(&dst, &good)?;
    Ok(())
}

#[test]
fn cli_plumbing_packs_unpacks_and_verifies() -> TestResult {
    let (dir, repo) = ref_history()?;
    let root = repo.work_tree().to_path_buf();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_muse"))
        .current_dir(&root)
        .args(["plumbing", "pack-objects", "main~0"])
        .output()?;
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        run.stdout,
        fixture_bytes("full.msgpack")?,
        "a revision as want"
    );
    let unknown = crate::support::muse(&root, &["plumbing", "pack-objects", "nope"])?;
    assert_eq!(unknown.0, 1, "an unknown want is exit 1: {unknown:?}");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty)?;
    assert_eq!(crate::support::muse(&empty, &["init"])?.0, 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_muse"))
        .current_dir(&empty)
        .args(["plumbing", "unpack-objects"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(&run.stdout)?;
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        report,
        json!({"commits_written": 3, "snapshots_written": 3, "objects_written": 15, "objects_skipped": 0})
    );
    let verify = crate::support::muse(
        &empty,
        &[
            "plumbing",
            "verify-pack",
            "-i",
            shared_dir()
                .join("fixtures/bundles/full.msgpack")
                .to_str()
                .ok_or("path")?,
        ],
    )?;
    assert_eq!(verify.0, 0, "{verify:?}");
    assert!(verify.1.contains("\"all_ok\": true"), "{verify:?}");
    Ok(())
}

#[test]
fn a_killed_unpack_leaves_a_quarantine_that_recovery_removes() -> TestResult {
    let src = small()?;
    let mut bytes = pack(&src.repo, &[src.second], &[])?;
    bytes.truncate(bytes.len() - 3);
    let (_dir, dst) = receiver()?;
    let before = state(dst.work_tree())?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_muse"))
        .current_dir(dst.work_tree())
        .args(["plumbing", "unpack-objects"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    stdin.write_all(&bytes)?;
    stdin.flush()?;
    // The bundle is not finished: the unpack waits for more, quarantine open.
    let q = dst.work_tree().join(".muse/quarantine");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fs::read_dir(&q).map_or(0, Iterator::count) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no quarantine appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A live unpack's quarantine is not recovery's to remove.
    let live = open(dst.work_tree())?;
    live.recover()?;
    assert!(fs::read_dir(&q)?.count() >= 2, "a live quarantine stays");
    child.kill()?;
    child.wait()?;
    drop(stdin);
    let report = muse_store::fsck(&dst, &NoProgress)?;
    assert_eq!(
        report
            .of_kind(muse_store::ProblemKind::LeftoverQuarantine)
            .count(),
        1,
        "fsck reports the dead unpack's quarantine: {:?}",
        report.problems
    );
    let reopened = open(dst.work_tree())?;
    drop(reopened);
    assert_no_quarantine(dst.work_tree(), "after the next open");
    assert_eq!(state(dst.work_tree())?, before, "nothing was published");
    Ok(())
}

/// Runs `muse` in `dir`; returns (exit code, stdout + stderr).
fn cli(dir: &Path, args: &[&str]) -> TestResult<(i32, String)> {
    let (code, out, err) =
        crate::support::muse_env(dir, args, &[("MUSE_DURABILITY", "none")], None)?;
    Ok((code, format!("{out}{err}")))
}

fn ok(dir: &Path, args: &[&str]) -> TestResult<String> {
    let (code, out) = cli(dir, args)?;
    assert_eq!(code, 0, "muse {args:?} in {}: {out}", dir.display());
    Ok(out)
}

/// A remote with two files (one empty) on main, a second branch, and a
/// config that lets pushes move its checked-out branch.
fn remote_repo(base: &Path) -> TestResult<Repository> {
    let root = base.join("remote");
    let repo = Repository::init_with(
        &root,
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )?;
    repo.commit_files(
        [("a.txt", &b"one\n"[..]), ("empty", &b""[..])],
        &NewCommit::new("r1"),
    )?;
    let tip = repo.refs().head_commit()?.ok_or("tip")?;
    repo.refs().update(
        &muse_store::BranchName::new("shared")?,
        tip,
        Expected::Absent,
        "branch: shared",
    )?;
    Ok(repo)
}

fn allow_current_branch_pushes(repo: &Repository) -> TestResult {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(repo.layout().config())?;
    file.write_all(b"\n[receive]\ndenyCurrentBranch = \"ignore\"\n")?;
    Ok(())
}

fn healthy(root: &Path, what: &str) -> TestResult {
    let repo = open(root)?;
    let report = muse_store::fsck(&repo, &NoProgress)?;
    assert!(report.is_healthy(), "{what}: {:?}", report.problems);
    assert_no_quarantine(root, what);
    Ok(())
}

#[test]
fn clone_fetch_pull_and_push_between_local_repositories() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let remote_root = remote.work_tree().to_path_buf();
    let url = format!("file://{}", remote_root.display());
    ok(base.path(), &["clone", &url, "mine"])?;
    let mine = base.path().join("mine");
    assert_eq!(fs::read(mine.join("a.txt"))?, b"one\n");
    assert_eq!(
        fs::read(mine.join("empty"))?,
        b"",
        "the empty file was cloned"
    );
    let local = open(&mine)?;
    let main = muse_store::BranchName::new("main")?;
    let shared = muse_store::BranchName::new("shared")?;
    let tip = remote.refs().head_commit()?.ok_or("tip")?;
    assert_eq!(local.refs().branch(&main)?, Some(tip), "main cloned");
    assert_eq!(
        local.refs().branch(&shared)?,
        Some(tip),
        "every branch cloned"
    );
    assert_eq!(local.refs().remote_tracking("origin", &main)?, Some(tip));
    assert_eq!(local.config()?.remote("origin")?.ok_or("origin")?.url, url);
    healthy(&mine, "after clone")?;

    // Push: the remote's checked-out branch is refused until allowed.
    fs::write(mine.join("b.txt"), "b\n")?;
    ok(&mine, &["commit", "-m", "mine"])?;
    let (code, out) = cli(&mine, &["push"])?;
    assert_eq!(code, 1, "pushing the checked-out branch: {out}");
    assert!(out.contains("checked out"), "{out}");
    assert_eq!(
        remote.refs().branch(&main)?,
        Some(tip),
        "refused push moved nothing"
    );
    allow_current_branch_pushes(&remote)?;
    ok(&mine, &["push"])?;
    let pushed = open(&mine)?.refs().branch(&main)?.ok_or("main")?;
    let remote = open(&remote_root)?;
    assert_eq!(remote.refs().branch(&main)?, Some(pushed));
    let log = remote.refs().reflog(&main)?;
    assert_eq!(
        log.entries.last().map(|e| e.operation.as_str()),
        Some("push"),
        "the remote's reflog records the push"
    );
    healthy(&remote_root, "remote after push")?;

    // Someone else pushes: our next push is refused (not a fast-forward),
    // fetch moves the tracking pointer, pull fast-forwards.
    let other = base.path().join("other");
    ok(base.path(), &["clone", &url, "other"])?;
    fs::write(other.join("c.txt"), "c\n")?;
    ok(&other, &["commit", "-m", "other"])?;
    ok(&other, &["push"])?;
    let theirs = open(&other)?.refs().branch(&main)?.ok_or("main")?;
    let fetched = ok(&mine, &["fetch"])?;
    assert!(fetched.contains("origin/main"), "{fetched}");
    assert_eq!(
        open(&mine)?.refs().remote_tracking("origin", &main)?,
        Some(theirs)
    );
    ok(&mine, &["pull"])?;
    assert_eq!(
        fs::read(mine.join("c.txt"))?,
        b"c\n",
        "pull updated the working tree"
    );
    assert_eq!(open(&mine)?.refs().branch(&main)?, Some(theirs));
    let again = ok(&mine, &["fetch"])?;
    assert!(again.contains("up to date"), "{again}");
    healthy(&mine, "after pull")?;

    // ls-remote on a path and on the configured name.
    let listed: Value = serde_json::from_str(&ok(&mine, &["plumbing", "ls-remote", "origin"])?)?;
    assert_eq!(listed["branch_heads"]["main"], json!(theirs.to_hex()));
    assert_eq!(listed["default_branch"], json!("main"));
    Ok(())
}

/// REFERENCE.md section 3: a clone takes the remote's `repo_id` and
/// `domain` (its tags live under `tags/<repo_id>/`); an id that cannot name
/// a directory is refused and leaves nothing behind.
#[test]
fn clone_keeps_the_remotes_identity_and_refuses_a_hostile_one() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let root = remote.work_tree().to_path_buf();
    let json = root.join(".muse/repo.json");
    let mut info: Value = serde_json::from_slice(&fs::read(&json)?)?;
    info["domain"] = Value::from("midi");
    fs::write(&json, serde_json::to_vec_pretty(&info)?)?;
    let url = format!("file://{}", root.display());
    ok(base.path(), &["clone", &url, "same"])?;
    let cloned = open(&base.path().join("same"))?;
    let remote = open(&root)?;
    assert_eq!(cloned.info()?.repo_id, remote.info()?.repo_id);
    assert_eq!(cloned.info()?.domain, "midi");

    for hostile in ["../../escape", "", "a/b", "\u{1b}]0;pwned\u{7}"] {
        info["repo_id"] = Value::from(hostile);
        fs::write(&json, serde_json::to_vec_pretty(&info)?)?;
        let (code, out) = cli(base.path(), &["clone", &url, "bad"])?;
        assert_ne!(code, 0, "repo_id {hostile:?} accepted: {out}");
        assert!(out.contains("repository id"), "{hostile:?}: {out}");
        let left: Vec<_> = fs::read_dir(base.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        assert!(
            !left
                .iter()
                .any(|n| n == "bad" || n.starts_with(".muse-tmp-clone")),
            "{hostile:?} left {left:?}"
        );
    }
    assert!(!base.path().join("escape").exists());
    Ok(())
}

/// A corrupt object on the sending side stops a clone, a fetch and a push
/// with the sender's error (the object and what is wrong with it), not the
/// receiver's "truncated" that the cut stream causes; nothing is received.
#[test]
fn a_corrupt_object_at_the_sender_is_named_as_the_cause() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let url = remote.work_tree().display().to_string();
    ok(base.path(), &["clone", &url, "mine"])?;
    let mine = base.path().join("mine");
    let damage = |repo: &Repository, bytes: &[u8]| -> TestResult<(ObjectId, PathBuf)> {
        let made = repo.commit_files([("new.txt", bytes)], &NewCommit::new("new"))?;
        let id = repo
            .records()
            .read_snapshot(&made.commit.snapshot_id)?
            .manifest["new.txt"];
        let path = repo.objects().path(&id);
        let mut perms = fs::metadata(&path)?.permissions();
        #[expect(
            clippy::permissions_set_readonly_false,
            reason = "the test damages the object"
        )]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms)?;
        fs::write(&path, b"not what was stored")?;
        Ok((id, path))
    };
    let expect_named = |out: &str, id: &ObjectId, what: &str| {
        assert!(
            out.contains(&id.to_hex()) && !out.contains("truncated"),
            "{what}: the corrupt object {id} is not named as the cause: {out}"
        );
    };
    // The remote's object is damaged: clone and fetch stop on it.
    let (bad, _) = damage(&remote, b"remote content\n")?;
    let (code, out) = cli(base.path(), &["clone", &url, "again"])?;
    assert_ne!(code, 0, "clone of a corrupt source succeeded: {out}");
    expect_named(&out, &bad, "clone");
    assert!(
        !base.path().join("again").exists(),
        "a failed clone left its directory"
    );
    let (code, out) = cli(&mine, &["fetch"])?;
    assert_ne!(code, 0, "fetch of a corrupt object succeeded: {out}");
    expect_named(&out, &bad, "fetch");
    assert!(
        !open(&mine)?.objects().contains(&bad),
        "the corrupt object was received"
    );
    assert_no_quarantine(&mine, "failed fetch");
    // Our own object is damaged: push stops on it and the remote is as it was.
    allow_current_branch_pushes(&remote)?;
    let local = open(&mine)?;
    let (ours, _) = damage(&local, b"local content\n")?;
    let before = open(remote.work_tree())?
        .refs()
        .branch(&muse_store::BranchName::new("main")?)?;
    let (code, out) = cli(&mine, &["push", "origin", "main"])?;
    assert_ne!(code, 0, "push of a corrupt object succeeded: {out}");
    expect_named(&out, &ours, "push");
    let remote = open(remote.work_tree())?;
    assert_eq!(
        remote
            .refs()
            .branch(&muse_store::BranchName::new("main")?)?,
        before
    );
    assert!(
        !remote.objects().contains(&ours),
        "the corrupt object was pushed"
    );
    assert_no_quarantine(remote.work_tree(), "failed push");
    Ok(())
}

/// A remote whose branch names a commit it does not have, or whose history
/// lacks a parent, is named as the damaged one: the clone fails saying
/// which repository and what names the missing record, and leaves nothing.
#[test]
fn a_missing_record_at_the_remote_names_the_remote() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let root = remote.work_tree().to_path_buf();
    let url = root.display().to_string();
    let first = remote.refs().head_commit()?.ok_or("tip")?;
    let second = remote
        .commit_files([("b.txt", &b"b\n"[..])], &NewCommit::new("second"))?
        .commit
        .commit_id;
    remote.refs().update(
        &muse_store::BranchName::new("shared")?,
        second,
        Expected::Value(first),
        "test: shared to the second commit",
    )?;
    // The parent of both tips is gone.
    fs::remove_file(remote.layout().commit_path(&first))?;
    let (code, out) = cli(base.path(), &["clone", &url, "c1"])?;
    assert_ne!(code, 0, "clone of a remote missing a parent: {out}");
    assert!(
        out.contains(&first.to_hex()) && out.contains(&format!("in the remote repository '{url}'")),
        "the error names the missing parent and the remote: {out}"
    );
    assert!(!base.path().join("c1").exists());
    // A branch names a commit that is not there at all.
    let ghost = ObjectId::hash(b"no such commit");
    fs::write(root.join(".muse/refs/heads/shared"), format!("{ghost}\n"))?;
    let (code, out) = cli(base.path(), &["clone", &url, "c2"])?;
    assert_ne!(code, 0, "clone of a branch naming a missing commit: {out}");
    assert!(
        out.contains(&ghost.to_hex())
            && out.contains(&format!("a branch of the remote repository '{url}'")),
        "the error names the missing tip and the remote: {out}"
    );
    assert!(!base.path().join("c2").exists());
    Ok(())
}

/// An unusable destination is refused before anything is fetched (exit 1,
/// naming it), and nothing is left beside it; `dir/.` and `../dir` are
/// ordinary names; of clones racing into one place exactly one lands and
/// the others fail cleanly, leaving no temp directory.
#[test]
fn clone_refuses_an_unusable_destination_before_any_work() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let url = remote.work_tree().display().to_string();
    let b = base.path().join("place");
    fs::create_dir(&b)?;
    fs::create_dir(b.join("empty"))?;
    fs::create_dir(b.join("full"))?;
    fs::write(b.join("full/keep"), "k")?;
    fs::write(b.join("file"), "f")?;
    fs::create_dir(b.join("target"))?;
    std::os::unix::fs::symlink(b.join("target"), b.join("link"))?;
    std::os::unix::fs::symlink(b.join("nowhere"), b.join("dangling"))?;
    let leftovers = |dir: &Path| -> TestResult<Vec<String>> {
        Ok(fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|n| n.starts_with(".muse-tmp-clon"))
            .collect())
    };
    for (cwd, dest, why) in [
        (b.join("empty"), ".", "current directory"),
        (b.clone(), "empty/..", "must name a directory"),
        (b.clone(), "full", "not empty"),
        (b.clone(), "file", "not empty"),
        (b.clone(), "link", "symlink"),
        (b.clone(), "dangling", "symlink"),
        (b.clone(), "nope/deeper", "parent directory does not exist"),
    ] {
        let (code, out) = cli(&cwd, &["clone", &url, dest])?;
        assert_eq!(code, 1, "clone into {dest:?}: {out}");
        assert!(
            out.contains(why),
            "clone into {dest:?} says why ({why}): {out}"
        );
        assert!(
            !out.contains("Fetched"),
            "{dest:?}: refused only after fetching: {out}"
        );
        assert_eq!(
            leftovers(&b)?,
            Vec::<String>::new(),
            "{dest:?} left temp directories"
        );
        assert_eq!(
            leftovers(&cwd)?,
            Vec::<String>::new(),
            "{dest:?} left temp directories"
        );
    }
    assert_eq!(
        fs::read_dir(b.join("empty"))?.count(),
        0,
        "the current directory was changed"
    );
    assert_eq!(
        fs::read_dir(b.join("target"))?.count(),
        0,
        "written through the symlink"
    );
    assert_eq!(fs::read(b.join("full/keep"))?, b"k");
    assert!(!b.join("nowhere").exists());

    // Ordinary spellings of a name.
    ok(&b, &["clone", &url, "empty/."])?;
    assert!(b.join("empty/a.txt").exists(), "clone into empty/.");
    fs::create_dir(b.join("sub"))?;
    ok(&b.join("sub"), &["clone", &url, "../sibling"])?;
    assert!(b.join("sibling/a.txt").exists(), "clone into ../sibling");
    ok(&b, &["clone", &url, "fresh/."])?;
    assert!(b.join("fresh/a.txt").exists(), "clone into fresh/.");

    // Racing clones into one place: one lands whole, the others say so.
    let results: Vec<(i32, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| cli(&b, &["clone", &url, "raced"]).map_err(|e| e.to_string())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".to_owned())))
            .collect::<Result<_, _>>()
    })?;
    let landed = results.iter().filter(|(code, _)| *code == 0).count();
    assert_eq!(landed, 1, "exactly one racing clone lands: {results:?}");
    for (code, out) in &results {
        assert!(
            *code == 0 || (*code == 1 && out.contains("exists and is not empty")),
            "a losing clone fails cleanly: {code} {out}"
        );
    }
    assert_eq!(
        leftovers(&b)?,
        Vec::<String>::new(),
        "racing clones left temp directories"
    );
    healthy(&b.join("raced"), "the clone that landed")?;
    Ok(())
}

/// A clone removes the temp directories dead clones left beside its
/// destination: `.muse-tmp-clone-<name>-*` whose lock is free, and
/// `.muse-tmp-cloning-*` (killed before it locked) once older than the
/// grace a live clone has to lock it; a locked one and a fresh unlocked one
/// stay, as does a symlink of that name and what it points to.
#[test]
fn clone_removes_only_dead_clones_temp_directories() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let url = remote.work_tree().display().to_string();
    let b = base.path();
    let hex = |c: char| c.to_string().repeat(32);
    let dead = b.join(format!(".muse-tmp-clone-mine-{}", hex('a')));
    let live = b.join(format!(".muse-tmp-clone-mine-{}", hex('b')));
    let other = b.join(format!(".muse-tmp-clone-theirs-{}", hex('c')));
    let old_unlocked = b.join(format!(".muse-tmp-cloning-{}", hex('d')));
    let new_unlocked = b.join(format!(".muse-tmp-cloning-{}", hex('e')));
    let target = b.join("precious");
    // Names a clone never makes: a user's, however alike.
    let alike = [
        b.join(".muse-tmp-clone-mine-backup"),
        b.join(format!(".muse-tmp-clone-mine-{}", hex('A'))),
        b.join(format!(".muse-tmp-clone-mine-{}0", hex('a'))),
        b.join(".muse-tmp-cloning-old"),
    ];
    for d in [&dead, &live, &other, &old_unlocked, &new_unlocked, &target]
        .into_iter()
        .chain(&alike)
    {
        fs::create_dir(d)?;
        fs::write(d.join("f"), "x")?;
    }
    std::os::unix::fs::symlink(
        &target,
        b.join(format!(".muse-tmp-clone-mine-{}", hex('f'))),
    )?;
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    fs::File::open(&old_unlocked)?.set_modified(old)?;
    fs::File::open(&alike[3])?.set_modified(old)?;
    let held = fs::File::open(&live)?;
    held.lock()?;
    ok(b, &["clone", &url, "mine"])?;
    assert!(
        !dead.exists(),
        "an unlocked temp of this clone's name stays"
    );
    assert!(!old_unlocked.exists(), "an old never-locked temp stays");
    assert!(live.join("f").exists(), "a live clone's temp was removed");
    assert!(
        new_unlocked.join("f").exists(),
        "a fresh never-locked temp was removed"
    );
    assert!(other.join("f").exists(), "another name's temp was removed");
    assert!(target.join("f").exists(), "removed through a symlink");
    for d in &alike {
        assert!(
            d.join("f").exists(),
            "{} is not a clone's, yet removed",
            d.display()
        );
    }
    drop(held);
    Ok(())
}
/// `fetch --prune` removes the pointers of branches gone on the remote (a
/// nested one too) and keeps the others; `push -u` records the upstream.
#[test]
fn fetch_prune_and_push_set_upstream() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let tip = remote.refs().head_commit()?.ok_or("tip")?;
    let nested = muse_store::BranchName::new("feature/x")?;
    remote
        .refs()
        .update(&nested, tip, Expected::Absent, "branch: feature/x")?;
    let url = format!("file://{}", remote.work_tree().display());
    ok(base.path(), &["clone", &url, "mine"])?;
    let mine = base.path().join("mine");
    let local = open(&mine)?;
    let shared = muse_store::BranchName::new("shared")?;
    let main = muse_store::BranchName::new("main")?;
    assert_eq!(local.refs().remote_tracking("origin", &nested)?, Some(tip));

    remote.refs().delete_branch(&shared)?;
    remote.refs().delete_branch(&nested)?;
    let out = ok(&mine, &["fetch"])?;
    assert!(!out.contains("pruned"), "no prune without --prune: {out}");
    assert_eq!(local.refs().remote_tracking("origin", &shared)?, Some(tip));
    let out = ok(&mine, &["fetch", "--prune"])?;
    assert!(out.contains("origin/shared pruned"), "{out}");
    assert!(out.contains("origin/feature/x pruned"), "{out}");
    assert_eq!(local.refs().remote_tracking("origin", &shared)?, None);
    assert_eq!(local.refs().remote_tracking("origin", &nested)?, None);
    assert_eq!(local.refs().remote_tracking("origin", &main)?, Some(tip));
    healthy(&mine, "after fetch --prune")?;

    allow_current_branch_pushes(&remote)?;
    fs::write(mine.join("b.txt"), "b\n")?;
    ok(&mine, &["commit", "-m", "b"])?;
    ok(&mine, &["branch", "topic"])?;
    let config = || fs::read_to_string(mine.join(".muse/config.toml"));
    assert!(config()?.contains("branch = \"main\""), "clone set main");
    let out = ok(&mine, &["push", "-u", "origin", "topic"])?;
    assert!(out.contains("set up to track origin/topic"), "{out}");
    let after = config()?;
    let parsed: toml::Table = toml::from_str(&after)?;
    assert_eq!(
        parsed["remotes"]["origin"]["branch"].as_str(),
        Some("topic"),
        "{after}"
    );
    assert_eq!(
        parsed["remotes"]["origin"]["url"].as_str(),
        Some(url.as_str())
    );
    Ok(())
}

/// A fetch or a push after a small change sends the changed objects, not
/// the whole tree: the objects of the receiver's tips stay behind.
#[test]
fn fetch_and_push_send_only_what_the_receiver_lacks() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    allow_current_branch_pushes(&remote)?;
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("f{i}.txt"), format!("file {i}\n").into_bytes()))
        .collect();
    remote.commit_files(files.clone(), &NewCommit::new("forty files"))?;
    let url = format!("file://{}", remote.work_tree().display());
    ok(base.path(), &["clone", &url, "mine"])?;
    let local = open(&base.path().join("mine"))?;

    let mut changed = files.clone();
    changed[3].1 = b"changed on the remote\n".to_vec();
    remote.commit_files(changed.clone(), &NewCommit::new("one change"))?;
    let fetched = muse_store::fetch(&local, "origin", &[])?;
    let r = &fetched.received;
    assert_eq!(r.commits_written, 1, "{r:?}");
    assert_eq!(
        (r.objects_written, r.objects_skipped),
        (1, 0),
        "only the changed object crosses: {r:?}"
    );
    healthy(&base.path().join("mine"), "after fetch")?;

    let main = muse_store::BranchName::new("main")?;
    let tip = local
        .refs()
        .remote_tracking("origin", &main)?
        .ok_or("tip")?;
    let mut tx = local.refs().transaction("ff");
    tx.update(main.clone(), tip, Expected::Any);
    tx.commit()?;
    let mut mine = changed;
    mine[7].1 = b"changed here\n".to_vec();
    mine.push(("new.txt".to_owned(), b"new\n".to_vec()));
    local.commit_files(mine, &NewCommit::new("two changes"))?;
    // The push leaves the objects of the remote's tip behind: take one of
    // them away there, and the push is refused naming it (the receiver's
    // check), nothing moved; put it back, and the push goes through.
    let unchanged = muse_store::ObjectId::hash(b"file 10\n");
    let stored = remote.layout().object_path(&unchanged);
    let saved = fs::read(&stored)?;
    fs::remove_file(&stored)?;
    let err = muse_store::push(
        &local,
        "origin",
        std::slice::from_ref(&main),
        &muse_store::PushOptions::default(),
        &muse_store::NoProgress,
    )
    .expect_err("the remote lacks an object the push assumed it has");
    assert!(err.to_string().contains(&unchanged.to_hex()), "{err}");
    assert_eq!(remote.refs().branch(&main)?, Some(tip), "nothing moved");
    fs::write(&stored, saved)?;
    muse_store::push(
        &local,
        "origin",
        &[main],
        &muse_store::PushOptions::default(),
        &muse_store::NoProgress,
    )?;
    healthy(remote.work_tree(), "after push")?;
    Ok(())
}

/// The attack review of 2026-12-04: `.muse/quarantine` or `.muse/remotes`
/// made a symlink to a directory outside made recovery and `fetch --prune`
/// delete the files there; a pruned nested pointer left a directory that
/// blocked a later branch's pointer; a FIFO at a reflog hung `commit`.
#[test]
fn symlinked_repository_directories_are_never_followed_to_delete() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let tip = remote.refs().head_commit()?.ok_or("tip")?;
    let nested = muse_store::BranchName::new("feature/x")?;
    remote
        .refs()
        .update(&nested, tip, Expected::Absent, "branch: feature/x")?;
    let url = format!("file://{}", remote.work_tree().display());
    ok(base.path(), &["clone", &url, "mine"])?;
    let mine = base.path().join("mine");
    let outside = base.path().join("outside");
    fs::create_dir_all(outside.join("sub"))?;
    fs::write(outside.join("sub/precious"), "keep me\n")?;
    fs::write(outside.join("victim"), "keep me too\n")?;
    let intact = |what: &str| -> TestResult {
        assert_eq!(
            fs::read(outside.join("sub/precious"))?,
            b"keep me\n",
            "{what}"
        );
        assert_eq!(
            fs::read(outside.join("victim"))?,
            b"keep me too\n",
            "{what}"
        );
        Ok(())
    };

    // A symlinked quarantine root: recovery refuses it instead of removing
    // what it points at.
    let quarantine = mine.join(".muse/quarantine");
    if quarantine.exists() {
        fs::remove_dir_all(&quarantine)?;
    }
    std::os::unix::fs::symlink(&outside, &quarantine)?;
    let (code, out) = cli(&mine, &["status"])?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("symlink"), "{out}");
    intact("after status over a symlinked quarantine")?;
    fs::remove_file(mine.join(".muse/quarantine"))?;

    // A symlinked remotes/: prune refuses it.
    remote.refs().delete_branch(&nested)?;
    let remotes = mine.join(".muse/remotes");
    let real = base.path().join("real-remotes");
    fs::rename(&remotes, &real)?;
    fs::create_dir_all(outside.join("origin"))?;
    fs::write(outside.join("origin/victim"), "x")?;
    std::os::unix::fs::symlink(&outside, &remotes)?;
    let (code, out) = cli(&mine, &["fetch", "--prune"])?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("symlink"), "{out}");
    assert!(
        outside.join("origin/victim").exists(),
        "prune followed the symlink"
    );
    intact("after fetch --prune over a symlinked remotes/")?;
    fs::remove_file(&remotes)?;
    fs::rename(&real, &remotes)?;

    // A pruned nested pointer takes its emptied directory with it, so a
    // branch named like that directory gets its pointer.
    let out = ok(&mine, &["fetch", "--prune"])?;
    assert!(out.contains("origin/feature/x pruned"), "{out}");
    assert!(
        !remotes.join("origin/feature").exists(),
        "emptied directory left"
    );
    remote.refs().update(
        &muse_store::BranchName::new("feature")?,
        tip,
        Expected::Absent,
        "branch: feature",
    )?;
    ok(&mine, &["fetch"])?;

    // A FIFO where HEAD's reflog belongs: the commit fails, it does not hang.
    fs::remove_file(mine.join(".muse/logs/HEAD"))?;
    let fifo = std::ffi::CString::new(
        mine.join(".muse/logs/HEAD")
            .into_os_string()
            .into_encoded_bytes(),
    )?;
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    fs::write(mine.join("c.txt"), "c\n")?;
    let (code, out) = cli(&mine, &["commit", "-m", "c"])?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("regular file"), "{out}");
    Ok(())
}

#[test]
fn push_is_compare_and_swap_and_atomic() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    allow_current_branch_pushes(&remote)?;
    let url = remote.work_tree().display().to_string();
    ok(base.path(), &["clone", &url, "a"])?;
    ok(base.path(), &["clone", &url, "b"])?;
    let (a, b) = (base.path().join("a"), base.path().join("b"));
    let main = muse_store::BranchName::new("main")?;
    let shared = muse_store::BranchName::new("shared")?;
    fs::write(a.join("a"), "a\n")?;
    ok(&a, &["commit", "-m", "a"])?;
    ok(&a, &["push"])?;
    let a_tip = open(&a)?.refs().branch(&main)?.ok_or("a")?;
    fs::write(b.join("b"), "b\n")?;
    ok(&b, &["commit", "-m", "b"])?;
    let b_tip = open(&b)?.refs().branch(&main)?.ok_or("b")?;
    let (code, out) = cli(&b, &["push"])?;
    assert_eq!(code, 1, "b did not see a's push: {out}");
    assert!(out.contains("push rejected"), "{out}");
    let wrong = ObjectId::hash(b"not the remote's value").to_hex();
    let (code, out) = cli(
        &b,
        &[
            "push",
            "origin",
            "main",
            &format!("--force-with-lease=main:{wrong}"),
        ],
    )?;
    assert_eq!(code, 1, "a lease on the wrong value: {out}");
    assert_eq!(
        open(remote.work_tree())?.refs().branch(&main)?,
        Some(a_tip),
        "a's push survives"
    );

    // Two branches at once, one of which cannot move: neither moves.
    ok(&b, &["branch", "side"])?;
    let (code, out) = cli(&b, &["push", "origin", "side", "main"])?;
    assert_eq!(code, 1, "{out}");
    let r = open(remote.work_tree())?;
    assert_eq!(
        r.refs().branch(&muse_store::BranchName::new("side")?)?,
        None,
        "all or none"
    );
    assert_eq!(r.refs().branch(&main)?, Some(a_tip));

    // The right lease, and --force, do move it.
    ok(
        &b,
        &[
            "push",
            "origin",
            "main",
            &format!("--force-with-lease=main:{}", a_tip.to_hex()),
        ],
    )?;
    assert_eq!(open(remote.work_tree())?.refs().branch(&main)?, Some(b_tip));
    fs::write(a.join("a2"), "a2\n")?;
    ok(&a, &["commit", "-m", "a2"])?;
    ok(&a, &["push", "--force", "origin", "main", "shared"])?;
    let r = open(remote.work_tree())?;
    let a2 = open(&a)?.refs().branch(&main)?.ok_or("a2")?;
    assert_eq!(r.refs().branch(&main)?, Some(a2));
    assert_eq!(r.refs().branch(&shared)?, open(&a)?.refs().branch(&shared)?);
    healthy(remote.work_tree(), "remote")?;
    Ok(())
}

#[test]
fn concurrent_pushes_to_one_branch_lose_nothing() -> TestResult {
    const WORKERS: usize = 8;
    const PUSHES: usize = 3;
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    let url = remote.work_tree().display().to_string();
    for w in 0..WORKERS {
        ok(base.path(), &["clone", &url, &format!("w{w}")])?;
    }
    let shared = muse_store::BranchName::new("shared")?;
    let results: Vec<Result<(Vec<ObjectId>, usize), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let dir = base.path().join(format!("w{w}"));
                let shared = shared.clone();
                scope
                    .spawn(move || push_worker(&dir, w, &shared, PUSHES).map_err(|e| e.to_string()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a worker panicked".to_owned()))
            })
            .collect()
    });
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for r in results {
        let (a, n) = r?;
        accepted.extend(a);
        rejected += n;
    }
    let remote = open(remote.work_tree())?;
    let tip = remote.refs().branch(&shared)?.ok_or("tip")?;
    let history = muse_store::ancestors(remote.records(), tip)?;
    for c in &accepted {
        assert!(
            history.contains(c),
            "accepted push {c} lost from the remote's history"
        );
    }
    let pushes = remote
        .refs()
        .reflog(&shared)?
        .entries
        .iter()
        .filter(|e| e.operation == "push")
        .count();
    println!(
        "concurrent push: {WORKERS} processes x {PUSHES}: {} accepted, {rejected} rejected and retried, {pushes} push entries in the remote's reflog",
        accepted.len()
    );
    assert_eq!(accepted.len(), WORKERS * PUSHES);
    assert_eq!(pushes, accepted.len(), "one reflog entry per accepted push");
    healthy(remote.work_tree(), "remote after the race")?;
    Ok(())
}

/// One pusher: `pushes` accepted pushes of a new commit on `shared`, each
/// built on what the remote last showed, retrying on rejection.
fn push_worker(
    dir: &Path,
    w: usize,
    shared: &muse_store::BranchName,
    pushes: usize,
) -> TestResult<(Vec<ObjectId>, usize)> {
    let mut accepted = Vec::new();
    let mut rejected = 0;
    while accepted.len() < pushes {
        ok(dir, &["fetch", "origin", "shared"])?;
        let repo = open(dir)?;
        let seen = repo
            .refs()
            .remote_tracking("origin", shared)?
            .ok_or("seen")?;
        repo.refs()
            .update(shared, seen, Expected::Any, "reset: to origin/shared")?;
        repo.refs()
            .set_head(&Head::Branch(shared.clone()), "switch")?;
        let made = repo.commit_files(
            [(format!("w{w}-{}", accepted.len()), format!("{w}\n"))],
            &NewCommit::new(format!("worker {w} push {}", accepted.len())),
        )?;
        let (code, out) = cli(dir, &["push", "origin", "shared"])?;
        match code {
            0 => accepted.push(made.commit.commit_id),
            1 if out.contains("push rejected") => rejected += 1,
            _ => return Err(format!("worker {w}: push failed: {out}").into()),
        }
    }
    Ok((accepted, rejected))
}

/// What a [`muse_store::Progress`] was told, for the progress test.
#[derive(Default)]
struct Recorded {
    starts: std::sync::Mutex<Vec<(&'static str, u64)>>,
    units: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicU64,
}

impl muse_store::Progress for Recorded {
    fn start(&self, phase: &'static str, total: u64) {
        if let Ok(mut starts) = self.starts.lock() {
            starts.push((phase, total));
        }
    }
    fn advance(&self, n: u64) {
        self.units
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn advance_bytes(&self, n: u64) {
        self.bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Recorded {
    fn totals(&self) -> (Vec<(&'static str, u64)>, u64, u64, u64) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        (
            self.starts.lock().map(|s| s.clone()).unwrap_or_default(),
            load(&self.units),
            load(&self.bytes),
            load(&self.finished),
        )
    }
}

/// Issue 14 item 5: fetch and push tell their progress every object and
/// every byte that crosses; the CLI draws a bar on a terminal (a pty made
/// by `script`) and none when stderr is piped.
#[test]
fn transport_progress_counts_every_object_and_byte_and_only_on_a_terminal() -> TestResult {
    let base = tempfile::tempdir()?;
    let remote = remote_repo(base.path())?;
    allow_current_branch_pushes(&remote)?;
    let url = format!("file://{}", remote.work_tree().display());
    let (code, piped) = cli(base.path(), &["clone", &url, "mine"])?;
    assert_eq!(code, 0, "{piped}");
    assert!(
        !piped.contains("receiving objects"),
        "no bar when piped: {piped:?}"
    );
    let local = open(&base.path().join("mine"))?;

    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("g{i}.bin"), vec![b'a' + i; 1000 + usize::from(i)]))
        .collect();
    remote.commit_files(files, &NewCommit::new("five more"))?;
    let seen = Recorded::default();
    let fetched = muse_store::fetch_with(
        &local,
        "origin",
        &[],
        &muse_store::FetchOptions::default(),
        &seen,
    )?;
    let r = &fetched.received;
    let (starts, units, bytes, finished) = seen.totals();
    let carried = (r.objects_written + r.objects_skipped) as u64;
    assert_eq!(starts, vec![("receiving objects", carried)], "{r:?}");
    assert_eq!((units, bytes, finished), (carried, r.bytes, 1), "{r:?}");
    assert_eq!(r.bytes, (0..5).map(|i| 1000 + i).sum::<u64>(), "{r:?}");

    let main = muse_store::BranchName::new("main")?;
    let tip = local
        .refs()
        .remote_tracking("origin", &main)?
        .ok_or("tip")?;
    let mut tx = local.refs().transaction("ff");
    tx.update(main.clone(), tip, Expected::Any);
    tx.commit()?;
    local.commit_files([("h.bin", &[7u8; 4096][..])], &NewCommit::new("mine"))?;
    let seen = Recorded::default();
    muse_store::push(
        &local,
        "origin",
        &[main],
        &muse_store::PushOptions::default(),
        &seen,
    )?;
    let (starts, units, bytes, finished) = seen.totals();
    assert_eq!(starts, vec![("receiving objects", 1)]);
    assert_eq!((units, bytes, finished), (1, 4096, 1));

    // On a terminal: `script` gives the command a pty for its stderr.
    let have_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        eprintln!("skipping the terminal half: no `script` (util-linux) here");
        return Ok(());
    }
    let command = format!(
        "MUSE_DURABILITY=none {} clone {url} on-a-tty",
        env!("CARGO_BIN_EXE_muse")
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(base.path())
        .env("TERM", "xterm")
        .output()?;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("receiving objects"),
        "a bar on a terminal: {shown:?}"
    );
    healthy(&base.path().join("on-a-tty"), "clone on a tty")?;
    Ok(())
}

/// `ls-remote`'s output, pinned byte for byte on the reference's own
/// repository: the keys of the reference's remote info (`repo_id`,
/// `domain`, `default_branch`, `branch_heads`, REFERENCE.md section 3) in
/// that order, `indent=2` JSON as the reference prints it, branches sorted;
/// `-f text` one `<id>\t<branch>` line each. The reference itself cannot be
/// run for this (its ls-remote is HTTP-only: vectors/README.md).
#[test]
fn ls_remote_prints_the_references_keys_in_its_order() -> TestResult {
    let (dir, _repo) = ref_history()?;
    let root = dir.path().join("ref-history");
    let path = root.display().to_string();
    let json = ok(dir.path(), &["plumbing", "ls-remote", &path])?;
    let expected = format!(
        "{{\n  \"repo_id\": \"d196ed18-630c-4ac7-919d-1e141e77523e\",\n  \"domain\": \"code\",\n  \"default_branch\": \"main\",\n  \"branch_heads\": {{\n    \"dev\": \"{C3}\",\n    \"main\": \"{C4}\",\n    \"topic.lock\": \"{C4}\"\n  }}\n}}\n"
    );
    assert_eq!(json, expected);
    let url = format!("file://{path}");
    assert_eq!(
        ok(dir.path(), &["plumbing", "ls-remote", &url])?,
        expected,
        "a file:// URL lists the same"
    );
    let text = ok(dir.path(), &["plumbing", "ls-remote", &path, "-f", "text"])?;
    assert_eq!(text, format!("{C3}\tdev\n{C4}\tmain\n{C4}\ttopic.lock\n"));
    Ok(())
}
