//! `cairn import`: turn a file another program wrote into a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use cairn::import::{self, Format};
use cairn::{Compression, WriterOptions};

use crate::exit::usage;
use crate::output;

/// Arguments of `cairn import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file (or, for anomalyzer, the directory) to import.
    src: PathBuf,
    /// The checkpoint to write, published atomically and durably (default:
    /// SRC with its extension replaced by `.cairn`). Nothing is written
    /// there if the import fails.
    out: Option<PathBuf>,
    /// The source's format; without it, recognised from the file's first
    /// bytes. Formats: safetensors, apr2 (trueno's tuner samples),
    /// ringkernel (RKCKPT01 kernel checkpoints), anomalyzer (a directory
    /// with anomalyzer.snap and anomalyzer.wal).
    #[arg(long, value_name = "FORMAT")]
    from: Option<Format>,
    /// Compression of the imported chunks: none (tensors stay zero-copy),
    /// lz4, zstd (level 3), zstd:LEVEL or auto.
    #[arg(long, default_value = "none", value_parser = super::pack::parse_compression)]
    compression: Compression,
    /// Byte-shuffle tensor elements before compressing (helps floats).
    #[arg(long)]
    shuffle: bool,
}

/// Runs `cairn import`.
///
/// # Errors
/// A source of no known format (usage, exit 2, listing the formats); a
/// damaged source (exit 3, naming the part and offset); a dtype cairn does
/// not have (exit 1); I/O errors.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = match args.from {
        Some(f) => f,
        None => {
            import::sniff(&args.src).with_context(|| format!("reading {}", args.src.display()))?.ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                usage(format!(
                    "{} is in no format cairn imports ({}); name one with --from if it is",
                    args.src.display(),
                    names.join(", ")
                ))
            })?
        }
    };
    let out = args.out.clone().unwrap_or_else(|| args.src.with_extension("cairn"));
    if out == args.src {
        return Err(usage(format!("{} would be imported over itself; name another OUT", out.display())));
    }
    let opts = WriterOptions::default().compression(args.compression).shuffle(args.shuffle);
    let report = match format {
        Format::Safetensors => import::from_safetensors(&args.src, &out, opts),
        Format::Apr2 => import::from_apr2(&args.src, &out, opts),
        Format::Ringkernel => import::from_ringkernel(&args.src, &out, opts),
        Format::Anomalyzer => import::from_anomalyzer(&args.src, &out, opts),
        _ => return Err(usage(format!("importing {format} is not supported by this build"))),
    }
    .with_context(|| format!("importing {} ({format})", args.src.display()))?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    writeln!(
        std::io::stdout().lock(),
        "imported {} ({format}) into {}: {} chunks ({}), {} metadata entries",
        args.src.display(),
        out.display(),
        report.chunks,
        output::bytes(report.bytes),
        report.metadata
    )?;
    Ok(())
}
