//! The byte-shuffle filter: splits elements by byte position (all first
//! bytes, then all second bytes, …) so that the slowly varying high bytes
//! of numbers sit together and compress. 2-, 4- and 8-byte elements, the
//! tensor dtypes' sizes, are transposed sixteen elements at a time with
//! SSSE3 byte shuffles where the processor has them (checked once at run
//! time); other sizes and other processors take the plain loop.

/// Elements one SIMD step transposes.
const LANES: usize = 16;

/// Splits `src`'s `elem`-byte elements by byte position into `dst`, which
/// becomes `src.len()` long. Trailing bytes that do not fill an element are
/// copied as they are.
pub(crate) fn shuffle(src: &[u8], elem: usize, dst: &mut Vec<u8>) {
    // Reused buffers keep their length: only growth is zero-filled.
    dst.truncate(src.len());
    dst.resize(src.len(), 0);
    transpose(src, elem, dst, Direction::Shuffle);
}

/// Inverse of [`shuffle`]; `dst.len()` must equal `src.len()` (otherwise
/// what fits is copied as is).
pub(crate) fn unshuffle(src: &[u8], elem: usize, dst: &mut [u8]) {
    if src.len() != dst.len() {
        let n = src.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
        return;
    }
    transpose(src, elem, dst, Direction::Unshuffle);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Shuffle,
    Unshuffle,
}

/// `src` and `dst` have the same length.
fn transpose(src: &[u8], elem: usize, dst: &mut [u8], dir: Direction) {
    if elem <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let n = src.len() / elem;
    let body = n * elem;
    let done = simd::transpose(src, elem, dst, n, dir);
    scalar(src, elem, dst, n, done, dir);
    if let (Some(d), Some(s)) = (dst.get_mut(body..), src.get(body..)) {
        d.copy_from_slice(s);
    }
}

/// Elements `from..n` the plain way: byte `b` of element `i` is at
/// `i * elem + b` unshuffled and at `b * n + i` shuffled.
fn scalar(src: &[u8], elem: usize, dst: &mut [u8], n: usize, from: usize, dir: Direction) {
    for i in from..n {
        for b in 0..elem {
            let (packed, planar) = (i * elem + b, b * n + i);
            let (from, to) = match dir {
                Direction::Shuffle => (packed, planar),
                Direction::Unshuffle => (planar, packed),
            };
            if let (Some(v), Some(out)) = (src.get(from), dst.get_mut(to)) {
                *out = *v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_setr_epi8, _mm_shuffle_epi8, _mm_storeu_si128, _mm_unpackhi_epi16,
        _mm_unpackhi_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi16, _mm_unpacklo_epi32, _mm_unpacklo_epi64,
    };

    use super::{Direction, LANES};

    /// Transposes as many whole groups of [`LANES`] elements as it can and
    /// returns how many elements it did (0 if this processor or element
    /// size has no SIMD path). `src` and `dst` hold at least `n * elem`
    /// bytes.
    pub(super) fn transpose(src: &[u8], elem: usize, dst: &mut [u8], n: usize, dir: Direction) -> usize {
        let bytes = n.saturating_mul(elem);
        if !matches!(elem, 2 | 4 | 8) || src.len() < bytes || dst.len() < bytes || !is_x86_feature_detected!("ssse3") {
            return 0;
        }
        let groups = n / LANES;
        // SAFETY: SSSE3 is present (checked above), and both slices hold
        // the `n * elem` bytes every group's loads and stores stay within.
        unsafe {
            match elem {
                2 => groups2(src.as_ptr(), dst.as_mut_ptr(), n, groups, dir),
                4 => groups4(src.as_ptr(), dst.as_mut_ptr(), n, groups, dir),
                _ => groups8(src.as_ptr(), dst.as_mut_ptr(), n, groups, dir),
            }
        }
        groups * LANES
    }

    /// Where group `g` of `elem`-byte elements starts in the packed layout
    /// (its piece of plane `b` is the 16 bytes at `b * n + 16 * g`).
    #[inline(always)]
    fn packed(g: usize, elem: usize) -> usize {
        g * LANES * elem
    }

    /// Loads `K` consecutive registers from `p`.
    #[inline(always)]
    unsafe fn load<const K: usize>(p: *const u8) -> [__m128i; K] {
        // SAFETY: the caller guarantees `16 * K` readable bytes at `p`.
        std::array::from_fn(|i| unsafe { _mm_loadu_si128(p.add(16 * i).cast()) })
    }

    /// Loads the group's 16-byte piece of each of `K` planes.
    #[inline(always)]
    unsafe fn load_planes<const K: usize>(p: *const u8, n: usize, g: usize) -> [__m128i; K] {
        // SAFETY: the caller guarantees plane `b` has 16 bytes at `b * n + 16 g`.
        std::array::from_fn(|b| unsafe { _mm_loadu_si128(p.add(b * n + LANES * g).cast()) })
    }

    #[inline(always)]
    unsafe fn store<const K: usize>(p: *mut u8, r: [__m128i; K]) {
        for (i, v) in r.into_iter().enumerate() {
            // SAFETY: the caller guarantees `16 * K` writable bytes at `p`.
            unsafe { _mm_storeu_si128(p.add(16 * i).cast(), v) };
        }
    }

    #[inline(always)]
    unsafe fn store_planes<const K: usize>(p: *mut u8, n: usize, g: usize, r: [__m128i; K]) {
        for (b, v) in r.into_iter().enumerate() {
            // SAFETY: as `load_planes`, for writing.
            unsafe { _mm_storeu_si128(p.add(b * n + LANES * g).cast(), v) };
        }
    }

    /// 4 × 4 transpose of 32-bit lanes across four registers (its own inverse).
    #[inline(always)]
    unsafe fn transpose_32(r: [__m128i; 4]) -> [__m128i; 4] {
        // SAFETY (all intrinsics here): SSE2, part of x86_64.
        let [r0, r1, r2, r3] = r;
        unsafe {
            let (a, b) = (_mm_unpacklo_epi32(r0, r1), _mm_unpackhi_epi32(r0, r1));
            let (c, d) = (_mm_unpacklo_epi32(r2, r3), _mm_unpackhi_epi32(r2, r3));
            [_mm_unpacklo_epi64(a, c), _mm_unpackhi_epi64(a, c), _mm_unpacklo_epi64(b, d), _mm_unpackhi_epi64(b, d)]
        }
    }

    /// 8 × 8 transpose of 16-bit lanes across eight registers (its own inverse).
    #[inline(always)]
    unsafe fn transpose_16(r: [__m128i; 8]) -> [__m128i; 8] {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = r;
        // SAFETY (all intrinsics here): SSE2, part of x86_64.
        unsafe {
            // Word pairs of two rows: (w0..w3) and (w4..w7) of rows 2k, 2k+1.
            let (s0, s1) = (_mm_unpacklo_epi16(r0, r1), _mm_unpackhi_epi16(r0, r1));
            let (s2, s3) = (_mm_unpacklo_epi16(r2, r3), _mm_unpackhi_epi16(r2, r3));
            let (s4, s5) = (_mm_unpacklo_epi16(r4, r5), _mm_unpackhi_epi16(r4, r5));
            let (s6, s7) = (_mm_unpacklo_epi16(r6, r7), _mm_unpackhi_epi16(r6, r7));
            // Two words of four rows: (w0,w1), (w2,w3), (w4,w5), (w6,w7).
            let (q0, q1) = (_mm_unpacklo_epi32(s0, s2), _mm_unpackhi_epi32(s0, s2));
            let (q2, q3) = (_mm_unpacklo_epi32(s1, s3), _mm_unpackhi_epi32(s1, s3));
            let (q4, q5) = (_mm_unpacklo_epi32(s4, s6), _mm_unpackhi_epi32(s4, s6));
            let (q6, q7) = (_mm_unpacklo_epi32(s5, s7), _mm_unpackhi_epi32(s5, s7));
            [
                _mm_unpacklo_epi64(q0, q4),
                _mm_unpackhi_epi64(q0, q4),
                _mm_unpacklo_epi64(q1, q5),
                _mm_unpackhi_epi64(q1, q5),
                _mm_unpacklo_epi64(q2, q6),
                _mm_unpackhi_epi64(q2, q6),
                _mm_unpacklo_epi64(q3, q7),
                _mm_unpackhi_epi64(q3, q7),
            ]
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn groups2(src: *const u8, dst: *mut u8, n: usize, groups: usize, dir: Direction) {
        // Even bytes then odd bytes of eight 2-byte elements, and back.
        let split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        let join = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        for g in 0..groups {
            // SAFETY: group `g < n / 16` lies within the `n * 2` bytes
            // the caller guarantees, packed and planar alike.
            unsafe {
                match dir {
                    Direction::Shuffle => {
                        let [a, b] = load::<2>(src.add(packed(g, 2))).map(|r| _mm_shuffle_epi8(r, split));
                        store_planes(dst, n, g, [_mm_unpacklo_epi64(a, b), _mm_unpackhi_epi64(a, b)]);
                    }
                    Direction::Unshuffle => {
                        let [p, q] = load_planes::<2>(src, n, g);
                        let r = [_mm_unpacklo_epi64(p, q), _mm_unpackhi_epi64(p, q)];
                        store(dst.add(packed(g, 2)), r.map(|r| _mm_shuffle_epi8(r, join)));
                    }
                }
            }
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn groups4(src: *const u8, dst: *mut u8, n: usize, groups: usize, dir: Direction) {
        // 4 × 4 byte transpose within a register: its own inverse.
        let m = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for g in 0..groups {
            // SAFETY: as in `groups2`, with `n * 4` bytes.
            unsafe {
                match dir {
                    Direction::Shuffle => {
                        let r = load::<4>(src.add(packed(g, 4))).map(|r| _mm_shuffle_epi8(r, m));
                        store_planes(dst, n, g, transpose_32(r));
                    }
                    Direction::Unshuffle => {
                        let r = transpose_32(load_planes::<4>(src, n, g));
                        store(dst.add(packed(g, 4)), r.map(|r| _mm_shuffle_epi8(r, m)));
                    }
                }
            }
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn groups8(src: *const u8, dst: *mut u8, n: usize, groups: usize, dir: Direction) {
        // Byte `b` of the register's two elements side by side, and back.
        let pair = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        let unpair = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        for g in 0..groups {
            // SAFETY: as in `groups2`, with `n * 8` bytes.
            unsafe {
                match dir {
                    Direction::Shuffle => {
                        let r = load::<8>(src.add(packed(g, 8))).map(|r| _mm_shuffle_epi8(r, pair));
                        store_planes(dst, n, g, transpose_16(r));
                    }
                    Direction::Unshuffle => {
                        let r = transpose_16(load_planes::<8>(src, n, g));
                        store(dst.add(packed(g, 8)), r.map(|r| _mm_shuffle_epi8(r, unpair)));
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::Direction;

    /// No SIMD path here: the plain loop does every element.
    pub(super) fn transpose(_: &[u8], _: usize, _: &mut [u8], _: usize, _: Direction) -> usize {
        0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, byte by byte.
    fn reference(src: &[u8], elem: usize) -> Vec<u8> {
        let n = src.len() / elem.max(1);
        let mut out = src.to_vec();
        if elem > 1 {
            for i in 0..n {
                for b in 0..elem {
                    out[b * n + i] = src[i * elem + b];
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn shuffle_matches_the_definition_and_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            elem in 1usize..10,
        ) {
            let mut s = Vec::new();
            shuffle(&data, elem, &mut s);
            prop_assert_eq!(&s, &reference(&data, elem));
            let mut back = vec![0u8; data.len()];
            unshuffle(&s, elem, &mut back);
            prop_assert_eq!(back, data);
        }
    }

    #[test]
    fn simd_sizes_match_the_definition_on_frame_sized_input() {
        let data: Vec<u8> = (0..(1usize << 16) + 37).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for elem in [2, 4, 8] {
            let mut s = vec![7u8; 3];
            shuffle(&data, elem, &mut s);
            assert_eq!(s, reference(&data, elem), "elem {elem}");
            let mut back = vec![0u8; data.len()];
            unshuffle(&s, elem, &mut back);
            assert_eq!(back, data, "elem {elem}");
        }
    }

    #[test]
    fn shuffle_groups_bytes_by_position() {
        let mut s = Vec::new();
        shuffle(&[1, 2, 3, 4, 5, 6, 7], 2, &mut s);
        assert_eq!(s, vec![1, 3, 5, 2, 4, 6, 7]);
    }
}
