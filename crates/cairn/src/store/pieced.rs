//! Reading an entry stored as a manifest: positional reads of its
//! checkpoint file served from the manifest's pieces (inline bytes, shared
//! frame objects, XORs against a frame object), so the checkpoint reader
//! above works unchanged and checks every frame as for any file.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use memmap2::Mmap;

use super::layout;
use super::manifest::{Manifest, Source};
use super::view::{Part, View};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::RangeRead;

/// An entry's checkpoint file, assembled from its manifest's pieces.
pub(crate) struct PiecedRead {
    backend: Arc<dyn Backend>,
    /// The manifest object's backend key.
    key: String,
    /// Its locator, for messages.
    locator: String,
    /// The store's key prefix, for frame objects.
    prefix: String,
    manifest: Manifest,
    /// The XOR piece decoded last: the reader reads a frame at a time, so
    /// the piece a read needs is usually this one.
    decoded: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
    /// Where the backend has files (local disk): the manifest and each
    /// frame object mapped on first use, so reads borrow from the maps.
    local: bool,
    manifest_map: OnceLock<Option<Mmap>>,
    maps: Vec<OnceLock<Option<Mmap>>>,
    /// Contiguous views built for zero-copy tensors, by (offset, length);
    /// kept until the reader is dropped, as the slices handed out borrow
    /// them.
    views: Mutex<HashMap<(u64, usize), Box<View>>>,
}

impl std::fmt::Debug for PiecedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiecedRead").field("key", &self.key).field("pieces", &self.manifest.pieces.len()).finish()
    }
}

fn io_err(e: Error) -> io::Error {
    io::Error::other(e)
}

impl PiecedRead {
    /// Reads the manifest at backend key `key` (of `len` bytes).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged manifest; backend errors.
    pub(crate) fn open(backend: Arc<dyn Backend>, key: &str, len: u64, prefix: &str, locator: &str) -> Result<Self> {
        let manifest = Manifest::decode(len, locator, |o, l| {
            let end = o.saturating_add(l as u64);
            let got = backend.get_range(key, o..end)?;
            if got.len() == l {
                Ok(got.to_vec())
            } else {
                Err(Error::Corrupt {
                    file: locator.to_string(),
                    what: "manifest".into(),
                    offset: o,
                    detail: format!("{} bytes read of {l}", got.len()),
                })
            }
        })?;
        let local = backend.open_file(key)?.is_some();
        let maps = manifest.pieces.iter().map(|_| OnceLock::new()).collect();
        Ok(PiecedRead {
            backend,
            key: key.to_string(),
            locator: locator.to_string(),
            prefix: prefix.to_string(),
            manifest,
            decoded: Mutex::new(None),
            local,
            manifest_map: OnceLock::new(),
            maps,
            views: Mutex::new(HashMap::new()),
        })
    }

    /// A map of the file at backend key `k` (a local backend's file);
    /// `None` where there is none or it cannot be mapped.
    fn map_of(&self, k: &str) -> Option<Mmap> {
        let file = self.backend.open_file(k).ok().flatten()?;
        // SAFETY: store objects are published by rename and never changed
        // in place (frame objects are create-only, named by their content).
        unsafe { Mmap::map(&file) }.ok()
    }

    /// The map of piece `i`'s object: the manifest for inline pieces, the
    /// frame object (or its trashed copy) for frame pieces.
    fn piece_map(&self, i: usize) -> Option<&Mmap> {
        let p = self.manifest.pieces.get(i)?;
        match p.source {
            Source::Inline { .. } => self.manifest_map.get_or_init(|| self.map_of(&self.key)).as_ref(),
            Source::Frame { hash } => self
                .maps
                .get(i)?
                .get_or_init(|| {
                    self.map_of(&format!("{}{}", self.prefix, layout::frame_key(&hash)))
                        .or_else(|| self.map_of(&format!("{}{}", self.prefix, layout::trash_frame_key(&hash))))
                })
                .as_ref(),
            Source::Xor { .. } => None,
        }
    }

    /// The file of piece `i`'s object and the offset of the piece's bytes
    /// in it, on local disk: the manifest for inline pieces, the frame
    /// object (of the piece's length) for frame pieces; `None` for XOR
    /// pieces.
    fn piece_file(&self, i: usize) -> Option<(std::fs::File, u64)> {
        let p = self.manifest.pieces.get(i)?;
        let open = |k: String| self.backend.open_file(&k).ok().flatten();
        match p.source {
            Source::Inline { offset } => Some((open(self.key.clone())?, offset)),
            Source::Frame { hash } => {
                let file = open(format!("{}{}", self.prefix, layout::frame_key(&hash)))
                    .or_else(|| open(format!("{}{}", self.prefix, layout::trash_frame_key(&hash))))?;
                let whole = file.metadata().ok().is_some_and(|m| m.len() == p.len);
                whole.then_some((file, 0))
            }
            Source::Xor { .. } => None,
        }
    }

    /// Builds the view of `offset..offset + len`: each frame object mapped
    /// in its place, the rest copied in (docs/STORE.md, "Shared frames").
    fn build_view(&self, offset: u64, len: usize) -> io::Result<View> {
        let end = offset.saturating_add(len as u64);
        // (piece, offset within it, bytes, its file and offset there).
        let mut spans = Vec::new();
        let mut pos = offset;
        while pos < end {
            let i = self.manifest.piece_at(pos).ok_or_else(|| io::Error::other(format!("no piece at {pos}")))?;
            let start = self.manifest.start(i);
            let plen = self.manifest.pieces.get(i).map_or(0, |p| p.len);
            let n = end.min(start + plen).saturating_sub(pos);
            if n == 0 {
                return Err(io::Error::other(format!("empty piece {i}")));
            }
            let file = self.piece_file(i);
            spans.push((i, pos - start, usize::try_from(n).map_err(io::Error::other)?, file));
            pos += n;
        }
        let parts: Vec<Part<'_>> = spans
            .iter()
            .map(|(_, within, n, file)| Part { len: *n, file: file.as_ref().map(|(f, o)| (f, o + within)) })
            .collect();
        let mut at_of = Vec::with_capacity(spans.len());
        let mut at = 0usize;
        for (i, within, n, _) in &spans {
            at_of.push((at, *i, *within));
            at += n;
        }
        View::build(&parts, |at, out| {
            // Parts in order of their place: found by binary search.
            let (_, i, within) = at_of
                .binary_search_by_key(&at, |(a, ..)| *a)
                .ok()
                .and_then(|k| at_of.get(k).copied())
                .ok_or_else(|| io::Error::other("view part not found"))?;
            self.read_piece(i, within, out)
        })
    }

    /// The manifest read.
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes `range` of frame object `hash`, from `frames/`, or from the
    /// trash should a collection have moved it there since the entry was
    /// written (docs/STORE.md, "Shared frames").
    fn frame_range(&self, hash: &[u8; 32], range: std::ops::Range<u64>) -> Result<bytes::Bytes> {
        let k = format!("{}{}", self.prefix, layout::frame_key(hash));
        match self.backend.get_range(&k, range.clone()) {
            Err(Error::NotFound { .. }) => {
                self.backend.get_range(&format!("{}{}", self.prefix, layout::trash_frame_key(hash)), range)
            }
            other => other,
        }
    }

    /// Damage of piece `i`, as the error a read returns: it reaches the
    /// reader's caller as [`Error::Corrupt`], never as data.
    fn damaged(&self, i: usize, detail: String) -> io::Error {
        io::Error::other(Error::Corrupt {
            file: self.locator.clone(),
            what: format!("manifest piece {i}"),
            offset: self.manifest.start(i),
            detail,
        })
    }

    /// Bytes `range` of frame object `hash` for piece `i`: a frame in
    /// neither `frames/` nor the trash is damage of the entry.
    fn piece_frame_range(&self, i: usize, hash: &[u8; 32], range: std::ops::Range<u64>) -> io::Result<bytes::Bytes> {
        match self.frame_range(hash, range) {
            Ok(b) => Ok(b),
            Err(Error::NotFound { .. }) => {
                let name = blake3::Hash::from(*hash).to_hex();
                Err(self.damaged(i, format!("the shared frame {name} it names is missing")))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Piece `i`, an XOR, decoded: its base frame XOR its payload.
    fn xor_piece(&self, i: usize, base: &[u8; 32], offset: u64, plen: u64, len: u64) -> io::Result<Arc<Vec<u8>>> {
        if let Some((at, bytes)) = crate::util::lock(&self.decoded).as_ref() {
            if *at == i {
                return Ok(Arc::clone(bytes));
            }
        }
        let n = usize::try_from(len).map_err(io::Error::other)?;
        let base_bytes = self.piece_frame_range(i, base, 0..len)?;
        let payload = self.backend.get_range(&self.key, offset..offset.saturating_add(plen)).map_err(io_err)?;
        if base_bytes.len() != n || payload.len() as u64 != plen {
            return Err(self.damaged(i, "its base frame or its XOR payload is short".into()));
        }
        let mut out = base_bytes.to_vec();
        crate::format::apply_delta(crate::format::codec_tag::XOR, &payload, &mut out)
            .map_err(|e| self.damaged(i, format!("its XOR does not decode: {e}")))?;
        let out = Arc::new(out);
        *crate::util::lock(&self.decoded) = Some((i, Arc::clone(&out)));
        Ok(out)
    }
}

impl PiecedRead {
    /// The part `within..within + out.len()` of piece `i` into `out`.
    fn read_piece(&self, i: usize, within: u64, out: &mut [u8]) -> io::Result<()> {
        let Some(p) = self.manifest.pieces.get(i).copied() else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("no piece {i}")));
        };
        let n = out.len() as u64;
        if let Some(mapped) = self.contiguous(self.manifest.start(i) + within).and_then(|m| m.get(..out.len())) {
            out.copy_from_slice(mapped);
            return Ok(());
        }
        let bytes = match p.source {
            Source::Inline { offset: o } => {
                let from = o + within;
                self.backend.get_range(&self.key, from..from + n).map_err(io_err)?
            }
            Source::Frame { hash } => self.piece_frame_range(i, &hash, within..within + n)?,
            Source::Xor { base, offset: o, len: plen } => {
                let piece = self.xor_piece(i, &base, o, plen, p.len)?;
                let from = usize::try_from(within).map_err(io::Error::other)?;
                let part = piece.get(from..from + out.len()).unwrap_or_default();
                bytes::Bytes::copy_from_slice(part)
            }
        };
        if bytes.len() != out.len() {
            let detail = format!("gave {} bytes of {n} (a frame object shorter than its piece?)", bytes.len());
            return Err(self.damaged(i, detail));
        }
        out.copy_from_slice(&bytes);
        Ok(())
    }
}

impl RangeRead for PiecedRead {
    fn len(&self) -> u64 {
        self.manifest.file_len()
    }

    fn is_local(&self) -> bool {
        self.local
    }

    fn contiguous(&self, offset: u64) -> Option<&[u8]> {
        if !self.local {
            return None;
        }
        let i = self.manifest.piece_at(offset)?;
        let p = self.manifest.pieces.get(i)?;
        let within = offset - self.manifest.start(i);
        let (from, to) = match p.source {
            Source::Inline { offset: o } => (o + within, o + p.len),
            Source::Frame { .. } => (within, p.len),
            Source::Xor { .. } => return None,
        };
        let map = self.piece_map(i)?;
        // A frame object of another length is not this piece: no slice, so
        // the read goes the checked way and reports it.
        if matches!(p.source, Source::Frame { .. }) && map.len() as u64 != p.len {
            return None;
        }
        map.get(usize::try_from(from).ok()?..usize::try_from(to).ok()?)
    }

    /// On local disk, a view of frame objects mapped back to back, with
    /// the pieces that cannot be mapped copied in; built once per range.
    fn view(&self, offset: u64, len: usize) -> Option<&[u8]> {
        if let Some(s) = self.contiguous(offset).and_then(|s| s.get(..len)) {
            return Some(s);
        }
        if !self.local || offset.checked_add(len as u64).is_none_or(|e| e > self.len()) {
            return None;
        }
        let mut views = crate::util::lock(&self.views);
        let view = match views.entry((offset, len)) {
            std::collections::hash_map::Entry::Occupied(v) => v.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Box::new(self.build_view(offset, len).ok()?)),
        };
        let (ptr, n) = (view.as_slice().as_ptr(), view.as_slice().len());
        // SAFETY: the view's memory stays mapped until the view is dropped,
        // and views are dropped only with `self` (never removed from the
        // map), so the slice lives as long as the borrow of `self`.
        Some(unsafe { std::slice::from_raw_parts(ptr, n) })
    }

    /// The pieces a read spans are fetched in parallel, each straight into
    /// its part of the result, so memory is the result and a piece per
    /// thread.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use rayon::prelude::*;
        let end = offset.checked_add(len as u64).filter(|e| *e <= self.len());
        let Some(end) = end else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{offset}+{len} is past the end")));
        };
        // The pieces spanned: (piece, offset within it, bytes).
        let mut spans = Vec::new();
        let mut pos = offset;
        while pos < end {
            let Some(i) = self.manifest.piece_at(pos) else {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("no piece at {pos}")));
            };
            let Some(p) = self.manifest.pieces.get(i) else { break };
            let start = self.manifest.start(i);
            let n = end.min(start + p.len) - pos;
            spans.push((i, pos - start, usize::try_from(n).map_err(io::Error::other)?));
            pos += n;
        }
        let mut out = vec![0u8; len];
        let mut parts = Vec::with_capacity(spans.len());
        let mut rest: &mut [u8] = &mut out;
        for &(i, within, n) in &spans {
            let (part, tail) = rest.split_at_mut(n.min(rest.len()));
            parts.push((i, within, part));
            rest = tail;
        }
        if parts.len() == 1 {
            let (i, within, part) = parts.pop().unwrap_or_default();
            self.read_piece(i, within, part)?;
        } else {
            parts.into_par_iter().try_for_each(|(i, within, part)| self.read_piece(i, within, part))?;
        }
        Ok(out)
    }
}
