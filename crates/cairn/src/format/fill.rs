//! Filling a vector's spare capacity with checked frames, so a verified
//! read touches each byte as few times as it can: a raw frame is hashed and
//! copied in one pass over blocks small enough to stay in cache, and the
//! destination is never zeroed first.

use std::mem::MaybeUninit;

use xxhash_rust::xxh3::Xxh3;

/// Bytes hashed and then copied at a time: small enough that the block is
/// still in the first-level caches when it is copied.
const BLOCK: usize = 32 << 10;

/// The spare capacity of `v`, as bytes.
pub(crate) fn spare_bytes<T: bytemuck::Pod>(v: &mut Vec<T>) -> &mut [MaybeUninit<u8>] {
    let spare = v.spare_capacity_mut();
    let len = std::mem::size_of_val(spare);
    // SAFETY: `MaybeUninit<u8>` has alignment 1 and no validity
    // requirement, so any `len` bytes of the spare capacity may be viewed
    // as it; the slice borrows `v` mutably for its lifetime.
    unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), len) }
}

/// Copies `src` into the front of `dst` and returns the xxh3-64 of `src`,
/// hashing each block just before copying it. `dst` must be at least as
/// long as `src`; returns `None` (copying nothing) if it is not.
pub(crate) fn copy_hashed(src: &[u8], dst: &mut [MaybeUninit<u8>]) -> Option<u64> {
    let dst = dst.get_mut(..src.len())?;
    let mut hasher = Xxh3::new();
    for (s, d) in src.chunks(BLOCK).zip(dst.chunks_mut(BLOCK)) {
        hasher.update(s);
        // SAFETY: `s` and `d` have the same length (both are the same
        // block of equal-length slices), and `d` is exclusively borrowed
        // memory that cannot overlap the shared `s`.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), d.as_mut_ptr().cast::<u8>(), s.len()) };
    }
    Some(hasher.digest())
}

/// Initialised bytes viewed as bytes to be written. Whoever writes through
/// the view writes real bytes (never `MaybeUninit::uninit()`), so `dst`
/// stays initialised.
pub(crate) fn as_uninit(dst: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the view borrows
    // `dst` mutably for its lifetime, and every write through it is an
    // initialised byte (the contract above).
    unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<MaybeUninit<u8>>(), dst.len()) }
}

/// Zeroes `dst` and returns it as initialised bytes.
pub(crate) fn zeroed(dst: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: the pointer and length come from `dst`, which is writable.
    unsafe { std::ptr::write_bytes(dst.as_mut_ptr(), 0, dst.len()) };
    // SAFETY: every byte was just written.
    unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), dst.len()) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn copy_hashed_copies_and_hashes_like_the_one_shot_hash() {
        for len in [0, 1, 255, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17, 1 << 20] {
            let src: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut dst: Vec<u8> = Vec::with_capacity(len + 8);
            let h = copy_hashed(&src, spare_bytes(&mut dst)).unwrap();
            assert_eq!(h, xxhash_rust::xxh3::xxh3_64(&src), "len {len}");
            // SAFETY (test): copy_hashed initialised the first `len` bytes.
            unsafe { dst.set_len(len) };
            assert_eq!(dst, src, "len {len}");
        }
    }

    #[test]
    fn copy_hashed_refuses_a_short_destination() {
        let mut dst: Vec<u8> = Vec::with_capacity(4);
        assert_eq!(copy_hashed(&[1; 64], &mut spare_bytes(&mut dst)[..4]), None);
    }

    #[test]
    fn zeroed_zeroes() {
        let mut v: Vec<u8> = Vec::with_capacity(100);
        assert!(zeroed(spare_bytes(&mut v)).iter().all(|b| *b == 0));
    }
}
