//! Record framing: how one log record is laid out inside a segment.
//!
//! Every record starts on an 8-byte boundary of its segment:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | CRC32C of bytes 4..24 and of the payload |
//! | 4 | 4 | payload length (at most [`MAX_PAYLOAD`]) |
//! | 8 | 8 | LSN |
//! | 16 | 1 | type ([`RecordType`]: 1 data, 2 durable mark; 0 is never written) |
//! | 17 | 3 | reserved, zero |
//! | 20 | 4 | durable distance: the record's LSN minus the highest LSN known durable when it was framed, `u32::MAX` when unknown |
//! | 24 | len | payload |
//! | 24+len | 0..7 | zero padding to a multiple of 8 (checked: the CRC does not cover it) |
//!
//! A durable mark is a header alone (length 0) whose LSN field names the
//! record just before it, with distance 0: it says every record up to that
//! one is durable. The writer adds one after each sync, so the last batch
//! before a crash is vouched for too.
//!
//! A header of 24 zero bytes is where the log ends (zero-filled or
//! preallocated space). Integers are little-endian.

/// Bytes of a record header.
pub const HEADER_LEN: usize = 24;
/// Records start at multiples of this in their segment.
pub const ALIGN: usize = 8;
/// The largest payload one record may carry (64 MiB).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// The highest LSN a record may have; LSNs start at 1. Keeping one below
/// `u64::MAX` lets "the LSN after" always exist.
pub const MAX_LSN: u64 = u64::MAX - 1;

const OFF_CRC: usize = 0;
const OFF_LEN: usize = 4;
const OFF_LSN: usize = 8;
const OFF_TYPE: usize = 16;
const OFF_RESERVED: usize = 17;
const OFF_DISTANCE: usize = 20;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// A caller's payload.
    Data = 1,
    /// No payload: says every record up to its LSN is durable.
    DurableMark = 2,
}

impl RecordType {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordType::Data),
            2 => Some(RecordType::DurableMark),
            _ => None,
        }
    }
}

/// The total bytes a record with `payload_len` bytes takes, padding included.
pub fn frame_len(payload_len: usize) -> usize {
    (HEADER_LEN + payload_len).next_multiple_of(ALIGN)
}

/// Appends the frame of one record to `out`, which must hold whole frames
/// only (so the new one starts aligned). `durable` is the highest LSN known
/// durable now.
pub fn encode(out: &mut Vec<u8>, lsn: u64, durable: u64, payload: &[u8]) {
    encode_frame(out, RecordType::Data, lsn, durable, payload);
}

/// The durable mark saying every record up to `lsn` is durable.
pub fn mark(lsn: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    encode_frame(&mut out, RecordType::DurableMark, lsn, lsn, &[]);
    out
}

fn encode_frame(out: &mut Vec<u8>, kind: RecordType, lsn: u64, durable: u64, payload: &[u8]) {
    let distance = u32::try_from(lsn.saturating_sub(durable)).unwrap_or(u32::MAX);
    let mut header = [0u8; HEADER_LEN];
    put(&mut header, OFF_LEN, &(payload.len() as u32).to_le_bytes());
    put(&mut header, OFF_LSN, &lsn.to_le_bytes());
    put(&mut header, OFF_TYPE, &[kind as u8]);
    put(&mut header, OFF_DISTANCE, &distance.to_le_bytes());
    let crc = checksum(&header, payload);
    put(&mut header, OFF_CRC, &crc.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    out.resize(start + frame_len(payload.len()), 0);
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let tail = header.get(OFF_LEN..HEADER_LEN).unwrap_or_default();
    crc32c::crc32c_append(crc32c::crc32c(tail), payload)
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// A record decoded from a segment, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The record's LSN.
    pub lsn: u64,
    /// The record's type.
    pub kind: RecordType,
    /// The highest LSN that was durable when this record was framed.
    pub durable: u64,
    /// The payload.
    pub payload: &'a [u8],
    /// Bytes the frame takes, padding included.
    pub len: usize,
}

/// What lies at an offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record.
    Record(Frame<'a>),
    /// The end of the log: no bytes left, or only zeros where a header
    /// would start.
    End,
    /// Bytes that are not a valid record: a torn write or damage.
    Invalid(&'static str),
}

/// The LSN field of a header at the start of `buf`, unchecked.
pub fn peek_lsn(buf: &[u8]) -> Option<u64> {
    u64_at(buf, OFF_LSN)
}

/// A record header that passed every check that needs no payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The checksum it claims for itself and its payload.
    pub crc: u32,
    /// The payload length.
    pub len: usize,
    /// The LSN field.
    pub lsn: u64,
    /// The record's type.
    pub kind: RecordType,
    /// The durable distance field.
    pub distance: u32,
    /// The header's bytes, which the checksum covers (from offset 4).
    pub bytes: [u8; HEADER_LEN],
}

impl Header {
    /// Bytes the frame takes, padding included.
    pub fn frame_len(&self) -> usize {
        frame_len(self.len)
    }

    /// The checksum of the header alone, to be continued over the payload
    /// with [`crc32c::crc32c_append`].
    pub fn crc_start(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(OFF_LEN..HEADER_LEN).unwrap_or_default())
    }

    /// The highest LSN this frame says was durable.
    pub fn durable(&self) -> u64 {
        if self.distance == u32::MAX {
            0
        } else {
            self.lsn.saturating_sub(u64::from(self.distance))
        }
    }
}

/// What the first [`HEADER_LEN`] bytes at an offset are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// A header whose checksum is still to be checked.
    Header(Header),
    /// The end of the log: no bytes, or only zeros where a header would be.
    End,
    /// Not a record header.
    Invalid(&'static str),
}

/// Checks the header at the start of `buf` (which may be shorter than a
/// header at the end of a segment): everything but the checksum, so that
/// trying every offset of a damaged region (salvage) costs little.
pub fn check_header(buf: &[u8]) -> HeaderCheck {
    let Some(bytes) = buf.get(..HEADER_LEN).and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok()) else {
        return if buf.iter().all(|b| *b == 0) {
            HeaderCheck::End
        } else {
            HeaderCheck::Invalid("partial record header")
        };
    };
    if bytes.iter().all(|b| *b == 0) {
        return HeaderCheck::End;
    }
    let (Some(crc), Some(len), Some(lsn), Some(distance)) =
        (u32_at(&bytes, OFF_CRC), u32_at(&bytes, OFF_LEN), u64_at(&bytes, OFF_LSN), u32_at(&bytes, OFF_DISTANCE))
    else {
        return HeaderCheck::Invalid("record header");
    };
    if lsn == 0 || lsn > MAX_LSN {
        return HeaderCheck::Invalid("LSN out of range");
    }
    let len = len as usize;
    if len > MAX_PAYLOAD {
        return HeaderCheck::Invalid("record length over the limit");
    }
    let Some(kind) = bytes.get(OFF_TYPE).copied().and_then(RecordType::from_byte) else {
        return HeaderCheck::Invalid("unknown record type");
    };
    if bytes.get(OFF_RESERVED..OFF_DISTANCE).is_some_and(|r| r.iter().any(|b| *b != 0)) {
        return HeaderCheck::Invalid("reserved record bytes are not zero");
    }
    if kind == RecordType::DurableMark && (len != 0 || distance != 0) {
        return HeaderCheck::Invalid("durable mark with a payload");
    }
    HeaderCheck::Header(Header { crc, len, lsn, kind, distance, bytes })
}

/// Decodes the frame that starts at the beginning of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let h = match check_header(buf) {
        HeaderCheck::Header(h) => h,
        HeaderCheck::End => return Decoded::End,
        HeaderCheck::Invalid(why) => return Decoded::Invalid(why),
    };
    // The padding belongs to the frame: a frame cut anywhere is torn, and
    // the next frame always starts aligned.
    let flen = h.frame_len();
    let Some(frame) = buf.get(..flen) else {
        return Decoded::Invalid("record runs past the end of the segment");
    };
    let (Some(payload), Some(padding)) = (frame.get(HEADER_LEN..HEADER_LEN + h.len), frame.get(HEADER_LEN + h.len..))
    else {
        return Decoded::Invalid("record runs past the end of the segment");
    };
    if crc32c::crc32c_append(h.crc_start(), payload) != h.crc {
        return Decoded::Invalid("record checksum mismatch");
    }
    if let Some(why) = check_padding(padding) {
        return Decoded::Invalid(why);
    }
    Decoded::Record(Frame { lsn: h.lsn, kind: h.kind, durable: h.durable(), payload, len: flen })
}

/// Why a frame's padding is refused: the writer pads with zeros, and the
/// checksum does not cover the padding, so this is its only check.
pub fn check_padding(padding: &[u8]) -> Option<&'static str> {
    padding.iter().any(|b| *b != 0).then_some("record padding is not zero")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zeros_end_the_log() {
        assert_eq!(decode(&[]), Decoded::End);
        assert_eq!(decode(&[0; 7]), Decoded::End);
        assert_eq!(decode(&[0; 100]), Decoded::End);
        assert!(matches!(decode(&[0, 0, 1]), Decoded::Invalid(_)));
    }

    #[test]
    fn frames_are_aligned_and_padded_with_zeros() {
        let mut out = Vec::new();
        encode(&mut out, 7, 5, b"hello");
        assert_eq!(out.len(), 32);
        assert!(out[29..].iter().all(|b| *b == 0));
        let Decoded::Record(f) = decode(&out) else { panic!("not a record") };
        assert_eq!((f.lsn, f.durable, f.payload, f.len), (7, 5, &b"hello"[..], 32));
    }

    #[test]
    fn a_mark_vouches_for_its_lsn() {
        let m = mark(9);
        assert_eq!(m.len(), HEADER_LEN);
        let Decoded::Record(f) = decode(&m) else { panic!("not a frame") };
        assert_eq!((f.kind, f.lsn, f.durable, f.payload.len(), f.len), (RecordType::DurableMark, 9, 9, 0, 24));
    }

    #[test]
    fn unknown_distance_means_nothing_known_durable() {
        let mut out = Vec::new();
        encode(&mut out, MAX_LSN, 0, b"");
        let Decoded::Record(f) = decode(&out) else { panic!("not a record") };
        assert_eq!(f.durable, 0);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let mut out = Vec::new();
        encode(&mut out, 42, 40, b"payload bytes");
        assert_eq!(out.len(), HEADER_LEN + 13 + 3, "the frame has padding");
        // The padding too: the checksum does not cover it, the decoder does.
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                assert!(!matches!(decode(&bad), Decoded::Record(_)), "flip at byte {i} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_reading() {
        let mut out = Vec::new();
        encode(&mut out, 1, 0, b"x");
        out[OFF_LEN..OFF_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&out), Decoded::Invalid("record length over the limit"));
    }

    proptest! {
        #[test]
        fn round_trip(records in prop::collection::vec((1..=MAX_LSN, any::<u64>(), prop::collection::vec(any::<u8>(), 0..300)), 1..20)) {
            let mut out = Vec::new();
            for (lsn, durable, payload) in &records {
                encode(&mut out, *lsn, *durable, payload);
            }
            let mut at = 0;
            for (lsn, _, payload) in &records {
                let Decoded::Record(f) = decode(&out[at..]) else { panic!("record at {at}") };
                prop_assert_eq!(f.lsn, *lsn);
                prop_assert_eq!(f.payload, &payload[..]);
                at += f.len;
            }
            prop_assert_eq!(decode(&out[at..]), Decoded::End);
        }
    }
}
