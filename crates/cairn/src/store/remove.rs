//! Taking entries out: retention after a save, explicit removal, and
//! quarantine of damaged entries. The order keeps every crash state safe:
//! the info object goes first (the entry stops existing, so no rebuild can
//! bring it back), then the index entry, then the data, unless a reader
//! holds a lease on it.

use std::collections::HashSet;

use bytes::Bytes;

use super::docs::{encode, InfoDoc, Quarantined, DOC_VERSION};
use super::handle::Store;
use super::layout::{self, now_ns};
use super::retention::victims;
use super::select::EntryInfo;
use crate::backend::PutMode;
use crate::error::{Error, Result};

impl Store {
    /// Applies the store's retention policy to one key's entries.
    pub(crate) fn apply_retention(&self, hp: &str, entries: &[EntryInfo]) -> Result<()> {
        let ids = victims(entries, &self.opts.retention, self.opts.direction, now_ns());
        if !ids.is_empty() {
            self.remove_entries(hp, &ids, "retention")?;
        }
        Ok(())
    }

    /// Removes entries `ids` of the key at `hp`, skipping leased ones;
    /// returns those removed.
    pub(crate) fn remove_entries(&self, hp: &str, ids: &[String], why: &str) -> Result<Vec<EntryInfo>> {
        let leased = self.leased_among(hp, ids)?;
        let ids: Vec<&String> = ids.iter().filter(|id| !leased.contains(id.as_str())).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        for id in &ids {
            self.backend.delete(&self.k(&layout::info_key(hp, id)))?;
        }
        let mut removed = Vec::new();
        self.update_index(hp, "", |ix| {
            removed = ix.entries.iter().filter(|e| ids.contains(&&e.id)).cloned().collect();
            let before = ix.entries.len();
            ix.entries.retain(|e| !ids.contains(&&e.id));
            ix.entries.len() != before
        })?;
        // A reader may have taken a lease since: its data stays, and a
        // later collection removes it as an orphan once the lease is gone.
        let leased_now = self.leased_among(hp, &ids.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        for id in ids.iter().filter(|id| !leased_now.contains(id.as_str())) {
            self.backend.delete(&self.k(&layout::data_key(hp, id)))?;
            self.cache.forget(hp, id);
        }
        for e in &removed {
            log::debug!("{}: entry {} of {hp} removed ({why})", self.url(), e.id);
        }
        let freed: u64 = removed.iter().map(|e| e.bytes).sum();
        let mut u = self.usage_state();
        u.net = u.net.saturating_sub(i64::try_from(freed).unwrap_or(i64::MAX));
        Ok(removed)
    }

    /// The ids among `ids` with a live lease.
    fn leased_among(&self, hp: &str, ids: &[String]) -> Result<HashSet<String>> {
        let now = now_ns();
        let mut out = HashSet::new();
        for id in ids {
            if self.live_leases(hp, id, now)? > 0 {
                out.insert(id.clone());
            }
        }
        Ok(out)
    }

    /// Moves a damaged entry aside: its data and info (with the reason)
    /// are copied under `quarantine/`, then it is removed from the key.
    pub(crate) fn quarantine(&self, hp: &str, key_name: &str, entry: &EntryInfo, reason: &str) -> Result<()> {
        let data = self.k(&layout::data_key(hp, &entry.id));
        match self.backend.copy(&data, &self.k(&layout::quarantine_key(hp, &entry.id, "data"))) {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let note = InfoDoc {
            version: DOC_VERSION,
            key: key_name.to_string(),
            entry: entry.clone(),
            quarantined: Some(Quarantined { at: now_ns(), reason: reason.to_string() }),
        };
        let info: Bytes = encode(&note)?;
        self.backend.put(&self.k(&layout::quarantine_key(hp, &entry.id, "info")), info, PutMode::Overwrite)?;
        log::warn!(
            "{}: entry {} of key {key_name:?} is damaged and was moved to {}: {reason}",
            self.url(),
            entry.id,
            self.k(&layout::quarantine_key(hp, &entry.id, "data"))
        );
        // Removal ignores leases here: nobody should read damaged data.
        self.backend.delete(&self.k(&layout::info_key(hp, &entry.id)))?;
        self.update_index(hp, key_name, |ix| {
            let before = ix.entries.len();
            ix.entries.retain(|e| e.id != entry.id);
            ix.entries.len() != before
        })?;
        self.backend.delete(&data)?;
        self.cache.forget(hp, &entry.id);
        Ok(())
    }
}
