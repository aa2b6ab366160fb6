//! Branch names, validated in one place.
//!
//! Two rules:
//! - [`BranchName::from_stored`] is the reference implementation's rule
//!   (shared/REFERENCE.md section 9: no empty name, at most 255 characters,
//!   no `\`, NUL, CR, LF or TAB, no leading or trailing `.` or `/`, no `..`
//!   or `//`) plus one rule of this project's: no `.` component (`a/./b`
//!   would be the file `a/b`). Every branch the reference writes, `x.lock`,
//!   `a b` and `x/.y` included, passes it, and every name that passes is a
//!   safe relative path below `refs/heads/` (never absolute, no `..`, no
//!   empty or `.` component). Reading, listing, checking out, moving and
//!   deleting use it; so do the plumbing commands, as the reference's do.
//! - [`BranchName::new`] adds git's `check-ref-format` rules (no spaces,
//!   `~ ^ : ? * [`, control characters, `@{`, `.lock` or `.`-leading
//!   components): what `muse branch <new>` creates, so that a name made
//!   here stays usable by git-shaped tools.
//!
//! Locks live under `.muse/locks/`, so no branch name, `.lock` ones
//! included, shares a path with a lock.

use std::fmt;

use crate::error::InvalidName;

/// Longest branch name accepted (Muse's limit).
pub const MAX_NAME_LEN: usize = 255;

/// A validated branch name such as `main` or `feat/x`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BranchName(String);

impl BranchName {
    /// Validates a name that is about to be written (Muse's and git's rules).
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        check_muse(name)?;
        check_git(name)?;
        Ok(Self(name.to_owned()))
    }

    /// Accepts a name by the reference implementation's rules (and no `.`
    /// component), which keep it a safe path below `refs/heads/`: every
    /// branch the reference writes is readable, listable and movable here.
    pub fn from_stored(name: &str) -> Result<Self, InvalidName> {
        check_muse(name)?;
        Ok(Self(name.to_owned()))
    }

    /// Why `name` is refused by [`BranchName::from_stored`], in the
    /// reference implementation's words where it refuses the name too
    /// (`Branch name 'a..b' contains forbidden characters (path separators,
    /// null bytes, or consecutive dots).`, with the name as Python's
    /// `repr` writes it), in this project's words otherwise; `None` when the
    /// name is accepted.
    ///
    /// ```
    /// use muse_store::BranchName;
    ///
    /// assert_eq!(BranchName::refusal("topic.lock"), None);
    /// assert_eq!(BranchName::refusal("").as_deref(), Some("Branch name must not be empty."));
    /// assert_eq!(
    ///     BranchName::refusal("tab\tname").as_deref(),
    ///     Some("Branch name 'tab\\tname' contains forbidden characters (path separators, null bytes, or consecutive dots).")
    /// );
    /// ```
    #[must_use]
    pub fn refusal(name: &str) -> Option<String> {
        if name.is_empty() {
            return Some("Branch name must not be empty.".to_owned());
        }
        let chars = name.chars().count();
        if chars > MAX_NAME_LEN {
            return Some(format!(
                "Branch name too long ({chars} chars); maximum is {MAX_NAME_LEN}."
            ));
        }
        if check_reference(name).is_err() {
            return Some(format!(
                "Branch name {} contains forbidden characters (path separators, null bytes, or consecutive dots).",
                python_repr(name)
            ));
        }
        check_muse(name).err().map(|_| {
            format!(
                "Branch name {} has a '.' component, which names the same file as the name without it.",
                python_repr(name)
            )
        })
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for BranchName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for BranchName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BranchName::from_stored(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BranchName({:?})", self.0)
    }
}

fn refuse(name: &str, reason: &'static str) -> InvalidName {
    InvalidName::new("branch name", name, reason)
}

/// Python's `repr()` of a string, as the reference implementation quotes
/// names in its messages: single quotes unless the text holds a `'` and no
/// `"`; `\\`, the quote, `\t`, `\n`, `\r` escaped; other characters that
/// Python does not print (controls, separators, format characters) as
/// `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
///
/// ```
/// assert_eq!(muse_store::python_repr("a\tb"), "'a\\tb'");
/// assert_eq!(muse_store::python_repr("it's"), "\"it's\"");
/// ```
#[must_use]
pub fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !python_printable(c) => {
                use std::fmt::Write as _;
                let n = u32::from(c);
                let _ = if n < 0x100 {
                    write!(out, "\\x{n:02x}")
                } else if n < 0x1_0000 {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character, for the characters a
/// name is likely to hold: controls, the non-space separators and the
/// common format characters are not printable.
fn python_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{a0}'
                | '\u{ad}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200f}'
                | '\u{2028}'..='\u{202f}'
                | '\u{205f}'..='\u{2064}'
                | '\u{3000}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        ))
}

/// The rules Muse applies, and no `.` component.
fn check_muse(name: &str) -> Result<(), InvalidName> {
    check_reference(name)?;
    if name.split('/').any(|c| c == ".") {
        return Err(refuse(
            name,
            "it has a '.' component (the same file as the name without it)",
        ));
    }
    Ok(())
}

/// The rules the reference implementation applies (`validate_branch_name`).
fn check_reference(name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(refuse(name, "it is empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(refuse(name, "it is longer than 255 characters"));
    }
    if let Some(reason) = name.chars().find_map(|c| match c {
        '\\' => Some("it contains a backslash"),
        '\0' => Some("it contains a NUL byte"),
        '\r' | '\n' => Some("it contains a line break"),
        '\t' => Some("it contains a tab"),
        _ => None,
    }) {
        return Err(refuse(name, reason));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(refuse(name, "it starts or ends with '.'"));
    }
    if name.contains("..") {
        return Err(refuse(name, "it contains '..'"));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(refuse(name, "it starts or ends with '/'"));
    }
    if name.contains("//") {
        return Err(refuse(name, "it contains '//'"));
    }
    Ok(())
}

/// The further rules of git's `check-ref-format`.
fn check_git(name: &str) -> Result<(), InvalidName> {
    for c in name.chars() {
        let reason = match c {
            c if c.is_control() => "it contains a control character",
            ' ' => "it contains a space",
            '~' | '^' | ':' | '?' | '*' | '[' => "it contains one of ~ ^ : ? * [",
            _ => continue,
        };
        return Err(refuse(name, reason));
    }
    if name.contains("@{") {
        return Err(refuse(name, "it contains '@{'"));
    }
    if name == "@" {
        return Err(refuse(name, "'@' alone is reserved"));
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return Err(refuse(name, "a component starts with '.'"));
        }
        if component.ends_with(".lock") {
            return Err(refuse(name, "a component ends with '.lock'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["main", "feat/x", "release-1.2", "a/b/c", "café", "x@y"] {
            assert!(BranchName::new(name).is_ok(), "{name} should be valid");
        }
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        for name in [
            "",
            "../escape",
            "a..b",
            "/x",
            "x/",
            "a//b",
            ".hidden",
            "x.lock",
            "a b",
            "a~1",
            "a^b",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a@{b",
            "a\\b",
            "a\tb",
            "a\nb",
            "a\rb",
            "a\0b",
            "x.",
            "feat/.x",
            "feat/x.lock",
            "@",
            "a\u{7f}b",
        ] {
            let err = BranchName::new(name).expect_err(name);
            assert!(err.to_string().contains("invalid branch name"), "{err}");
        }
        assert!(BranchName::new(&"a".repeat(256)).is_err());
        assert!(BranchName::new(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn stored_names_use_muse_rules_only() {
        for name in [
            "a b",
            "topic.lock",
            "x/y.lock",
            "@",
            "a~b^c:d?e*[f",
            "HEAD",
            "x/.y",
            "ünï",
            "-dash",
            "@{u}",
            "del\u{7f}char",
        ] {
            assert!(
                BranchName::from_stored(name).is_ok(),
                "Muse accepts {name:?}"
            );
            assert_eq!(BranchName::refusal(name), None, "{name:?}");
        }
        for name in ["../x", "a//b", "a/./b", "/x", "x/", ".x", "x.", "a\\b"] {
            assert!(BranchName::from_stored(name).is_err(), "{name:?} refused");
            assert!(BranchName::refusal(name).is_some(), "{name:?} explained");
        }
    }

    #[test]
    fn refusals_in_the_reference_words() {
        assert_eq!(
            BranchName::refusal(&"x".repeat(256)).as_deref(),
            Some("Branch name too long (256 chars); maximum is 255.")
        );
        assert_eq!(
            BranchName::refusal("back\\slash").as_deref(),
            Some(
                "Branch name 'back\\\\slash' contains forbidden characters (path separators, null bytes, or consecutive dots)."
            )
        );
        assert_eq!(
            BranchName::refusal("nl\nname").as_deref(),
            Some(
                "Branch name 'nl\\nname' contains forbidden characters (path separators, null bytes, or consecutive dots)."
            )
        );
        assert!(
            BranchName::refusal("a/./b").is_some_and(|m| m.contains("'.' component")),
            "this project's own rule is worded as its own"
        );
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(python_repr("\u{7f}\u{1}é"), "'\\x7f\\x01é'");
    }
}
