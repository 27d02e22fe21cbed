//! Writes small checkpoints made by the library as seed inputs, into each
//! directory given on the command line:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus -- \
//!     fuzz/corpus/reader fuzz/corpus/reader_resummed fuzz/corpus/delta
//! ```

use std::path::Path;

use cairn::{CheckpointWriter, ChunkSpec, Compression, DType, WriterOptions};

fn pattern(n: usize, k: usize) -> Vec<u8> {
    (0..n).map(|i| (i / k % 7) as u8).collect()
}

fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn seeds() -> Result<Vec<(&'static str, Vec<u8>)>, cairn::Error> {
    let opts = || WriterOptions::default().frame_size(4096);
    let mut out = Vec::new();

    out.push(("empty", CheckpointWriter::in_memory(opts())?.finish()?));

    let mut w = CheckpointWriter::in_memory(opts())?;
    w.set_step(7);
    w.set_metadata("loss", serde_json::json!(0.5));
    w.add_bytes("raw", &noise(300, 1))?;
    out.push(("one_raw_chunk", w.finish()?));

    let mut w = CheckpointWriter::in_memory(opts())?;
    w.set_step(1234);
    w.set_metadata("tags", serde_json::json!(["a", "b"]));
    let spec = |c| ChunkSpec::bytes().compression(c);
    w.add_chunk("lz4", &spec(Compression::Lz4), &pattern(3000, 3))?;
    w.add_chunk("zstd", &spec(Compression::Zstd(3)), &pattern(9000, 5))?;
    let mut auto = pattern(4096, 11);
    auto.extend(noise(200, 2));
    w.add_chunk("auto", &spec(Compression::Auto), &auto)?;
    w.add_chunk("empty", &spec(Compression::Zstd(1)), &[])?;
    let tensor: Vec<f32> = (0..1280).map(|i| (i % 50) as f32 * 0.25).collect();
    let bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = ChunkSpec::tensor(DType::F32, &[32, 40]).compression(Compression::Zstd(3)).shuffle(true);
    w.add_chunk("tensor", &t, &bytes)?;
    w.add_json("config", &serde_json::json!({"lr": 0.001}))?;
    out.push(("all_codecs", w.finish()?));

    let mut w = CheckpointWriter::in_memory(opts())?;
    w.add_tensor("small", &[2, 3], &[1u16, 2, 3, 4, 5, 6])?;
    w.add_serde("state", &(1u32, "x"))?;
    out.push(("tensor_and_serde", w.finish()?));

    // Shuffled lz4 frames stored plane by plane: raw and coded planes of
    // float weights, coded and lz4 planes of small counts.
    let mut w = CheckpointWriter::in_memory(opts())?;
    let weights: Vec<u8> = (0..2048).flat_map(|i| ((i as f32) * 0.37).sin().to_le_bytes()).collect();
    let counts: Vec<u8> = (0..1100u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
    let planes = |d, n| ChunkSpec::tensor(d, &[n]).compression(Compression::Lz4).shuffle(true);
    w.add_chunk("weights", &planes(DType::F32, 2048), &weights)?;
    w.add_chunk("counts", &planes(DType::U32, 1100), &counts)?;
    out.push(("planes", w.finish()?));

    // A delta file of the delta target's base: `a` unchanged (references),
    // `b` with a few bytes changed (an XOR), `c` whole, `d` new.
    let mut w = CheckpointWriter::in_memory(opts())?;
    w.set_base(std::sync::Arc::clone(&cairn_fuzz::base().0))?;
    w.add_bytes("a", &(0..3 * 4096).map(|i| (i / 5 % 7) as u8).collect::<Vec<u8>>())?;
    let mut b: Vec<u8> = (0..9000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    b[100] ^= 1;
    b[5000] ^= 2;
    w.add_bytes("b", &b)?;
    w.add_bytes("c", &[8; 100])?;
    w.add_bytes("d", &noise(50, 3))?;
    out.push(("delta", w.finish()?));
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = seeds()?;
    for dir in std::env::args().skip(1) {
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            let path = Path::new(&dir).join(format!("seed-{name}.cairn"));
            std::fs::write(&path, bytes)?;
            println!("{} ({} bytes)", path.display(), bytes.len());
        }
    }
    Ok(())
}
