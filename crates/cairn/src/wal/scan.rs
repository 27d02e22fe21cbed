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
//! - A record whose LSN jumps ahead of the expected one, every byte intact,
//!   means records are missing: a problem like any other, after which the
//!   modes that go on take the record.
//! - In the last segment, whether a problem is corruption or a torn write
//!   is decided against the highest LSN that any valid frame found in the
//!   rest of the segment vouches for, found once by one walk ahead.

use std::path::{Path, PathBuf};

use super::options::RecoveryMode;
use super::record::{self, RecordType, ALIGN};
use super::segment::{self, HeaderError};
use super::window::{decode_at, resync, At, FrameAt, Resync, Window};
use crate::error::{Error, Result};
use crate::io::Fs;

/// What kind of problem a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogProblemKind {
    /// Bytes past the last point known durable that do not form valid
    /// records: a write cut short by a crash. Harmless; recovery cuts them.
    TornTail,
    /// Records that were durable, or a sealed segment, are damaged.
    Corrupt,
}

/// One problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogProblem {
    /// Torn tail or corruption.
    pub kind: LogProblemKind,
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

impl LogProblem {
    pub(crate) fn to_error(&self) -> Error {
        Error::Corrupt {
            file: self.segment.display().to_string(),
            what: format!("log record (LSN {})", self.lsn),
            offset: self.offset,
            detail: match self.kind {
                LogProblemKind::Corrupt => format!("{} (before the durable point)", self.detail),
                LogProblemKind::TornTail => format!("{} (torn tail, refused by strict recovery)", self.detail),
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
    /// The scan stopped at a problem: the bytes from `valid_end` on are
    /// damaged or torn (recovery cuts them where the mode allows).
    pub damaged_tail: bool,
}

/// A segment file longer than the log's writer ever makes one: not damage
/// in itself (its records are read as any others), but not what the log
/// wrote either.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Oversized {
    /// The segment file.
    pub segment: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// The most a segment of the log's segment size can hold.
    pub limit: u64,
}

/// Problems found past [`MAX_PROBLEMS`], counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OmittedProblems {
    /// Corruption not listed.
    pub corrupt: u64,
    /// Torn tails not listed.
    pub torn: u64,
}

/// A whole log as a scan found it.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogScan {
    pub segments: Vec<SegmentScan>,
    pub problems: Vec<LogProblem>,
    /// Problems past the list's limit.
    pub omitted: OmittedProblems,
    /// Segments longer than the writer makes them.
    pub oversized: Vec<Oversized>,
    /// The kind of the last problem reported.
    pub last_kind: Option<LogProblemKind>,
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
    /// Whether scanning goes on at the next valid record after a problem.
    fn resumes(self, kind: LogProblemKind) -> bool {
        match self {
            ScanMode::Recover(RecoveryMode::Salvage) => true,
            ScanMode::Verify => kind == LogProblemKind::Corrupt,
            ScanMode::Recover(_) => false,
        }
    }

    fn fatal(self, kind: LogProblemKind) -> bool {
        match self {
            ScanMode::Recover(RecoveryMode::Strict) => true,
            ScanMode::Recover(RecoveryMode::TolerateTornTail) => kind == LogProblemKind::Corrupt,
            ScanMode::Recover(RecoveryMode::Salvage) | ScanMode::Verify => false,
        }
    }
}

/// Problems kept in a scan's list; more are counted, not kept, so a
/// segment damaged all through costs no more memory than this.
pub const MAX_PROBLEMS: usize = 1000;

/// The window a scan reads through: frames up to this size are checked
/// from one slice, longer ones piece by piece.
const SCAN_WINDOW: usize = super::window::BLOCK;

/// The files of a log directory: its segments, ordered by first LSN, and
/// files named like segments whose names no segment has.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub segments: Vec<(u64, PathBuf)>,
    pub misnamed: Vec<PathBuf>,
}

/// The segments in `dir`, ordered by first LSN, and the `*.wal` files
/// whose names are not segment names (outside the LSN range, or not 20
/// digits): the log never writes those, so they are damage or strangers.
pub(crate) fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Listing> {
    let names = fs.list_dir(dir).map_err(|e| Error::io("listing log directory", dir, e))?;
    let mut out = Listing::default();
    for n in &names {
        match segment::parse_name(n) {
            Some(lsn) => out.segments.push((lsn, dir.join(n))),
            None if n.ends_with(segment::SUFFIX) => out.misnamed.push(dir.join(n)),
            None => {}
        }
    }
    out.segments.sort_by_key(|(lsn, _)| *lsn);
    out.misnamed.sort();
    Ok(out)
}

/// Scans every segment of the log in `dir`. In [`RecoveryMode::Strict`] the
/// first problem is an error; in [`RecoveryMode::TolerateTornTail`] the
/// first corruption is, and a torn tail ends the log; in
/// [`RecoveryMode::Salvage`] nothing is an error and every valid record
/// counts; [`ScanMode::Verify`] reports everything. Memory stays at one
/// window of a segment whatever the log's size, and the time is linear in
/// its size whatever the damage.
///
/// With the log's segment size, segments longer than its writer makes them
/// are noted in [`LogScan::oversized`].
pub(crate) fn scan_log(fs: &dyn Fs, dir: &Path, mode: ScanMode, segment_size: Option<u64>) -> Result<LogScan> {
    let listing = list_segments(fs, dir)?;
    let mut scan = LogScan::default();
    for path in listing.misnamed {
        let bytes = fs.stat(&path).map(|s| s.len).unwrap_or(0);
        let p = LogProblem {
            kind: LogProblemKind::Corrupt,
            segment: path,
            offset: 0,
            bytes,
            lsn: 0,
            detail: format!(
                "a file named like a log segment but outside the segment names (1..={} in 20 digits): \
                 the log cannot read its records",
                record::MAX_LSN
            ),
        };
        report(&mut scan, p, mode)?;
    }
    let count = listing.segments.len();
    for (i, (name_lsn, path)) in listing.segments.into_iter().enumerate() {
        let last = i + 1 == count;
        let limit = segment_size.map(super::commit::max_segment_len);
        let stop = scan_segment(&mut scan, fs, path, name_lsn, last, mode, limit)?;
        if stop {
            break;
        }
    }
    Ok(scan)
}

/// Scans one segment into `scan`. Returns whether the log ends here.
fn scan_segment(
    scan: &mut LogScan,
    fs: &dyn Fs,
    path: PathBuf,
    name_lsn: u64,
    last: bool,
    mode: ScanMode,
    limit: Option<u64>,
) -> Result<bool> {
    let mut w = Window::open(fs, &path, SCAN_WINDOW)?;
    let file_len = w.end();
    if let Some(limit) = limit.filter(|l| file_len > *l) {
        scan.oversized.push(Oversized { segment: path.clone(), bytes: file_len, limit });
    }
    let expected = scan.next_lsn();
    let mut seg =
        SegmentScan { first_lsn: name_lsn, path, file_len, valid_end: 0, header_missing: false, damaged_tail: false };
    let header = w.get(0, segment::HEADER_LEN)?.to_vec();
    let header_problem = match segment::decode_header(&header) {
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
        // valid frame after it, is a creation cut short by a crash.
        Err(e @ (HeaderError::Missing | HeaderError::Invalid(_)))
            if last && !resync(&mut w, segment::HEADER_LEN as u64, name_lsn)?.frames =>
        {
            if let HeaderError::Invalid(why) = e {
                let p = LogProblem {
                    kind: LogProblemKind::TornTail,
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
        let p = LogProblem {
            kind: LogProblemKind::Corrupt,
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
        let p = LogProblem {
            kind: LogProblemKind::Corrupt,
            segment: seg.path.clone(),
            offset: 0,
            bytes: 0,
            lsn: expected,
            detail: format!("segment starts at LSN {name_lsn}, expected {expected}: records are missing"),
        };
        report(scan, p, mode)?;
    }
    // Salvage never goes back below what earlier segments held.
    let next = if scan.segments.is_empty() { name_lsn } else { name_lsn.max(expected) };
    let mut walk = Walk { at: segment::HEADER_LEN as u64, next };
    // What the rest of the segment vouches for, found once (at the first
    // problem of the last segment) and used for every problem after it.
    let mut evidence: Option<u64> = None;
    loop {
        let bad = match walk.step(&mut w)? {
            Step::Record(f) => {
                accept(scan, &f);
                continue;
            }
            Step::Mark(f) => {
                scan.durable_lsn = scan.durable_lsn.max(f.lsn);
                scan.marked = true;
                continue;
            }
            Step::End => break,
            Step::Bad(bad) => bad,
        };
        let kind = if last {
            let d = match evidence {
                Some(d) => d,
                None => *evidence.insert(lookahead(&mut w, bad.at, bad.lsn)?),
            };
            if bad.lsn <= d.max(scan.durable_lsn) {
                LogProblemKind::Corrupt
            } else {
                LogProblemKind::TornTail
            }
        } else {
            LogProblemKind::Corrupt
        };
        let resume = bad.resume.filter(|_| mode.resumes(kind));
        let p = LogProblem {
            kind,
            segment: seg.path.clone(),
            offset: bad.at,
            bytes: resume.unwrap_or(file_len).saturating_sub(bad.at),
            lsn: bad.lsn,
            detail: bad.why,
        };
        report(scan, p, mode)?;
        if resume.is_none() {
            walk.at = bad.at;
            seg.damaged_tail = true;
            break;
        }
    }
    seg.valid_end = walk.at;
    let torn = seg.damaged_tail && scan.last_kind == Some(LogProblemKind::TornTail);
    scan.segments.push(seg);
    Ok(torn && mode != ScanMode::Recover(RecoveryMode::Salvage))
}

/// The highest LSN that any valid frame from `at` to the end of the
/// segment says was durable, found by walking on from `at` (expecting LSN
/// `next` there) as the scan does, past every problem.
fn lookahead(w: &mut Window, at: u64, next: u64) -> Result<u64> {
    let mut walk = Walk { at, next };
    let mut d = 0;
    loop {
        match walk.step(w)? {
            Step::Record(f) | Step::Mark(f) => d = d.max(f.claim()),
            Step::Bad(bad) => {
                d = d.max(bad.evidence);
                if bad.resume.is_none() {
                    return Ok(d);
                }
            }
            Step::End => return Ok(d),
        }
    }
}

/// One walk along a segment's records, with the rules every reader of a
/// log shares: the scan at open, verification, the lookahead that tells a
/// torn write from damage, and the records iterator under salvage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    /// Where the next frame starts.
    pub at: u64,
    /// The LSN the next record must have.
    pub next: u64,
}

/// What one step of a walk met.
#[derive(Debug)]
pub(crate) enum Step {
    /// A record with the expected LSN, at the offset the walk was at.
    Record(FrameAt),
    /// A durable mark for the record before it.
    Mark(FrameAt),
    /// A problem; the walk is now at the next record it can take, if any.
    Bad(Bad),
    /// The end of the segment's records (nothing but zeros after them).
    End,
}

/// A problem a walk met.
#[derive(Debug)]
pub(crate) struct Bad {
    /// Where it starts.
    pub at: u64,
    /// The LSN expected there.
    pub lsn: u64,
    pub why: String,
    /// Where the walk goes on: the next valid record (for a jump in LSNs,
    /// the record itself), `None` if none follows.
    pub resume: Option<u64>,
    /// The highest LSN any frame found in the bad bytes vouches for.
    pub evidence: u64,
}

impl Walk {
    /// Reads the frame at `at` and moves past it; after a problem, searches
    /// on for the next valid record (see [`resync`]) and moves there.
    pub fn step(&mut self, w: &mut Window) -> Result<Step> {
        let at = self.at;
        let next = self.next;
        let (why, from, claim) = match decode_at(w, at)? {
            At::Frame(f) if f.kind == RecordType::Data && f.lsn == next => {
                self.at += f.len;
                self.next = f.lsn.saturating_add(1);
                return Ok(Step::Record(f));
            }
            At::Frame(f) if f.kind == RecordType::DurableMark && f.lsn.checked_add(1) == Some(next) => {
                self.at += f.len;
                return Ok(Step::Mark(f));
            }
            At::Frame(f) if f.kind == RecordType::Data && f.lsn > next => {
                // Every byte is intact but records are missing: reported,
                // then (where the mode goes on) the record is taken.
                self.next = f.lsn;
                let why = if f.lsn == next + 1 {
                    format!("record with LSN {next} is missing (the next record has LSN {})", f.lsn)
                } else {
                    format!("records with LSN {next}..={} are missing (the next record has LSN {})", f.lsn - 1, f.lsn)
                };
                return Ok(Step::Bad(Bad { at, lsn: next, why, resume: Some(at), evidence: f.claim() }));
            }
            At::Frame(f) if f.kind == RecordType::DurableMark => (
                format!("durable mark for LSN {}, expected {}", f.lsn, next.saturating_sub(1)),
                at + ALIGN as u64,
                f.claim(),
            ),
            At::Frame(f) => (format!("record has LSN {}, expected {next}", f.lsn), at + ALIGN as u64, f.claim()),
            At::End => {
                let found = resync(w, at, next)?;
                if !found.nonzero {
                    return Ok(Step::End);
                }
                // Zeros written ahead of the records end the log cleanly;
                // anything else there was not written by the log's writer.
                let why = if found.data.is_some() {
                    "zero bytes before later valid records"
                } else {
                    "bytes other than zeros after the last record"
                };
                return Ok(self.resumed(at, next, why.to_string(), 0, found));
            }
            At::Invalid(why) => (why.to_string(), at + ALIGN as u64, 0),
        };
        let found = resync(w, from, next)?;
        Ok(self.resumed(at, next, why, claim, found))
    }

    fn resumed(&mut self, at: u64, lsn: u64, why: String, claim: u64, found: Resync) -> Step {
        if let Some((off, lsn)) = found.data {
            self.at = off;
            self.next = lsn;
        }
        let evidence = claim.max(found.evidence);
        Step::Bad(Bad { at, lsn, why, resume: found.data.map(|(off, _)| off), evidence })
    }
}

fn accept(scan: &mut LogScan, f: &FrameAt) {
    scan.records += 1;
    scan.first_lsn.get_or_insert(f.lsn);
    scan.last_lsn = Some(f.lsn);
    scan.durable_lsn = scan.durable_lsn.max(f.durable);
    scan.marked = false;
}

/// Records a problem, or fails with it when the mode does not tolerate it.
fn report(scan: &mut LogScan, p: LogProblem, mode: ScanMode) -> Result<()> {
    if mode.fatal(p.kind) {
        return Err(p.to_error());
    }
    scan.last_kind = Some(p.kind);
    if scan.problems.len() < MAX_PROBLEMS {
        scan.problems.push(p);
    } else {
        match p.kind {
            LogProblemKind::Corrupt => scan.omitted.corrupt += 1,
            LogProblemKind::TornTail => scan.omitted.torn += 1,
        }
    }
    Ok(())
}
