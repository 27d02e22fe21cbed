//! Frame codecs (none, lz4, zstd), the `auto` policy, and the byte-shuffle
//! filter.

use std::cell::RefCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::str::FromStr;

/// How a writer compresses frames. Chosen per writer, overridable per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Store frames as they are; the only setting that allows zero-copy reads.
    #[default]
    None,
    /// lz4 block compression: fast, modest ratio.
    Lz4,
    /// zstd at the given level (1..=22; negative levels are faster).
    Zstd(i32),
    /// zstd level 1, but a frame is stored raw unless compression saves at
    /// least an eighth of it, so incompressible data costs little to read.
    Auto,
}

/// Stored codec tags for frames and chunks.
pub mod tag {
    /// Stored as is.
    pub const NONE: u8 = 0;
    /// lz4 block.
    pub const LZ4: u8 = 1;
    /// zstd frame.
    pub const ZSTD: u8 = 2;
    /// Chunk-level only: the `auto` policy.
    pub const AUTO: u8 = 3;
    /// Frame-level only, in delta files: the base's frame, unchanged.
    pub const BASE: u8 = 4;
    /// Frame-level only, in delta files: the base's frame XOR an lz4 block.
    pub const XOR: u8 = 5;
    /// Frame-level only, in shuffled lz4 chunks: each byte plane stored
    /// raw, as an lz4 block or as four-bit codes.
    pub const PLANES: u8 = 6;
}

/// The required feature bit a frame codec needs (0 for raw frames), or
/// `None` for an unknown codec.
pub(crate) fn required_feature(codec: u8) -> Option<u64> {
    use super::layout::features;
    match codec {
        tag::NONE => Some(0),
        tag::LZ4 => Some(features::REQUIRED_LZ4),
        tag::ZSTD => Some(features::REQUIRED_ZSTD),
        tag::BASE | tag::XOR => Some(features::REQUIRED_DELTA),
        tag::PLANES => Some(features::REQUIRED_PLANES),
        _ => None,
    }
}

/// Level used by `auto`.
const AUTO_LEVEL: i32 = 1;

impl Compression {
    /// The chunk-level tag and level stored in the index.
    pub(crate) fn tag_level(self) -> (u8, i8) {
        match self {
            Compression::None => (tag::NONE, 0),
            Compression::Lz4 => (tag::LZ4, 0),
            Compression::Zstd(l) => (tag::ZSTD, l.clamp(-128, 127) as i8),
            Compression::Auto => (tag::AUTO, 0),
        }
    }

    /// The setting for a stored tag and level, if the tag is known.
    pub(crate) fn from_tag_level(t: u8, level: i8) -> Option<Self> {
        match t {
            tag::NONE => Some(Compression::None),
            tag::LZ4 => Some(Compression::Lz4),
            tag::ZSTD => Some(Compression::Zstd(i32::from(level))),
            tag::AUTO => Some(Compression::Auto),
            _ => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd(l) => write!(f, "zstd:{l}"),
            Compression::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    /// Parses `none`, `lz4`, `zstd` (level 3), `zstd:LEVEL` or `auto`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd(3)),
            "auto" => Ok(Compression::Auto),
            _ => {
                let level = s.strip_prefix("zstd:").ok_or_else(|| {
                    format!("unknown compression {s:?}; expected none, lz4, zstd, zstd:LEVEL or auto")
                })?;
                let level: i32 = level.parse().map_err(|_| format!("zstd level {level:?} is not an integer"))?;
                if !(-7..=22).contains(&level) {
                    return Err(format!("zstd level {level} is outside -7..=22"));
                }
                Ok(Compression::Zstd(level))
            }
        }
    }
}

pub(crate) use super::shuffle::{shuffle, unshuffle};

thread_local! {
    static ZSTD_C: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn zstd_compress(src: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<()> {
    ZSTD_C.with(|cell| {
        let mut slot = cell.borrow_mut();
        let reuse = matches!(&*slot, Some((l, _)) if *l == level);
        if !reuse {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(src.len()));
        match slot.as_mut() {
            Some((_, c)) => c.compress_to_buffer(src, out).map(|_| ()),
            None => Err(std::io::Error::other("zstd compressor missing")),
        }
    })
}

/// Compresses one frame. Returns the frame codec tag and, unless the frame is
/// stored raw, the compressed bytes. `shuffle_elem` > 1 shuffles first; a
/// shuffled lz4 frame is stored plane by plane (codec `PLANES`).
pub(crate) fn encode(
    raw: &[u8],
    compression: Compression,
    shuffle_elem: usize,
) -> std::io::Result<(u8, Option<Vec<u8>>)> {
    let (mut codec, level, min_saving) = match compression {
        Compression::None => return Ok((tag::NONE, None)),
        Compression::Lz4 => (tag::LZ4, 0, 1),
        Compression::Zstd(l) => (tag::ZSTD, l, 1),
        Compression::Auto => (tag::ZSTD, AUTO_LEVEL, raw.len() / 8),
    };
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let input: &[u8] = if shuffle_elem > 1 {
            shuffle(raw, shuffle_elem, &mut scratch);
            &scratch
        } else {
            raw
        };
        let mut out = Vec::new();
        if codec == tag::LZ4 && shuffle_elem > 1 {
            super::planes::encode(input, shuffle_elem, &mut out)?;
            codec = tag::PLANES;
        } else if codec == tag::LZ4 {
            out.resize(lz4_flex::block::get_maximum_output_size(input.len()), 0);
            let n =
                lz4_flex::block::compress_into(input, &mut out).map_err(|e| std::io::Error::other(e.to_string()))?;
            out.truncate(n);
        } else {
            zstd_compress(input, level, &mut out)?;
        }
        if out.len() + min_saving.max(1) > raw.len() {
            Ok((tag::NONE, None))
        } else {
            Ok((codec, Some(out)))
        }
    })
}

/// Decompresses one stored frame into `dst`, whose length is the frame's raw
/// length. Fails if the stored bytes do not decode to exactly that length.
pub(crate) fn decode(stored: &[u8], codec: u8, shuffle_elem: usize, dst: &mut [u8]) -> Result<(), String> {
    if codec == tag::NONE {
        if stored.len() != dst.len() {
            return Err(format!("raw frame holds {} bytes, expected {}", stored.len(), dst.len()));
        }
        dst.copy_from_slice(stored);
        return Ok(());
    }
    if codec == tag::PLANES {
        return decode_planes(stored, shuffle_elem, super::fill::as_uninit(dst));
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let shuffled = shuffle_elem > 1;
        if shuffled {
            // A reused buffer keeps its length: only growth is zero-filled.
            scratch.truncate(dst.len());
            scratch.resize(dst.len(), 0);
        }
        let target: &mut [u8] = if shuffled { scratch.as_mut_slice() } else { &mut *dst };
        let n = match codec {
            tag::LZ4 => lz4_flex::block::decompress_into(stored, target).map_err(|e| format!("lz4: {e}"))?,
            tag::ZSTD => ZSTD_D.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
                }
                match slot.as_mut() {
                    Some(d) => d.decompress_to_buffer(stored, target).map_err(|e| format!("zstd: {e}")),
                    None => Err("zstd decompressor missing".to_string()),
                }
            })?,
            other => return Err(format!("unknown frame codec {other}")),
        };
        if n != target.len() {
            return Err(format!("frame decoded to {n} bytes, expected {}", target.len()));
        }
        if shuffled {
            unshuffle(&scratch, shuffle_elem, dst);
        }
        Ok(())
    })
}

/// Decodes a stored `PLANES` frame into `dst`, writing each of its bytes
/// once: `dst` need not be initialised.
pub(crate) fn decode_planes(stored: &[u8], shuffle_elem: usize, dst: &mut [MaybeUninit<u8>]) -> Result<(), String> {
    SCRATCH.with(|scratch| super::planes::decode(stored, shuffle_elem, dst, &mut scratch.borrow_mut()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn codecs_round_trip(data in proptest::collection::vec(0u8..4, 0..5000), c in 0usize..4, elem in 1usize..9) {
            let compression = [Compression::None, Compression::Lz4, Compression::Zstd(3), Compression::Auto][c];
            let (codec, stored) = encode(&data, compression, elem).unwrap();
            let stored = stored.as_deref().unwrap_or(&data);
            let mut out = vec![0u8; data.len()];
            decode(stored, codec, if codec == tag::NONE { 1 } else { elem }, &mut out).unwrap();
            prop_assert_eq!(out, data);
        }
    }

    #[test]
    fn compression_parses() {
        assert_eq!("zstd:19".parse::<Compression>(), Ok(Compression::Zstd(19)));
        assert_eq!("zstd".parse::<Compression>(), Ok(Compression::Zstd(3)));
        assert!("zstd:99".parse::<Compression>().is_err());
        assert!("gzip".parse::<Compression>().is_err());
    }
}
