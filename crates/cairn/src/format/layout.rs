//! Byte layout of a checkpoint file, versions 1 and 2. `docs/FORMAT.md` is
//! the normative description; the constants here mirror it.
//!
//! Version 2 is written front to back and never seeks back: the feature
//! bits the frames need are known only at the end, so they live in the
//! trailer (its bytes 32..40), and the header's required bits hold only
//! what the writer knew before the first frame (none, from this crate). A
//! reader takes the union of the two. Version 1 writers rewrote the header
//! at the end instead; their trailers have zeros there, which a reader of a
//! version 1 file ignores.
//!
//! ```text
//! file    := header (64) | chunk data ... | index | trailer (64)
//!
//! header (64 bytes, little endian)
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 8    | magic 89 'C' 'A' 'I' 'R' 'N' 0D 0A      |
//! | 8      | 2    | format version (1 or 2)                 |
//! | 10     | 2    | header length (64)                      |
//! | 12     | 4    | frame size in bytes (power of two)      |
//! | 16     | 8    | required feature bits                   |
//! | 24     | 8    | optional feature bits                   |
//! | 32     | 24   | reserved, zero                          |
//! | 56     | 8    | xxh3-64 of bytes 0..56                  |
//!
//! trailer (last 64 bytes of the file)
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 8    | index offset                            |
//! | 8      | 8    | index length                            |
//! | 16     | 8    | xxh3-64 of the index bytes              |
//! | 24     | 8    | file length, trailer included           |
//! | 32     | 8    | required feature bits (v2; zero in v1)  |
//! | 40     | 8    | reserved, zero                          |
//! | 48     | 8    | xxh3-64 of trailer bytes 0..48          |
//! | 56     | 8    | end magic "CAIRNEND"                    |
//! ```

use crate::error::{Error, Result};

/// Frame codec tags, as frame tables store them.
#[cfg(feature = "testing")]
pub use super::codec::tag as codec;

/// First eight bytes of every checkpoint file. The high first byte and the
/// CR LF catch files mangled by text-mode transfers, as PNG's magic does.
pub const MAGIC: [u8; 8] = [0x89, b'C', b'A', b'I', b'R', b'N', 0x0D, 0x0A];
/// Last eight bytes of every complete checkpoint file.
pub const END_MAGIC: [u8; 8] = *b"CAIRNEND";
/// The format version this crate writes.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this crate reads.
pub const MIN_READ_VERSION: u16 = 1;
/// Size of the fixed header at offset 0.
pub const HEADER_LEN: usize = 64;
/// Size of the fixed trailer at the end of the file.
pub const TRAILER_LEN: usize = 64;
/// Alignment of every chunk's data region, so raw tensors map as typed slices.
pub const DATA_ALIGN: u64 = 64;

/// Header field offsets.
pub mod header {
    /// Magic bytes.
    pub const MAGIC: usize = 0;
    /// Format version, u16.
    pub const VERSION: usize = 8;
    /// Header length, u16.
    pub const HEADER_LEN: usize = 10;
    /// Frame size, u32.
    pub const FRAME_SIZE: usize = 12;
    /// Required feature bits, u64.
    pub const REQUIRED: usize = 16;
    /// Optional feature bits, u64.
    pub const OPTIONAL: usize = 24;
    /// Start of the checksum, u64; it covers bytes before it.
    pub const CHECKSUM: usize = 56;
}

/// Trailer field offsets, relative to the trailer's start.
pub mod trailer {
    /// Index offset, u64.
    pub const INDEX_OFFSET: usize = 0;
    /// Index length, u64.
    pub const INDEX_LEN: usize = 8;
    /// xxh3-64 of the index, u64.
    pub const INDEX_CHECKSUM: usize = 16;
    /// Total file length, u64.
    pub const FILE_LEN: usize = 24;
    /// Required feature bits, u64 (version 2).
    pub const REQUIRED: usize = 32;
    /// Start of the checksum, u64; it covers bytes before it.
    pub const CHECKSUM: usize = 48;
    /// End magic.
    pub const END_MAGIC: usize = 56;
}

/// Feature bits. A reader refuses a file with a required bit it does not
/// know and ignores optional bits it does not know.
pub mod features {
    /// Some frame is lz4-compressed.
    pub const REQUIRED_LZ4: u64 = 1 << 0;
    /// Some frame is zstd-compressed.
    pub const REQUIRED_ZSTD: u64 = 1 << 1;
    /// Some frame is byte-shuffled before compression.
    pub const REQUIRED_SHUFFLE: u64 = 1 << 2;
    /// Some frame refers to the base checkpoint (a delta file); the index
    /// names the base.
    pub const REQUIRED_DELTA: u64 = 1 << 3;
    /// Some frame of a shuffled chunk is stored plane by plane (frame codec 6).
    pub const REQUIRED_PLANES: u64 = 1 << 4;
    /// All required bits this version understands.
    pub const REQUIRED_KNOWN: u64 = REQUIRED_LZ4 | REQUIRED_ZSTD | REQUIRED_SHUFFLE | REQUIRED_DELTA | REQUIRED_PLANES;
    /// Chunk data regions start on 64-byte boundaries (always set by v1 writers).
    pub const OPTIONAL_ALIGNED_64: u64 = 1 << 0;
}

/// Hard limits, checked before any allocation sized by a file.
pub mod limits {
    /// Largest index accepted.
    pub const MAX_INDEX_LEN: u64 = 256 << 20;
    /// Most chunks in one file.
    pub const MAX_CHUNKS: u32 = 1 << 20;
    /// Longest chunk name, in bytes.
    pub const MAX_NAME_LEN: usize = 1024;
    /// Most tensor dimensions.
    pub const MAX_NDIM: usize = 32;
    /// Longest producer string.
    pub const MAX_PRODUCER_LEN: usize = 256;
    /// Largest user-metadata JSON document.
    pub const MAX_METADATA_LEN: u64 = 16 << 20;
    /// Smallest frame size a writer may choose.
    pub const MIN_FRAME_SIZE: u32 = 4 << 10;
    /// Largest frame size accepted.
    pub const MAX_FRAME_SIZE: u32 = 64 << 20;
}

/// The header's decoded fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Frame size, a power of two.
    pub frame_size: u32,
    /// Required feature bits.
    pub required: u64,
    /// Optional feature bits.
    pub optional: u64,
}

/// The trailer's decoded fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Where the index starts.
    pub index_offset: u64,
    /// Index length in bytes.
    pub index_len: u64,
    /// xxh3-64 of the index.
    pub index_checksum: u64,
    /// Total file length.
    pub file_len: u64,
    /// Required feature bits found only at the end (version 2; zero in
    /// version 1).
    pub required: u64,
}

pub(crate) fn xxh3(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn get<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Checks a frame size: a power of two within the limits.
pub(crate) fn frame_size_ok(frame_size: u32) -> bool {
    frame_size.is_power_of_two() && (limits::MIN_FRAME_SIZE..=limits::MAX_FRAME_SIZE).contains(&frame_size)
}

/// Refuses feature bits this build does not know.
pub(crate) fn check_required(required: u64, file: &str) -> Result<()> {
    let unknown = required & !features::REQUIRED_KNOWN;
    if unknown != 0 {
        return Err(Error::Unsupported {
            file: file.to_string(),
            feature: format!("required feature bit {}", unknown.trailing_zeros()),
        });
    }
    Ok(())
}

impl Header {
    /// Encodes the header with its checksum.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut buf = [0u8; HEADER_LEN];
        put(&mut buf, header::MAGIC, &MAGIC);
        put(&mut buf, header::VERSION, &self.version.to_le_bytes());
        put(&mut buf, header::HEADER_LEN, &(HEADER_LEN as u16).to_le_bytes());
        put(&mut buf, header::FRAME_SIZE, &self.frame_size.to_le_bytes());
        put(&mut buf, header::REQUIRED, &self.required.to_le_bytes());
        put(&mut buf, header::OPTIONAL, &self.optional.to_le_bytes());
        let sum = xxh3(buf.get(..header::CHECKSUM).unwrap_or_default());
        put(&mut buf, header::CHECKSUM, &sum.to_le_bytes());
        buf
    }

    /// Decodes and checks a header: magic, checksum, version, required
    /// features and frame size.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Unsupported`], naming `file`.
    pub fn decode(buf: &[u8], file: &str) -> Result<Self> {
        let corrupt = |detail: &str| Error::Corrupt {
            file: file.to_string(),
            what: "header".into(),
            offset: 0,
            detail: detail.to_string(),
        };
        let Some(buf) = buf.get(..HEADER_LEN) else {
            return Err(corrupt("file is shorter than the header"));
        };
        if get::<8>(buf, header::MAGIC) != MAGIC {
            return Err(corrupt("bad magic: not a cairn checkpoint"));
        }
        let sum = u64::from_le_bytes(get(buf, header::CHECKSUM));
        if xxh3(buf.get(..header::CHECKSUM).unwrap_or_default()) != sum {
            return Err(corrupt("header checksum mismatch"));
        }
        let version = u16::from_le_bytes(get(buf, header::VERSION));
        if !(MIN_READ_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::Unsupported {
                file: file.to_string(),
                feature: format!("format version {version} (this build reads {MIN_READ_VERSION} to {FORMAT_VERSION})"),
            });
        }
        if u16::from_le_bytes(get(buf, header::HEADER_LEN)) as usize != HEADER_LEN {
            return Err(corrupt("header length is not 64"));
        }
        let required = u64::from_le_bytes(get(buf, header::REQUIRED));
        check_required(required, file)?;
        let frame_size = u32::from_le_bytes(get(buf, header::FRAME_SIZE));
        if !frame_size_ok(frame_size) {
            return Err(corrupt(&format!("frame size {frame_size} is not a power of two within limits")));
        }
        Ok(Header { version, frame_size, required, optional: u64::from_le_bytes(get(buf, header::OPTIONAL)) })
    }
}

impl Trailer {
    /// Encodes the trailer with its checksum and end magic.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut buf = [0u8; TRAILER_LEN];
        put(&mut buf, trailer::INDEX_OFFSET, &self.index_offset.to_le_bytes());
        put(&mut buf, trailer::INDEX_LEN, &self.index_len.to_le_bytes());
        put(&mut buf, trailer::INDEX_CHECKSUM, &self.index_checksum.to_le_bytes());
        put(&mut buf, trailer::FILE_LEN, &self.file_len.to_le_bytes());
        put(&mut buf, trailer::REQUIRED, &self.required.to_le_bytes());
        let sum = xxh3(buf.get(..trailer::CHECKSUM).unwrap_or_default());
        put(&mut buf, trailer::CHECKSUM, &sum.to_le_bytes());
        put(&mut buf, trailer::END_MAGIC, &END_MAGIC);
        buf
    }

    /// Decodes the trailer of a file of format `version` and checks it
    /// against the file's real length and the feature bits this build knows.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `file` and the trailer's offset;
    /// [`Error::Unsupported`] for an unknown required feature bit.
    pub fn decode(buf: &[u8], version: u16, file_len: u64, file: &str) -> Result<Self> {
        let offset = file_len.saturating_sub(TRAILER_LEN as u64);
        let corrupt =
            |detail: String| Error::Corrupt { file: file.to_string(), what: "trailer".into(), offset, detail };
        let Some(buf) = buf.get(..TRAILER_LEN) else {
            return Err(corrupt("file is shorter than the trailer".into()));
        };
        if get::<8>(buf, trailer::END_MAGIC) != END_MAGIC {
            return Err(corrupt("no end magic: the file is truncated or was never finished".into()));
        }
        let sum = u64::from_le_bytes(get(buf, trailer::CHECKSUM));
        if xxh3(buf.get(..trailer::CHECKSUM).unwrap_or_default()) != sum {
            return Err(corrupt("trailer checksum mismatch".into()));
        }
        let t = Trailer {
            index_offset: u64::from_le_bytes(get(buf, trailer::INDEX_OFFSET)),
            index_len: u64::from_le_bytes(get(buf, trailer::INDEX_LEN)),
            index_checksum: u64::from_le_bytes(get(buf, trailer::INDEX_CHECKSUM)),
            file_len: u64::from_le_bytes(get(buf, trailer::FILE_LEN)),
            // Version 1 reserved these bytes.
            required: if version >= 2 { u64::from_le_bytes(get(buf, trailer::REQUIRED)) } else { 0 },
        };
        check_required(t.required, file)?;
        if t.file_len != file_len {
            return Err(corrupt(format!("file is {file_len} bytes but the trailer says {}", t.file_len)));
        }
        if t.index_len > limits::MAX_INDEX_LEN {
            return Err(corrupt(format!(
                "index length {} exceeds the limit of {}",
                t.index_len,
                limits::MAX_INDEX_LEN
            )));
        }
        let index_end = t.index_offset.checked_add(t.index_len);
        if t.index_offset < HEADER_LEN as u64 || index_end != Some(offset) {
            return Err(corrupt(format!("index range {}+{} does not end at the trailer", t.index_offset, t.index_len)));
        }
        Ok(t)
    }
}
