//! The `PackBundle`: the reference's wire format (REFERENCE.md section 2),
//! written and read as a stream.
//!
//! A bundle is one msgpack map: `commits` (the commit records as stored),
//! `snapshots` (`snapshot_id`, `manifest`, `created_at`), `objects`
//! (`object_id`, `content` as raw `bin`), and optionally `branch_heads`.
//!
//! Invariants:
//! - [`pack`] writes exactly what the reference writes for the same wants
//!   and haves (commits breadth-first from the wants, first parent first;
//!   snapshots and objects sorted by id; records in their stored key order),
//!   except that the empty blob and every other object travel;
//! - neither side holds a whole object, or the whole bundle, in memory: an
//!   object's bytes are copied from the store behind its `bin` header, and
//!   [`decode`] hands a `bin` payload to its [`Sink`] in fixed chunks while
//!   hashing it. A record (commit or snapshot) is held whole, up to
//!   [`RECORD_LIMIT`] bytes;
//! - [`decode`] checks the msgpack and the bundle's shape; what the entries
//!   mean (ids, hashes, paths, connectivity) is the sink's to check.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::msgpack::{self, DecodeError, Decoder, Head};
use crate::error::{BundleProblem, Error, Result};
use crate::id::{Hasher, ObjectId};
use crate::record::{CommitRecord, SnapshotRecord};
use crate::repo::Repository;
use crate::store::STREAM_BUFFER;

/// The most bytes one commit or snapshot record may take in a bundle
/// (strings plus one per value). A snapshot of a million files fits.
pub const RECORD_LIMIT: u64 = 256 * 1024 * 1024;

/// What a [`pack`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackCounts {
    /// Commit records.
    pub commits: usize,
    /// Snapshot records.
    pub snapshots: usize,
    /// Objects.
    pub objects: usize,
    /// Bytes of object content.
    pub object_bytes: u64,
}

/// The commits a bundle for `wants` carries when the receiver has `haves`:
/// breadth-first from the wants, a first parent queued before a second,
/// nothing that is a have or behind one. A have that is not stored here is
/// ignored (the receiver may know commits this repository does not).
pub fn commits_to_send(
    repo: &Repository,
    wants: &[ObjectId],
    haves: &[ObjectId],
) -> Result<Vec<CommitRecord>> {
    let records = repo.records();
    let mut excluded = HashSet::new();
    for have in haves {
        if records.contains_commit(have) && !excluded.contains(have) {
            excluded.extend(crate::history::ancestors(records, *have)?);
        }
    }
    let mut queue: VecDeque<(ObjectId, Option<ObjectId>)> =
        wants.iter().map(|w| (*w, None)).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while let Some((id, child)) = queue.pop_front() {
        if excluded.contains(&id) || !seen.insert(id) {
            continue;
        }
        let record = match child {
            None => records.read_commit(&id)?,
            Some(child) => records.read_commit_named_by(&id, || format!("commit {child}"))?,
        };
        for parent in record.parents() {
            queue.push_back((parent, Some(id)));
        }
        out.push(record);
    }
    Ok(out)
}

/// Writes the bundle of `wants` for a receiver that has `haves` to `out`
/// (buffer it: headers are small writes). Every object is verified as it is
/// copied; a damaged or missing one fails the pack (the reference leaves a
/// missing one out with a warning).
pub fn pack(
    repo: &Repository,
    wants: &[ObjectId],
    haves: &[ObjectId],
    out: &mut dyn Write,
) -> Result<PackCounts> {
    let commits = commits_to_send(repo, wants, haves)?;
    // Every object of the sent snapshots travels, as the reference's
    // pack-objects sends them (its bundles are the format's vectors).
    pack_commits(repo, &commits, None, &HashSet::new(), out)
}

/// The objects a receiver that has `haves` holds for sure: those of the
/// snapshots of the haves this repository knows (the tips only, not their
/// history: what a change since a tip leaves unchanged). A have whose
/// records cannot be read here covers nothing, so more is sent, never less.
/// The receiver still checks that every object its snapshots name is in the
/// bundle or in its store, so a wrong guess fails the unpack, naming the
/// object; it never publishes a snapshot with a missing object.
pub(crate) fn objects_covered_by(repo: &Repository, haves: &[ObjectId]) -> HashSet<ObjectId> {
    let records = repo.records();
    let mut covered = HashSet::new();
    let mut snapshots = HashSet::new();
    for have in haves {
        let Ok(commit) = records.read_commit(have) else {
            continue;
        };
        if !snapshots.insert(commit.snapshot_id) {
            continue;
        }
        if let Ok(snapshot) = records.read_snapshot(&commit.snapshot_id) {
            covered.extend(snapshot.manifest.values().copied());
        }
    }
    covered
}

/// Writes the bundle of exactly `commits` (in this order) with their
/// snapshots and every object those name but the ones in `skip` (which the
/// receiver has); `branch_heads` last when given.
pub(crate) fn pack_commits(
    repo: &Repository,
    commits: &[CommitRecord],
    branch_heads: Option<&[(String, ObjectId)]>,
    skip: &HashSet<ObjectId>,
    out: &mut dyn Write,
) -> Result<PackCounts> {
    let records = repo.records();
    let label = Path::new("<bundle output>");
    let w = |r: std::io::Result<()>| r.map_err(|e| Error::io("write the bundle", label, e));
    let mut counts = PackCounts::default();
    w(msgpack::write_map_len(
        out,
        if branch_heads.is_some() { 4 } else { 3 },
    ))?;
    w(msgpack::write_str(out, "commits"))?;
    w(msgpack::write_array_len(out, len32(commits.len())?))?;
    for commit in commits {
        let (_, raw) = records.read_commit_raw(&commit.commit_id)?;
        w(msgpack::write_json(out, &raw))?;
        counts.commits += 1;
    }
    let snapshot_ids: BTreeSet<ObjectId> = commits.iter().map(|c| c.snapshot_id).collect();
    w(msgpack::write_str(out, "snapshots"))?;
    w(msgpack::write_array_len(out, len32(snapshot_ids.len())?))?;
    let mut object_ids = BTreeSet::new();
    for id in &snapshot_ids {
        let (snapshot, raw) = records.read_snapshot_raw(id)?;
        object_ids.extend(
            snapshot
                .manifest
                .values()
                .filter(|id| !skip.contains(id))
                .copied(),
        );
        w(msgpack::write_json(out, &raw))?;
        counts.snapshots += 1;
    }
    w(msgpack::write_str(out, "objects"))?;
    w(msgpack::write_array_len(out, len32(object_ids.len())?))?;
    let objects = repo.objects();
    for id in &object_ids {
        let mut framed = 0;
        let copied = objects.copy_framed(id, out, |len, out| {
            let bin_len = u32::try_from(len).map_err(|_| Error::Input {
                path: objects.path(id),
                reason: "an object of 4 GiB or more cannot travel in a msgpack bundle".to_owned(),
            })?;
            framed = len;
            w(msgpack::write_map_len(out, 2))?;
            w(msgpack::write_str(out, "object_id"))?;
            w(msgpack::write_str(out, &id.to_hex()))?;
            w(msgpack::write_str(out, "content"))?;
            w(msgpack::write_bin_len(out, bin_len))
        })?;
        let len = framed;
        if copied != len {
            return Err(Error::SourceChanged {
                path: objects.path(id),
            });
        }
        counts.objects += 1;
        counts.object_bytes += len;
    }
    if let Some(heads) = branch_heads {
        w(msgpack::write_str(out, "branch_heads"))?;
        w(msgpack::write_map_len(out, len32(heads.len())?))?;
        for (name, id) in heads {
            w(msgpack::write_str(out, name))?;
            w(msgpack::write_str(out, &id.to_hex()))?;
        }
    }
    w(out.flush())?;
    Ok(counts)
}

fn len32(len: usize) -> Result<u32> {
    msgpack::len32(len).map_err(|e| Error::io("write the bundle", "<bundle output>", e))
}

/// Receives the entries of a bundle as [`decode`] reads them.
pub(crate) trait Sink {
    /// Commit entry `index`, decoded as JSON.
    fn commit(&mut self, index: usize, value: Value) -> Result<()>;
    /// Snapshot entry `index`, decoded as JSON.
    fn snapshot(&mut self, index: usize, value: Value) -> Result<()>;
    /// The bundle declares `count` object entries (before the first).
    fn objects_expected(&mut self, count: u64) {
        let _ = count;
    }
    /// The content of object entry `index` begins.
    fn object_begin(&mut self, index: usize) -> Result<()>;
    /// The next chunk of the current object's content.
    fn object_chunk(&mut self, bytes: &[u8]) -> Result<()>;
    /// Object entry `index` is complete: it declared `declared` as its id,
    /// and its `len` bytes hash to `actual`.
    fn object_end(
        &mut self,
        index: usize,
        declared: &str,
        actual: ObjectId,
        len: u64,
    ) -> Result<()>;
    /// A `branch_heads` entry.
    fn branch_head(&mut self, name: String, id: String) -> Result<()> {
        let _ = (name, id);
        Ok(())
    }
}

/// A decoding failure as the crate's error: the input's fault is a
/// [`Error::BadBundle`], a failing read an [`Error::Io`] naming `name`.
fn decode_error(e: DecodeError, name: &Path) -> Error {
    match e {
        DecodeError::Io(source) => Error::io("read the bundle", name, source),
        DecodeError::Truncated { .. } | DecodeError::Invalid { .. } => {
            Error::bundle(BundleProblem::NotMsgpack, e.to_string())
        }
        DecodeError::Malformed { .. } => Error::bundle(BundleProblem::Shape, e.to_string()),
    }
}

/// Reads one bundle from `input` (`name` says where it comes from, for
/// errors), handing every entry to `sink`. Unknown top-level keys (the
/// reference's `tags`) are read and skipped; bytes after the map are
/// refused.
pub(crate) fn decode(input: &mut dyn Read, name: &Path, sink: &mut dyn Sink) -> Result<()> {
    let mut d = Decoder::new(input);
    let map_len = match d.head() {
        Ok(Head::Map(n)) => n,
        Ok(other) => {
            return Err(Error::bundle(
                BundleProblem::NotAMap,
                format!(
                    "expected a msgpack map at the top level, found {}",
                    other.name()
                ),
            ));
        }
        Err(e) => return Err(decode_error(e, name)),
    };
    let mut objects = 0usize;
    let mut seen = BTreeSet::new();
    for _ in 0..map_len {
        let mut budget = 4096;
        let key_at = d.offset();
        let key = d
            .string(&mut budget, "a top-level key")
            .map_err(|e| decode_error(e, name))?;
        // Python's unpacker keeps the last of a repeated key; processing
        // both would diverge from it, so a repeat is refused.
        if !seen.insert(key.clone()) {
            return Err(Error::bundle(
                BundleProblem::Shape,
                format!("the top-level key {key:?} (byte {key_at}) appears twice"),
            ));
        }
        match key.as_str() {
            "commits" | "snapshots" => {
                let len = d.array(&key).map_err(|e| decode_error(e, name))?;
                for i in 0..len as usize {
                    let mut budget = RECORD_LIMIT;
                    let value = d.json(&mut budget).map_err(|e| decode_error(e, name))?;
                    if key == "commits" {
                        sink.commit(i, value)?;
                    } else {
                        sink.snapshot(i, value)?;
                    }
                }
            }
            "objects" => {
                let len = d.array("objects").map_err(|e| decode_error(e, name))?;
                sink.objects_expected(u64::from(len));
                // One buffer for every entry: allocating (and zeroing) it
                // per object cost more than small objects' own bytes.
                let mut buf = vec![0u8; STREAM_BUFFER];
                for _ in 0..len {
                    object_entry(&mut d, objects, name, sink, &mut buf)?;
                    objects += 1;
                }
            }
            "branch_heads" => {
                let at = d.offset();
                match d.head().map_err(|e| decode_error(e, name))? {
                    Head::Nil => {}
                    Head::Map(n) => {
                        for _ in 0..n {
                            let mut budget = 4096;
                            let branch = d
                                .string(&mut budget, "a branch_heads key")
                                .map_err(|e| decode_error(e, name))?;
                            let id = d
                                .string(&mut budget, "a branch_heads value")
                                .map_err(|e| decode_error(e, name))?;
                            sink.branch_head(branch, id)?;
                        }
                    }
                    other => {
                        return Err(decode_error(
                            DecodeError::Malformed {
                                offset: at,
                                what: format!("branch_heads must be a map, found {}", other.name()),
                            },
                            name,
                        ));
                    }
                }
            }
            _ => d.skip().map_err(|e| decode_error(e, name))?,
        }
    }
    let end = d.offset();
    if !d.at_end().map_err(|e| decode_error(e, name))? {
        return Err(Error::bundle(
            BundleProblem::Shape,
            format!("bytes after the bundle's map, from byte {end}"),
        ));
    }
    Ok(())
}

/// One `{object_id, content}` entry, keys in any order; the content is
/// streamed to `sink` through `buf` while it is hashed.
fn object_entry(
    d: &mut Decoder<&mut dyn Read>,
    index: usize,
    name: &Path,
    sink: &mut dyn Sink,
    buf: &mut [u8],
) -> Result<()> {
    let at = d.offset();
    let fields = d
        .map(&format!("object entry {index}"))
        .map_err(|e| decode_error(e, name))?;
    let mut declared: Option<String> = None;
    let mut content: Option<(ObjectId, u64)> = None;
    for _ in 0..fields {
        let mut budget = 4096;
        let key_at = d.offset();
        let key = d
            .string(&mut budget, "an object entry key")
            .map_err(|e| decode_error(e, name))?;
        let repeated = || {
            Error::bundle(
                BundleProblem::Shape,
                format!("object entry {index} (byte {key_at}) has {key:?} twice"),
            )
        };
        match key.as_str() {
            "object_id" => {
                if declared.is_some() {
                    return Err(repeated());
                }
                declared = Some(
                    d.string(&mut budget, "object_id")
                        .map_err(|e| decode_error(e, name))?,
                );
            }
            "content" => {
                if content.is_some() {
                    return Err(repeated());
                }
                let value_at = d.offset();
                let len = match d.head().map_err(|e| decode_error(e, name))? {
                    Head::Bin(len) => u64::from(len),
                    other => {
                        return Err(Error::bundle(
                            BundleProblem::Shape,
                            format!(
                                "object entry {index} (byte {value_at}): content must be bin, found {}",
                                other.name()
                            ),
                        ));
                    }
                };
                sink.object_begin(index)?;
                let mut hasher = Hasher::new();
                let mut sink_error = None;
                let streamed = d.stream(len, buf, |chunk| {
                    hasher.update(chunk);
                    if let Err(e) = sink.object_chunk(chunk) {
                        sink_error = Some(e);
                        return Err(DecodeError::Io(std::io::Error::other("sink failed")));
                    }
                    Ok(())
                });
                if let Some(e) = sink_error {
                    return Err(e);
                }
                streamed.map_err(|e| decode_error(e, name))?;
                content = Some((hasher.finish(), len));
            }
            _ => d.skip().map_err(|e| decode_error(e, name))?,
        }
    }
    let missing = |field: &str| {
        Error::bundle(
            BundleProblem::Shape,
            format!("object entry {index} (byte {at}) has no {field}"),
        )
    };
    let declared = declared.ok_or_else(|| missing("object_id"))?;
    let (actual, len) = content.ok_or_else(|| missing("content"))?;
    sink.object_end(index, &declared, actual, len)
}

/// An id field of a record entry, checked to be 64 lowercase hex before it
/// is used for anything (a `../` id never reaches a path).
pub(crate) fn entry_id(value: &Value, field: &str, what: &str) -> Result<ObjectId> {
    match value.get(field) {
        Some(Value::String(text)) => parse_id(text, &format!("{what}: {field}")),
        Some(other) => Err(Error::bundle(
            BundleProblem::Shape,
            format!("{what}: {field} must be a str, found {other}"),
        )),
        None if value.is_object() => Err(Error::bundle(
            BundleProblem::Shape,
            format!("{what} has no {field}"),
        )),
        None => Err(Error::bundle(
            BundleProblem::Shape,
            format!("{what} must be a map"),
        )),
    }
}

/// `text` as an id, or a refusal naming it.
pub(crate) fn parse_id(text: &str, what: &str) -> Result<ObjectId> {
    ObjectId::from_hex(text).map_err(|e| {
        Error::bundle(
            BundleProblem::InvalidId,
            format!("{what} {}: {e}", crate::name::python_repr(text)),
        )
    })
}

/// A commit entry as a verified record: its id well-formed, its fields a
/// commit record's, its id the one its fields hash to.
pub(crate) fn commit_entry(index: usize, value: Value) -> Result<CommitRecord> {
    let what = format!("commit entry {index}");
    let id = entry_id(&value, "commit_id", &what)?;
    let record: CommitRecord = serde_json::from_value(value).map_err(|e| {
        Error::bundle(
            BundleProblem::Shape,
            format!("commit {id}: not a commit record: {e}"),
        )
    })?;
    let computed = record.computed_id();
    if computed != id {
        return Err(Error::bundle(
            BundleProblem::Integrity,
            format!("integrity check failed for commit record {id}: its fields hash to {computed}"),
        ));
    }
    Ok(record)
}

/// A snapshot entry as a verified record: id well-formed and recomputed,
/// every manifest path through the path policy.
pub(crate) fn snapshot_entry(index: usize, value: &Value) -> Result<SnapshotRecord> {
    let what = format!("snapshot entry {index}");
    let id = entry_id(value, "snapshot_id", &what)?;
    let record = match SnapshotRecord::deserialize(value) {
        Ok(record) => record,
        Err(e) => {
            // A bad object id is named as an id, not as a parse error.
            if let Some(Value::Object(manifest)) = value.get("manifest") {
                for (path, object) in manifest {
                    if let Value::String(text) = object {
                        parse_id(text, &format!("snapshot {id}: the object of {path:?}"))?;
                    }
                }
            }
            return Err(Error::bundle(
                BundleProblem::Shape,
                format!("snapshot {id}: not a snapshot record: {e}"),
            ));
        }
    };
    if let Err(refused) = crate::name::check_manifest(record.manifest.keys().map(String::as_str)) {
        return Err(Error::bundle(
            BundleProblem::RefusedPath,
            format!("snapshot {id}: {refused}"),
        ));
    }
    let computed = record.computed_id();
    if computed != id {
        return Err(Error::bundle(
            BundleProblem::Integrity,
            format!(
                "integrity check failed for snapshot record {id}: its manifest hashes to {computed}"
            ),
        ));
    }
    Ok(record)
}

/// What `verify-pack` found: the reference's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Object entries read.
    pub objects_checked: usize,
    /// Snapshot entries read.
    pub snapshots_checked: usize,
    /// Commit entries read.
    pub commits_checked: usize,
    /// Every failure: `(kind, id, error)`, kind `object`, `snapshot` or
    /// `commit`.
    pub failures: Vec<(String, String, String)>,
}

impl VerifyReport {
    /// Whether nothing failed.
    #[must_use]
    pub fn all_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The reference's JSON report.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "objects_checked": self.objects_checked,
            "snapshots_checked": self.snapshots_checked,
            "commits_checked": self.commits_checked,
            "all_ok": self.all_ok(),
            "failures": self.failures.iter().map(|(kind, id, error)| {
                json!({"kind": kind, "id": id, "error": error})
            }).collect::<Vec<_>>(),
        })
    }
}

/// Checks a bundle without storing anything: every object re-hashed, every
/// record's id recomputed and its paths checked (extensions: the reference
/// does neither), every manifest entry's object and every commit's snapshot
/// present in the bundle or, when `local` is given, in that repository.
/// Parents are not checked (as the reference: a bundle made against haves
/// names parents it does not carry). Fails only when the bytes are not a
/// bundle at all; everything else is a failure in the report.
pub fn verify(
    input: &mut dyn Read,
    name: &Path,
    local: Option<&Repository>,
) -> Result<VerifyReport> {
    let mut sink = VerifySink::default();
    decode(input, name, &mut sink)?;
    let mut report = sink.report;
    for (object, (snapshot, path)) in &sink.wanted_objects {
        let here = sink.objects.contains(object)
            || local.is_some_and(|repo| repo.objects().contains(object));
        if !here {
            report.failures.push((
                "snapshot".to_owned(),
                snapshot.to_hex(),
                format!(
                    "object {object} for {path:?} is neither in the bundle nor in the local store"
                ),
            ));
        }
    }
    for (commit, snapshot) in &sink.wanted_snapshots {
        let here = sink.snapshots.contains(snapshot)
            || local.is_some_and(|repo| repo.records().contains_snapshot(snapshot));
        if !here {
            report.failures.push((
                "commit".to_owned(),
                commit.to_hex(),
                format!("snapshot {snapshot} is neither in the bundle nor in the local store"),
            ));
        }
    }
    Ok(report)
}

#[derive(Default)]
struct VerifySink {
    report: VerifyReport,
    objects: HashSet<ObjectId>,
    snapshots: HashSet<ObjectId>,
    /// Object -> the first (snapshot, path) naming it.
    wanted_objects: HashMap<ObjectId, (ObjectId, String)>,
    wanted_snapshots: Vec<(ObjectId, ObjectId)>,
}

impl VerifySink {
    fn fail(&mut self, kind: &str, value: &Value, field: &str, e: &Error) {
        let id = value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let detail = match e {
            Error::BadBundle(refusal) => refusal.detail.clone(),
            other => other.to_string(),
        };
        self.report.failures.push((kind.to_owned(), id, detail));
    }
}

impl Sink for VerifySink {
    fn commit(&mut self, index: usize, value: Value) -> Result<()> {
        self.report.commits_checked += 1;
        match commit_entry(index, value.clone()) {
            Ok(record) => self
                .wanted_snapshots
                .push((record.commit_id, record.snapshot_id)),
            Err(e) => self.fail("commit", &value, "commit_id", &e),
        }
        Ok(())
    }

    fn snapshot(&mut self, index: usize, value: Value) -> Result<()> {
        self.report.snapshots_checked += 1;
        match snapshot_entry(index, &value) {
            Ok(record) => {
                for (path, object) in &record.manifest {
                    self.wanted_objects
                        .entry(*object)
                        .or_insert_with(|| (record.snapshot_id, path.clone()));
                }
                self.snapshots.insert(record.snapshot_id);
            }
            Err(e) => self.fail("snapshot", &value, "snapshot_id", &e),
        }
        Ok(())
    }

    fn object_begin(&mut self, _index: usize) -> Result<()> {
        Ok(())
    }

    fn object_chunk(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    fn object_end(&mut self, _: usize, declared: &str, actual: ObjectId, _: u64) -> Result<()> {
        self.report.objects_checked += 1;
        match ObjectId::from_hex(declared) {
            Ok(id) if id == actual => {
                self.objects.insert(id);
            }
            Ok(_) => {
                let short = |s: &str| s.chars().take(12).collect::<String>();
                self.report.failures.push((
                    "object".to_owned(),
                    declared.to_owned(),
                    format!(
                        "hash mismatch: declared {}… recomputed {}…",
                        short(declared),
                        short(&actual.to_hex())
                    ),
                ));
            }
            Err(e) => self.report.failures.push((
                "object".to_owned(),
                declared.to_owned(),
                format!("invalid object id: {e}"),
            )),
        }
        Ok(())
    }
}
