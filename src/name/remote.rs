//! Remote names (`[remotes.<name>]` in `config.toml`).

use crate::error::InvalidName;

/// Checks a remote name: not empty, at most 255 bytes, no whitespace,
/// control character or path separator, and not starting with `.`.
pub fn validate_remote_name(name: &str) -> Result<(), InvalidName> {
    super::check_plain_text("remote name", name)?;
    let reason = if name.chars().any(char::is_whitespace) {
        Some("it contains whitespace")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.starts_with('.') {
        Some("it starts with '.'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidName::new("remote name", name, reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_are_validated() {
        for good in ["origin", "up-stream", "a.b", "r2"] {
            assert!(validate_remote_name(good).is_ok(), "{good:?} accepted");
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            " ",
            "a b",
            "a/b",
            ".hidden",
            "a\tb",
            "a\u{7}",
            long.as_str(),
        ] {
            assert!(validate_remote_name(bad).is_err(), "{bad:?} refused");
        }
    }
}
