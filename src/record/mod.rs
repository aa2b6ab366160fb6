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

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use commit::{COMMIT_FORMAT_VERSION, CommitRecord, commit_id};
pub use snapshot::{SnapshotRecord, snapshot_id};

use crate::durable::{DurableWriter, TempKind};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::repo::Repository;

/// What the record store needs to know about a record type.
trait Record: Serialize + DeserializeOwned {
    /// `"commit"` or `"snapshot"`, for errors.
    const KIND: &'static str;
    /// The id stored in the record.
    fn stored_id(&self) -> ObjectId;
    /// The id recomputed from its fields.
    fn computed_id(&self) -> ObjectId;
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
}

/// The JSON text of a commit record exactly as Muse writes it (Python's
/// `json.dumps(record, indent=2)` plus a newline, non-ASCII escaped).
pub fn commit_to_json(record: &CommitRecord) -> Result<Vec<u8>> {
    to_json(record, Path::new("<commit record>"))
}

/// The JSON text of a snapshot record exactly as Muse writes it; manifest
/// entries in Muse's walk order (each directory's files, then its
/// subdirectories).
pub fn snapshot_to_json(record: &SnapshotRecord) -> Result<Vec<u8>> {
    to_json(record, Path::new("<snapshot record>"))
}

fn to_json<R: Serialize>(record: &R, path: &Path) -> Result<Vec<u8>> {
    json::to_python_json(record).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialise the record: {e}"),
    })
}

/// Reads and verifies the commit record at `path` (see [`RecordStore::read_commit`]).
pub fn read_commit_file(path: &Path) -> Result<CommitRecord> {
    read_record(path)
}

/// Reads and verifies the snapshot record at `path` (see [`RecordStore::read_snapshot`]).
pub fn read_snapshot_file(path: &Path) -> Result<SnapshotRecord> {
    read_record(path)
}

/// Reads the record at `path`, checking its id against its fields and, when
/// the file is named `<id>.json`, against its name.
fn read_record<R: Record>(path: &Path) -> Result<R> {
    let bytes = fs::read(path).map_err(|e| Error::io("read record", path, e))?;
    let record: R = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a valid {} record: {e}", R::KIND),
    })?;
    let stored = record.stored_id();
    let computed = record.computed_id();
    if stored != computed {
        return Err(Error::RecordIntegrity {
            path: path.to_path_buf(),
            kind: R::KIND,
            reason: "id mismatch: its fields hash to another id than the one it stores",
            expected: stored,
            actual: computed,
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
        return Err(Error::RecordIntegrity {
            path: path.to_path_buf(),
            kind: R::KIND,
            reason: "id mismatch: the file name names another id than the one it stores",
            expected: named,
            actual: stored,
        });
    }
    Ok(record)
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
        self.write_record(self.layout.commit_path(&record.commit_id), record)
    }

    /// Stores `record` at `snapshots/<snapshot_id>.json`; returns whether a
    /// new file was written. Refuses a record whose id does not match its
    /// manifest.
    pub fn write_snapshot(&self, record: &SnapshotRecord) -> Result<bool> {
        self.write_record(self.layout.snapshot_path(&record.snapshot_id), record)
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

    fn read_by_id<R: Record>(path: PathBuf, id: &ObjectId) -> Result<R> {
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
        read_record(&path)
    }

    fn write_record<R: Record>(&self, path: PathBuf, record: &R) -> Result<bool> {
        let (stored, computed) = (record.stored_id(), record.computed_id());
        if stored != computed {
            return Err(Error::RecordIntegrity {
                path,
                kind: R::KIND,
                reason: "refusing to write it: its fields hash to another id than the one it stores",
                expected: stored,
                actual: computed,
            });
        }
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat record", path, e)),
            Ok(meta) if meta.is_file() => match read_record::<R>(&path) {
                // Immutable: a verified record with this id stays as it is,
                // but looks new to a concurrent gc (see `DurableWriter::freshen`).
                Ok(_) => {
                    self.writer.freshen(&path);
                    return Ok(false);
                }
                // Damaged: replace it with verified content.
                Err(Error::RecordIntegrity { .. } | Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            },
            Ok(_) => {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("a {} record must be a regular file", R::KIND),
                });
            }
        }
        let bytes = to_json(record, &path)?;
        self.writer.write_file(&path, TempKind::State, &bytes)?;
        Ok(true)
    }
}

// Kept here rather than in repo.rs so the record layer is one module.
impl Repository {
    /// The commit and snapshot records of this repository.
    #[must_use]
    pub fn records(&self) -> RecordStore {
        RecordStore::new(self.layout().clone(), self.writer().clone())
    }
}

#[cfg(test)]
pub(crate) mod tests;
