//! Deterministic tensor values for the tests: an xorshift stream that does
//! not repeat within a tensor, so no two frames are alike unless a test
//! makes them so.

/// `n` values from `seed`.
pub fn values(seed: u32, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32
        })
        .collect()
}
