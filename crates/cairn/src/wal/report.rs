//! What opening (or verifying) a log found.

use std::time::Duration;

use super::scan::{LogProblem, LogProblemKind, LogScan, OmittedProblems, Oversized};

/// What recovery found and did when a log was opened, or what a
/// verification found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segment files in the log.
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// The lowest LSN still in the log.
    pub first_lsn: Option<u64>,
    /// The highest valid LSN.
    pub last_lsn: Option<u64>,
    /// The highest LSN that a record says was durable when it was written.
    pub durable_lsn: u64,
    /// Torn tails that were (or, when verifying, would be) cut off, and in
    /// salvage mode the damaged regions that were skipped.
    pub problems: Vec<LogProblem>,
    /// Problems found beyond the first
    /// [`MAX_PROBLEMS`](super::MAX_PROBLEMS), counted rather than listed.
    pub omitted: OmittedProblems,
    /// Segments longer than the log's writer makes them with the segment
    /// size the log was opened (or verified) with. Their records were read
    /// as any others'; this is a note, not a problem.
    pub oversized: Vec<Oversized>,
    /// Bytes cut off the end of the log.
    pub truncated_bytes: u64,
    /// How long the scan and repair took.
    pub elapsed: Duration,
}

impl RecoveryReport {
    pub(crate) fn from_scan(scan: &LogScan) -> Self {
        RecoveryReport {
            segments: scan.segments.iter().filter(|s| !s.header_missing).count(),
            records: scan.records,
            first_lsn: scan.first_lsn,
            last_lsn: scan.last_lsn,
            durable_lsn: scan.durable_lsn,
            problems: scan.problems.clone(),
            omitted: scan.omitted,
            oversized: scan.oversized.clone(),
            truncated_bytes: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Whether any durable record is damaged (a torn tail is not damage).
    pub fn is_corrupt(&self) -> bool {
        self.omitted.corrupt > 0 || self.problems.iter().any(|p| p.kind == LogProblemKind::Corrupt)
    }

    /// Whether the log ended in a torn write.
    pub fn has_torn_tail(&self) -> bool {
        self.omitted.torn > 0 || self.problems.iter().any(|p| p.kind == LogProblemKind::TornTail)
    }
}
