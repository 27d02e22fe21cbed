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
//! | 32 + 8      | delta files only (`DELTA` bit): the base's file digest |
//! |             | and the xxh3-64 of its index                           |
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
//! | 8           | stored length: the frames' stored lengths summed       |
//! | 32          | BLAKE3 of the raw content                              |
//! | 13 · frames | per frame: codec u8, stored length u32, xxh3-64 u64    |
//! ```
//! The frame count is `ceil(raw length / frame size)`; frames are stored
//! back to back from the data offset. Opening a file decodes the chunk
//! records but only checks that each frame table fits; a chunk's frame table
//! is decoded and validated when the chunk is first read, so opening costs
//! the same for a 16 MiB and a 1 TiB checkpoint with the same chunks.

use super::codec::{self, tag, Compression};
use super::cursor::Cursor;
use super::delta::REF_LEN;
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
    pub(crate) frame_count: u64,
    /// File offset of the chunk's frame table, inside the index.
    pub(crate) table_offset: u64,
    /// Position in the file's chunk list.
    pub(crate) ordinal: usize,
}

impl ChunkInfo {
    /// Number of frames.
    pub fn frame_count(&self) -> u64 {
        self.frame_count
    }

    /// Whether every frame is stored uncompressed, so the data region is the
    /// content itself and can be viewed in place. Compressed frames are
    /// always smaller than their raw bytes, so this is `stored == raw`.
    pub fn is_raw(&self) -> bool {
        self.stored_len == self.raw_len
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
    /// Chunk ordinals sorted by name, for lookups without a copy of each name.
    pub by_name: Vec<u32>,
    /// The checkpoint a delta file was written against (set exactly when
    /// the file requires the `DELTA` feature).
    pub base: Option<BaseId>,
}

/// Which checkpoint a delta file needs: the base's file digest and the
/// xxh3-64 of its index (from its trailer), so that a base with the same
/// content but other frames is told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BaseId {
    pub digest: [u8; 32],
    pub index_checksum: u64,
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
    /// Encodes the index; `frames` holds each chunk's frame table, in order.
    pub(crate) fn encode(&self, frames: &[Vec<FrameEntry>]) -> Vec<u8> {
        let meta = serde_json::to_vec(&self.metadata).unwrap_or_else(|_| b"{}".to_vec());
        let frame_count: usize = frames.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(128 + self.chunks.len() * 104 + frame_count * FRAME_RECORD_LEN);
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        let flags = if self.step.is_some() { FLAG_HAS_STEP } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.created_at_us.to_le_bytes());
        out.extend_from_slice(&self.step.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.digest);
        if let Some(base) = &self.base {
            out.extend_from_slice(&base.digest);
            out.extend_from_slice(&base.index_checksum.to_le_bytes());
        }
        out.extend_from_slice(&(self.producer.len() as u16).to_le_bytes());
        out.extend_from_slice(self.producer.as_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        for (c, table) in self.chunks.iter().zip(frames) {
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
            out.extend_from_slice(&c.stored_len.to_le_bytes());
            out.extend_from_slice(&c.digest);
            for f in table {
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
        let base = if required & features::REQUIRED_DELTA != 0 {
            Some(BaseId { digest: cur.digest()?, index_checksum: cur.u64()? })
        } else {
            None
        };
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
        const MIN_CHUNK_RECORD: usize = 2 + 1 + 3 + 3 + 24 + 32;
        let cap = (count as usize).min(cur.remaining() / MIN_CHUNK_RECORD);
        let mut chunks: Vec<ChunkInfo> = Vec::with_capacity(cap);
        let mut data_end = HEADER_LEN as u64;
        for ordinal in 0..count as usize {
            let c = decode_chunk(&mut cur, frame_size, required, data_end, index_offset, ordinal)?;
            data_end = c.data_offset + c.stored_len;
            chunks.push(c);
        }
        if cur.remaining() != 0 {
            return Err(cur.err(format!("{} unexpected bytes after the last chunk record", cur.remaining())));
        }
        let mut by_name: Vec<u32> = (0..chunks.len() as u32).collect();
        let name_of = |i: &u32| chunks.get(*i as usize).map_or("", |c| c.name.as_str());
        by_name.sort_unstable_by(|a, b| name_of(a).cmp(name_of(b)));
        if let Some(w) = by_name.windows(2).find(|w| w.first().map(name_of) == w.get(1).map(name_of)) {
            let dup = w.first().and_then(|i| chunks.get(*i as usize));
            return Err(Error::Corrupt {
                file: file.to_string(),
                what: "index".into(),
                offset: index_offset,
                detail: format!("duplicate chunk name {:?}", dup.map_or("", |c| c.name.as_str())),
            });
        }
        Ok(Index { created_at_us, step, digest, producer, metadata, chunks, by_name, base })
    }

    /// The chunk with this name, by binary search.
    pub(crate) fn find(&self, name: &str) -> Option<&ChunkInfo> {
        let name_of = |i: &u32| self.chunks.get(*i as usize).map_or("", |c| c.name.as_str());
        let at = self.by_name.binary_search_by(|i| name_of(i).cmp(name)).ok()?;
        self.by_name.get(at).and_then(|i| self.chunks.get(*i as usize))
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
    prev_end: u64,
    index_offset: u64,
    ordinal: usize,
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
    let stored_len = cur.u64()?;
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
    // Compressed frames are smaller than their raw bytes, raw ones equal.
    let n = frame_count(raw_len, frame_size);
    if stored_len > raw_len || stored_len < n {
        return Err(cur.err(format!("chunk {name:?}: {stored_len} stored bytes for {raw_len} raw bytes in {n} frames")));
    }
    let end = data_offset.checked_add(stored_len);
    if end.is_none_or(|e| e > index_offset) {
        return Err(cur.err(format!("chunk {name:?}: data {data_offset}+{stored_len} runs past the index")));
    }
    if shuffle_elem > 1 && required & features::REQUIRED_SHUFFLE == 0 {
        return Err(cur.err(format!("chunk {name:?}: shuffled but the header lacks the shuffle feature")));
    }
    let table_offset = cur.offset();
    let table_len = n.checked_mul(FRAME_RECORD_LEN as u64);
    match table_len {
        Some(t) if t <= cur.remaining() as u64 => {
            cur.take(t as usize)?;
        }
        _ => return Err(cur.err(format!("chunk {name:?}: {n} frames do not fit in the index"))),
    }
    Ok(ChunkInfo {
        name,
        kind,
        dtype,
        shape: dtype.map(|_| dims),
        compression,
        shuffle: shuffle_elem > 1,
        raw_len,
        stored_len,
        data_offset,
        digest,
        shuffle_elem,
        frame_count: n,
        table_offset,
        ordinal,
    })
}

/// Decodes and validates a chunk's frame table (`table` holds exactly its
/// `13 · frames` bytes, read from `c.table_offset`). Frame offsets follow
/// from the data offset; their stored lengths must add up to the chunk's.
pub(crate) fn decode_frames(
    table: &[u8],
    c: &ChunkInfo,
    frame_size: u32,
    required: u64,
    file: &str,
) -> Result<Vec<FrameEntry>> {
    let mut cur = Cursor::new(table, c.table_offset, file, "index frame table");
    let name = &c.name;
    let mut frames = Vec::with_capacity((table.len() / FRAME_RECORD_LEN).min(c.frame_count as usize));
    let mut offset = c.data_offset;
    for i in 0..c.frame_count {
        let codec = cur.u8()?;
        let stored_len = cur.u32()?;
        let checksum = cur.u64()?;
        let raw = frame_raw_len(c.raw_len, frame_size, i);
        let Some(bit) = codec::required_feature(codec) else {
            return Err(cur.err(format!("chunk {name:?} frame {i}: unknown codec {codec}")));
        };
        if codec == tag::PLANES && c.shuffle_elem <= 1 {
            return Err(cur.err(format!("chunk {name:?} frame {i}: a planes frame in a chunk that is not shuffled")));
        }
        let min_len = match codec {
            tag::BASE => REF_LEN as u32,
            tag::XOR => REF_LEN as u32 + 1,
            _ => 1,
        };
        let len_ok = match codec {
            tag::NONE => u64::from(stored_len) == raw,
            tag::BASE => stored_len == min_len && u64::from(stored_len) < raw,
            _ => stored_len >= min_len && u64::from(stored_len) < raw,
        };
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
    if offset.checked_sub(c.data_offset) != Some(c.stored_len) {
        return Err(cur.err(format!(
            "chunk {name:?}: frames store {} bytes but the record says {}",
            offset.saturating_sub(c.data_offset),
            c.stored_len
        )));
    }
    Ok(frames)
}
