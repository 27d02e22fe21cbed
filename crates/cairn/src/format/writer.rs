//! The streaming checkpoint writer.
//!
//! Chunks are cut into frames; a window of frames is hashed, compressed and
//! checksummed on the rayon pool while the previous window is written, so
//! memory stays at about two windows however large the checkpoint is.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::codec::Compression;
use super::digest;
use super::dtype::{ChunkKind, Element};
use super::index::{file_digest, BaseId, ChunkInfo, FrameEntry, Index};
use super::layout::{features, frame_size_ok, limits, xxh3, Header, Trailer, DATA_ALIGN, FORMAT_VERSION, HEADER_LEN};
use super::options::{ChunkSpec, WriterOptions};
use super::pipeline::{self, FrameParams, Written};
use super::reader::Checkpoint;
use super::sink::{FileSink, Sink};
use super::stage::Stager;
use crate::error::{Error, Result};

/// The writer itself: what [`CheckpointWriter`] does when it writes
/// directly (not staging for a background save).
pub(crate) struct WriterCore<S: Sink> {
    sink: Option<S>,
    /// Where it writes, for messages.
    target: String,
    /// Why the sink was given up, once it was.
    poisoned: Option<String>,
    pos: u64,
    opts: WriterOptions,
    pool: Option<Arc<rayon::ThreadPool>>,
    index: Index,
    /// Each chunk's frame table, parallel to `index.chunks`.
    tables: Vec<Vec<FrameEntry>>,
    names: HashSet<String>,
    required: u64,
    /// The checkpoint a delta file is written against.
    base: Option<Arc<Checkpoint>>,
}

/// Writes a checkpoint chunk by chunk. Nothing is visible at the target path
/// until [`finish`](Self::finish) returns; dropping the writer discards it.
///
/// ```
/// # fn main() -> Result<(), cairn::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("model.cairn");
/// let mut w = cairn::CheckpointWriter::create(&path, cairn::WriterOptions::default())?;
/// w.set_step(100);
/// w.add_tensor("weights", &[2, 2], &[1.0f32, 2.0, 3.0, 4.0])?;
/// w.finish()?;
/// let ckpt = cairn::Checkpoint::open(&path)?;
/// assert_eq!(ckpt.tensor::<f32>("weights")?, &[1.0, 2.0, 3.0, 4.0]);
/// # Ok(()) }
/// ```
pub struct CheckpointWriter<S: Sink = FileSink> {
    mode: Mode<S>,
}

enum Mode<S: Sink> {
    /// Frames are encoded and written as chunks are added.
    Direct(Box<WriterCore<S>>),
    /// Chunks are copied into staging buffers and written by a background
    /// save ([`Store::save_async`](crate::store::Store::save_async)).
    Staged(Stager),
}

impl<S: Sink> CheckpointWriter<S> {
    /// Starts a checkpoint written to `sink`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad options; the sink's error if the
    /// header cannot be written.
    pub fn with_sink(sink: S, opts: WriterOptions) -> Result<Self> {
        Ok(CheckpointWriter { mode: Mode::Direct(Box::new(WriterCore::with_sink(sink, opts)?)) })
    }

    /// A writer that stages what is added for a background save.
    pub(crate) fn staged(stager: Stager) -> Self {
        CheckpointWriter { mode: Mode::Staged(stager) }
    }

    /// The direct writer, `None` for a staging one.
    pub(crate) fn core_mut(&mut self) -> Option<&mut WriterCore<S>> {
        match &mut self.mode {
            Mode::Direct(core) => Some(core),
            Mode::Staged(_) => None,
        }
    }

    /// The staging writer's state, `None` for a direct one.
    pub(crate) fn stager(&mut self) -> Option<&mut Stager> {
        match &mut self.mode {
            Mode::Direct(_) => None,
            Mode::Staged(st) => Some(st),
        }
    }

    /// Records the training step (or any counter) this checkpoint belongs to.
    pub fn set_step(&mut self, step: u64) {
        match &mut self.mode {
            Mode::Direct(core) => core.set_step(step),
            Mode::Staged(st) => st.set_step(step),
        }
    }

    /// Writes a delta file against `base`, a full checkpoint with the same
    /// frame size: each frame equal to the base's frame at the same
    /// position of the chunk with the same name is stored as a reference to
    /// it, one that differs a little as the XOR with it (lz4-compressed),
    /// others whole. Reading the file then needs `base`
    /// ([`Checkpoint::open_with_base`](crate::Checkpoint::open_with_base)).
    /// A file none of whose frames matched is an ordinary checkpoint. Call
    /// before adding chunks.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] after chunks were added, for a base that
    /// is a delta file or has another frame size, and on a writer staging a
    /// background save.
    pub fn set_base(&mut self, base: Arc<super::reader::Checkpoint>) -> Result<()> {
        match &mut self.mode {
            Mode::Direct(core) => core.set_base(base),
            Mode::Staged(_) => Err(Error::InvalidArgument("a background save is not written against a base".into())),
        }
    }

    /// Adds a user metadata entry; a later value for the same key wins.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: serde_json::Value) {
        match &mut self.mode {
            Mode::Direct(core) => core.set_metadata(key, value),
            Mode::Staged(st) => st.set_metadata(key.into(), value),
        }
    }

    /// Adds a chunk of opaque bytes.
    ///
    /// # Errors
    /// As [`add_chunk`](Self::add_chunk).
    pub fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.add_chunk(name, &ChunkSpec::bytes(), data)
    }

    /// Adds a tensor of any [`Element`] type with the given shape.
    ///
    /// # Errors
    /// As [`add_chunk`](Self::add_chunk); the shape must match the data.
    pub fn add_tensor<T: Element>(&mut self, name: &str, shape: &[u64], data: &[T]) -> Result<()> {
        self.add_chunk(name, &ChunkSpec::tensor(T::DTYPE, shape), bytemuck::cast_slice(data))
    }

    /// Adds a serde value encoded with postcard (compact and fast).
    ///
    /// # Errors
    /// [`Error::Serde`] if the value cannot be encoded; as [`add_chunk`](Self::add_chunk).
    pub fn add_serde<T: serde::Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        let bytes =
            postcard::to_stdvec(value).map_err(|e| Error::Serde { name: name.into(), detail: e.to_string() })?;
        self.add_chunk(name, &ChunkSpec::bytes().kind(ChunkKind::Postcard), &bytes)
    }

    /// Adds a serde value encoded as JSON (readable with `cairn cat`).
    ///
    /// # Errors
    /// [`Error::Serde`] if the value cannot be encoded; as [`add_chunk`](Self::add_chunk).
    pub fn add_json<T: serde::Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Serde { name: name.into(), detail: e.to_string() })?;
        self.add_chunk(name, &ChunkSpec::bytes().kind(ChunkKind::Json), &bytes)
    }

    /// Adds a chunk from a slice, without copying frames that are stored
    /// raw. (A staging writer copies the slice into its staging buffers, so
    /// the caller may change it as soon as this returns.)
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a duplicate or bad name or a shape that
    /// does not match; [`Error::Poisoned`] after an earlier chunk failed;
    /// I/O errors writing.
    pub fn add_chunk(&mut self, name: &str, spec: &ChunkSpec, data: &[u8]) -> Result<()> {
        match &mut self.mode {
            Mode::Direct(core) => core.add_chunk(name, spec, data),
            Mode::Staged(st) => st.add_chunk(name, spec, data),
        }
    }

    /// Adds a chunk read to its end from `reader`, a frame at a time.
    /// Returns the number of bytes read.
    ///
    /// # Errors
    /// As [`add_chunk`](Self::add_chunk), plus the reader's errors. A tensor
    /// whose bytes do not match its shape is refused and poisons the writer,
    /// since its frames are already written.
    pub fn add_reader(&mut self, name: &str, spec: &ChunkSpec, reader: impl Read) -> Result<u64> {
        match &mut self.mode {
            Mode::Direct(core) => core.add_reader(name, spec, reader),
            Mode::Staged(st) => st.add_reader(name, spec, reader),
        }
    }

    /// Writes the index and trailer and commits the sink: for a file, sync,
    /// rename over the target, sync the directory. Returns what the sink
    /// yields (the path, or the bytes in memory).
    ///
    /// # Errors
    /// [`Error::Poisoned`] after an earlier failure; I/O errors while writing,
    /// syncing or renaming. The target is untouched unless `Ok` is returned.
    pub fn finish(self) -> Result<S::Output> {
        match self.mode {
            Mode::Direct(core) => (*core).finish(),
            Mode::Staged(_) => Err(Error::Internal("a staging writer is finished by its background save".into())),
        }
    }

    /// The digest the file will carry if no more chunks are added. (A
    /// staging writer waits for its background save to catch up.)
    pub fn digest(&self) -> [u8; 32] {
        match &self.mode {
            Mode::Direct(core) => core.digest(),
            Mode::Staged(st) => st.digest(),
        }
    }
}

impl CheckpointWriter<FileSink> {
    /// Starts a checkpoint that [`finish`](Self::finish) publishes at `path`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad options; I/O errors creating the
    /// temp file.
    pub fn create(path: impl AsRef<Path>, opts: WriterOptions) -> Result<Self> {
        let sink = FileSink::create(path.as_ref())?;
        Self::with_sink(sink, opts)
    }

    /// Starts a checkpoint that [`finish`](Self::finish) publishes at `path`
    /// on the file system `fs` (temp file, sync, rename, directory sync, all
    /// through `fs`).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_in(fs: crate::io::FsRef, path: impl AsRef<Path>, opts: WriterOptions) -> Result<Self> {
        let sink = FileSink::create_in(fs, path.as_ref())?;
        Self::with_sink(sink, opts)
    }
}

impl CheckpointWriter<Vec<u8>> {
    /// Starts a checkpoint held in memory; `finish` returns its bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad options.
    pub fn in_memory(opts: WriterOptions) -> Result<Self> {
        Self::with_sink(Vec::new(), opts)
    }
}

fn sink_err<S: Sink>(sink: &S) -> impl Fn(std::io::Error) -> Error {
    let path = sink.describe();
    move |e| Error::Io { op: "writing checkpoint", path: path.clone(), source: e }
}

impl<S: Sink> WriterCore<S> {
    /// Starts a checkpoint written to `sink`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad options; the sink's error if the
    /// header cannot be written.
    pub fn with_sink(mut sink: S, opts: WriterOptions) -> Result<Self> {
        if !frame_size_ok(opts.frame_size) {
            return Err(Error::InvalidArgument(format!(
                "frame size {} must be a power of two from {} to {}",
                opts.frame_size,
                limits::MIN_FRAME_SIZE,
                limits::MAX_FRAME_SIZE
            )));
        }
        let pool = match opts.threads {
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| Error::Internal(format!("starting the writer's thread pool: {e}")))?,
            )),
            None => None,
        };
        // The features the frames use are known only at the end: the
        // trailer carries them, so nothing written is ever rewritten.
        sink.write_all(&header(opts.frame_size).encode()).map_err(sink_err(&sink))?;
        Ok(WriterCore {
            target: sink.describe().display().to_string(),
            poisoned: None,
            sink: Some(sink),
            pos: HEADER_LEN as u64,
            opts,
            pool,
            index: Index::default(),
            tables: Vec::new(),
            names: HashSet::new(),
            required: 0,
            base: None,
        })
    }

    /// Records the training step (or any counter) this checkpoint belongs to.
    pub fn set_step(&mut self, step: u64) {
        self.index.step = Some(step);
    }

    /// See [`CheckpointWriter::set_base`].
    pub fn set_base(&mut self, base: Arc<Checkpoint>) -> Result<()> {
        let refuse = |why: String| {
            Err(Error::InvalidArgument(format!("{}: cannot write against {}: {why}", self.target, base.origin())))
        };
        if !self.index.chunks.is_empty() {
            return refuse("chunks were added already".into());
        }
        if base.base_digest().is_some() {
            return refuse("it is a delta file itself; deltas are taken against full checkpoints".into());
        }
        if base.frame_size() != self.opts.frame_size {
            return refuse(format!("its frame size is {}, this writer's {}", base.frame_size(), self.opts.frame_size));
        }
        self.base = Some(base);
        Ok(())
    }

    /// Adds a user metadata entry; a later value for the same key wins.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: serde_json::Value) {
        self.index.metadata.insert(key.into(), value);
    }

    /// Adds a chunk from a slice, without copying frames that are stored raw.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a duplicate or bad name or a shape that
    /// does not match; [`Error::Poisoned`] after an earlier chunk failed;
    /// I/O errors writing.
    pub fn add_chunk(&mut self, name: &str, spec: &ChunkSpec, data: &[u8]) -> Result<()> {
        self.check_chunk(name, spec, Some(data.len() as u64))?;
        let fs = self.opts.frame_size as usize;
        let n = data.len().div_ceil(fs);
        let frames = data.chunks(fs).enumerate().map(|(i, f)| Ok((f, i + 1 == n)));
        self.write_chunk(name, spec, frames)
    }

    /// Adds a chunk read to its end from `reader`, a frame at a time.
    /// Returns the number of bytes read.
    ///
    /// # Errors
    /// As [`add_chunk`](Self::add_chunk), plus the reader's errors. A tensor
    /// whose bytes do not match its shape is refused and poisons the writer,
    /// since its frames are already written.
    pub fn add_reader(&mut self, name: &str, spec: &ChunkSpec, reader: impl Read) -> Result<u64> {
        self.check_chunk(name, spec, None)?;
        let frames = FrameReader { reader, frame_size: self.opts.frame_size as usize, ahead: None, primed: false };
        self.write_chunk(name, spec, frames)?;
        Ok(self.index.chunks.last().map_or(0, |c| c.raw_len))
    }

    /// Adds a chunk from frames staged elsewhere, in order, each with
    /// whether it is the last (a background save's side of [`Stager`]).
    pub(crate) fn add_frames<B, I>(&mut self, name: &str, spec: &ChunkSpec, frames: I) -> Result<()>
    where
        B: AsRef<[u8]> + Send,
        I: Iterator<Item = std::io::Result<(B, bool)>>,
    {
        self.check_chunk(name, spec, None)?;
        self.write_chunk(name, spec, frames)
    }

    fn check_chunk(&self, name: &str, spec: &ChunkSpec, len: Option<u64>) -> Result<()> {
        if self.sink.is_none() {
            return Err(self.poisoned_error());
        }
        check_chunk(&self.names, self.index.chunks.len(), name, spec, len)
    }

    fn write_chunk<B, I>(&mut self, name: &str, spec: &ChunkSpec, frames: I) -> Result<()>
    where
        B: AsRef<[u8]> + Send,
        I: Iterator<Item = std::io::Result<(B, bool)>>,
    {
        let result = self.write_chunk_inner(name, spec, frames);
        if matches!(result, Err(Error::Io { .. }) | Err(Error::NotFound { .. })) {
            self.sink = None; // poison: the file is in an unknown state
        }
        if let (Err(e), None) = (&result, &self.sink) {
            self.poisoned.get_or_insert_with(|| format!("chunk {name:?}: {}", crate::error::chain(e)));
        }
        result
    }

    fn poisoned_error(&self) -> Error {
        Error::Poisoned {
            what: format!("checkpoint writer for {} (start a new one)", self.target),
            cause: self.poisoned.clone().unwrap_or_else(|| "an earlier chunk failed".into()),
        }
    }

    fn write_chunk_inner<B, I>(&mut self, name: &str, spec: &ChunkSpec, frames: I) -> Result<()>
    where
        B: AsRef<[u8]> + Send,
        I: Iterator<Item = std::io::Result<(B, bool)>>,
    {
        let compression = spec.compression.unwrap_or(self.opts.compression);
        let shuffle_elem = match (spec.shuffle.unwrap_or(self.opts.shuffle), spec.dtype, compression) {
            (true, Some(dt), c) if c != Compression::None && dt.size() > 1 => dt.size(),
            _ => 1,
        };
        let params = FrameParams { frame_size: self.opts.frame_size, compression, shuffle_elem };
        let Some(mut sink) = self.sink.take() else {
            return Err(self.poisoned_error());
        };
        let mut pos = self.pos;
        let pad = (DATA_ALIGN - pos % DATA_ALIGN) % DATA_ALIGN;
        if pad > 0 {
            sink.write_all(&vec![0u8; pad as usize]).map_err(sink_err(&sink))?;
            pos += pad;
        }
        let data_offset = pos;
        let base = self.base.as_ref().and_then(|b| pipeline::BaseFrames::of(b, name));
        let written =
            pipeline::write_frames(self.pool.as_deref(), &mut sink, &mut pos, frames, params, base.as_ref(), name)?;
        let Written { frames: new_frames, hashes, raw_len, required: used } = written;
        let mut required = self.required | used;
        self.sink = Some(sink);
        if let Some(shape) = &spec.shape {
            tensor_len_matches(name, spec, shape, raw_len).inspect_err(|_| self.sink = None)?;
        }
        let digest = digest::chunk_digest(&hashes)
            .ok_or_else(|| Error::Internal(format!("chunk {name:?}: frame hashes do not form a tree")))?;
        if shuffle_elem > 1 {
            required |= features::REQUIRED_SHUFFLE;
        }
        self.required = required;
        self.pos = pos;
        let stored_len = pos - data_offset;
        self.index.chunks.push(ChunkInfo {
            name: name.to_string(),
            kind: spec.kind,
            dtype: spec.dtype,
            shape: spec.dtype.map(|_| spec.shape.clone().unwrap_or_default()),
            compression,
            shuffle: shuffle_elem > 1,
            raw_len,
            stored_len,
            data_offset,
            digest,
            shuffle_elem: shuffle_elem as u8,
            frame_count: new_frames.len() as u64,
            table_offset: 0, // known only once the index is encoded
            ordinal: self.index.chunks.len(),
        });
        self.tables.push(new_frames);
        self.names.insert(name.to_string());
        Ok(())
    }

    /// Writes the index and trailer and commits the sink: for a file, sync, rename over the target, sync the directory.
    /// Returns what the sink yields (the path, or the bytes in memory).
    ///
    /// # Errors
    /// [`Error::Poisoned`] after an earlier failure; I/O errors while writing,
    /// syncing or renaming. The target is untouched unless `Ok` is returned.
    pub fn finish(mut self) -> Result<S::Output> {
        let Some(mut sink) = self.sink.take() else {
            return Err(self.poisoned_error());
        };
        let created = self.opts.created_at.unwrap_or_else(SystemTime::now);
        self.index.created_at_us = match created.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        self.index.producer = concat!("cairn ", env!("CARGO_PKG_VERSION")).to_string();
        self.index.digest = file_digest(&self.index.chunks);
        if self.required & features::REQUIRED_DELTA != 0 {
            self.index.base =
                self.base.as_ref().map(|b| BaseId { digest: b.digest(), index_checksum: b.trailer().index_checksum });
        }
        let index = self.index.encode(&self.tables);
        let index_offset = self.pos;
        let trailer = Trailer {
            index_offset,
            index_len: index.len() as u64,
            index_checksum: xxh3(&index),
            file_len: index_offset + index.len() as u64 + super::layout::TRAILER_LEN as u64,
            required: self.required,
        };
        sink.write_all(&index).map_err(sink_err(&sink))?;
        sink.write_all(&trailer.encode()).map_err(sink_err(&sink))?;
        sink.commit()
    }

    /// The digest the file will carry if no more chunks are added.
    pub fn digest(&self) -> [u8; 32] {
        file_digest(&self.index.chunks)
    }
}

/// Checks a chunk about to be added: its name (non-empty, short enough,
/// new among `names`), the chunk count, and a tensor's shape against `len`
/// when known. Shared by the writer and the staging writer.
pub(crate) fn check_chunk(
    names: &HashSet<String>,
    count: usize,
    name: &str,
    spec: &ChunkSpec,
    len: Option<u64>,
) -> Result<()> {
    if name.is_empty() || name.len() > limits::MAX_NAME_LEN {
        return Err(Error::InvalidArgument(format!(
            "chunk name must be 1 to {} bytes, got {}",
            limits::MAX_NAME_LEN,
            name.len()
        )));
    }
    if names.contains(name) {
        return Err(Error::InvalidArgument(format!("duplicate chunk name {name:?}")));
    }
    if count >= limits::MAX_CHUNKS as usize {
        return Err(Error::InvalidArgument(format!("more than {} chunks", limits::MAX_CHUNKS)));
    }
    if let (Some(shape), Some(len)) = (&spec.shape, len) {
        tensor_len_matches(name, spec, shape, len)?;
    }
    if spec.shape.as_ref().is_some_and(|s| s.len() > limits::MAX_NDIM) {
        return Err(Error::InvalidArgument(format!("chunk {name:?}: more than {} dimensions", limits::MAX_NDIM)));
    }
    Ok(())
}

fn header(frame_size: u32) -> Header {
    Header { version: FORMAT_VERSION, frame_size, required: 0, optional: features::OPTIONAL_ALIGNED_64 }
}

fn tensor_len_matches(name: &str, spec: &ChunkSpec, shape: &[u64], len: u64) -> Result<()> {
    let elem = spec.dtype.map_or(1, |d| d.size() as u64);
    let want = shape.iter().try_fold(elem, |acc, d| acc.checked_mul(*d));
    if want == Some(len) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "chunk {name:?}: shape {shape:?} of {} needs {} bytes, got {len}",
            spec.dtype.map_or("bytes", |d| d.name()),
            want.map_or_else(|| "overflowing".to_string(), |w| w.to_string())
        )))
    }
}

/// Cuts a reader into frames, reading one frame ahead so that each frame
/// knows whether it is the last.
struct FrameReader<R> {
    reader: R,
    frame_size: usize,
    ahead: Option<Vec<u8>>,
    primed: bool,
}

impl<R: Read> FrameReader<R> {
    fn fill(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; self.frame_size];
        let mut n = 0;
        while n < buf.len() {
            match self.reader.read(buf.get_mut(n..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        Ok((n > 0).then_some(buf))
    }
}

impl<R: Read> Iterator for FrameReader<R> {
    type Item = std::io::Result<(Vec<u8>, bool)>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.primed {
            self.primed = true;
            match self.fill() {
                Ok(b) => self.ahead = b,
                Err(e) => return Some(Err(e)),
            }
        }
        let cur = self.ahead.take()?;
        if cur.len() == self.frame_size {
            match self.fill() {
                Ok(b) => self.ahead = b,
                Err(e) => return Some(Err(e)),
            }
        }
        let last = self.ahead.is_none();
        Some(Ok((cur, last)))
    }
}
