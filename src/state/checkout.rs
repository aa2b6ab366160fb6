//! `CHECKOUT_IN_PROGRESS.json`: present only while a checkout changes the
//! working tree. Written durably before the first file of the tree changes
//! and removed after HEAD moved, so a checkout that fails or is killed in
//! between is known to the next command, which completes it
//! (`porcelain::resume_checkout`).
//!
//! Invariant: while the file exists, the working-tree paths it lists are
//! each either as HEAD's commit (`from_commit`) had them or as the target
//! commit has them; every other path is as the user left it. Completing the
//! checkout therefore needs only these paths and the target commit, whose
//! objects were all verified before the file was written.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::Repository;

/// The content of `CHECKOUT_IN_PROGRESS.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutJournal {
    /// The commit being checked out.
    pub target_commit: ObjectId,
    /// The branch HEAD moves to; `None` when HEAD is detached at
    /// `target_commit`.
    pub target_branch: Option<String>,
    /// How the reflog names the target.
    pub label: String,
    /// How the reflog names where HEAD was.
    pub from: String,
    /// The commit HEAD resolved to when the checkout began.
    pub from_commit: Option<ObjectId>,
    /// Paths the checkout writes (each as the target commit has it).
    pub to_write: Vec<String>,
    /// Paths the checkout removes.
    pub to_remove: Vec<String>,
}

impl CheckoutJournal {
    /// Writes the journal durably (atomically replacing any previous one).
    pub fn write(&self, repo: &Repository) -> Result<()> {
        super::write_json(repo.writer(), &repo.layout().checkout_journal(), self)
    }

    /// Reads the journal; `None` when no checkout is in progress.
    pub fn read(repo: &Repository) -> Result<Option<Self>> {
        super::read_json(&repo.layout().checkout_journal())
    }

    /// Removes the journal (no error when it is already absent).
    pub fn clear(repo: &Repository) -> Result<()> {
        repo.writer()
            .remove_file(&repo.layout().checkout_journal())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TestResult, fault_matrix, repo};

    fn sample() -> CheckoutJournal {
        CheckoutJournal {
            target_commit: ObjectId::hash(b"t"),
            target_branch: Some("feat/x".into()),
            label: "feat/x".into(),
            from: "main".into(),
            from_commit: None,
            to_write: vec!["a.txt".into(), "d/b.txt".into()],
            to_remove: vec!["gone.txt".into()],
        }
    }

    #[test]
    fn round_trip_write_read_clear() -> TestResult {
        let (_dir, repo) = repo()?;
        assert_eq!(CheckoutJournal::read(&repo)?, None);
        sample().write(&repo)?;
        assert_eq!(CheckoutJournal::read(&repo)?, Some(sample()));
        CheckoutJournal::clear(&repo)?;
        assert_eq!(CheckoutJournal::read(&repo)?, None);
        CheckoutJournal::clear(&repo)?;
        Ok(())
    }

    #[test]
    fn a_failure_at_each_write_step_leaves_no_temp_and_the_old_journal() -> TestResult {
        let old = sample();
        let mut new = sample();
        new.label = "other".into();
        new.to_remove.clear();
        fault_matrix(
            &|repo| old.write(repo),
            &|repo| new.write(repo),
            &|repo, err| {
                let now = CheckoutJournal::read(repo)?;
                match err {
                    Some(crate::Error::Write(crate::durable::WriteError::NotDurable {
                        ..
                    }))
                    | None => assert_eq!(now.as_ref(), Some(&new), "new content after the rename"),
                    Some(_) => assert_eq!(now.as_ref(), Some(&old), "old content intact"),
                }
                Ok(())
            },
        )
    }
}
