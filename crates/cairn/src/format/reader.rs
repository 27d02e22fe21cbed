//! Opening and reading checkpoint files.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use super::codec::{self, tag};
use super::delta;
use super::dtype::Element;
use super::fill;
use super::index::{decode_frames, frame_raw_len, ChunkInfo, FrameEntry, Index, FRAME_RECORD_LEN};
use super::layout::{xxh3, Header, Trailer, HEADER_LEN, TRAILER_LEN};
use super::source::{RangeRead, Source};
use super::stats::{LoadStats, StatsCell};
use crate::error::{Error, Result};

/// Frames per rayon thread in one batch of [`Checkpoint::read`]: enough to
/// keep every thread busy while the next batch waits for its checksums.
const MAX_BATCH_PER_THREAD: usize = 2;

/// Content bytes one batch may hold once enough has decoded, if that is
/// more than [`MAX_BATCH_PER_THREAD`] frames per thread: fewer, larger
/// batches wait less on their slowest frame.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// Content bytes a read may take on in one batch before any frame of the
/// chunk has decoded (one frame, if frames are larger): the most a file can
/// make a read allocate beyond what it proved by decoding.
const FIRST_BATCH_BYTES: usize = 16 << 20;

/// Makes room in `out` for `len` elements: to twice its capacity where
/// that stays within `max` (the chunk's length), so repeated batches
/// reallocate rarely, but never to more than `max`. Nothing is written.
fn reserve<T: bytemuck::Pod>(out: &mut Vec<T>, len: usize, max: usize, name: &str) -> Result<()> {
    if len > out.capacity() {
        let want = len.max(out.capacity().saturating_mul(2).min(max));
        out.try_reserve_exact(want - out.len())
            .map_err(|_| Error::InvalidArgument(format!("chunk {name:?}: cannot allocate {want} elements")))?;
    }
    Ok(())
}

/// How to open a checkpoint.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    mmap: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { mmap: true }
    }
}

impl ReadOptions {
    /// Map the file into memory (zero-copy tensors) or use positional reads,
    /// for file systems where mapping misbehaves. Mapping also falls back to
    /// positional reads when the map fails or `CAIRN_NO_MMAP` is set to a
    /// non-empty value. Default = `true`.
    #[must_use]
    pub fn mmap(mut self, on: bool) -> Self {
        self.mmap = on;
        self
    }
}

/// An open checkpoint: its index is decoded and checked; chunk data is read
/// and verified on demand.
#[derive(Debug)]
pub struct Checkpoint {
    pub(crate) source: Source,
    origin: String,
    header: Header,
    trailer: Trailer,
    /// The feature bits the file requires: the header's and, from format
    /// version 2, the trailer's.
    required: u64,
    pub(crate) index: Index,
    /// xxh3-64 of the 64 header bytes and of the 64 trailer bytes as read
    /// at open, so a later copy of the file can be checked against them.
    pub(crate) header_xxh3: u64,
    pub(crate) trailer_xxh3: u64,
    /// Each chunk's frame table, decoded on first use.
    tables: Vec<OnceLock<Result<Vec<FrameEntry>>>>,
    pub(crate) stats: StatsCell,
    /// The checkpoint a delta file's frames refer to, once given.
    base: Option<Arc<Checkpoint>>,
}

impl Checkpoint {
    /// Opens a checkpoint file over a memory map.
    ///
    /// # Errors
    /// [`Error::NotFound`]/[`Error::Io`] if the file cannot be read;
    /// [`Error::Corrupt`] if the header, trailer or index are damaged;
    /// [`Error::Unsupported`] if it needs a newer reader.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &ReadOptions::default())
    }

    /// Opens a checkpoint file with options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        Self::from_file(file, path.display().to_string(), opts)
    }

    /// Opens a checkpoint from a file already open, which `origin` names in
    /// messages. The caller keeps a handle on exactly the bytes checked,
    /// whatever happens to the path afterwards.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub(crate) fn from_file(file: File, origin: String, opts: &ReadOptions) -> Result<Self> {
        let path = origin.as_str();
        let len = file.metadata().map_err(|e| Error::io("reading metadata of", path, e))?.len();
        let use_map = opts.mmap && len > 0 && std::env::var_os("CAIRN_NO_MMAP").is_none_or(|v| v.is_empty());
        // SAFETY: checkpoint files are published by rename and never
        // modified in place; a file truncated by someone else under the map
        // is outside cairn's contract, as for every mmap reader.
        let map = if use_map { unsafe { memmap2::Mmap::map(&file) }.ok() } else { None };
        // A file system that cannot map (some FUSE and network mounts) falls
        // back to positional reads.
        let source = match map {
            Some(map) => Source::Map(map),
            None => Source::File { file, len },
        };
        Self::from_source(source, origin)
    }

    /// Opens a checkpoint held in memory.
    ///
    /// # Errors
    /// As [`open`](Self::open), without the I/O errors.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_source(Source::Bytes(bytes), "<memory>".to_string())
    }

    /// Opens a checkpoint through positional reads of `source` (an object
    /// on a storage backend): the header, trailer and index are read first,
    /// then only the frames asked for. `origin` names it in messages.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_ranged(source: Box<dyn RangeRead>, origin: impl Into<String>) -> Result<Self> {
        Self::from_source(Source::Ranged(source, Default::default()), origin.into())
    }

    fn from_source(source: Source, origin: String) -> Result<Self> {
        let len = source.len();
        let min = (HEADER_LEN + TRAILER_LEN) as u64;
        if len < min {
            return Err(Error::Corrupt {
                file: origin,
                what: "file".into(),
                offset: len,
                detail: format!("{len} bytes is shorter than the {min}-byte minimum (truncated?)"),
            });
        }
        let io = |e| Error::io("reading", origin.clone(), e);
        let header_bytes = source.read(0, HEADER_LEN).map_err(io)?;
        let header = Header::decode(&header_bytes, &origin)?;
        let header_xxh3 = xxh3(&header_bytes);
        let trailer_bytes = source.read(len - TRAILER_LEN as u64, TRAILER_LEN).map_err(io)?;
        let trailer = Trailer::decode(&trailer_bytes, header.version, len, &origin)?;
        let required = header.required | trailer.required;
        let trailer_xxh3 = xxh3(&trailer_bytes);
        // The index length was checked against the limit and the file size.
        let index_bytes = source.read(trailer.index_offset, trailer.index_len as usize).map_err(io)?;
        if xxh3(&index_bytes) != trailer.index_checksum {
            return Err(Error::Corrupt {
                file: origin,
                what: "index".into(),
                offset: trailer.index_offset,
                detail: "index checksum mismatch".into(),
            });
        }
        let index = Index::decode(&index_bytes, trailer.index_offset, header.frame_size, required, &origin)?;
        let tables = index.chunks.iter().map(|_| OnceLock::new()).collect();
        Ok(Checkpoint {
            source,
            origin,
            header,
            trailer,
            required,
            index,
            header_xxh3,
            trailer_xxh3,
            tables,
            stats: StatsCell::default(),
            base: None,
        })
    }

    /// Opens a delta file together with the checkpoint it was written
    /// against (see [`with_base`](Self::with_base)).
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`with_base`](Self::with_base).
    pub fn open_with_base(path: impl AsRef<Path>, base: Arc<Checkpoint>) -> Result<Self> {
        Self::open(path)?.with_base(base)
    }

    /// Gives a delta file the checkpoint it was written against, which its
    /// unchanged and XOR frames are read from. A file that is not a delta
    /// file does not need a base and ignores it.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if `base` is not the checkpoint this file records
    /// (another file digest, or the same content stored in other frames);
    /// [`Error::InvalidArgument`] if `base` is itself a delta file.
    pub fn with_base(mut self, base: Arc<Checkpoint>) -> Result<Self> {
        let Some(want) = self.index.base else {
            return Ok(self);
        };
        if base.index.base.is_some() {
            return Err(Error::InvalidArgument(format!(
                "{} is a delta file; the base of a delta file must be a full checkpoint",
                base.origin
            )));
        }
        if want.digest != base.digest()
            || want.index_checksum != base.trailer.index_checksum
            || base.frame_size() != self.frame_size()
        {
            return Err(Error::Corrupt {
                file: self.origin.clone(),
                what: "base".into(),
                offset: self.trailer.index_offset,
                detail: format!(
                    "written against the checkpoint with file digest {}, not {} (file digest {})",
                    hex(&want.digest),
                    base.origin,
                    hex(&base.digest())
                ),
            });
        }
        self.base = Some(base);
        Ok(self)
    }

    /// The file digest of the checkpoint this delta file was written
    /// against; `None` for a full checkpoint.
    pub fn base_digest(&self) -> Option<[u8; 32]> {
        self.index.base.map(|b| b.digest)
    }

    /// Where the checkpoint was opened from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Format version of the file.
    pub fn format_version(&self) -> u16 {
        self.header.version
    }

    /// Frame size the file was written with.
    pub fn frame_size(&self) -> u32 {
        self.header.frame_size
    }

    /// File length in bytes.
    pub fn file_len(&self) -> u64 {
        self.source.len()
    }

    /// File offset of the index (the end of the chunk data).
    pub fn index_offset(&self) -> u64 {
        self.trailer.index_offset
    }

    /// When the checkpoint was written.
    pub fn created_at(&self) -> SystemTime {
        let us = self.index.created_at_us;
        let d = Duration::from_micros(us.unsigned_abs());
        if us >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }

    /// The step recorded by the writer, if any.
    pub fn step(&self) -> Option<u64> {
        self.index.step
    }

    /// The writing library and version, e.g. `cairn 0.1.0`.
    pub fn producer(&self) -> &str {
        &self.index.producer
    }

    /// User metadata.
    pub fn metadata(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.index.metadata
    }

    /// BLAKE3 digest of the logical content, as stored in the index.
    pub fn digest(&self) -> [u8; 32] {
        self.index.digest
    }

    /// All chunks, in file order.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.index.chunks
    }

    /// The chunk with this name, if any.
    pub fn chunk(&self, name: &str) -> Option<&ChunkInfo> {
        self.index.find(name)
    }

    /// What reads so far have cost.
    pub fn stats(&self) -> LoadStats {
        self.stats.snapshot()
    }

    pub(crate) fn entry(&self, name: &str) -> Result<&ChunkInfo> {
        self.chunk(name).ok_or_else(|| Error::ChunkNotFound { file: self.origin.clone(), name: name.to_string() })
    }

    /// A chunk's frame table, decoded and validated on first use.
    /// The chunk `name`, which must be a tensor of `T`'s dtype.
    fn typed_entry<T: Element>(&self, name: &str) -> Result<&ChunkInfo> {
        let c = self.entry(name)?;
        if c.dtype == Some(T::DTYPE) {
            return Ok(c);
        }
        let stored = c.dtype.map_or("untyped bytes", |d| d.name());
        Err(Error::Mismatch { name: name.into(), detail: format!("stored as {stored}, asked for {}", T::DTYPE) })
    }

    pub(crate) fn frames_of(&self, c: &ChunkInfo) -> Result<&[FrameEntry]> {
        let Some(slot) = self.tables.get(c.ordinal) else {
            return Err(Error::InvalidArgument(format!("chunk {:?} is not from {}", c.name, self.origin)));
        };
        if slot.get().is_none() {
            // The table's length was checked against the index at open.
            let len = (c.frame_count as usize).saturating_mul(FRAME_RECORD_LEN);
            let bytes =
                self.source.read(c.table_offset, len).map_err(|e| Error::io("reading", self.origin.clone(), e))?;
            let decoded = decode_frames(&bytes, c, self.header.frame_size, self.required, &self.origin);
            let _ = slot.set(decoded);
        }
        match slot.get() {
            Some(Ok(frames)) => Ok(frames),
            Some(Err(e)) => Err(e.duplicate()),
            None => Err(Error::Internal(format!("chunk {:?}: frame table unavailable", c.name))),
        }
    }

    pub(crate) fn corrupt(&self, c: &ChunkInfo, i: usize, offset: u64, detail: String) -> Error {
        Error::Corrupt { file: self.origin.clone(), what: format!("chunk {:?} frame {i}", c.name), offset, detail }
    }

    /// A frame's stored bytes, unchecked, counted in the read stats.
    fn stored_bytes(&self, f: &FrameEntry) -> Result<Cow<'_, [u8]>> {
        let t = Instant::now();
        let stored = self
            .source
            .read(f.offset, f.stored_len as usize)
            .map_err(|e| Error::io("reading", self.origin.clone(), e))?;
        self.stats.read(u64::from(f.stored_len), t);
        Ok(stored)
    }

    /// Reads a frame's stored bytes and checks their checksum.
    pub(crate) fn stored_frame(&self, c: &ChunkInfo, i: usize, f: &FrameEntry) -> Result<Cow<'_, [u8]>> {
        let stored = self.stored_bytes(f)?;
        let t = Instant::now();
        let ok = xxh3(&stored) == f.checksum;
        self.stats.verified(t);
        if ok {
            Ok(stored)
        } else {
            Err(self.corrupt(c, i, f.offset, "frame checksum mismatch".into()))
        }
    }

    /// Reads, checks and decodes frame `i` of `c` into `dst`.
    pub(crate) fn read_frame(&self, c: &ChunkInfo, i: usize, f: &FrameEntry, dst: &mut [u8]) -> Result<()> {
        let stored = self.stored_frame(c, i, f)?;
        self.decode_frame(c, i, f, &stored, dst)
    }

    /// Decodes frame `i` of `c`, whose checksum has passed, into `dst`.
    pub(crate) fn decode_frame(
        &self,
        c: &ChunkInfo,
        i: usize,
        f: &FrameEntry,
        stored: &[u8],
        dst: &mut [u8],
    ) -> Result<()> {
        if delta::is_delta(f.codec) {
            return self.decode_delta(c, i, f, stored, dst);
        }
        let t = Instant::now();
        codec::decode(stored, f.codec, c.shuffle_elem(), dst).map_err(|d| self.corrupt(c, i, f.offset, d))?;
        self.stats.decompressed(dst.len() as u64, t);
        Ok(())
    }

    /// As [`decode_frame`](Self::decode_frame), into bytes that need not be
    /// initialised: a `PLANES` frame writes each byte once, others are
    /// zeroed first.
    fn decode_frame_uninit(
        &self,
        c: &ChunkInfo,
        i: usize,
        f: &FrameEntry,
        stored: &[u8],
        dst: &mut [MaybeUninit<u8>],
    ) -> Result<()> {
        if f.codec != tag::PLANES {
            return self.decode_frame(c, i, f, stored, fill::zeroed(dst));
        }
        let t = Instant::now();
        codec::decode_planes(stored, c.shuffle_elem(), dst).map_err(|d| self.corrupt(c, i, f.offset, d))?;
        self.stats.decompressed(dst.len() as u64, t);
        Ok(())
    }

    /// Decodes a delta frame: reads (and checks) the base's frame at the
    /// same position into `dst`, then applies the difference.
    fn decode_delta(&self, c: &ChunkInfo, i: usize, f: &FrameEntry, stored: &[u8], dst: &mut [u8]) -> Result<()> {
        let Some(base) = self.base.as_deref() else {
            let digest = self.index.base.map(|b| hex(&b.digest)).unwrap_or_default();
            return Err(Error::BaseNeeded { file: self.origin.clone(), digest });
        };
        let bad = |d: String| self.corrupt(c, i, f.offset, d);
        let (r, payload) = delta::BaseRef::split(stored).map_err(bad)?;
        let bc =
            base.chunk(&c.name).ok_or_else(|| bad(format!("the base {} has no chunk {:?}", base.origin, c.name)))?;
        let bf = base.frames_of(bc)?.get(i).copied();
        let raw = frame_raw_len(bc.raw_len, base.frame_size(), i as u64);
        let bf = bf
            .filter(|bf| r.matches(bf) && raw == dst.len() as u64)
            .ok_or_else(|| bad(format!("frame {i} of the base {} is not the one this frame refers to", base.origin)))?;
        base.read_frame(bc, i, &bf, dst).map_err(|e| match e {
            Error::Corrupt { file, what, offset, detail } => {
                bad(format!("the base frame it refers to is damaged ({what} at offset {offset} of {file}: {detail})"))
            }
            other => other,
        })?;
        let t = Instant::now();
        delta::apply(f.codec, payload, dst).map_err(bad)?;
        self.stats.decompressed(dst.len() as u64, t);
        Ok(())
    }

    /// Reads raw frame `i` of `c` into the uninitialised `dst`, which is
    /// exactly its length, checksumming it as it is copied (one pass over
    /// the stored bytes). On success every byte of `dst` is written.
    fn fill_raw_frame(&self, c: &ChunkInfo, i: usize, f: &FrameEntry, dst: &mut [MaybeUninit<u8>]) -> Result<()> {
        let stored = self.stored_bytes(f)?;
        let t = Instant::now();
        let sum = fill::copy_hashed(&stored, dst);
        self.stats.verified(t);
        self.stats.decompressed(dst.len() as u64, t);
        if sum == Some(f.checksum) {
            Ok(())
        } else {
            Err(self.corrupt(c, i, f.offset, "frame checksum mismatch".into()))
        }
    }

    /// Fetches the chunk's stored frames in one ranged read where the source
    /// is remote; nothing for local sources.
    fn prefetch_chunk(&self, frames: &[FrameEntry]) -> Result<()> {
        let start = frames.iter().map(|f| f.offset).min().unwrap_or(0);
        let end = frames.iter().map(|f| f.offset.saturating_add(u64::from(f.stored_len))).max().unwrap_or(0);
        self.source.prefetch(start..end).map_err(|e| Error::io("reading", self.origin.clone(), e))
    }

    /// Reads a chunk into `dst`, which must be exactly its length. Frames are
    /// checked and decompressed in parallel.
    ///
    /// # Errors
    /// [`Error::ChunkNotFound`]; [`Error::Mismatch`] if `dst` has the wrong
    /// length; [`Error::Corrupt`] naming the frame on a checksum or decode
    /// failure.
    pub fn read_into(&self, name: &str, dst: &mut [u8]) -> Result<()> {
        let wall = Instant::now();
        let c = self.entry(name)?;
        if dst.len() as u64 != c.raw_len {
            return Err(Error::Mismatch {
                name: name.into(),
                detail: format!("buffer holds {} bytes, chunk has {}", dst.len(), c.raw_len),
            });
        }
        let fs = self.header.frame_size as usize;
        let frames = self.frames_of(c)?;
        // From object storage, one ranged get for the chunk's frames instead
        // of one per frame.
        self.prefetch_chunk(frames)?;
        let result = dst
            .par_chunks_mut(fs)
            .zip(frames.par_iter())
            .enumerate()
            .try_for_each(|(i, (d, f))| self.read_frame(c, i, f, d));
        self.source.forget();
        self.stats.wall(wall);
        result
    }

    /// Reads a whole chunk, decompressed and checked. Memory follows what
    /// has been checked: the result grows a batch of frames at a time, and
    /// a batch is no larger than what the batches before it proved by
    /// decoding (the first at most 16 MiB, or one frame), so a small file
    /// that declares a huge chunk costs at most that before it is refused.
    ///
    /// # Errors
    /// As [`read_into`](Self::read_into); [`Error::InvalidArgument`] if the
    /// chunk is too large to hold in memory.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.read_vec(self.entry(name)?)
    }

    /// Streams a chunk to `out` a frame at a time, checked, with memory of
    /// one frame. Returns the bytes written.
    ///
    /// # Errors
    /// As [`read_into`](Self::read_into), plus `out`'s errors as [`Error::Io`].
    pub fn read_to(&self, name: &str, out: &mut impl Write) -> Result<u64> {
        let wall = Instant::now();
        let c = self.entry(name)?;
        let mut buf = Vec::new();
        let mut total = 0u64;
        for (i, f) in self.frames_of(c)?.iter().enumerate() {
            let raw = frame_raw_len(c.raw_len, self.header.frame_size, i as u64) as usize;
            buf.resize(raw, 0);
            self.read_frame(c, i, f, &mut buf)?;
            out.write_all(&buf).map_err(|e| Error::Io { op: "writing out chunk", path: name.into(), source: e })?;
            total += raw as u64;
        }
        self.stats.wall(wall);
        Ok(total)
    }

    /// A zero-copy view of a tensor stored uncompressed, straight from the
    /// memory map. No checksum is checked (that would read the whole tensor);
    /// use [`read_tensor`](Self::read_tensor) or [`verify`](Self::verify)
    /// when the bytes must be proven intact.
    ///
    /// # Errors
    /// [`Error::Mismatch`] if the dtype differs from `T`, the chunk is
    /// compressed, the file is not mapped, or the data is misaligned for `T`.
    pub fn tensor<T: Element>(&self, name: &str) -> Result<&[T]> {
        let c = self.typed_entry::<T>(name)?;
        let mismatch = |detail: String| Error::Mismatch { name: name.into(), detail };
        if !c.is_raw() {
            return Err(mismatch("stored compressed; use read_tensor".into()));
        }
        let len = usize::try_from(c.raw_len).map_err(|_| mismatch("too large".into()))?;
        if c.data_offset.checked_add(c.raw_len).is_none_or(|end| end > self.source.len()) {
            return Err(mismatch("data past end of file".into()));
        }
        let Some(bytes) = self.source.view(c.data_offset, len) else {
            return Err(mismatch("file is not memory-mapped; use read_tensor".into()));
        };
        bytemuck::try_cast_slice(bytes).map_err(|e| mismatch(format!("cannot view as {}: {e}", T::DTYPE)))
    }

    /// Reads a tensor into a new vector, decompressing and checking it.
    ///
    /// # Errors
    /// [`Error::Mismatch`] if the dtype differs from `T`; as [`read_into`](Self::read_into).
    pub fn read_tensor<T: Element>(&self, name: &str) -> Result<Vec<T>> {
        self.read_vec(self.typed_entry::<T>(name)?)
    }

    /// Reads chunk `c` into a new vector of `T`, growing it as batches of
    /// frames pass their checksums (see [`read`](Self::read)). Each batch
    /// is read into the vector's spare capacity in parallel, never zeroed
    /// first: a raw frame is checksummed as it is copied, a compressed one
    /// is checksummed and then decoded, and the vector's length takes in
    /// the batch only once all its frames passed. Until frames have decoded a
    /// batch holds [`FIRST_BATCH_BYTES`] of content (or one frame), after
    /// that no more than what has decoded so far, and never more than
    /// [`MAX_BATCH_BYTES`] or [`MAX_BATCH_PER_THREAD`] frames per thread,
    /// whichever is larger. So a hostile length costs one batch, and an
    /// honest chunk reaches full parallelism within a few batches, its
    /// vector reallocated a logarithmic number of times.
    fn read_vec<T: bytemuck::Pod>(&self, c: &ChunkInfo) -> Result<Vec<T>> {
        let wall = Instant::now();
        let elem = std::mem::size_of::<T>().max(1);
        let total =
            usize::try_from(c.raw_len).map_err(|_| Error::InvalidArgument(format!("chunk {:?} too large", c.name)))?;
        if total % elem != 0 {
            return Err(Error::Mismatch {
                name: c.name.clone(),
                detail: format!("{total} bytes are not a whole number of {elem}-byte elements"),
            });
        }
        let fs = self.header.frame_size as usize;
        if !fs.is_multiple_of(elem) {
            return Err(Error::Internal(format!("frame size {fs} is not a multiple of {elem}-byte elements")));
        }
        let frames = self.frames_of(c)?;
        self.prefetch_chunk(frames)?;
        // A chunk too large to fetch in one ranged read is fetched a batch
        // at a time (a batch holds at most 64 MiB of frames of 1 MiB).
        let span = |fs: &[FrameEntry]| match (fs.first(), fs.last()) {
            (Some(a), Some(b)) => b.offset.saturating_add(u64::from(b.stored_len)).saturating_sub(a.offset),
            _ => 0,
        };
        let per_batch_fetch = self.source.is_ranged() && span(frames) > super::source::PREFETCH_MAX;
        let max_batch =
            rayon::current_num_threads().saturating_mul(MAX_BATCH_PER_THREAD).max(MAX_BATCH_BYTES / fs).max(1);
        let mut out: Vec<T> = Vec::new();
        let mut done = 0usize;
        let result = (|| {
            while done < frames.len() {
                let decoded = done.saturating_mul(fs).min(total);
                let n = (decoded.max(FIRST_BATCH_BYTES) / fs).clamp(1, max_batch).min(frames.len() - done);
                let batch = frames.get(done..done + n).unwrap_or_default();
                if per_batch_fetch {
                    self.prefetch_chunk(batch)?;
                }
                // The kernel reads the next batch's frames in meanwhile.
                if let Some(next) = frames.get(done + n) {
                    self.source.will_need(next.offset..next.offset.saturating_add(MAX_BATCH_BYTES as u64));
                }
                // Compressed frames are checked before any allocation sized
                // by them (a few stored bytes can claim a whole frame); a
                // raw frame's bytes are in the file, and are checked as
                // they are copied.
                let checked: Vec<Result<Option<Cow<'_, [u8]>>>> = batch
                    .par_iter()
                    .enumerate()
                    .map(|(k, f)| {
                        let raw = frame_raw_len(c.raw_len, self.header.frame_size, (done + k) as u64);
                        let stored_raw = f.codec == codec::tag::NONE && u64::from(f.stored_len) == raw;
                        if stored_raw {
                            Ok(None)
                        } else {
                            self.stored_frame(c, done + k, f).map(Some)
                        }
                    })
                    .collect();
                let checked = checked.into_iter().collect::<Result<Vec<_>>>()?;
                let lo = decoded;
                let hi = done.saturating_add(n).saturating_mul(fs).min(total);
                reserve(&mut out, hi / elem, total / elem, &c.name)?;
                let Some(dst) = fill::spare_bytes(&mut out).get_mut(..hi - lo) else {
                    return Err(Error::Internal(format!("chunk {:?}: frames {done}.. out of range", c.name)));
                };
                let filled: Vec<Result<()>> = dst
                    .par_chunks_mut(fs)
                    .zip(batch.par_iter().zip(checked.par_iter()))
                    .enumerate()
                    .map(|(k, (d, (f, stored)))| match stored {
                        Some(stored) => self.decode_frame_uninit(c, done + k, f, stored, d),
                        None => self.fill_raw_frame(c, done + k, f, d),
                    })
                    .collect();
                // The first damaged frame in file order is the one reported
                // (compressed frames before raw ones).
                filled.into_iter().collect::<Result<()>>()?;
                // SAFETY: `fill_frame` succeeded for every frame of the
                // batch, so bytes `lo..hi` (frame size is a power of two
                // and a multiple of the element size, so `lo / elem` is
                // `out.len()`) are initialised, and `hi / elem` is within
                // the capacity `reserve` made.
                unsafe { out.set_len(hi / elem) };
                done += n;
            }
            Ok(())
        })();
        self.source.forget();
        self.stats.wall(wall);
        result.map(|()| out)
    }

    /// Reads a chunk written with `add_serde` (postcard).
    ///
    /// # Errors
    /// [`Error::Serde`] if it does not decode as `T`; as [`read`](Self::read).
    pub fn read_serde<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        postcard::from_bytes(&bytes).map_err(|e| Error::Serde { name: name.into(), detail: e.to_string() })
    }

    /// Reads a chunk written with `add_json`.
    ///
    /// # Errors
    /// [`Error::Serde`] if it does not decode as `T`; as [`read`](Self::read).
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Serde { name: name.into(), detail: e.to_string() })
    }

    pub(crate) fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }
}

/// Lower-case hex of a digest, for messages.
pub(crate) fn hex(digest: &[u8; 32]) -> String {
    blake3::Hash::from(*digest).to_hex().to_string()
}
