//! Segment files: their names and their header.
//!
//! A log is a directory of segments named `<first LSN, 20 digits>.wal`.
//! Each segment starts with a 32-byte header:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `CAIRNWAL` |
//! | 8 | 2 | format version (1) |
//! | 10 | 2 | header length (32) |
//! | 12 | 4 | flags, zero |
//! | 16 | 8 | LSN of the segment's first record |
//! | 24 | 4 | reserved, zero |
//! | 28 | 4 | CRC32C of bytes 0..28 |
//!
//! Records follow from offset 32.

use std::path::{Path, PathBuf};

/// Bytes of a segment header; records start here.
pub const HEADER_LEN: usize = 32;
/// The segment format version this code writes and reads.
pub const VERSION: u16 = 1;

const MAGIC: &[u8; 8] = b"CAIRNWAL";
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 10;
const OFF_FLAGS: usize = 12;
const OFF_FIRST_LSN: usize = 16;
const OFF_CRC: usize = 28;

/// What every segment file name ends with.
pub(crate) const SUFFIX: &str = ".wal";
const DIGITS: usize = 20;

/// The file name of the segment whose first record has `first_lsn`.
pub fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:0DIGITS$}{SUFFIX}")
}

/// The first LSN a segment file name stands for, or `None` for other files.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|lsn| (1..=super::record::MAX_LSN).contains(lsn))
}

/// A segment's path in `dir`.
pub fn path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(file_name(first_lsn))
}

/// Encodes a segment header.
pub fn encode_header(first_lsn: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let fields: [(usize, &[u8]); 4] = [
        (0, MAGIC),
        (OFF_VERSION, &VERSION.to_le_bytes()),
        (OFF_HEADER_LEN, &(HEADER_LEN as u16).to_le_bytes()),
        (OFF_FIRST_LSN, &first_lsn.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = h.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    let crc = crc32c::crc32c(h.get(..OFF_CRC).unwrap_or_default());
    if let Some(dst) = h.get_mut(OFF_CRC..HEADER_LEN) {
        dst.copy_from_slice(&crc.to_le_bytes());
    }
    h
}

/// Why a segment header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes, or all of them zero: the segment
    /// was created but its header never reached the disk.
    Missing,
    /// The bytes are there but wrong.
    Invalid(&'static str),
    /// A version this code does not read.
    Unsupported(u16),
}

/// Decodes a segment header and returns the first LSN it names.
///
/// # Errors
/// Why the header is not valid.
pub fn decode_header(buf: &[u8]) -> Result<u64, HeaderError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Err(HeaderError::Missing);
    };
    if h.iter().all(|b| *b == 0) {
        return Err(HeaderError::Missing);
    }
    if h.get(..8) != Some(MAGIC.as_slice()) {
        return Err(HeaderError::Invalid("bad magic"));
    }
    let crc = le_u32(h, OFF_CRC);
    if crc != Some(crc32c::crc32c(h.get(..OFF_CRC).unwrap_or_default())) {
        return Err(HeaderError::Invalid("header checksum mismatch"));
    }
    let version = le_u16(h, OFF_VERSION);
    match version {
        Some(VERSION) => {}
        Some(v) => return Err(HeaderError::Unsupported(v)),
        None => return Err(HeaderError::Invalid("header")),
    }
    let len = le_u16(h, OFF_HEADER_LEN);
    if len != Some(HEADER_LEN as u16) || le_u32(h, OFF_FLAGS) != Some(0) {
        return Err(HeaderError::Invalid("unknown header length or flags"));
    }
    h.get(OFF_FIRST_LSN..OFF_FIRST_LSN + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(HeaderError::Invalid("header"))
}

fn le_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_lsn() {
        assert_eq!(file_name(1), "00000000000000000001.wal");
        assert_eq!(parse_name(&file_name(u64::MAX - 1)), Some(u64::MAX - 1));
        assert_eq!(parse_name(&file_name(u64::MAX)), None, "no LSN after it");
        assert_eq!(parse_name(&file_name(0)), None, "LSNs start at 1");
        assert_eq!(parse_name("LOCK"), None);
        assert_eq!(parse_name("1.wal"), None);
        assert_eq!(parse_name("0000000000000000000x.wal"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn header_round_trips_and_every_flip_is_caught() {
        let h = encode_header(77);
        assert_eq!(decode_header(&h), Ok(77));
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(decode_header(&bad).is_err(), "flip at {i} accepted");
        }
        assert_eq!(decode_header(&h[..31]), Err(HeaderError::Missing));
        assert_eq!(decode_header(&[0; 32]), Err(HeaderError::Missing));
    }
}
