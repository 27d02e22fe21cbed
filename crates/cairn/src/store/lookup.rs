//! Finding an entry: one index read picks the candidates, the data is
//! opened lazily (mapped on local disk, ranged reads elsewhere) and checked,
//! streamed, against the digest recorded at save, and a damaged entry is
//! quarantined while the lookup falls back to the next candidate.

use std::sync::Arc;

use bytes::Bytes;

use super::entry::EntryInfo;
use super::key::Key;
use super::layout::{self, now_ns};
use super::select::{candidates, Select};
use super::store::{Found, Store};
use crate::error::{Error, Result};

/// Who is at fault for an entry that fails its index's record.
enum Judgement {
    /// The index's record differs from the entry's own info.
    IndexWrong,
    /// The data is damaged; these are the facts to quarantine it with.
    DataDamaged(EntryInfo),
    /// The data passes its own checksums, but nothing readable says what it
    /// should be: left for repair.
    Unproven,
}

impl Store {
    /// The entry `how` selects among `key`'s entries, opened and verified;
    /// `None` if the key has no (intact) entry. The checkpoint reads
    /// lazily: on local disk it maps the entry's file (so
    /// [`tensor`](crate::Checkpoint::tensor) views the file, not a copy), on object
    /// storage it reads ranges; its frames are checked as they are read.
    /// Before it is returned, every byte is hashed (streamed) and compared
    /// with the digest recorded at save. A damaged entry met on the
    /// way is quarantined and the next candidate tried (for [`Select::Id`]
    /// there is none: the damage is the error). Opened checkpoints are
    /// cached within the store's cache budget.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the entry asked for by id is damaged;
    /// backend errors.
    pub fn lookup(&self, key: &Key, how: &Select) -> Result<Option<Found>> {
        let hp = key.hash_path();
        let found =
            self.find(key, how, |e| self.cache.get(&hp, &e.id), |e| self.open_verified(&hp, e).map(Arc::new))?;
        Ok(found.map(|(info, checkpoint)| {
            self.cache.insert(&hp, &info.id, checkpoint.clone());
            Found { info, checkpoint }
        }))
    }

    /// The stored bytes of the entry `how` selects, verified as
    /// [`lookup`](Self::lookup) does, in memory. For entries of any size,
    /// [`lookup`](Self::lookup) and [`Checkpoint::copy_to`](crate::Checkpoint::copy_to) stream them.
    ///
    /// # Errors
    /// As [`lookup`](Self::lookup).
    pub fn read(&self, key: &Key, how: &Select) -> Result<Option<(EntryInfo, Bytes)>> {
        let hp = key.hash_path();
        self.find(
            key,
            how,
            |_| None,
            |e| {
                let ck = self.open_verified(&hp, e)?;
                let mut out = Vec::new();
                ck.copy_to(&mut out, "memory")?;
                Ok(Bytes::from(out))
            },
        )
    }

    fn find<T>(
        &self,
        key: &Key,
        how: &Select,
        cached: impl Fn(&EntryInfo) -> Option<T>,
        open: impl Fn(&EntryInfo) -> Result<T>,
    ) -> Result<Option<(EntryInfo, T)>> {
        let hp = key.hash_path();
        // A second pass only after the index was found wrong and rebuilt.
        for _pass in 0..2 {
            let Some((index, _)) = self.read_index(&hp)? else { return Ok(None) };
            let mut index_wrong = false;
            for e in candidates(&index.entries, how, self.opts.direction) {
                if let Some(hit) = cached(e) {
                    self.touch(&hp, e);
                    return Ok(Some((e.clone(), hit)));
                }
                let opened = open(e);
                match opened {
                    Ok(v) => {
                        self.touch(&hp, e);
                        return Ok(Some((e.clone(), v)));
                    }
                    Err(err) if err.is_corruption() => match self.judge(&hp, e)? {
                        Judgement::IndexWrong => {
                            let why = format!("its record of entry {} disagrees with the entry's info", e.id);
                            // The wrong index is kept aside, as a damaged one is.
                            let wrong = self.backend.get_versioned(&self.object_key(&layout::index_key(&hp)))?;
                            self.rebuild_index(&hp, Some((&wrong.data, &wrong.etag)), &why)?;
                            log::warn!("{}: the index of key {:?} was wrong ({why}); rebuilt", self.url(), key.name());
                            index_wrong = true;
                            break;
                        }
                        Judgement::DataDamaged(facts) => {
                            self.quarantine(&hp, key.name(), &facts, &err.to_string())?;
                            if matches!(how, Select::Id(_)) {
                                return Err(err);
                            }
                        }
                        Judgement::Unproven => {
                            log::warn!(
                                "{}: entry {} of key {:?} does not match what its index records, but its data \
                                 passes its own checksums and its info is unreadable: left in place for \
                                 `cairn store repair` ({err})",
                                self.url(),
                                e.id,
                                key.name()
                            );
                            if matches!(how, Select::Id(_)) {
                                return Err(err);
                            }
                        }
                    },
                    // Removed since the index was read.
                    Err(Error::NotFound { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            if !index_wrong {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Decides who is at fault when an entry's data fails what the index
    /// records of it: the index (its record differs from the entry's own
    /// info), or the data (it fails the info too, or, with the info
    /// unreadable, its own checksums). A healthy entry is never quarantined
    /// for a damaged index.
    fn judge(&self, hp: &str, e: &EntryInfo) -> Result<Judgement> {
        let info = match self.read_info(&self.object_key(&layout::info_key(hp, &e.id))) {
            Ok(doc) => doc.map(|d| d.entry),
            Err(err) if err.is_corruption() => None,
            Err(err) => return Err(err),
        };
        if let Some(info) = info {
            if (info.bytes, &info.digest, &info.id) != (e.bytes, &e.digest, &e.id) {
                return Ok(Judgement::IndexWrong);
            }
            return Ok(Judgement::DataDamaged(info));
        }
        let intact = match self.open_data(&self.object_key(&layout::data_key(hp, &e.id))) {
            Ok(ck) => ck.verify().is_ok_and(|r| r.is_ok()),
            Err(Error::NotFound { .. }) => return Ok(Judgement::DataDamaged(e.clone())),
            Err(err) if err.is_corruption() => false,
            Err(err) => return Err(err),
        };
        Ok(if intact { Judgement::Unproven } else { Judgement::DataDamaged(e.clone()) })
    }

    /// Records a read in the entry's last-use time, at most once per touch
    /// interval; a lost race or an error only delays it.
    fn touch(&self, hp: &str, e: &EntryInfo) {
        let now = now_ns();
        let interval = u64::try_from(self.opts.touch_interval.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(e.last_used) < interval {
            return;
        }
        let r = self.update_index(hp, "", |ix| match ix.entries.iter_mut().find(|x| x.id == e.id) {
            Some(x) if now.saturating_sub(x.last_used) >= interval => {
                x.last_used = now;
                true
            }
            _ => false,
        });
        if let Err(err) = r {
            log::debug!("{}: recording the use of entry {}: {err}", self.url(), e.id);
        }
    }
}
