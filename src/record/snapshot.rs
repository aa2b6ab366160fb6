//! Snapshot records: `snapshots/<snapshot_id>.json`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::clock::Timestamp;
use crate::id::{Hasher, ObjectId};

/// A snapshot: the manifest of a working tree (POSIX path -> object id).
///
/// The id covers the manifest only; `created_at` and unknown fields are
/// carried along but not hashed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapshotRecord {
    /// [`snapshot_id`] of the manifest.
    pub snapshot_id: ObjectId,
    /// Every tracked file: POSIX relative path (UTF-8) -> object id.
    pub manifest: BTreeMap<String, ObjectId>,
    /// When the snapshot was taken (ISO-8601 text, kept exactly as stored).
    #[serde(default)]
    pub created_at: String,
    /// Fields written by other tools, kept so the record round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl SnapshotRecord {
    /// A record for `manifest` taken at `created_at`, its id computed.
    #[must_use]
    pub fn new(manifest: BTreeMap<String, ObjectId>, created_at: Timestamp) -> Self {
        Self {
            snapshot_id: snapshot_id(&manifest),
            manifest,
            created_at: created_at.to_isoformat(),
            extra: serde_json::Map::new(),
        }
    }

    /// The id recomputed from the manifest (equal to `snapshot_id` unless the
    /// record was tampered with).
    #[must_use]
    pub fn computed_id(&self) -> ObjectId {
        snapshot_id(&self.manifest)
    }

    /// The manifest entries in the order Muse writes them (its working-tree
    /// walk: each directory's files, sorted, before its subdirectories,
    /// sorted), which is also the order of every snapshot record Muse wrote.
    #[must_use]
    pub fn walk_ordered(&self) -> Vec<(&str, &ObjectId)> {
        let mut entries: Vec<(&str, &ObjectId)> = self
            .manifest
            .iter()
            .map(|(path, id)| (path.as_str(), id))
            .collect();
        entries.sort_by(|a, b| walk_order(a.0, b.0));
        entries
    }
}

/// `sha256(NUL.join(sorted(path + NUL + oid)))`, sorted by the UTF-8 bytes of
/// the joined entries (shared/FORMAT.md). The empty manifest hashes the empty
/// string.
#[must_use]
pub fn snapshot_id(manifest: &BTreeMap<String, ObjectId>) -> ObjectId {
    // Without a NUL in any path, the map's byte order of the paths is the
    // byte order of the joined `path NUL id` strings (a path that is a
    // prefix of another sorts first either way, NUL being the least byte),
    // so the entries are hashed in place, nothing built or sorted.
    if !manifest.keys().any(|path| path.as_bytes().contains(&0)) {
        let mut hasher = Hasher::new();
        for (i, (path, id)) in manifest.iter().enumerate() {
            if i > 0 {
                hasher.update(b"\0");
            }
            hasher.update(path.as_bytes());
            hasher.update(b"\0");
            hasher.update(&id.hex_bytes());
        }
        return hasher.finish();
    }
    let mut entries: Vec<String> = manifest
        .iter()
        .map(|(path, id)| format!("{path}\0{id}"))
        .collect();
    // Spelled out rather than relying on the map's key order: the format
    // sorts the joined strings, and this keeps it obviously so.
    entries.sort_unstable();
    let mut hasher = Hasher::new();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\0");
        }
        hasher.update(entry.as_bytes());
    }
    hasher.finish()
}

/// The order Muse writes manifest entries in: a depth-first walk of the tree
/// with each directory's files (sorted) before its subdirectories (sorted),
/// e.g. `song.txt`, `src/main.rs`, `src/lib/mod.rs`. The order changes no id;
/// writing it keeps new records byte-identical to Muse's.
pub(crate) fn walk_order(a: &str, b: &str) -> Ordering {
    let mut left = a.split('/').peekable();
    let mut right = b.split('/').peekable();
    loop {
        match (left.next(), right.next()) {
            (Some(x), Some(y)) => {
                let x_is_file = left.peek().is_none();
                let y_is_file = right.peek().is_none();
                match (x_is_file, y_is_file) {
                    (true, false) => return Ordering::Less,
                    (false, true) => return Ordering::Greater,
                    _ => match x.as_bytes().cmp(y.as_bytes()) {
                        Ordering::Equal => {}
                        other => return other,
                    },
                }
            }
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
        }
    }
}

/// The manifest serialised in [`walk_order`].
struct WalkOrdered<'a>(&'a BTreeMap<String, ObjectId>);

impl Serialize for WalkOrdered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&String, &ObjectId)> = self.0.iter().collect();
        entries.sort_by(|a, b| walk_order(a.0, b.0));
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (path, id) in entries {
            map.serialize_entry(path, id)?;
        }
        map.end()
    }
}

impl Serialize for SnapshotRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            snapshot_id: &'a ObjectId,
            manifest: WalkOrdered<'a>,
            created_at: &'a str,
            #[serde(flatten)]
            extra: &'a serde_json::Map<String, serde_json::Value>,
        }
        Wire {
            snapshot_id: &self.snapshot_id,
            manifest: WalkOrdered(&self.manifest),
            created_at: &self.created_at,
            extra: &self.extra,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_puts_files_before_subdirectories() {
        let mut paths = vec![
            "src/lib/mod.rs",
            "song.txt",
            "src/main.rs",
            ".museignore",
            "a/b",
            "a.b",
            "a",
            "b/c/d.txt",
            "b/z.txt",
        ];
        paths.sort_by(|a, b| walk_order(a, b));
        assert_eq!(
            paths,
            [
                ".museignore",
                "a",
                "a.b",
                "song.txt",
                "a/b",
                "b/z.txt",
                "b/c/d.txt",
                "src/main.rs",
                "src/lib/mod.rs",
            ],
            "files of a directory come before its subdirectories"
        );
    }
}
