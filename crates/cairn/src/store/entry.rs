//! What an entry of the store says about itself: the public [`EntryInfo`].
//! How it is stored in indexes and infos is `records.rs`' business
//! (`EntryRecord`), so that this type can change without changing the
//! stored documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether an entry is an intermediate checkpoint or a final result. Its
/// serde names (`checkpoint`, `final`) are those stored in indexes and
/// infos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Saved along the way; may be superseded.
    #[default]
    Checkpoint,
    /// The outcome of a finished run.
    Final,
}

/// One entry of a key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// Unique in the store; ids sort in the order entries were made.
    pub id: String,
    /// The score the entry reached, if it has one. Never NaN.
    pub objective: Option<f64>,
    /// The step or iteration it was saved at, if given.
    pub iteration: Option<u64>,
    /// Checkpoint or final result.
    pub kind: EntryKind,
    /// When it was saved, in nanoseconds since the Unix epoch.
    pub created_at: u64,
    /// The checkpoint's size in bytes (its logical size: what a read or
    /// `cairn store get` gives, however it is stored).
    pub bytes: u64,
    /// Bytes its save added to the store: its own object and the shared
    /// frames it created (docs/STORE.md, "Shared frames"). Equal to `bytes` for an
    /// entry that shares nothing, and for entries saved before this field.
    pub added_bytes: u64,
    /// Pinned entries are never removed by retention or eviction.
    pub pinned: bool,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// BLAKE3 of the stored checkpoint, in hex: every read is checked
    /// against it.
    pub digest: String,
    /// When the entry was last read or saved, in nanoseconds since the
    /// Unix epoch (updated at most once per the store's touch interval).
    pub last_used: u64,
}

impl EntryInfo {
    /// An entry with this id, saved at `created_at` (nanoseconds since the
    /// Unix epoch), its other fields empty: for lists built outside a store
    /// (to try [`select`](super::select) or [`rank`](super::rank) on).
    /// The fields are public: set the others after.
    ///
    /// ```
    /// use cairn::store::{select, Direction, EntryInfo, Select};
    /// let mut a = EntryInfo::new("a", 1);
    /// a.objective = Some(0.5);
    /// let mut b = EntryInfo::new("b", 2);
    /// b.objective = Some(0.25);
    /// let entries = [a, b];
    /// let best = select(&entries, &Select::Best, Direction::Minimize).unwrap();
    /// assert_eq!(best.id, "b");
    /// ```
    pub fn new(id: impl Into<String>, created_at: u64) -> Self {
        EntryInfo {
            id: id.into(),
            objective: None,
            iteration: None,
            kind: EntryKind::Checkpoint,
            created_at,
            bytes: 0,
            added_bytes: 0,
            pinned: false,
            metadata: BTreeMap::new(),
            digest: String::new(),
            last_used: created_at,
        }
    }
}
