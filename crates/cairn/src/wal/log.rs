//! The write-ahead log: open (with recovery), append, read, truncate.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::commit::{create_segment, lock, Io, Shared};
use super::options::{RecoveryMode, SyncPolicy, WalOptions};
use super::reader::{SegRange, WalIter};
use super::report::RecoveryReport;
use super::scan;
use crate::error::{Error, Result};
use crate::io::{create_dir_durable, FsLock, FsRef, OpenMode, StdFs};

/// The lock file that keeps a second writer out of a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// A segmented write-ahead log with group commit.
///
/// Records get consecutive LSNs from 1. Each is framed with its length, a
/// CRC32C, its LSN and a type; the format and the recovery rules are in
/// `docs/WAL.md`. `Wal` is `Sync`: share it between threads (for example
/// in an `Arc`) and concurrent appends share writes and syncs.
///
/// ```
/// use cairn::wal::{Wal, WalOptions, SyncPolicy};
/// # fn main() -> Result<(), cairn::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let wal = Wal::open(dir.path())?;
/// let lsn = wal.append(b"deposit 10")?; // durable when it returns
/// wal.append_batch([&b"withdraw 3"[..], b"deposit 1"])?;
/// drop(wal);
///
/// let wal = Wal::open(dir.path())?; // recovers what is on disk
/// let payloads: Vec<Vec<u8>> = wal.iter_from(lsn).map(|r| r.map(|r| r.payload)).collect::<Result<_, _>>()?;
/// assert_eq!(payloads.len(), 3);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    report: RecoveryReport,
    flusher: Option<Flusher>,
    _lock: FsLock,
}

#[derive(Debug)]
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: JoinHandle<()>,
}

impl Wal {
    /// Opens (or creates) the log in `dir` on the real file system with the
    /// default options: [`SyncPolicy::Always`], torn tails tolerated.
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(StdFs::shared(), dir, WalOptions::default())
    }

    /// Opens (or creates) the log in `dir` on `fs`, recovering what is on
    /// disk under `opts`' recovery mode: a torn tail is cut off (and
    /// reported in [`recovery`](Self::recovery)), everything kept is synced.
    ///
    /// # Errors
    /// [`Error::Locked`] if another `Wal` has the directory open;
    /// [`Error::Corrupt`] if the recovery mode refuses what it found;
    /// [`Error::Unsupported`] for a newer segment version; I/O errors.
    pub fn open_with(fs: FsRef, dir: impl AsRef<Path>, opts: WalOptions) -> Result<Self> {
        let started = Instant::now();
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&*fs, &dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs.try_lock(&lock_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Error::Locked { path: lock_path.clone() },
            _ => Error::io("locking", &lock_path, e),
        })?;
        let scan = scan::scan_log(&*fs, &dir, scan::ScanMode::Recover(opts.recovery), Some(opts.segment_size))?;
        let mut report = RecoveryReport::from_scan(&scan);
        let (segments, file) = repair(&fs, &dir, &scan, &mut report)?;
        let last = scan.next_lsn() - 1;
        let active = segments.last().map(|s| s.path.clone()).unwrap_or_default();
        let zeroed = file.len().map_err(|e| Error::io("reading the length of", active, e))?;
        let mut io = Io { segments, file, last_written: last, marked: scan.marked, zeroed };
        // Recovery synced what it kept: say so, so that later damage to those
        // records is not taken for a torn write.
        io.mark(last)?;
        let shared = Arc::new(Shared::new(fs, dir, opts, last, io));
        let flusher = match shared.opts.sync {
            SyncPolicy::Interval(every) => Some(start_flusher(&shared, every)),
            SyncPolicy::Always | SyncPolicy::Never => None,
        };
        report.elapsed = started.elapsed();
        Ok(Wal { shared, report, flusher, _lock: lock })
    }

    /// Appends one record and returns its LSN once it is written, and under
    /// [`SyncPolicy::Always`] durable.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a payload over 64 MiB;
    /// [`Error::Poisoned`] if this or an earlier write or sync failed.
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        match self.shared.append(std::iter::once(payload))? {
            Some((lsn, _)) => Ok(lsn),
            None => Err(Error::Internal("one record was appended, but the log returned no LSN".into())),
        }
    }

    /// Appends records with consecutive LSNs in one write (and one sync);
    /// returns their LSNs, or `None` for an empty batch.
    ///
    /// # Errors
    /// As [`append`](Self::append); nothing is appended if any payload is
    /// too large.
    pub fn append_batch<I, P>(&self, payloads: I) -> Result<Option<RangeInclusive<u64>>>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let items: Vec<P> = payloads.into_iter().collect();
        Ok(self.shared.append(items.iter().map(AsRef::as_ref))?.map(|(a, b)| a..=b))
    }

    /// Makes every record appended so far durable, whatever the sync policy.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the sync (or an earlier one) failed.
    pub fn sync(&self) -> Result<()> {
        let st = lock(&self.shared.state);
        let target = st.next_lsn - 1;
        self.shared.wait_for(st, target, false)?;
        self.shared.sync_written()
    }

    /// Seals the segment being written (syncing it) and starts a new one
    /// for the records that follow, unless it holds no record yet. Records
    /// before the new segment can then be dropped by
    /// [`truncate_before`](Self::truncate_before) without keeping older
    /// records that share their segment. [`StateLog`](super::StateLog)
    /// rotates after each snapshot.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if this or an earlier write or sync failed.
    pub fn rotate(&self) -> Result<()> {
        self.shared.rotate()
    }

    /// Records from `lsn` on (those still in the log), in LSN order. Reads
    /// what is written when it is called.
    pub fn iter_from(&self, lsn: u64) -> WalIter {
        let segs = lock(&self.shared.io).segments.clone();
        let skip = self.shared.opts.recovery == RecoveryMode::Salvage;
        WalIter::new(self.shared.fs.clone(), segs, lsn, skip)
    }

    /// Deletes whole segments whose records all have LSNs below `lsn`; the
    /// segment being written is never deleted. Returns how many went.
    /// Call it only once whatever replaces those records (a snapshot) is
    /// durable.
    ///
    /// # Errors
    /// I/O errors removing segments; a failed directory sync also poisons
    /// the log.
    pub fn truncate_before(&self, lsn: u64) -> Result<usize> {
        let mut io = lock(&self.shared.io);
        let n = io.segments.windows(2).take_while(|w| w.get(1).is_some_and(|next| next.first_lsn <= lsn)).count();
        if n == 0 {
            return Ok(0);
        }
        let fs = &self.shared.fs;
        for seg in io.segments.iter().take(n) {
            match fs.remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing log segment", &seg.path, e)),
            }
        }
        io.segments.drain(..n);
        let dir = &self.shared.dir;
        if let Err(e) = fs.sync_dir(dir) {
            let e = Error::io("syncing log directory", dir, e);
            self.shared.poison(&mut lock(&self.shared.state), &e);
            return Err(e);
        }
        Ok(n)
    }

    /// The highest LSN appended so far, or `None` if the log never held a
    /// record.
    pub fn last_lsn(&self) -> Option<u64> {
        let next = lock(&self.shared.state).next_lsn;
        (next > 1).then(|| next - 1)
    }

    /// The highest LSN known durable.
    pub fn durable_lsn(&self) -> u64 {
        self.shared.durable_lsn()
    }

    /// The first LSN of the oldest segment still on disk.
    pub fn first_lsn(&self) -> u64 {
        lock(&self.shared.io).segments.first().map_or(1, |s| s.first_lsn)
    }

    /// What opening the log found and did.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether an earlier write or sync failed (every append now fails).
    pub fn is_poisoned(&self) -> bool {
        lock(&self.shared.state).poisoned.is_some()
    }

    /// Syncs everything appended, with a durable mark after the last record
    /// so that damage to any record is later told from a torn write, and
    /// closes the log.
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub fn close(mut self) -> Result<()> {
        self.stop_flusher();
        self.finish()
    }

    fn finish(&self) -> Result<()> {
        self.sync()?;
        let io = lock(&self.shared.io);
        let path = io.segments.last().map(|s| s.path.clone()).unwrap_or_default();
        io.file.sync_data().map_err(|e| Error::io("syncing log segment", path, e))
    }

    fn stop_flusher(&mut self) {
        if let Some(f) = self.flusher.take() {
            *lock(&f.stop.0) = true;
            f.stop.1.notify_all();
            let _ = f.handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop_flusher();
        // Best effort, as for any writer dropped without close: what is
        // written already survives a killed process.
        if !self.is_poisoned() {
            let _ = self.finish();
        }
    }
}

/// Applies a scan to disk: removes a last segment whose creation was torn,
/// cuts a torn tail, syncs what is kept (so every recovered record is
/// durable before new ones say so), and opens or creates the active segment.
fn repair(
    fs: &FsRef,
    dir: &Path,
    scan: &scan::LogScan,
    report: &mut RecoveryReport,
) -> Result<(Vec<SegRange>, Arc<dyn crate::io::FsFile>)> {
    let mut segments = Vec::new();
    let mut removed = false;
    for s in &scan.segments {
        if s.header_missing {
            fs.remove_file(&s.path).map_err(|e| Error::io("removing empty log segment", &s.path, e))?;
            report.truncated_bytes += s.file_len;
            removed = true;
            continue;
        }
        segments.push(SegRange { first_lsn: s.first_lsn, path: s.path.clone(), end: s.valid_end });
    }
    if removed {
        fs.sync_dir(dir).map_err(|e| Error::io("syncing log directory", dir, e))?;
    }
    let last = scan.segments.iter().rev().find(|s| !s.header_missing);
    let file: Arc<dyn crate::io::FsFile> = match last {
        Some(seg) => {
            let path: &PathBuf = &seg.path;
            let f = fs.open(path, OpenMode::Write).map_err(|e| Error::io("opening log segment", path, e))?;
            // Past the valid records lie zeros written ahead (kept for the
            // next records) or a damaged tail (cut off).
            if seg.damaged_tail && seg.file_len > seg.valid_end {
                f.set_len(seg.valid_end).map_err(|e| Error::io("cutting torn tail of", path, e))?;
                report.truncated_bytes += seg.file_len - seg.valid_end;
            }
            f.sync_data().map_err(|e| Error::io("syncing log segment", path, e))?;
            Arc::from(f)
        }
        None => {
            let first = scan.next_lsn();
            let f = create_segment(fs, dir, first)?;
            segments.push(SegRange {
                first_lsn: first,
                path: super::segment::path(dir, first),
                end: super::segment::HEADER_LEN as u64,
            });
            Arc::from(f)
        }
    };
    Ok((segments, file))
}

fn start_flusher(shared: &Arc<Shared>, every: Duration) -> Flusher {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let (shared, flag) = (Arc::clone(shared), Arc::clone(&stop));
    let handle = std::thread::spawn(move || {
        let (m, c) = &*flag;
        let mut stopped = lock(m);
        // The flag is checked before every wait: a stop set before this
        // thread first took the lock (a log closed right after it was
        // opened) sent its wake-up to nobody.
        while !*stopped {
            stopped = c.wait_timeout(stopped, every).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
            if *stopped {
                return;
            }
            // Without the lock, so that a stop never waits for a sync.
            drop(stopped);
            // A failure poisons the log; appenders report it.
            let _ = shared.sync_written();
            stopped = lock(m);
        }
    });
    Flusher { stop, handle }
}
