//! JSON text exactly as Muse writes and prints it: Python's `json.dumps`,
//! in its two layouts, followed by a newline.
//!
//! Invariant: for the values Muse's files and plumbing output hold (strings,
//! integers, booleans, null, arrays and objects) the bytes are identical to
//! Python's, so a record this crate writes is byte-for-byte the record Muse
//! would write, and a plumbing command's stdout is byte-for-byte Muse's:
//! - [`JsonStyle::Indent2`], `json.dumps(value, indent=2)`: 2-space indent,
//!   `","` at line ends, `": "` after keys, `{}` / `[]` inline when empty;
//! - [`JsonStyle::Line`], `json.dumps(value)`: one line, `", "` between items
//!   and `": "` after keys;
//! - both with `ensure_ascii` (Python's default, which Muse keeps): every
//!   character outside printable ASCII is written as `\uXXXX` (lowercase
//!   hex, UTF-16 surrogate pairs above U+FFFF), DEL included.
//!
//! Key order is the order the value serialises its keys in (`serde_json`'s
//! `preserve_order` keeps insertion order for `Value` objects).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// The two layouts of Python's `json.dumps` that Muse uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// `json.dumps(value)`: one line, `", "` and `": "` separators (most
    /// plumbing output).
    Line,
    /// `json.dumps(value, indent=2)`: records on disk, and the plumbing
    /// commands that print records (`read-commit`, `read-snapshot`,
    /// `ls-files`, `commit-graph`).
    Indent2,
}

/// Python's layout: pretty (indent=2) or one line, with `ensure_ascii`
/// string escaping.
struct PythonFormatter {
    pretty: Option<PrettyFormatter<'static>>,
}

impl Formatter for PythonFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.begin_array(w),
            None => w.write_all(b"["),
        }
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.end_array(w),
            None => w.write_all(b"]"),
        }
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.begin_array_value(w, first),
            None if first => Ok(()),
            None => w.write_all(b", "),
        }
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.end_array_value(w),
            None => Ok(()),
        }
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.begin_object(w),
            None => w.write_all(b"{"),
        }
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.end_object(w),
            None => w.write_all(b"}"),
        }
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.begin_object_key(w, first),
            None if first => Ok(()),
            None => w.write_all(b", "),
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.begin_object_value(w),
            None => w.write_all(b": "),
        }
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.pretty {
            Some(p) => p.end_object_value(w),
            None => Ok(()),
        }
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
        // The same escapes in both layouts (`\n`, `\"`, `\u001f`, ...).
        PrettyFormatter::new().write_char_escape(w, escape)
    }
}

/// Serialises `value` as Python's `json.dumps(value, indent=2) + "\n"`.
pub(crate) fn to_python_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    python_json(value, JsonStyle::Indent2)
}

/// Serialises `value` as Python's `json.dumps` in `style`, followed by a
/// newline (what Muse's `print(json.dumps(...))` writes), with non-ASCII
/// characters escaped.
///
/// ```
/// use muse_store::{JsonStyle, python_json};
/// use serde_json::json;
///
/// let value = json!({"ref": "main", "ids": ["a", "ü"]});
/// assert_eq!(
///     python_json(&value, JsonStyle::Line).unwrap(),
///     b"{\"ref\": \"main\", \"ids\": [\"a\", \"\\u00fc\"]}\n"
/// );
/// assert_eq!(
///     python_json(&value, JsonStyle::Indent2).unwrap(),
///     b"{\n  \"ref\": \"main\",\n  \"ids\": [\n    \"a\",\n    \"\\u00fc\"\n  ]\n}\n"
/// );
/// ```
pub fn python_json<T: Serialize + ?Sized>(
    value: &T,
    style: JsonStyle,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let pretty = match style {
        JsonStyle::Indent2 => Some(PrettyFormatter::new()),
        JsonStyle::Line => None,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter { pretty });
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
    fn matches_python_dumps_one_line() -> serde_json::Result<()> {
        let value = json!({"a": [1, {"b": null}], "e": {}, "l": [], "s": "x"});
        let text = python_json(&value, JsonStyle::Line)?;
        // json.dumps(value) + "\n" in CPython 3.13.
        assert_eq!(
            String::from_utf8_lossy(&text),
            "{\"a\": [1, {\"b\": null}], \"e\": {}, \"l\": [], \"s\": \"x\"}\n",
            "one-line layout differs from Python's"
        );
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
