//! `Head::parse` on arbitrary text: never panics, and whatever it accepts
//! survives a round trip through the file content it would write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muse_store::Head;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(head) = Head::parse(text) {
        let written = head.to_file_content();
        assert_eq!(
            Head::parse(&written).as_ref(),
            Ok(&head),
            "HEAD content {written:?} does not parse back"
        );
        if let Head::Branch(branch) = &head {
            assert!(!branch.as_str().contains(".."), "{branch:?}");
            assert!(!branch.as_str().starts_with('/'), "{branch:?}");
        }
    }
});
