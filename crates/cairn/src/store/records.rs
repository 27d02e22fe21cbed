//! The store's small JSON objects: a key's index, an entry's info, a
//! quarantine note, a lease, the usage summary. Each carries its own
//! checksum (xxh3-64, as its first field) and is decoded with a size limit,
//! the checksum and a version check; a damaged one is an error naming the
//! object. Documents written before checksums (version 1 without one) are
//! read as they are.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::entry::{EntryInfo, EntryKind};
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
    #[serde(with = "entry_records")]
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
    #[serde(with = "entry_record")]
    pub entry: EntryInfo,
    /// Why the entry was quarantined, in quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<Quarantined>,
}

/// An entry as indexes and infos store it: the on-disk schema of
/// [`EntryInfo`], kept apart so that the public type can change without
/// changing what is stored.
#[derive(Serialize, Deserialize)]
struct EntryRecord {
    id: String,
    objective: Option<f64>,
    iteration: Option<u64>,
    kind: EntryKind,
    created_at: u64,
    bytes: u64,
    /// Written only where it differs from `bytes` (an entry sharing frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added_bytes: Option<u64>,
    pinned: bool,
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    last_used: u64,
}

impl From<&EntryInfo> for EntryRecord {
    fn from(e: &EntryInfo) -> Self {
        EntryRecord {
            id: e.id.clone(),
            objective: e.objective,
            iteration: e.iteration,
            kind: e.kind,
            created_at: e.created_at,
            bytes: e.bytes,
            added_bytes: (e.added_bytes != e.bytes).then_some(e.added_bytes),
            pinned: e.pinned,
            metadata: e.metadata.clone(),
            digest: e.digest.clone(),
            last_used: e.last_used,
        }
    }
}

impl From<EntryRecord> for EntryInfo {
    fn from(r: EntryRecord) -> Self {
        EntryInfo {
            id: r.id,
            objective: r.objective,
            iteration: r.iteration,
            kind: r.kind,
            created_at: r.created_at,
            bytes: r.bytes,
            added_bytes: r.added_bytes.unwrap_or(r.bytes),
            pinned: r.pinned,
            metadata: r.metadata,
            digest: r.digest,
            last_used: r.last_used,
        }
    }
}

/// `#[serde(with)]` for one entry stored as an [`EntryRecord`].
mod entry_record {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{EntryInfo, EntryRecord};

    pub fn serialize<S: Serializer>(e: &EntryInfo, s: S) -> Result<S::Ok, S::Error> {
        EntryRecord::from(e).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EntryInfo, D::Error> {
        EntryRecord::deserialize(d).map(EntryInfo::from)
    }
}

/// `#[serde(with)]` for a list of entries stored as [`EntryRecord`]s.
mod entry_records {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{EntryInfo, EntryRecord};

    pub fn serialize<S: Serializer>(v: &[EntryInfo], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(EntryRecord::from))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EntryInfo>, D::Error> {
        Ok(Vec::<EntryRecord>::deserialize(d)?.into_iter().map(EntryInfo::from).collect())
    }
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
    /// When the lease was taken (ns), kept by renewals; 0 in leases written
    /// before the field, which a collection of shared frames takes for as
    /// old as can be.
    #[serde(default)]
    pub taken_at: u64,
}

/// What the last collection counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UsageDoc {
    pub version: u32,
    pub entries: u64,
    pub bytes: u64,
    pub at: u64,
}

/// How a document's checksum starts it: `{"checksum":"xxh3-64:<16 hex>",`
/// then the document's own fields. The checksum covers the document as it
/// would be without it: `{` and every byte after the prefix.
const CHECKSUM_PREFIX: &[u8] = b"{\"checksum\":\"xxh3-64:";
const CHECKSUM_HEX: usize = 16;

/// Encodes a document as JSON that carries its own checksum, so that an
/// edit that keeps it valid JSON (a digest changed, an id swapped) is
/// found as damage.
pub(crate) fn encode<T: Serialize>(doc: &T) -> Result<bytes::Bytes> {
    let body = serde_json::to_vec(doc).map_err(|e| Error::Internal(format!("encoding a store document: {e}")))?;
    let Some(fields) = body.strip_prefix(b"{") else {
        return Err(Error::Internal("a store document is not a JSON object".into()));
    };
    let sum = xxhash_rust::xxh3::xxh3_64(&body);
    let mut out = Vec::with_capacity(body.len() + CHECKSUM_PREFIX.len() + CHECKSUM_HEX + 2);
    out.extend_from_slice(CHECKSUM_PREFIX);
    out.extend_from_slice(format!("{sum:016x}\"").as_bytes());
    if fields != b"}" {
        out.push(b',');
    }
    out.extend_from_slice(fields);
    Ok(bytes::Bytes::from(out))
}

/// The document a checksummed encoding holds, checked; `None` for a
/// document written before checksums (accepted as it is).
fn checked_body(bytes: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let Some(rest) = bytes.strip_prefix(CHECKSUM_PREFIX) else { return Ok(None) };
    let (Some(hex), Some(fields)) = (rest.get(..CHECKSUM_HEX), rest.get(CHECKSUM_HEX..)) else {
        return Err("truncated checksum".into());
    };
    let claimed = std::str::from_utf8(hex).ok().and_then(|h| u64::from_str_radix(h, 16).ok());
    let fields = match fields.strip_prefix(b"\",") {
        Some(f) => f,
        None => fields.strip_prefix(b"\"").ok_or("malformed checksum")?,
    };
    let mut body = Vec::with_capacity(fields.len() + 1);
    body.push(b'{');
    body.extend_from_slice(fields);
    let actual = xxhash_rust::xxh3::xxh3_64(&body);
    match claimed {
        Some(c) if c == actual => Ok(Some(body)),
        Some(c) => Err(format!("checksum mismatch: the document says {c:016x}, its bytes hash to {actual:016x}")),
        None => Err("malformed checksum".into()),
    }
}

/// Decodes `bytes` read from `what` (a locator), refusing more than
/// `limit` bytes, a checksum that does not match, and unknown versions.
pub(crate) fn decode<T: DeserializeOwned + Versioned>(bytes: &[u8], limit: usize, what: &str) -> Result<T> {
    let corrupt =
        |detail: String| Error::Corrupt { file: what.to_string(), what: "store document".into(), offset: 0, detail };
    if bytes.len() > limit {
        return Err(corrupt(format!("{} bytes, more than the limit of {limit}", bytes.len())));
    }
    let body = checked_body(bytes).map_err(corrupt)?;
    let doc: T = serde_json::from_slice(body.as_deref().unwrap_or(bytes)).map_err(|e| corrupt(e.to_string()))?;
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
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_edit_that_keeps_the_json_valid_is_caught() {
        let mut doc = IndexDoc::new("k");
        doc.entries.push(super::super::entry::EntryInfo {
            id: "0001-a".into(),
            objective: Some(0.25),
            iteration: Some(7),
            kind: super::super::entry::EntryKind::Checkpoint,
            created_at: 5,
            bytes: 1313,
            added_bytes: 1313,
            pinned: false,
            metadata: [("host".to_string(), "a1".to_string())].into(),
            digest: "ab".repeat(32),
            last_used: 5,
        });
        let bytes = encode(&doc).unwrap();
        assert!(bytes.starts_with(br#"{"checksum":"xxh3-64:"#), "{}", String::from_utf8_lossy(&bytes));
        let back: IndexDoc = decode(&bytes, MAX_INDEX_BYTES, "x").unwrap();
        assert_eq!(back.entries, doc.entries);
        // A digit of the digest, the objective or the byte count changed:
        // still valid JSON, refused all the same.
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        for (from, to) in [("abab", "abac"), ("0.25", "0.35"), ("1313", "1314"), ("\"a1\"", "\"b1\"")] {
            let edited = text.replacen(from, to, 1);
            assert_ne!(edited, text);
            let err = decode::<IndexDoc>(edited.as_bytes(), MAX_INDEX_BYTES, "x").unwrap_err();
            assert!(err.is_corruption() && err.to_string().contains("checksum"), "{from}: {err}");
        }
        // Every single flipped byte is refused or reads back the same.
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x01;
            if let Ok(d) = decode::<IndexDoc>(&bad, MAX_INDEX_BYTES, "x") {
                assert_eq!((d.key, d.entries), ("k".to_string(), doc.entries.clone()), "flip at {i} read back changed");
            }
        }
        // Documents from before checksums read as they are.
        let legacy = serde_json::to_vec(&doc).unwrap();
        let back: IndexDoc = decode(&legacy, MAX_INDEX_BYTES, "x").unwrap();
        assert_eq!(back.entries, doc.entries);
        // An empty object still has a valid encoding.
        let empty = encode(&serde_json::json!({})).unwrap();
        assert_eq!(checked_body(&empty).unwrap().unwrap(), b"{}");
    }

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
