//! The store's small JSON objects: a key's index, an entry's info, a
//! quarantine note, a lease, the usage summary. Each is decoded with a size
//! limit and a version check; a damaged one is an error naming the object.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::select::EntryInfo;
use crate::error::{Error, Result};

/// The version every document carries.
pub(crate) const DOC_VERSION: u32 = 1;

/// The largest index read: about 200 000 entries.
pub(crate) const MAX_INDEX_BYTES: usize = 64 << 20;

/// The largest info, lease or usage object read.
pub(crate) const MAX_SMALL_DOC_BYTES: usize = 1 << 20;

/// One key's index: every entry, so that lookups read one object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexDoc {
    pub version: u32,
    /// The user key, for listings.
    pub key: String,
    pub entries: Vec<EntryInfo>,
}

impl IndexDoc {
    pub fn new(key: &str) -> Self {
        IndexDoc { version: DOC_VERSION, key: key.to_string(), entries: Vec::new() }
    }
}

/// An entry's own description: what the index says of it, and its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InfoDoc {
    pub version: u32,
    pub key: String,
    pub entry: EntryInfo,
    /// Why the entry was quarantined, in quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<Quarantined>,
}

/// What a quarantine note records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Quarantined {
    pub at: u64,
    pub reason: String,
}

/// A reader's claim on an entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaseDoc {
    pub version: u32,
    pub expires_at: u64,
    pub holder: String,
}

/// What the last collection counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UsageDoc {
    pub version: u32,
    pub entries: u64,
    pub bytes: u64,
    pub at: u64,
}

pub(crate) fn encode<T: Serialize>(doc: &T) -> Result<bytes::Bytes> {
    serde_json::to_vec(doc)
        .map(bytes::Bytes::from)
        .map_err(|e| Error::InvalidArgument(format!("encoding a store document: {e}")))
}

/// Decodes `bytes` read from `what` (a locator), refusing more than
/// `limit` bytes and unknown versions.
pub(crate) fn decode<T: DeserializeOwned + Versioned>(bytes: &[u8], limit: usize, what: &str) -> Result<T> {
    let corrupt =
        |detail: String| Error::Corrupt { file: what.to_string(), what: "store document".into(), offset: 0, detail };
    if bytes.len() > limit {
        return Err(corrupt(format!("{} bytes, more than the limit of {limit}", bytes.len())));
    }
    let doc: T = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if doc.version() != DOC_VERSION {
        return Err(Error::Unsupported {
            file: what.to_string(),
            feature: format!("store document version {}", doc.version()),
        });
    }
    Ok(doc)
}

/// Documents that carry a version.
pub(crate) trait Versioned {
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn version(&self) -> u32 {
                self.version
            }
        }
    )*};
}

versioned!(IndexDoc, InfoDoc, LeaseDoc, UsageDoc);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn damaged_oversized_and_future_documents_are_refused() {
        let doc = IndexDoc::new("k");
        let bytes = encode(&doc).unwrap();
        let back: IndexDoc = decode(&bytes, MAX_INDEX_BYTES, "x").unwrap();
        assert_eq!(back.key, "k");
        for cut in 0..bytes.len() {
            assert!(decode::<IndexDoc>(bytes.get(..cut).unwrap(), MAX_INDEX_BYTES, "x").is_err());
        }
        assert!(matches!(decode::<IndexDoc>(&bytes, 4, "x"), Err(Error::Corrupt { .. })));
        let future = br#"{"version":2,"key":"k","entries":[]}"#;
        assert!(matches!(decode::<IndexDoc>(future, MAX_INDEX_BYTES, "x"), Err(Error::Unsupported { .. })));
    }
}
