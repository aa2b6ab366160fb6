//! Object ids: the SHA-256 of an object's bytes.
//!
//! Invariant: an [`ObjectId`] only ever comes from hashing bytes or from parsing
//! exactly 64 lowercase hexadecimal characters. Text that is short, long,
//! upper-case or contains anything else (a path, `..`) never becomes an id, so
//! it can never be turned into a path.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest naming an object, snapshot or commit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId([u8; 32]);

/// Why a piece of text is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id '{value}': expected a SHA-256 id of 64 lowercase hex characters ({reason})")]
pub struct InvalidId {
    /// The text that was refused (truncated to 100 characters for display).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ObjectId {
    /// The id of the empty byte string.
    pub const EMPTY: ObjectId = ObjectId([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// The all-zero id that reflog lines use for "no predecessor".
    pub const ZERO: ObjectId = ObjectId([0; 32]);

    /// Hashes `bytes`.
    #[must_use]
    pub fn hash(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps a raw digest.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses exactly 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, InvalidId> {
        let invalid = |reason| InvalidId {
            value: text.chars().take(100).collect(),
            reason,
        };
        if text.len() != 64 {
            return Err(invalid(if text.is_empty() {
                "it is empty"
            } else {
                "wrong length"
            }));
        }
        // One pass through a table (ids are parsed by the million when
        // manifests are read): any byte outside 0-9a-f marks the pair bad.
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let (hi, lo) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            bad |= (hi | lo) & INVALID_HEX;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        if bad != 0 {
            return Err(invalid(if text.bytes().any(|b| b.is_ascii_uppercase()) {
                "upper-case characters"
            } else {
                "characters other than 0-9 and a-f"
            }));
        }
        Ok(Self(out))
    }

    /// The id as 64 lowercase hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        // ASCII by construction.
        String::from_utf8_lossy(&self.hex_bytes()).into_owned()
    }

    /// The 64 lowercase hex characters of the id, as bytes.
    pub(crate) fn hex_bytes(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        for (pair, byte) in buf.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        buf
    }
}

/// Whether `bytes` are all lowercase hex digits (`0-9a-f`), the alphabet
/// of ids, their prefixes and the names built from them.
pub(crate) fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| HEX_VALUE[usize::from(*b)] != INVALID_HEX)
}

/// Marks a byte that is not a lowercase hex digit in [`HEX_VALUE`].
const INVALID_HEX: u8 = 0x80;

/// The value of each lowercase hex digit; [`INVALID_HEX`] for every other
/// byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.hex_bytes();
        // Hex output is ASCII.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// An incremental SHA-256 that yields an [`ObjectId`].
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// A hasher with nothing fed in.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The id of everything fed in.
    #[must_use]
    pub fn finish(self) -> ObjectId {
        ObjectId(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_constant_is_hash_of_nothing() {
        assert_eq!(ObjectId::hash(b""), ObjectId::EMPTY);
        assert_eq!(
            ObjectId::EMPTY.to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parses_only_lowercase_hex_of_64() {
        let good = "a".repeat(64);
        assert_eq!(ObjectId::from_hex(&good).unwrap().to_hex(), good);
        for bad in [
            String::new(),
            "abc123".to_string(),
            "A".repeat(64),
            "z".repeat(64),
            "a".repeat(65),
            format!("../{}", "a".repeat(61)),
            format!("{}é", "a".repeat(62)),
        ] {
            let err = ObjectId::from_hex(&bad).expect_err(&bad);
            assert!(err.to_string().contains("SHA-256"), "{err}");
        }
    }

    /// The table-driven codec agrees with an independent one on every
    /// byte value in every position, and refuses every byte that is not a
    /// lowercase hex digit in every position.
    #[test]
    fn hex_codec_agrees_with_the_hex_crate_and_refuses_every_other_byte() {
        let mut bytes = [0u8; 32];
        for round in 0..256u32 {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (round as u8).wrapping_add((i as u8).wrapping_mul(37));
            }
            let id = ObjectId(bytes);
            let text = hex::encode(bytes);
            assert_eq!(id.to_hex(), text);
            assert_eq!(id.to_string(), text);
            assert_eq!(ObjectId::from_hex(&text).unwrap(), id);
        }
        let good = ObjectId::hash(b"x").to_hex();
        for position in 0..64 {
            for byte in 0..=255u8 {
                if byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte) {
                    continue;
                }
                let mut text = good.clone().into_bytes();
                text[position] = byte;
                if let Ok(text) = String::from_utf8(text) {
                    assert!(ObjectId::from_hex(&text).is_err(), "{text:?} accepted");
                }
            }
        }
    }

    #[test]
    fn display_and_serde_round_trip() {
        let id = ObjectId::hash(b"hello world\n");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: ObjectId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<ObjectId>("\"ABC\"").is_err());
    }
}
