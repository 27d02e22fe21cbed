//! Fingerprints: stable 32-byte names for configurations, built by hashing
//! typed fields with BLAKE3 in key-derivation mode, so the same fields give
//! the same fingerprint on every platform and release, and different
//! fields (or the same bytes under another type or name) do not collide.
//!
//! Encoding, fed to `blake3::Hasher::new_derive_key("cairn fingerprint v1")`,
//! for each field in the order added:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | type tag: 1 str, 2 bytes, 3 u64, 4 i64, 5 f64, 6 bool, 7 nested fingerprint |
//! | 8 | name length, u64 little-endian |
//! | n | name, UTF-8 |
//! | 8 | value length, u64 little-endian |
//! | m | value: UTF-8; raw; u64/i64 little-endian; f64 as its IEEE-754 bits little-endian (every NaN as the canonical quiet NaN, -0.0 as 0.0); bool as one byte 0/1; 32 bytes |
//!
//! Changing this encoding changes every fingerprint: it is versioned by the
//! context string.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The BLAKE3 key-derivation context: the encoding's version.
pub const FINGERPRINT_CONTEXT: &str = "cairn fingerprint v1";

/// A 32-byte fingerprint, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// A builder for a fingerprint of typed fields.
    pub fn builder() -> FingerprintBuilder {
        FingerprintBuilder { hasher: blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT) }
    }

    /// The fingerprint as hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first `n` hex digits (at most 64), for short display.
    pub fn short(&self, n: usize) -> String {
        let mut hex = self.to_hex();
        hex.truncate(n.min(64));
        hex
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument(format!("{s:?} is not a fingerprint (64 hex digits)"));
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = s.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

/// Adds typed fields to a fingerprint; see the module docs for the encoding.
#[derive(Debug, Clone)]
pub struct FingerprintBuilder {
    hasher: blake3::Hasher,
}

impl FingerprintBuilder {
    fn field(mut self, tag: u8, name: &str, value: &[u8]) -> Self {
        self.hasher.update(&[tag]);
        self.hasher.update(&(name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update(&(value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    /// A text field.
    #[must_use]
    pub fn str(self, name: &str, value: &str) -> Self {
        self.field(1, name, value.as_bytes())
    }

    /// A field of raw bytes.
    #[must_use]
    pub fn bytes(self, name: &str, value: &[u8]) -> Self {
        self.field(2, name, value)
    }

    /// An unsigned integer field.
    #[must_use]
    pub fn u64(self, name: &str, value: u64) -> Self {
        self.field(3, name, &value.to_le_bytes())
    }

    /// A signed integer field.
    #[must_use]
    pub fn i64(self, name: &str, value: i64) -> Self {
        self.field(4, name, &value.to_le_bytes())
    }

    /// A float field: every NaN hashes alike, and -0.0 as 0.0.
    #[must_use]
    pub fn f64(self, name: &str, value: f64) -> Self {
        let canonical = if value.is_nan() {
            f64::NAN
        } else if value == 0.0 {
            0.0
        } else {
            value
        };
        self.field(5, name, &canonical.to_bits().to_le_bytes())
    }

    /// A boolean field.
    #[must_use]
    pub fn bool(self, name: &str, value: bool) -> Self {
        self.field(6, name, &[u8::from(value)])
    }

    /// Another fingerprint as a field (for example the hardware's).
    #[must_use]
    pub fn fingerprint(self, name: &str, value: &Fingerprint) -> Self {
        self.field(7, name, &value.0)
    }

    /// The fingerprint of the fields added.
    pub fn finish(&self) -> Fingerprint {
        Fingerprint(*self.hasher.finalize().as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_fields_same_fingerprint_and_hex_round_trips() {
        let a = Fingerprint::builder().str("model", "mlp").u64("width", 256).f64("lr", 1e-3).finish();
        let b = Fingerprint::builder().str("model", "mlp").u64("width", 256).f64("lr", 1e-3).finish();
        assert_eq!(a, b);
        assert_eq!(a.to_hex().len(), 64);
        assert_eq!(a.to_hex().parse::<Fingerprint>().unwrap(), a);
        assert!("xyz".parse::<Fingerprint>().is_err());
        assert!("g".repeat(64).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn names_types_order_and_boundaries_all_count() {
        let base = Fingerprint::builder().str("a", "bc").finish();
        let others = [
            Fingerprint::builder().str("ab", "c").finish(),
            Fingerprint::builder().bytes("a", b"bc").finish(),
            Fingerprint::builder().str("a", "b").str("", "c").finish(),
            Fingerprint::builder().str("b", "bc").finish(),
            Fingerprint::builder().finish(),
        ];
        for o in others {
            assert_ne!(base, o);
        }
        let xy = Fingerprint::builder().u64("x", 1).u64("y", 2).finish();
        let yx = Fingerprint::builder().u64("y", 2).u64("x", 1).finish();
        assert_ne!(xy, yx);
        assert_ne!(Fingerprint::builder().u64("n", 1).finish(), Fingerprint::builder().i64("n", 1).finish());
    }

    #[test]
    fn floats_are_canonical() {
        let f = |x: f64| Fingerprint::builder().f64("x", x).finish();
        assert_eq!(f(0.0), f(-0.0));
        assert_eq!(f(f64::NAN), f(-f64::NAN));
        assert_ne!(f(1.0), f(1.0 + f64::EPSILON));
    }

    /// The encoding is a contract: this value must never change.
    #[test]
    fn a_known_fingerprint_is_stable_across_releases() {
        let fp =
            Fingerprint::builder().str("model", "mlp").u64("width", 256).f64("lr", 0.001).bool("bias", true).finish();
        let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
        for (tag, name, value) in [
            (1u8, "model", b"mlp".to_vec()),
            (3, "width", 256u64.to_le_bytes().to_vec()),
            (5, "lr", 0.001f64.to_bits().to_le_bytes().to_vec()),
            (6, "bias", vec![1]),
        ] {
            h.update(&[tag]);
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&(value.len() as u64).to_le_bytes());
            h.update(&value);
        }
        assert_eq!(fp.0, *h.finalize().as_bytes());
        // Pinned: a change here breaks every stored key.
        assert_eq!(fp.to_hex(), "144eb694b16a40fc78b049500ed8c651b7c25c1758293bad917a5f4d8850fe97");
    }
}
