//! Op-log session ids.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidName;

/// A validated op-log session id: one safe path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Validates `id`: not empty, at most 255 bytes, no `/`, `\`, NUL or
    /// control character, no `..`, and not starting with `.` (which also
    /// keeps it clear of temp-file names).
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidName> {
        let id = id.into();
        super::check_plain_text("session id", &id)?;
        let reason = if id.contains(['/', '\\']) {
            Some("it contains a path separator")
        } else if id.contains("..") {
            Some("it contains '..'")
        } else if id.starts_with('.') {
            Some("it starts with '.'")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidName::new("session id", &id, reason)),
            None => Ok(Self(id)),
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SessionId {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, InvalidName> {
        Self::new(s)
    }
}
