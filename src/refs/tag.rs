//! Tags: the reference implementation's tag records (shared/REFERENCE.md
//! section 4), `.muse/tags/<repo_id>/<tag_id>.json`.
//!
//! A tag is free text (`v1.0`, `stage:rough-mix`) naming a commit; each
//! record is its own file, `tag_id` a uuid4, written as Python's
//! `json.dumps(record, indent=2)` plus a newline with the keys `tag_id`,
//! `repo_id`, `commit_id`, `tag`, `created_at` in that order. Adding a tag
//! adds a record, with no uniqueness check (as the reference); removing one
//! removes every record with that text (on one commit, when given).
//!
//! Invariants: the repository id and every tag file name become a path only
//! after [`crate::name`]'s one-component check, so a hostile `repo.json`
//! cannot steer a tag out of `tags/`; records under another repository id
//! are not this repository's and are never read; a record that does not
//! parse, or whose `commit_id` is not an id, is an error naming the file
//! (never skipped silently); every write and removal goes through the
//! durable writer.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::durable::{DurableWriter, TempKind, is_temp_name};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::layout::Layout;
use crate::name::check_component;

/// One tag record, fields in the reference's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The record's id (a uuid4; also its file name).
    pub tag_id: String,
    /// The repository it belongs to.
    pub repo_id: String,
    /// The commit it names.
    pub commit_id: ObjectId,
    /// The tag's text.
    pub tag: String,
    /// When it was made (ISO-8601, as Python's `isoformat()`).
    #[serde(default)]
    pub created_at: String,
    /// Fields written by other tools, kept so the record round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The tags of one repository.
#[derive(Debug, Clone)]
pub struct TagStore {
    layout: Layout,
    writer: DurableWriter,
    repo_id: String,
}

impl TagStore {
    /// The tags of the repository `repo_id` inside `layout`. Fails when the
    /// id cannot be a directory name (a tampered `repo.json`).
    pub fn new(layout: Layout, writer: DurableWriter, repo_id: &str) -> Result<Self> {
        check_component("repository id", repo_id)?;
        Ok(Self {
            layout,
            writer,
            repo_id: repo_id.to_owned(),
        })
    }

    /// `tags/<repo_id>/`.
    #[must_use]
    pub fn dir(&self) -> PathBuf {
        self.layout.tags_dir(&self.repo_id)
    }

    /// The record files of this repository (temp files skipped), sorted by
    /// name.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_temp_name(name) || !name.ends_with(".json") {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("inspect", entry.path(), e))?;
            if kind.is_file() {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every record file with what it holds (or why it cannot be read), in
    /// file-name order: what fsck and gc look at.
    pub fn records(&self) -> Result<Vec<(PathBuf, Result<TagRecord>)>> {
        Ok(self
            .files()?
            .into_iter()
            .map(|path| {
                let record = crate::files::read_existing(&path, "read tag").and_then(|bytes| {
                    serde_json::from_slice::<TagRecord>(&bytes)
                        .map_err(|e| Error::corrupt(&path, format!("not a valid tag record: {e}")))
                });
                (path, record)
            })
            .collect())
    }

    /// Every tag of this repository, sorted by text, then commit, then id
    /// (the order `muse tag list` prints). A record that cannot be read is
    /// an error naming its file.
    pub fn list(&self) -> Result<Vec<TagRecord>> {
        let mut tags = Vec::new();
        for (_, record) in self.records()? {
            let record = record?;
            if record.repo_id == self.repo_id {
                tags.push(record);
            }
        }
        tags.sort_by(|a, b| {
            (&a.tag, a.commit_id, &a.tag_id).cmp(&(&b.tag, b.commit_id, &b.tag_id))
        });
        Ok(tags)
    }

    /// The tags whose text is `tag`.
    pub fn named(&self, tag: &str) -> Result<Vec<TagRecord>> {
        Ok(self.list()?.into_iter().filter(|t| t.tag == tag).collect())
    }

    /// The tags on `commit`.
    pub fn on_commit(&self, commit: &ObjectId) -> Result<Vec<TagRecord>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|t| t.commit_id == *commit)
            .collect())
    }

    /// Adds a tag `tag` on `commit` (a new record, as the reference does,
    /// even when the same text already names that commit) and returns it.
    pub fn add(&self, tag: &str, commit: ObjectId) -> Result<TagRecord> {
        if tag.is_empty() {
            return Err(Error::Input {
                path: self.dir(),
                reason: "a tag needs a non-empty text".to_owned(),
            });
        }
        let record = TagRecord {
            tag_id: uuid::Uuid::new_v4().hyphenated().to_string(),
            repo_id: self.repo_id.clone(),
            commit_id: commit,
            tag: tag.to_owned(),
            created_at: Timestamp::now().to_isoformat(),
            extra: serde_json::Map::new(),
        };
        let path = self.layout.tag_path(&self.repo_id, &record.tag_id);
        let bytes = crate::record::python_json(&record, crate::record::JsonStyle::Indent2)
            .map_err(|e| Error::corrupt(&path, format!("cannot serialise the tag: {e}")))?;
        self.writer.write_file(&path, TempKind::State, &bytes)?;
        Ok(record)
    }

    /// Removes every record whose text is `tag` (only those on `commit`,
    /// when given) and returns them.
    pub fn remove(&self, tag: &str, commit: Option<ObjectId>) -> Result<Vec<TagRecord>> {
        let mut removed = Vec::new();
        for record in self.named(tag)? {
            if commit.is_some_and(|c| c != record.commit_id) {
                continue;
            }
            check_component("tag id", &record.tag_id)?;
            let path = self.layout.tag_path(&self.repo_id, &record.tag_id);
            if path.is_file() {
                self.writer.remove_file(&path)?;
            } else {
                // The reference names the file by its tag_id; one named
                // otherwise is found by listing.
                for file in self.files()? {
                    let same = fs::read(&file)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<TagRecord>(&b).ok())
                        .is_some_and(|r| r.tag_id == record.tag_id);
                    if same {
                        self.writer.remove_file(&file)?;
                    }
                }
            }
            removed.push(record);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store(dir: &std::path::Path, repo_id: &str) -> Result<TagStore> {
        let writer = DurableWriter::new(
            Arc::new(crate::durable::RealFs),
            crate::durable::Durability::None,
        );
        TagStore::new(Layout::new(dir), writer, repo_id)
    }

    #[test]
    fn add_list_remove_in_the_reference_format() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let tags = store(dir.path(), "d196ed18-630c-4ac7-919d-1e141e77523e")?;
        let (a, b) = (ObjectId::hash(b"a"), ObjectId::hash(b"b"));
        let first = tags.add("v1.0", a)?;
        tags.add("v1.0", b)?;
        tags.add("stage:rough-mix", a)?;
        let path = tags.layout.tag_path(&tags.repo_id, &first.tag_id);
        let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        assert!(
            text.starts_with("{\n  \"tag_id\": \"")
                && text.contains(&format!(
                    "\"commit_id\": \"{a}\",\n  \"tag\": \"v1.0\",\n  \"created_at\": \""
                ))
                && text.ends_with("\"\n}\n"),
            "indent=2, the reference's key order: {text}"
        );
        let names: Vec<_> = tags.list()?.into_iter().map(|t| t.tag).collect();
        assert_eq!(names, ["stage:rough-mix", "v1.0", "v1.0"]);
        assert_eq!(tags.on_commit(&a)?.len(), 2);
        assert_eq!(tags.remove("v1.0", Some(b))?.len(), 1);
        assert_eq!(tags.named("v1.0")?.len(), 1);
        assert_eq!(tags.remove("v1.0", None)?.len(), 1);
        assert!(tags.named("v1.0")?.is_empty());
        // Another repository's records are not this one's.
        let other = store(dir.path(), "other")?;
        assert!(other.list()?.is_empty());
        Ok(())
    }

    #[test]
    fn a_hostile_repo_id_never_becomes_a_path() {
        let dir = std::path::Path::new("/nonexistent");
        for bad in ["..", "../x", "a/b", "", "."] {
            assert!(store(dir, bad).is_err(), "{bad:?} refused");
        }
    }
}
