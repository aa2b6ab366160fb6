//! Validated names that become paths: branch names, op-log session ids,
//! remote names.
//!
//! Invariant: a value of any type here is a safe relative path (or path
//! component) below the directory it names into: never empty, never
//! absolute, no `..`, no NUL or control characters where they could break a
//! line-oriented file. Text from outside becomes one of these only through
//! its constructor, which names the rule a refused name breaks.

mod branch;
mod glob;
mod path;
mod remote;
mod session;

pub use branch::{BranchName, python_repr};
pub use glob::{Glob, fnmatch};
pub use path::{
    MAX_COMPONENT_BYTES, MAX_PATH_BYTES, PathRefusal, case_collision, check_manifest, check_path,
    names_metadata,
};
pub use remote::validate_remote_name;
pub use session::SessionId;

use crate::error::InvalidName;

/// Checks text from outside that becomes one path component (a repository
/// id naming `tags/<repo_id>/`, a remote naming `remotes/<remote>/`, a tag
/// file's name): not empty, at most 255 bytes, not `.` or `..`, no `/`,
/// `\` or NUL.
pub(crate) fn check_component(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("it is '.' or '..'")
    } else if name.contains(['/', '\\', '\0']) {
        Some("it contains '/', '\\' or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidName::new(what, name, reason)),
        None => Ok(()),
    }
}

/// Checks a name that is stored in a file or becomes a path component: not
/// empty, at most 255 bytes, no control characters.
pub(crate) fn check_plain_text(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let refuse = |reason| Err(InvalidName::new(what, name, reason));
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > 255 {
        return refuse("it is longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    Ok(())
}
