//! The msgpack subset a `PackBundle` uses, read and written as a stream.
//!
//! Invariants:
//! - encoding is Python `msgpack.packb(use_bin_type=True)`'s: the shortest
//!   header for every string, binary, array, map and integer (what `rmp`
//!   writes), text as `str`, bytes as `bin`, floats as `float64`;
//! - decoding never allocates from a length the input declares: strings are
//!   read against a byte budget the caller gives, arrays and maps grow as
//!   their elements actually arrive, `bin` payloads are handed out in
//!   fixed-size chunks, so a hostile header cannot make memory grow past
//!   the budget and a few buffers;
//! - every error says where (the byte offset) and what was wrong; a short
//!   input is [`DecodeError::Truncated`], never a clean end.

use std::fmt;
use std::io::{self, Read, Write};

use rmp::Marker;
use serde_json::{Map, Number, Value};

/// How deep a record may nest (maps and arrays) before it is refused.
const MAX_DEPTH: usize = 64;

/// Why bytes are not the msgpack the bundle needs.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The input ended inside a value.
    Truncated {
        /// How many bytes had been read.
        offset: u64,
    },
    /// Reading the input failed.
    Io(io::Error),
    /// The bytes are not msgpack (a reserved byte, a str that is not UTF-8).
    Invalid {
        /// Where the offending value starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The bytes are msgpack but not what belongs here (or not msgpack).
    Malformed {
        /// Where the offending value starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { offset } => {
                write!(
                    f,
                    "truncated: the input ends at byte {offset} inside a value"
                )
            }
            DecodeError::Io(e) => write!(f, "could not read the input: {e}"),
            DecodeError::Invalid { offset, what } => {
                write!(f, "not msgpack at byte {offset}: {what}")
            }
            DecodeError::Malformed { offset, what } => write!(f, "at byte {offset}: {what}"),
        }
    }
}

pub(crate) type DecodeResult<T> = Result<T, DecodeError>;

/// What a value's first byte says it is, with its length when it has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Head {
    Nil,
    Bool(bool),
    /// A non-negative integer.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    Float(f64),
    Str(u32),
    Bin(u32),
    Array(u32),
    Map(u32),
    /// An extension type (never in a bundle): its payload length.
    Ext(u32),
}

impl Head {
    /// The msgpack type name, for errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Head::Nil => "nil",
            Head::Bool(_) => "bool",
            Head::Uint(_) | Head::Int(_) => "int",
            Head::Float(_) => "float",
            Head::Str(_) => "str",
            Head::Bin(_) => "bin",
            Head::Array(_) => "array",
            Head::Map(_) => "map",
            Head::Ext(_) => "ext",
        }
    }
}

/// A msgpack reader over a byte stream that counts what it consumed.
pub(crate) struct Decoder<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, offset: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Fills `buf` completely, or fails with `Truncated`.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> DecodeResult<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(DecodeError::Truncated {
                        offset: self.offset + done as u64,
                    });
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DecodeError::Io(e)),
            }
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn be<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let mut buf = [0u8; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    /// Whether the input has ended exactly here (used once, after the
    /// top-level value: trailing bytes are refused).
    pub(crate) fn at_end(&mut self) -> DecodeResult<bool> {
        let mut one = [0u8; 1];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(true),
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DecodeError::Io(e)),
            }
        }
    }

    /// Reads the head of the next value (its marker and the length or
    /// scalar that follows the marker).
    pub(crate) fn head(&mut self) -> DecodeResult<Head> {
        let at = self.offset;
        let [byte] = self.be::<1>()?;
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(n) => Head::Uint(u64::from(n)),
            Marker::FixNeg(n) => Head::Int(i64::from(n)),
            Marker::Null => Head::Nil,
            Marker::True => Head::Bool(true),
            Marker::False => Head::Bool(false),
            Marker::U8 => Head::Uint(u64::from(self.be::<1>()?[0])),
            Marker::U16 => Head::Uint(u64::from(u16::from_be_bytes(self.be()?))),
            Marker::U32 => Head::Uint(u64::from(u32::from_be_bytes(self.be()?))),
            Marker::U64 => Head::Uint(u64::from_be_bytes(self.be()?)),
            Marker::I8 => Head::Int(i64::from(i8::from_be_bytes(self.be()?))),
            Marker::I16 => Head::Int(i64::from(i16::from_be_bytes(self.be()?))),
            Marker::I32 => Head::Int(i64::from(i32::from_be_bytes(self.be()?))),
            Marker::I64 => Head::Int(i64::from_be_bytes(self.be()?)),
            Marker::F32 => Head::Float(f64::from(f32::from_be_bytes(self.be()?))),
            Marker::F64 => Head::Float(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => Head::Str(u32::from(n)),
            Marker::Str8 => Head::Str(u32::from(self.be::<1>()?[0])),
            Marker::Str16 => Head::Str(u32::from(u16::from_be_bytes(self.be()?))),
            Marker::Str32 => Head::Str(u32::from_be_bytes(self.be()?)),
            Marker::Bin8 => Head::Bin(u32::from(self.be::<1>()?[0])),
            Marker::Bin16 => Head::Bin(u32::from(u16::from_be_bytes(self.be()?))),
            Marker::Bin32 => Head::Bin(u32::from_be_bytes(self.be()?)),
            Marker::FixArray(n) => Head::Array(u32::from(n)),
            Marker::Array16 => Head::Array(u32::from(u16::from_be_bytes(self.be()?))),
            Marker::Array32 => Head::Array(u32::from_be_bytes(self.be()?)),
            Marker::FixMap(n) => Head::Map(u32::from(n)),
            Marker::Map16 => Head::Map(u32::from(u16::from_be_bytes(self.be()?))),
            Marker::Map32 => Head::Map(u32::from_be_bytes(self.be()?)),
            Marker::FixExt1 => self.ext_head(1)?,
            Marker::FixExt2 => self.ext_head(2)?,
            Marker::FixExt4 => self.ext_head(4)?,
            Marker::FixExt8 => self.ext_head(8)?,
            Marker::FixExt16 => self.ext_head(16)?,
            Marker::Ext8 => {
                let n = u32::from(self.be::<1>()?[0]);
                self.ext_head(n)?
            }
            Marker::Ext16 => {
                let n = u32::from(u16::from_be_bytes(self.be()?));
                self.ext_head(n)?
            }
            Marker::Ext32 => {
                let n = u32::from_be_bytes(self.be()?);
                self.ext_head(n)?
            }
            Marker::Reserved => {
                return Err(DecodeError::Invalid {
                    offset: at,
                    what: "byte 0xc1 is never used in msgpack".to_owned(),
                });
            }
        })
    }

    fn ext_head(&mut self, len: u32) -> DecodeResult<Head> {
        let _type = self.be::<1>()?;
        Ok(Head::Ext(len))
    }

    /// Reads `len` bytes and hands them to `sink` in chunks of at most
    /// `buf.len()` bytes.
    pub(crate) fn stream(
        &mut self,
        len: u64,
        buf: &mut [u8],
        mut sink: impl FnMut(&[u8]) -> DecodeResult<()>,
    ) -> DecodeResult<()> {
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            self.fill(&mut buf[..n])?;
            sink(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Discards `len` bytes.
    fn discard(&mut self, len: u64) -> DecodeResult<()> {
        let mut buf = [0u8; 8192];
        self.stream(len, &mut buf, |_| Ok(()))
    }

    /// Reads a string of `len` bytes (its head already read), charging
    /// `budget`.
    pub(crate) fn str_body(&mut self, len: u32, budget: &mut u64, at: u64) -> DecodeResult<String> {
        charge(budget, u64::from(len), at)?;
        let mut bytes = vec![0u8; len as usize];
        self.fill(&mut bytes)?;
        String::from_utf8(bytes).map_err(|_| DecodeError::Invalid {
            offset: at,
            what: "a str that is not UTF-8".to_owned(),
        })
    }

    /// Reads a value that must be a string.
    pub(crate) fn string(&mut self, budget: &mut u64, what: &str) -> DecodeResult<String> {
        let at = self.offset;
        match self.head()? {
            Head::Str(len) => self.str_body(len, budget, at),
            other => malformed(at, format!("{what} must be a str, found {}", other.name())),
        }
    }

    /// Reads a value that must be an array; returns its length.
    pub(crate) fn array(&mut self, what: &str) -> DecodeResult<u32> {
        let at = self.offset;
        match self.head()? {
            Head::Array(len) => Ok(len),
            other => malformed(
                at,
                format!("{what} must be an array, found {}", other.name()),
            ),
        }
    }

    /// Reads a value that must be a map; returns its length.
    pub(crate) fn map(&mut self, what: &str) -> DecodeResult<u32> {
        let at = self.offset;
        match self.head()? {
            Head::Map(len) => Ok(len),
            other => malformed(at, format!("{what} must be a map, found {}", other.name())),
        }
    }

    /// Skips one whole value of any type, reading (not keeping) its bytes.
    pub(crate) fn skip(&mut self) -> DecodeResult<()> {
        // Pending element counts instead of recursion: a deep hostile
        // nesting costs a counter, not a stack frame.
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.head()? {
                Head::Str(n) | Head::Bin(n) | Head::Ext(n) => self.discard(u64::from(n))?,
                Head::Array(n) => pending += u64::from(n),
                Head::Map(n) => pending += 2 * u64::from(n),
                Head::Nil | Head::Bool(_) | Head::Uint(_) | Head::Int(_) | Head::Float(_) => {}
            }
        }
        Ok(())
    }

    /// Reads one value as JSON (what a record holds): map keys must be
    /// strings; `bin`, `ext` and non-finite floats are refused. Every byte
    /// of string and every element is charged to `budget`.
    pub(crate) fn json(&mut self, budget: &mut u64) -> DecodeResult<Value> {
        self.json_at(budget, 0)
    }

    fn json_at(&mut self, budget: &mut u64, depth: usize) -> DecodeResult<Value> {
        let at = self.offset;
        if depth > MAX_DEPTH {
            return malformed(at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        // Every value costs something, so a million nils are charged too.
        charge(budget, 1, at)?;
        Ok(match self.head()? {
            Head::Nil => Value::Null,
            Head::Bool(b) => Value::Bool(b),
            Head::Uint(n) => Value::Number(n.into()),
            Head::Int(n) => Value::Number(n.into()),
            Head::Float(x) => match Number::from_f64(x) {
                Some(n) => Value::Number(n),
                None => return malformed(at, "a float that is not finite"),
            },
            Head::Str(len) => Value::String(self.str_body(len, budget, at)?),
            Head::Array(len) => {
                let mut items = Vec::new();
                for _ in 0..len {
                    items.push(self.json_at(budget, depth + 1)?);
                }
                Value::Array(items)
            }
            Head::Map(len) => {
                let mut map = Map::new();
                for _ in 0..len {
                    let key_at = self.offset;
                    let key = match self.head()? {
                        Head::Str(n) => self.str_body(n, budget, key_at)?,
                        other => {
                            return malformed(
                                key_at,
                                format!("a map key must be a str, found {}", other.name()),
                            );
                        }
                    };
                    let value = self.json_at(budget, depth + 1)?;
                    if map.insert(key.clone(), value).is_some() {
                        return malformed(key_at, format!("key {key:?} appears twice"));
                    }
                }
                Value::Object(map)
            }
            other @ (Head::Bin(_) | Head::Ext(_)) => {
                return malformed(at, format!("a record cannot hold msgpack {}", other.name()));
            }
        })
    }
}

fn malformed<T>(at: u64, what: impl Into<String>) -> DecodeResult<T> {
    Err(DecodeError::Malformed {
        offset: at,
        what: what.into(),
    })
}

fn charge(budget: &mut u64, cost: u64, at: u64) -> DecodeResult<()> {
    match budget.checked_sub(cost) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => Err(DecodeError::Malformed {
            offset: at,
            what: "a record larger than the limit for one record".to_owned(),
        }),
    }
}

/// An encoding failure (only the writer can fail).
fn enc<E: fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes a map header of `len` entries.
pub(crate) fn write_map_len(out: &mut dyn Write, len: u32) -> io::Result<()> {
    rmp::encode::write_map_len(&mut WriteRef(out), len)
        .map(|_| ())
        .map_err(enc)
}

/// Writes an array header of `len` elements.
pub(crate) fn write_array_len(out: &mut dyn Write, len: u32) -> io::Result<()> {
    rmp::encode::write_array_len(&mut WriteRef(out), len)
        .map(|_| ())
        .map_err(enc)
}

/// Writes a `bin` header of `len` bytes (the payload follows).
pub(crate) fn write_bin_len(out: &mut dyn Write, len: u32) -> io::Result<()> {
    rmp::encode::write_bin_len(&mut WriteRef(out), len)
        .map(|_| ())
        .map_err(enc)
}

/// Writes a `str`.
pub(crate) fn write_str(out: &mut dyn Write, text: &str) -> io::Result<()> {
    rmp::encode::write_str(&mut WriteRef(out), text).map_err(enc)
}

/// Writes a JSON value as msgpack, keys in the value's order.
pub(crate) fn write_json(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    let mut w = WriteRef(out);
    match value {
        Value::Null => rmp::encode::write_nil(&mut w).map_err(enc),
        Value::Bool(b) => rmp::encode::write_bool(&mut w, *b).map_err(enc),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmp::encode::write_uint(&mut w, u).map(|_| ()).map_err(enc)
            } else if let Some(i) = n.as_i64() {
                rmp::encode::write_sint(&mut w, i).map(|_| ()).map_err(enc)
            } else {
                rmp::encode::write_f64(&mut w, n.as_f64().unwrap_or(0.0)).map_err(enc)
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            write_array_len(out, len32(items.len())?)?;
            items.iter().try_for_each(|v| write_json(out, v))
        }
        Value::Object(map) => {
            write_map_len(out, len32(map.len())?)?;
            for (k, v) in map {
                write_str(out, k)?;
                write_json(out, v)?;
            }
            Ok(())
        }
    }
}

/// A length that fits msgpack's 32 bits.
pub(crate) fn len32(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::other("more than 2^32-1 elements for msgpack"))
}

/// `&mut dyn Write` as a sized `io::Write` for `rmp`.
struct WriteRef<'a>(&'a mut dyn Write);

impl Write for WriteRef<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let mut bytes = Vec::new();
        write_json(&mut bytes, value).expect("encode");
        let mut d = Decoder::new(&bytes[..]);
        let mut budget = u64::MAX;
        let back = d.json(&mut budget).expect("decode");
        assert!(d.at_end().expect("end"), "nothing trails");
        back
    }

    #[test]
    fn json_values_round_trip_in_order() {
        let v = serde_json::json!({"z": 1, "a": [null, true, -5, 300, 70000, -40000, 1.5, "é"], "m": {}});
        let back = round_trip(&v);
        assert_eq!(back, v);
        let keys: Vec<_> = back.as_object().expect("map").keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "m"], "key order kept");
    }

    #[test]
    fn encodings_are_the_shortest() {
        let mut out = Vec::new();
        write_json(&mut out, &serde_json::json!(200)).expect("encode");
        assert_eq!(out, [0xcc, 200], "uint8 as Python packs 200");
        out.clear();
        write_str(&mut out, &"x".repeat(40)).expect("encode");
        assert_eq!(&out[..2], &[0xd9, 40], "str8 (use_bin_type)");
    }

    #[test]
    fn hostile_heads_cost_no_memory() {
        // An array claiming 2^32-1 elements, then nothing.
        let bytes = [0xdd, 0xff, 0xff, 0xff, 0xff];
        let mut budget = 1 << 20;
        let err = Decoder::new(&bytes[..])
            .json(&mut budget)
            .expect_err("truncated");
        assert!(matches!(err, DecodeError::Truncated { offset: 5 }), "{err}");
        // A string claiming 4 GiB against a small budget.
        let bytes = [0xdb, 0xff, 0xff, 0xff, 0xff];
        let mut budget = 1 << 20;
        let err = Decoder::new(&bytes[..])
            .json(&mut budget)
            .expect_err("too big");
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn bin_and_ext_and_reserved_are_refused_in_records() {
        for bytes in [&[0xc4, 0x00][..], &[0xd4, 0x01, 0x00], &[0xc1]] {
            let mut budget = 100;
            assert!(Decoder::new(bytes).json(&mut budget).is_err(), "{bytes:?}");
        }
    }
}
