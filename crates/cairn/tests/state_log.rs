//! StateLog on the real file system: ops survive reopen, snapshots bound the
//! log and the replay, a damaged snapshot falls back to the one before,
//! recovery reports progress.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn::io::StdFs;
use cairn::wal::{LoggedState, ReplayProgress, StateLog, StateLogOptions, WalOptions};
use serde::{Deserialize, Serialize};

/// A small key-value state: counters by name.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Counters {
    by_key: BTreeMap<String, i64>,
    ops: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Op {
    Add(String, i64),
    Reset(String),
}

impl LoggedState for Counters {
    type Op = Op;
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Add(k, v) => *self.by_key.entry(k.clone()).or_default() += v,
            Op::Reset(k) => {
                self.by_key.remove(k);
            }
        }
        self.ops += 1;
    }
}

fn op(i: u64) -> Op {
    if i.is_multiple_of(7) {
        Op::Reset(format!("k{}", i % 5))
    } else {
        Op::Add(format!("k{}", i % 5), i as i64)
    }
}

fn expected(n: u64) -> Counters {
    let mut s = Counters::default();
    for i in 1..=n {
        s.apply(&op(i));
    }
    s
}

fn opts(every: Option<u64>) -> StateLogOptions {
    StateLogOptions::default().snapshot_every_ops(every).wal(WalOptions::default().segment_size(4096))
}

fn open(dir: &Path, o: StateLogOptions) -> StateLog<Counters> {
    StateLog::open_with(StdFs::shared(), dir, o, Counters::default).unwrap()
}

fn files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == ext)).count()
}

#[test]
fn ops_are_replayed_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), opts(None));
    for i in 1..=300 {
        assert_eq!(log.apply(op(i)).unwrap(), i);
    }
    assert_eq!(*log.state(), expected(300));
    drop(log);
    let log = open(dir.path(), opts(None));
    assert_eq!(*log.state(), expected(300));
    // The base snapshot holds the initial state.
    assert_eq!(log.recovery().snapshot_lsn, Some(0));
    assert_eq!(log.recovery().replayed, 300);
}

/// 500 imported samples: an initial state that `Default` does not give.
fn imported() -> Counters {
    let mut s = Counters::default();
    for i in 0..500 {
        s.by_key.insert(format!("sample{i}"), i);
    }
    s
}

#[test]
fn the_initial_state_is_durable_once_open_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = StateLog::open_with(StdFs::shared(), dir.path(), opts(None), imported).unwrap();
    assert_eq!(log.state().by_key.len(), 500);
    assert_eq!(log.snapshot().unwrap(), 0, "nothing applied since the base snapshot");
    drop(log);
    // Reopened with any other init, which is not called.
    let log = StateLog::open_with(StdFs::shared(), dir.path(), opts(None), || -> Counters {
        panic!("init called for a log that exists")
    })
    .unwrap();
    assert_eq!(*log.state(), imported());
    assert_eq!(log.recovery().snapshot_lsn, Some(0));
    drop(log);

    // With ops applied, the log holds the initial state plus the ops.
    let mut log = open(dir.path(), opts(None));
    for i in 1..=10 {
        log.apply(op(i)).unwrap();
    }
    drop(log);
    let log = open(dir.path(), opts(None));
    let mut want = imported();
    for i in 1..=10 {
        want.apply(&op(i));
    }
    assert_eq!(*log.state(), want);
    assert_eq!(log.recovery().replayed, 10);
}

#[test]
fn a_log_whose_every_snapshot_is_damaged_is_refused_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let log = StateLog::open_with(StdFs::shared(), dir.path(), opts(None), imported).unwrap();
    drop(log);
    let base = dir.path().join("snapshot-00000000000000000000.cairn");
    let mut bytes = std::fs::read(&base).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&base, &bytes).unwrap();
    // Starting again from `init()` would lose the 500 samples silently.
    let err = StateLog::open_with(StdFs::shared(), dir.path(), opts(None), Counters::default).unwrap_err();
    assert!(matches!(err, cairn::Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("snapshot-00000000000000000000.cairn"), "{err}");
}

#[test]
fn snapshots_bound_the_log_and_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), opts(Some(100)));
    for i in 1..=2_050 {
        log.apply(op(i)).unwrap();
    }
    // Two snapshots kept; the log holds what follows the older one.
    assert_eq!(files(dir.path(), "cairn"), 2);
    let segs = files(&dir.path().join("wal"), "wal");
    assert!(segs <= 12, "{segs} segments kept");
    drop(log);

    let log = open(dir.path(), opts(Some(100)));
    assert_eq!(*log.state(), expected(2_050));
    assert_eq!(log.recovery().snapshot_lsn, Some(2_000));
    assert_eq!(log.recovery().replayed, 50);
}

#[test]
fn on_demand_snapshot_and_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), opts(None));
    for i in 1..=10 {
        log.apply(op(i)).unwrap();
    }
    assert_eq!(log.snapshot().unwrap(), 10);
    assert_eq!(log.snapshot().unwrap(), 10, "no new ops: no new snapshot");
    drop(log);
    let log = open(dir.path(), opts(None));
    assert_eq!(log.recovery().snapshot_lsn, Some(10));
    assert_eq!(log.recovery().replayed, 0);
    assert_eq!(*log.state(), expected(10));
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), opts(None));
    for i in 1..=50 {
        log.apply(op(i)).unwrap();
        if i == 20 || i == 40 {
            log.snapshot().unwrap();
        }
    }
    drop(log);
    let newest = dir.path().join("snapshot-00000000000000000040.cairn");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&newest, &bytes).unwrap();

    let log = open(dir.path(), opts(None));
    assert_eq!(log.recovery().snapshot_lsn, Some(20));
    assert_eq!(log.recovery().skipped_snapshots.len(), 1);
    assert_eq!(log.recovery().replayed, 30);
    assert_eq!(*log.state(), expected(50));
    assert!(newest.exists(), "the damaged snapshot is kept for inspection");
}

#[test]
fn recovery_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), opts(None).wal(WalOptions::default().sync(cairn::wal::SyncPolicy::Never)));
    for i in 1..=70_000 {
        log.apply(op(i)).unwrap();
    }
    drop(log);
    let seen: Arc<Mutex<Vec<ReplayProgress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let log = open(dir.path(), opts(None).on_progress(move |p| sink.lock().unwrap().push(p)));
    assert_eq!(log.state().ops, 70_000);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], ReplayProgress { replayed: 65_536, total: 70_000 });
    assert_eq!(seen[1], ReplayProgress { replayed: 70_000, total: 70_000 });
}
