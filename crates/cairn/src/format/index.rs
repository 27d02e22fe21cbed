//! The index: file metadata and, per chunk, its name, type, digest and frame
//! table. Written after the chunk data; located by the trailer.
//!
//! ```text
//! index (little endian)
//! | size        | field                                                  |
//! |-------------|--------------------------------------------------------|
//! | 4           | chunk count (≤ MAX_CHUNKS)                             |
//! | 4           | flags: bit 0 = step present                            |
//! | 8           | created_at, microseconds since the Unix epoch (i64)    |
//! | 8           | step                                                   |
//! | 32          | file digest (BLAKE3, see `file_digest`)                |
//! | 2 + n       | producer length, UTF-8 producer                        |
//! | 4 + n       | metadata length, JSON object                           |
//! | ...         | chunk records, in file order                           |
//!
//! chunk record
//! | 2 + n       | name length, UTF-8 name                                |
//! | 1           | kind tag                                               |
//! | 1           | dtype tag (0 = none)                                   |
//! | 1 + 8·ndim  | ndim, then each dimension as u64 (ndim = 0 if no dtype) |
//! | 1           | compression tag (0 none, 1 lz4, 2 zstd, 3 auto)        |
//! | 1           | compression level (i8)                                 |
//! | 1           | shuffle element size (0 or 1 = no shuffle)             |
//! | 8           | raw length                                             |
//! | 8           | data offset (multiple of 64)                           |
//! | 32          | BLAKE3 of the raw content                              |
//! | 13 · frames | per frame: codec u8, stored length u32, xxh3-64 u64    |
//! ```
//! The frame count is `ceil(raw length / frame size)`; frames are stored
//! back to back from the data offset.

use std::collections::HashMap;
use std::ops::Range;

use super::codec::{tag, Compression};
use super::cursor::Cursor;
use super::dtype::{ChunkKind, DType};
use super::layout::{features, limits, DATA_ALIGN, HEADER_LEN};
use crate::error::{Error, Result};

/// Bytes of one frame record in the index.
pub const FRAME_RECORD_LEN: usize = 13;
/// Index flag: the step field is set.
pub const FLAG_HAS_STEP: u32 = 1;

/// One stored frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameEntry {
    /// File offset of the stored bytes.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// Frame codec tag.
    pub codec: u8,
    /// xxh3-64 of the stored bytes.
    pub checksum: u64,
}

/// What the index says about one chunk.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChunkInfo {
    /// Unique name.
    pub name: String,
    /// What it holds.
    pub kind: ChunkKind,
    /// Element type, for tensors.
    pub dtype: Option<DType>,
    /// Dimensions, for tensors.
    pub shape: Option<Vec<u64>>,
    /// The compression the writer asked for.
    pub compression: Compression,
    /// Whether frames were byte-shuffled before compression.
    pub shuffle: bool,
    /// Length of the content.
    pub raw_len: u64,
    /// Bytes the frames take in the file.
    pub stored_len: u64,
    /// File offset of the first frame.
    pub data_offset: u64,
    /// BLAKE3 of the content (equal to `b3sum` of the unpacked chunk).
    pub digest: [u8; 32],
    pub(crate) shuffle_elem: u8,
    pub(crate) frames: Range<usize>,
}

impl ChunkInfo {
    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Whether the content is stored uncompressed and contiguous, so it can be
    /// viewed in place.
    pub fn is_raw(&self) -> bool {
        self.stored_len == self.raw_len && self.compression == Compression::None
    }

    /// The shuffle element size applied to compressed frames (1 = none).
    pub(crate) fn shuffle_elem(&self) -> usize {
        usize::from(self.shuffle_elem.max(1))
    }
}

/// The decoded index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub created_at_us: i64,
    pub step: Option<u64>,
    pub digest: [u8; 32],
    pub producer: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub chunks: Vec<ChunkInfo>,
    pub frames: Vec<FrameEntry>,
    pub by_name: HashMap<String, usize>,
}

/// The file digest: BLAKE3 over, per chunk in order, its name, kind, dtype,
/// shape, raw length and content digest. Independent of compression, frame
/// size and metadata.
pub(crate) fn file_digest(chunks: &[ChunkInfo]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&(chunks.len() as u64).to_le_bytes());
    for c in chunks {
        h.update(&(c.name.len() as u64).to_le_bytes());
        h.update(c.name.as_bytes());
        h.update(&[c.kind.tag(), c.dtype.map_or(0, DType::tag)]);
        let shape = c.shape.as_deref().unwrap_or(&[]);
        h.update(&(shape.len() as u64).to_le_bytes());
        for d in shape {
            h.update(&d.to_le_bytes());
        }
        h.update(&c.raw_len.to_le_bytes());
        h.update(&c.digest);
    }
    *h.finalize().as_bytes()
}

/// Number of frames for a raw length.
pub(crate) fn frame_count(raw_len: u64, frame_size: u32) -> u64 {
    raw_len.div_ceil(u64::from(frame_size))
}

/// Raw length of frame `i` of a chunk.
pub(crate) fn frame_raw_len(raw_len: u64, frame_size: u32, i: u64) -> u64 {
    let start = i.saturating_mul(u64::from(frame_size));
    raw_len.saturating_sub(start).min(u64::from(frame_size))
}

impl Index {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let meta = serde_json::to_vec(&self.metadata).unwrap_or_else(|_| b"{}".to_vec());
        let mut out = Vec::with_capacity(128 + self.chunks.len() * 96 + self.frames.len() * FRAME_RECORD_LEN);
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        let flags = if self.step.is_some() { FLAG_HAS_STEP } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.created_at_us.to_le_bytes());
        out.extend_from_slice(&self.step.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&(self.producer.len() as u16).to_le_bytes());
        out.extend_from_slice(self.producer.as_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        for c in &self.chunks {
            out.extend_from_slice(&(c.name.len() as u16).to_le_bytes());
            out.extend_from_slice(c.name.as_bytes());
            out.push(c.kind.tag());
            out.push(c.dtype.map_or(0, DType::tag));
            let shape = c.shape.as_deref().unwrap_or(&[]);
            out.push(shape.len() as u8);
            for d in shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            let (t, level) = c.compression.tag_level();
            out.push(t);
            out.extend_from_slice(&level.to_le_bytes());
            out.push(c.shuffle_elem);
            out.extend_from_slice(&c.raw_len.to_le_bytes());
            out.extend_from_slice(&c.data_offset.to_le_bytes());
            out.extend_from_slice(&c.digest);
            for f in self.frames.get(c.frames.clone()).unwrap_or_default() {
                out.push(f.codec);
                out.extend_from_slice(&f.stored_len.to_le_bytes());
                out.extend_from_slice(&f.checksum.to_le_bytes());
            }
        }
        out
    }

    /// Decodes an index whose checksum has been checked already, validating
    /// every field against the limits and the file's geometry.
    pub(crate) fn decode(buf: &[u8], index_offset: u64, frame_size: u32, required: u64, file: &str) -> Result<Self> {
        let mut cur = Cursor::new(buf, index_offset, file, "index");
        let count = cur.u32()?;
        if count > limits::MAX_CHUNKS {
            return Err(cur.err(format!("chunk count {count} exceeds the limit of {}", limits::MAX_CHUNKS)));
        }
        let flags = cur.u32()?;
        let created_at_us = cur.i64()?;
        let step_raw = cur.u64()?;
        let step = (flags & FLAG_HAS_STEP != 0).then_some(step_raw);
        let digest = cur.digest()?;
        let producer_len = usize::from(cur.u16()?);
        if producer_len > limits::MAX_PRODUCER_LEN {
            return Err(cur.err(format!("producer length {producer_len} exceeds the limit")));
        }
        let producer = utf8(&mut cur, producer_len, "producer")?;
        let meta_len = cur.u32()?;
        if u64::from(meta_len) > limits::MAX_METADATA_LEN {
            return Err(cur.err(format!("metadata length {meta_len} exceeds the limit")));
        }
        let meta_at = cur.offset();
        let meta_bytes = cur.take(meta_len as usize)?;
        let metadata = serde_json::from_slice(meta_bytes).map_err(|e| Error::Corrupt {
            file: file.to_string(),
            what: "index metadata".into(),
            offset: meta_at,
            detail: e.to_string(),
        })?;

        // Each chunk record takes at least this many bytes, which bounds the
        // allocation below by the index's size.
        const MIN_CHUNK_RECORD: usize = 2 + 3 + 3 + 16 + 32;
        let cap = (count as usize).min(cur.remaining() / MIN_CHUNK_RECORD);
        let mut chunks = Vec::with_capacity(cap);
        let mut frames = Vec::new();
        let mut by_name = HashMap::with_capacity(cap);
        let mut data_end = HEADER_LEN as u64;
        for _ in 0..count {
            let record_at = cur.offset();
            let c = decode_chunk(&mut cur, frame_size, required, &mut frames, data_end, index_offset)?;
            data_end = c.data_offset + c.stored_len;
            if by_name.insert(c.name.clone(), chunks.len()).is_some() {
                return Err(Error::Corrupt {
                    file: file.to_string(),
                    what: "index".into(),
                    offset: record_at,
                    detail: format!("duplicate chunk name {:?}", c.name),
                });
            }
            chunks.push(c);
        }
        if cur.remaining() != 0 {
            return Err(cur.err(format!("{} unexpected bytes after the last chunk record", cur.remaining())));
        }
        Ok(Index { created_at_us, step, digest, producer, metadata, chunks, frames, by_name })
    }
}

fn utf8(cur: &mut Cursor<'_>, len: usize, what: &str) -> Result<String> {
    let at = cur.offset();
    let bytes = cur.take(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| cur.err_at(at, format!("{what} is not UTF-8")))
}

fn decode_chunk(
    cur: &mut Cursor<'_>,
    frame_size: u32,
    required: u64,
    frames: &mut Vec<FrameEntry>,
    prev_end: u64,
    index_offset: u64,
) -> Result<ChunkInfo> {
    let name_len = usize::from(cur.u16()?);
    if name_len == 0 || name_len > limits::MAX_NAME_LEN {
        return Err(cur.err(format!("chunk name length {name_len} is outside 1..={}", limits::MAX_NAME_LEN)));
    }
    let name = utf8(cur, name_len, "chunk name")?;
    let kind = ChunkKind::from_tag(cur.u8()?);
    let dtype_tag = cur.u8()?;
    let dtype = match dtype_tag {
        0 => None,
        t => Some(DType::from_tag(t).ok_or_else(|| cur.err(format!("chunk {name:?}: unknown dtype tag {t}")))?),
    };
    let ndim = usize::from(cur.u8()?);
    if ndim > limits::MAX_NDIM || (dtype.is_none() && ndim != 0) {
        return Err(cur.err(format!("chunk {name:?}: bad dimension count {ndim}")));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        dims.push(cur.u64()?);
    }
    let comp_tag = cur.u8()?;
    let level = cur.i8()?;
    let compression = Compression::from_tag_level(comp_tag, level)
        .ok_or_else(|| cur.err(format!("chunk {name:?}: unknown compression tag {comp_tag}")))?;
    let shuffle_elem = cur.u8()?;
    let raw_len = cur.u64()?;
    let data_offset = cur.u64()?;
    let digest = cur.digest()?;

    if let Some(dt) = dtype {
        let elems = dims.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d));
        let bytes = elems.and_then(|e| e.checked_mul(dt.size() as u64));
        if bytes != Some(raw_len) {
            return Err(cur.err(format!("chunk {name:?}: shape {dims:?} of {dt} does not match {raw_len} bytes")));
        }
    }
    if data_offset % DATA_ALIGN != 0 || data_offset < prev_end {
        return Err(cur.err(format!("chunk {name:?}: data offset {data_offset} is misaligned or overlaps")));
    }
    let n = frame_count(raw_len, frame_size);
    let table_len = n.checked_mul(FRAME_RECORD_LEN as u64);
    if table_len.is_none_or(|t| t > cur.remaining() as u64) {
        return Err(cur.err(format!("chunk {name:?}: {n} frames do not fit in the index")));
    }
    let first = frames.len();
    frames.reserve(n as usize);
    let mut offset = data_offset;
    for i in 0..n {
        let codec = cur.u8()?;
        let stored_len = cur.u32()?;
        let checksum = cur.u64()?;
        let raw = frame_raw_len(raw_len, frame_size, i);
        let bit = match codec {
            tag::NONE => 0,
            tag::LZ4 => features::REQUIRED_LZ4,
            tag::ZSTD => features::REQUIRED_ZSTD,
            other => return Err(cur.err(format!("chunk {name:?} frame {i}: unknown codec {other}"))),
        };
        let len_ok = if codec == tag::NONE { u64::from(stored_len) == raw } else { u64::from(stored_len) < raw };
        if required & bit != bit || !len_ok {
            return Err(cur.err(format!(
                "chunk {name:?} frame {i}: codec {codec} with {stored_len} stored bytes for {raw} raw bytes is invalid"
            )));
        }
        frames.push(FrameEntry { offset, stored_len, codec, checksum });
        offset = offset
            .checked_add(u64::from(stored_len))
            .ok_or_else(|| cur.err(format!("chunk {name:?}: data offset overflows")))?;
    }
    if offset > index_offset {
        return Err(cur.err(format!("chunk {name:?}: data runs past the index into offset {offset}")));
    }
    if shuffle_elem > 1 && required & features::REQUIRED_SHUFFLE == 0 {
        return Err(cur.err(format!("chunk {name:?}: shuffled but the header lacks the shuffle feature")));
    }
    Ok(ChunkInfo {
        name,
        kind,
        dtype,
        shape: dtype.map(|_| dims),
        compression,
        shuffle: shuffle_elem > 1,
        raw_len,
        stored_len: offset - data_offset,
        data_offset,
        digest,
        shuffle_elem,
        frames: first..frames.len(),
    })
}
