//! BLAKE3 of a whole file read from pieces that are not one slice (the
//! frame objects of a store entry, each mapped on its own), computed in
//! parallel: the file is split in BLAKE3's own tree shape (the left
//! subtree always the largest power-of-two number of 1 KiB chunks smaller
//! than the whole) down to subtrees of at most [`LEAF`] bytes, each hashed
//! alone from the pieces it spans, and the chaining values merged back up.
//! Feeding 1 MiB pieces one by one to `update_rayon` spends most of a
//! second thread on waking it; here each thread hashes whole leaves.

use std::ops::Range;

use blake3::hazmat::{left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode};

use crate::error::Result;

/// The most bytes one thread hashes in one go (and, where a piece must be
/// read rather than borrowed, holds).
pub(crate) const LEAF: u64 = 4 << 20;

enum Sub {
    Cv(ChainingValue),
    Root(blake3::Hash),
}

/// BLAKE3 of the `len` bytes `feed(range, hasher)` hands to the hasher,
/// range by range (`feed` is called for ranges of at most [`LEAF`] bytes,
/// possibly from several threads at once, and must `update` the hasher
/// with exactly those bytes, in order).
///
/// # Errors
/// `feed`'s first error.
pub(crate) fn parallel_blake3(
    len: u64,
    feed: &(impl Fn(Range<u64>, &mut blake3::Hasher) -> Result<()> + Sync),
) -> Result<blake3::Hash> {
    match subtree(0, len, true, feed)? {
        Sub::Root(h) => Ok(h),
        // A root call hashes its leaf as the root, or merges as the root.
        Sub::Cv(_) => Err(crate::error::Error::Internal("a root subtree gave a chaining value".into())),
    }
}

fn subtree(
    offset: u64,
    len: u64,
    root: bool,
    feed: &(impl Fn(Range<u64>, &mut blake3::Hasher) -> Result<()> + Sync),
) -> Result<Sub> {
    if len <= LEAF {
        let mut h = blake3::Hasher::new();
        if offset > 0 {
            h.set_input_offset(offset);
        }
        feed(offset..offset + len, &mut h)?;
        if h.count() != len {
            // An empty or short subtree must not reach the finalisation,
            // which panics on it.
            return Err(crate::error::Error::Internal(format!("{} bytes hashed of {len} at {offset}", h.count())));
        }
        return Ok(if root { Sub::Root(h.finalize()) } else { Sub::Cv(h.finalize_non_root()) });
    }
    let left = left_subtree_len(len);
    let (a, b) = rayon::join(|| subtree(offset, left, false, feed), || subtree(offset + left, len - left, false, feed));
    let (Sub::Cv(a), Sub::Cv(b)) = (a?, b?) else {
        return Err(crate::error::Error::Internal("an inner subtree gave a root hash".into()));
    };
    Ok(if root {
        Sub::Root(merge_subtrees_root(&a, &b, Mode::Hash))
    } else {
        Sub::Cv(merge_subtrees_non_root(&a, &b, Mode::Hash))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Bytes fed from pieces of uneven lengths, as frame objects give them.
    fn check(len: usize, piece: usize) {
        let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        let got = parallel_blake3(len as u64, &|r: Range<u64>, h: &mut blake3::Hasher| {
            let (mut at, end) = (r.start as usize, r.end as usize);
            while at < end {
                let next = ((at / piece + 1) * piece).min(end);
                h.update(&data[at..next]);
                at = next;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(got, blake3::hash(&data), "len {len}, pieces of {piece}");
    }

    #[test]
    fn equals_blake3_of_the_whole_for_every_shape_of_tree() {
        let leaf = LEAF as usize;
        for len in [0, 1, 1023, 1024, 1025, 4096, leaf - 1, leaf, leaf + 1, leaf + 1024, 2 * leaf, 3 * leaf + 77] {
            check(len, 1 << 20);
        }
        for len in [5 * leaf + 12_345, 9 * leaf] {
            for piece in [4096, 65_536 + 3, 1 << 20] {
                check(len, piece);
            }
        }
    }

    #[test]
    fn the_first_error_is_returned() {
        let r = parallel_blake3(3 * LEAF, &|r: Range<u64>, h: &mut blake3::Hasher| {
            if r.start == 0 {
                Err(crate::error::Error::Internal("boom".into()))
            } else {
                h.update(&vec![0; (r.end - r.start) as usize]);
                Ok(())
            }
        });
        assert!(r.unwrap_err().to_string().contains("boom"));
        // A feed that hands over fewer bytes than asked is an error, not
        // a panic in BLAKE3's finalisation.
        let r = parallel_blake3(3 * LEAF, &|_: Range<u64>, h: &mut blake3::Hasher| {
            h.update(b"x");
            Ok(())
        });
        assert!(r.is_err());
    }
}
