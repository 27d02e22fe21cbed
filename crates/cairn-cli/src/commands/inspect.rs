//! `cairn inspect`: a checkpoint's metadata and chunk table.

use std::io::Write;

use cairn::Checkpoint;
use serde::Serialize;

use crate::output::{self, safe};

/// Arguments of `cairn inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to read: a path, or a URL (`s3://bucket/key`,
    /// `gs://…`, `az://…`, `file:///path`).
    file: String,
    #[command(flatten)]
    base: crate::target::BaseArg,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Everything `inspect --json` prints.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    file: &'a str,
    format_version: u16,
    producer: &'a str,
    /// RFC 3339 UTC; `null` if the stored time cannot be written that way.
    created_at: Option<String>,
    step: Option<u64>,
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    digest: String,
    /// The file digest of the base a delta file needs; `null` for a full
    /// checkpoint.
    base_digest: Option<String>,
    frame_size: u32,
    file_bytes: u64,
    raw_bytes: u64,
    stored_bytes: u64,
    chunks: Vec<ChunkRow<'a>>,
}

/// One chunk in [`Summary`].
#[derive(Debug, Serialize)]
struct ChunkRow<'a> {
    name: &'a str,
    kind: String,
    dtype: Option<&'static str>,
    shape: Option<&'a [u64]>,
    codec: String,
    shuffle: bool,
    raw_bytes: u64,
    stored_bytes: u64,
    frames: u64,
    data_offset: u64,
    digest: String,
}

impl Summary<'_> {
    /// Content bytes over all chunks.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }
}

/// What the index of `ck` says, without reading chunk data.
pub fn summary(ck: &Checkpoint) -> Summary<'_> {
    let chunks: Vec<ChunkRow<'_>> = ck
        .chunks()
        .iter()
        .map(|c| ChunkRow {
            name: &c.name,
            kind: c.kind.to_string(),
            dtype: c.dtype.map(cairn::DType::name),
            shape: c.shape.as_deref(),
            codec: c.compression.to_string(),
            shuffle: c.shuffle,
            raw_bytes: c.raw_len,
            stored_bytes: c.stored_len,
            frames: c.frame_count(),
            data_offset: c.data_offset,
            digest: output::hex(&c.digest),
        })
        .collect();
    Summary {
        file: ck.origin(),
        format_version: ck.format_version(),
        producer: ck.producer(),
        created_at: output::rfc3339(ck.created_at()),
        step: ck.step(),
        metadata: ck.metadata(),
        digest: output::hex(&ck.digest()),
        base_digest: ck.base_digest().map(|d| output::hex(&d)),
        frame_size: ck.frame_size(),
        file_bytes: ck.file_len(),
        raw_bytes: chunks.iter().map(|c| c.raw_bytes).sum(),
        stored_bytes: chunks.iter().map(|c| c.stored_bytes).sum(),
        chunks,
    }
}

/// Writes the summary for people: key lines, then an aligned chunk table.
///
/// # Errors
/// Errors writing to `out`.
pub fn print_human(s: &Summary<'_>, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "file:      {}", safe(s.file))?;
    writeln!(out, "format:    version {}, written by {}", s.format_version, safe(s.producer))?;
    writeln!(out, "created:   {}", s.created_at.as_deref().unwrap_or("(not representable)"))?;
    writeln!(out, "step:      {}", s.step.map_or_else(|| "-".to_string(), |n| n.to_string()))?;
    writeln!(out, "digest:    {}", s.digest)?;
    if let Some(base) = &s.base_digest {
        writeln!(out, "base:      a delta file; reading it needs the checkpoint with digest {base} (--base)")?;
    }
    writeln!(
        out,
        "size:      {} on disk; {} of content stored in {} (ratio {:.2}); frames of {}",
        output::bytes(s.file_bytes),
        output::bytes(s.raw_bytes),
        output::bytes(s.stored_bytes),
        output::ratio(s.raw_bytes, s.stored_bytes),
        output::bytes(u64::from(s.frame_size))
    )?;
    if s.metadata.is_empty() {
        writeln!(out, "metadata:  -")?;
    }
    for (i, (k, v)) in s.metadata.iter().enumerate() {
        let label = if i == 0 { "metadata:" } else { "" };
        writeln!(out, "{label:<10} {} = {}", safe(k), safe(&v.to_string()))?;
    }
    writeln!(out, "chunks:    {}", s.chunks.len())?;
    if s.chunks.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = s
        .chunks
        .iter()
        .map(|c| {
            vec![
                safe(c.name),
                c.kind.clone(),
                c.dtype.unwrap_or("-").to_string(),
                c.shape.map_or_else(|| "-".to_string(), |d| format!("{d:?}")),
                c.codec.clone(),
                if c.shuffle { "yes" } else { "no" }.to_string(),
                output::bytes(c.raw_bytes),
                output::bytes(c.stored_bytes),
                format!("{:.2}", output::ratio(c.raw_bytes, c.stored_bytes)),
                c.frames.to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "KIND", "DTYPE", "SHAPE", "CODEC", "SHUFFLE", "RAW", "STORED", "RATIO", "FRAMES"];
    output::table(out, &header, &rows, &[6, 7, 8, 9])
}

/// Runs `cairn inspect`.
///
/// # Errors
/// A missing file; a damaged header, index or trailer (exit 3).
pub fn run(args: Args) -> anyhow::Result<()> {
    let ck = crate::target::open_with_base(&args.file, &args.base)?;
    let s = summary(&ck);
    if args.json {
        return output::print_json(&s);
    }
    let mut out = std::io::stdout().lock();
    print_human(&s, &mut out)?;
    out.flush()?;
    Ok(())
}
