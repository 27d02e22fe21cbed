//! Recovery time of a `StateLog` against the length of its log, with no
//! snapshots (every op replayed) and with a snapshot every 10,000 ops
//! (recovery loads the snapshot and replays the ops after it), the latter
//! with the default 64 MiB log segments and with 1 MiB ones: only whole
//! segments before a snapshot are deleted, and opening the log scans every
//! record of the segments left.
//!
//! The state is 1,000 counters in a map; each op adds to one of them and
//! is 64 bytes postcard-encoded, like a small service's updates.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn::io::StdFs;
use cairn::wal::{LoggedState, StateLog, StateLogOptions, SyncPolicy, WalOptions};
use serde::{Deserialize, Serialize};

use crate::common::{dir_bytes, remove_dir, settle, thousands, Config, Stats};

/// Counters the ops spread over.
const KEYS: u32 = 1_000;
/// Encoded size of an op.
pub const OP_BYTES: usize = 64;
/// The snapshot interval (the StateLog's default, 10 000 ops), made smaller
/// for shrunk runs.
const SNAPSHOT_EVERY: u64 = 10_000;

#[derive(Serialize, Deserialize, Default)]
struct Counters {
    counts: BTreeMap<u32, i64>,
    applied: u64,
}

#[derive(Serialize, Deserialize)]
struct Add {
    key: u32,
    delta: i64,
    /// Ballast that brings the op to [`OP_BYTES`], like a small event's
    /// identifier and timestamp.
    tag: Vec<u8>,
}

impl LoggedState for Counters {
    type Op = Add;

    fn apply(&mut self, op: &Add) {
        *self.counts.entry(op.key).or_default() += op.delta;
        self.applied += 1;
    }
}

/// Op `i`: spreads over the keys, deltas in -3..=3.
fn op(i: u64, tag_len: usize) -> Add {
    Add { key: (i.wrapping_mul(7_919) % u64::from(KEYS)) as u32, delta: (i % 7) as i64 - 3, tag: vec![0x5a; tag_len] }
}

/// The tag length that makes an op with a large key [`OP_BYTES`] long.
fn tag_len() -> usize {
    (0..OP_BYTES)
        .find(|&n| postcard::to_allocvec(&op(999, n)).map(|v| v.len()).ok() == Some(OP_BYTES))
        .expect("some tag length encodes to OP_BYTES")
}

/// Default 64 MiB segments, and the small ones of the third variant.
const DEFAULT_SEGMENT: u64 = 64 << 20;
const SMALL_SEGMENT: u64 = 1 << 20;

/// How a log is configured: snapshots every `every` ops or never, and its
/// segment size. The byte trigger of snapshots (64 MiB by default, which
/// the longest log would reach) is off in all, so the op count alone
/// decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub every: Option<u64>,
    pub segment: u64,
}

impl Variant {
    pub fn label(&self) -> String {
        let snaps = self.every.map_or_else(|| "none".to_string(), |e| format!("every {} ops", thousands(e)));
        format!("{snaps}, {} MiB segments", self.segment >> 20)
    }

    fn options(&self) -> StateLogOptions {
        StateLogOptions::default()
            .wal(WalOptions::default().sync(SyncPolicy::Never).segment_size(self.segment))
            .snapshot_every_ops(self.every)
            .snapshot_every_bytes(None)
    }
}

/// One log: its length, its snapshot setting, and its recoveries.
pub struct Row {
    pub ops: u64,
    pub variant: Variant,
    pub build_secs: f64,
    pub dir_bytes: u64,
    /// Wall time of `StateLog::open_with`, per round.
    pub open_secs: Vec<f64>,
    /// `recovery().wal.elapsed`: opening the log underneath, per round.
    pub wal_secs: Vec<f64>,
    /// Records the log scan found (`recovery().wal.records`).
    pub wal_records: u64,
    pub snapshot_lsn: Option<u64>,
    pub replayed: u64,
}

impl Row {
    pub fn median(&self) -> f64 {
        Stats::from(self.open_secs.clone()).median()
    }
}

pub struct Recovery {
    pub variants: Vec<Variant>,
    pub op_bytes: usize,
    pub rows: Vec<Row>,
}

/// Applies `ops` ops to a new log in `dir`, then closes it.
fn build(dir: &Path, ops: u64, variant: Variant, tag_len: usize) -> Duration {
    let t = Instant::now();
    let opts = variant.options();
    let mut log = StateLog::open_with(StdFs::shared(), dir, opts, Counters::default).expect("open state log");
    for i in 0..ops {
        log.apply(op(i, tag_len)).expect("apply");
    }
    log.close().expect("close state log");
    t.elapsed()
}

/// Opens the log, as after a restart, and checks the state it recovered.
fn recover(dir: &Path, row: &mut Row) {
    let ops = row.ops;
    let opts = row.variant.options();
    let t = Instant::now();
    let log = StateLog::open_with(StdFs::shared(), dir, opts, Counters::default).expect("open state log");
    let elapsed = t.elapsed();
    assert!(log.state().applied == ops, "recovered {} ops of {ops}", log.state().applied);
    let r = log.recovery();
    row.open_secs.push(elapsed.as_secs_f64());
    row.wal_secs.push(r.wal.elapsed.as_secs_f64());
    row.wal_records = r.wal.records;
    row.snapshot_lsn = r.snapshot_lsn;
    row.replayed = r.replayed;
    log.close().expect("close state log");
}

/// Logs of about `records` / 100, / 10 and / 1 ops, each without
/// snapshots, with snapshots, and with snapshots and 1 MiB segments. Each
/// length is a whole number of snapshot intervals plus half of one, so that
/// recovery with snapshots replays what it would after a crash at a random
/// moment.
pub fn bench_recovery(cfg: &Config) -> Recovery {
    let every = (cfg.records / 100).clamp(1, SNAPSHOT_EVERY);
    let variants = [
        Variant { every: None, segment: DEFAULT_SEGMENT },
        Variant { every: Some(every), segment: DEFAULT_SEGMENT },
        Variant { every: Some(every), segment: SMALL_SEGMENT },
    ];
    let tag_len = tag_len();
    let lengths: Vec<u64> = [100, 10, 1].iter().map(|d| (cfg.records / d).max(every) + every / 2).collect();
    let mut rows = Vec::new();
    for &ops in &lengths {
        let mut logs = Vec::new();
        for variant in variants {
            let dir = cfg.fresh("statelog");
            let build_secs = build(&dir, ops, variant, tag_len).as_secs_f64();
            let row = Row {
                ops,
                variant,
                build_secs,
                dir_bytes: dir_bytes(&dir),
                open_secs: Vec::new(),
                wal_secs: Vec::new(),
                wal_records: 0,
                snapshot_lsn: None,
                replayed: 0,
            };
            logs.push((dir, row));
        }
        settle();
        // One untimed open of each, then they take turns round by round.
        for (dir, row) in &mut logs {
            recover(dir, row);
            row.open_secs.clear();
            row.wal_secs.clear();
        }
        for _ in 0..cfg.reps {
            for (dir, row) in &mut logs {
                recover(dir, row);
            }
        }
        for (dir, row) in logs {
            eprintln!(
                "  state log {ops:>9} ops, snapshots {:<36} recovery {:>9.2} ms (replayed {})",
                row.variant.label(),
                row.median() * 1e3,
                row.replayed
            );
            remove_dir(&dir);
            rows.push(row);
        }
    }
    Recovery { variants: variants.to_vec(), op_bytes: OP_BYTES, rows }
}
