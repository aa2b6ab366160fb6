//! `MERGE_STATE.json`: present only while a conflicted merge is in progress.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::Repository;

/// The content of `MERGE_STATE.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeState {
    /// The merge base (`null` when the histories share no ancestor).
    pub base_commit: Option<ObjectId>,
    /// The commit being merged into (HEAD when the merge started).
    pub ours_commit: ObjectId,
    /// The commit being merged in.
    pub theirs_commit: ObjectId,
    /// Working-tree paths left in conflict; written sorted and without
    /// duplicates.
    pub conflict_paths: Vec<String>,
    /// The branch being merged in, when the merge named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_branch: Option<String>,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl MergeState {
    /// A merge state with `conflict_paths` sorted and deduplicated.
    #[must_use]
    pub fn new(
        base_commit: Option<ObjectId>,
        ours_commit: ObjectId,
        theirs_commit: ObjectId,
        conflict_paths: Vec<String>,
        other_branch: Option<String>,
    ) -> Self {
        let mut state = Self {
            base_commit,
            ours_commit,
            theirs_commit,
            conflict_paths,
            other_branch,
            extra: serde_json::Map::new(),
        };
        state.normalise();
        state
    }

    fn normalise(&mut self) {
        self.conflict_paths.sort();
        self.conflict_paths.dedup();
    }

    /// Writes `MERGE_STATE.json` (atomically replacing any previous one).
    pub fn write(&self, repo: &Repository) -> Result<()> {
        let mut state = self.clone();
        state.normalise();
        super::write_json(repo.writer(), &repo.layout().merge_state(), &state)
    }

    /// Reads `MERGE_STATE.json`; `None` when no merge is in progress.
    pub fn read(repo: &Repository) -> Result<Option<Self>> {
        super::read_json(&repo.layout().merge_state())
    }

    /// Removes `MERGE_STATE.json` (no error when it is already absent).
    pub fn clear(repo: &Repository) -> Result<()> {
        repo.writer().remove_file(&repo.layout().merge_state())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestResult, fault_matrix, fixture, repo};

    fn id(n: u8) -> ObjectId {
        ObjectId::hash(&[n])
    }

    fn sample() -> MergeState {
        MergeState::new(
            Some(id(1)),
            id(2),
            id(3),
            vec!["b.txt".into(), "a.txt".into(), "b.txt".into()],
            Some("feat/x".into()),
        )
    }

    #[test]
    fn round_trip_write_read_clear() -> TestResult {
        let (_dir, repo) = repo()?;
        assert_eq!(MergeState::read(&repo)?, None, "absent reads as None");
        let state = sample();
        assert_eq!(
            state.conflict_paths,
            ["a.txt", "b.txt"],
            "sorted, deduplicated"
        );
        state.write(&repo)?;
        assert_eq!(MergeState::read(&repo)?, Some(state), "round trip");
        let text = std::fs::read_to_string(repo.layout().merge_state())?;
        assert!(
            text.starts_with("{\n  \"base_commit\": \""),
            "2-space indent: {text}"
        );
        MergeState::clear(&repo)?;
        assert_eq!(MergeState::read(&repo)?, None, "cleared");
        MergeState::clear(&repo)?;
        Ok(())
    }

    #[test]
    fn fixture_parses_and_unknown_fields_survive() -> TestResult {
        let (_dir, repo) = fixture("muse-merge-conflict")?;
        let fixture = std::fs::read(repo.layout().merge_state())?;
        assert_ne!(
            fixture.last(),
            Some(&b'\n'),
            "the fixture has no trailing newline"
        );
        let state = MergeState::read(&repo)?.ok_or("fixture state missing")?;
        assert_eq!(state.conflict_paths, ["song.txt"]);
        assert_eq!(state.other_branch.as_deref(), Some("feat/x"));
        assert_eq!(
            state.ours_commit.to_hex(),
            "4a3002d6a8d310fdd03473b7a97775e25d955fba4f0ea0cab8cb185ec698002e"
        );
        // Writing it back reproduces Muse's bytes exactly.
        state.write(&repo)?;
        assert_eq!(
            std::fs::read(repo.layout().merge_state())?,
            fixture,
            "byte-identical"
        );

        let mut with_extra: serde_json::Value = serde_json::from_slice(&fixture)?;
        with_extra["strategy"] = serde_json::json!("ours");
        let mut bytes = serde_json::to_vec_pretty(&with_extra)?;
        bytes.push(b'\n');
        repo.writer().write_file(
            &repo.layout().merge_state(),
            crate::durable::TempKind::State,
            &bytes,
        )?;
        let state = MergeState::read(&repo)?.ok_or("state missing")?;
        state.write(&repo)?;
        let again = MergeState::read(&repo)?.ok_or("state missing")?;
        assert_eq!(
            again.extra.get("strategy"),
            Some(&serde_json::json!("ours")),
            "kept"
        );
        Ok(())
    }

    #[test]
    fn malformed_file_names_the_file() -> TestResult {
        let (_dir, repo) = repo()?;
        let path = repo.layout().merge_state();
        for bad in [
            &b"{"[..],
            b"{\"base_commit\": null}",
            b"{\"base_commit\": null, \"ours_commit\": \"ABC\", \"theirs_commit\": \"x\", \"conflict_paths\": []}",
        ] {
            repo.writer().write_file(&path, crate::durable::TempKind::State, bad)?;
            let err = MergeState::read(&repo).err().ok_or("malformed file was accepted")?;
            assert!(matches!(err, crate::Error::Corrupt { .. }), "{err:?}");
            assert!(err.to_string().contains("MERGE_STATE.json"), "names the file: {err}");
        }
        Ok(())
    }

    #[test]
    fn injected_failures_leave_old_content_and_no_temp() -> TestResult {
        let old = MergeState::new(None, id(7), id(8), vec!["old".into()], None);
        let new = sample();
        fault_matrix(
            &|repo| old.write(repo),
            &|repo| new.write(repo),
            &|repo, err| {
                let now = MergeState::read(repo)?;
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
        )?;
        fault_matrix(
            &|repo| old.write(repo),
            &|repo| MergeState::clear(repo),
            &|repo, err| {
                let now = MergeState::read(repo)?;
                match err {
                    Some(crate::Error::Write(crate::durable::WriteError::NotDurable {
                        ..
                    }))
                    | None => {
                        assert_eq!(now, None, "cleared");
                    }
                    Some(_) => assert_eq!(now.as_ref(), Some(&old), "old content intact"),
                }
                Ok(())
            },
        )
    }
}
