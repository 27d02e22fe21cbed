//! `cairn export`: write a checkpoint's tensors as a safetensors file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::output;

/// Arguments of `cairn export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to read: a path, or a URL (`s3://bucket/key`,
    /// `gs://…`, `az://…`, `file:///path`).
    file: String,
    #[command(flatten)]
    base: crate::target::BaseArg,
    /// The safetensors file to write, published atomically and durably.
    /// Compressed chunks are decoded, every frame checked on the way;
    /// string metadata becomes `__metadata__`.
    out: PathBuf,
    /// Leave out chunks that are not tensors instead of refusing the
    /// checkpoint (they are named on stderr).
    #[arg(long)]
    skip_non_tensors: bool,
}

/// Runs `cairn export`.
///
/// # Errors
/// Chunks that are not tensors without `--skip-non-tensors` (exit 1, naming
/// them); a damaged chunk (exit 3); I/O errors.
pub fn run(args: Args) -> anyhow::Result<()> {
    let ck = crate::target::open_with_base(&args.file, &args.base)?;
    let report = cairn::import::to_safetensors(&ck, &args.out, args.skip_non_tensors)
        .with_context(|| format!("exporting {} to {}", args.file, args.out.display()))?;
    let mut err = std::io::stderr().lock();
    if !report.skipped_chunks.is_empty() {
        writeln!(err, "left out chunks that are not tensors: {}", quoted(&report.skipped_chunks))?;
    }
    if !report.skipped_metadata.is_empty() {
        writeln!(err, "left out metadata that is not a string: {}", quoted(&report.skipped_metadata))?;
    }
    writeln!(
        std::io::stdout().lock(),
        "exported {} tensors ({}) from {} to {}",
        report.tensors,
        output::bytes(report.bytes),
        args.file,
        args.out.display()
    )?;
    Ok(())
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}
