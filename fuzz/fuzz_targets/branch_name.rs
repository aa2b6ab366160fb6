//! Branch-name validation: a name accepted for writing (`BranchName::new`)
//! is also accepted when stored, never contains `..`, never starts with
//! `/`, has no empty component and no component ending in `.lock`; a stored
//! name (`from_stored`) is still a safe relative path below `refs/heads/`.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use muse_store::BranchName;

fn path_safe(name: &str) {
    assert!(!name.is_empty(), "empty name accepted");
    assert!(!name.contains(".."), "{name:?} contains '..'");
    assert!(!name.starts_with('/'), "{name:?} starts with '/'");
    assert!(!name.contains('\0'), "{name:?} contains NUL");
    assert!(!name.contains('\\'), "{name:?} contains a backslash");
    assert!(
        name.split('/').all(|c| !c.is_empty()),
        "{name:?} has an empty component"
    );
    assert!(
        Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{name:?} is not a plain relative path"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = BranchName::new(text) {
        assert_eq!(name.as_str(), text);
        path_safe(text);
        assert!(
            text.split('/').all(|c| !c.ends_with(".lock")),
            "{text:?}: a component ends with .lock"
        );
        assert!(
            BranchName::from_stored(text).is_ok(),
            "{text:?} is valid to write but not to read"
        );
    }
    if let Ok(name) = BranchName::from_stored(text) {
        assert_eq!(name.as_str(), text);
        path_safe(text);
    }
});
