//! Four-bit codes for a byte plane whose values crowd into a narrow range,
//! as the sign-and-exponent bytes of floats do: a [`Window`] of fifteen
//! consecutive values gets the codes 0..=14, and code 15 escapes to an
//! exception byte stored after the codes. Two codes share a byte (the
//! even element's in the low nibble). Packing and unpacking take 32
//! bytes per SSE2 step on x86_64 (SSE2 is part of the architecture) and
//! fall back to the plain loop elsewhere and for the last partial step.

/// The escape code: the byte is the next exception.
pub(crate) const ESCAPE: u8 = 15;

/// Bytes one SIMD step codes.
const STEP: usize = 32;

/// Fifteen consecutive byte values, taken after an optional rotation left
/// by one bit, which moves a float's sign bit (the top bit of its highest
/// byte) to the bottom, so that positive and negative numbers of one
/// magnitude sit side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Rotate each byte left by one bit before subtracting `low`.
    pub rotate: bool,
    /// The first value of the window, after the rotation.
    pub low: u8,
}

impl Window {
    /// The byte's code: its place in the window, or [`ESCAPE`].
    #[inline(always)]
    fn code(self, b: u8) -> u8 {
        let r = if self.rotate { b.rotate_left(1) } else { b };
        r.wrapping_sub(self.low).min(ESCAPE)
    }

    /// The byte a code below [`ESCAPE`] stands for.
    #[inline(always)]
    fn value(self, code: u8) -> u8 {
        let v = self.low.wrapping_add(code);
        if self.rotate {
            v.rotate_right(1)
        } else {
            v
        }
    }

    /// The window covering the most of `hist` (counts of byte values), and
    /// how many it covers. Ties go to the lowest window, unrotated first.
    pub(crate) fn best(hist: &[u32; 256]) -> (Window, u32) {
        let mut best = (Window { rotate: false, low: 0 }, 0u32);
        for rotate in [false, true] {
            // Counts by rotated value.
            let mut by = [0u32; 256];
            for (v, n) in hist.iter().enumerate() {
                let r = if rotate { (v as u8).rotate_left(1) } else { v as u8 };
                if let Some(slot) = by.get_mut(usize::from(r)) {
                    *slot = *n;
                }
            }
            let at = |i: usize| by.get(i % 256).copied().unwrap_or(0);
            let mut covered: u32 = (0..usize::from(ESCAPE)).map(at).sum();
            for low in 0..256usize {
                if covered > best.1 {
                    best = (Window { rotate, low: low as u8 }, covered);
                }
                covered = covered - at(low) + at(low + usize::from(ESCAPE));
            }
        }
        best
    }
}

/// Appends the `ceil(plane.len() / 2)` code bytes of `plane` to `codes` (an
/// odd last byte's high nibble is zero) and its exceptions, in order, to
/// `exceptions`.
pub(crate) fn pack(plane: &[u8], w: Window, codes: &mut Vec<u8>, exceptions: &mut Vec<u8>) {
    let start = codes.len();
    codes.resize(start + plane.len().div_ceil(2), 0);
    let Some(out) = codes.get_mut(start..) else { return };
    let done = simd::pack(plane, w, out, exceptions);
    let (Some(rest), Some(out)) = (plane.get(done..), out.get_mut(done / 2..)) else { return };
    for (pair, o) in rest.chunks(2).zip(out) {
        let mut byte = 0;
        for (shift, b) in [0, 4].into_iter().zip(pair) {
            let c = w.code(*b);
            if c == ESCAPE {
                exceptions.push(*b);
            }
            byte |= c << shift;
        }
        *o = byte;
    }
}

/// Fills `dst` from its codes and exceptions, as [`pack`] wrote them.
/// Fails unless `codes` holds exactly `ceil(dst.len() / 2)` bytes, every
/// escape has its exception and every exception its escape, and an odd
/// last byte's unused nibble is zero.
pub(crate) fn unpack(codes: &[u8], exceptions: &[u8], w: Window, dst: &mut [u8]) -> Result<(), String> {
    if codes.len() != dst.len().div_ceil(2) {
        return Err(format!("{} code bytes for a plane of {} bytes", codes.len(), dst.len()));
    }
    let mut next = Exceptions { bytes: exceptions, used: 0 };
    let done = simd::unpack(codes, w, dst, &mut next)?;
    let (Some(rest), Some(codes)) = (dst.get_mut(done..), codes.get(done / 2..)) else {
        return Err("plane shorter than its coded part".to_string());
    };
    for (pair, byte) in rest.chunks_mut(2).zip(codes) {
        let single = pair.len() == 1;
        if single && byte >> 4 != 0 {
            return Err("the unused nibble of an odd plane is not zero".to_string());
        }
        for (shift, b) in [0, 4].into_iter().zip(pair) {
            *b = next.decode(w, (byte >> shift) & 0x0f)?;
        }
    }
    if next.used != exceptions.len() {
        return Err(format!("{} exception bytes for {} escapes", exceptions.len(), next.used));
    }
    Ok(())
}

/// The exceptions of a plane being unpacked, and how many are taken.
struct Exceptions<'a> {
    bytes: &'a [u8],
    used: usize,
}

impl Exceptions<'_> {
    fn take(&mut self) -> Result<u8, String> {
        let b =
            self.bytes.get(self.used).copied().ok_or_else(|| format!("escape {} has no exception byte", self.used))?;
        self.used += 1;
        Ok(b)
    }

    #[inline(always)]
    fn decode(&mut self, w: Window, code: u8) -> Result<u8, String> {
        if code == ESCAPE {
            self.take()
        } else {
            Ok(w.value(code))
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
        _mm_or_si128, _mm_packus_epi16, _mm_set1_epi16, _mm_set1_epi8, _mm_slli_epi16, _mm_srli_epi16,
        _mm_storeu_si128, _mm_sub_epi8, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
    };

    use super::{Exceptions, Window, ESCAPE, STEP};

    /// Loads the 16 bytes of `s` at `at`.
    #[inline(always)]
    fn load(s: &[u8; STEP], at: usize) -> __m128i {
        let half = s.get(at..at + 16).unwrap_or(&[0; 16]);
        // SAFETY: SSE2 is part of x86_64; `half` holds 16 readable bytes.
        unsafe { _mm_loadu_si128(half.as_ptr().cast()) }
    }

    /// Codes whole steps of 32 bytes of `plane` into `out` (16 bytes per
    /// step) and returns how many plane bytes it did.
    pub(super) fn pack(plane: &[u8], w: Window, out: &mut [u8], exceptions: &mut Vec<u8>) -> usize {
        let mut done = 0;
        // SAFETY (all intrinsics here): SSE2, part of x86_64; loads and
        // stores go through `load` and fixed-size arrays.
        unsafe {
            let low = _mm_set1_epi8(w.low as i8);
            let escape = _mm_set1_epi8(ESCAPE as i8);
            let one = _mm_set1_epi8(1);
            let byte = _mm_set1_epi16(0x00ff);
            let code = |v: __m128i| {
                let r = if w.rotate {
                    _mm_or_si128(_mm_add_epi8(v, v), _mm_and_si128(_mm_srli_epi16(v, 7), one))
                } else {
                    v
                };
                _mm_min_epu8(_mm_sub_epi8(r, low), escape)
            };
            for (step, o) in plane.chunks_exact(STEP).zip(out.chunks_exact_mut(STEP / 2)) {
                let Ok(step) = <&[u8; STEP]>::try_from(step) else { break };
                let Ok(o) = <&mut [u8; STEP / 2]>::try_from(o) else { break };
                let (c0, c1) = (code(load(step, 0)), code(load(step, 16)));
                let escapes = _mm_or_si128(_mm_cmpeq_epi8(c0, escape), _mm_cmpeq_epi8(c1, escape));
                // As 16-bit lanes `a | b << 8`, `x | x >> 4` has `a | b << 4` in its low byte.
                let p0 = _mm_and_si128(_mm_or_si128(c0, _mm_srli_epi16(c0, 4)), byte);
                let p1 = _mm_and_si128(_mm_or_si128(c1, _mm_srli_epi16(c1, 4)), byte);
                _mm_storeu_si128(o.as_mut_ptr().cast(), _mm_packus_epi16(p0, p1));
                if _mm_movemask_epi8(escapes) != 0 {
                    exceptions.extend(step.iter().filter(|b| w.code(**b) == ESCAPE));
                }
                done += STEP;
            }
        }
        done
    }

    /// Decodes whole steps of 16 code bytes into `dst` (32 bytes per step)
    /// and returns how many plane bytes it did.
    pub(super) fn unpack(codes: &[u8], w: Window, dst: &mut [u8], next: &mut Exceptions<'_>) -> Result<usize, String> {
        let mut done = 0;
        // SAFETY (all intrinsics here): SSE2, part of x86_64; loads and
        // stores stay within fixed-size arrays.
        unsafe {
            let low = _mm_set1_epi8(w.low as i8);
            let nibble = _mm_set1_epi8(0x0f);
            let (keep, top) = (_mm_set1_epi8(0x7f), _mm_set1_epi8(-128));
            let value = |c: __m128i| {
                let v = _mm_add_epi8(c, low);
                if w.rotate {
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(v, 1), keep), _mm_and_si128(_mm_slli_epi16(v, 7), top))
                } else {
                    v
                }
            };
            for (c, o) in codes.chunks_exact(STEP / 2).zip(dst.chunks_exact_mut(STEP)) {
                let Ok(c) = <&[u8; STEP / 2]>::try_from(c) else { break };
                let Ok(o) = <&mut [u8; STEP]>::try_from(o) else { break };
                let p = _mm_loadu_si128(c.as_ptr().cast());
                let (lo, hi) = (_mm_and_si128(p, nibble), _mm_and_si128(_mm_srli_epi16(p, 4), nibble));
                let (a, b) = (_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi));
                _mm_storeu_si128(o.as_mut_ptr().cast(), value(a));
                _mm_storeu_si128(o.as_mut_ptr().add(16).cast(), value(b));
                let escapes = _mm_or_si128(_mm_cmpeq_epi8(a, nibble), _mm_cmpeq_epi8(b, nibble));
                if _mm_movemask_epi8(escapes) != 0 {
                    for (pair, byte) in o.chunks_exact_mut(2).zip(c) {
                        for (shift, v) in [0, 4].into_iter().zip(pair) {
                            if (byte >> shift) & 0x0f == ESCAPE {
                                *v = next.take()?;
                            }
                        }
                    }
                }
                done += STEP;
            }
        }
        Ok(done)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{Exceptions, Window};

    pub(super) fn pack(_: &[u8], _: Window, _: &mut [u8], _: &mut Vec<u8>) -> usize {
        0
    }

    pub(super) fn unpack(_: &[u8], _: Window, _: &mut [u8], _: &mut Exceptions<'_>) -> Result<usize, String> {
        Ok(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain loop's codes, byte by byte, for comparison.
    fn pack_plain(plane: &[u8], w: Window) -> (Vec<u8>, Vec<u8>) {
        let codes = plane.chunks(2).map(|p| w.code(p[0]) | p.get(1).map_or(0, |b| w.code(*b) << 4)).collect();
        let exceptions = plane.iter().copied().filter(|b| w.code(*b) == ESCAPE).collect();
        (codes, exceptions)
    }

    proptest! {
        #[test]
        fn packs_as_the_plain_loop_and_unpacks_back(
            plane in proptest::collection::vec(prop_oneof![8 => 0x30u8..0x48, 1 => any::<u8>()], 0..300),
            rotate: bool,
            low: u8,
        ) {
            let w = Window { rotate, low };
            let (mut codes, mut exceptions) = (vec![7u8], Vec::new());
            pack(&plane, w, &mut codes, &mut exceptions);
            let plain = pack_plain(&plane, w);
            prop_assert_eq!(&codes[1..], &plain.0[..]);
            prop_assert_eq!(&exceptions, &plain.1);
            let mut back = vec![0u8; plane.len()];
            unpack(&codes[1..], &exceptions, w, &mut back).unwrap();
            prop_assert_eq!(back, plane);
        }
    }

    #[test]
    fn every_byte_value_survives_every_window() {
        let plane: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for rotate in [false, true] {
            for low in [0u8, 1, 0x78, 0xf8, 0xff] {
                let w = Window { rotate, low };
                let (mut codes, mut exceptions) = (Vec::new(), Vec::new());
                pack(&plane, w, &mut codes, &mut exceptions);
                let mut back = vec![0u8; plane.len()];
                unpack(&codes, &exceptions, w, &mut back).unwrap();
                assert_eq!(back, plane, "{w:?}");
            }
        }
    }

    #[test]
    fn bad_codes_are_refused() {
        let w = Window { rotate: false, low: 0 };
        let mut dst = [0u8; 64];
        // An escape without its exception, in a SIMD step and in the tail.
        assert!(unpack(&[0xf0; 32], &[], w, &mut dst).is_err());
        assert!(unpack(&[0x0f; 32], &[1; 31], w, &mut dst).is_err());
        // An exception without its escape.
        assert!(unpack(&[0; 32], &[1], w, &mut dst).is_err());
        // Wrong code length; a nonzero unused nibble.
        assert!(unpack(&[0; 31], &[], w, &mut dst).is_err());
        assert!(unpack(&[0x10], &[], w, &mut dst[..1]).is_err());
        assert!(unpack(&[0x01], &[], w, &mut dst[..1]).is_ok());
        assert_eq!(dst[0], 1);
    }

    #[test]
    fn the_best_window_brings_signs_together() {
        // f32 sign-and-exponent bytes of values near ±0.02.
        let mut hist = [0u32; 256];
        for (v, n) in [(0x3c, 30), (0x3b, 10), (0x3d, 8), (0xbc, 30), (0xbb, 10), (0xbd, 8), (0x3a, 2), (0xba, 2)] {
            hist[v] = n;
        }
        let (w, covered) = Window::best(&hist);
        assert_eq!(covered, 100);
        assert!(w.rotate);
        let (mut codes, mut exceptions) = (Vec::new(), Vec::new());
        pack(&[0x3c, 0xbc, 0x3a, 0xbd], w, &mut codes, &mut exceptions);
        assert!(exceptions.is_empty());
    }
}
