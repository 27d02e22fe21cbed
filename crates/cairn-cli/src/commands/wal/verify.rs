//! `cairn wal verify`: check every record of a log without changing it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use cairn::io::StdFs;
use cairn::wal::{LogProblem, LogProblemKind, RecoveryReport};
use serde::Serialize;

use crate::exit::Integrity;
use crate::output;

/// Arguments of `cairn wal verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit 0 when every record is intact, also when the log ends in an interrupted write \
(a torn tail, cut off the next time the log is opened for appending); exit 3 when records before the \
durable point, or in a sealed segment, are damaged. Changes nothing and takes no lock.")]
pub struct Args {
    /// The log directory.
    dir: PathBuf,
    /// Print one JSON object instead of a summary line.
    #[arg(long)]
    json: bool,
}

/// Everything `wal verify --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    ok: bool,
    records: u64,
    first_lsn: Option<u64>,
    last_lsn: Option<u64>,
    durable_lsn: u64,
    segments: usize,
    torn_tail: bool,
    elapsed_ms: f64,
    problems: Vec<ProblemRow>,
    /// Problems found past the listed ones (a log damaged all through).
    problems_omitted: u64,
    /// Segments longer than the log's writer makes them (64 MiB segments).
    oversized_segments: Vec<OversizedRow>,
}

/// A segment longer than the writer makes one.
#[derive(Debug, Serialize)]
struct OversizedRow {
    segment: String,
    bytes: u64,
    limit: u64,
}

/// One problem found.
#[derive(Debug, Serialize)]
struct ProblemRow {
    kind: &'static str,
    segment: String,
    offset: u64,
    bytes: u64,
    lsn: u64,
    detail: String,
}

impl ProblemRow {
    fn new(p: &LogProblem) -> Self {
        let kind = match p.kind {
            LogProblemKind::TornTail => "torn_tail",
            LogProblemKind::Corrupt => "corrupt",
        };
        ProblemRow {
            kind,
            segment: p.segment.display().to_string(),
            offset: p.offset,
            bytes: p.bytes,
            lsn: p.lsn,
            detail: p.detail.clone(),
        }
    }
}

impl Report {
    fn new(dir: String, r: &RecoveryReport) -> Self {
        Report {
            dir,
            ok: !r.is_corrupt(),
            records: r.records,
            first_lsn: r.first_lsn,
            last_lsn: r.last_lsn,
            durable_lsn: r.durable_lsn,
            segments: r.segments,
            torn_tail: r.has_torn_tail(),
            elapsed_ms: output::millis(r.elapsed),
            problems: r.problems.iter().map(ProblemRow::new).collect(),
            problems_omitted: r.omitted.corrupt + r.omitted.torn,
            oversized_segments: r
                .oversized
                .iter()
                .map(|o| OversizedRow { segment: o.segment.display().to_string(), bytes: o.bytes, limit: o.limit })
                .collect(),
        }
    }

    /// `ok: 1234 records, LSN 1..1234, 3 segments`, and the torn tail if
    /// there is one.
    fn summary(&self) -> String {
        let mut line = format!("ok: {}", plural(self.records, "record"));
        if let (Some(first), Some(last)) = (self.first_lsn, self.last_lsn) {
            line.push_str(&format!(", LSN {first}..{last}"));
        }
        line.push_str(&format!(", {}", plural(self.segments as u64, "segment")));
        for p in self.problems.iter().filter(|p| p.kind == "torn_tail") {
            line.push_str(&format!(
                "; torn tail of {} at {} offset {} (LSN {}) would be cut on open",
                plural(p.bytes, "byte"),
                output::safe(&p.segment),
                p.offset,
                p.lsn
            ));
        }
        line
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Runs `cairn wal verify`.
///
/// # Errors
/// A missing directory or I/O error (exit 1); damaged records (exit 3),
/// after the report was printed.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.display().to_string();
    let found = cairn::wal::verify(&StdFs, &args.dir).with_context(|| format!("verifying log {dir}"))?;
    let report = Report::new(dir.clone(), &found);
    for o in &report.oversized_segments {
        writeln!(
            std::io::stderr().lock(),
            "cairn: warning: {} is {}, longer than the {} a segment of a log with 64 MiB segments holds: \
             its records were checked, but the log's writer did not leave it so",
            output::safe(&o.segment),
            plural(o.bytes, "byte"),
            plural(o.limit, "byte")
        )?;
    }
    if args.json {
        output::print_json(&report)?;
    } else if report.ok {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report.summary())?;
        out.flush()?;
    } else {
        let mut err = std::io::stderr().lock();
        for p in &report.problems {
            let what = if p.kind == "corrupt" { "damaged" } else { "torn tail" };
            writeln!(
                err,
                "cairn: {}: {what} at offset {}, LSN {}, {}: {}",
                output::safe(&p.segment),
                p.offset,
                p.lsn,
                plural(p.bytes, "byte"),
                output::safe(&p.detail)
            )?;
        }
    }
    if report.ok {
        return Ok(());
    }
    let damaged = report.problems.iter().filter(|p| p.kind == "corrupt").count() as u64 + found.omitted.corrupt;
    if report.problems_omitted > 0 && !args.json {
        writeln!(std::io::stderr().lock(), "cairn: … and {} more problems", report.problems_omitted)?;
    }
    Err(anyhow::Error::new(Integrity(format!(
        "{dir}: the log is damaged ({}): records before its durable point or in a sealed segment fail their checks",
        plural(damaged, "damaged region")
    ))))
}
