//! `cairn demo`: make a small model-like checkpoint, then inspect and verify
//! it. A stand-in until a training demo replaces it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use cairn::{Checkpoint, CheckpointWriter, Compression, WriterOptions};

use crate::commands::inspect;
use crate::exit::Integrity;
use crate::output;

/// Arguments of `cairn demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into. Default = the user cache directory's `cairn/demo`.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

/// Tensors of the demo model: name, shape, standard deviation.
const TENSORS: [(&str, [u64; 2], f64); 5] = [
    ("embed.weight", [2048, 128], 0.02),
    ("layer0.weight", [512, 512], 0.02),
    ("layer0.bias", [1, 512], 0.01),
    ("layer1.weight", [512, 1024], 0.02),
    ("head.weight", [128, 512], 0.02),
];

/// SplitMix64: tiny, deterministic, good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal, by the Box-Muller transform.
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn generate(rng: &mut Rng, shape: [u64; 2], std_dev: f64) -> Vec<f32> {
    let n = shape.iter().product::<u64>();
    (0..n).map(|_| (rng.normal() * std_dev) as f32).collect()
}

/// Runs `cairn demo`.
///
/// # Errors
/// No cache directory and no `--root`; I/O errors; a failed verification.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = match args.root {
        Some(dir) => dir,
        None => {
            dirs::cache_dir().ok_or_else(|| anyhow!("no cache directory known; pass --root DIR"))?.join("cairn/demo")
        }
    };
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let path = root.join("demo.cairn");
    let mut out = std::io::stdout().lock();

    let mut rng = Rng(0x00C0_FFEE);
    let tensors: Vec<(&str, [u64; 2], Vec<f32>)> =
        TENSORS.iter().map(|(name, shape, sd)| (*name, *shape, generate(&mut rng, *shape, *sd))).collect();
    let config = serde_json::json!({"model": "demo-mlp", "lr": 3e-4, "batch_size": 64, "seed": 0xC0FFEE});
    let raw: u64 = tensors.iter().map(|(_, _, v)| v.len() as u64 * 4).sum();
    writeln!(out, "generating {} f32 tensors ({}) and a JSON config", tensors.len(), output::bytes(raw))?;

    let compression = Compression::Zstd(3);
    let started = Instant::now();
    let mut w = CheckpointWriter::create(&path, WriterOptions::default().compression(compression).shuffle(true))
        .with_context(|| format!("creating {}", path.display()))?;
    w.set_step(1000);
    w.set_metadata("demo", serde_json::json!(true));
    for (name, shape, values) in &tensors {
        w.add_tensor(name, shape, values).with_context(|| format!("adding {name}"))?;
    }
    w.add_json("config", &config).context("adding config")?;
    w.finish().with_context(|| format!("publishing {}", path.display()))?;
    let took = started.elapsed();

    let ck = Checkpoint::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let s = inspect::summary(&ck);
    writeln!(
        out,
        "packed {} with {compression} + shuffle in {:.1} ms: {} of content, {} on disk (ratio {:.2})\n",
        path.display(),
        took.as_secs_f64() * 1000.0,
        output::bytes(s.raw_bytes()),
        output::bytes(ck.file_len()),
        output::ratio(s.raw_bytes(), ck.file_len())
    )?;
    inspect::print_human(&s, &mut out)?;

    let report = ck.verify().with_context(|| format!("verifying {}", path.display()))?;
    if let Some(p) = report.problems.first() {
        return Err(anyhow::Error::new(Integrity(format!("{}: damaged {}: {}", path.display(), p.what, p.detail))));
    }
    writeln!(
        out,
        "\nverify OK: {} chunks, {} frames in {:.1} ms ({})",
        report.chunks,
        report.frames,
        output::millis(report.elapsed),
        output::rate(report.raw_bytes, report.elapsed)
    )?;
    for (name, _, values) in &tensors {
        let back: Vec<f32> = ck.read_tensor(name).with_context(|| format!("reading {name}"))?;
        if back != *values {
            return Err(anyhow!("tensor {name:?} read back differs from what was written"));
        }
    }
    writeln!(out, "read back: all {} tensors match what was written", tensors.len())?;
    let st = ck.stats();
    writeln!(
        out,
        "load stats: {} read, {} decompressed (ratio {:.2}), {} overall; read {:.1} ms, decompress {:.1} ms, checks {:.1} ms",
        output::bytes(st.bytes_read),
        output::bytes(st.bytes_decompressed),
        st.compression_ratio(),
        output::rate(st.bytes_decompressed, st.wall_time),
        output::millis(st.read_time),
        output::millis(st.decompress_time),
        output::millis(st.verify_time)
    )?;
    out.flush()?;
    Ok(())
}
