//! Commit records: `commits/<commit_id>.json`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::Timestamp;
use crate::id::{Hasher, ObjectId};

/// The `format_version` this implementation writes.
pub const COMMIT_FORMAT_VERSION: u64 = 5;

/// A commit record with every field of shared/FORMAT.md, in the format's
/// order (serialisation follows declaration order).
///
/// The id covers the parents, `snapshot_id`, `message` and `committed_at`
/// only; everything else is carried along unhashed. Optional fields missing
/// from a record written by an older Muse take Muse's defaults on read;
/// unknown fields are kept in `extra` and written back after the known ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// [`commit_id`] of this record's hashed fields.
    pub commit_id: ObjectId,
    /// The repository's uuid (`repo.json`).
    pub repo_id: String,
    /// The branch the commit was made on.
    pub branch: String,
    /// The snapshot the commit records.
    pub snapshot_id: ObjectId,
    /// The commit message.
    pub message: String,
    /// ISO-8601 text exactly as hashed and stored (see [`Timestamp::to_isoformat`]).
    pub committed_at: String,
    /// First parent, or `None` for a root commit.
    #[serde(default)]
    pub parent_commit_id: Option<ObjectId>,
    /// Second parent, set for merges.
    #[serde(default)]
    pub parent2_commit_id: Option<ObjectId>,
    /// Who made the commit.
    #[serde(default, deserialize_with = "null_as_default")]
    pub author: String,
    /// Free-form metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Muse's typed delta, kept as JSON (`null` when absent).
    #[serde(default)]
    pub structured_delta: Option<serde_json::Value>,
    /// `"none"`, `"patch"`, `"minor"` or `"major"`.
    #[serde(default = "default_sem_ver_bump")]
    pub sem_ver_bump: String,
    /// Addresses whose change breaks compatibility.
    #[serde(default, deserialize_with = "null_as_default")]
    pub breaking_changes: Vec<String>,
    /// Agent provenance: committing agent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub agent_id: String,
    /// Agent provenance: model.
    #[serde(default, deserialize_with = "null_as_default")]
    pub model_id: String,
    /// Agent provenance: toolchain.
    #[serde(default, deserialize_with = "null_as_default")]
    pub toolchain_id: String,
    /// Agent provenance: hash of the prompt.
    #[serde(default, deserialize_with = "null_as_default")]
    pub prompt_hash: String,
    /// Signature over the commit id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub signature: String,
    /// Fingerprint of the signing key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub signer_key_id: String,
    /// Schema counter; records that lack it are Muse's version 1.
    #[serde(default = "legacy_format_version")]
    pub format_version: u64,
    /// Reviewers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reviewed_by: Vec<String>,
    /// Number of recorded test runs.
    #[serde(default)]
    pub test_runs: u64,
    /// Fields written by other tools, kept so the record round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_sem_ver_bump() -> String {
    "none".to_owned()
}

fn legacy_format_version() -> u64 {
    1
}

/// Muse reads `null` where a list, map or string is expected as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl CommitRecord {
    /// A new record with Muse's defaults for every optional field and its id
    /// computed. `parents` holds zero, one or two ids (first, then merged).
    #[must_use]
    pub fn new(
        repo_id: impl Into<String>,
        branch: impl Into<String>,
        snapshot_id: ObjectId,
        parents: &[ObjectId],
        message: impl Into<String>,
        author: impl Into<String>,
        committed_at: Timestamp,
    ) -> Self {
        let message = message.into();
        let committed_at = committed_at.to_isoformat();
        Self {
            commit_id: commit_id(parents, &snapshot_id, &message, &committed_at),
            repo_id: repo_id.into(),
            branch: branch.into(),
            snapshot_id,
            message,
            committed_at,
            parent_commit_id: parents.first().copied(),
            parent2_commit_id: parents.get(1).copied(),
            author: author.into(),
            metadata: serde_json::Map::new(),
            structured_delta: None,
            sem_ver_bump: default_sem_ver_bump(),
            breaking_changes: Vec::new(),
            agent_id: String::new(),
            model_id: String::new(),
            toolchain_id: String::new(),
            prompt_hash: String::new(),
            signature: String::new(),
            signer_key_id: String::new(),
            format_version: COMMIT_FORMAT_VERSION,
            reviewed_by: Vec::new(),
            test_runs: 0,
            extra: serde_json::Map::new(),
        }
    }

    /// The parent ids that are set, first parent first.
    #[must_use]
    pub fn parents(&self) -> Vec<ObjectId> {
        self.parent_commit_id
            .into_iter()
            .chain(self.parent2_commit_id)
            .collect()
    }

    /// The id recomputed from the hashed fields (equal to `commit_id` unless
    /// the record was tampered with).
    #[must_use]
    pub fn computed_id(&self) -> ObjectId {
        commit_id(
            &self.parents(),
            &self.snapshot_id,
            &self.message,
            &self.committed_at,
        )
    }
}

/// `sha256(NUL.join([NUL.join(sorted(parents)), snapshot_id, message,
/// committed_at]))` (shared/FORMAT.md); `committed_at` is the stored text.
#[must_use]
pub fn commit_id(
    parent_ids: &[ObjectId],
    snapshot_id: &ObjectId,
    message: &str,
    committed_at: &str,
) -> ObjectId {
    // Sorting the raw digests sorts their lowercase hex the same way.
    let mut parents = parent_ids.to_vec();
    parents.sort_unstable();
    let mut hasher = Hasher::new();
    for (i, parent) in parents.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\0");
        }
        hasher.update(parent.to_hex().as_bytes());
    }
    hasher.update(b"\0");
    hasher.update(snapshot_id.to_hex().as_bytes());
    hasher.update(b"\0");
    hasher.update(message.as_bytes());
    hasher.update(b"\0");
    hasher.update(committed_at.as_bytes());
    hasher.finish()
}
