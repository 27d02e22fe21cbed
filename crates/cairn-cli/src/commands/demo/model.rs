//! The demo's workload: a multi-output linear regression fitted with Adam
//! to data from a hidden low-rank "teacher" matrix plus noise, fine-tuned
//! over a frozen "pretrained" base (the teacher's first half of its rank):
//! the model is `base + weights`, and only the weights train. The base is
//! saved with every checkpoint, as a fine-tuning run saves its frozen
//! layers, and the store keeps it once.
//!
//! Everything follows from the configuration and the step number: example
//! `j` comes from a random stream of its own, the mini-batch of step `s`
//! from the stream of `s`, and every sum runs in a fixed order in plain
//! loops (no threads, no fused multiply-add, no transcendental functions),
//! so a run resumed from a checkpoint ends bit for bit where an
//! uninterrupted one does.

use cairn::store::FingerprintBuilder;
use serde::{Deserialize, Serialize};

/// Everything that decides the trajectory, and so goes into the store key.
/// The number of steps does not: the same run can be extended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Input features: rows of the weight matrix.
    pub inputs: usize,
    /// Outputs: columns of the weight matrix.
    pub outputs: usize,
    /// Rank of the hidden teacher matrix.
    pub rank: usize,
    /// Examples per mini-batch.
    pub batch: usize,
    /// Size of the (virtual, generated on demand) training set.
    pub examples: u64,
    /// Held-out examples the objective is measured on.
    pub eval_examples: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Adam's decay of the first moment.
    pub beta1: f32,
    /// Adam's decay of the second moment.
    pub beta2: f32,
    /// Adam's epsilon.
    pub eps: f32,
    /// Standard deviation of the noise added to the targets.
    pub noise: f32,
    /// Seed of every random stream.
    pub seed: u64,
}

/// Names the workload in the key, so a change to the code that changes
/// the numbers can start new keys by changing this.
const WORKLOAD: &str = "cairn demo: linear regression, Adam, low-rank teacher, frozen base, v2";

impl Config {
    /// The demo's configuration with `size` inputs and outputs (at least 1).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Config {
            inputs: size,
            outputs: size,
            rank: size.min(8),
            batch: 16,
            examples: 1 << 20,
            eval_examples: 64,
            lr: 3e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            noise: 0.1,
            seed: 0x00C0_FFEE,
        }
    }

    /// Parameters in the weight matrix (and in each Adam moment).
    pub fn params(&self) -> usize {
        self.inputs.saturating_mul(self.outputs)
    }

    /// The shape of the weight matrix as stored.
    pub fn shape(&self) -> [u64; 2] {
        [self.inputs as u64, self.outputs as u64]
    }

    /// Adds every field to a fingerprint.
    pub fn fingerprint(&self, b: FingerprintBuilder) -> FingerprintBuilder {
        b.str("workload", WORKLOAD)
            .u64("inputs", self.inputs as u64)
            .u64("outputs", self.outputs as u64)
            .u64("rank", self.rank as u64)
            .u64("batch", self.batch as u64)
            .u64("examples", self.examples)
            .u64("eval_examples", self.eval_examples as u64)
            .f64("lr", f64::from(self.lr))
            .f64("beta1", f64::from(self.beta1))
            .f64("beta2", f64::from(self.beta2))
            .f64("eps", f64::from(self.eps))
            .f64("noise", f64::from(self.noise))
            .u64("seed", self.seed)
    }
}

/// What training changes: the step reached, the weights and Adam's moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Train {
    /// Steps done so far.
    pub step: u64,
    /// The weight matrix, `inputs × outputs`, row-major.
    pub weights: Vec<f32>,
    /// Adam's first moment, shaped as the weights.
    pub m: Vec<f32>,
    /// Adam's second moment, shaped as the weights.
    pub v: Vec<f32>,
}

impl Train {
    /// Step 0: everything zero.
    pub fn fresh(cfg: &Config) -> Self {
        let n = cfg.params();
        Train { step: 0, weights: vec![0.0; n], m: vec![0.0; n], v: vec![0.0; n] }
    }
}

/// SplitMix64: tiny, fast, and the same everywhere.
struct Rng(u64);

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams of random numbers, one per purpose and index.
const TEACHER: u64 = 1;
const EXAMPLE: u64 = 2;
const BATCH: u64 = 3;
const EVAL: u64 = 4;

impl Rng {
    /// The stream `n` of purpose `tag` under `seed`.
    fn stream(seed: u64, tag: u64, n: u64) -> Self {
        Rng(mix(seed ^ mix((tag << 56) ^ n)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform with mean 0 and variance 1: on [-√3, √3). Exact in f32
    /// (24 random bits), so no rounding differs between machines.
    fn unit(&mut self) -> f32 {
        const SQRT3: f32 = 1.732_050_8;
        let u = (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
        (2.0 * u - 1.0) * SQRT3
    }
}

/// Examples stored for the matrix products: `xt` holds the inputs
/// transposed (row `i` is feature `i` of every example), `y` the targets,
/// one row per example.
struct Batch {
    n: usize,
    xt: Vec<f32>,
    y: Vec<f32>,
}

/// The teacher and the held-out set, made once per run.
pub struct Workload {
    cfg: Config,
    /// `inputs × rank`, scaled by 1/√inputs.
    u: Vec<f32>,
    /// `rank × outputs`, scaled by 1/√rank.
    v: Vec<f32>,
    /// The frozen base, `inputs × outputs`: the teacher's first
    /// `rank / 2` components.
    base: Vec<f32>,
    eval: Batch,
}

impl Workload {
    /// Builds the teacher and the held-out set of `cfg`.
    pub fn new(cfg: &Config) -> Self {
        let mut rng = Rng::stream(cfg.seed, TEACHER, 0);
        let su = 1.0 / (cfg.inputs as f32).sqrt();
        let sv = 1.0 / (cfg.rank as f32).sqrt();
        let u: Vec<f32> = (0..cfg.inputs * cfg.rank).map(|_| rng.unit() * su).collect();
        let v: Vec<f32> = (0..cfg.rank * cfg.outputs).map(|_| rng.unit() * sv).collect();
        let base = pretrained(cfg, &u, &v);
        let mut w = Workload { cfg: cfg.clone(), u, v, base, eval: Batch { n: 0, xt: Vec::new(), y: Vec::new() } };
        let eval: Vec<Rng> = (0..cfg.eval_examples as u64).map(|i| Rng::stream(cfg.seed, EVAL, i)).collect();
        w.eval = w.batch_of(eval);
        w
    }

    /// The frozen base the weights are added to.
    pub fn base(&self) -> &[f32] {
        &self.base
    }

    /// The model's matrix: the base plus the trained weights.
    fn model(&self, w: &[f32]) -> Vec<f32> {
        self.base.iter().zip(w).map(|(b, w)| b + w).collect()
    }

    /// One example from its stream: inputs, then targets = inputs ·
    /// teacher + noise.
    fn example(&self, mut rng: Rng, x: &mut [f32], y: &mut [f32]) {
        let cfg = &self.cfg;
        for xi in x.iter_mut() {
            *xi = rng.unit();
        }
        let mut h = vec![0.0f32; cfg.rank];
        for (xi, urow) in x.iter().zip(self.u.chunks_exact(cfg.rank)) {
            for (hr, ur) in h.iter_mut().zip(urow) {
                *hr += xi * ur;
            }
        }
        y.fill(0.0);
        for (hr, vrow) in h.iter().zip(self.v.chunks_exact(cfg.outputs)) {
            for (yk, vk) in y.iter_mut().zip(vrow) {
                *yk += hr * vk;
            }
        }
        for yk in y.iter_mut() {
            *yk += cfg.noise * rng.unit();
        }
    }

    /// The examples of `streams`, as a batch.
    fn batch_of(&self, streams: Vec<Rng>) -> Batch {
        let cfg = &self.cfg;
        let n = streams.len();
        let mut xt = vec![0.0f32; cfg.inputs * n];
        let mut y = vec![0.0f32; n * cfg.outputs];
        let mut x = vec![0.0f32; cfg.inputs];
        for ((b, rng), yrow) in streams.into_iter().enumerate().zip(y.chunks_exact_mut(cfg.outputs)) {
            self.example(rng, &mut x, yrow);
            for (row, xi) in xt.chunks_exact_mut(n).zip(&x) {
                if let Some(slot) = row.get_mut(b) {
                    *slot = *xi;
                }
            }
        }
        Batch { n, xt, y }
    }

    /// The mini-batch of step `step` (1-based): examples drawn from the
    /// training set by the step's own stream.
    fn train_batch(&self, step: u64) -> Batch {
        let mut pick = Rng::stream(self.cfg.seed, BATCH, step);
        let streams = (0..self.cfg.batch)
            .map(|_| Rng::stream(self.cfg.seed, EXAMPLE, pick.next_u64() % self.cfg.examples))
            .collect();
        self.batch_of(streams)
    }

    /// Residuals `x · w − y` of a batch (`w` the model's matrix), one row per example, and their
    /// mean square.
    fn residuals(&self, w: &[f32], batch: &Batch) -> (Vec<f32>, f64) {
        let outputs = self.cfg.outputs;
        let mut pred = vec![0.0f32; batch.n * outputs];
        for cols in blocks(outputs, batch.n) {
            let mut p: Vec<&mut [f32]> =
                pred.chunks_exact_mut(outputs).filter_map(|row| row.get_mut(cols.clone())).collect();
            for (wrow, xrow) in w.chunks_exact(outputs).zip(batch.xt.chunks_exact(batch.n)) {
                let Some(wseg) = wrow.get(cols.clone()) else { continue };
                for (pb, xbi) in p.iter_mut().zip(xrow) {
                    for (pk, wk) in pb.iter_mut().zip(wseg) {
                        *pk += xbi * wk;
                    }
                }
            }
        }
        let mut sum = 0.0f64;
        for (pk, yk) in pred.iter_mut().zip(&batch.y) {
            *pk -= yk;
            sum += f64::from(*pk) * f64::from(*pk);
        }
        let count = (batch.n * outputs).max(1) as f64;
        (pred, sum / count)
    }

    /// The mean squared error on the held-out set: the objective.
    pub fn eval_loss(&self, t: &Train) -> f64 {
        self.residuals(&self.model(&t.weights), &self.eval).1
    }

    /// One step of Adam on the next mini-batch; returns that batch's loss
    /// before the update.
    pub fn step(&self, t: &mut Train) -> f64 {
        let cfg = &self.cfg;
        let step = t.step + 1;
        let batch = self.train_batch(step);
        let (resid, loss) = self.residuals(&self.model(&t.weights), &batch);
        let scale = 2.0 / (batch.n * cfg.outputs).max(1) as f32;
        let bc1 = 1.0 - powi(f64::from(cfg.beta1), step);
        let bc2 = 1.0 - powi(f64::from(cfg.beta2), step);
        let step_size = (f64::from(cfg.lr) / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let (b1, b2, eps) = (cfg.beta1, cfg.beta2, cfg.eps);
        // Block by block of columns, row by row: a block of the gradient
        // row stays in cache while Adam updates the same block of weights.
        let mut g = vec![0.0f32; cfg.outputs];
        for cols in blocks(cfg.outputs, batch.n) {
            let r: Vec<&[f32]> = resid.chunks_exact(cfg.outputs).filter_map(|row| row.get(cols.clone())).collect();
            let Some(g) = g.get_mut(..cols.len()) else { continue };
            let rows = t
                .weights
                .chunks_exact_mut(cfg.outputs)
                .zip(t.m.chunks_exact_mut(cfg.outputs))
                .zip(t.v.chunks_exact_mut(cfg.outputs))
                .zip(batch.xt.chunks_exact(batch.n));
            for (((wrow, mrow), vrow), xrow) in rows {
                let (Some(ws), Some(ms), Some(vs)) =
                    (wrow.get_mut(cols.clone()), mrow.get_mut(cols.clone()), vrow.get_mut(cols.clone()))
                else {
                    continue;
                };
                g.fill(0.0);
                for (rb, xbi) in r.iter().zip(xrow) {
                    let a = xbi * scale;
                    for (gk, rk) in g.iter_mut().zip(*rb) {
                        *gk += a * rk;
                    }
                }
                for (((wk, mk), vk), gk) in ws.iter_mut().zip(ms.iter_mut()).zip(vs.iter_mut()).zip(g.iter()) {
                    *mk = b1 * *mk + (1.0 - b1) * gk;
                    *vk = b2 * *vk + (1.0 - b2) * gk * gk;
                    *wk -= step_size * *mk / (vk.sqrt() * inv_sqrt_bc2 + eps);
                }
            }
        }
        t.step = step;
        loss
    }
}

/// The teacher's first `rank / 2` components, `u[.., ..h] · v[..h, ..]`:
/// what a model pretrained on part of the task would hold.
fn pretrained(cfg: &Config, u: &[f32], v: &[f32]) -> Vec<f32> {
    let h = cfg.rank / 2;
    let mut base = vec![0.0f32; cfg.params()];
    for (brow, urow) in base.chunks_exact_mut(cfg.outputs).zip(u.chunks_exact(cfg.rank)) {
        for (ur, vrow) in urow.iter().take(h).zip(v.chunks_exact(cfg.outputs)) {
            for (bk, vk) in brow.iter_mut().zip(vrow) {
                *bk += ur * vk;
            }
        }
    }
    base
}

/// Column ranges of `outputs` narrow enough that one range of `n` rows
/// (of predictions or residuals) fits in 16 KiB, a fraction of any L1
/// cache: the matrix products then stream the weights once and keep what
/// they add into close at hand. Each sum still runs over the same terms in
/// the same order, whatever the width.
fn blocks(outputs: usize, n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let width = (4096 / n.max(1)).clamp(16, outputs.max(1));
    (0..outputs).step_by(width).map(move |start| start..(start + width).min(outputs))
}

/// `x^n` by repeated squaring: the same multiplications on every machine
/// and at every optimisation level, unlike `powi`.
fn powi(x: f64, mut n: u64) -> f64 {
    let (mut base, mut acc) = (x, 1.0);
    while n > 0 {
        if n & 1 == 1 {
            acc *= base;
        }
        base *= base;
        n >>= 1;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_reduces_the_loss_and_replays_exactly() {
        let cfg = Config::new(16);
        let work = Workload::new(&cfg);
        let mut a = Train::fresh(&cfg);
        let start = work.eval_loss(&a);
        for _ in 0..100 {
            work.step(&mut a);
        }
        assert!(work.eval_loss(&a) < start / 2.0, "{} -> {}", start, work.eval_loss(&a));
        // The frozen base is half the teacher: a model over it starts
        // below a model of zeros.
        assert!(work.base().iter().any(|b| *b != 0.0));
        let zeros = Workload { base: vec![0.0; cfg.params()], ..Workload::new(&cfg) };
        assert!(start < zeros.eval_loss(&Train::fresh(&cfg)), "the base does not help");
        // Stopped midway and continued by a workload built anew, as a
        // resumed process builds it, training ends where it did.
        let mut b = Train::fresh(&cfg);
        for _ in 0..20 {
            work.step(&mut b);
        }
        let again = Workload::new(&cfg);
        for _ in 20..100 {
            again.step(&mut b);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn powi_is_exact_where_it_can_be_and_close_elsewhere() {
        assert_eq!(powi(2.0, 10), 1024.0);
        assert_eq!(powi(0.5, 3), 0.125);
        assert_eq!(powi(0.9, 0), 1.0);
        for n in 1..200 {
            assert!((powi(0.999, n) - 0.999f64.powf(n as f64)).abs() < 1e-12, "{n}");
        }
    }
}
