//! Benchmark tensors: f32 drawn from N(0, 0.02) with a seeded generator,
//! like a model's weights (nearly random low mantissa bits, so only the
//! exponent and high mantissa bytes compress).

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

const SEED: u64 = 0x00ca_1e5e_ed00;
/// Standard deviation of the generated values, typical of model weights.
pub const STD_DEV: f32 = 0.02;

/// `count` tensors of `mib` MiB each, generated in parallel; tensor `i`
/// depends only on `i`, so every bench sees the same values.
pub fn weights(count: usize, mib: usize) -> Vec<Vec<f32>> {
    let len = mib * (1 << 20) / 4;
    let normal = Normal::new(0.0f32, STD_DEV).expect("valid normal distribution");
    (0..count)
        .into_par_iter()
        .map(|i| {
            let mut rng = StdRng::seed_from_u64(SEED.wrapping_add(i as u64));
            (0..len).map(|_| normal.sample(&mut rng)).collect()
        })
        .collect()
}
