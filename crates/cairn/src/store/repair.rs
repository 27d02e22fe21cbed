//! Repairing the store: lost or damaged infos recovered (from the index, or
//! from the facts a checkpoint carries), quarantined entries whose data
//! proves intact put back, every index rebuilt from the infos, and what is
//! still damaged moved to quarantine. No entry leaves the store without
//! being named in the report.

use std::collections::HashSet;

use serde::Serialize;

use super::entry::{EntryInfo, EntryKind};
use super::facts::EntryFacts;
use super::layout::{self, split_entry_key};
use super::records::{decode, encode, IndexDoc, InfoDoc, DOC_VERSION, MAX_INDEX_BYTES, MAX_SMALL_DOC_BYTES};
use super::store::Store;
use super::verify::EntryProblem;
use crate::backend::{BackendExt, PutMode};
use crate::error::{Error, Result};

/// What [`Store::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// Indexes rebuilt from the entries' info.
    pub indexes_rebuilt: usize,
    /// Entries indexed by the rebuild.
    pub entries: usize,
    /// Entries whose lost or damaged info was written again, and from what.
    pub recovered: Vec<EntryProblem>,
    /// Quarantined entries whose data matches their info, put back.
    pub restored: Vec<EntryProblem>,
    /// Damaged entries moved to quarantine.
    pub quarantined: Vec<EntryProblem>,
    /// Damaged shared frame objects moved to quarantine (their former
    /// backend keys): each once, however many entries named it (those are
    /// in `quarantined`).
    pub frames_quarantined: Vec<String>,
}

impl Store {
    /// Repairs what [`verify`](Self::verify) reports, in this order:
    ///
    /// 1. An entry whose info is damaged, or missing while its index names
    ///    it (and no removal holds it), gets its info back from the index,
    ///    or else from the facts its checkpoint carries
    ///    ([`save_with`](Self::save_with) records them); failing both, it is
    ///    quarantined with the reason.
    /// 2. Quarantined entries are checked again; those whose data matches
    ///    their info and passes its own checksums are put back.
    /// 3. Every key's index is rebuilt from its entries' infos (keeping use
    ///    times a readable index had; a damaged index is kept aside).
    /// 4. Entries whose data still fails verification are quarantined.
    /// 5. Damaged shared frame objects are moved to `quarantine/frames/`,
    ///    so that no save shares them again (a save writes the frame anew).
    ///
    /// # Errors
    /// Backend errors.
    pub fn repair(&self) -> Result<RepairReport> {
        let mut rep = RepairReport::default();
        let parts = self.list_parts()?;
        let mut hps: HashSet<String> = self.index_paths()?.into_iter().collect();
        hps.extend(parts.keys().map(|(hp, _)| hp.clone()));
        for ((hp, id), p) in &parts {
            if p.data {
                self.recover_info(hp, id, p.info, &mut rep)?;
            }
        }
        self.restore_quarantined(&mut rep)?;
        hps.extend(rep.restored.iter().map(|p| p.hp.clone()));
        for hp in &hps {
            let k = self.object_key(&layout::index_key(hp));
            let damaged = match self.backend.get_versioned(&k) {
                Ok(v) => decode::<IndexDoc>(&v.data, MAX_INDEX_BYTES, &k).err().map(|e| (v, e)),
                Err(_) => None,
            };
            let n = match &damaged {
                Some((v, e)) => self.rebuild_index(hp, Some((&v.data, &v.etag)), &e.to_string())?,
                None => self.rebuild_index(hp, None, "repair")?,
            };
            rep.indexes_rebuilt += 1;
            rep.entries += n;
        }
        let report = self.verify()?;
        for p in report.corrupt.iter().chain(&report.missing) {
            let hp = p.hp.clone();
            let entry = self.read_index(&hp)?.and_then(|(ix, _)| ix.entries.into_iter().find(|e| e.id == p.id));
            if let Some(entry) = entry {
                self.quarantine(&hp, &p.key, &entry, &p.detail)?;
                rep.quarantined.push(p.clone());
            }
        }
        for k in &report.damaged_frames {
            self.quarantine_frame(k)?;
            log::warn!("{}: damaged shared frame {k} moved to quarantine", self.url());
            rep.frames_quarantined.push(k.clone());
        }
        Ok(rep)
    }

    /// Step 5 of [`repair`](Self::repair) for the frame object at backend
    /// key `k` (under `frames/` or the trash): copied below the quarantine
    /// (unless a copy is there), then deleted.
    fn quarantine_frame(&self, k: &str) -> Result<()> {
        let rel = [layout::FRAMES, layout::TRASH_FRAMES]
            .iter()
            .find_map(|root| k.strip_prefix(&self.object_key(root)))
            .unwrap_or_default();
        let to = self.object_key(&format!("{}{rel}", layout::QUARANTINE_FRAMES));
        if !self.backend.exists(&to)? {
            match self.backend.copy(k, &to) {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        match self.backend.delete(k) {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Step 1 of [`repair`](Self::repair) for one entry with data.
    fn recover_info(&self, hp: &str, id: &str, listed: bool, rep: &mut RepairReport) -> Result<()> {
        let info_key = self.object_key(&layout::info_key(hp, id));
        let damage = match self.read_info(&info_key) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if !listed => None,
            // Removed since the listing.
            Ok(None) => return Ok(()),
            Err(e) if e.is_corruption() => Some(e.to_string()),
            Err(e) => return Err(e),
        };
        let k = self.object_key(&layout::index_key(hp));
        let index = match self.backend.get(&k) {
            Ok(b) => decode::<IndexDoc>(&b, MAX_INDEX_BYTES, &k).ok(),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let named = index.as_ref().and_then(|ix| ix.entries.iter().find(|e| e.id == id).map(|e| (ix.key.clone(), e)));
        // Without its info and without its index naming it, data is what
        // a save left before it committed, or a removal after: not ours.
        if damage.is_none() && (named.is_none() || self.holds_lease(hp, id)?) {
            return Ok(());
        }
        let problem =
            |key: &str, detail: String| EntryProblem { key: key.into(), id: id.into(), detail, hp: hp.into() };
        let why = damage.clone().unwrap_or_else(|| "its info was missing".into());
        if let Some((key, entry)) = named {
            self.put_info(hp, &key, entry.clone(), damage.is_some())?;
            rep.recovered.push(problem(&key, format!("{why}; rewritten from the key's index")));
            return Ok(());
        }
        let data_key = self.object_key(&layout::data_key(hp, id));
        let ck = match self.open_data(&data_key) {
            Ok(ck) => Some(ck),
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) if e.is_corruption() => None,
            Err(e) => return Err(e),
        };
        let facts = match &ck {
            Some(ck) => match EntryFacts::of(ck).filter(|f| f.id == id) {
                Some(f) => Some((f, ck.file_len(), ck.file_blake3()?.to_hex().to_string())),
                None => None,
            },
            None => None,
        };
        match facts {
            Some((facts, len, digest)) => {
                let key = facts.key.clone();
                self.put_info(hp, &key, facts.entry(len, digest), damage.is_some())?;
                rep.recovered.push(problem(&key, format!("{why}; rewritten from the facts in its checkpoint")));
            }
            None => {
                let key = index.map(|ix| ix.key).unwrap_or_default();
                let reason = format!("{why}, and neither its index nor its checkpoint says what it was");
                // No digest: nothing vouches for the data, so the next
                // repair does not put it back either.
                let bytes = match &ck {
                    Some(ck) => ck.file_len(),
                    None => self.backend.head(&data_key).map_or(0, |m| m.size),
                };
                let stub = EntryInfo {
                    id: id.to_string(),
                    objective: None,
                    iteration: None,
                    kind: EntryKind::Checkpoint,
                    created_at: 0,
                    bytes,
                    added_bytes: bytes,
                    pinned: false,
                    metadata: Default::default(),
                    digest: String::new(),
                    last_used: 0,
                };
                self.quarantine(hp, &key, &stub, &reason)?;
                rep.quarantined.push(problem(&key, reason));
            }
        }
        Ok(())
    }

    fn holds_lease(&self, hp: &str, id: &str) -> Result<bool> {
        Ok(!self.backend.list(&self.object_key(&layout::lease_prefix(hp, id)))?.is_empty())
    }

    fn put_info(&self, hp: &str, key: &str, entry: EntryInfo, replace: bool) -> Result<()> {
        let id = entry.id.clone();
        let doc = InfoDoc { version: DOC_VERSION, key: key.to_string(), entry, quarantined: None };
        let mode = if replace { PutMode::Overwrite } else { PutMode::Create };
        match self.backend.put(&self.object_key(&layout::info_key(hp, &id)), encode(&doc)?, mode) {
            Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Step 2 of [`repair`](Self::repair): puts back every quarantined entry
    /// whose data matches the info it was quarantined with and passes its
    /// own checksums, unless the store holds that id again.
    fn restore_quarantined(&self, rep: &mut RepairReport) -> Result<()> {
        let root = self.object_key(layout::QUARANTINE);
        for m in self.backend.list(&root)? {
            let Some((hp, id, "info")) = split_entry_key(&m.key, &root) else { continue };
            let Ok(note) = self.backend.get(&m.key).and_then(|b| decode::<InfoDoc>(&b, MAX_SMALL_DOC_BYTES, &m.key))
            else {
                continue;
            };
            let qdata = self.object_key(&layout::quarantine_key(&hp, id, "data"));
            let ck = match self.open_data(&qdata) {
                Ok(ck) => ck,
                Err(Error::NotFound { .. }) => continue,
                Err(e) if e.is_corruption() => continue,
                Err(e) => return Err(e),
            };
            let intact = match self.check_opened(&qdata, &ck, &note.entry) {
                Ok(()) => ck.verify().is_ok_and(|r| r.is_ok()),
                Err(e) if e.is_corruption() => false,
                Err(e) => return Err(e),
            };
            let info_key = self.object_key(&layout::info_key(&hp, id));
            if !intact || note.entry.id != id || self.backend.exists(&info_key)? {
                continue;
            }
            // No info names the entry, so nothing reads its data key: the
            // verified copy may replace whatever a crash left there.
            drop(ck);
            self.backend.copy(&qdata, &self.object_key(&layout::data_key(&hp, id)))?;
            let reason = note.quarantined.as_ref().map_or_else(String::new, |q| q.reason.clone());
            self.put_info(&hp, &note.key, note.entry.clone(), false)?;
            self.backend.delete(&m.key)?;
            self.backend.delete(&qdata)?;
            log::warn!("{}: entry {id} of key {:?} put back from quarantine: its data is intact", self.url(), note.key);
            rep.restored.push(EntryProblem {
                key: note.key,
                id: id.to_string(),
                detail: format!("its data matches its info; it had been quarantined for: {reason}"),
                hp,
            });
        }
        Ok(())
    }
}
