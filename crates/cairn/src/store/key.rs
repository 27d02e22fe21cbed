//! Store keys: any user string or a fingerprint, never used raw in a path.
//! A key's objects live under a name derived from its hash, so traversal
//! (`../`), separators, odd or very long characters cannot reach the disk
//! or the bucket; the string itself is kept as metadata for display.

use std::fmt;

use super::fingerprint::Fingerprint;

/// A key of the store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    shown: String,
    id: Fingerprint,
}

impl Key {
    /// A key from any string: a run name, a config's description, a path.
    pub fn new(name: &str) -> Self {
        Key { shown: name.to_string(), id: Fingerprint::builder().str("store key", name).finish() }
    }

    /// A key from a fingerprint (of a configuration, of the hardware, or
    /// both combined); shown as its hex, and the same key as
    /// `Key::new(&fp.to_hex())`, so the hex shown in listings finds it.
    pub fn from_fingerprint(fp: &Fingerprint) -> Self {
        Self::new(&fp.to_hex())
    }

    /// The string the key was made from (a fingerprint's hex for
    /// [`from_fingerprint`](Self::from_fingerprint)).
    pub fn name(&self) -> &str {
        &self.shown
    }

    /// The hash that names the key's objects.
    pub fn id(&self) -> &Fingerprint {
        &self.id
    }

    /// Where the key's objects go below the store's folders: `<2 hex>/<62
    /// hex>` of its hash, spread over 256 directories so none grows huge
    /// on local disk. Always a valid part of a backend key.
    pub fn hash_path(&self) -> String {
        let hex = self.id.to_hex();
        let (head, tail) = hex.split_at(2);
        format!("{head}/{tail}")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?} = {})", self.shown, self.id.short(16))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::check_key;

    #[test]
    fn hostile_names_become_safe_storage_prefixes() {
        let long = "x".repeat(10_000);
        for name in ["../../etc/passwd", "/abs", "a/b", "", ".", "con", "nul\0byte", "é ü 中", "a\\b", &long] {
            let k = Key::new(name);
            let p = k.hash_path();
            check_key(&p).unwrap();
            assert_eq!(p.len(), 2 + 1 + 62, "{p}");
            assert_eq!(k.name(), name);
        }
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(Key::new("run-1"), Key::new("run-1"));
        assert_ne!(Key::new("run-1").id(), Key::new("run-2").id());
        let fp = Fingerprint::builder().u64("width", 256).finish();
        let k = Key::from_fingerprint(&fp);
        assert_eq!(k.name(), fp.to_hex());
        // The hex shown in listings names the same key.
        assert_eq!(k, Key::new(&fp.to_hex()));
    }
}
