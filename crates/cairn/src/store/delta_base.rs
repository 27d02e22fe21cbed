//! The frames a save may store as XORs: for each raw frame of the key's
//! latest entry that is a shared frame object (or an XOR against one), the
//! whole frame object it is, by chunk name and frame number
//! (docs/STORE.md, "Shared frames", "Saving", step 1). XORs are always against
//! whole frames, so reading a frame needs at most one other.

use std::collections::{HashMap, HashSet};

use super::layout;
use super::manifest::{self, Source};
use super::pieced::PiecedRead;
use super::select::{candidates, Select};
use super::store::Store;
use crate::error::Result;
use crate::format::Checkpoint;

/// A whole frame object a new frame may be XORed against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base {
    pub hash: [u8; 32],
    pub len: u64,
}

/// What a save may XOR against.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bases {
    /// Bases by chunk name and frame number.
    pub frames: HashMap<(String, u64), Base>,
    /// The generation of an entry whose XORs are taken against these
    /// (docs/STORE.md, "Bounded chains").
    pub generation: u64,
    /// Every frame object the latest entry names (its frames and its XORs'
    /// bases), whether or not XORs may be taken: a frame with one of these
    /// hashes is named without asking the backend whether it exists.
    pub names: HashSet<[u8; 32]>,
}

impl Bases {
    /// No bases: every frame is stored whole.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The base of frame `index` of chunk `chunk`.
    pub(crate) fn get(&self, chunk: &str, index: u64) -> Option<&Base> {
        self.frames.get(&(chunk.to_string(), index))
    }
}

impl Store {
    /// The bases the key at `hp` offers: its latest entry's raw frames that
    /// are shared. Empty when the key has no entry, or its latest entry is
    /// a plain checkpoint, or cannot be read (the save then stores whole
    /// frames; a damaged entry is for lookups and `verify` to report), or
    /// when the latest entry's XORs are `full_every - 1` saves from the
    /// key's last entry stored whole: this save is then one, so a base is
    /// never more than `full_every` entries old.
    pub(crate) fn delta_bases(&self, hp: &str) -> Result<Bases> {
        let mut out = Bases::new();
        let Some((index, _)) = self.read_index(hp)? else { return Ok(out) };
        let Some(latest) = candidates(&index.entries, &Select::Latest, self.opts.direction).into_iter().next() else {
            return Ok(out);
        };
        let k = self.object_key(&layout::data_key(hp, &latest.id));
        let Ok(meta) = self.backend.head(&k) else { return Ok(out) };
        let len = meta.size;
        let last = match self.backend.get_range(&k, len.saturating_sub(8)..len) {
            Ok(b) => b,
            Err(_) => return Ok(out),
        };
        if !manifest::is_manifest(&last) {
            return Ok(out);
        }
        let locator = self.locator(&k);
        let Ok(pieced) = PiecedRead::open(self.backend.clone(), &k, len, &self.prefix, &locator) else {
            return Ok(out);
        };
        let m = pieced.manifest().clone();
        out.names = m
            .pieces
            .iter()
            .filter_map(|p| match p.source {
                Source::Frame { hash } | Source::Xor { base: hash, .. } => Some(hash),
                Source::Inline { .. } => None,
            })
            .collect();
        let generation = m.generation.saturating_add(1);
        if generation >= self.opts.full_every {
            return Ok(out);
        }
        out.generation = generation;
        let Ok(ck) = Checkpoint::open_ranged(Box::new(pieced), locator) else { return Ok(out) };
        for c in ck.chunks() {
            let Ok(frames) = ck.frames_of(c) else { continue };
            for (i, f) in frames.iter().enumerate() {
                let raw = u64::from(f.stored_len) == crate::format::frame_raw_len(c.raw_len, ck.frame_size(), i as u64);
                let Some(p) = m.piece_at(f.offset) else { continue };
                let Some(piece) = m.pieces.get(p) else { continue };
                if !raw || m.start(p) != f.offset || piece.len != u64::from(f.stored_len) {
                    continue;
                }
                let hash = match piece.source {
                    Source::Frame { hash } | Source::Xor { base: hash, .. } => hash,
                    Source::Inline { .. } => continue,
                };
                out.frames.insert((c.name.clone(), i as u64), Base { hash, len: piece.len });
            }
        }
        Ok(out)
    }
}
