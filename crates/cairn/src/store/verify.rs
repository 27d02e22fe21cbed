//! Checking the whole store, and repairing what can be repaired: every
//! entry read and verified, indexes compared with the entries' own info,
//! quarantined entries reported.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::docs::{decode, InfoDoc, MAX_SMALL_DOC_BYTES};
use super::handle::Store;
use super::layout::{self, split_entry_key};
use crate::backend::BackendExt;
use crate::error::Result;
use crate::format::Checkpoint;

/// One finding about one entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryProblem {
    /// The entry's key (as given by the user), empty if unknown.
    pub key: String,
    /// The entry's id.
    pub id: String,
    /// What is wrong.
    pub detail: String,
    /// Where the key's objects are.
    #[serde(skip)]
    pub(crate) hp: String,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreReport {
    /// Keys with entries.
    pub keys: usize,
    /// Entries checked.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Entries whose data is damaged: fails its digest, its length or its
    /// own checksums.
    pub corrupt: Vec<EntryProblem>,
    /// Indexed entries whose data is missing.
    pub missing: Vec<EntryProblem>,
    /// Indexes that cannot be read (hash paths).
    pub damaged_indexes: Vec<String>,
    /// Committed entries not yet in their index (a crash between the two;
    /// the next collection or `repair` indexes them). Not damage.
    pub unindexed: Vec<EntryProblem>,
    /// Data of saves that never committed (removed by collections). Not
    /// damage.
    pub orphans: u64,
    /// Entries moved aside earlier, with the reason.
    pub quarantined: Vec<EntryProblem>,
}

impl StoreReport {
    /// Whether nothing in the store is damaged or missing.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.damaged_indexes.is_empty()
    }
}

/// What [`Store::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepairReport {
    /// Indexes rebuilt from the entries' info.
    pub indexes_rebuilt: usize,
    /// Entries indexed by the rebuild.
    pub entries: usize,
    /// Damaged entries moved to quarantine.
    pub quarantined: Vec<EntryProblem>,
}

impl Store {
    /// Reads and verifies every entry (length, digest, and the checkpoint's
    /// own checksums) and compares indexes with entries. Changes nothing.
    ///
    /// # Errors
    /// Backend errors other than damage, which is reported.
    pub fn verify(&self) -> Result<StoreReport> {
        let mut r = StoreReport::default();
        let root = self.k(layout::ENTRIES);
        let mut parts: HashMap<(String, String), (bool, bool)> = HashMap::new();
        for m in self.backend.list(&root)? {
            let Some((hp, id, part)) = split_entry_key(&m.key, &root) else { continue };
            let p = parts.entry((hp, id.to_string())).or_default();
            match part {
                "data" => p.0 = true,
                "info" => p.1 = true,
                _ => {}
            }
        }
        let mut indexed = HashSet::new();
        for hp in self.index_paths()? {
            let k = self.k(&layout::index_key(&hp));
            let ix = match self.backend.get(&k) {
                Ok(b) => match decode::<super::docs::IndexDoc>(&b, super::docs::MAX_INDEX_BYTES, &k) {
                    Ok(ix) => ix,
                    Err(_) => {
                        r.damaged_indexes.push(hp);
                        continue;
                    }
                },
                Err(crate::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if !ix.entries.is_empty() {
                r.keys += 1;
            }
            for e in &ix.entries {
                indexed.insert((hp.clone(), e.id.clone()));
                r.entries += 1;
                r.bytes += e.bytes;
                let problem =
                    |detail: String| EntryProblem { key: ix.key.clone(), id: e.id.clone(), detail, hp: hp.clone() };
                match self.read_verified(&hp, e) {
                    Ok(bytes) => {
                        let checked = Checkpoint::from_bytes(Vec::from(bytes)).and_then(|c| c.verify());
                        match checked {
                            Ok(rep) if rep.problems.is_empty() => {}
                            Ok(rep) => r.corrupt.push(problem(format!(
                                "{} problems, first: {:?}",
                                rep.problems.len(),
                                rep.problems.first()
                            ))),
                            Err(err) => r.corrupt.push(problem(err.to_string())),
                        }
                    }
                    Err(err) if err.is_corruption() => r.corrupt.push(problem(err.to_string())),
                    Err(crate::Error::NotFound { .. }) => {
                        // Removed since the index was read: not damage.
                        let still = self.backend.exists(&self.k(&layout::info_key(&hp, &e.id)))?;
                        if still {
                            r.missing.push(problem("its data is missing".into()));
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        for ((hp, id), (data, info)) in &parts {
            if indexed.contains(&(hp.clone(), id.clone())) {
                continue;
            }
            if *info {
                let key = self
                    .read_info(&self.k(&layout::info_key(hp, id)))
                    .ok()
                    .flatten()
                    .map(|d| d.key)
                    .unwrap_or_default();
                r.unindexed.push(EntryProblem {
                    key,
                    id: id.clone(),
                    detail: "committed but not in its index".into(),
                    hp: hp.clone(),
                });
            } else if *data {
                r.orphans += 1;
            }
        }
        r.quarantined = self.quarantined()?;
        r.corrupt.sort_by(|a, b| a.id.cmp(&b.id));
        r.unindexed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(r)
    }

    /// The entries in quarantine, with the reason each was moved there.
    ///
    /// # Errors
    /// Backend errors.
    pub fn quarantined(&self) -> Result<Vec<EntryProblem>> {
        let root = self.k(layout::QUARANTINE);
        let mut out = Vec::new();
        for m in self.backend.list(&root)? {
            let Some((hp, id, "info")) = split_entry_key(&m.key, &root) else { continue };
            let doc = match self.backend.get(&m.key) {
                Ok(b) => decode::<InfoDoc>(&b, MAX_SMALL_DOC_BYTES, &m.key).ok(),
                Err(_) => None,
            };
            let (key, detail) = doc.map_or((String::new(), "unreadable quarantine note".into()), |d| {
                (d.key, d.quarantined.map_or_else(String::new, |q| q.reason))
            });
            out.push(EntryProblem { key, id: id.to_string(), detail, hp });
        }
        Ok(out)
    }

    /// Rebuilds every key's index from its entries' info objects (keeping
    /// use times a readable index had), then quarantines every entry that
    /// fails verification, so that a repaired store verifies clean.
    ///
    /// # Errors
    /// Backend errors.
    pub fn repair(&self) -> Result<RepairReport> {
        let mut rep = RepairReport::default();
        let root = self.k(layout::ENTRIES);
        let mut hps: HashSet<String> = self.index_paths()?.into_iter().collect();
        for m in self.backend.list(&root)? {
            if let Some((hp, _, _)) = split_entry_key(&m.key, &root) {
                hps.insert(hp);
            }
        }
        for hp in &hps {
            let k = self.k(&layout::index_key(hp));
            let damaged = match self.backend.get_versioned(&k) {
                Ok(v) => {
                    decode::<super::docs::IndexDoc>(&v.data, super::docs::MAX_INDEX_BYTES, &k).err().map(|e| (v, e))
                }
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
        Ok(rep)
    }
}
