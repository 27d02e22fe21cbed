//! A key's index: read it, update it by compare-and-swap, and rebuild it
//! from the entries' own info objects when it is lost or damaged.

use std::time::Duration;

use super::layout::{self, split_entry_key};
use super::records::{decode, encode, IndexDoc, InfoDoc, MAX_INDEX_BYTES, MAX_SMALL_DOC_BYTES};
use super::store::Store;
use crate::backend::{Durability, PutMode};
use crate::error::{Error, Result};

/// Updates that lose this many races in a row give up.
const MAX_ATTEMPTS: u32 = 10_000;

impl Store {
    /// A key's index and its version tag, `None` if the key has none. A
    /// damaged index is moved aside and rebuilt from the entries' infos; a
    /// missing one is rebuilt too when the key has committed entries (a
    /// save makes the index before its data, so that is damage), so that
    /// they stay reachable.
    ///
    /// Where index writes are volatile, the index comes with the committed
    /// entries a crash kept out of it (see `with_unindexed`).
    pub(crate) fn read_index(&self, hp: &str) -> Result<Option<(IndexDoc, String)>> {
        self.read_index_merging(hp, true)
    }

    /// As [`read_index`](Self::read_index), the index as stored (rebuilt
    /// when damaged or missing) but without merging what it lags: for the
    /// collection, which writes what an index lags back into it.
    pub(crate) fn read_stored_index(&self, hp: &str) -> Result<Option<(IndexDoc, String)>> {
        self.read_index_merging(hp, false)
    }

    fn read_index_merging(&self, hp: &str, merge: bool) -> Result<Option<(IndexDoc, String)>> {
        let k = self.object_key(&layout::index_key(hp));
        let v = match self.backend.get_versioned(&k) {
            Ok(v) => v,
            Err(Error::NotFound { .. }) => {
                if !self.has_infos(hp)? {
                    return Ok(None);
                }
                log::warn!(
                    "{}/{k}: the index of a key with entries is missing; rebuilt from their infos",
                    self.backend.url()
                );
                self.rebuild_index(hp, None, "missing")?;
                return self.read_index_as_is(hp);
            }
            Err(e) => return Err(e),
        };
        // A remembered copy under the tag just read is this index; an
        // empty tag is no version and is never trusted.
        let remembered = if v.etag.is_empty() { None } else { self.index_docs.get(hp, &v.etag) };
        let decoded = match remembered {
            Some(doc) => Ok(doc),
            None => decode::<IndexDoc>(&v.data, MAX_INDEX_BYTES, &k).inspect(|doc| {
                if !v.etag.is_empty() {
                    self.index_docs.put(hp, &v.etag, doc);
                }
            }),
        };
        match decoded {
            Ok(doc) if merge => Ok(Some((self.with_unindexed(hp, doc)?, v.etag))),
            Ok(doc) => Ok(Some((doc, v.etag))),
            Err(e) if e.is_corruption() => {
                self.rebuild_index(hp, Some((&v.data, &v.etag)), &e.to_string())?;
                self.read_index_as_is(hp)
            }
            Err(e) => Err(e),
        }
    }

    /// On a backend where index writes are volatile (local disk), an index
    /// may lag its key's infos after a crash: `doc` plus the committed
    /// entries (infos) it does not name, found by listing the key's folder.
    /// An update puts the merged index back; a lookup just uses it. Entries
    /// the index names without an info are left to the reader (their data
    /// is gone, or going: a removal deletes the info first).
    pub(crate) fn with_unindexed(&self, hp: &str, mut doc: IndexDoc) -> Result<IndexDoc> {
        if !self.backend.volatile_is_weaker() {
            return Ok(doc);
        }
        let root = self.object_key(layout::ENTRIES);
        let listed = self.backend.list_keys(&self.object_key(&layout::entry_prefix(hp)))?;
        let known: std::collections::HashSet<String> = doc.entries.iter().map(|e| e.id.clone()).collect();
        let mut added = 0;
        for k in listed {
            let Some((_, id, "info")) = split_entry_key(&k, &root) else { continue };
            if known.contains(id) {
                continue;
            }
            match self.read_info(&k) {
                Ok(Some(info)) if info.entry.id == id => {
                    // An index rebuilt before any entry committed (after a
                    // crash damaged a new one) has no key name yet.
                    if doc.key.is_empty() {
                        doc.key = info.key;
                    }
                    doc.entries.push(info.entry);
                    added += 1;
                }
                // Removed since the listing, or not what its name says.
                Ok(_) => {}
                Err(e) if e.is_corruption() => {
                    log::warn!("{}/{k}: unreadable entry info: {e}", self.backend.url())
                }
                Err(e) => return Err(e),
            }
        }
        if added > 0 {
            doc.entries.sort_by(|a, b| a.id.cmp(&b.id));
            log::debug!("{}: the index of {hp} lagged {added} committed entries (a crash); merged", self.url());
        }
        Ok(doc)
    }

    /// The index as stored, rebuilding nothing.
    fn read_index_as_is(&self, hp: &str) -> Result<Option<(IndexDoc, String)>> {
        let k = self.object_key(&layout::index_key(hp));
        match self.backend.get_versioned(&k) {
            Ok(v) => Ok(Some((decode::<IndexDoc>(&v.data, MAX_INDEX_BYTES, &k)?, v.etag))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether any info object (a committed entry) is stored under `hp`.
    pub(crate) fn has_infos(&self, hp: &str) -> Result<bool> {
        let root = self.object_key(layout::ENTRIES);
        let listed = self.backend.list_keys(&self.object_key(&layout::entry_prefix(hp)))?;
        Ok(listed.iter().any(|k| matches!(split_entry_key(k, &root), Some((_, _, "info")))))
    }

    /// Applies `change` to the key's index (an empty one if it has none)
    /// and stores the result only if nobody changed the index meanwhile,
    /// retrying from a fresh read until that holds. `change` returns
    /// whether it changed anything; when not, nothing is written.
    ///
    /// The put is [`Durability::Volatile`]: what a save adds to an index is
    /// in the entry's info already, and a read finds infos a crash kept out
    /// of the index (see `read_index`). Changes an index alone would know
    /// use [`update_index_with`](Self::update_index_with).
    pub(crate) fn update_index(
        &self,
        hp: &str,
        key_name: &str,
        change: impl FnMut(&mut IndexDoc) -> bool,
    ) -> Result<IndexDoc> {
        self.update_index_with(hp, key_name, Durability::Volatile, change)
    }

    /// As [`update_index`](Self::update_index), with the durability asked for.
    pub(crate) fn update_index_with(
        &self,
        hp: &str,
        key_name: &str,
        durability: Durability,
        mut change: impl FnMut(&mut IndexDoc) -> bool,
    ) -> Result<IndexDoc> {
        self.swap_index(hp, durability, || {
            let (doc, mode) = match self.read_stored_index(hp)? {
                Some((doc, etag)) => (doc, PutMode::Update(etag)),
                None => (IndexDoc::new(key_name), PutMode::Create),
            };
            // What the stored index lags goes back into it with the change.
            let stored = doc.entries.len();
            let mut doc = self.with_unindexed(hp, doc)?;
            let mut lagged = doc.entries.len() != stored;
            // An index rebuilt before any entry committed (after a crash
            // damaged a new one) has no key name yet: the caller's is it.
            if doc.key.is_empty() && !key_name.is_empty() {
                doc.key = key_name.to_string();
                lagged = true;
            }
            if !change(&mut doc) && !lagged {
                return Ok(Attempt::Done(doc));
            }
            Ok(Attempt::Put(encode(&doc)?, mode, doc))
        })
    }

    /// Runs `attempt` until the conditional put of the key's index it asks
    /// for wins, backing off with jitter after each lost race; returns the
    /// value of the attempt that won, or that stopped without a put.
    fn swap_index<T>(
        &self,
        hp: &str,
        durability: Durability,
        mut attempt: impl FnMut() -> Result<Attempt<T>>,
    ) -> Result<T> {
        let k = self.object_key(&layout::index_key(hp));
        let mut backoff = Duration::from_micros(50);
        for _ in 0..MAX_ATTEMPTS {
            let (body, mode, value) = match attempt()? {
                Attempt::Done(value) => return Ok(value),
                Attempt::Put(body, mode, value) => (body, mode, value),
            };
            match self.backend.put_with(&k, body, mode, durability) {
                Ok(_) => return Ok(value),
                Err(Error::Precondition { .. } | Error::AlreadyExists { .. } | Error::NotFound { .. }) => {
                    // Lost a race: another writer updated the index first.
                    std::thread::sleep(jitter(backoff));
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Precondition {
            source: None,
            what: format!("{}/{k}", self.backend.url()),
            detail: format!("the index kept changing: {MAX_ATTEMPTS} updates in a row lost a race"),
        })
    }

    /// Rebuilds a key's index from its entries' info objects, keeping what
    /// a readable old index knew of use times. A damaged index
    /// (`damaged`: its bytes and tag) is copied into quarantine first.
    /// Returns the number of entries indexed.
    ///
    /// The index's version is read before the info objects are listed and
    /// the rebuilt index is put only over that version: a removal that
    /// deletes an info after the listing updates the index too, so the
    /// put fails and the rebuild starts again, instead of bringing the
    /// removed entry back.
    pub(crate) fn rebuild_index(&self, hp: &str, damaged: Option<(&[u8], &str)>, why: &str) -> Result<usize> {
        let k = self.object_key(&layout::index_key(hp));
        if let Some((bytes, _)) = damaged {
            let aside = self.object_key(&format!("{}index-{}", layout::QUARANTINE, layout::new_id(layout::now_ns())));
            let aside = format!("{aside}-{}", hp.replace('/', ""));
            self.backend.put(&aside, bytes::Bytes::copy_from_slice(bytes), PutMode::Create)?;
            log::warn!("{}/{k}: damaged index moved to {aside} and rebuilt: {why}", self.backend.url());
        }
        let mut known: Option<(Option<IndexDoc>, String)> = damaged.map(|(_, etag)| (None, etag.to_string()));
        // Volatile: what it puts is derived from the infos.
        self.swap_index(hp, Durability::Volatile, || {
            let current = match known.take() {
                Some(k) => Some(k),
                None => self.get_index_any(hp)?,
            };
            let infos = self.infos_of(hp)?;
            let (old, mode) = match current {
                Some((doc, etag)) => (doc, PutMode::Update(etag)),
                None => (None, PutMode::Create),
            };
            let key_name = infos.first().map(|d| d.key.clone()).or_else(|| old.as_ref().map(|d| d.key.clone()));
            let mut doc = IndexDoc::new(&key_name.unwrap_or_default());
            doc.entries = infos.into_iter().map(|d| d.entry).collect();
            // Keep use times from a readable index.
            for e in &mut doc.entries {
                if let Some(was) = old.as_ref().and_then(|o| o.entries.iter().find(|x| x.id == e.id)) {
                    e.last_used = e.last_used.max(was.last_used);
                }
            }
            doc.entries.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(Attempt::Put(encode(&doc)?, mode, doc.entries.len()))
        })
    }

    /// The index as stored and its version tag, its content `None` if
    /// unreadable; `None` if there is no index.
    fn get_index_any(&self, hp: &str) -> Result<Option<(Option<IndexDoc>, String)>> {
        let k = self.object_key(&layout::index_key(hp));
        match self.backend.get_versioned(&k) {
            Ok(v) => Ok(Some((decode::<IndexDoc>(&v.data, MAX_INDEX_BYTES, &k).ok(), v.etag))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The readable info objects of a key's committed entries; unreadable
    /// ones are logged and skipped.
    pub(crate) fn infos_of(&self, hp: &str) -> Result<Vec<InfoDoc>> {
        let root = self.object_key(layout::ENTRIES);
        let mut out = Vec::new();
        for m in self.backend.list(&self.object_key(&layout::entry_prefix(hp)))? {
            let Some((_, _, "info")) = split_entry_key(&m.key, &root) else { continue };
            match self.read_info(&m.key) {
                Ok(Some(doc)) => out.push(doc),
                Ok(None) => {}
                Err(e) if e.is_corruption() => {
                    log::warn!("{}/{}: unreadable entry info: {e}", self.backend.url(), m.key)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// An info object by its full backend key; `None` if missing.
    pub(crate) fn read_info(&self, full_key: &str) -> Result<Option<InfoDoc>> {
        match self.backend.get(full_key) {
            Ok(b) => decode::<InfoDoc>(&b, MAX_SMALL_DOC_BYTES, full_key).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `d` scaled by a random factor in [0.5, 1.5), so racing writers spread out.
pub(crate) fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(layout::now_ns());
    let f = 0.5 + (h.finish() % 1000) as f64 / 1000.0;
    d.mul_f64(f)
}

/// What one try at changing an index asks for.
enum Attempt<T> {
    /// Nothing to write: stop with this value.
    Done(T),
    /// Put this body with this mode; on success return the value.
    Put(bytes::Bytes, PutMode, T),
}
