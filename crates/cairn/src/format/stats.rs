//! Counters of what reading a checkpoint cost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What reads from one [`Checkpoint`](super::Checkpoint) have cost so far.
/// Times are summed over worker threads, so they can exceed wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadStats {
    /// Stored bytes read from the file.
    pub bytes_read: u64,
    /// Bytes produced after decompression.
    pub bytes_decompressed: u64,
    /// Time spent reading stored bytes.
    pub read_time: Duration,
    /// Time spent decompressing.
    pub decompress_time: Duration,
    /// Time spent on checksums and digests.
    pub verify_time: Duration,
    /// Wall time of the calls that read, summed.
    pub wall_time: Duration,
}

impl LoadStats {
    /// Content bytes per stored byte (1.0 when nothing was read).
    pub fn compression_ratio(&self) -> f64 {
        if self.bytes_read == 0 {
            1.0
        } else {
            self.bytes_decompressed as f64 / self.bytes_read as f64
        }
    }

    /// Content bytes delivered per second of wall time.
    pub fn throughput(&self) -> f64 {
        let s = self.wall_time.as_secs_f64();
        if s == 0.0 {
            0.0
        } else {
            self.bytes_decompressed as f64 / s
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    bytes_read: AtomicU64,
    bytes_decompressed: AtomicU64,
    read_ns: AtomicU64,
    decompress_ns: AtomicU64,
    verify_ns: AtomicU64,
    wall_ns: AtomicU64,
}

fn add(a: &AtomicU64, v: u64) {
    a.fetch_add(v, Ordering::Relaxed);
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl StatsCell {
    pub(crate) fn read(&self, bytes: u64, since: Instant) {
        add(&self.bytes_read, bytes);
        add(&self.read_ns, nanos(since));
    }
    pub(crate) fn decompressed(&self, bytes: u64, since: Instant) {
        add(&self.bytes_decompressed, bytes);
        add(&self.decompress_ns, nanos(since));
    }
    pub(crate) fn verified(&self, since: Instant) {
        add(&self.verify_ns, nanos(since));
    }
    pub(crate) fn wall(&self, since: Instant) {
        add(&self.wall_ns, nanos(since));
    }
    pub(crate) fn snapshot(&self) -> LoadStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LoadStats {
            bytes_read: get(&self.bytes_read),
            bytes_decompressed: get(&self.bytes_decompressed),
            read_time: Duration::from_nanos(get(&self.read_ns)),
            decompress_time: Duration::from_nanos(get(&self.decompress_ns)),
            verify_time: Duration::from_nanos(get(&self.verify_ns)),
            wall_time: Duration::from_nanos(get(&self.wall_ns)),
        }
    }
}
