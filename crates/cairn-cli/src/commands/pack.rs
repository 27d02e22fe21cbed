//! `cairn pack`: stream files into a new checkpoint.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use cairn::backend::{parse_url, Target};
use cairn::{CheckpointWriter, ChunkSpec, Compression, WriterOptions};
use clap::ArgMatches;

use crate::exit::{usage, usage_if_invalid};
use crate::output;
use crate::progress;
use crate::spec::{ChunkArg, MetaArg, TensorArg};

/// Arguments of `cairn pack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to write, replaced atomically if it exists: a path,
    /// or a URL (`s3://bucket/key`, …), in which case it is packed into a
    /// temp file first, uploaded, and the upload verified.
    out: String,
    /// A file stored as an opaque chunk (repeatable).
    #[arg(long = "chunk", value_name = "NAME=PATH")]
    chunks: Vec<ChunkArg>,
    /// A file of raw little-endian elements stored as a tensor, e.g.
    /// `w=w.bin:f32:256,64`; its size must match the shape (repeatable).
    #[arg(long = "tensor", value_name = "NAME=PATH:DTYPE:D0,D1,...")]
    tensors: Vec<TensorArg>,
    /// A metadata entry; VALUE is parsed as JSON, or kept as a string (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<MetaArg>,
    /// The training step (or any counter) the checkpoint belongs to.
    #[arg(long, value_name = "N")]
    step: Option<u64>,
    /// none, lz4, zstd (level 3), zstd:LEVEL or auto.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Byte-shuffle tensor elements before compressing (helps floats).
    #[arg(long)]
    shuffle: bool,
    /// Frame size in bytes: a power of two from 4096 to 67108864.
    #[arg(long, value_name = "BYTES")]
    frame_size: Option<u32>,
    /// Write a delta file against this full checkpoint (a path or a URL):
    /// frames equal to the base's are stored as references, frames that
    /// differ a little as XORs; reading it then needs the base. The frame
    /// size defaults to the base's.
    #[command(flatten)]
    base: crate::target::BaseArg,
}

/// Parses `--compression` (also used by `cairn import`).
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
}

/// One input file, with what to store it as.
struct Input {
    name: String,
    path: PathBuf,
    spec: ChunkSpec,
    len: u64,
}

/// Positions of an option's values on the command line; `usize::MAX` when
/// unknown, which keeps the given order among themselves.
fn positions(matches: Option<&ArgMatches>, id: &str, n: usize) -> Vec<usize> {
    let found: Vec<usize> = matches.and_then(|m| m.indices_of(id)).map(Iterator::collect).unwrap_or_default();
    if found.len() == n {
        found
    } else {
        vec![usize::MAX; n]
    }
}

/// The inputs in command-line order, each file's size read and each
/// tensor's shape checked against it before anything is written.
fn inputs(args: &Args, matches: Option<&ArgMatches>) -> anyhow::Result<Vec<Input>> {
    let mut ordered: Vec<(usize, &str, &PathBuf, Option<&TensorArg>)> = Vec::new();
    for (pos, c) in positions(matches, "chunks", args.chunks.len()).into_iter().zip(&args.chunks) {
        ordered.push((pos, &c.name, &c.path, None));
    }
    for (pos, t) in positions(matches, "tensors", args.tensors.len()).into_iter().zip(&args.tensors) {
        ordered.push((pos, &t.name, &t.path, Some(t)));
    }
    ordered.sort_by_key(|(pos, ..)| *pos);

    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(ordered.len());
    for (_, name, path, tensor) in ordered {
        if !seen.insert(name) {
            return Err(usage(format!("chunk name {name:?} is given twice")));
        }
        let len = std::fs::metadata(path)
            .with_context(|| format!("reading input for chunk {name:?}: {}", path.display()))?
            .len();
        let spec = match tensor {
            None => ChunkSpec::bytes(),
            Some(t) => {
                check_shape(t, len)?;
                ChunkSpec::tensor(t.dtype, &t.shape)
            }
        };
        out.push(Input { name: name.to_string(), path: path.clone(), spec, len });
    }
    Ok(out)
}

/// A tensor's shape must account for exactly the bytes of its file.
fn check_shape(t: &TensorArg, len: u64) -> anyhow::Result<()> {
    let want = t.shape.iter().try_fold(t.dtype.size() as u64, |acc, d| acc.checked_mul(*d));
    if want == Some(len) {
        return Ok(());
    }
    let need = want.map_or_else(|| "more than 2^64".to_string(), |w| w.to_string());
    Err(usage(format!(
        "tensor {:?}: shape {:?} of {} needs {need} bytes, but {} holds {len} bytes",
        t.name,
        t.shape,
        t.dtype,
        t.path.display()
    )))
}

/// Runs `cairn pack`.
///
/// # Errors
/// Usage errors for bad specs or shapes; I/O errors reading inputs or
/// writing the checkpoint.
pub fn run(args: Args, matches: Option<&ArgMatches>) -> anyhow::Result<()> {
    let inputs = inputs(&args, matches)?;
    let mut opts = WriterOptions::default().compression(args.compression).shuffle(args.shuffle);
    let base = match args.base.base.as_deref() {
        Some(b) => Some(std::sync::Arc::new(crate::target::open(b)?)),
        None => None,
    };
    if let Some(bytes) = args.frame_size.or(base.as_ref().map(|b| b.frame_size())) {
        opts = opts.frame_size(bytes);
    }
    // A URL is packed into a staging file, then uploaded.
    let (staging, local) = match parse_url(&args.out).map_err(usage_if_invalid)? {
        Target::Path(p) => (None, PathBuf::from(p)),
        Target::Memory | Target::Object { .. } => {
            let dir = tempfile::tempdir().context("creating a temp directory")?;
            let local = dir.path().join("upload.cairn");
            (Some(dir), local)
        }
    };
    let remote = staging.is_some();
    let mut w = CheckpointWriter::create(&local, opts)
        .map_err(usage_if_invalid)
        .with_context(|| format!("creating {}", local.display()))?;
    if let Some(b) = base {
        let shown = args.base.base.as_deref().unwrap_or_default();
        w.set_base(b).map_err(usage_if_invalid).with_context(|| format!("packing against the base {shown}"))?;
    }
    if let Some(step) = args.step {
        w.set_step(step);
    }
    for m in &args.meta {
        w.set_metadata(m.key.clone(), m.value.clone());
    }

    let total: u64 = inputs.iter().map(|i| i.len).sum();
    let bar = progress::bytes_bar(total, "packing");
    let mut total_in = 0u64;
    for input in &inputs {
        let file = File::open(&input.path)
            .with_context(|| format!("opening input for chunk {:?}: {}", input.name, input.path.display()))?;
        total_in += w
            .add_reader(&input.name, &input.spec, bar.wrap_read(file))
            .map_err(usage_if_invalid)
            .with_context(|| format!("packing chunk {:?} from {}", input.name, input.path.display()))?;
    }
    let digest = w.digest();
    let path = w.finish().with_context(|| format!("publishing {}", local.display()))?;
    drop(bar);

    let file_len = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?.len();
    let shown = if remote {
        let from = path.to_string_lossy().into_owned();
        super::cp::copy_verified(&from, &args.out, &args.base)?;
        args.out.clone()
    } else {
        path.display().to_string()
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "packed {}: {} chunks, {} bytes in, {} bytes on disk, digest {}",
        shown,
        inputs.len(),
        total_in,
        file_len,
        output::hex(&digest)
    )?;
    Ok(())
}
