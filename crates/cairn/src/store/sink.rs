//! Where [`Store::save_with`](super::Store::save_with) writes: a checkpoint
//! streamed into the backend's object writer (a temp file beside the entry
//! on local disk, a multipart upload on object storage), hashed as it goes
//! so that the entry's digest needs no second pass.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::manifest::{self, Piece};
use crate::backend::{Backend, ObjectWriter};
use crate::error::{Error, Result};
use crate::format::{FrameAt, Sink};

/// Small writes (frame padding, the trailer) are gathered up to this size.
const GATHER: usize = 256 << 10;

/// Buffers this large are hashed on the rayon pool: BLAKE3 splits them
/// across threads; smaller ones are not worth the hand-off.
const PARALLEL_HASH: usize = 1 << 20;

/// Frames this large are shared between entries (docs/STORE.md, "Shared frames");
/// smaller ones stay in the entry's own object.
pub(crate) const SHARE_MIN: usize = 64 << 10;

/// After a frame of a chunk changed too much for an XOR, the chunk's next
/// frames up to this many are stored whole without reading their bases
/// (a read each, a round trip on object storage): a tensor that changed
/// everywhere, as in a training step, costs one base read in this many
/// frames, while sparse changes, whose XORs keep passing, are all tried.
const XOR_RETRY_EVERY: u64 = 8;

/// The longest inline piece of a manifest.
const MAX_INLINE_PIECE: u64 = 64 << 20;

/// A sink that shares frames: where frame objects go, and the manifest
/// being built.
struct Sharing {
    backend: Arc<dyn Backend>,
    /// The store's key prefix.
    prefix: String,
    pieces: Vec<Piece>,
    /// Where in the object the current run of inline bytes started.
    run_start: u64,
    /// Frame objects this save names: found, or put (each durable before
    /// the commit, which waits for the puts).
    known: HashSet<[u8; 32]>,
    /// The frame objects this save creates, put from worker threads.
    puts: super::frame_put::FramePuts,
    /// The frames of the key's latest entry: those it names, and those new
    /// frames may be XORed against; looked up on the first shared frame
    /// (a small save never reads the key's index for it).
    bases: Option<super::delta_base::Bases>,
    find_bases: Option<FindBases>,
    /// Per chunk, the frame from which XORs are tried again (see
    /// [`XOR_RETRY_EVERY`]).
    xor_from: std::collections::HashMap<String, u64>,
    /// xxh3-64 of every byte written to the object, for the manifest's
    /// inline checksum.
    inline: Box<xxhash_rust::xxh3::Xxh3>,
    /// The save's lease: taken before the first frame is looked at.
    lease: Arc<super::save_lease::SaveLease>,
}

/// Looks up the bases of a save (see `Store::delta_bases`).
pub(crate) type FindBases = Box<dyn FnOnce() -> super::delta_base::Bases + Send>;

/// A checkpoint being streamed into a store entry's data object. Nothing is
/// visible before the checkpoint writer's `finish`; a sink dropped before
/// that leaves nothing behind (the object writer's contract).
pub struct EntrySink {
    writer: Option<Box<dyn ObjectWriter>>,
    /// The object's locator, for messages.
    target: String,
    hasher: blake3::Hasher,
    len: u64,
    buf: Vec<u8>,
    /// Whether large writes are hashed on rayon's pool (all cores) or on
    /// the writing thread.
    parallel_hash: bool,
    /// Bytes written into the object (fewer than `len` once frames are
    /// shared).
    obj_len: u64,
    share: Option<Sharing>,
}

impl std::fmt::Debug for EntrySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntrySink").field("target", &self.target).field("len", &self.len).finish_non_exhaustive()
    }
}

/// What a committed [`EntrySink`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// Its length in bytes.
    pub len: u64,
    /// BLAKE3 of the bytes, in hex.
    pub digest: String,
    /// Bytes the save added to the store: its own object and the shared
    /// frames it created (equal to `len` for a save that shares nothing).
    pub added: u64,
}

impl EntrySink {
    /// A sink into `writer`. `parallel_hash` lets large writes be hashed on
    /// rayon's global pool; a save limited to one encoding thread (a
    /// background save that leaves the caller's cores alone) hashes on the
    /// writing thread instead.
    pub(crate) fn new(writer: Box<dyn ObjectWriter>, target: String, parallel_hash: bool) -> Self {
        EntrySink {
            writer: Some(writer),
            target,
            hasher: blake3::Hasher::new(),
            len: 0,
            buf: Vec::new(),
            parallel_hash,
            obj_len: 0,
            share: None,
        }
    }

    /// Makes the sink share frames of [`SHARE_MIN`] bytes and more through
    /// `backend`'s `frames/` (below `prefix`): the object becomes a
    /// manifest once one is shared.
    pub(crate) fn sharing(
        mut self,
        backend: Arc<dyn Backend>,
        prefix: &str,
        find_bases: FindBases,
        lease: Arc<super::save_lease::SaveLease>,
    ) -> Self {
        self.share = Some(Sharing {
            puts: super::frame_put::FramePuts::new(backend.clone()),
            backend,
            prefix: prefix.to_string(),
            pieces: Vec::new(),
            run_start: 0,
            known: HashSet::new(),
            bases: None,
            find_bases: Some(find_bases),
            xor_from: std::collections::HashMap::new(),
            inline: Box::default(),
            lease,
        });
        self
    }

    /// The frame (raw, `at`) as an XOR against the same frame of the key's
    /// latest entry, when that frame is a whole shared frame of the same
    /// length and the compressed difference is at most half the frame:
    /// the base's hash and the lz4 block.
    fn xor_payload(&mut self, stored: &[u8], at: &FrameAt<'_>) -> io::Result<Option<([u8; 32], Vec<u8>)>> {
        if !at.raw {
            return Ok(None);
        }
        let Some(sh) = self.share.as_mut() else { return Ok(None) };
        let Some(base) = sh.bases.as_ref().and_then(|b| b.get(at.chunk, at.index)) else {
            return Ok(None);
        };
        if base.len != stored.len() as u64 || sh.xor_from.get(at.chunk).is_some_and(|from| at.index < *from) {
            return Ok(None);
        }
        let fetch = |k: String| sh.backend.get(&format!("{}{k}", sh.prefix));
        let bytes = match fetch(super::layout::frame_key(&base.hash)) {
            Err(Error::NotFound { .. }) => fetch(super::layout::trash_frame_key(&base.hash)),
            other => other,
        };
        let Ok(bytes) = bytes else { return Ok(None) };
        if bytes.len() != stored.len() || bytes.as_ref() == stored {
            return Ok(None);
        }
        let packed = crate::format::xor_block(stored, &bytes).filter(|p| p.len() <= stored.len() / 2);
        if packed.is_none() {
            sh.xor_from.insert(at.chunk.to_string(), at.index + XOR_RETRY_EVERY);
        }
        Ok(packed.map(|p| (base.hash, p)))
    }

    /// The manifest's generation: 0 without XOR pieces, else that of the
    /// bases they were taken against.
    fn generation(&self) -> u64 {
        let Some(sh) = self.share.as_ref() else { return 0 };
        let xors = sh.pieces.iter().any(|p| matches!(p.source, manifest::Source::Xor { .. }));
        match &sh.bases {
            Some(b) if xors => b.generation,
            _ => 0,
        }
    }

    /// Appends to the object itself.
    fn write_object(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the entry's upload already failed"));
        };
        if let Err(e) = w.write_all(bytes) {
            // The upload is in an unknown state: give it up now.
            if let Some(w) = self.writer.take() {
                let _ = w.abort();
            }
            return Err(e);
        }
        self.obj_len += bytes.len() as u64;
        if let Some(sh) = self.share.as_mut() {
            sh.inline.update(bytes);
        }
        Ok(())
    }

    /// Counts bytes of the checkpoint file, hashing them.
    fn hash_logical(&mut self, bytes: &[u8]) {
        if self.parallel_hash && bytes.len() >= PARALLEL_HASH {
            self.hasher.update_rayon(bytes);
        } else {
            self.hasher.update(bytes);
        }
        self.len += bytes.len() as u64;
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_object(bytes)?;
        self.hash_logical(bytes);
        Ok(())
    }

    /// Ends the current run of inline bytes as pieces of the manifest.
    fn close_run(&mut self) {
        let end = self.obj_len;
        let Some(sh) = self.share.as_mut() else { return };
        let mut at = sh.run_start;
        while at < end {
            let len = (end - at).min(MAX_INLINE_PIECE);
            sh.pieces.push(Piece { len, source: manifest::Source::Inline { offset: at } });
            at += len;
        }
        sh.run_start = end;
    }

    /// Stores a frame as a shared frame object (unless the store holds it
    /// already) and names it in the manifest.
    fn share_frame(&mut self, stored: &[u8], at: &FrameAt<'_>) -> io::Result<()> {
        // Before the first base or frame object is looked at: a collection
        // then keeps every frame this save may name (docs/STORE.md, "Shared frames").
        if let Some(sh) = self.share.as_ref() {
            sh.lease.ensure().map_err(io::Error::other)?;
        }
        self.flush_buf()?;
        self.close_run();
        let hash = if self.parallel_hash && stored.len() >= PARALLEL_HASH {
            *blake3::Hasher::new().update_rayon(stored).finalize().as_bytes()
        } else {
            *blake3::hash(stored).as_bytes()
        };
        let Some(sh) = self.share.as_mut() else {
            return Err(io::Error::other("sharing a frame from a sink that does not share"));
        };
        if sh.bases.is_none() {
            sh.bases = Some(sh.find_bases.take().map(|find| find()).unwrap_or_default());
        }
        // A frame this save or the key's latest entry already names is
        // named again without a look at the backend (a round trip each on
        // object storage) and without reading a base to XOR against.
        let named = sh.known.contains(&hash) || sh.bases.as_ref().is_some_and(|b| b.names.contains(&hash));
        if !named && self.share_as_xor(stored, at)? {
            return Ok(());
        }
        let Some(sh) = self.share.as_mut() else {
            return Err(io::Error::other("sharing a frame from a sink that does not share"));
        };
        if !named {
            // Durable before the manifest is: `commit` waits for the puts.
            let k = format!("{}{}", sh.prefix, super::layout::frame_key(&hash));
            sh.puts.submit(k, bytes::Bytes::copy_from_slice(stored)).map_err(io::Error::other)?;
        }
        sh.known.insert(hash);
        sh.pieces.push(Piece { len: stored.len() as u64, source: manifest::Source::Frame { hash } });
        self.hash_logical(stored);
        Ok(())
    }

    /// Stores the frame as an XOR piece where [`xor_payload`](Self::xor_payload)
    /// finds it small; whether it did.
    fn share_as_xor(&mut self, stored: &[u8], at: &FrameAt<'_>) -> io::Result<bool> {
        if let Some((base, payload)) = self.xor_payload(stored, at)? {
            let offset = self.obj_len;
            self.write_object(&payload)?;
            let end = self.obj_len;
            if let Some(sh) = self.share.as_mut() {
                let source = manifest::Source::Xor { base, offset, len: payload.len() as u64 };
                sh.pieces.push(Piece { len: stored.len() as u64, source });
                sh.run_start = end;
            }
            self.hash_logical(stored);
            return Ok(true);
        }
        Ok(false)
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let r = self.put(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }
}

impl Sink for EntrySink {
    type Output = Stored;

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() <= GATHER {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(GATHER);
            }
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_buf()?;
        if bytes.len() < GATHER {
            self.buf.extend_from_slice(bytes);
            Ok(())
        } else {
            self.put(bytes)
        }
    }

    fn write_frame(&mut self, stored: &[u8], at: &FrameAt<'_>) -> io::Result<()> {
        if self.share.is_some() && stored.len() >= SHARE_MIN {
            self.share_frame(stored, at)
        } else {
            self.write_all(stored)
        }
    }

    fn describe(&self) -> PathBuf {
        PathBuf::from(&self.target)
    }

    fn commit(mut self) -> Result<Stored> {
        let upload_err = |target: &str, e: io::Error| Error::Backend {
            op: "uploading",
            what: target.to_string(),
            source: Box::new(e),
        };
        self.flush_buf().map_err(|e| upload_err(&self.target, e))?;
        // Every frame object the manifest names is durable before the
        // manifest is written.
        let frames_added = match self.share.as_mut() {
            Some(sh) => sh.puts.finish()?,
            None => 0,
        };
        let shared = self.share.as_ref().is_some_and(|sh| !sh.pieces.is_empty());
        if shared {
            self.close_run();
            let pieces = self.share.as_ref().map(|sh| sh.pieces.clone()).unwrap_or_default();
            let inline_sum = self.share.as_ref().map_or(0, |sh| sh.inline.digest());
            let table = manifest::encode_table(&pieces, self.obj_len, self.generation(), inline_sum);
            self.write_object(&table).map_err(|e| upload_err(&self.target, e))?;
        }
        let Some(w) = self.writer.take() else {
            return Err(Error::Internal(format!("{}: the upload was given up", self.target)));
        };
        w.finish()?;
        let added = self.obj_len + frames_added;
        Ok(Stored { len: self.len, digest: self.hasher.finalize().to_hex().to_string(), added })
    }
}
