//! `ReflogEntry::parse` on arbitrary text: never panics, and a parsed entry
//! round-trips through `to_line`. `to_line` normalises what a line cannot
//! hold (whitespace in the author becomes `_`, an empty author `unknown`,
//! tabs and line breaks in the operation spaces), so the round trip is exact
//! for entries that need no normalising and exact after one normalisation
//! otherwise (`to_line` is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use muse_store::ReflogEntry;

fn normal_author(author: &str) -> String {
    let a: String = author
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if a.is_empty() {
        "unknown".to_owned()
    } else {
        a
    }
}

fn normal_operation(op: &str) -> String {
    op.chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(entry) = ReflogEntry::parse(text) else {
        return;
    };
    let line = entry.to_line();
    let again = ReflogEntry::parse(&line)
        .unwrap_or_else(|| panic!("{line:?} (written for {entry:?}) does not parse"));
    let expected = ReflogEntry {
        author: normal_author(&entry.author),
        operation: normal_operation(&entry.operation),
        ..entry.clone()
    };
    assert_eq!(again, expected, "round trip of {text:?}");
    assert_eq!(again.to_line(), line, "to_line is not a fixed point");
    if expected == entry {
        assert_eq!(again, entry);
    }
});
