//! Delta frames: a frame of a delta file stored as a reference to the
//! same frame of its base checkpoint (`BASE`), or as the XOR of its raw
//! bytes with the base frame's, lz4-compressed (`XOR`), so that an
//! unchanged frame costs a dozen bytes and a frame with a few changed rows
//! costs about those rows. Deltas are always taken against a full
//! checkpoint, never against another delta file, so reading a frame needs
//! at most one base frame (docs/FORMAT.md, "Delta files").

use std::cell::RefCell;

use super::codec::tag;
use super::index::FrameEntry;

/// Bytes of the base-frame reference that starts every delta frame: the
/// base frame's stored length (u32) and xxh3-64 checksum (u64).
pub(crate) const REF_LEN: usize = 12;

/// Which frame of the base a delta frame was taken against: the base's
/// frame at the same position of the chunk with the same name, identified
/// by its frame-table entry, so a different base is caught frame by frame
/// before any of its bytes are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BaseRef {
    pub stored_len: u32,
    pub checksum: u64,
}

impl BaseRef {
    pub(crate) fn of(f: &FrameEntry) -> Self {
        BaseRef { stored_len: f.stored_len, checksum: f.checksum }
    }

    pub(crate) fn matches(&self, f: &FrameEntry) -> bool {
        *self == Self::of(f)
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
    }

    /// The reference at the start of a delta frame's stored bytes, and what
    /// follows it.
    pub(crate) fn split(stored: &[u8]) -> Result<(BaseRef, &[u8]), String> {
        let (Some(len), Some(sum), Some(rest)) = (stored.get(..4), stored.get(4..REF_LEN), stored.get(REF_LEN..))
        else {
            return Err(format!(
                "a delta frame of {} bytes is shorter than its {REF_LEN}-byte base reference",
                stored.len()
            ));
        };
        let mut l = [0u8; 4];
        l.copy_from_slice(len);
        let mut s = [0u8; 8];
        s.copy_from_slice(sum);
        Ok((BaseRef { stored_len: u32::from_le_bytes(l), checksum: u64::from_le_bytes(s) }, rest))
    }
}

/// Whether a frame codec tag is one of the delta codecs.
pub(crate) fn is_delta(codec: u8) -> bool {
    codec == tag::BASE || codec == tag::XOR
}

thread_local! {
    static XOR_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// XORs `src` into `dst` (equal lengths), a word at a time.
fn xor_into(dst: &mut [u8], src: &[u8]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(a);
        y.copy_from_slice(b);
        a.copy_from_slice(&(u64::from_ne_bytes(x) ^ u64::from_ne_bytes(y)).to_ne_bytes());
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a ^= b;
    }
}

/// Encodes `raw` against the base frame's raw bytes `base` (same length):
/// `BASE` when they are equal, `XOR` when the compressed difference takes
/// at most half the frame; `None` when the frame should be stored whole.
/// Frames of [`REF_LEN`] bytes or fewer are always stored whole (a delta
/// frame is never larger than its raw bytes).
pub(crate) fn encode(raw: &[u8], base: &[u8], r: BaseRef) -> Option<(u8, Vec<u8>)> {
    if raw.len() != base.len() || raw.len() <= REF_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(REF_LEN);
    r.put(&mut out);
    if raw == base {
        return Some((tag::BASE, out));
    }
    out.extend_from_slice(&xor_block(raw, base)?);
    (out.len() <= raw.len() / 2).then_some((tag::XOR, out))
}

/// The lz4 block of `raw` XOR `base` (equal lengths): what an XOR frame,
/// or an XOR piece of a store manifest, holds after its base reference.
pub(crate) fn xor_block(raw: &[u8], base: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != base.len() {
        return None;
    }
    XOR_SCRATCH.with(|cell| {
        let mut x = cell.borrow_mut();
        x.clear();
        x.extend_from_slice(raw);
        xor_into(&mut x, base);
        Some(lz4_flex::block::compress(&x))
    })
}

/// Decodes a delta frame's payload (its stored bytes after the reference)
/// into `dst`, which holds the base frame's raw bytes: unchanged for
/// `BASE`, XORed with the decompressed difference for `XOR`.
pub(crate) fn apply(codec: u8, payload: &[u8], dst: &mut [u8]) -> Result<(), String> {
    match codec {
        tag::BASE if payload.is_empty() => Ok(()),
        tag::BASE => Err(format!("a base-frame reference carries {} unexpected bytes", payload.len())),
        tag::XOR => XOR_SCRATCH.with(|cell| {
            let mut x = cell.borrow_mut();
            x.truncate(dst.len());
            x.resize(dst.len(), 0);
            let n = lz4_flex::block::decompress_into(payload, &mut x).map_err(|e| format!("lz4 delta: {e}"))?;
            if n != dst.len() {
                return Err(format!("delta decoded to {n} bytes, expected {}", dst.len()));
            }
            xor_into(dst, &x);
            Ok(())
        }),
        other => Err(format!("frame codec {other} is not a delta codec")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const R: BaseRef = BaseRef { stored_len: 4096, checksum: 0x1234_5678_9abc_def0 };

    #[test]
    fn an_unchanged_frame_is_a_reference() {
        let base = vec![7u8; 4096];
        let (codec, stored) = encode(&base, &base, R).unwrap();
        assert_eq!((codec, stored.len()), (tag::BASE, REF_LEN));
        let (r, payload) = BaseRef::split(&stored).unwrap();
        assert_eq!(r, R);
        let mut dst = base.clone();
        apply(codec, payload, &mut dst).unwrap();
        assert_eq!(dst, base);
    }

    #[test]
    fn a_few_changed_rows_cost_about_their_rows() {
        let base: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut raw = base.clone();
        for row in [3usize, 500, 1700] {
            for b in &mut raw[row * 512..row * 512 + 512] {
                *b = b.wrapping_add(1);
            }
        }
        let (codec, stored) = encode(&raw, &base, R).unwrap();
        assert_eq!(codec, tag::XOR);
        assert!(stored.len() < 3 * 512 + 4096, "{} bytes for 1536 changed", stored.len());
        let mut dst = base.clone();
        apply(codec, &stored[REF_LEN..], &mut dst).unwrap();
        assert_eq!(dst, raw);
    }

    #[test]
    fn a_frame_that_changed_throughout_is_stored_whole() {
        let base = vec![0u8; 4096];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let raw: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(encode(&raw, &base, R).is_none());
        assert!(encode(&[1; 12], &[1; 12], R).is_none(), "a tiny frame is never a delta");
    }

    #[test]
    fn damaged_deltas_are_errors() {
        assert!(BaseRef::split(&[0; 11]).is_err());
        let mut dst = vec![0u8; 64];
        assert!(apply(tag::BASE, &[1], &mut dst).is_err());
        assert!(apply(tag::XOR, &[0xff; 9], &mut dst).is_err());
        assert!(apply(tag::NONE, &[], &mut dst).is_err());
    }

    proptest! {
        #[test]
        fn deltas_round_trip(base in proptest::collection::vec(0u8..3, 13..3000), flips in proptest::collection::vec(any::<usize>(), 0..20)) {
            let mut raw = base.clone();
            for f in flips {
                let i = f % raw.len();
                raw[i] ^= 0x5a;
            }
            if let Some((codec, stored)) = encode(&raw, &base, R) {
                let (r, payload) = BaseRef::split(&stored).unwrap();
                prop_assert_eq!(r, R);
                prop_assert!(stored.len() < raw.len());
                let mut dst = base.clone();
                apply(codec, payload, &mut dst).unwrap();
                prop_assert_eq!(dst, raw);
            }
        }
    }
}
