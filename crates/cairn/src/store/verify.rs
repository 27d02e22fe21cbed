//! Checking the whole store: every index, every indexed entry's info and
//! data, every committed entry an index does not name yet, and the
//! quarantine. Whatever would make a read fail is reported here.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::entry::EntryInfo;
use super::layout::{self, split_entry_key};
use super::records::{decode, IndexDoc, InfoDoc, MAX_INDEX_BYTES, MAX_SMALL_DOC_BYTES};
use super::store::Store;
use super::verify_frames::FrameCheck;
use crate::backend::BackendExt;
use crate::error::{Error, Result};

/// One finding about one entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Committed entries whose data is missing.
    pub missing: Vec<EntryProblem>,
    /// Entries whose info (the entry's own record, from which indexes are
    /// rebuilt) is damaged, missing while its index names it and no removal
    /// holds it, or disagrees with the index.
    pub damaged_infos: Vec<EntryProblem>,
    /// Indexes that cannot be read (hash paths).
    pub damaged_indexes: Vec<String>,
    /// Keys with committed entries but no index (hash paths): a save makes
    /// a key's index before its first entry, so this is damage (a lookup
    /// rebuilds it; so does `repair`).
    pub missing_indexes: Vec<String>,
    /// Indexes (hash paths) damaged or missing where index writes are
    /// volatile (local disk: no fsync), which a crash may do: an index is
    /// derived from its entries' infos and the next read rebuilds it, so
    /// this is named but is not damage. Elsewhere such an index is in
    /// `damaged_indexes` or `missing_indexes`.
    pub stale_indexes: Vec<String>,
    /// Committed entries not yet in their index (a crash between the two;
    /// the next collection or `repair` indexes them). Not damage. Where
    /// index writes are volatile (local disk) indexes lag their newest
    /// entries by design, and those are counted as entries instead.
    pub unindexed: Vec<EntryProblem>,
    /// Data of saves that never committed (removed by collections). Not
    /// damage.
    pub orphans: u64,
    /// Entries moved aside earlier, with the reason.
    pub quarantined: Vec<EntryProblem>,
    /// Shared frame objects (docs/STORE.md, "Shared frames") whose bytes do not hash
    /// to their name, with the trashed ones: every entry that names one is
    /// also in `corrupt`. Each frame object is read once.
    pub damaged_frames: Vec<String>,
}

impl StoreReport {
    /// Whether nothing in the store is damaged or missing.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.damaged_infos.is_empty()
            && self.damaged_indexes.is_empty()
            && self.missing_indexes.is_empty()
            && self.damaged_frames.is_empty()
    }
}

/// What the listing of `entries/` found for one entry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Parts {
    pub data: bool,
    pub info: bool,
}

/// The facts an entry's info and its index must agree on (the index alone
/// changes use times and, for a moment, pins).
fn same_facts(a: &EntryInfo, b: &EntryInfo) -> bool {
    (&a.id, a.objective.map(f64::to_bits), a.iteration, a.kind, a.created_at, a.bytes, &a.metadata, &a.digest)
        == (&b.id, b.objective.map(f64::to_bits), b.iteration, b.kind, b.created_at, b.bytes, &b.metadata, &b.digest)
}

impl Store {
    /// Every entry object under `entries/`, by `(hash path, id)`.
    pub(crate) fn list_parts(&self) -> Result<HashMap<(String, String), Parts>> {
        let root = self.object_key(layout::ENTRIES);
        let mut parts: HashMap<(String, String), Parts> = HashMap::new();
        for m in self.backend.list(&root)? {
            let Some((hp, id, part)) = split_entry_key(&m.key, &root) else { continue };
            let p = parts.entry((hp, id.to_string())).or_default();
            match part {
                "data" => p.data = true,
                "info" => p.info = true,
                _ => {}
            }
        }
        Ok(parts)
    }

    /// Whether a removal holds entry `id` (it leases what it removes), or
    /// the entry is gone from its index since it was read.
    fn being_removed(&self, hp: &str, id: &str) -> Result<bool> {
        if !self.backend.list(&self.object_key(&layout::lease_prefix(hp, id)))?.is_empty() {
            return Ok(true);
        }
        let k = self.object_key(&layout::index_key(hp));
        let still = match self.backend.get(&k) {
            Ok(b) => decode::<IndexDoc>(&b, MAX_INDEX_BYTES, &k).is_ok_and(|ix| ix.entries.iter().any(|e| e.id == id)),
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(!still)
    }

    /// Reads and verifies every entry (its info, then its data: length,
    /// digest, and the checkpoint's own checksums), and compares indexes
    /// with the entries' infos. Changes nothing.
    ///
    /// # Errors
    /// Backend errors other than damage, which is reported.
    pub fn verify(&self) -> Result<StoreReport> {
        let mut r = StoreReport::default();
        let volatile = self.backend.volatile_is_weaker();
        // Every shared frame read once, before the entries that name them.
        let frames = self.check_frames()?;
        let parts = self.list_parts()?;
        let mut indexed = HashSet::new();
        let mut with_index = HashSet::new();
        // Keys counted from their index, and keys with entries it lags.
        let (mut keyed, mut lagging_keys) = (HashSet::new(), HashSet::new());
        for hp in self.index_paths()? {
            with_index.insert(hp.clone());
            let k = self.object_key(&layout::index_key(&hp));
            let ix = match self.backend.get(&k) {
                Ok(b) => match decode::<IndexDoc>(&b, MAX_INDEX_BYTES, &k) {
                    Ok(ix) => ix,
                    Err(_) => {
                        // Its entries are checked below, as unindexed ones.
                        if volatile {
                            r.stale_indexes.push(hp);
                        } else {
                            r.damaged_indexes.push(hp);
                        }
                        continue;
                    }
                },
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if !ix.entries.is_empty() {
                r.keys += 1;
                keyed.insert(hp.clone());
            }
            for e in &ix.entries {
                indexed.insert((hp.clone(), e.id.clone()));
                let problem =
                    |detail: String| EntryProblem { key: ix.key.clone(), id: e.id.clone(), detail, hp: hp.clone() };
                // Whether the info is gone to damage: its data must be
                // there all the same.
                let mut info_lost = false;
                let facts = match self.read_info(&self.object_key(&layout::info_key(&hp, &e.id))) {
                    Ok(Some(doc)) => {
                        if doc.key != ix.key || !same_facts(&doc.entry, e) {
                            r.damaged_infos.push(problem(format!(
                                "the entry's info and its index disagree: info {:?} of key {:?}, index {:?}",
                                doc.entry, doc.key, e
                            )));
                        }
                        doc.entry
                    }
                    Ok(None) if self.being_removed(&hp, &e.id)? => continue,
                    Ok(None) => {
                        r.damaged_infos.push(problem("its info is missing (its index names it)".into()));
                        info_lost = true;
                        e.clone()
                    }
                    Err(err) if err.is_corruption() => {
                        r.damaged_infos.push(problem(format!("its info is damaged: {err}")));
                        info_lost = true;
                        e.clone()
                    }
                    Err(err) => return Err(err),
                };
                r.entries += 1;
                r.bytes += facts.bytes;
                if let Some(detail) = self.check_entry_data(&hp, &facts, info_lost, &frames)? {
                    match detail {
                        DataProblem::Missing => r.missing.push(problem("its data is missing".into())),
                        DataProblem::Damaged(d) => r.corrupt.push(problem(d)),
                    }
                }
            }
        }
        for ((hp, id), p) in &parts {
            if indexed.contains(&(hp.clone(), id.clone())) {
                continue;
            }
            if !p.info {
                if p.data {
                    r.orphans += 1;
                }
                continue;
            }
            let problem = |key: String, detail: String| EntryProblem { key, id: id.clone(), detail, hp: hp.clone() };
            let doc: InfoDoc = match self.read_info(&self.object_key(&layout::info_key(hp, id))) {
                Ok(Some(doc)) => doc,
                // Removed since the listing.
                Ok(None) => continue,
                Err(err) if err.is_corruption() => {
                    r.damaged_infos.push(problem(String::new(), format!("its info is damaged: {err}")));
                    continue;
                }
                Err(err) => return Err(err),
            };
            if !with_index.contains(hp) {
                let list = if volatile { &mut r.stale_indexes } else { &mut r.missing_indexes };
                if !list.contains(hp) {
                    list.push(hp.clone());
                }
            }
            match self.check_entry_data(hp, &doc.entry, false, &frames)? {
                Some(DataProblem::Missing) => r.missing.push(problem(doc.key.clone(), "its data is missing".into())),
                Some(DataProblem::Damaged(d)) => r.corrupt.push(problem(doc.key.clone(), d)),
                None => {}
            }
            if volatile {
                // Where index writes are volatile an index lags its newest
                // entries by design (docs/STORE.md): they are entries like
                // any other.
                r.entries += 1;
                r.bytes += doc.entry.bytes;
                if lagging_keys.insert(hp.clone()) && !keyed.contains(hp) {
                    r.keys += 1;
                }
            } else {
                r.unindexed.push(problem(doc.key, "committed but not in its index".into()));
            }
        }
        r.quarantined = self.quarantined()?;
        for list in [&mut r.corrupt, &mut r.missing, &mut r.damaged_infos, &mut r.unindexed] {
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        r.missing_indexes.sort();
        r.damaged_indexes.sort();
        r.stale_indexes.sort();
        r.damaged_frames = frames.damaged_keys();
        Ok(r)
    }

    /// Checks an entry's data against its facts and its own checksums:
    /// `None` when intact. Data removed since the entry was listed (its
    /// info went first) is not a problem, unless the info was lost to
    /// damage (`info_lost`). An entry stored as a manifest is checked by
    /// its manifest and the shared frames it names (`frames`, read once
    /// for the whole store).
    fn check_entry_data(
        &self,
        hp: &str,
        facts: &EntryInfo,
        info_lost: bool,
        frames: &FrameCheck,
    ) -> Result<Option<DataProblem>> {
        let k = self.object_key(&layout::data_key(hp, &facts.id));
        let gone = || -> Result<Option<DataProblem>> {
            let still = info_lost || self.backend.exists(&self.object_key(&layout::info_key(hp, &facts.id)))?;
            Ok(still.then_some(DataProblem::Missing))
        };
        let manifest = match self.backend.head(&k).and_then(|m| self.read_manifest(&k, m.size)) {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return gone(),
            Err(err) if err.is_corruption() => return Ok(Some(DataProblem::Damaged(err.to_string()))),
            Err(e) => return Err(e),
        };
        if let Some(m) = manifest {
            return Ok(self.check_manifest_entry(&k, &m, facts, frames)?.map(DataProblem::Damaged));
        }
        let ck = match self.open_data(&k) {
            Ok(ck) => ck,
            Err(Error::NotFound { .. }) => return gone(),
            Err(err) if err.is_corruption() => return Ok(Some(DataProblem::Damaged(err.to_string()))),
            Err(e) => return Err(e),
        };
        if let Err(err) = self.check_opened(&k, &ck, facts) {
            if !err.is_corruption() {
                return Err(err);
            }
            return Ok(Some(DataProblem::Damaged(err.to_string())));
        }
        Ok(match ck.verify() {
            Ok(rep) if rep.problems.is_empty() => None,
            Ok(rep) => Some(DataProblem::Damaged(format!(
                "{} problems, first: {:?}",
                rep.problems.len(),
                rep.problems.first()
            ))),
            Err(err) => Some(DataProblem::Damaged(err.to_string())),
        })
    }

    /// The entries in quarantine, with the reason each was moved there.
    ///
    /// # Errors
    /// Backend errors.
    pub fn quarantined(&self) -> Result<Vec<EntryProblem>> {
        let root = self.object_key(layout::QUARANTINE);
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
}

/// What is wrong with an entry's data.
enum DataProblem {
    Missing,
    Damaged(String),
}
