//! Reading a log directory back: which segments there are, which records
//! are valid, and what is wrong where.
//!
//! The rules (docs/WAL.md states them for users):
//! - Segments must follow each other: each starts at the LSN after the
//!   previous one's last record.
//! - A sealed segment (not the last) was synced whole before the next one
//!   was created, so any invalid byte in it is corruption.
//! - In the last segment, an invalid record whose LSN is at or below the
//!   highest LSN any valid record says was durable is corruption; above it,
//!   it is a torn write that no caller was told had succeeded.
//! - Zero bytes where a record header would start end the log, unless valid
//!   records follow them.

use std::path::{Path, PathBuf};

use super::options::RecoveryMode;
use super::record::{self, Decoded, Frame, RecordType, ALIGN};
use super::segment::{self, HeaderError};
use crate::error::{Error, Result};
use crate::io::{Fs, OpenMode};

/// What kind of problem a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Bytes past the last point known durable that do not form valid
    /// records: a write cut short by a crash. Harmless; recovery cuts them.
    TornTail,
    /// Records that were durable, or a sealed segment, are damaged.
    Corrupt,
}

/// One problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Torn tail or corruption.
    pub kind: ProblemKind,
    /// The segment file.
    pub segment: PathBuf,
    /// Where in the segment the bad bytes start.
    pub offset: u64,
    /// How many bytes are bad (up to the next valid record or the end).
    pub bytes: u64,
    /// The LSN expected at that offset.
    pub lsn: u64,
    /// What check failed.
    pub detail: String,
}

impl Problem {
    pub(crate) fn to_error(&self) -> Error {
        Error::Corrupt {
            file: self.segment.display().to_string(),
            what: format!("log record (LSN {})", self.lsn),
            offset: self.offset,
            detail: match self.kind {
                ProblemKind::Corrupt => format!("{} (before the durable point)", self.detail),
                ProblemKind::TornTail => format!("{} (torn tail, refused by strict recovery)", self.detail),
            },
        }
    }
}

/// One segment as a scan found it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    /// The LSN in its name and header.
    pub first_lsn: u64,
    pub path: PathBuf,
    pub file_len: u64,
    /// Where valid records end and the next record is to be written.
    pub valid_end: u64,
    /// Its header never reached the disk: the segment holds nothing.
    pub header_missing: bool,
}

/// A whole log as a scan found it.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogScan {
    pub segments: Vec<SegmentScan>,
    pub problems: Vec<Problem>,
    pub records: u64,
    pub first_lsn: Option<u64>,
    pub last_lsn: Option<u64>,
    /// The highest LSN a valid record says was durable.
    pub durable_lsn: u64,
    /// Whether the last valid frame is a durable mark.
    pub marked: bool,
}

impl LogScan {
    /// The LSN the next appended record gets.
    pub fn next_lsn(&self) -> u64 {
        match (self.last_lsn, self.segments.last()) {
            (Some(last), _) => last + 1,
            (None, Some(seg)) => seg.first_lsn,
            (None, None) => 1,
        }
    }
}

/// What a scan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Opening a log (or a reader) under a recovery mode.
    Recover(RecoveryMode),
    /// Reporting every problem without failing: corruption is skipped over
    /// as salvage would, a torn tail ends the log as opening it would.
    Verify,
}

impl ScanMode {
    /// Whether records may jump ahead in LSN after skipped damage.
    fn lenient(self) -> bool {
        matches!(self, ScanMode::Recover(RecoveryMode::Salvage) | ScanMode::Verify)
    }

    /// Whether scanning goes on at the next valid record after a problem.
    fn resumes(self, kind: ProblemKind) -> bool {
        match self {
            ScanMode::Recover(RecoveryMode::Salvage) => true,
            ScanMode::Verify => kind == ProblemKind::Corrupt,
            ScanMode::Recover(_) => false,
        }
    }

    fn fatal(self, kind: ProblemKind) -> bool {
        match self {
            ScanMode::Recover(RecoveryMode::Strict) => true,
            ScanMode::Recover(RecoveryMode::TolerateTornTail) => kind == ProblemKind::Corrupt,
            ScanMode::Recover(RecoveryMode::Salvage) | ScanMode::Verify => false,
        }
    }
}

/// The segments in `dir`, ordered by first LSN.
pub(crate) fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let names = fs.list_dir(dir).map_err(|e| Error::io("listing log directory", dir, e))?;
    let mut segs: Vec<(u64, PathBuf)> =
        names.iter().filter_map(|n| segment::parse_name(n).map(|lsn| (lsn, dir.join(n)))).collect();
    segs.sort_by_key(|(lsn, _)| *lsn);
    Ok(segs)
}

/// Reads a whole file through `fs`.
pub(crate) fn read_file(fs: &dyn Fs, path: &Path) -> Result<Vec<u8>> {
    let f = fs.open(path, OpenMode::Read).map_err(|e| Error::io("opening log segment", path, e))?;
    f.read_all().map_err(|e| Error::io("reading log segment", path, e))
}

/// Scans every segment of the log in `dir`. In [`RecoveryMode::Strict`] the
/// first problem is an error; in [`RecoveryMode::TolerateTornTail`] the
/// first corruption is, and a torn tail ends the log; in
/// [`RecoveryMode::Salvage`] nothing is an error and every valid record
/// counts; [`ScanMode::Verify`] reports everything.
pub(crate) fn scan_log(fs: &dyn Fs, dir: &Path, mode: ScanMode) -> Result<LogScan> {
    let segs = list_segments(fs, dir)?;
    let mut scan = LogScan::default();
    let count = segs.len();
    for (i, (name_lsn, path)) in segs.into_iter().enumerate() {
        let bytes = read_file(fs, &path)?;
        let last = i + 1 == count;
        let stop = scan_segment(&mut scan, &bytes, name_lsn, path, last, mode)?;
        if stop {
            break;
        }
    }
    Ok(scan)
}

/// Scans one segment into `scan`. Returns whether the log ends here.
fn scan_segment(
    scan: &mut LogScan,
    bytes: &[u8],
    name_lsn: u64,
    path: PathBuf,
    last: bool,
    mode: ScanMode,
) -> Result<bool> {
    let file_len = bytes.len() as u64;
    let expected = scan.next_lsn();
    let mut seg = SegmentScan { first_lsn: name_lsn, path, file_len, valid_end: 0, header_missing: false };
    let header_problem = match segment::decode_header(bytes) {
        Ok(lsn) if lsn == name_lsn => None,
        Ok(lsn) => Some(format!("segment header names LSN {lsn} but its file name says {name_lsn}")),
        Err(HeaderError::Unsupported(v)) => {
            return Err(Error::Unsupported {
                file: seg.path.display().to_string(),
                feature: format!("log segment version {v}"),
            })
        }
        // Records are written to a segment only after its header is synced,
        // so in the last segment a header that is missing or torn, with no
        // valid record after it, is a creation cut short by a crash.
        Err(e @ (HeaderError::Missing | HeaderError::Invalid(_)))
            if last && salvage_rest(bytes, segment::HEADER_LEN, name_lsn).is_empty() =>
        {
            if let HeaderError::Invalid(why) = e {
                let p = Problem {
                    kind: ProblemKind::TornTail,
                    segment: seg.path.clone(),
                    offset: 0,
                    bytes: file_len,
                    lsn: name_lsn,
                    detail: format!("segment header: {why}"),
                };
                report(scan, p, mode)?;
            }
            seg.header_missing = true;
            scan.segments.push(seg);
            return Ok(true);
        }
        Err(HeaderError::Missing) => Some("segment header missing".to_string()),
        Err(HeaderError::Invalid(why)) => Some(format!("segment header: {why}")),
    };
    if let Some(detail) = header_problem {
        let p = Problem {
            kind: ProblemKind::Corrupt,
            segment: seg.path.clone(),
            offset: 0,
            bytes: file_len,
            lsn: name_lsn,
            detail,
        };
        // Only salvage and verify get past this: they go on to the records.
        report(scan, p, mode)?;
    }
    if !scan.segments.is_empty() && name_lsn != expected {
        let p = Problem {
            kind: ProblemKind::Corrupt,
            segment: seg.path.clone(),
            offset: 0,
            bytes: 0,
            lsn: expected,
            detail: format!("segment starts at LSN {name_lsn}, expected {expected}: records are missing"),
        };
        report(scan, p, mode)?;
    }
    let mut at = segment::HEADER_LEN;
    // Salvage never goes back below what earlier segments held.
    let mut next = if scan.segments.is_empty() { name_lsn } else { name_lsn.max(expected) };
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let mut why = match record::decode(rest) {
            // A mark vouches for the record just before it.
            Decoded::Record(f) if f.kind == RecordType::DurableMark && f.lsn.checked_add(1) == Some(next) => {
                scan.durable_lsn = scan.durable_lsn.max(f.lsn);
                scan.marked = true;
                at += f.len;
                continue;
            }
            Decoded::Record(f) if f.kind == RecordType::DurableMark => {
                format!("durable mark for LSN {}, expected {}", f.lsn, next - 1)
            }
            Decoded::Record(f) if f.lsn == next || (mode.lenient() && f.lsn > next) => {
                accept(scan, &f);
                next = f.lsn + 1;
                at += f.len;
                continue;
            }
            Decoded::Record(f) => format!("record has LSN {}, expected {next}", f.lsn),
            Decoded::End => "zero bytes before later valid records".to_string(),
            Decoded::Invalid(why) => why.to_string(),
        };
        let later = salvage_rest(bytes, at + ALIGN, next);
        if matches!(record::decode(rest), Decoded::End) && later.is_empty() {
            // Zeros written ahead of the records end the log cleanly;
            // anything else there was not written by the log's writer.
            if rest.iter().all(|b| *b == 0) {
                break;
            }
            why = "bytes other than zeros after the last record".to_string();
        }
        let evidence = later.iter().map(|(_, f)| f.durable).max().unwrap_or(0).max(scan.durable_lsn);
        let kind = if !last || next <= evidence { ProblemKind::Corrupt } else { ProblemKind::TornTail };
        let resume =
            later.iter().find(|(_, f)| f.kind == RecordType::Data).map(|(off, _)| *off).filter(|_| mode.resumes(kind));
        let p = Problem {
            kind,
            segment: seg.path.clone(),
            offset: at as u64,
            bytes: (resume.unwrap_or(bytes.len()) - at) as u64,
            lsn: next,
            detail: why,
        };
        report(scan, p, mode)?;
        match resume {
            Some(off) => at = off,
            None => break,
        }
    }
    seg.valid_end = at as u64;
    let torn = scan.problems.last().is_some_and(|p| p.kind == ProblemKind::TornTail && p.segment == seg.path);
    scan.segments.push(seg);
    Ok(torn && mode != ScanMode::Recover(RecoveryMode::Salvage))
}

fn accept(scan: &mut LogScan, f: &Frame<'_>) {
    scan.records += 1;
    scan.first_lsn.get_or_insert(f.lsn);
    scan.last_lsn = Some(f.lsn);
    scan.durable_lsn = scan.durable_lsn.max(f.durable);
    scan.marked = false;
}

/// Records a problem, or fails with it when the mode does not tolerate it.
fn report(scan: &mut LogScan, p: Problem, mode: ScanMode) -> Result<()> {
    if mode.fatal(p.kind) {
        return Err(p.to_error());
    }
    scan.problems.push(p);
    Ok(())
}

/// Every valid frame (records and durable marks) at or after `from` with an
/// LSN of at least `min_lsn`, found by trying each aligned offset, following
/// chains of records.
pub(crate) fn salvage_rest(bytes: &[u8], from: usize, min_lsn: u64) -> Vec<(usize, Frame<'_>)> {
    let mut found = Vec::new();
    let mut at = from.next_multiple_of(ALIGN);
    let mut min = min_lsn;
    while at < bytes.len() {
        let buf = bytes.get(at..).unwrap_or_default();
        // A mark names the record before it, so it may be one below `min`.
        if record::peek_lsn(buf).is_none_or(|lsn| lsn.saturating_add(1) < min) {
            at += ALIGN;
            continue;
        }
        match record::decode(buf) {
            Decoded::Record(f) if f.kind == RecordType::Data && f.lsn >= min => {
                min = f.lsn.saturating_add(1);
                found.push((at, f));
                at += f.len;
            }
            Decoded::Record(f) if f.kind == RecordType::DurableMark && f.lsn.saturating_add(1) >= min => {
                found.push((at, f));
                at += f.len;
            }
            _ => at += ALIGN,
        }
    }
    found
}
