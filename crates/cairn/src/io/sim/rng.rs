//! A tiny seeded generator for crash choices.
//!
//! Crash tests must replay exactly: the same seed and the same history give
//! the same post-crash disk. splitmix64 is enough for that, needs no
//! dependency, and mixes well even from small, similar seeds (0, 1, 2, …).

/// splitmix64: one 64-bit state word, advanced by a fixed odd constant.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator for one decision domain (a file, a directory) of a crash,
    /// so that what is chosen for one file does not depend on how many other
    /// files were looked at before it.
    pub(super) fn for_item(seed: u64, domain: u64, item: u64) -> Self {
        Rng(mix(mix(seed, domain), item))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..=max`.
    pub(super) fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            // Multiply-shift keeps the bias negligible without a loop.
            Some(n) => ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64,
            None => self.next_u64(),
        }
    }

    /// A fair coin.
    pub(super) fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Fills `buf` with pseudo-random bytes.
    pub(super) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            for (b, w) in chunk.iter_mut().zip(word) {
                *b = w;
            }
        }
    }
}

/// Combines two words into a well-spread third one.
pub(super) fn mix(a: u64, b: u64) -> u64 {
    let mut r = Rng(a ^ b.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03);
    r.next_u64()
}

/// FNV-1a over bytes: a stable number for a directory's path.
pub(super) fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::for_item(7, 1, 2);
        let mut b = Rng::for_item(7, 1, 2);
        let mut c = Rng::for_item(7, 1, 3);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn up_to_stays_in_range_and_reaches_both_ends() {
        let mut r = Rng::for_item(1, 2, 3);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let v = r.up_to(3);
            assert!(v <= 3);
            if let Some(s) = seen.get_mut(v as usize) {
                *s = true;
            }
        }
        assert_eq!(seen, [true; 4]);
        assert_eq!(r.up_to(0), 0);
        let _ = r.up_to(u64::MAX);
    }

    #[test]
    fn fill_covers_odd_lengths() {
        let mut r = Rng::for_item(3, 0, 0);
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
        assert!(buf.get(8..).is_some_and(|tail| tail.iter().any(|&b| b != 0)));
    }
}
