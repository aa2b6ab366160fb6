//! Revision syntax: naming a commit.
//!
//! A revision is a *base* followed by any number of *steps*:
//! - base: `HEAD` (any case, as the reference implementation accepts), a
//!   branch name, `refs/heads/<branch>` (for a branch whose name is also
//!   something else, such as a branch named `HEAD`), a full commit id (64
//!   lowercase hex, which must be a stored commit), or a unique prefix of a
//!   stored commit id (4 to 63 lowercase hex);
//! - steps: `~N` goes N first parents back (`~` alone is `~1`); `^N` takes
//!   the N-th parent, where `^1` (or `^`) is the first and `^2` the second
//!   (a merge's other side), and `^0` is the commit itself.
//!
//! Branch names may contain `~` and `^`, so the longest base that names
//! something wins: `a~1~1` is the branch `a~1` one back when that branch
//! exists, else `a` two back. Errors are distinct: text that is no revision
//! at all is [`Error::MalformedRevision`]; a base or step that names nothing
//! here is [`Error::UnknownRevision`]; a prefix matching several commits is
//! [`Error::AmbiguousRevision`] with every candidate.

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::name::BranchName;
use crate::refs::{Head, RefState};
use crate::repo::Repository;

/// Shortest id prefix accepted.
pub const MIN_PREFIX: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `~N`: N first parents back.
    Ancestor(usize),
    /// `^N`: the N-th parent (0: the commit itself).
    Parent(usize),
}

/// Parses `text` as a run of steps (`~N`, `^N`); `Err` says why it is not
/// one.
fn parse_steps(text: &str) -> std::result::Result<Vec<Step>, &'static str> {
    let bytes = text.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let op = bytes[i];
        if op != b'~' && op != b'^' {
            return Err("'~' and '^' must be followed by a number or nothing");
        }
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let n = if start == i {
            1
        } else {
            text[start..i]
                .parse()
                .map_err(|_| "a step count is too large")?
        };
        steps.push(if op == b'~' {
            Step::Ancestor(n)
        } else {
            Step::Parent(n)
        });
    }
    Ok(steps)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Repository {
    /// Resolves a revision to a commit id.
    ///
    /// A revision is a *base* and any number of *steps*. Bases: `HEAD` (any
    /// case), a branch name, `refs/heads/<branch>`, a full commit id (it
    /// must be stored), or a unique prefix of a stored commit id (4 to 63
    /// lowercase hex). Steps: `~N` goes N first parents back (`~` is `~1`);
    /// `^N` takes the N-th parent (`^`/`^1` the first, `^2` a merge's second,
    /// `^0` the commit itself). Branch names may contain `~` and `^`: the
    /// longest base that names something wins (`a~1~1` is the branch `a~1`
    /// one back when it exists).
    ///
    /// Errors: [`Error::MalformedRevision`] for text that is no revision
    /// (`HEAD~x`, `~1`, an empty string); [`Error::UnknownRevision`] when a
    /// base or step names nothing here (`nope`, `HEAD~9` past the root);
    /// [`Error::AmbiguousRevision`] with every candidate for a prefix of
    /// several commits; [`Error::UnbornBranch`] for a branch (or HEAD) with
    /// no commit yet. All are user errors.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::{Error, NewCommit, Repository};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let repo = Repository::init(dir.path())?;
    /// let one = repo.commit_files([("a", "1")], &NewCommit::new("one"))?.commit.commit_id;
    /// let two = repo.commit_files([("a", "2")], &NewCommit::new("two"))?.commit.commit_id;
    /// assert_eq!(repo.resolve("HEAD")?, two);
    /// assert_eq!(repo.resolve("main~1")?, one);
    /// assert_eq!(repo.resolve(&one.to_hex()[..8])?, one);
    /// assert!(matches!(repo.resolve("HEAD~2"), Err(Error::UnknownRevision { .. })));
    /// assert!(matches!(repo.resolve("HEAD~x"), Err(Error::MalformedRevision { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn resolve(&self, rev: &str) -> Result<ObjectId> {
        if rev.is_empty() {
            return Err(Error::MalformedRevision {
                rev: String::new(),
                reason: "it is empty",
            });
        }
        if rev.starts_with(['~', '^']) {
            return Err(Error::MalformedRevision {
                rev: rev.to_owned(),
                reason: "a revision needs a base before '~' or '^'",
            });
        }
        // The whole text as a base, then ever shorter bases (the split
        // furthest right first) with the rest as steps.
        let mut unknown = match self.resolve_base(rev, rev) {
            Err(e @ Error::UnknownRevision { .. }) => e,
            done => return done,
        };
        let mut malformed = None;
        let mut parsed_any = false;
        let splits = rev
            .char_indices()
            .filter(|&(i, c)| i > 0 && (c == '~' || c == '^'))
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        for &at in splits.iter().rev() {
            let steps = match parse_steps(&rev[at..]) {
                Ok(steps) => steps,
                Err(reason) => {
                    // The leftmost split's reason is the one to report.
                    malformed = Some(reason);
                    continue;
                }
            };
            parsed_any = true;
            match self.resolve_base(rev, &rev[..at]) {
                Ok(mut id) => {
                    for step in steps {
                        id = self.step(rev, id, step)?;
                    }
                    return Ok(id);
                }
                Err(e @ Error::UnknownRevision { .. }) => unknown = e,
                Err(e) => return Err(e),
            }
        }
        match malformed {
            Some(reason) if !parsed_any => Err(Error::MalformedRevision {
                rev: rev.to_owned(),
                reason,
            }),
            _ => Err(unknown),
        }
    }

    /// The commit of branch `name` if it exists and has one; `None` if there
    /// is no such branch (or `name` cannot be a branch).
    fn resolve_branch(&self, name: &str) -> Result<Option<ObjectId>> {
        let Ok(branch) = BranchName::from_stored(name) else {
            return Ok(None);
        };
        match self.refs().branch_state(&branch)? {
            RefState::At(id) => Ok(Some(id)),
            RefState::Unborn => Err(Error::UnbornBranch {
                branch: branch.to_string(),
            }),
            RefState::Missing => Ok(None),
        }
    }

    fn resolve_base(&self, rev: &str, base: &str) -> Result<ObjectId> {
        let unknown = |reason: &str| Error::UnknownRevision {
            rev: rev.to_owned(),
            reason: reason.to_owned(),
        };
        if base.eq_ignore_ascii_case("HEAD") {
            return match self.refs().head()? {
                Head::Detached(id) => Ok(id),
                Head::Branch(b) => self.refs().branch(&b)?.ok_or(Error::UnbornBranch {
                    branch: b.to_string(),
                }),
            };
        }
        if let Some(name) = base.strip_prefix("refs/heads/") {
            return self
                .resolve_branch(name)?
                .ok_or_else(|| unknown("no such branch"));
        }
        if let Some(id) = self.resolve_branch(base)? {
            return Ok(id);
        }
        if base.len() == 64
            && let Ok(id) = ObjectId::from_hex(base)
        {
            return if self.records().contains_commit(&id) {
                Ok(id)
            } else {
                Err(unknown("no commit with this id is stored"))
            };
        }
        if (MIN_PREFIX..64).contains(&base.len()) && is_lower_hex(base) {
            let candidates = self.records().commits_with_prefix(base)?;
            return match candidates.as_slice() {
                [id] => Ok(*id),
                [] => Err(unknown(
                    "no branch by that name and no commit id with that prefix",
                )),
                _ => Err(Error::AmbiguousRevision {
                    rev: rev.to_owned(),
                    candidates,
                }),
            };
        }
        Err(unknown(
            "not HEAD, a branch, or a commit id or prefix (4+ hex)",
        ))
    }

    fn step(&self, rev: &str, id: ObjectId, step: Step) -> Result<ObjectId> {
        let past = |what: String| Error::UnknownRevision {
            rev: rev.to_owned(),
            reason: what,
        };
        match step {
            Step::Parent(0) => Ok(id),
            Step::Parent(n) => {
                let commit = self
                    .records()
                    .read_commit_named_by(&id, || format!("revision '{rev}'"))?;
                let parent = match n {
                    1 => commit.parent_commit_id,
                    2 => commit.parent2_commit_id,
                    _ => None,
                };
                parent.ok_or_else(|| past(format!("commit {id} has no parent number {n}")))
            }
            Step::Ancestor(n) => {
                let mut at = id;
                for walked in 0..n {
                    at = self
                        .records()
                        .read_commit_named_by(&at, || format!("revision '{rev}'"))?
                        .parent_commit_id
                        .ok_or_else(|| {
                            past(format!(
                                "it goes past the root commit {at} after {walked} of {n} steps"
                            ))
                        })?;
                }
                Ok(at)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() {
        assert_eq!(
            parse_steps("~2^2~"),
            Ok(vec![Step::Ancestor(2), Step::Parent(2), Step::Ancestor(1)])
        );
        assert_eq!(parse_steps("^"), Ok(vec![Step::Parent(1)]));
        assert!(parse_steps("~x").is_err());
        assert!(parse_steps("x").is_err());
        assert_eq!(
            parse_steps("~99999999999999999999999"),
            Err("a step count is too large")
        );
    }
}
