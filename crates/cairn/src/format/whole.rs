//! A checkpoint's file as a whole, streamed: hashed, or copied out, a
//! piece at a time from wherever the reader gets its bytes (the map, the
//! open file, ranged reads of an object), so neither needs the file in
//! memory.

use std::io::Write;

use super::reader::Checkpoint;
use crate::error::{Error, Result};

/// Bytes read per step from an open file (not mapped); ranged reads of
/// an object take 64 MiB at a time.
const PIECE: u64 = 8 << 20;

/// Bytes of a mapped file hashed per step (on every core), while the
/// kernel reads in the next step's.
const WINDOW: usize = 64 << 20;

impl Checkpoint {
    /// BLAKE3 of every byte of the file, as this reader sees them. A mapped
    /// file is hashed in place on every core; others are read a piece at a
    /// time.
    ///
    /// # Errors
    /// Read errors of the underlying file or object.
    pub fn file_blake3(&self) -> Result<blake3::Hash> {
        let mut hasher = blake3::Hasher::new();
        if let Some(all) = self.source.slice() {
            // A window at a time, the next one read in meanwhile.
            self.source.will_need(0..WINDOW as u64);
            let mut at = 0u64;
            for window in all.chunks(WINDOW) {
                let next = at + window.len() as u64;
                self.source.will_need(next..next + WINDOW as u64);
                hasher.update_rayon(window);
                at = next;
            }
            return Ok(hasher.finalize());
        }
        if !self.source.is_ranged() {
            // Pieces on this machine (a store entry's frame objects, each
            // mapped alone): a leaf of the tree per thread.
            return super::file_hash::parallel_blake3(self.file_len(), &|r, h| self.feed(r, h));
        }
        self.pieces(|piece| {
            hasher.update_rayon(piece);
            Ok(())
        })?;
        Ok(hasher.finalize())
    }

    /// Writes every byte of the file to `out`, a piece at a time; returns
    /// how many. The bytes are copied as stored, without checking them: a
    /// caller that needs them proven checks [`file_blake3`](Self::file_blake3)
    /// against a digest it trusts, or [`verify`](Self::verify)s.
    ///
    /// # Errors
    /// Read errors, and `out`'s errors as [`Error::Io`] naming `out_name`.
    pub fn copy_to(&self, out: &mut impl Write, out_name: &str) -> Result<u64> {
        let mut n = 0u64;
        self.pieces(|piece| {
            out.write_all(piece).map_err(|e| Error::io("writing", out_name, e))?;
            n += piece.len() as u64;
            Ok(())
        })?;
        Ok(n)
    }

    /// Hands bytes `range` to `h`: borrowed where the source holds them in
    /// one stretch, else read (at most a [`LEAF`](super::file_hash::LEAF)).
    fn feed(&self, range: std::ops::Range<u64>, h: &mut blake3::Hasher) -> Result<()> {
        let mut at = range.start;
        while at < range.end {
            let want = range.end - at;
            if let Some(stretch) = self.source.contiguous(at).filter(|s| !s.is_empty()) {
                let n = stretch.len().min(usize::try_from(want).unwrap_or(usize::MAX));
                h.update(stretch.get(..n).unwrap_or_default());
                at += n as u64;
                continue;
            }
            let n = usize::try_from(want).map_err(|_| Error::Internal("a leaf larger than memory".into()))?;
            let piece = self.source.read(at, n).map_err(|e| Error::io("reading", self.origin(), e))?;
            h.update(&piece);
            at += want;
        }
        Ok(())
    }

    fn pieces(&self, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let len = self.file_len();
        // Remote reads are round trips: fewer, larger ones.
        let step = if self.source.is_ranged() { super::source::PREFETCH_MAX } else { PIECE };
        let mut at = 0u64;
        while at < len {
            // A source served from maps hands out what it holds in one
            // stretch, without a copy.
            if let Some(stretch) = self.source.contiguous(at).filter(|s| !s.is_empty()) {
                let n = stretch.len().min(usize::try_from(len - at).unwrap_or(usize::MAX));
                each(stretch.get(..n).unwrap_or_default())?;
                at += n as u64;
                continue;
            }
            let n = (len - at).min(step);
            let piece = self
                .source
                .read(at, usize::try_from(n).map_err(|_| Error::Internal("a piece larger than memory".into()))?)
                .map_err(|e| Error::io("reading", self.origin(), e))?;
            each(&piece)?;
            at += n;
        }
        Ok(())
    }
}
