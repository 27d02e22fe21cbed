//! How a log is opened: its sync policy, recovery mode and segment size.

use std::time::Duration;

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `append` returns once the record is on disk (`fdatasync`).
    /// Concurrent appenders share one write and one sync (group commit).
    Always,
    /// `append` returns once the record is written to the operating system,
    /// which survives a killed process; a background thread syncs every
    /// interval, so a power loss loses at most about that much.
    Interval(Duration),
    /// `append` returns once the record is written to the operating system;
    /// cairn syncs only when a segment is sealed, on
    /// [`Wal::sync`](super::Wal::sync) and on close.
    Never,
}

/// What opening a log does with records that fail their checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// An invalid tail past the last point known durable is a torn write:
    /// it is cut off. A bad record before that point is an error.
    #[default]
    TolerateTornTail,
    /// Any invalid byte, torn tail included, is an error. Zero-filled space
    /// after the last record is still the end of the log.
    Strict,
    /// Damaged records are skipped and reported; every valid record is kept.
    /// For getting what can be got out of a damaged log.
    Salvage,
}

/// Options for [`Wal::open_with`](super::Wal::open_with).
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub(crate) sync: SyncPolicy,
    pub(crate) recovery: RecoveryMode,
    pub(crate) segment_size: u64,
    pub(crate) spin: Duration,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync: SyncPolicy::Always,
            recovery: RecoveryMode::default(),
            segment_size: 64 << 20,
            spin: Duration::from_millis(1),
        }
    }
}

impl WalOptions {
    /// When appends become durable. Default = [`SyncPolicy::Always`].
    #[must_use]
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// How damaged records found at open are handled.
    /// Default = [`RecoveryMode::TolerateTornTail`].
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// The size at which a segment is sealed and a new one started; a batch
    /// written at once may overshoot it. At least 4 KiB. Default = 64 MiB.
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(4096);
        self
    }

    /// How long an appender waiting for another thread's commit may stay
    /// on its CPU (yielding it to any other runnable thread) before it
    /// sleeps. It spins only while commits take no longer than this on
    /// average, so a slow disk costs no CPU.
    ///
    /// Waking a sleeping thread costs tens of microseconds where cores sit
    /// idle during a sync (virtual machines especially), which is a large
    /// part of a 0.2 ms `fdatasync`: with 16 writers on 2 cores, spinning
    /// raised group commit from about 7× to about 11× one writer. The price
    /// is the CPU time of the waiting appenders while a sync is in flight.
    /// `Duration::ZERO` turns spinning off. Default = 1 ms.
    #[must_use]
    pub fn spin_wait(mut self, limit: Duration) -> Self {
        self.spin = limit;
        self
    }
}
