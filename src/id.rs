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
        if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(if text.bytes().any(|b| b.is_ascii_uppercase()) {
                "upper-case characters"
            } else {
                "characters other than 0-9 and a-f"
            }));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| invalid("not hexadecimal"))?;
        Ok(Self(out))
    }

    /// The id as 64 lowercase hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the digest length.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
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
