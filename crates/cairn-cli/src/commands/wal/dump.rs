//! `cairn wal dump`: every record of a log in LSN order.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use cairn::wal::WalReader;
use serde::Serialize;

use crate::output;

/// Arguments of `cairn wal dump`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Reads without locking or repairing anything, so it works on a log another process is \
writing; an interrupted write at the end is left out. Damage before the durable point exits with 3.")]
pub struct Args {
    /// The log directory.
    dir: PathBuf,
    /// One JSON object per line: `lsn`, `payload` (a string; invalid UTF-8
    /// is replaced, and `payload_hex` holds the exact bytes).
    #[arg(long)]
    json: bool,
}

/// One `--json` line.
#[derive(Debug, Serialize)]
struct Row<'a> {
    lsn: u64,
    payload: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
}

/// Runs `cairn wal dump`.
///
/// # Errors
/// A missing directory or I/O error (exit 1); a damaged record before the
/// durable point (exit 3); stdout errors (a closed pipe is turned into a
/// quiet success by the caller).
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.display().to_string();
    let reader = WalReader::open(&args.dir).with_context(|| format!("reading log {dir}"))?;
    let mut out = BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let mut records = reader.iter_from(0);
    while let Some((lsn, payload)) = records.next_ref().with_context(|| format!("reading log {dir}"))? {
        if args.json {
            let text = String::from_utf8_lossy(payload);
            let payload_hex = matches!(text, Cow::Owned(_)).then(|| output::hex(payload));
            // Through io::Error, which keeps a closed pipe recognisable (the
            // serde_json error does not expose it as its source).
            serde_json::to_writer(&mut out, &Row { lsn, payload: text, payload_hex })
                .map_err(std::io::Error::from)
                .context("writing to stdout")?;
            out.write_all(b"\n").context("writing to stdout")?;
        } else {
            write!(out, "{lsn}\t").context("writing to stdout")?;
            out.write_all(payload).context("writing to stdout")?;
            out.write_all(b"\n").context("writing to stdout")?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}
