//! Reading records in LSN order, from a live log or a log on disk.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::options::{RecoveryMode, WalOptions};
use super::record::{self, MAX_PAYLOAD};
use super::report::RecoveryReport;
use super::scan::{self, ScanMode, Step, Walk};
use super::segment;
use super::window::Window;
use crate::error::{Error, Result};
use crate::io::{Fs, FsRef, OpenMode, StdFs};

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

/// Records in LSN order from a starting LSN, read through a window of a
/// segment at a time (at most one record's size beyond a block). Items are
/// errors when a record fails its checks (a log opened in
/// [`RecoveryMode::Salvage`] skips damaged records instead, with the same
/// walk as the scan at open).
#[derive(Debug)]
pub struct WalIter {
    fs: FsRef,
    segs: VecDeque<SegRange>,
    from: u64,
    skip_damage: bool,
    cur: Option<(Window, Walk)>,
    /// The LSN the next record must have, carried across segments.
    next: Option<u64>,
    /// Where the last record's payload is in the current window.
    payload: (u64, usize),
    failed: bool,
}

/// The window of an iterator holds a whole record, so its payload can be
/// handed out as one slice.
const ITER_WINDOW: usize = record::HEADER_LEN + MAX_PAYLOAD + record::ALIGN;

impl WalIter {
    pub(crate) fn new(fs: FsRef, segs: Vec<SegRange>, from: u64, skip_damage: bool) -> Self {
        // Only the segment holding `from` and those after it are read.
        let start = segs.iter().rposition(|s| s.first_lsn <= from).unwrap_or(0);
        let segs: VecDeque<SegRange> = segs.into_iter().skip(start).collect();
        WalIter { fs, segs, from, skip_damage, cur: None, next: None, payload: (0, 0), failed: false }
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
        let Some(lsn) = r? else { return Ok(None) };
        let (at, len) = self.payload;
        let Some((w, _)) = self.cur.as_mut() else { return Ok(None) };
        // The walk checked the whole frame through this window, which
        // holds it still: the payload is all there.
        Ok(Some((lsn, w.get(at, len)?)))
    }

    /// Finds the next record; leaves its payload's place in `self.payload`.
    fn advance(&mut self) -> Result<Option<u64>> {
        loop {
            if self.cur.is_none() {
                let Some(seg) = self.segs.pop_front() else { return Ok(None) };
                let file = self
                    .fs
                    .open(&seg.path, OpenMode::Read)
                    .map_err(|e| Error::io("opening log segment", &seg.path, e))?;
                let next = *self.next.get_or_insert(seg.first_lsn);
                let window = Window::over(file, seg.path, seg.end, ITER_WINDOW);
                self.cur = Some((window, Walk { at: segment::HEADER_LEN as u64, next }));
            }
            let Some((w, walk)) = self.cur.as_mut() else { continue };
            let at = walk.at;
            match walk.step(w)? {
                Step::Record(f) => {
                    self.next = Some(walk.next);
                    if f.lsn < self.from {
                        continue;
                    }
                    self.payload = (at + record::HEADER_LEN as u64, f.payload_len);
                    return Ok(Some(f.lsn));
                }
                Step::Mark(_) => {}
                Step::End => self.cur = None,
                Step::Bad(bad) if self.skip_damage => {
                    self.next = Some(walk.next);
                    if bad.resume.is_none() {
                        self.cur = None;
                    }
                }
                Step::Bad(bad) => {
                    return Err(Error::Corrupt {
                        file: w.path().display().to_string(),
                        what: format!("log record (LSN {})", bad.lsn),
                        offset: bad.at,
                        detail: bad.why,
                    })
                }
            }
        }
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
        let scan = scan::scan_log(&*fs, dir.as_ref(), ScanMode::Recover(mode), None)?;
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

/// Checks every record of the log in `dir` without changing anything, for
/// a log with the default options (64 MiB segments): see
/// [`verify_with`].
///
/// # Errors
/// As [`verify_with`].
pub fn verify(fs: &dyn Fs, dir: &Path) -> Result<RecoveryReport> {
    verify_with(fs, dir, &WalOptions::default())
}

/// Checks every record of the log in `dir` without changing anything.
/// Problems are reported, not returned as errors: damage is skipped over to
/// find more, a torn tail ends the log as opening it would (the bytes it
/// reports are those opening would cut), under the same rules as opening.
/// [`RecoveryReport::is_corrupt`] tells whether durable records are
/// damaged. Segments longer than a log with `opts`' segment size writes are
/// noted in [`RecoveryReport::oversized`].
///
/// # Errors
/// [`Error::NotFound`] if `dir` is missing; [`Error::Unsupported`] for a
/// newer segment version; I/O errors.
pub fn verify_with(fs: &dyn Fs, dir: &Path, opts: &WalOptions) -> Result<RecoveryReport> {
    let started = Instant::now();
    let scan = scan::scan_log(fs, dir, ScanMode::Verify, Some(opts.segment_size))?;
    let mut report = RecoveryReport::from_scan(&scan);
    report.elapsed = started.elapsed();
    Ok(report)
}
