//! An entry's facts recorded inside its own checkpoint (by
//! [`Store::save_with`](super::Store::save_with), which writes the
//! checkpoint), so that an entry whose info and index are both lost can be
//! recovered from its data alone. The digest and length are not among them:
//! they are those of the data itself, measured when it is recovered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::entry::{EntryInfo, EntryKind};
use super::save::{SaveInfo, ENTRY_FACTS_KEY};
use crate::format::Checkpoint;

/// What an entry's info says of it, less what only the stored bytes give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EntryFacts {
    pub key: String,
    pub id: String,
    pub objective: Option<f64>,
    pub iteration: Option<u64>,
    pub kind: EntryKind,
    pub created_at: u64,
    pub pinned: bool,
    pub metadata: BTreeMap<String, String>,
}

impl EntryFacts {
    pub fn new(key: &str, id: &str, created_at: u64, info: &SaveInfo) -> Self {
        EntryFacts {
            key: key.to_string(),
            id: id.to_string(),
            objective: info.objective,
            iteration: info.iteration,
            kind: info.kind,
            created_at,
            pinned: info.pinned,
            metadata: info.metadata.clone(),
        }
    }

    /// The facts a checkpoint carries, if it was saved with them.
    pub fn of(ckpt: &Checkpoint) -> Option<Self> {
        serde_json::from_value(ckpt.metadata().get(ENTRY_FACTS_KEY)?.clone()).ok()
    }

    /// The entry's info, with the length and digest of its stored bytes.
    pub fn entry(self, bytes: u64, digest: String) -> EntryInfo {
        EntryInfo {
            id: self.id,
            objective: self.objective,
            iteration: self.iteration,
            kind: self.kind,
            created_at: self.created_at,
            bytes,
            added_bytes: bytes,
            pinned: self.pinned,
            metadata: self.metadata,
            digest,
            last_used: self.created_at,
        }
    }
}
