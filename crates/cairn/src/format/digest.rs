//! BLAKE3 digests computed frame by frame, in parallel, yet equal to
//! `blake3::hash` of a chunk's whole content.
//!
//! Frames are a power-of-two size of at least one BLAKE3 chunk (1 KiB) and
//! start at multiples of that size, so each frame is a complete BLAKE3
//! subtree. Its chaining value is computed alone (`finalize_non_root`) and
//! the values are merged in BLAKE3's own tree shape: the left subtree always
//! holds the largest power-of-two number of frames smaller than the total.

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode};

/// What hashing one frame yields: a chaining value, or for a chunk that is a
/// single frame, the final hash.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FrameHash {
    /// Chaining value of a frame in a multi-frame chunk.
    Cv(ChainingValue),
    /// Root hash of a single-frame chunk.
    Root([u8; 32]),
}

/// Hashes frame `index` of a chunk whose frames are `frame_size` bytes.
pub(crate) fn hash_frame(data: &[u8], index: u64, frame_size: u32, only_frame: bool) -> FrameHash {
    if only_frame {
        return FrameHash::Root(*blake3::hash(data).as_bytes());
    }
    let mut h = blake3::Hasher::new();
    h.set_input_offset(index * u64::from(frame_size));
    h.update(data);
    FrameHash::Cv(h.finalize_non_root())
}

/// Largest power of two strictly less than `n` (`n` ≥ 2).
fn left_len(n: usize) -> usize {
    let p = n.next_power_of_two();
    if p == n {
        n / 2
    } else {
        p / 2
    }
}

fn subtree(cvs: &[ChainingValue]) -> Option<ChainingValue> {
    match cvs.len() {
        0 => None,
        1 => cvs.first().copied(),
        n => {
            let (l, r) = cvs.split_at(left_len(n));
            Some(merge_subtrees_non_root(&subtree(l)?, &subtree(r)?, Mode::Hash))
        }
    }
}

/// Combines the frame hashes of one chunk, in order, into `blake3::hash` of
/// its content. Returns `None` if the hashes do not form a valid chunk (a
/// root among several, or chaining values for a single frame).
pub(crate) fn chunk_digest(frames: &[FrameHash]) -> Option<[u8; 32]> {
    match frames {
        [] => Some(*blake3::hash(&[]).as_bytes()),
        [FrameHash::Root(h)] => Some(*h),
        [_] => None,
        _ => {
            let mut cvs = Vec::with_capacity(frames.len());
            for f in frames {
                match f {
                    FrameHash::Cv(cv) => cvs.push(*cv),
                    FrameHash::Root(_) => return None,
                }
            }
            let (l, r) = cvs.split_at(left_len(cvs.len()));
            Some(*merge_subtrees_root(&subtree(l)?, &subtree(r)?, Mode::Hash).as_bytes())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn matches_plain_blake3_for_many_lengths() {
        let frame = 4096u32;
        let data: Vec<u8> = (0..frame as usize * 9 + 17).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 1023, 1024, 4095, 4096, 4097, 8192, 12288, 12289, 20000, 32768, data.len()] {
            let content = &data[..len];
            let frames: Vec<&[u8]> = content.chunks(frame as usize).collect();
            let only = frames.len() == 1;
            let hashes: Vec<FrameHash> =
                frames.iter().enumerate().map(|(i, f)| hash_frame(f, i as u64, frame, only)).collect();
            assert_eq!(chunk_digest(&hashes).unwrap(), *blake3::hash(content).as_bytes(), "len {len}");
        }
    }
}
