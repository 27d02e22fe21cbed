//! Finding an entry: one index read picks the candidates, the data is read
//! whole and checked against the digest recorded at save, and a damaged
//! entry is quarantined while the lookup falls back to the next candidate.

use std::sync::Arc;

use bytes::Bytes;

use super::handle::{Found, Store};
use super::key::Key;
use super::layout::{self, now_ns};
use super::select::{candidates, EntryInfo, Select};
use crate::error::{Error, Result};
use crate::format::Checkpoint;

impl Store {
    /// The entry `how` selects among `key`'s entries, opened and verified;
    /// `None` if the key has no (intact) entry. A damaged entry met on the
    /// way is quarantined and the next candidate tried (for [`Select::Id`]
    /// there is none: the damage is the error). Opened checkpoints are
    /// cached within the store's cache budget.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the entry asked for by id is damaged;
    /// backend errors.
    pub fn lookup(&self, key: &Key, how: &Select) -> Result<Option<Found>> {
        let hp = key.hash_path();
        let found = self.find(
            key,
            how,
            |e| self.cache.get(&hp, &e.id),
            |bytes| {
                let ckpt = Checkpoint::from_bytes(Vec::from(bytes))?;
                Ok(Arc::new(ckpt))
            },
        )?;
        Ok(found.map(|(info, checkpoint)| {
            self.cache.insert(&hp, &info.id, checkpoint.clone());
            Found { info, checkpoint }
        }))
    }

    /// The stored bytes of the entry `how` selects, verified as
    /// [`lookup`](Self::lookup) does, without opening them.
    ///
    /// # Errors
    /// As [`lookup`](Self::lookup).
    pub fn read(&self, key: &Key, how: &Select) -> Result<Option<(EntryInfo, Bytes)>> {
        self.find(
            key,
            how,
            |_| None,
            |bytes| {
                // Open too: the digest proves the bytes are the ones saved, and
                // opening proves those were a checkpoint.
                Checkpoint::open_ranged(Box::new(super::handle::BytesSource(bytes.clone())), "entry")?;
                Ok(bytes)
            },
        )
    }

    fn find<T>(
        &self,
        key: &Key,
        how: &Select,
        cached: impl Fn(&EntryInfo) -> Option<T>,
        open: impl Fn(Bytes) -> Result<T>,
    ) -> Result<Option<(EntryInfo, T)>> {
        let hp = key.hash_path();
        let Some((index, _)) = self.read_index(&hp)? else { return Ok(None) };
        for e in candidates(&index.entries, how, self.opts.direction) {
            if let Some(hit) = cached(e) {
                self.touch(&hp, e);
                return Ok(Some((e.clone(), hit)));
            }
            let opened = self.read_verified(&hp, e).and_then(&open);
            match opened {
                Ok(v) => {
                    self.touch(&hp, e);
                    return Ok(Some((e.clone(), v)));
                }
                Err(err) if err.is_corruption() => {
                    self.quarantine(&hp, key.name(), e, &err.to_string())?;
                    if matches!(how, Select::Id(_)) {
                        return Err(err);
                    }
                }
                // Removed since the index was read.
                Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// An entry's data, checked for its recorded length and digest.
    pub(crate) fn read_verified(&self, hp: &str, e: &EntryInfo) -> Result<Bytes> {
        let k = self.k(&layout::data_key(hp, &e.id));
        let data = self.backend.get(&k)?;
        let corrupt = |detail: String| Error::Corrupt {
            file: format!("{}/{k}", self.backend.url()),
            what: "store entry".into(),
            offset: 0,
            detail,
        };
        if data.len() as u64 != e.bytes {
            return Err(corrupt(format!("{} bytes stored, {} saved", data.len(), e.bytes)));
        }
        let digest = blake3::hash(&data);
        if digest.to_hex().as_str() != e.digest {
            return Err(corrupt(format!(
                "BLAKE3 {} does not match the {} recorded at save",
                digest.to_hex(),
                e.digest
            )));
        }
        Ok(data)
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
