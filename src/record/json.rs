//! JSON text exactly as Muse writes it: Python's `json.dumps(value, indent=2)`
//! followed by a newline.
//!
//! Invariant: for the values records hold (strings, integers, booleans, null,
//! arrays and objects) the bytes are identical to Python's, so a record this
//! crate writes is byte-for-byte the record Muse would write. That means:
//! 2-space indent, `": "` after keys, `{}` / `[]` inline when empty, and
//! `ensure_ascii` (Python's default, which Muse keeps): every character
//! outside printable ASCII is written as `\uXXXX` (lowercase hex, UTF-16
//! surrogate pairs above U+FFFF), DEL included.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// A [`PrettyFormatter`] with Python's `ensure_ascii` string escaping.
struct PythonFormatter(PrettyFormatter<'static>);

impl Formatter for PythonFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }

    // serde_json already escapes `"`, `\` and C0 controls the way Python
    // does (`\n`, `\u001f`, lowercase hex) through `write_char_escape`; what
    // reaches this method is everything else, of which Python escapes DEL
    // and all non-ASCII.
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, ch) in fragment.char_indices() {
            if matches!(ch, ' '..='~') {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..at])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = at + ch.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        self.0.write_char_escape(w, escape)
    }
}

/// Serialises `value` as Python's `json.dumps(value, indent=2) + "\n"`.
pub(crate) fn to_python_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, PythonFormatter(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_dumps_indent_2() -> serde_json::Result<()> {
        let value = json!({
            "a": "x",
            "empty_obj": {},
            "empty_list": [],
            "list": [1, null, true],
            "nested": {"k": ["v"]},
        });
        let text = String::from_utf8(to_python_json(&value)?).unwrap_or_default();
        // json.dumps(value, indent=2) + "\n" in CPython 3.12.
        let expected = "{\n  \"a\": \"x\",\n  \"empty_obj\": {},\n  \"empty_list\": [],\n  \"list\": [\n    1,\n    null,\n    true\n  ],\n  \"nested\": {\n    \"k\": [\n      \"v\"\n    ]\n  }\n}\n";
        assert_eq!(text, expected, "layout differs from Python's");
        Ok(())
    }

    #[test]
    fn escapes_like_ensure_ascii() -> serde_json::Result<()> {
        // json.dumps("café ♫ 𝄞 \x7f \x01 \n \t \" \\ /")
        let text = to_python_json("café ♫ 𝄞 \u{7f} \u{1} \n \t \" \\ /")?;
        assert_eq!(
            String::from_utf8_lossy(&text),
            "\"caf\\u00e9 \\u266b \\ud834\\udd1e \\u007f \\u0001 \\n \\t \\\" \\\\ /\"\n",
            "string escaping differs from Python's ensure_ascii"
        );
        Ok(())
    }
}
