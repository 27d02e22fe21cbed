//! Taking entries out: retention after a save, explicit removal, and
//! quarantine of damaged entries. The order keeps every crash state safe:
//! the info object goes first (the entry stops existing, so no rebuild can
//! bring it back), then the index entry, then the data, unless a reader
//! holds a lease on it.

use std::collections::HashSet;

use bytes::Bytes;

use super::entry::EntryInfo;
use super::layout::{self, now_ns};
use super::records::{encode, InfoDoc, Quarantined, DOC_VERSION};
use super::retention::victims;
use super::store::Store;
use crate::backend::{Durability, PutMode};
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
        // The remover's own leases mark the data as garbage should it die
        // before deleting it: a stale lease on data without info is what
        // a collection removes at once (see `sweep_leases`).
        let mut markers = Vec::with_capacity(ids.len());
        for id in &ids {
            markers.push((id.to_string(), self.take_lease(hp, id, Durability::Durable)?));
        }
        for id in &ids {
            self.backend.delete(&self.object_key(&layout::info_key(hp, id)))?;
        }
        let mut removed = Vec::new();
        let mut pinned_since = Vec::new();
        // Durable: infos are gone by now, and a removal the index forgot
        // would look like lost infos.
        let index = self.update_index_with(hp, "", Durability::Durable, |ix| {
            // An entry pinned since the caller chose it stays.
            let chosen = |e: &EntryInfo| ids.contains(&&e.id);
            pinned_since = ix.entries.iter().filter(|e| chosen(e) && e.pinned).cloned().collect();
            removed = ix.entries.iter().filter(|e| chosen(e) && !e.pinned).cloned().collect();
            let before = ix.entries.len();
            ix.entries.retain(|e| !chosen(e) || e.pinned);
            ix.entries.len() != before
        })?;
        for e in &pinned_since {
            let doc = InfoDoc { version: DOC_VERSION, key: index.key.clone(), entry: e.clone(), quarantined: None };
            self.backend.put(&self.object_key(&layout::info_key(hp, &e.id)), encode(&doc)?, PutMode::Overwrite)?;
        }
        let ids: Vec<&String> = ids.into_iter().filter(|id| !pinned_since.iter().any(|e| &&e.id == id)).collect();
        // A reader may have taken a lease since: its data stays, and a
        // later collection removes it as an orphan once the lease is gone.
        let now = now_ns();
        for id in &ids {
            let mine = markers.iter().find(|(of, _)| of == *id).map(|(_, m)| m.object());
            if self.lease_states_except(hp, id, now, mine)?.0 == 0 {
                self.backend.delete(&self.object_key(&layout::data_key(hp, id)))?;
                self.cache.forget(hp, id);
            }
        }
        for (_, m) in markers {
            m.release()?;
        }
        for e in &removed {
            log::debug!("{}: entry {} of {hp} removed ({why})", self.url(), e.id);
        }
        // What the removals freed, for the usage estimate: a plain entry's
        // object. An entry sharing frames frees what no other entry names,
        // unknown here; nothing is taken off for it, so the estimate errs
        // high and the next eviction pass counts exactly (holdings.rs).
        let freed: u64 = removed.iter().filter(|e| e.added_bytes == e.bytes).map(|e| e.bytes).sum();
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
        let data = self.object_key(&layout::data_key(hp, &entry.id));
        match self.backend.copy(&data, &self.object_key(&layout::quarantine_key(hp, &entry.id, "data"))) {
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
        self.backend.put(&self.object_key(&layout::quarantine_key(hp, &entry.id, "info")), info, PutMode::Overwrite)?;
        log::warn!(
            "{}: entry {} of key {key_name:?} is damaged and was moved to {}: {reason}",
            self.url(),
            entry.id,
            self.object_key(&layout::quarantine_key(hp, &entry.id, "data"))
        );
        // Removal ignores leases here: nobody should read damaged data.
        self.backend.delete(&self.object_key(&layout::info_key(hp, &entry.id)))?;
        self.update_index_with(hp, key_name, Durability::Durable, |ix| {
            let before = ix.entries.len();
            ix.entries.retain(|e| e.id != entry.id);
            ix.entries.len() != before
        })?;
        self.backend.delete(&data)?;
        self.cache.forget(hp, &entry.id);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::{BackendExt, MemoryBackend};
    use crate::store::{Key, SaveInfo, StoreOptions};

    fn ckpt() -> bytes::Bytes {
        let mut w = crate::CheckpointWriter::in_memory(crate::WriterOptions::default()).unwrap();
        w.add_bytes("x", b"abc").unwrap();
        bytes::Bytes::from(w.finish().unwrap())
    }

    #[test]
    fn an_entry_pinned_after_it_was_chosen_for_removal_stays_whole() {
        let b = Arc::new(MemoryBackend::new());
        let store = Store::open(b.clone(), "", StoreOptions::default()).unwrap();
        let key = Key::new("k");
        let a = store.save_bytes(&key, ckpt(), SaveInfo::checkpoint()).unwrap();
        let c = store.save_bytes(&key, ckpt(), SaveInfo::checkpoint()).unwrap();
        // Retention chose both; then `a` was pinned, before the removal ran.
        store.pin(&key, &a.id, true).unwrap();
        let hp = key.hash_path();
        let removed = store.remove_entries(&hp, &[a.id.clone(), c.id.clone()], "test").unwrap();
        assert_eq!(removed.iter().map(|e| &e.id).collect::<Vec<_>>(), [&c.id]);
        assert!(b.exists(&layout::info_key(&hp, &a.id)).unwrap(), "the pinned entry's info was not put back");
        assert!(b.exists(&layout::data_key(&hp, &a.id)).unwrap(), "the pinned entry's data went");
        assert!(!b.exists(&layout::data_key(&hp, &c.id)).unwrap());
        let report = store.verify().unwrap();
        assert!(report.is_clean() && report.unindexed.is_empty(), "{report:?}");
    }
}
