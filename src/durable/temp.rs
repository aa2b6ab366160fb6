//! Temp-file naming (shared/FORMAT.md, "Extensions owned by this project").
//!
//! Invariant: every temp file this crate creates lives in its target's own
//! directory and its name starts with one of three prefixes followed by a
//! random suffix; nothing else this crate writes starts with them, so
//! recovery, fsck and gc can recognise a leftover by its name alone.

/// Prefix of temp files that will become objects.
pub const OBJECT_TMP_PREFIX: &str = ".obj-tmp-";
/// Prefix of temp files that will become state files and records.
pub const STATE_TMP_PREFIX: &str = ".muse-tmp-";
/// Prefix of temp files that will become working-tree files.
pub const RESTORE_TMP_PREFIX: &str = ".restore-tmp-";

/// Whether a file name is one of this project's temp files.
#[must_use]
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(OBJECT_TMP_PREFIX)
        || name.starts_with(STATE_TMP_PREFIX)
        || name.starts_with(RESTORE_TMP_PREFIX)
}

/// A fresh temp file name: `prefix` and a random 128-bit suffix.
pub(crate) fn temp_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// What a temp file will become; picks its name prefix and permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempKind {
    /// An object in `objects/` (stored read-only, mode 0444).
    Object,
    /// A state file or record inside `.muse/`.
    State,
    /// A file restored into the working tree.
    Restore,
}

impl TempKind {
    /// The temp file name prefix (shared/FORMAT.md, "Extensions").
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            TempKind::Object => OBJECT_TMP_PREFIX,
            TempKind::State => STATE_TMP_PREFIX,
            TempKind::Restore => RESTORE_TMP_PREFIX,
        }
    }

    pub(crate) fn mode(self) -> u32 {
        match self {
            TempKind::Object => 0o444,
            TempKind::State | TempKind::Restore => 0o666,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        assert!(is_temp_name(".obj-tmp-abc"));
        assert!(is_temp_name(".muse-tmp-abc"));
        assert!(is_temp_name(".restore-tmp-abc"));
        assert!(!is_temp_name("HEAD"));
        for kind in [TempKind::Object, TempKind::State, TempKind::Restore] {
            assert!(is_temp_name(&temp_name(kind.prefix())));
        }
    }
}
