//! Reading records in LSN order, from a live log or a log on disk.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::options::RecoveryMode;
use super::record::{self, Decoded, RecordType, MAX_PAYLOAD};
use super::report::RecoveryReport;
use super::scan::{self, salvage_rest, ScanMode};
use super::segment;
use crate::error::{Error, Result};
use crate::io::{Fs, FsFile, FsRef, OpenMode, StdFs};

/// Bytes read from a segment at a time.
const BLOCK: usize = 1 << 20;

/// A segment a reader may read: where it is and where its records end.
#[derive(Debug, Clone)]
pub(crate) struct SegRange {
    pub first_lsn: u64,
    pub path: PathBuf,
    pub end: u64,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its log sequence number.
    pub lsn: u64,
    /// The bytes that were appended.
    pub payload: Vec<u8>,
}

/// Records in LSN order from a starting LSN, read a block at a time.
/// Items are errors when a record fails its checks (a log opened in
/// [`RecoveryMode::Salvage`] skips damaged records instead).
#[derive(Debug)]
pub struct WalIter {
    fs: FsRef,
    segs: VecDeque<SegRange>,
    from: u64,
    skip_damage: bool,
    cur: Option<Open>,
    /// The next LSN a record must have, or at least have when skipping.
    next: Option<u64>,
    failed: bool,
}

#[derive(Debug)]
struct Open {
    file: Box<dyn FsFile>,
    path: PathBuf,
    end: u64,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Open {
    /// Makes at least `want` bytes from `pos` available, or all that is
    /// left of the segment. Returns the bytes available.
    fn fill(&mut self, want: usize) -> Result<usize> {
        let have = self.buf.len() - self.pos;
        let left = self.end.saturating_sub(self.base + self.buf.len() as u64);
        if have >= want || left == 0 {
            return Ok(have);
        }
        self.buf.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
        let grow = want.max(BLOCK).saturating_sub(self.buf.len()).min(usize::try_from(left).unwrap_or(usize::MAX));
        let start = self.buf.len();
        self.buf.resize(start + grow, 0);
        let offset = self.base + start as u64;
        let dst = self.buf.get_mut(start..).unwrap_or_default();
        self.file.read_exact_at(dst, offset).map_err(|e| Error::io("reading log segment", &self.path, e))?;
        Ok(self.buf.len())
    }
}

impl WalIter {
    pub(crate) fn new(fs: FsRef, segs: Vec<SegRange>, from: u64, skip_damage: bool) -> Self {
        // Only the segment holding `from` and those after it are read.
        let start = segs.iter().rposition(|s| s.first_lsn <= from).unwrap_or(0);
        let segs: VecDeque<SegRange> = segs.into_iter().skip(start).collect();
        WalIter { fs, segs, from, skip_damage, cur: None, next: None, failed: false }
    }

    /// The next record with an LSN of at least the start, as the LSN and a
    /// borrowed payload: the allocation-free form of [`Iterator::next`].
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a record that fails its checks; I/O errors.
    pub fn next_ref(&mut self) -> Result<Option<(u64, &[u8])>> {
        if self.failed {
            return Ok(None);
        }
        let r = self.advance();
        if r.is_err() {
            self.failed = true;
        }
        let Some((lsn, start, len)) = r? else { return Ok(None) };
        let payload = self.cur.as_ref().and_then(|c| c.buf.get(start..start + len)).unwrap_or_default();
        Ok(Some((lsn, payload)))
    }

    /// Finds the next record; returns its LSN and its payload's place in
    /// the current buffer.
    fn advance(&mut self) -> Result<Option<(u64, usize, usize)>> {
        loop {
            if self.cur.is_none() {
                let Some(seg) = self.segs.pop_front() else { return Ok(None) };
                let file = self
                    .fs
                    .open(&seg.path, OpenMode::Read)
                    .map_err(|e| Error::io("opening log segment", &seg.path, e))?;
                let start = segment::HEADER_LEN as u64;
                self.cur = Some(Open { file, path: seg.path, end: seg.end, base: start, buf: Vec::new(), pos: 0 });
                self.next = self.next.or(Some(seg.first_lsn));
            }
            let Some(cur) = self.cur.as_mut() else { continue };
            let avail = cur.fill(record::HEADER_LEN)?;
            if avail == 0 {
                self.cur = None;
                continue;
            }
            let rest = cur.buf.get(cur.pos..).unwrap_or_default();
            let want = match rest.get(4..8).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes) {
                Some(len) if (len as usize) <= MAX_PAYLOAD => record::frame_len(len as usize),
                _ => record::HEADER_LEN,
            };
            let avail = cur.fill(want)?;
            let rest = cur.buf.get(cur.pos..cur.pos + avail).unwrap_or_default();
            let expected = self.next.unwrap_or(0);
            let why = match record::decode(rest) {
                Decoded::Record(f) if f.kind == RecordType::DurableMark => {
                    cur.pos += f.len;
                    continue;
                }
                Decoded::Record(f) if f.lsn == expected || (self.skip_damage && f.lsn > expected) => {
                    let start = cur.pos + record::HEADER_LEN;
                    cur.pos += f.len;
                    self.next = Some(f.lsn + 1);
                    if f.lsn < self.from {
                        continue;
                    }
                    return Ok(Some((f.lsn, start, f.payload.len())));
                }
                Decoded::Record(f) => format!("record has LSN {}, expected {expected}", f.lsn),
                // Zero-filled space within the recovered range can only be
                // end-of-segment padding; the scan checked nothing follows.
                Decoded::End => {
                    self.cur = None;
                    continue;
                }
                Decoded::Invalid(why) => why.to_string(),
            };
            if self.skip_damage {
                self.resync(expected)?;
                continue;
            }
            return Err(Error::Corrupt {
                file: cur.path.display().to_string(),
                what: format!("log record (LSN {expected})"),
                offset: cur.base + cur.pos as u64,
                detail: why,
            });
        }
    }

    /// Skips to the next valid record with an LSN of at least `min` in the
    /// current segment, or past its end.
    fn resync(&mut self, min: u64) -> Result<()> {
        let Some(cur) = self.cur.as_mut() else { return Ok(()) };
        // Damage is rare: read the rest of the segment and search it.
        let left = usize::try_from(cur.end.saturating_sub(cur.base)).unwrap_or(usize::MAX);
        cur.fill(left)?;
        let found = salvage_rest(&cur.buf, cur.pos + record::ALIGN, min).first().map(|(off, _)| *off);
        match found {
            Some(off) => cur.pos = off,
            None => self.cur = None,
        }
        Ok(())
    }
}

impl Iterator for WalIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_ref() {
            Ok(Some((lsn, payload))) => Some(Ok(Record { lsn, payload: payload.to_vec() })),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// A log on disk opened for reading only: nothing is locked, cut or
/// repaired, so it can read a log another process is writing.
#[derive(Debug)]
pub struct WalReader {
    fs: FsRef,
    segs: Vec<SegRange>,
    skip_damage: bool,
    report: RecoveryReport,
}

impl WalReader {
    /// Scans the log in `dir` on the real file system, tolerating a torn
    /// tail.
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(StdFs::shared(), dir, RecoveryMode::TolerateTornTail)
    }

    /// Scans the log in `dir` on `fs` under the rules of `mode`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `dir` is missing; [`Error::Corrupt`] when
    /// `mode` does not tolerate what the scan found; I/O errors.
    pub fn open_with(fs: FsRef, dir: impl AsRef<Path>, mode: RecoveryMode) -> Result<Self> {
        let started = Instant::now();
        let scan = scan::scan_log(&*fs, dir.as_ref(), ScanMode::Recover(mode))?;
        let segs = scan
            .segments
            .iter()
            .filter(|s| !s.header_missing)
            .map(|s| SegRange { first_lsn: s.first_lsn, path: s.path.clone(), end: s.valid_end })
            .collect();
        let mut report = RecoveryReport::from_scan(&scan);
        report.elapsed = started.elapsed();
        Ok(WalReader { fs, segs, skip_damage: mode == RecoveryMode::Salvage, report })
    }

    /// What the scan found.
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Records from `lsn` on, in LSN order.
    pub fn iter_from(&self, lsn: u64) -> WalIter {
        WalIter::new(self.fs.clone(), self.segs.clone(), lsn, self.skip_damage)
    }
}

/// Checks every record of the log in `dir` without changing anything.
/// Problems are reported, not returned as errors: damage is skipped over to
/// find more, a torn tail ends the log as opening it would (the bytes it
/// reports are those opening would cut). [`RecoveryReport::is_corrupt`]
/// tells whether durable records are damaged.
///
/// # Errors
/// [`Error::NotFound`] if `dir` is missing; [`Error::Unsupported`] for a
/// newer segment version; I/O errors.
pub fn verify(fs: &dyn Fs, dir: &Path) -> Result<RecoveryReport> {
    let started = Instant::now();
    let scan = scan::scan_log(fs, dir, ScanMode::Verify)?;
    let mut report = RecoveryReport::from_scan(&scan);
    report.elapsed = started.elapsed();
    Ok(report)
}
