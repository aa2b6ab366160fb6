//! The path policy: which paths a snapshot manifest may hold.
//!
//! A manifest is data from someone else (a copied repository today, a
//! fetched bundle later), and checkout turns its paths into files. Every
//! path that enters from a manifest passes [`check_manifest`]: reading a
//! snapshot record, writing one (`commit-tree`, the commit APIs), checkout
//! and fsck (through the record store), and unpacking a bundle.
//!
//! A path is refused when it is empty or longer than 4096 bytes, absolute,
//! holds a backslash, NUL or another control character, has an empty, `.`
//! or `..` component or one longer than 255 bytes, or has a component that
//! names repository metadata: `.muse` or `.git` at any depth, compared the
//! way the filesystems people use compare names (case-insensitively,
//! ignoring trailing dots and spaces and an NTFS stream suffix `:...`, the
//! 8.3 short forms `GIT~1` and `MUSE~1`, and the code points HFS+ ignores),
//! as git's own `verify_path` does for `.git`. A manifest is refused whole
//! when one of its paths is, or when one path is a directory prefix of
//! another (`d` and `d/f`: no tree can hold both).
//!
//! The reference implementation's snapshots never hold such paths: its walk
//! skips `.muse` and `.git` and lists regular files by their relative POSIX
//! path, so nothing it writes is refused here.

pub use crate::error::PathRefusal;
use std::collections::HashSet;

/// The longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest path component accepted, in bytes (`NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Checks one manifest path against the policy (see the module docs).
pub fn check_path(path: &str) -> Result<(), PathRefusal> {
    match path_problem(path) {
        Some(reason) => Err(PathRefusal {
            path: path.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("it is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Some("it is longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Some("it is absolute");
    }
    if path.contains('\\') {
        return Some("it contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return Some("it contains NUL or another control character");
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Some("it has an empty component ('//' or a trailing '/')");
        }
        if component == "." || component == ".." {
            return Some("it has a '.' or '..' component");
        }
        if component.len() > MAX_COMPONENT_BYTES {
            return Some("a component is longer than 255 bytes");
        }
        if names_metadata(component) {
            return Some("a component names repository metadata (.muse or .git)");
        }
    }
    None
}

/// Whether a path component would name `.muse` or `.git` on some
/// filesystem people use: case-insensitively, ignoring trailing dots and
/// spaces (Windows), an NTFS alternate-stream suffix, HFS+'s ignorable code
/// points, and the 8.3 short forms.
#[must_use]
pub fn names_metadata(component: &str) -> bool {
    const NAMES: [&str; 4] = [".git", ".muse", "git~1", "muse~1"];
    let is_one = |name: &str| {
        let name = name.split(':').next().unwrap_or_default();
        let name = name.trim_end_matches(['.', ' ']);
        NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
    };
    // The ignorable code points are not ASCII: an ASCII name (nearly every
    // one) is compared as it is, without building a copy.
    if component.is_ascii() {
        return is_one(component);
    }
    let visible: String = component.chars().filter(|c| !hfs_ignorable(*c)).collect();
    is_one(&visible)
}

/// The code points HFS+ drops when it compares names (git's
/// `is_hfs_dotgit` list): zero-width and direction marks.
fn hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

/// Checks every path of a manifest, and that no path is a directory prefix
/// of another; the first problem found is returned.
pub fn check_manifest<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), PathRefusal> {
    let paths: Vec<&str> = paths.into_iter().collect();
    for path in &paths {
        check_path(path)?;
    }
    let set: HashSet<&str> = paths.iter().copied().collect();
    for path in &paths {
        if let Some((i, _)) = path
            .match_indices('/')
            .find(|(i, _)| set.contains(&path[..*i]))
        {
            return Err(PathRefusal {
                path: (*path).to_owned(),
                reason: if i > 0 {
                    "a file of the manifest is one of its parent directories"
                } else {
                    "it has an empty component"
                },
            });
        }
    }
    Ok(())
}

/// Two paths of `paths` that would be one file, or a file and a directory
/// of the same name, on a case-insensitive filesystem (compared by Unicode
/// lowercase), if any.
#[must_use]
pub fn case_collision<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<(String, String)> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    let paths: Vec<&str> = paths.into_iter().collect();
    for path in &paths {
        if let Some(other) = seen.insert(path.to_lowercase(), path)
            && other != *path
        {
            return Some((other.to_owned(), (*path).to_owned()));
        }
    }
    for path in &paths {
        let lower = path.to_lowercase();
        for (i, _) in lower.match_indices('/') {
            if let Some(file) = seen.get(&lower[..i]) {
                return Some(((*file).to_owned(), (*path).to_owned()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_paths_and_why() {
        let long_component = "a".repeat(256);
        let long_path = vec!["a"; 2049].join("/");
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("a\\b", "backslash"),
            ("a\0b", "control"),
            ("a\tb", "control"),
            ("a\u{7f}b", "control"),
            ("d//e", "empty component"),
            ("g/", "empty component"),
            ("d/./e", "'.'"),
            ("../x", "'.'"),
            ("a/..", "'.'"),
            (&long_component, "255"),
            (&long_path, "4096"),
            (".muse/HEAD", "metadata"),
            (".muse/refs/heads/main", "metadata"),
            ("x/.muse/refs/heads/main", "metadata"),
            (".git/config", "metadata"),
            (".GIT/config", "metadata"),
            (".Git/hooks/post-checkout", "metadata"),
            (".git./config", "metadata"),
            (".git ./config", "metadata"),
            (".git /config", "metadata"),
            ("git~1/config", "metadata"),
            ("GIT~1/config", "metadata"),
            ("MUSE~1/HEAD", "metadata"),
            (".git::$INDEX_ALLOCATION/config", "metadata"),
            (".g\u{200c}it/config", "metadata"),
            ("\u{feff}.muse/HEAD", "metadata"),
            ("sub/.MUSE./objects", "metadata"),
        ];
        for (path, why) in cases {
            let err = check_path(path).expect_err(path);
            assert!(err.reason.contains(why), "{path:?}: {}", err.reason);
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        let long_component = "a".repeat(255);
        for path in [
            "a.txt",
            "src/main.rs",
            ".github/workflows/ci.yml",
            ".gitignore",
            ".museignore",
            "git",
            "muse",
            "x.git",
            "git~2/x",
            ".gitx/y",
            "a b/c d",
            "ünïcödé/文件",
            long_component.as_str(),
        ] {
            check_path(path).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn a_manifest_with_a_file_that_is_also_a_directory_is_refused() {
        let err = check_manifest(["a.txt", "d", "d/f"]).expect_err("d and d/f");
        assert_eq!(err.path, "d/f");
        let err = check_manifest(["a/b/c", "a/b"]).expect_err("a/b and a/b/c");
        assert_eq!(err.path, "a/b/c");
        assert!(check_manifest(["d/f", "d/g", "dd", "d.txt"]).is_ok());
        assert!(check_manifest(["ok", ".git/config"]).is_err());
    }

    #[test]
    fn case_collisions_are_found() {
        assert_eq!(
            case_collision(["README", "src/a", "readme"]),
            Some(("README".to_owned(), "readme".to_owned()))
        );
        assert_eq!(
            case_collision(["a", "b", "A/x"]),
            Some(("a".to_owned(), "A/x".to_owned()))
        );
        assert_eq!(case_collision(["a/x", "A/y", "b"]), None, "one directory");
    }
}
