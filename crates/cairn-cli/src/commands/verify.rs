//! `cairn verify`: check every frame checksum, chunk digest and the file
//! digest.

use std::io::Write;

use anyhow::Context;
use cairn::{Checkpoint, VerifyReport};
use serde::Serialize;

use crate::exit::Integrity;
use crate::output;

/// Arguments of `cairn verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to check: a path, or a URL (`s3://bucket/key`,
    /// `gs://…`, `az://…`, `file:///path`).
    file: String,
    #[command(flatten)]
    base: crate::target::BaseArg,
    /// Print one JSON object instead of a summary line.
    #[arg(long)]
    json: bool,
}

/// Everything `verify --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    file: String,
    ok: bool,
    chunks: usize,
    frames: usize,
    raw_bytes: u64,
    stored_bytes: u64,
    elapsed_ms: f64,
    bytes_per_sec: f64,
    digest: Option<String>,
    problems: Vec<ProblemRow>,
}

/// One damaged part.
#[derive(Debug, Serialize)]
struct ProblemRow {
    what: String,
    chunk: Option<String>,
    offset: u64,
    detail: String,
}

impl Report {
    fn new(file: String, ck: &Checkpoint, r: &VerifyReport) -> Self {
        let secs = r.elapsed.as_secs_f64();
        Report {
            file,
            ok: r.is_ok(),
            chunks: r.chunks,
            frames: r.frames,
            raw_bytes: r.raw_bytes,
            stored_bytes: r.stored_bytes,
            elapsed_ms: output::millis(r.elapsed),
            bytes_per_sec: if secs > 0.0 { r.raw_bytes as f64 / secs } else { 0.0 },
            digest: Some(output::hex(&ck.digest())),
            problems: r
                .problems
                .iter()
                .map(|p| ProblemRow {
                    what: p.what.clone(),
                    chunk: p.chunk.clone(),
                    offset: p.offset,
                    detail: p.detail.clone(),
                })
                .collect(),
        }
    }

    /// The report for a file so damaged it cannot be opened: its header,
    /// index or trailer failed a check.
    fn unopenable(file: String, what: &str, offset: u64, detail: &str) -> Self {
        Report {
            file,
            ok: false,
            chunks: 0,
            frames: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            elapsed_ms: 0.0,
            bytes_per_sec: 0.0,
            digest: None,
            problems: vec![ProblemRow { what: what.to_string(), chunk: None, offset, detail: detail.to_string() }],
        }
    }
}

/// The error returned when problems were found; names the damaged parts.
fn failure(file: &str, problems: &[ProblemRow]) -> anyhow::Error {
    let parts: Vec<&str> = problems.iter().map(|p| p.what.as_str()).collect();
    anyhow::Error::new(Integrity(format!("{file}: {} problem(s) found, damaged: {}", problems.len(), parts.join(", "))))
}

/// Runs `cairn verify`.
///
/// # Errors
/// A missing file or I/O error (exit 1); damage (exit 3), after the report
/// was printed.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = args.file.clone();
    let opened = Checkpoint::open_url(&args.file);
    if let Some(foreign) = opened.as_ref().err().and_then(|e| crate::target::foreign(&file, e)) {
        return Err(foreign);
    }
    let ck = match opened {
        Ok(ck) => ck,
        Err(cairn::Error::Corrupt { what, offset, detail, file: origin }) if args.json => {
            let report = Report::unopenable(file.clone(), &what, offset, &detail);
            output::print_json(&report)?;
            let err = cairn::Error::Corrupt { file: origin, what, offset, detail };
            return Err(anyhow::Error::new(err).context(format!("opening {file}")));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {file}"))),
    };
    let ck = match args.base.base.as_deref() {
        Some(base_target) => {
            let base = std::sync::Arc::new(crate::target::open(base_target)?);
            ck.with_base(base)
                .map_err(crate::exit::usage_if_invalid)
                .with_context(|| format!("reading {file} against the base {base_target}"))?
        }
        None => ck,
    };
    let verified = ck.verify().with_context(|| format!("verifying {file}"))?;
    let report = Report::new(file.clone(), &ck, &verified);
    if args.json {
        output::print_json(&report)?;
    } else if report.ok {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "OK {file}: {} chunks, {} frames, {} of content ({} stored) checked in {:.1} ms, {}",
            report.chunks,
            report.frames,
            output::bytes(report.raw_bytes),
            output::bytes(report.stored_bytes),
            report.elapsed_ms,
            output::rate(report.raw_bytes, verified.elapsed)
        )?;
    } else {
        let mut err = std::io::stderr().lock();
        for p in &report.problems {
            writeln!(
                err,
                "cairn: {file}: damaged {} at offset {}: {}",
                output::safe(&p.what),
                p.offset,
                output::safe(&p.detail)
            )?;
        }
    }
    if report.ok {
        Ok(())
    } else {
        Err(failure(&file, &report.problems))
    }
}
