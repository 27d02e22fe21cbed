//! The `planes` frame codec (tag 6) of lz4 + shuffle: a byte-shuffled
//! frame stored plane by plane, each plane in the cheapest way that shrinks
//! it. A float tensor's low mantissa bytes are noise that lz4 cannot
//! shrink; its sign-and-exponent bytes take few values, which lz4 shrinks
//! slowly (by short matches) and four-bit codes shrink further at a tenth
//! of the cost. Blosc's split mode compresses each plane on its own for
//! the same reason.
//!
//! Layout (docs/FORMAT.md, "Frame codecs"): for each of the `e` planes of
//! `n = len / e` bytes, a mode byte, a u32 LE payload length and the
//! payload; then the `len mod e` trailing bytes as they are.

use std::mem::MaybeUninit;

use super::nibbles::{self, Window};

/// How a plane is stored.
pub(crate) mod mode {
    /// The plane's bytes as they are.
    pub const RAW: u8 = 0;
    /// An lz4 block of the plane.
    pub const LZ4: u8 = 1;
    /// Rotation flag (0 or 1), window low value, the plane's four-bit codes,
    /// then its exception bytes ([`super::nibbles`]).
    pub const NIBBLES: u8 = 2;
}

/// Bytes before each plane's payload: mode u8, length u32.
const RECORD: usize = 5;

/// Bytes before the codes of a [`mode::NIBBLES`] payload.
const NIBBLES_HEAD: usize = 2;

/// One plane byte in this many is sampled to choose the plane's mode (a
/// prime, so that a period in the data rarely lines up with it).
const SAMPLE_EVERY: usize = 61;

/// How a plane will be tried first.
enum Plan {
    Nibbles(Window),
    Lz4,
}

/// Bytes at the start of a plane that lz4 compresses to judge whether it
/// beats four-bit codes there.
const LZ4_PROBE: usize = 4 << 10;

/// Chooses from samples: four-bit codes when a window covers all but a
/// thirty-second of the sampled bytes, unless lz4 does clearly better
/// than the codes' half: when a single value fills seven eighths of the
/// sample (long runs, such as zeros) or lz4 shrinks the plane's first
/// [`LZ4_PROBE`] bytes below 45 % (repeating patterns); lz4 otherwise.
fn plan(plane: &[u8], probe: &mut Vec<u8>) -> Plan {
    let mut hist = [0u32; 256];
    let mut samples = 0u32;
    for b in plane.iter().step_by(SAMPLE_EVERY) {
        if let Some(n) = hist.get_mut(usize::from(*b)) {
            *n += 1;
        }
        samples += 1;
    }
    let top = hist.iter().copied().max().unwrap_or(0);
    let (window, covered) = Window::best(&hist);
    if samples == 0 || top * 8 >= samples * 7 || covered * 32 < samples * 31 {
        return Plan::Lz4;
    }
    let head = plane.get(..LZ4_PROBE).unwrap_or(plane);
    probe.clear();
    probe.resize(lz4_flex::block::get_maximum_output_size(head.len()), 0);
    match lz4_flex::block::compress_into(head, probe) {
        Ok(len) if len * 20 < head.len() * 9 => Plan::Lz4,
        _ => Plan::Nibbles(window),
    }
}

/// Encodes the shuffled frame `shuffled` (planes of `elem` > 1 bytes per
/// element) into `out`.
pub(crate) fn encode(shuffled: &[u8], elem: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    let n = shuffled.len() / elem.max(1);
    let mut exceptions = Vec::new();
    for b in 0..elem {
        let plane = shuffled.get(b * n..(b + 1) * n).unwrap_or(&[]);
        let at = out.len();
        out.extend_from_slice(&[0; RECORD]);
        let mut stored = None;
        if let Plan::Nibbles(w) = plan(plane, &mut exceptions) {
            out.extend_from_slice(&[u8::from(w.rotate), w.low]);
            exceptions.clear();
            nibbles::pack(plane, w, out, &mut exceptions);
            out.extend_from_slice(&exceptions);
            if out.len() - at - RECORD < n {
                stored = Some(mode::NIBBLES);
            } else {
                out.truncate(at + RECORD);
            }
        }
        if stored.is_none() {
            out.resize(at + RECORD + lz4_flex::block::get_maximum_output_size(n), 0);
            let body = out.get_mut(at + RECORD..).unwrap_or_default();
            let len = lz4_flex::block::compress_into(plane, body).map_err(|e| std::io::Error::other(e.to_string()))?;
            if len < n {
                out.truncate(at + RECORD + len);
                stored = Some(mode::LZ4);
            } else {
                out.truncate(at + RECORD);
                out.extend_from_slice(plane);
            }
        }
        let len = (out.len() - at - RECORD) as u32;
        if let Some([m, length @ ..]) = out.get_mut(at..at + RECORD) {
            *m = stored.unwrap_or(mode::RAW);
            length.copy_from_slice(&len.to_le_bytes());
        }
    }
    out.extend_from_slice(shuffled.get(n * elem..).unwrap_or(&[]));
    Ok(())
}

/// Decodes a stored frame into `dst`, whose length is the frame's raw
/// length, unshuffled, writing each of its bytes once (it need not be
/// initialised): planes stored raw are interleaved from `stored`
/// itself, the others decoded into `scratch` first. Fails unless every
/// plane decodes to exactly its length and the bytes after the planes are
/// exactly the trailing ones.
pub(crate) fn decode(
    stored: &[u8],
    elem: usize,
    dst: &mut [MaybeUninit<u8>],
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    if elem < 2 {
        return Err("a planes frame in a chunk that is not shuffled".to_string());
    }
    let n = dst.len() / elem;
    let mut records = Vec::with_capacity(elem);
    let mut rest = stored;
    for b in 0..elem {
        let (Some(&[m, l0, l1, l2, l3]), Some(after)) = (rest.get(..RECORD), rest.get(RECORD..)) else {
            return Err(format!("plane {b}: record cut short"));
        };
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let Some(payload) = after.get(..len) else {
            return Err(format!("plane {b}: {len} payload bytes, {} left", after.len()));
        };
        rest = after.get(len..).unwrap_or_default();
        records.push((m, payload));
    }
    let tail = rest;
    if tail.len() != dst.len() - n * elem {
        return Err(format!("{} bytes after the planes, expected {}", tail.len(), dst.len() - n * elem));
    }
    // Reused buffers keep their length: only growth is zero-filled.
    scratch.truncate(n * elem);
    scratch.resize(n * elem, 0);
    for (b, (mode, payload)) in records.iter().enumerate() {
        if let (false, Some(plane)) = (*mode == mode::RAW, scratch.get_mut(b * n..(b + 1) * n)) {
            decode_plane(*mode, payload, plane).map_err(|e| format!("plane {b}: {e}"))?;
        }
    }
    let mut planes = Vec::with_capacity(elem);
    for (b, (mode, payload)) in records.iter().enumerate() {
        if *mode == mode::RAW {
            if payload.len() != n {
                return Err(format!("plane {b}: raw plane of {} bytes, expected {n}", payload.len()));
            }
            planes.push(*payload);
        } else {
            planes.push(scratch.get(b * n..(b + 1) * n).unwrap_or_default());
        }
    }
    super::shuffle::unshuffle_planes(&planes, tail, dst)
}

fn decode_plane(mode: u8, payload: &[u8], plane: &mut [u8]) -> Result<(), String> {
    match mode {
        mode::LZ4 => match lz4_flex::block::decompress_into(payload, plane) {
            Ok(len) if len == plane.len() => Ok(()),
            Ok(len) => Err(format!("lz4 plane decoded to {len} bytes, expected {}", plane.len())),
            Err(e) => Err(format!("lz4: {e}")),
        },
        mode::NIBBLES => {
            let codes_end = NIBBLES_HEAD + plane.len().div_ceil(2);
            let (Some(&[rotate, low]), Some(codes), Some(exceptions)) =
                (payload.get(..NIBBLES_HEAD), payload.get(NIBBLES_HEAD..codes_end), payload.get(codes_end..))
            else {
                return Err(format!("coded plane of {} bytes is too short", payload.len()));
            };
            if rotate > 1 {
                return Err(format!("rotation flag {rotate}"));
            }
            nibbles::unpack(codes, exceptions, Window { rotate: rotate == 1, low }, plane)
        }
        other => Err(format!("unknown plane mode {other}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::format::shuffle::shuffle;
    use proptest::prelude::*;

    fn round_trip(raw: &[u8], elem: usize) -> Vec<u8> {
        let mut shuffled = Vec::new();
        shuffle(raw, elem, &mut shuffled);
        let mut stored = Vec::new();
        encode(&shuffled, elem, &mut stored).unwrap();
        let mut back = vec![0u8; raw.len()];
        decode(&stored, elem, crate::format::fill::as_uninit(&mut back), &mut vec![1; 5]).unwrap();
        assert_eq!(back, raw);
        stored
    }

    /// The modes of a stored frame's planes.
    fn modes(stored: &[u8], elem: usize, n: usize) -> Vec<u8> {
        let mut at = 0;
        (0..elem)
            .map(|_| {
                let len = u32::from_le_bytes(stored[at + 1..at + 5].try_into().unwrap()) as usize;
                let m = stored[at];
                assert!(m != mode::RAW || len == n);
                at += RECORD + len;
                m
            })
            .collect()
    }

    fn weights(len: usize) -> Vec<u8> {
        // Deterministic values near ±0.02: noisy mantissas, few exponents.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 40) as f32 / (1u64 << 24) as f32;
                let v = (u - 0.5) * 0.08 * (u - 0.5).abs().sqrt();
                v.to_le_bytes()
            })
            .collect()
    }

    proptest! {
        #[test]
        fn any_frame_round_trips(
            raw in proptest::collection::vec(prop_oneof![4 => 0x3bu8..0x3e, 1 => any::<u8>(), 2 => Just(0u8)], 0..3000),
            elem in 2usize..9,
        ) {
            round_trip(&raw, elem);
        }
    }

    #[test]
    fn float_weights_code_their_exponents_and_keep_mantissas_raw() {
        let raw = weights(1 << 14);
        let stored = round_trip(&raw, 4);
        assert_eq!(modes(&stored, 4, 1 << 14), [mode::RAW, mode::RAW, mode::RAW, mode::NIBBLES]);
        assert!(stored.len() < raw.len() * 7 / 8 + 200, "{} of {}", stored.len(), raw.len());
    }

    #[test]
    fn runs_of_one_value_go_to_lz4() {
        // Small random counts: their low bytes take codes, the zero bytes lz4.
        let mut x = 88_172_645_463_325_252u64;
        let raw: Vec<u8> = (0..4096)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 33) as u32 % 7).to_le_bytes()
            })
            .collect();
        let stored = round_trip(&raw, 4);
        assert_eq!(modes(&stored, 4, 4096), [mode::NIBBLES, mode::LZ4, mode::LZ4, mode::LZ4]);
    }

    #[test]
    fn repeating_patterns_go_to_lz4() {
        // Codes would halve the low bytes; lz4 finds their period.
        let raw: Vec<u8> = (0..4096u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        let stored = round_trip(&raw, 4);
        assert_eq!(modes(&stored, 4, 4096), [mode::LZ4; 4]);
        assert!(stored.len() < 400, "{}", stored.len());
    }

    #[test]
    fn trailing_bytes_follow_the_planes() {
        let mut raw = weights(1000);
        raw.extend_from_slice(&[1, 2, 3]);
        let stored = round_trip(&raw, 4);
        assert_eq!(&stored[stored.len() - 3..], &[1, 2, 3]);
        // Fewer bytes than one element: no plane has bytes.
        round_trip(&[9, 8, 7], 4);
    }

    fn bad_elem_1(stored: &[u8], back: &mut [u8]) -> bool {
        decode(stored, 1, crate::format::fill::as_uninit(back), &mut Vec::new()).is_err()
    }

    #[test]
    fn damaged_frames_are_refused() {
        let raw = weights(2048);
        let mut shuffled = Vec::new();
        shuffle(&raw, 4, &mut shuffled);
        let mut stored = Vec::new();
        encode(&shuffled, 4, &mut stored).unwrap();
        let mut back = vec![0u8; raw.len()];
        let bad =
            |s: &[u8], back: &mut [u8]| decode(s, 4, crate::format::fill::as_uninit(back), &mut Vec::new()).is_err();
        // Cut anywhere, one byte more, an unknown mode, a bad length, a
        // rotation flag other than 0 and 1, not shuffled.
        for cut in [0, 3, RECORD, stored.len() / 2, stored.len() - 1] {
            assert!(bad(&stored[..cut], &mut back), "cut at {cut}");
        }
        assert!(bad(&[&stored[..], &[0]].concat(), &mut back));
        let mut s = stored.clone();
        s[0] = 9;
        assert!(bad(&s, &mut back));
        let mut s = stored.clone();
        s[1] ^= 1;
        assert!(bad(&s, &mut back));
        let last = modes(&stored, 4, 2048).len() - 1;
        assert_eq!(modes(&stored, 4, 2048)[last], mode::NIBBLES);
        let mut s = stored.clone();
        s[3 * (RECORD + 2048) + RECORD] = 2;
        assert!(bad(&s, &mut back));
        assert!(bad_elem_1(&stored, &mut back));
        // A raw plane's length must be the plane's.
        let mut s = stored.clone();
        s[1..5].copy_from_slice(&2047u32.to_le_bytes());
        assert!(bad(&s, &mut back));
        assert!(!bad(&stored, &mut back));
    }
}
