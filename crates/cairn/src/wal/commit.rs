//! Group commit: appenders queue framed records in one buffer; whichever
//! finds no write in progress becomes the leader and writes (and, under
//! [`SyncPolicy::Always`], syncs) everything queued so far in one go, while the
//! others wait for the LSN they need.
//!
//! Under `SyncPolicy::Always` a new leader first waits, briefly, for the appenders
//! the last commit released to come back with their next record. Without
//! that pause the appenders settle into two halves that take turns, and each
//! sync carries only half of them.
//!
//! Waiters first spin, yielding their CPU, while commits are fast (see
//! [`WalOptions::spin_wait`]), then park on their own threads until the
//! leader unparks them as its commit ends. A released appender reads the
//! written and durable LSNs from atomics and goes without taking the state
//! lock again: with many appenders on few cores, a thundering herd on that
//! lock costs more than the sync it waited for.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::options::{SyncPolicy, WalOptions};
use super::reader::SegRange;
use super::record::{self, MAX_LSN, MAX_PAYLOAD};
use super::segment;
use crate::error::{Error, Result};
use crate::io::{FsFile, FsRef, OpenMode};

/// What appenders share, behind [`Shared::state`].
#[derive(Debug)]
pub(crate) struct State {
    /// Framed records waiting for a leader, LSNs `queued_first..next_lsn`.
    pub buf: Vec<u8>,
    /// A cleared buffer kept for reuse, so steady appends do not allocate.
    pub spare: Vec<u8>,
    pub queued_first: u64,
    pub next_lsn: u64,
    /// A leader is writing.
    pub leader: bool,
    /// Why the log refuses further appends.
    pub poisoned: Option<Arc<str>>,
    /// Threads parked until the commit in progress ends.
    pub waiters: Vec<Thread>,
    /// Appenders whose records are queued in `buf`.
    pub queued_appenders: usize,
    /// Appenders that were inside `append` when the last commit ended: how
    /// many the next commit can expect.
    pub expect: usize,
    /// A leader is waiting for appenders to queue (see the module docs).
    pub leader_waiting: bool,
    /// A moving average of how long a synced commit takes.
    pub commit_time: Duration,
}

impl State {
    /// The state of a log whose last record is `last`.
    pub(crate) fn new(last: u64) -> Self {
        State {
            buf: Vec::new(),
            spare: Vec::new(),
            queued_first: last + 1,
            next_lsn: last + 1,
            leader: false,
            poisoned: None,
            waiters: Vec::new(),
            queued_appenders: 0,
            expect: 0,
            leader_waiting: false,
            commit_time: Duration::ZERO,
        }
    }
}

/// Zeros written ahead of the end of the active segment at a time.
const ZERO_AHEAD: u64 = 1 << 20;

/// The longest a leader waits for appenders to come back.
const MAX_GATHER: Duration = Duration::from_millis(1);
/// A leader stops waiting when no appender came for this long.
const GATHER_IDLE: Duration = Duration::from_micros(50);

/// The segment being written, behind [`Shared::io`]; held only by a leader,
/// the interval flusher and maintenance (truncation, reads of the layout).
#[derive(Debug)]
pub(crate) struct Io {
    pub segments: Vec<SegRange>,
    pub file: Arc<dyn FsFile>,
    /// The LSN of the last record written.
    pub last_written: u64,
    /// Whether a durable mark follows that record.
    pub marked: bool,
    /// The active segment's length: zeros from its end up to here.
    pub zeroed: u64,
}

impl Io {
    /// Writes a durable mark for `lsn` after the last record if that record
    /// is `lsn` and no mark follows it yet. The mark is not synced: it only
    /// says what a sync already made true, and the next sync carries it.
    pub(crate) fn mark(&mut self, lsn: u64) -> Result<()> {
        if self.marked || self.last_written != lsn || lsn == 0 {
            return Ok(());
        }
        let Some(seg) = self.segments.last_mut() else { return Ok(()) };
        let mark = record::mark(lsn);
        self.file.write_at(&mark, seg.end).map_err(|e| Error::io("writing log segment", &seg.path, e))?;
        seg.end += mark.len() as u64;
        self.marked = true;
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub fs: FsRef,
    pub dir: PathBuf,
    pub opts: WalOptions,
    pub state: Mutex<State>,
    /// Every LSN up to this one is written to the file system. Raised only
    /// under the state lock; read anywhere.
    pub written: AtomicU64,
    /// Every LSN up to this one is durable. Raised only under the state
    /// lock; read anywhere.
    pub durable: AtomicU64,
    /// Appenders inside `append` now.
    pub inside: AtomicUsize,
    /// Signalled when a record is queued while a leader waits for more.
    pub gather: Condvar,
    pub io: Mutex<Io>,
}

pub(crate) use crate::util::lock;

impl Shared {
    /// The shared state of a log whose last record is `last`, written and
    /// durable, with `io` open on its active segment.
    pub(crate) fn new(fs: FsRef, dir: PathBuf, opts: WalOptions, last: u64, io: Io) -> Self {
        Shared {
            fs,
            dir,
            opts,
            state: Mutex::new(State::new(last)),
            written: AtomicU64::new(last),
            durable: AtomicU64::new(last),
            inside: AtomicUsize::new(0),
            gather: Condvar::new(),
            io: Mutex::new(io),
        }
    }

    /// The highest LSN known durable.
    pub(crate) fn durable_lsn(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether `lsn` is written, or durable if `durable`.
    fn reached(&self, lsn: u64, durable: bool) -> bool {
        let mark = if durable { &self.durable } else { &self.written };
        mark.load(Ordering::Acquire) >= lsn
    }

    pub(crate) fn poisoned_error(&self, cause: &str) -> Error {
        Error::Poisoned {
            what: format!("log {} (reopen it to recover what is on disk)", self.dir.display()),
            cause: cause.to_string(),
        }
    }

    /// Poisons the log with `e`: a failed write or sync leaves the file's
    /// state unknown, so everything is refused from now on rather than
    /// retried (the fsync rule). Wakes all waiters and returns the error
    /// they will see.
    pub(crate) fn poison(&self, st: &mut State, e: &Error) -> Error {
        let cause: Arc<str> = Arc::from(crate::error::chain(e).as_str());
        let err = self.poisoned_error(&cause);
        st.poisoned = Some(cause);
        for t in st.waiters.drain(..) {
            t.unpark();
        }
        err
    }

    /// Parks this thread until the commit in progress ends (or a spurious
    /// wake-up), with the state lock released meanwhile.
    fn park<'a>(&'a self, mut st: MutexGuard<'a, State>) {
        st.waiters.push(std::thread::current());
        drop(st);
        std::thread::park();
    }

    /// Waits for the commit in progress to reach `lsn` (see
    /// [`reached`](Self::reached)): spinning first while commits are fast,
    /// then parked. Returns whether `lsn` was reached; if not, the commit
    /// ended without it (or the wake-up was spurious) and the caller
    /// decides again under the lock.
    fn await_commit<'a>(&'a self, mut st: MutexGuard<'a, State>, lsn: u64, durable: bool) -> bool {
        let spin = self.opts.spin;
        let spin = if st.commit_time <= spin { spin } else { Duration::ZERO };
        st.waiters.push(std::thread::current());
        drop(st);
        if !spin.is_zero() {
            let started = Instant::now();
            while started.elapsed() < spin {
                if self.reached(lsn, durable) {
                    return true;
                }
                std::thread::yield_now();
            }
        }
        // The leader unparks every registered waiter once its commit ends,
        // so this returns even if it ended during the spin.
        std::thread::park();
        self.reached(lsn, durable)
    }

    /// Frames `payloads` under one lock, so they get consecutive LSNs, and
    /// waits until the last is written (and durable under `SyncPolicy::Always`).
    /// Returns the first and last LSN.
    pub(crate) fn append<'a>(&self, payloads: impl Iterator<Item = &'a [u8]> + Clone) -> Result<Option<(u64, u64)>> {
        if let Some(p) = payloads.clone().find(|p| p.len() > MAX_PAYLOAD) {
            return Err(Error::InvalidArgument(format!(
                "a log record holds at most {MAX_PAYLOAD} bytes, got {}",
                p.len()
            )));
        }
        let mut st = lock(&self.state);
        if let Some(cause) = &st.poisoned {
            return Err(self.poisoned_error(cause));
        }
        let first = st.next_lsn;
        let count = payloads.clone().count() as u64;
        if count > 0 && first.checked_add(count - 1).is_none_or(|last| last > MAX_LSN) {
            return Err(Error::InvalidArgument(format!("the log has no LSNs left for {count} more records")));
        }
        for p in payloads {
            let lsn = st.next_lsn;
            if st.buf.is_empty() {
                st.queued_first = lsn;
            }
            let durable = self.durable_lsn();
            record::encode(&mut st.buf, lsn, durable, p);
            st.next_lsn += 1;
        }
        if st.next_lsn == first {
            return Ok(None);
        }
        let last = st.next_lsn - 1;
        st.queued_appenders += 1;
        // The waiting leader checks for progress on its own every
        // `GATHER_IDLE`; waking it for every arrival costs more than it saves.
        if st.leader_waiting && st.queued_appenders >= st.expect {
            self.gather.notify_one();
        }
        self.inside.fetch_add(1, Ordering::Relaxed);
        let always = self.opts.sync == SyncPolicy::Always;
        let outcome = self.wait_for(st, last, always);
        self.inside.fetch_sub(1, Ordering::Relaxed);
        outcome.map(|()| Some((first, last)))
    }

    /// Waits until `lsn` is written, or durable if `durable`, leading writes
    /// when no one else is. Releases the state lock.
    pub(crate) fn wait_for<'a>(&'a self, mut st: MutexGuard<'a, State>, lsn: u64, durable: bool) -> Result<()> {
        loop {
            if self.reached(lsn, durable) {
                return Ok(());
            }
            if let Some(cause) = &st.poisoned {
                return Err(self.poisoned_error(cause));
            }
            if st.leader {
                if self.await_commit(st, lsn, durable) {
                    return Ok(());
                }
                st = lock(&self.state);
                continue;
            }
            let (guard, wake) = self.lead(st, durable || self.opts.sync == SyncPolicy::Always, false);
            drop(guard);
            for t in wake {
                t.unpark();
            }
            st = lock(&self.state);
        }
    }

    /// Starts a new segment for the records from the next LSN on, once the
    /// active one holds any record.
    pub(crate) fn rotate(&self) -> Result<()> {
        let mut st = lock(&self.state);
        while st.leader && st.poisoned.is_none() {
            self.park(st);
            st = lock(&self.state);
        }
        if st.poisoned.is_none() {
            let (guard, wake) = self.lead(st, false, true);
            st = guard;
            for t in wake {
                t.unpark();
            }
        }
        match &st.poisoned {
            Some(cause) => Err(self.poisoned_error(cause)),
            None => Ok(()),
        }
    }

    /// Under `SyncPolicy::Always`, waits until as many appenders have queued as
    /// the last commit saw, or half a commit's time (at most [`MAX_GATHER`]).
    fn gather<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.expect <= 1 || st.queued_appenders >= st.expect {
            return st;
        }
        let deadline = Instant::now() + (st.commit_time / 2).min(MAX_GATHER);
        while st.queued_appenders < st.expect && st.poisoned.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else { break };
            let before = st.queued_appenders;
            st.leader_waiting = true;
            st = self
                .gather
                .wait_timeout(st, left.min(GATHER_IDLE))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            st.leader_waiting = false;
            // The appenders come back in a burst; a pause means the burst is
            // over and the rest are busy elsewhere.
            if st.queued_appenders == before {
                break;
            }
        }
        st
    }

    /// Syncs the active segment without blocking appenders' writes (only a
    /// sealing waits), then marks everything written before it durable.
    pub(crate) fn sync_written(&self) -> Result<()> {
        let (file, path, written) = {
            let io = lock(&self.io);
            let written = self.written.load(Ordering::Acquire);
            (io.file.clone(), io.segments.last().map(|s| s.path.clone()).unwrap_or_default(), written)
        };
        {
            let st = lock(&self.state);
            if let Some(cause) = &st.poisoned {
                return Err(self.poisoned_error(cause));
            }
            if self.durable_lsn() >= written {
                return Ok(());
            }
        }
        let outcome = file
            .sync_data()
            .map_err(|e| Error::io("syncing log segment", &path, e))
            .and_then(|()| lock(&self.io).mark(written));
        let mut st = lock(&self.state);
        match outcome {
            Ok(()) => {
                self.durable.fetch_max(written, Ordering::AcqRel);
            }
            Err(e) => return Err(self.poison(&mut st, &e)),
        }
        Ok(())
    }

    /// Takes everything queued, writes it (and syncs if `sync`) without
    /// holding the state lock, then publishes the outcome to all waiters.
    /// With `rotate`, a new segment is started first. Returns the threads
    /// to unpark, best done once the lock is released.
    fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        sync: bool,
        rotate: bool,
    ) -> (MutexGuard<'a, State>, Vec<Thread>) {
        st.leader = true;
        if sync && self.opts.sync == SyncPolicy::Always {
            st = self.gather(st);
        }
        let spare = std::mem::take(&mut st.spare);
        let mut batch = std::mem::replace(&mut st.buf, spare);
        st.queued_appenders = 0;
        let first = if batch.is_empty() { st.next_lsn } else { st.queued_first };
        let last = st.next_lsn - 1;
        drop(st);
        let started = Instant::now();
        let outcome = self.write_batch(&batch, first, last, sync, rotate);
        let took = started.elapsed();
        let mut st = lock(&self.state);
        st.leader = false;
        if sync {
            st.commit_time = if st.commit_time.is_zero() { took } else { (st.commit_time * 7 + took) / 8 };
        }
        st.expect = self.inside.load(Ordering::Relaxed);
        match outcome {
            Ok(sealed) => {
                self.written.fetch_max(last, Ordering::AcqRel);
                self.durable.fetch_max(if sync { last } else { sealed }, Ordering::AcqRel);
            }
            Err(e) => {
                self.poison(&mut st, &e);
            }
        }
        batch.clear();
        st.spare = batch;
        let wake = std::mem::take(&mut st.waiters);
        (st, wake)
    }

    /// Writes one batch of frames (LSNs from `first`) at the end of the
    /// active segment. The records that would take it past the segment size
    /// go to the next segment (sealing this one first): a segment holds
    /// more only when a single record alone is larger. Returns the highest
    /// LSN made durable by sealing, or 0.
    fn write_batch(&self, batch: &[u8], first: u64, last: u64, sync: bool, rotate: bool) -> Result<u64> {
        let mut io = lock(&self.io);
        let mut sealed = 0;
        let holds_records = |io: &Io| io.segments.last().is_some_and(|s| io.last_written >= s.first_lsn);
        if rotate && holds_records(&io) {
            self.seal_and_start(&mut io, first)?;
            sealed = first - 1;
        }
        let (mut rest, mut lsn) = (batch, first);
        while !rest.is_empty() {
            let end = io.segments.last().map_or(0, |s| s.end);
            let room = self.opts.segment_size.saturating_sub(end);
            let (mut take, mut n) = fitting(rest, room);
            if take == 0 {
                if holds_records(&io) {
                    self.seal_and_start(&mut io, lsn)?;
                    sealed = lsn - 1;
                    continue;
                }
                // A record larger than a whole segment has one of its own.
                (take, n) = (frame_at(rest), 1);
                if take == 0 {
                    return Err(Error::Internal("a log batch holds a partial frame".into()));
                }
            }
            let Some(seg) = io.segments.last_mut() else {
                return Err(Error::Internal("the log has no active segment".into()));
            };
            let (offset, path) = (seg.end, seg.path.clone());
            let part = rest.get(..take).unwrap_or_default();
            io.file.write_at(part, offset).map_err(|e| Error::io("writing log segment", &path, e))?;
            let end = offset + take as u64;
            if let Some(seg) = io.segments.last_mut() {
                seg.end = end;
            }
            lsn += n;
            io.last_written = lsn - 1;
            io.marked = false;
            rest = rest.get(take..).unwrap_or_default();
            // Records then overwrite blocks that are already allocated and
            // inside the file's length, so a sync writes data alone, without
            // a journal commit for the new length (about twice as fast on
            // ext4). Zeros read as the end of the log.
            if rest.is_empty() && end + record::HEADER_LEN as u64 > io.zeroed {
                let to = (end + ZERO_AHEAD).min(self.opts.segment_size.max(end + record::HEADER_LEN as u64));
                let zeros = vec![0u8; usize::try_from(to - end).unwrap_or(0)];
                io.file.write_at(&zeros, end).map_err(|e| Error::io("writing log segment", &path, e))?;
                io.zeroed = to;
            }
        }
        debug_assert!(batch.is_empty() || io.last_written == last);
        if sync {
            let path = io.segments.last().map(|s| s.path.clone()).unwrap_or_default();
            io.file.sync_data().map_err(|e| Error::io("syncing log segment", &path, e))?;
            io.mark(last)?;
        }
        Ok(sealed)
    }

    /// Syncs the active segment whole, then creates the next one starting at
    /// `first`, with its header synced and its directory entry durable
    /// before any record is written to it.
    fn seal_and_start(&self, io: &mut Io, first: u64) -> Result<()> {
        let (old, end) = io.segments.last().map(|s| (s.path.clone(), s.end)).unwrap_or_default();
        // A sealed segment keeps no zeros after its records.
        io.file.set_len(end).map_err(|e| Error::io("sealing log segment", &old, e))?;
        io.file.sync_all().map_err(|e| Error::io("syncing log segment", &old, e))?;
        let file = create_segment(&self.fs, &self.dir, first)?;
        io.file = Arc::from(file);
        io.zeroed = segment::HEADER_LEN as u64;
        io.segments.push(SegRange {
            first_lsn: first,
            path: segment::path(&self.dir, first),
            end: segment::HEADER_LEN as u64,
        });
        Ok(())
    }
}

/// Creates the segment starting at `first` in `dir`: header written and
/// synced, then the directory synced.
pub(crate) fn create_segment(fs: &FsRef, dir: &std::path::Path, first: u64) -> Result<Box<dyn FsFile>> {
    let path = segment::path(dir, first);
    let file = fs.open(&path, OpenMode::CreateNew).map_err(|e| Error::io("creating log segment", &path, e))?;
    file.write_at(&segment::encode_header(first), 0).map_err(|e| Error::io("writing log segment header", &path, e))?;
    file.sync_data().map_err(|e| Error::io("syncing log segment", &path, e))?;
    fs.sync_dir(dir).map_err(|e| Error::io("syncing log directory", dir, e))?;
    Ok(file)
}

/// The bytes and the count of the whole frames at the start of `frames`
/// (framed by this log, so well formed) that fit in `room` bytes.
fn fitting(frames: &[u8], room: u64) -> (usize, u64) {
    let (mut at, mut n) = (0usize, 0u64);
    while at < frames.len() {
        let len = frame_at(frames.get(at..).unwrap_or_default());
        if len == 0 || (at + len) as u64 > room {
            break;
        }
        at += len;
        n += 1;
    }
    (at, n)
}

/// The length of the frame at the start of `frames`, 0 if none is there.
fn frame_at(frames: &[u8]) -> usize {
    let len = frames.get(4..8).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
    let flen = record::frame_len(len as usize);
    if frames.len() >= flen {
        flen
    } else {
        0
    }
}

/// The longest a segment of a log with this segment size can be: its
/// records stop at the segment size, unless one record alone is larger;
/// a durable mark and the zeros written ahead may follow.
pub(crate) fn max_segment_len(segment_size: u64) -> u64 {
    let one_record = (segment::HEADER_LEN + record::frame_len(MAX_PAYLOAD)) as u64;
    segment_size.max(one_record) + 2 * record::HEADER_LEN as u64
}
