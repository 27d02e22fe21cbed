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
    /// The stored checkpoint's size in bytes.
    pub bytes: u64,
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
