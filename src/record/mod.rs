//! Commit and snapshot records: `commits/<id>.json`, `snapshots/<id>.json`.
//!
//! Invariants:
//! - a record is written only when its stored id is the id recomputed from
//!   its fields, through the [`DurableWriter`], as Python's
//!   `json.dumps(record, indent=2) + "\n"` (byte-identical to Muse);
//! - records are immutable: an existing record that reads back and verifies
//!   is never rewritten (one that does not verify is replaced, as the object
//!   store repairs objects);
//! - every read recomputes the id from the fields and checks it against the
//!   stored id and the file name, failing with [`Error::RecordIntegrity`]
//!   (naming the file) otherwise. This check is an extension: Muse does not
//!   re-hash records on read.

mod commit;
mod json;
mod snapshot;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use commit::{CommitRecord, commit_id};
pub use json::{JsonStyle, python_json};
pub use snapshot::{SnapshotRecord, snapshot_id};

use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, RecordCorruption, Result};
use crate::files::{self, Entry};
use crate::id::ObjectId;
use crate::layout::Layout;

/// What the record store needs to know about a record type.
trait Record: Serialize + DeserializeOwned {
    /// `"commit"` or `"snapshot"`, for errors.
    const KIND: &'static str;
    /// The id stored in the record.
    fn stored_id(&self) -> ObjectId;
    /// The id recomputed from its fields.
    fn computed_id(&self) -> ObjectId;
    /// What the record's fields must satisfy beyond their id (a snapshot's
    /// manifest paths pass the path policy).
    fn check_fields(&self) -> std::result::Result<(), crate::error::PathRefusal> {
        Ok(())
    }
}

impl Record for CommitRecord {
    const KIND: &'static str = "commit";
    fn stored_id(&self) -> ObjectId {
        self.commit_id
    }
    fn computed_id(&self) -> ObjectId {
        CommitRecord::computed_id(self)
    }
}

impl Record for SnapshotRecord {
    const KIND: &'static str = "snapshot";
    fn stored_id(&self) -> ObjectId {
        self.snapshot_id
    }
    fn computed_id(&self) -> ObjectId {
        SnapshotRecord::computed_id(self)
    }
    fn check_fields(&self) -> std::result::Result<(), crate::error::PathRefusal> {
        crate::name::check_manifest(self.manifest.keys().map(String::as_str))
    }
}

impl CommitRecord {
    /// The JSON text of this record exactly as Muse writes it (Python's
    /// `json.dumps(record, indent=2)` plus a newline, non-ASCII escaped).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        to_json(self, Path::new("<commit record>"))
    }

    /// Reads and verifies the commit record file at `path` (see
    /// [`RecordStore::read_commit`]).
    pub fn read_file(path: &Path) -> Result<Self> {
        read_record(path)
    }
}

impl SnapshotRecord {
    /// The JSON text of this record exactly as Muse writes it; manifest
    /// entries in Muse's walk order (each directory's files, then its
    /// subdirectories).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        to_json(self, Path::new("<snapshot record>"))
    }

    /// Reads and verifies the snapshot record file at `path` (see
    /// [`RecordStore::read_snapshot`]).
    pub fn read_file(path: &Path) -> Result<Self> {
        read_record(path)
    }
}

fn to_json<R: Serialize>(record: &R, path: &Path) -> Result<Vec<u8>> {
    json::to_python_json(record)
        .map_err(|e| Error::corrupt(path, format!("cannot serialise the record: {e}")))
}

/// A missing record turned into damage naming what names it.
fn named(error: Error, named_by: impl FnOnce() -> String) -> Error {
    match error {
        Error::RecordNotFound { kind, id } => Error::MissingRecord {
            kind,
            id,
            named_by: named_by(),
        },
        other => other,
    }
}

fn record_integrity(
    path: &Path,
    kind: &'static str,
    reason: &'static str,
    expected: ObjectId,
    actual: ObjectId,
) -> Error {
    Error::RecordIntegrity(Box::new(RecordCorruption {
        path: path.to_path_buf(),
        kind,
        reason,
        expected,
        actual,
    }))
}

/// Reads the record at `path`, checking its id against its fields and, when
/// the file is named `<id>.json`, against its name.
fn read_record<R: Record>(path: &Path) -> Result<R> {
    read_record_as::<R>(path, false).map(|(record, _)| record)
}

/// [`read_record`], with the file's JSON as it is stored when `raw` (the
/// very bytes that verified, read once).
fn read_record_as<R: Record>(path: &Path, raw: bool) -> Result<(R, Option<serde_json::Value>)> {
    // Never followed nor blocked on: a received repository may hold a
    // symlink or a FIFO under a record's name.
    let bytes = crate::files::read_existing(path, "read record")?;
    let invalid = |e: serde_json::Error| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a valid {} record: {e}", R::KIND),
    };
    let (record, value) = if raw {
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        (R::deserialize(&value).map_err(invalid)?, Some(value))
    } else {
        (serde_json::from_slice(&bytes).map_err(invalid)?, None)
    };
    let stored = record.stored_id();
    let computed = record.computed_id();
    if stored != computed {
        return Err(record_integrity(
            path,
            R::KIND,
            "id mismatch: its fields hash to another id than the one it stores",
            stored,
            computed,
        ));
    }
    // A record whose id is right can still be hostile: its manifest paths
    // are checked before anything uses them.
    if let Err(refused) = record.check_fields() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{} {stored}: {refused}", R::KIND),
        });
    }
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| ObjectId::from_hex(n).ok());
    if let Some(named) = named
        && named != stored
    {
        return Err(record_integrity(
            path,
            R::KIND,
            "id mismatch: the file name names another id than the one it stores",
            named,
            stored,
        ));
    }
    Ok((record, value))
}

/// The commit and snapshot records of one repository.
#[derive(Debug, Clone)]
pub struct RecordStore {
    layout: Layout,
    writer: DurableWriter,
}

impl RecordStore {
    /// The records inside `layout`, writing through `writer`.
    #[must_use]
    pub fn new(layout: Layout, writer: DurableWriter) -> Self {
        Self { layout, writer }
    }

    /// The same records writing through `writer` (for example a
    /// [`crate::durable::WriteBatch`]'s writer).
    #[must_use]
    pub fn with_writer(&self, writer: DurableWriter) -> Self {
        Self {
            layout: self.layout.clone(),
            writer,
        }
    }

    /// Stores `record` at `commits/<commit_id>.json`; returns whether a new
    /// file was written (`false`: a verified record with that id exists).
    /// Refuses a record whose id does not match its fields.
    pub fn write_commit(&self, record: &CommitRecord) -> Result<bool> {
        self.write_record(&self.layout.commit_path(&record.commit_id), record)
    }

    /// Stores `record` at `snapshots/<snapshot_id>.json`; returns whether a
    /// new file was written. Refuses a record whose id does not match its
    /// manifest.
    pub fn write_snapshot(&self, record: &SnapshotRecord) -> Result<bool> {
        self.write_record(&self.layout.snapshot_path(&record.snapshot_id), record)
    }

    /// Reads commit `id`, verified: the id recomputed from its fields must be
    /// `id`, or this fails with [`Error::RecordIntegrity`] naming the file.
    pub fn read_commit(&self, id: &ObjectId) -> Result<CommitRecord> {
        Self::read_by_id(self.layout.commit_path(id), id)
    }

    /// Reads snapshot `id`, verified like [`RecordStore::read_commit`].
    pub fn read_snapshot(&self, id: &ObjectId) -> Result<SnapshotRecord> {
        Self::read_by_id(self.layout.snapshot_path(id), id)
    }

    /// The manifest of commit `id` (read and verified through its commit
    /// and snapshot records); empty for `None` (an unborn branch). A
    /// snapshot the commit names but that is not stored is
    /// [`Error::MissingRecord`] (damage).
    pub fn tree_of(&self, commit: Option<ObjectId>) -> Result<BTreeMap<String, ObjectId>> {
        let Some(id) = commit else {
            return Ok(BTreeMap::new());
        };
        let record = self.read_commit(&id)?;
        Ok(self
            .read_snapshot_named_by(&record.snapshot_id, || format!("commit {id}"))?
            .manifest)
    }

    /// [`RecordStore::read_commit`] of a commit that something else names
    /// (`named_by` says what): its absence is [`Error::MissingRecord`]
    /// (damage), not a caller's unknown id.
    pub fn read_commit_named_by(
        &self,
        id: &ObjectId,
        named_by: impl FnOnce() -> String,
    ) -> Result<CommitRecord> {
        self.read_commit(id).map_err(|e| named(e, named_by))
    }

    /// [`RecordStore::read_snapshot`] of a snapshot that something else
    /// names; see [`RecordStore::read_commit_named_by`].
    pub fn read_snapshot_named_by(
        &self,
        id: &ObjectId,
        named_by: impl FnOnce() -> String,
    ) -> Result<SnapshotRecord> {
        self.read_snapshot(id).map_err(|e| named(e, named_by))
    }

    /// [`RecordStore::read_commit`], with the record also as the JSON it is
    /// stored as (its key order, its unknown fields), for sending it on as
    /// stored.
    pub fn read_commit_raw(&self, id: &ObjectId) -> Result<(CommitRecord, serde_json::Value)> {
        Self::read_by_id_raw(self.layout.commit_path(id), id)
    }

    /// [`RecordStore::read_snapshot`] with the stored JSON, as
    /// [`RecordStore::read_commit_raw`].
    pub fn read_snapshot_raw(&self, id: &ObjectId) -> Result<(SnapshotRecord, serde_json::Value)> {
        Self::read_by_id_raw(self.layout.snapshot_path(id), id)
    }

    /// Whether a commit record file exists for `id` (not verified).
    #[must_use]
    pub fn contains_commit(&self, id: &ObjectId) -> bool {
        self.layout.commit_path(id).is_file()
    }

    /// Whether a snapshot record file exists for `id` (not verified).
    #[must_use]
    pub fn contains_snapshot(&self, id: &ObjectId) -> bool {
        self.layout.snapshot_path(id).is_file()
    }

    /// Every name in `commits/`, classified (records, temp files, strays).
    pub(crate) fn list_commits(&self) -> Result<Vec<Entry>> {
        files::list_records(&self.layout.commits_dir())
    }

    /// Every name in `snapshots/`, classified.
    pub(crate) fn list_snapshots(&self) -> Result<Vec<Entry>> {
        files::list_records(&self.layout.snapshots_dir())
    }

    /// The ids of every stored commit record whose hex starts with `prefix`
    /// (names only; not verified), sorted.
    pub fn commits_with_prefix(&self, prefix: &str) -> Result<Vec<ObjectId>> {
        let mut ids: Vec<ObjectId> = self
            .list_commits()?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Item(id, _) if id.to_hex().starts_with(prefix) => Some(id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn read_by_id<R: Record>(path: PathBuf, id: &ObjectId) -> Result<R> {
        Self::read_by_id_as(path, id, false).map(|(record, _)| record)
    }

    fn read_by_id_raw<R: Record>(path: PathBuf, id: &ObjectId) -> Result<(R, serde_json::Value)> {
        let (record, raw) = Self::read_by_id_as(path, id, true)?;
        Ok((record, raw.unwrap_or(serde_json::Value::Null)))
    }

    fn read_by_id_as<R: Record>(
        path: PathBuf,
        id: &ObjectId,
        raw: bool,
    ) -> Result<(R, Option<serde_json::Value>)> {
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::RecordNotFound {
                    kind: R::KIND,
                    id: *id,
                });
            }
            Err(e) => return Err(Error::io("stat record", path, e)),
            Ok(meta) if !meta.is_file() => {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("a {} record must be a regular file", R::KIND),
                });
            }
            Ok(_) => {}
        }
        read_record_as(&path, raw)
    }

    fn write_record<R: Record>(&self, path: &Path, record: &R) -> Result<bool> {
        record.check_fields()?;
        let (stored, computed) = (record.stored_id(), record.computed_id());
        if stored != computed {
            return Err(record_integrity(
                path,
                R::KIND,
                "refusing to write it: its fields hash to another id than the one it stores",
                stored,
                computed,
            ));
        }
        if self.holds_verified::<R>(path)? {
            return Ok(false);
        }
        let bytes = to_json(record, path)?;
        self.writer.write_file(path, TempKind::State, &bytes)?;
        Ok(true)
    }

    /// Whether a verified record is stored at `path` already (it is then
    /// freshened for a concurrent gc, see `DurableWriter::freshen`);
    /// `false` when it is absent or damaged (to be replaced). A non-file
    /// there is an error.
    fn holds_verified<R: Record>(&self, path: &Path) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("stat record", path, e)),
            Ok(meta) if meta.is_file() => match read_record::<R>(path) {
                // Immutable: a verified record with this id stays as it is.
                Ok(_) => {
                    self.writer.freshen(path);
                    Ok(true)
                }
                // Damaged: replace it with verified content.
                Err(Error::RecordIntegrity(_) | Error::Corrupt { .. }) => Ok(false),
                Err(e) => Err(e),
            },
            Ok(_) => Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("a {} record must be a regular file", R::KIND),
            }),
        }
    }

    /// Publishes the received commit file `source` as commit `id`: see
    /// [`RecordStore::adopt_received_snapshot`].
    pub(crate) fn adopt_received_commit(&self, id: &ObjectId, source: &Path) -> Result<bool> {
        self.adopt_received::<CommitRecord>(&self.layout.commit_path(id), source)
    }

    /// Publishes the received snapshot file `source`, which this process
    /// wrote from a record it verified as `id` (a quarantine's: exactly the
    /// bytes [`RecordStore::write_snapshot`] would write). Under a batch on
    /// the same filesystem the file itself is renamed into place by the
    /// batch (no second parse, no second serialisation); otherwise it is
    /// read back, verified and written. Returns whether a new record was
    /// stored.
    pub(crate) fn adopt_received_snapshot(&self, id: &ObjectId, source: &Path) -> Result<bool> {
        self.adopt_received::<SnapshotRecord>(&self.layout.snapshot_path(id), source)
    }

    fn adopt_received<R: Record>(&self, target: &Path, source: &Path) -> Result<bool> {
        if !self.writer.adoptable(source, target)? {
            let record: R = read_record(source)?;
            return self.write_record(target, &record);
        }
        if self.holds_verified::<R>(target)? || !self.writer.claim(target) {
            return Ok(false);
        }
        self.writer.adopt(source, target)?;
        Ok(true)
    }
}

#[cfg(test)]
pub(crate) mod tests;
