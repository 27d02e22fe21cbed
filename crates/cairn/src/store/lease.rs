//! Leases: a reader's claim that keeps an entry's data from being removed
//! while it reads it in pieces. A lease is a small object with an expiry;
//! it goes when released (or dropped), and a collection removes leases
//! that expired or whose holder on this host has died.

use std::sync::Arc;
use std::time::Duration;

use super::key::Key;
use super::layout::{self, now_ns};
use super::records::{decode, encode, LeaseDoc, DOC_VERSION, MAX_SMALL_DOC_BYTES};
use super::store::Store;
use crate::backend::{Backend, BackendExt, Durability, PutMode};
use crate::error::{Error, Result};

/// What a sweep of the leases found and removed.
pub(crate) struct LeaseSweep {
    /// Entries with a live lease, as `(hash path, id)`.
    pub live: std::collections::HashSet<(String, String)>,
    /// Stale leases removed.
    pub stale: usize,
    /// Uncommitted data of dead saves removed with their leases.
    pub orphans: usize,
}

/// A held lease on one entry; released on drop.
#[derive(Debug)]
pub struct Lease {
    backend: Arc<dyn Backend>,
    object: String,
    ttl: Duration,
    /// When it was taken (ns): renewals keep it.
    taken_at: u64,
    released: bool,
    /// How long its writes last: a lease whose holder crashed holds
    /// nothing, so most need no durability (see `take_lease`).
    durability: Durability,
}

impl Lease {
    /// The lease's object key.
    pub(crate) fn object(&self) -> &str {
        &self.object
    }

    /// Extends the lease by the store's lease TTL from now.
    ///
    /// # Errors
    /// Backend errors.
    pub fn renew(&self) -> Result<()> {
        let doc = lease_doc(self.ttl, self.taken_at)?;
        self.backend.put_with(&self.object, doc, PutMode::Overwrite, self.durability).map(|_| ())
    }

    /// Gives the lease up.
    ///
    /// # Errors
    /// Backend errors (the lease then expires by itself).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.backend.delete_with(&self.object, self.durability)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.backend.delete_with(&self.object, self.durability);
        }
    }
}

fn lease_doc(ttl: Duration, taken_at: u64) -> Result<bytes::Bytes> {
    let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    encode(&LeaseDoc { version: DOC_VERSION, expires_at: now_ns().saturating_add(ttl), holder: holder(), taken_at })
}

/// `host:pid`, so a collection on the same host can tell a dead holder.
fn holder() -> String {
    format!("{}:{}", super::hardware::host_name(), std::process::id())
}

/// Whether a lease is still in force at `now`. A holder on this host
/// whose pid names no running process (or no process at all) has died; a
/// holder elsewhere is trusted until the lease expires.
fn live(doc: &LeaseDoc, now: u64) -> bool {
    if doc.expires_at <= now {
        return false;
    }
    match doc.holder.rsplit_once(':') {
        Some((host, pid)) if host == super::hardware::host_name() => crate::io::process_alive(pid),
        _ => true,
    }
}

impl Store {
    /// Takes a lease on entry `id` of `key`: until it is released or
    /// expires (after the store's lease TTL), no retention, eviction or
    /// collection removes the entry's data.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the entry does not exist (or is being
    /// removed); backend errors.
    pub fn lease(&self, key: &Key, id: &str) -> Result<Lease> {
        let hp = key.hash_path();
        let lease = self.take_lease(&hp, id, Durability::Volatile)?;
        // Removal deletes the info before it checks leases: if the info is
        // still here, any removal to come will see this lease.
        if !self.backend.exists(&self.object_key(&layout::info_key(&hp, id)))? {
            return Err(Error::NotFound { what: format!("{}: entry {id} of key {key:?}", self.url()), source: None });
        }
        Ok(lease)
    }

    /// Puts a lease object on entry `id` of the key at `hp`. A save takes
    /// one on its new id before it writes the data, so that a collection
    /// never takes the data of a save in progress for an orphan, and knows
    /// the data of a save whose process died for one.
    ///
    /// Readers' and savers' leases are [`Durability::Volatile`]: they
    /// protect what a live process does, and a crash ends that process (a
    /// saver's data without its lease is then an orphan, as it should be).
    /// A removal's markers are durable: after a crash they are what says
    /// that an entry without its info was being removed, not damaged.
    pub(crate) fn take_lease(&self, hp: &str, id: &str, durability: Durability) -> Result<Lease> {
        let object = self.object_key(&format!("{}{}", layout::lease_prefix(hp, id), crate::util::nonce()));
        let taken_at = now_ns();
        self.backend.put_with(&object, lease_doc(self.opts.lease_ttl, taken_at)?, PutMode::Create, durability)?;
        Ok(Lease {
            backend: self.backend.clone(),
            object,
            ttl: self.opts.lease_ttl,
            taken_at,
            released: false,
            durability,
        })
    }

    /// The leases of entry `id` of the key at `hp`: how many are live, and
    /// whether any has a dead holder or has expired.
    pub(crate) fn lease_states(&self, hp: &str, id: &str, now: u64) -> Result<(usize, bool)> {
        self.lease_states_except(hp, id, now, None)
    }

    /// As [`lease_states`](Self::lease_states), not counting the lease
    /// object `except` (the caller's own).
    pub(crate) fn lease_states_except(
        &self,
        hp: &str,
        id: &str,
        now: u64,
        except: Option<&str>,
    ) -> Result<(usize, bool)> {
        let (mut live_n, mut stale) = (0, false);
        for m in self.backend.list(&self.object_key(&layout::lease_prefix(hp, id)))? {
            if Some(m.key.as_str()) == except {
                continue;
            }
            match self.read_lease(&m.key)? {
                Some(d) if live(&d, now) => live_n += 1,
                Some(_) => stale = true,
                None => {}
            }
        }
        Ok((live_n, stale))
    }

    /// How many live leases entry `id` of the key at `hp` has.
    pub(crate) fn live_leases(&self, hp: &str, id: &str, now: u64) -> Result<usize> {
        self.lease_states(hp, id, now).map(|(n, _)| n)
    }

    /// A lease object; `None` if gone or unreadable (an unreadable lease
    /// holds nothing).
    fn read_lease(&self, full_key: &str) -> Result<Option<LeaseDoc>> {
        match self.backend.get(full_key) {
            Ok(b) => Ok(decode::<LeaseDoc>(&b, MAX_SMALL_DOC_BYTES, full_key).ok()),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every live lease as `(hash path, id)`; removes the stale ones, and
    /// with a stale lease on uncommitted data, that data too: it is what a
    /// save whose process died left (once its lease is gone nothing would
    /// mark it as such). Returns the live set and how many stale leases
    /// and orphan data objects went.
    pub(crate) fn sweep_leases(&self, now: u64) -> Result<LeaseSweep> {
        let root = self.object_key(layout::LEASES);
        let mut live_set = std::collections::HashSet::new();
        let (mut stale, mut orphans) = (0, 0);
        // The ids each key's index names, read once per key that needs it.
        let mut indexed: std::collections::HashMap<String, std::collections::HashSet<String>> = Default::default();
        for m in self.backend.list(&root)? {
            let Some((hp, id, _)) = layout::split_entry_key(&m.key, &root) else { continue };
            match self.read_lease(&m.key)? {
                Some(d) if live(&d, now) => {
                    live_set.insert((hp, id.to_string()));
                }
                _ => {
                    if !self.backend.exists(&self.object_key(&layout::info_key(&hp, id)))? {
                        // A removal that died after the info went and before
                        // the index changed: its lease marks it as such, so
                        // it stays for the collection to finish (an indexed
                        // entry with no info and no lease is damage).
                        if !indexed.contains_key(&hp) {
                            let ids = self.read_index(&hp)?.map(|(ix, _)| ix.entries.into_iter().map(|e| e.id));
                            indexed.insert(hp.clone(), ids.into_iter().flatten().collect());
                        }
                        if indexed.get(&hp).is_some_and(|ids| ids.contains(id)) {
                            continue;
                        }
                        let data = self.object_key(&layout::data_key(&hp, id));
                        if self.backend.exists(&data)? {
                            self.backend.delete(&data)?;
                            orphans += 1;
                        }
                    }
                    self.backend.delete(&m.key)?;
                    stale += 1;
                }
            }
        }
        Ok(LeaseSweep { live: live_set, stale, orphans })
    }

    /// When the oldest live lease of the store was taken (ns), `None` if no
    /// lease is live: a trashed frame older than it may go (see
    /// `collect_frames`). Leases written before `taken_at` count as taken
    /// at 0.
    pub(crate) fn oldest_live_lease(&self, now: u64) -> Result<Option<u64>> {
        let mut oldest: Option<u64> = None;
        for m in self.backend.list(&self.object_key(layout::LEASES))? {
            if let Some(d) = self.read_lease(&m.key)? {
                if live(&d, now) {
                    oldest = Some(oldest.map_or(d.taken_at, |o| o.min(d.taken_at)));
                }
            }
        }
        Ok(oldest)
    }
}
