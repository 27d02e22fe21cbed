//! [`StateLog`]: state that changes by operations, each logged before it is
//! applied, with snapshots so recovery replays only the recent tail.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::log::Wal;
use super::options::WalOptions;
use super::report::RecoveryReport;
use super::snapshot;
use crate::error::{Error, Result};
use crate::format::WriterOptions;
use crate::io::{create_dir_durable, FsRef, StdFs};

/// State a [`StateLog`] keeps: serde-encodable, changed only by applying
/// operations, and deterministic (the same ops in the same order give the
/// same state), since recovery re-applies logged ops to a snapshot.
pub trait LoggedState: Serialize + DeserializeOwned {
    /// One change to the state, logged before it is applied.
    type Op: Serialize + DeserializeOwned;
    /// Applies one operation.
    fn apply(&mut self, op: &Self::Op);
}

/// Where replay stands, handed to the progress callback during recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Ops replayed so far.
    pub replayed: u64,
    /// Ops to replay in all (the log's last LSN minus the snapshot's).
    pub total: u64,
}

/// Options for [`StateLog::open_with`].
#[derive(Clone)]
pub struct StateLogOptions {
    wal: WalOptions,
    every_ops: Option<u64>,
    every_bytes: Option<u64>,
    keep: usize,
    snapshot_writer: WriterOptions,
    progress: Option<Arc<dyn Fn(ReplayProgress) + Send + Sync>>,
}

impl fmt::Debug for StateLogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateLogOptions")
            .field("wal", &self.wal)
            .field("every_ops", &self.every_ops)
            .field("every_bytes", &self.every_bytes)
            .field("keep", &self.keep)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for StateLogOptions {
    fn default() -> Self {
        StateLogOptions {
            wal: WalOptions::default(),
            every_ops: Some(10_000),
            every_bytes: Some(64 << 20),
            keep: 2,
            snapshot_writer: WriterOptions::default(),
            progress: None,
        }
    }
}

impl StateLogOptions {
    /// The log's options (sync policy, recovery mode, segment size).
    /// Default = [`WalOptions::default`].
    #[must_use]
    pub fn wal(mut self, opts: WalOptions) -> Self {
        self.wal = opts;
        self
    }

    /// Take a snapshot once this many ops were applied since the last one;
    /// `None` for no count limit. Default = `Some(10_000)`.
    #[must_use]
    pub fn snapshot_every_ops(mut self, ops: Option<u64>) -> Self {
        self.every_ops = ops.map(|n| n.max(1));
        self
    }

    /// Take a snapshot once this many bytes of ops were logged since the
    /// last one; `None` for no byte limit. Default = `Some(64 MiB)`.
    #[must_use]
    pub fn snapshot_every_bytes(mut self, bytes: Option<u64>) -> Self {
        self.every_bytes = bytes.map(|n| n.max(1));
        self
    }

    /// How many snapshots to keep (at least 1). The log keeps the records
    /// after the oldest kept one, so a damaged newest snapshot can fall back
    /// to the one before. Default = 2.
    #[must_use]
    pub fn keep_snapshots(mut self, n: usize) -> Self {
        self.keep = n.max(1);
        self
    }

    /// How snapshot files are written (compression, frame size).
    /// Default = [`WriterOptions::default`].
    #[must_use]
    pub fn snapshot_writer(mut self, opts: WriterOptions) -> Self {
        self.snapshot_writer = opts;
        self
    }

    /// Called during recovery every 64 Ki replayed ops and at the end.
    /// Default = none.
    #[must_use]
    pub fn on_progress(mut self, f: impl Fn(ReplayProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// What recovery found and did when a [`StateLog`] was opened.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StateRecovery {
    /// The LSN of the snapshot recovery started from: `Some(0)` for the
    /// base snapshot of the initial state; `None` only for a log written
    /// before base snapshots existed, started from `init()`.
    pub snapshot_lsn: Option<u64>,
    /// Newer snapshots that failed their checks and were passed over, with
    /// why. They are left in place for inspection.
    pub skipped_snapshots: Vec<(PathBuf, String)>,
    /// Ops replayed from the log after the snapshot.
    pub replayed: u64,
    /// What opening the log found.
    pub wal: RecoveryReport,
    /// How long recovery took in all.
    pub elapsed: Duration,
}

/// State kept durable as a snapshot plus a write-ahead log of the ops since.
///
/// `apply` logs the op (durably, under the log's sync policy) and only then
/// applies it. Snapshots are checkpoint files written every N ops or bytes,
/// or on demand; log segments before the oldest kept snapshot are deleted
/// once the new snapshot is durable, so recovery replays at most about one
/// snapshot interval however long the process has run.
///
/// ```
/// use cairn::wal::{LoggedState, StateLog};
/// # fn main() -> Result<(), cairn::Error> {
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Counter { total: i64 }
/// impl LoggedState for Counter {
///     type Op = i64;
///     fn apply(&mut self, op: &i64) { self.total += op; }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut log = StateLog::open(dir.path(), Counter::default)?;
/// log.apply(5)?;
/// log.apply(-2)?;
/// drop(log);
/// let log = StateLog::open(dir.path(), Counter::default)?;
/// assert_eq!(log.state().total, 3);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StateLog<S: LoggedState> {
    fs: FsRef,
    dir: PathBuf,
    wal: Wal,
    state: S,
    opts: StateLogOptions,
    snapshot_lsn: Option<u64>,
    ops_since: u64,
    bytes_since: u64,
    recovery: StateRecovery,
}

/// The log's directory inside a StateLog's directory.
const WAL_DIR: &str = "wal";

impl<S: LoggedState> StateLog<S> {
    /// Opens (or creates) the StateLog in `dir` on the real file system with
    /// default options; a new log starts from `init()`, which is kept as
    /// its base snapshot (see [`open_with`](Self::open_with)).
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>, init: impl FnOnce() -> S) -> Result<Self> {
        Self::open_with(StdFs::shared(), dir, StateLogOptions::default(), init)
    }

    /// Opens (or creates) the StateLog in `dir` on `fs`: loads the newest
    /// snapshot that passes its checks, then replays the logged ops after
    /// it.
    ///
    /// `init` is called only when the log is created (no snapshot and no
    /// logged op yet): the state it returns is written as the base snapshot
    /// (at LSN 0) before `open_with` returns, so it is kept from then on,
    /// whatever `init` a later open passes. (Logs written before base
    /// snapshots existed start again from `init()` and their ops from LSN 1.)
    ///
    /// # Errors
    /// As [`Wal::open_with`]; [`Error::Corrupt`] if the log no longer holds
    /// the ops after the usable snapshot, or if every snapshot is damaged;
    /// [`Error::Serde`] if a logged op does not decode as `S::Op`; errors
    /// writing the base snapshot.
    pub fn open_with(
        fs: FsRef,
        dir: impl AsRef<Path>,
        opts: StateLogOptions,
        init: impl FnOnce() -> S,
    ) -> Result<Self> {
        let started = Instant::now();
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&*fs, &dir)?;
        // The log's lock also guards the snapshots beside it.
        let wal = Wal::open_with(fs.clone(), dir.join(WAL_DIR), opts.wal.clone())?;
        snapshot::remove_temps(&fs, &dir)?;
        let mut recovery = StateRecovery { wal: wal.recovery().clone(), ..StateRecovery::default() };
        let snapshots = snapshot::list(&fs, &dir)?;
        let mut loaded = None;
        for (lsn, path) in &snapshots {
            match snapshot::read::<S>(&fs, path, *lsn) {
                Ok(state) => {
                    loaded = Some((*lsn, state));
                    break;
                }
                Err(e) => recovery.skipped_snapshots.push((path.clone(), crate::error::chain(&e))),
            }
        }
        let (base, state) = match loaded {
            Some((lsn, s)) => (Some(lsn), s),
            // A new log: its initial state becomes the base snapshot before
            // anything else happens, so no later `init` can replace it.
            None if snapshots.is_empty() && wal.last_lsn().is_none() => {
                let state = init();
                snapshot::write(&fs, &dir, 0, &state, &opts.snapshot_writer)?;
                (Some(0), state)
            }
            // A log from before base snapshots, whose ops start at LSN 1.
            None if snapshots.is_empty() => (None, init()),
            // Every snapshot is damaged: the state they held is lost, and
            // starting again from `init()` would say nothing of it.
            None => {
                let (path, why) = recovery.skipped_snapshots.first().cloned().unwrap_or_default();
                return Err(Error::Corrupt {
                    file: path.display().to_string(),
                    what: "snapshot".into(),
                    offset: 0,
                    detail: format!(
                        "no snapshot of the state log can be read ({} damaged; the newest: {why}); move the \
                         damaged snapshots away to start again from the initial state",
                        recovery.skipped_snapshots.len()
                    ),
                });
            }
        };
        recovery.snapshot_lsn = base;
        let mut log = StateLog {
            fs,
            dir,
            wal,
            state,
            opts,
            snapshot_lsn: base,
            ops_since: 0,
            bytes_since: 0,
            recovery: StateRecovery::default(),
        };
        recovery.replayed = log.replay(base.unwrap_or(0))?;
        recovery.elapsed = started.elapsed();
        log.recovery = recovery;
        Ok(log)
    }

    /// Re-applies the logged ops after `base`; returns how many.
    fn replay(&mut self, base: u64) -> Result<u64> {
        let last = self.wal.last_lsn().unwrap_or(0);
        let wal_dir = self.wal.dir().to_path_buf();
        if last < base {
            return Err(Error::Corrupt {
                file: wal_dir.display().to_string(),
                what: "log".into(),
                offset: 0,
                detail: format!("the log ends at LSN {last}, before the snapshot at LSN {base}"),
            });
        }
        if last > base && self.wal.first_lsn() > base + 1 {
            return Err(Error::Corrupt {
                file: wal_dir.display().to_string(),
                what: "log".into(),
                offset: 0,
                detail: format!(
                    "the log starts at LSN {} but ops from LSN {} on are needed after the snapshot",
                    self.wal.first_lsn(),
                    base + 1
                ),
            });
        }
        let total = last - base;
        let progress = self.opts.progress.clone();
        let report = |replayed| {
            if let Some(f) = &progress {
                f(ReplayProgress { replayed, total });
            }
        };
        let mut replayed = 0u64;
        let mut iter = self.wal.iter_from(base + 1);
        while let Some((lsn, payload)) = iter.next_ref()? {
            let op: S::Op = postcard::from_bytes(payload)
                .map_err(|e| Error::Serde { name: format!("log record {lsn}"), detail: e.to_string() })?;
            self.state.apply(&op);
            self.bytes_since += payload.len() as u64;
            replayed += 1;
            if replayed.is_multiple_of(64 << 10) {
                report(replayed);
            }
        }
        report(replayed);
        self.ops_since = replayed;
        Ok(replayed)
    }

    /// Logs `op`, then applies it; returns its LSN. A snapshot that is due
    /// is taken first, so an error means `op` was not applied.
    ///
    /// # Errors
    /// [`Error::Serde`] if the op cannot be encoded; the log's errors
    /// ([`Error::Poisoned`] after a failed write or sync); a failed due
    /// snapshot's errors.
    pub fn apply(&mut self, op: S::Op) -> Result<u64> {
        if self.snapshot_due() {
            self.snapshot()?;
        }
        let bytes =
            postcard::to_stdvec(&op).map_err(|e| Error::Serde { name: "log op".into(), detail: e.to_string() })?;
        let lsn = self.wal.append(&bytes)?;
        self.state.apply(&op);
        self.ops_since += 1;
        self.bytes_since += bytes.len() as u64;
        Ok(lsn)
    }

    fn snapshot_due(&self) -> bool {
        self.opts.every_ops.is_some_and(|n| self.ops_since >= n)
            || self.opts.every_bytes.is_some_and(|n| self.bytes_since >= n)
    }

    /// Writes a snapshot of the current state now (if any op was applied
    /// since the last one), then deletes snapshots beyond the kept number and
    /// the log segments no kept snapshot needs. Returns the snapshot's LSN.
    ///
    /// # Errors
    /// The log's sync errors; errors writing, publishing or removing files.
    pub fn snapshot(&mut self) -> Result<u64> {
        let lsn = self.wal.last_lsn().unwrap_or(0);
        if self.snapshot_lsn == Some(lsn) || lsn == 0 {
            return Ok(lsn);
        }
        // The snapshot must never be durable ahead of the ops it includes:
        // the log would then hand their LSNs out again after a crash.
        self.wal.sync()?;
        snapshot::write(&self.fs, &self.dir, lsn, &self.state, &self.opts.snapshot_writer)?;
        // The ops after the snapshot start a segment of their own: recovery
        // then reads no record the snapshot already holds, and truncation
        // keeps none.
        self.wal.rotate()?;
        self.snapshot_lsn = Some(lsn);
        self.ops_since = 0;
        self.bytes_since = 0;
        let snaps = snapshot::list(&self.fs, &self.dir)?;
        let mut removed = false;
        for (_, path) in snaps.iter().skip(self.opts.keep) {
            self.fs.remove_file(path).map_err(|e| Error::io("removing old snapshot", path, e))?;
            removed = true;
        }
        if removed {
            self.fs.sync_dir(&self.dir).map_err(|e| Error::io("syncing directory", &self.dir, e))?;
        }
        let oldest_kept = snaps.iter().take(self.opts.keep).map(|(l, _)| *l).min().unwrap_or(lsn);
        self.wal.truncate_before(oldest_kept + 1)?;
        Ok(lsn)
    }

    /// The current state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The log underneath.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// The LSN of the newest snapshot, if any.
    pub fn snapshot_lsn(&self) -> Option<u64> {
        self.snapshot_lsn
    }

    /// What recovery found and did at open.
    pub fn recovery(&self) -> &StateRecovery {
        &self.recovery
    }

    /// Syncs the log and closes it.
    ///
    /// # Errors
    /// As [`Wal::close`].
    pub fn close(self) -> Result<()> {
        self.wal.close()
    }
}
