//! The byte-shuffle filter: splits elements by byte position (all first
//! bytes, then all second bytes, …) so that the slowly varying high bytes
//! of numbers sit together and compress. 2-, 4- and 8-byte elements, the
//! tensor dtypes' sizes, are transposed sixteen elements at a time with
//! SSSE3 byte shuffles where the processor has them (checked once at run
//! time); other sizes and other processors take the plain loop.

use std::mem::MaybeUninit;

use super::fill;

/// Elements one SIMD step transposes.
const LANES: usize = 16;

/// Splits `src`'s `elem`-byte elements by byte position into `dst`, which
/// becomes `src.len()` long. Trailing bytes that do not fill an element are
/// copied as they are.
pub(crate) fn shuffle(src: &[u8], elem: usize, dst: &mut Vec<u8>) {
    // Reused buffers keep their length: only growth is zero-filled.
    dst.truncate(src.len());
    dst.resize(src.len(), 0);
    if elem <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let n = src.len() / elem;
    let done = simd::shuffle(src, elem, dst, n);
    for (i, e) in src.chunks_exact(elem).enumerate().skip(done) {
        for (b, v) in e.iter().enumerate() {
            if let Some(out) = dst.get_mut(b * n + i) {
                *out = *v;
            }
        }
    }
    let body = n * elem;
    if let (Some(d), Some(s)) = (dst.get_mut(body..), src.get(body..)) {
        d.copy_from_slice(s);
    }
}

/// Inverse of [`shuffle`]; `dst.len()` must equal `src.len()` (otherwise
/// what fits is copied as is).
pub(crate) fn unshuffle(src: &[u8], elem: usize, dst: &mut [u8]) {
    let n = src.len() / elem.max(1);
    let planes: Vec<&[u8]> = if n > 0 { src.chunks_exact(n).take(elem).collect() } else { Vec::new() };
    let tail = src.get(n * elem..).unwrap_or_default();
    if elem <= 1 || n == 0 || unshuffle_planes(&planes, tail, fill::as_uninit(dst)).is_err() {
        let n = src.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
    }
}

/// Interleaves `planes` (one per byte of an element, all of one length
/// `n`, wherever they lie) into `dst`, followed by `tail`: the inverse of
/// [`shuffle`] without first gathering the planes in one buffer. Writes
/// every byte of `dst`, which need not be initialised. Fails (writing
/// nothing) unless `dst` holds exactly `n · planes.len() + tail.len()`
/// bytes.
pub(crate) fn unshuffle_planes(planes: &[&[u8]], tail: &[u8], dst: &mut [MaybeUninit<u8>]) -> Result<(), String> {
    let elem = planes.len();
    let n = planes.first().map_or(0, |p| p.len());
    let body = n * elem;
    if planes.iter().any(|p| p.len() != n) || dst.len() != body + tail.len() {
        return Err(format!("{elem} planes of {n} bytes and {} more do not fill {} bytes", tail.len(), dst.len()));
    }
    let (elements, rest) = dst.split_at_mut(body);
    let done = simd::unshuffle(planes, elements, n);
    if elem > 0 {
        for (i, e) in elements.chunks_exact_mut(elem).enumerate().skip(done) {
            for (v, p) in e.iter_mut().zip(planes) {
                v.write(p.get(i).copied().unwrap_or(0));
            }
        }
    }
    for (d, s) in rest.iter_mut().zip(tail) {
        d.write(*s);
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_setr_epi8, _mm_shuffle_epi8, _mm_storeu_si128, _mm_unpackhi_epi16,
        _mm_unpackhi_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi16, _mm_unpacklo_epi32, _mm_unpacklo_epi64,
    };

    use std::mem::MaybeUninit;

    use super::LANES;

    /// Shuffles as many whole groups of [`LANES`] elements as it can and
    /// returns how many elements it did (0 if this processor or element
    /// size has no SIMD path). `src` and `dst` hold at least `n * elem`
    /// bytes.
    pub(super) fn shuffle(src: &[u8], elem: usize, dst: &mut [u8], n: usize) -> usize {
        let bytes = n.saturating_mul(elem);
        if !matches!(elem, 2 | 4 | 8) || src.len() < bytes || dst.len() < bytes || !is_x86_feature_detected!("ssse3") {
            return 0;
        }
        let groups = n / LANES;
        // SAFETY: SSSE3 is present (checked above), and both slices hold
        // the `n * elem` bytes every group's loads and stores stay within.
        unsafe {
            match elem {
                2 => shuffle2(src.as_ptr(), dst.as_mut_ptr(), n, groups),
                4 => shuffle4(src.as_ptr(), dst.as_mut_ptr(), n, groups),
                _ => shuffle8(src.as_ptr(), dst.as_mut_ptr(), n, groups),
            }
        }
        groups * LANES
    }

    /// Interleaves as many whole groups of [`LANES`] elements of `planes`
    /// (each at least `n` bytes) into `dst` (at least `n * planes.len()`
    /// bytes) as it can and returns how many elements it did.
    pub(super) fn unshuffle(planes: &[&[u8]], dst: &mut [MaybeUninit<u8>], n: usize) -> usize {
        let elem = planes.len();
        if !matches!(elem, 2 | 4 | 8)
            || planes.iter().any(|p| p.len() < n)
            || dst.len() < n.saturating_mul(elem)
            || !is_x86_feature_detected!("ssse3")
        {
            return 0;
        }
        let groups = n / LANES;
        fn starts<const K: usize>(planes: &[&[u8]]) -> [*const u8; K] {
            std::array::from_fn(|b| planes.get(b).map_or(std::ptr::null(), |p| p.as_ptr()))
        }
        // SAFETY: SSSE3 is present (checked above); each of the `elem`
        // planes holds the `n` bytes, and `dst` the `n * elem`, that every
        // group's loads and stores stay within.
        unsafe {
            match elem {
                2 => unshuffle2(starts(planes), dst.as_mut_ptr().cast(), groups),
                4 => unshuffle4(starts(planes), dst.as_mut_ptr().cast(), groups),
                _ => unshuffle8(starts(planes), dst.as_mut_ptr().cast(), groups),
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
    unsafe fn load_planes<const K: usize>(planes: [*const u8; K], g: usize) -> [__m128i; K] {
        // SAFETY: the caller guarantees each plane has 16 bytes at `16 g`.
        planes.map(|p| unsafe { _mm_loadu_si128(p.add(LANES * g).cast()) })
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
    unsafe fn shuffle2(src: *const u8, dst: *mut u8, n: usize, groups: usize) {
        // Even bytes then odd bytes of eight 2-byte elements.
        let split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        for g in 0..groups {
            // SAFETY: group `g < n / 16` lies within the `n * 2` bytes
            // the caller guarantees, packed and planar alike.
            unsafe {
                let [a, b] = load::<2>(src.add(packed(g, 2))).map(|r| _mm_shuffle_epi8(r, split));
                store_planes(dst, n, g, [_mm_unpacklo_epi64(a, b), _mm_unpackhi_epi64(a, b)]);
            }
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn unshuffle2(planes: [*const u8; 2], dst: *mut u8, groups: usize) {
        let join = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        for g in 0..groups {
            // SAFETY: group `g` lies within the planes' and `dst`'s bytes
            // the caller guarantees.
            unsafe {
                let [p, q] = load_planes(planes, g);
                let r = [_mm_unpacklo_epi64(p, q), _mm_unpackhi_epi64(p, q)];
                store(dst.add(packed(g, 2)), r.map(|r| _mm_shuffle_epi8(r, join)));
            }
        }
    }

    /// 4 × 4 byte transpose within a register: its own inverse.
    #[inline(always)]
    fn mask4() -> __m128i {
        // SAFETY: SSE2, part of x86_64.
        unsafe { _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15) }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn shuffle4(src: *const u8, dst: *mut u8, n: usize, groups: usize) {
        let m = mask4();
        for g in 0..groups {
            // SAFETY: as in `shuffle2`, with `n * 4` bytes.
            unsafe {
                let r = load::<4>(src.add(packed(g, 4))).map(|r| _mm_shuffle_epi8(r, m));
                store_planes(dst, n, g, transpose_32(r));
            }
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn unshuffle4(planes: [*const u8; 4], dst: *mut u8, groups: usize) {
        let m = mask4();
        for g in 0..groups {
            // SAFETY: as in `unshuffle2`.
            unsafe {
                let r = transpose_32(load_planes(planes, g));
                store(dst.add(packed(g, 4)), r.map(|r| _mm_shuffle_epi8(r, m)));
            }
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn shuffle8(src: *const u8, dst: *mut u8, n: usize, groups: usize) {
        // Byte `b` of the register's two elements side by side.
        let pair = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        for g in 0..groups {
            // SAFETY: as in `shuffle2`, with `n * 8` bytes.
            unsafe {
                let r = load::<8>(src.add(packed(g, 8))).map(|r| _mm_shuffle_epi8(r, pair));
                store_planes(dst, n, g, transpose_16(r));
            }
        }
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn unshuffle8(planes: [*const u8; 8], dst: *mut u8, groups: usize) {
        let unpair = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        for g in 0..groups {
            // SAFETY: as in `unshuffle2`.
            unsafe {
                let r = transpose_16(load_planes(planes, g));
                store(dst.add(packed(g, 8)), r.map(|r| _mm_shuffle_epi8(r, unpair)));
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    /// No SIMD path here: the plain loop does every element.
    pub(super) fn shuffle(_: &[u8], _: usize, _: &mut [u8], _: usize) -> usize {
        0
    }

    /// No SIMD path here: the plain loop does every element.
    pub(super) fn unshuffle(_: &[&[u8]], _: &mut [std::mem::MaybeUninit<u8>], _: usize) -> usize {
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

    proptest! {
        #[test]
        fn planes_from_separate_buffers_interleave_back(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            elem in 2usize..10,
        ) {
            let mut s = Vec::new();
            shuffle(&data, elem, &mut s);
            let n = data.len() / elem;
            // Each plane in a buffer of its own, as a planes frame holds them.
            let owned: Vec<Vec<u8>> = (0..elem).map(|b| s[b * n..(b + 1) * n].to_vec()).collect();
            let planes: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let mut back = vec![0u8; data.len()];
            unshuffle_planes(&planes, &s[n * elem..], fill::as_uninit(&mut back)).unwrap();
            prop_assert_eq!(back, data);
        }
    }

    #[test]
    fn planes_that_do_not_fill_the_output_are_refused() {
        let mut out = [0u8; 33];
        let (a, b) = ([1u8; 16], [2u8; 15]);
        assert!(unshuffle_planes(&[&a, &b], &[], fill::as_uninit(&mut out[..31])).is_err());
        assert!(unshuffle_planes(&[&a, &a], &[9], fill::as_uninit(&mut out[..32])).is_err());
        unshuffle_planes(&[&a, &a], &[9], fill::as_uninit(&mut out)).unwrap();
        assert_eq!(out[32], 9);
    }

    #[test]
    fn shuffle_groups_bytes_by_position() {
        let mut s = Vec::new();
        shuffle(&[1, 2, 3, 4, 5, 6, 7], 2, &mut s);
        assert_eq!(s, vec![1, 3, 5, 2, 4, 6, 7]);
    }
}
