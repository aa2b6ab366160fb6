//! Revision syntax: naming a commit.
//!
//! A revision is a *base* followed by any number of *steps*:
//! - base, tried in this order: `HEAD` (any case, as the reference
//!   implementation reads it: it wins over a branch of that name), a branch
//!   name, a tag (the reference's tag records; an extension, the reference's
//!   `rev-parse v1.0` is "not found"), a full commit id (64 lowercase hex,
//!   which must be a stored commit), or a unique prefix of a stored commit id
//!   (4 to 63 lowercase hex);
//! - steps (an extension: the reference has no ancestry syntax): `~N` goes N
//!   first parents back (`~` alone is `~1`); `^N` takes the N-th parent,
//!   where `^1` (or `^`) is the first and `^2` the second (a merge's other
//!   side), and `^0` is the commit itself.
//!
//! `refs/heads/<branch>` names a branch whose name is also something else
//! (a branch named `HEAD`). Branch names may contain `~` and `^`, so the
//! longest base that names something wins: `a~1~1` is the branch `a~1` one
//! back when that branch exists, else `a` two back. When a name is both a
//! branch and a tag the branch wins, and [`Resolved::shadowed`] says what it
//! hid.
//! Errors are distinct: text that is no revision at all is
//! [`Error::MalformedRevision`]; a base or step that names nothing here is
//! [`Error::UnknownRevision`]; a prefix matching several commits, or a tag
//! text naming several, is [`Error::AmbiguousRevision`] with every
//! candidate.

use crate::error::{Error, Result};
use crate::id::{ObjectId, is_lower_hex};
use crate::name::BranchName;
use crate::refs::{Head, RefState};
use crate::repo::Repository;

/// Shortest id prefix accepted.
pub const MIN_PREFIX: usize = 4;

/// Which parts of the revision syntax a caller accepts (the reference's
/// plumbing commands differ: `rev-parse` takes prefixes, `merge-base` and
/// `snapshot-diff` do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionSyntax {
    /// Unique id prefixes (4+ hex).
    pub prefixes: bool,
    /// Tags as bases.
    pub tags: bool,
    /// `~N` and `^N` steps.
    pub steps: bool,
}

impl RevisionSyntax {
    /// Everything (what [`Repository::resolve`] takes).
    pub const FULL: Self = Self {
        prefixes: true,
        tags: true,
        steps: true,
    };
    /// Everything but id prefixes (the reference's `merge-base` and
    /// `snapshot-diff` take HEAD, branches and full ids only).
    pub const NO_PREFIXES: Self = Self {
        prefixes: false,
        tags: true,
        steps: true,
    };
}

/// What a revision's base named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionBase {
    /// `HEAD`.
    Head,
    /// A branch.
    Branch(BranchName),
    /// A tag's text.
    Tag(String),
    /// A full commit id.
    Id,
    /// A unique id prefix.
    Prefix,
}

/// A resolved revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit.
    pub commit: ObjectId,
    /// What the base named.
    pub base: RevisionBase,
    /// What else the base's text names that lost (`tag 'v1' naming <id>`
    /// under a branch `v1`), for a warning; `None` when unambiguous.
    pub shadowed: Option<String>,
}

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

impl Repository {
    /// Resolves a revision to a commit id.
    ///
    /// A revision is a *base* and any number of *steps*. Bases: `HEAD` (any
    /// case), a branch name, `refs/heads/<branch>`, a tag, a full commit id
    /// (it must be stored), or a unique prefix of a stored commit id (4 to
    /// 63 lowercase hex). Steps: `~N` goes N first parents back (`~` is
    /// `~1`); `^N` takes the N-th parent (`^`/`^1` the first, `^2` a merge's
    /// second, `^0` the commit itself). Branch names may contain `~` and
    /// `^`: the longest base that names something wins (`a~1~1` is the
    /// branch `a~1` one back when it exists).
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
        Ok(self.resolve_revision(rev, RevisionSyntax::FULL)?.commit)
    }

    /// Resolves `rev` with the parts of the syntax `syntax` allows, saying
    /// what its base named and what a name shadowed.
    ///
    /// ```
    /// # fn main() -> muse_store::Result<()> {
    /// use muse_store::{NewCommit, Repository, RevisionBase, RevisionSyntax};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let repo = Repository::init(dir.path())?;
    /// let one = repo.commit_files([("a", "1")], &NewCommit::new("one"))?.commit.commit_id;
    /// repo.tags()?.add("v1", one)?;
    /// let found = repo.resolve_revision("v1", RevisionSyntax::FULL)?;
    /// assert_eq!((found.commit, found.base), (one, RevisionBase::Tag("v1".into())));
    /// assert!(repo.resolve_revision(&one.to_hex()[..8], RevisionSyntax::NO_PREFIXES).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn resolve_revision(&self, rev: &str, syntax: RevisionSyntax) -> Result<Resolved> {
        if rev.is_empty() {
            return Err(Error::MalformedRevision {
                rev: String::new(),
                reason: "it is empty",
            });
        }
        if syntax.steps && rev.starts_with(['~', '^']) {
            return Err(Error::MalformedRevision {
                rev: rev.to_owned(),
                reason: "a revision needs a base before '~' or '^'",
            });
        }
        // The whole text as a base, then ever shorter bases (the split
        // furthest right first) with the rest as steps.
        let mut unknown = match self.resolve_base(rev, rev, syntax) {
            Err(e @ Error::UnknownRevision { .. }) => e,
            done => return done,
        };
        if !syntax.steps {
            return Err(unknown);
        }
        let mut malformed = None;
        let mut parsed_any = false;
        let splits: Vec<usize> = rev
            .char_indices()
            .filter(|&(i, c)| i > 0 && (c == '~' || c == '^'))
            .map(|(i, _)| i)
            .collect();
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
            match self.resolve_base(rev, &rev[..at], syntax) {
                Ok(mut found) => {
                    for step in steps {
                        found.commit = self.step(rev, found.commit, step)?;
                    }
                    return Ok(found);
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

    /// `base` (part of `rev`) as a name or an id.
    fn resolve_base(&self, rev: &str, base: &str, syntax: RevisionSyntax) -> Result<Resolved> {
        match self.resolve_name(base, syntax)? {
            Some(found) => Ok(found),
            None => self.resolve_id(rev, base, syntax),
        }
    }

    /// `name` as HEAD, a branch or a tag; `None` when it is none of them.
    fn resolve_name(&self, name: &str, syntax: RevisionSyntax) -> Result<Option<Resolved>> {
        // What a tag of this text names, for a note only: a tag file that
        // cannot be read never stops HEAD or a branch from resolving.
        let tag_note = || {
            if !syntax.tags {
                return None;
            }
            match self.resolve_tag(name) {
                Ok(Some((t, id))) => Some(format!("tag '{t}' at {id}")),
                Err(Error::AmbiguousRevision { candidates, .. }) => {
                    Some(format!("tag '{name}' at {} commits", candidates.len()))
                }
                _ => None,
            }
        };
        if let Some(full) = name.strip_prefix("refs/heads/") {
            return Ok(self.resolve_branch(full)?.map(|(b, commit)| Resolved {
                commit,
                base: RevisionBase::Branch(b),
                shadowed: None,
            }));
        }
        let head = name.eq_ignore_ascii_case("HEAD");
        let branch = self.resolve_branch(name);
        if head {
            let commit = match self.refs().head()? {
                Head::Detached(id) => id,
                Head::Branch(b) => self.refs().branch(&b)?.ok_or(Error::UnbornBranch {
                    branch: b.to_string(),
                })?,
            };
            let shadowed = match branch {
                Ok(Some((b, id))) => Some(format!("branch '{b}' at {id}")),
                _ => tag_note(),
            };
            return Ok(Some(Resolved {
                commit,
                base: RevisionBase::Head,
                shadowed,
            }));
        }
        if let Some((b, commit)) = branch? {
            return Ok(Some(Resolved {
                commit,
                base: RevisionBase::Branch(b),
                shadowed: tag_note(),
            }));
        }
        if !syntax.tags {
            return Ok(None);
        }
        Ok(self.resolve_tag(name)?.map(|(t, commit)| Resolved {
            commit,
            base: RevisionBase::Tag(t),
            shadowed: None,
        }))
    }

    /// The branch `name` and its commit if it exists and has one; `None` if
    /// there is no such branch (or `name` cannot be a branch).
    fn resolve_branch(&self, name: &str) -> Result<Option<(BranchName, ObjectId)>> {
        let Ok(branch) = BranchName::from_stored(name) else {
            return Ok(None);
        };
        match self.refs().branch_state(&branch)? {
            RefState::At(id) => Ok(Some((branch, id))),
            RefState::Unborn => Err(Error::UnbornBranch {
                branch: branch.to_string(),
            }),
            RefState::Missing => Ok(None),
        }
    }

    /// The commit the tag text `name` names; ambiguous when its records
    /// name several commits.
    fn resolve_tag(&self, name: &str) -> Result<Option<(String, ObjectId)>> {
        let mut commits: Vec<ObjectId> = self
            .tags()?
            .named(name)?
            .into_iter()
            .map(|t| t.commit_id)
            .collect();
        commits.sort_unstable();
        commits.dedup();
        match commits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((name.to_owned(), *one))),
            _ => Err(Error::AmbiguousRevision {
                rev: name.to_owned(),
                candidates: commits,
            }),
        }
    }

    fn resolve_id(&self, rev: &str, base: &str, syntax: RevisionSyntax) -> Result<Resolved> {
        let unknown = |reason: &str| Error::UnknownRevision {
            rev: rev.to_owned(),
            reason: reason.to_owned(),
        };
        let found = |commit, base| Resolved {
            commit,
            base,
            shadowed: None,
        };
        if base.len() == 64
            && let Ok(id) = ObjectId::from_hex(base)
        {
            return if self.records().contains_commit(&id) {
                Ok(found(id, RevisionBase::Id))
            } else {
                Err(unknown("no commit with this id is stored"))
            };
        }
        if syntax.prefixes
            && (MIN_PREFIX..64).contains(&base.len())
            && is_lower_hex(base.as_bytes())
        {
            let candidates = self.records().commits_with_prefix(base)?;
            return match candidates.as_slice() {
                [id] => Ok(found(*id, RevisionBase::Prefix)),
                [] => Err(unknown(
                    "no branch or tag by that name and no commit id with that prefix",
                )),
                _ => Err(Error::AmbiguousRevision {
                    rev: rev.to_owned(),
                    candidates,
                }),
            };
        }
        Err(unknown(if syntax.prefixes {
            "not HEAD, a branch, a tag, or a commit id or prefix (4+ hex)"
        } else {
            "not HEAD, a branch, a tag, or a full commit id"
        }))
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
