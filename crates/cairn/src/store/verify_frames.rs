//! `verify`'s side of shared frames (docs/STORE.md, "Shared frames"):
//! every frame object is read once and checked against its name, and an
//! entry stored as a manifest is checked by its own object (the manifest
//! checks itself whole) and the frame objects it names, so a frame shared
//! by a hundred entries is read once, not a hundred times.

use std::collections::HashMap;

use super::entry::EntryInfo;
use super::layout;
use super::manifest::{Manifest, Source};
use super::store::Store;
use crate::error::{Error, Result};

/// Inline bytes are hashed this many at a time.
const BLOCK: u64 = 4 << 20;

/// The frame objects found and checked.
#[derive(Debug, Default)]
pub(crate) struct FrameCheck {
    /// Intact frames and their lengths.
    clean: HashMap<[u8; 32], u64>,
    /// Damaged frames and their backend keys.
    damaged: HashMap<[u8; 32], String>,
    /// Objects among the frames whose names are no hash.
    misnamed: Vec<String>,
}

impl FrameCheck {
    /// The damaged frames' backend keys, sorted.
    pub(crate) fn damaged_keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self.damaged.values().chain(&self.misnamed).cloned().collect();
        v.sort();
        v
    }
}

/// What hashing a frame object found.
enum Found {
    Clean(u64),
    Damaged(String),
    Gone,
}

fn hash_of_name(name: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(name).ok().map(|h| *h.as_bytes())
}

impl Store {
    /// Reads every frame object (under `frames/` and in the trash) once,
    /// in parallel, checking that its bytes hash to its name.
    pub(crate) fn check_frames(&self) -> Result<FrameCheck> {
        use rayon::prelude::*;
        let mut listed = Vec::new();
        // `frames/` before the trash: a collection moves a frame there by
        // copying it before it deletes the original, so one listing or the
        // other sees it.
        for root in [layout::FRAMES, layout::TRASH_FRAMES] {
            let root = self.object_key(root);
            for k in self.backend.list_keys(&root)? {
                let name = k.strip_prefix(&root).map(|r| r.replace('/', "")).unwrap_or_default();
                listed.push((k, name));
            }
        }
        type Checked = (String, Option<[u8; 32]>, Found);
        let checked: Vec<Result<Checked>> = listed
            .into_par_iter()
            .map(|(k, name)| {
                let found = self.hash_frame_object(&k, &name)?;
                Ok((k, hash_of_name(&name), found))
            })
            .collect();
        let mut out = FrameCheck::default();
        for c in checked {
            let (k, hash, found) = c?;
            match (hash, found) {
                (Some(h), Found::Clean(len)) => {
                    out.clean.insert(h, len);
                }
                (Some(h), Found::Damaged(_)) => {
                    out.damaged.insert(h, k);
                }
                // A name that is no hash: damage of the store, named.
                (None, Found::Clean(_) | Found::Damaged(_)) => out.misnamed.push(k),
                (_, Found::Gone) => {}
            }
        }
        Ok(out)
    }

    fn hash_frame_object(&self, k: &str, name: &str) -> Result<Found> {
        match self.backend.get(k) {
            Ok(bytes) if blake3::hash(&bytes).to_hex().as_str() == name => Ok(Found::Clean(bytes.len() as u64)),
            Ok(bytes) => Ok(Found::Damaged(format!("{} bytes that do not hash to its name", bytes.len()))),
            Err(Error::NotFound { .. }) => Ok(Found::Gone),
            Err(e) => Err(e),
        }
    }

    /// Frame `hash` as a reader finds it (in `frames/`, else in the
    /// trash), checked now: for frames the pass did not see (saved since
    /// it, or put back from the trash while it listed).
    fn check_frame_now(&self, hash: &[u8; 32]) -> Result<Found> {
        let name = blake3::Hash::from(*hash).to_hex().to_string();
        for k in [layout::frame_key(hash), layout::trash_frame_key(hash)] {
            match self.hash_frame_object(&self.object_key(&k), &name)? {
                Found::Gone => continue,
                found => return Ok(found),
            }
        }
        Ok(Found::Gone)
    }

    /// Checks an entry stored as manifest `m` (the object at backend key
    /// `k`) without reading the frames it shares: its length, its inline
    /// bytes against the manifest's checksum, each frame it names against
    /// `frames`, and its checkpoint's header, index and trailer. `Some`
    /// detail when damaged.
    pub(crate) fn check_manifest_entry(
        &self,
        k: &str,
        m: &Manifest,
        facts: &EntryInfo,
        frames: &FrameCheck,
    ) -> Result<Option<String>> {
        if m.file_len() != facts.bytes {
            return Ok(Some(format!("its manifest gives {} bytes, {} were saved", m.file_len(), facts.bytes)));
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut at = 0u64;
        while at < m.inline_len {
            let end = m.inline_len.min(at + BLOCK);
            let got = self.backend.get_range(k, at..end)?;
            if got.len() as u64 != end - at {
                return Ok(Some(format!("its manifest is short at offset {at}")));
            }
            hasher.update(&got);
            at = end;
        }
        if hasher.digest() != m.inline_sum {
            return Ok(Some(format!(
                "{}: the manifest's inline bytes (0..{}) fail their checksum",
                self.locator(k),
                m.inline_len
            )));
        }
        for (i, p) in m.pieces.iter().enumerate() {
            let (hash, whole) = match p.source {
                Source::Frame { hash } => (hash, Some(p.len)),
                Source::Xor { base, .. } => (base, Some(p.len)),
                Source::Inline { .. } => continue,
            };
            let name = || self.locator(&self.object_key(&layout::frame_key(&hash)));
            if let Some(key) = frames.damaged.get(&hash) {
                return Ok(Some(format!("piece {i} names the damaged shared frame {}", self.locator(key))));
            }
            let len = match frames.clean.get(&hash) {
                Some(len) => *len,
                None => match self.check_frame_now(&hash)? {
                    Found::Clean(len) => len,
                    Found::Damaged(d) => return Ok(Some(format!("piece {i} names the shared frame {}: {d}", name()))),
                    Found::Gone => {
                        return Ok(Some(format!("piece {i} names the shared frame {}, which is missing", name())))
                    }
                },
            };
            if whole.is_some_and(|w| w != len) {
                return Ok(Some(format!("piece {i} is {} bytes, its shared frame {} is {len}", p.len, name())));
            }
        }
        match self.open_data(k) {
            Ok(_) => Ok(None),
            Err(err) if err.is_corruption() => Ok(Some(err.to_string())),
            Err(e) => Err(e),
        }
    }
}
