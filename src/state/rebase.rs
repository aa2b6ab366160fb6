//! `REBASE_STATE.json`: present only while a rebase is in progress.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::Repository;

/// The content of `REBASE_STATE.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebaseState {
    /// The branch being rebased.
    pub original_branch: String,
    /// Where that branch pointed before the rebase started.
    pub original_head: ObjectId,
    /// The commit the branch is being replayed onto.
    pub onto: ObjectId,
    /// Commits still to replay, in order.
    pub remaining: Vec<ObjectId>,
    /// Commits already replayed, in order.
    pub completed: Vec<ObjectId>,
    /// Whether the replayed commits are squashed into one.
    #[serde(default)]
    pub squash: bool,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RebaseState {
    /// A rebase that has not replayed anything yet.
    #[must_use]
    pub fn new(
        original_branch: impl Into<String>,
        original_head: ObjectId,
        onto: ObjectId,
        remaining: Vec<ObjectId>,
        squash: bool,
    ) -> Self {
        Self {
            original_branch: original_branch.into(),
            original_head,
            onto,
            remaining,
            completed: Vec::new(),
            squash,
            extra: serde_json::Map::new(),
        }
    }

    /// Writes `REBASE_STATE.json` (atomically replacing any previous one).
    pub fn write(&self, repo: &Repository) -> Result<()> {
        super::write_json(repo.writer(), &repo.layout().rebase_state(), self)
    }

    /// Reads `REBASE_STATE.json`; `None` when no rebase is in progress.
    pub fn read(repo: &Repository) -> Result<Option<Self>> {
        super::read_json(&repo.layout().rebase_state())
    }

    /// Removes `REBASE_STATE.json` (no error when it is already absent).
    pub fn clear(repo: &Repository) -> Result<()> {
        repo.writer().remove_file(&repo.layout().rebase_state())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestResult, fault_matrix, repo};

    fn id(n: u8) -> ObjectId {
        ObjectId::hash(&[n])
    }

    #[test]
    fn round_trip_write_read_clear() -> TestResult {
        let (_dir, repo) = repo()?;
        assert_eq!(RebaseState::read(&repo)?, None, "absent reads as None");
        let mut state = RebaseState::new("feat/x", id(1), id(2), vec![id(3), id(4)], false);
        state.write(&repo)?;
        assert_eq!(
            RebaseState::read(&repo)?.as_ref(),
            Some(&state),
            "round trip"
        );
        state.completed.push(state.remaining.remove(0));
        state.squash = true;
        state.write(&repo)?;
        assert_eq!(
            RebaseState::read(&repo)?.as_ref(),
            Some(&state),
            "progress saved"
        );
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(repo.layout().rebase_state())?)?;
        let keys: Vec<_> = value
            .as_object()
            .ok_or("not an object")?
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "original_branch",
                "original_head",
                "onto",
                "remaining",
                "completed",
                "squash"
            ],
            "fields and order of FORMAT.md"
        );
        RebaseState::clear(&repo)?;
        assert_eq!(RebaseState::read(&repo)?, None, "cleared");
        Ok(())
    }

    #[test]
    fn malformed_file_names_the_file() -> TestResult {
        let (_dir, repo) = repo()?;
        let path = repo.layout().rebase_state();
        repo.writer().write_file(
            &path,
            crate::durable::TempKind::State,
            b"{\"original_branch\": 5}",
        )?;
        let err = RebaseState::read(&repo)
            .err()
            .ok_or("malformed file was accepted")?;
        assert!(
            err.to_string().contains("REBASE_STATE.json"),
            "names the file: {err}"
        );
        Ok(())
    }

    #[test]
    fn injected_failures_leave_old_content_and_no_temp() -> TestResult {
        let old = RebaseState::new("main", id(1), id(2), vec![id(3)], false);
        let new = RebaseState::new("main", id(1), id(5), vec![], true);
        fault_matrix(
            &|repo| old.write(repo),
            &|repo| new.write(repo),
            &|repo, err| {
                let now = RebaseState::read(repo)?;
                match err {
                    Some(crate::Error::Write(crate::durable::WriteError::NotDurable {
                        ..
                    }))
                    | None => {
                        assert_eq!(now.as_ref(), Some(&new), "new content after the rename");
                    }
                    Some(_) => assert_eq!(now.as_ref(), Some(&old), "old content intact"),
                }
                Ok(())
            },
        )
    }
}
