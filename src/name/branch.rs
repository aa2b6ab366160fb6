//! Branch names, validated in one place.
//!
//! Invariant: a [`BranchName`] made by [`BranchName::new`] passes both Muse's
//! rules and git's `check-ref-format` rules, so it is a safe relative path
//! under `refs/heads/` (no `..`, no absolute path, no empty component) and
//! never collides with a `.lock` file. Names already stored by another
//! implementation are read with [`BranchName::from_stored`], which applies
//! only Muse's rules (still path-safe).

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

    /// Accepts a name already stored by another implementation: Muse's rules
    /// only, which still keep it a safe path below `refs/heads/`.
    pub fn from_stored(name: &str) -> Result<Self, InvalidName> {
        check_muse(name)?;
        Ok(Self(name.to_owned()))
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

/// The rules Muse applies.
fn check_muse(name: &str) -> Result<(), InvalidName> {
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
        assert!(
            BranchName::from_stored("a b").is_ok(),
            "Muse accepts spaces"
        );
        assert!(BranchName::from_stored("../x").is_err());
        assert!(BranchName::from_stored("a//b").is_err());
    }
}
