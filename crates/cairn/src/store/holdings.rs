//! What each entry holds of the store's bytes: its own object, and the
//! shared frame objects its manifest names, so that the byte budget counts
//! stored bytes with each shared frame once (docs/STORE.md, "Accounting").

use std::collections::HashMap;

use super::entry::EntryInfo;
use super::layout;
use super::manifest::{self, Manifest, Source};
use super::store::Store;
use crate::error::{Error, Result};

/// One entry's share of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Holding {
    /// Bytes of its own object (its checkpoint, or its manifest).
    pub own: u64,
    /// The frame objects it names (each once) and their bytes.
    pub frames: Vec<([u8; 32], u64)>,
}

impl Store {
    /// The manifest stored as the object at backend key `k` of `size`
    /// bytes; `None` when the object is a plain checkpoint (or shorter
    /// than a manifest).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the object went since it was listed;
    /// [`Error::Corrupt`] for a damaged manifest; backend errors.
    pub(crate) fn read_manifest(&self, k: &str, size: u64) -> Result<Option<Manifest>> {
        if size < manifest::TAIL_LEN as u64 {
            return Ok(None);
        }
        let last = self.backend.get_range(k, size - 8..size)?;
        if !manifest::is_manifest(&last) {
            return Ok(None);
        }
        let locator = self.locator(k);
        Manifest::decode(size, &locator, |o, l| Ok(self.backend.get_range(k, o..o.saturating_add(l as u64))?.to_vec()))
            .map(Some)
    }

    /// What entry `e` of the key at `hp` holds. An entry whose save shared
    /// nothing (`added_bytes == bytes`) is a plain checkpoint, known from
    /// its record; the others' manifests are read. An entry whose object
    /// cannot be read counts its logical size (a collection or `verify`
    /// deals with it).
    pub(crate) fn holding(&self, hp: &str, e: &EntryInfo) -> Holding {
        let plain = Holding { own: e.bytes, frames: Vec::new() };
        if e.added_bytes == e.bytes {
            return plain;
        }
        let k = self.object_key(&layout::data_key(hp, &e.id));
        let read = self.backend.head(&k).and_then(|m| Ok((m.size, self.read_manifest(&k, m.size)?)));
        match read {
            Ok((size, Some(m))) => {
                let mut sizes: HashMap<[u8; 32], u64> = HashMap::new();
                for p in &m.pieces {
                    if let Source::Frame { hash } | Source::Xor { base: hash, .. } = p.source {
                        sizes.insert(hash, p.len);
                    }
                }
                Holding { own: size, frames: sizes.into_iter().collect() }
            }
            Ok((size, None)) => Holding { own: size, frames: Vec::new() },
            Err(Error::NotFound { .. }) => Holding::default(),
            Err(err) => {
                log::debug!("{}: entry {} counted at its logical size: {err}", self.url(), e.id);
                plain
            }
        }
    }

    /// [`holding`](Self::holding) of every entry given, read in parallel.
    pub(crate) fn holdings(&self, entries: &[(&str, &EntryInfo)]) -> Vec<Holding> {
        use rayon::prelude::*;
        entries.par_iter().map(|(hp, e)| self.holding(hp, e)).collect()
    }
}

/// The bytes the entries holding `holdings` take together: their objects,
/// and each frame once; with how many of them name each frame.
pub(crate) fn stored_total<'a>(
    holdings: impl IntoIterator<Item = &'a Holding>,
) -> (u64, HashMap<[u8; 32], (usize, u64)>) {
    let mut total = 0u64;
    let mut refs: HashMap<[u8; 32], (usize, u64)> = HashMap::new();
    for h in holdings {
        total = total.saturating_add(h.own);
        for (hash, len) in &h.frames {
            let r = refs.entry(*hash).or_insert((0, *len));
            if r.0 == 0 {
                total = total.saturating_add(*len);
            }
            r.0 += 1;
        }
    }
    (total, refs)
}
