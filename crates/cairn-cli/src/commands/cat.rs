//! `cairn cat`: one chunk's bytes to stdout.

use std::io::Write;

use anyhow::Context;

/// Arguments of `cairn cat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to read: a path, or a URL (`s3://bucket/key`,
    /// `gs://…`, `az://…`, `file:///path`).
    file: String,
    #[command(flatten)]
    base: crate::target::BaseArg,
    /// The chunk to print.
    chunk: String,
}

/// Runs `cairn cat`. Frames are checked before they are written, so a
/// damaged chunk stops the output at the first bad frame (exit 3).
///
/// # Errors
/// A missing file or chunk; a corrupt frame; stdout errors (a closed pipe is
/// turned into a quiet success by the caller).
pub fn run(args: Args) -> anyhow::Result<()> {
    let ck = crate::target::open_with_base(&args.file, &args.base)?;
    let mut out = std::io::stdout().lock();
    ck.read_to(&args.chunk, &mut out).with_context(|| format!("reading chunk {:?} from {}", args.chunk, args.file))?;
    out.flush().context("writing to stdout")?;
    Ok(())
}
