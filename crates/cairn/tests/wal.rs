//! The write-ahead log on the real file system: append and read back,
//! segments, batches, concurrent appenders, truncation, reopen, recovery
//! modes on torn and damaged logs, locking.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn::io::StdFs;
use cairn::wal::{LogProblemKind, RecoveryMode, SyncPolicy, Wal, WalOptions, WalReader};
use cairn::Error;

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn open(dir: &Path, opts: WalOptions) -> Wal {
    Wal::open_with(StdFs::shared(), dir, opts).unwrap()
}

fn all(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    wal.iter_from(0).map(|r| r.map(|r| (r.lsn, r.payload))).collect::<Result<_, _>>().unwrap()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn appends_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_lsn(), None);
    for i in 1..=100 {
        assert_eq!(wal.append(&payload(i)).unwrap(), i);
    }
    assert_eq!(wal.durable_lsn(), 100);
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.recovery().records, 100);
    assert_eq!(wal.last_lsn(), Some(100));
    let got = all(&wal);
    assert_eq!(got.len(), 100);
    for (i, (lsn, p)) in got.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
        assert_eq!(*p, payload(*lsn));
    }
    assert_eq!(wal.append(b"next").unwrap(), 101);
}

#[test]
fn segments_rotate_and_iter_from_starts_mid_log() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), WalOptions::default().segment_size(4096).sync(SyncPolicy::Never));
    for i in 1..=500 {
        wal.append(&payload(i)).unwrap();
    }
    assert!(segments(dir.path()).len() > 5, "{:?}", segments(dir.path()));
    let from: Vec<u64> = wal.iter_from(321).map(|r| r.unwrap().lsn).collect();
    assert_eq!(from, (321..=500).collect::<Vec<_>>());
    drop(wal);
    let wal = open(dir.path(), WalOptions::default().segment_size(4096));
    assert_eq!(all(&wal).len(), 500);
}

#[test]
fn batches_get_consecutive_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    wal.append(b"a").unwrap();
    assert_eq!(wal.append_batch([&b"b"[..], b"c", b"d"]).unwrap(), Some(2..=4));
    assert_eq!(wal.append_batch(Vec::<Vec<u8>>::new()).unwrap(), None);
    let too_big = vec![0u8; cairn::wal::MAX_PAYLOAD + 1];
    assert!(matches!(wal.append_batch([&b"e"[..], &too_big]), Err(Error::InvalidArgument(_))));
    assert_eq!(wal.append(b"e").unwrap(), 5, "a refused batch appends nothing");
    let got: Vec<Vec<u8>> = all(&wal).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, [b"a", b"b", b"c", b"d", b"e"].map(|s| s.to_vec()));
}

#[test]
fn concurrent_appenders_each_see_their_own_records_in_lsn_order() {
    // Waiters that spin and waiters that park at once, a thread rotating
    // segments meanwhile, under a policy that waits for syncs and one that
    // waits for writes only.
    for (sync, spin) in [
        (SyncPolicy::Always, Duration::from_millis(1)),
        (SyncPolicy::Always, Duration::ZERO),
        (SyncPolicy::Never, Duration::from_millis(1)),
        (SyncPolicy::Never, Duration::ZERO),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions::default().segment_size(64 << 10).sync(sync).spin_wait(spin);
        let wal = Arc::new(open(dir.path(), opts));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    (0..200u64)
                        .map(|i| {
                            let lsn = wal.append(format!("{t}:{i}").as_bytes()).unwrap();
                            if sync == SyncPolicy::Always {
                                assert!(wal.durable_lsn() >= lsn, "acknowledged before durable");
                            }
                            (lsn, i)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let rotator = {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    wal.rotate().unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let acks: Vec<Vec<(u64, u64)>> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        rotator.join().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        let got = all(&wal);
        assert_eq!(got.len(), 1600, "{sync:?}, spin {spin:?}");
        for (t, acks) in acks.iter().enumerate() {
            // A thread's records keep its order, and each LSN holds its payload.
            assert!(acks.windows(2).all(|w| w[0].0 < w[1].0));
            for (lsn, i) in acks {
                assert_eq!(got[*lsn as usize - 1].1, format!("{t}:{i}").into_bytes());
            }
        }
    }
}

#[test]
fn truncate_before_drops_only_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), WalOptions::default().segment_size(4096).sync(SyncPolicy::Never));
    for i in 1..=300 {
        wal.append(&payload(i)).unwrap();
    }
    let before = segments(dir.path()).len();
    let removed = wal.truncate_before(150).unwrap();
    assert!(removed > 0 && removed < before);
    assert!(wal.first_lsn() <= 150);
    let lsns: Vec<u64> = all(&wal).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lsns.first().copied(), Some(wal.first_lsn()));
    assert_eq!(lsns.last().copied(), Some(300));
    // Everything but the active segment can go; LSNs continue after reopen.
    wal.truncate_before(u64::MAX).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    drop(wal);
    let wal = open(dir.path(), WalOptions::default().segment_size(4096));
    assert_eq!(wal.append(b"after").unwrap(), 301);
}

#[test]
fn a_second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    assert!(matches!(Wal::open(dir.path()), Err(Error::Locked { .. })));
    // Readers do not lock.
    wal.append(b"x").unwrap();
    assert_eq!(WalReader::open(dir.path()).unwrap().iter_from(1).count(), 1);
    drop(wal);
    Wal::open(dir.path()).unwrap();
}

#[test]
fn interval_policy_makes_records_durable_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), WalOptions::default().sync(SyncPolicy::Interval(Duration::from_millis(5))));
    let lsn = wal.append(b"soon durable").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wal.durable_lsn() < lsn {
        assert!(std::time::Instant::now() < deadline, "the flusher never synced");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn closing_a_log_with_a_long_interval_does_not_wait_for_the_next_tick() {
    // Closing (or dropping) the log right after opening it races the
    // flusher thread's start: a stop it missed must not leave it waiting
    // out the interval.
    for round in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions::default().sync(SyncPolicy::Interval(Duration::from_secs(3600)));
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let wal = open(&path, opts.clone());
            wal.append(b"x").unwrap();
            wal.close().unwrap();
            drop(open(&path, opts));
            let _ = tx.send(());
        });
        // An hour's interval: only a hang reaches the limit.
        assert!(rx.recv_timeout(Duration::from_secs(60)).is_ok(), "round {round}: close waited for the interval");
    }
}

#[test]
fn a_batch_larger_than_a_segment_is_split_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), WalOptions::default().segment_size(4096).sync(SyncPolicy::Never));
    let batch: Vec<Vec<u8>> = (1..=100).map(payload).collect();
    assert_eq!(wal.append_batch(&batch).unwrap(), Some(1..=100));
    // A record larger than a segment gets one of its own.
    let big = vec![7u8; 10_000];
    assert_eq!(wal.append(&big).unwrap(), 101);
    wal.append(b"after").unwrap();
    wal.close().unwrap();
    let segs = segments(dir.path());
    assert!(segs.len() >= 4, "{segs:?}");
    for seg in &segs {
        let len = std::fs::metadata(seg).unwrap().len();
        let holds_big = seg.ends_with(format!("{:020}.wal", 101));
        let limit = if holds_big { 32 + 24 + 10_000 + 48 } else { 4096 + 48 };
        assert!(len <= limit, "{} is {len} bytes", seg.display());
    }
    let wal = open(dir.path(), WalOptions::default().segment_size(4096));
    let got = all(&wal);
    assert_eq!(got.len(), 102);
    assert_eq!(got[99], (100, payload(100)));
    assert_eq!(got[100], (101, big));
    assert!(wal.recovery().oversized.is_empty());
    let report = cairn::wal::verify_with(&StdFs, dir.path(), &WalOptions::default().segment_size(4096)).unwrap();
    assert!(report.problems.is_empty() && report.oversized.is_empty(), "{report:?}");
}

/// Appends `n` records with `SyncPolicy::Always` and returns the last segment.
fn log_with(dir: &Path, n: u64) -> std::path::PathBuf {
    let wal = Wal::open(dir).unwrap();
    for i in 1..=n {
        wal.append(&payload(i)).unwrap();
    }
    drop(wal);
    segments(dir).pop().unwrap()
}

#[test]
fn a_torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 10);
    // Half a record of garbage after the last frame (in the zeros the
    // writer keeps ahead of its records): a torn write.
    let mut bytes = std::fs::read(&seg).unwrap();
    assert!(WalReader::open(dir.path()).unwrap().report().problems.is_empty());
    let end = bytes.len() - bytes.iter().rev().take_while(|b| **b == 0).count();
    // The last frame is a durable mark, whose last four bytes are zero.
    let end = (end + 4).next_multiple_of(8) as u64;
    bytes[end as usize..end as usize + 40].fill(0xAB);
    std::fs::write(&seg, &bytes).unwrap();

    assert!(matches!(
        Wal::open_with(StdFs::shared(), dir.path(), WalOptions::default().recovery(RecoveryMode::Strict)),
        Err(Error::Corrupt { .. })
    ));
    let report = cairn::wal::verify(&StdFs, dir.path()).unwrap();
    assert!(report.has_torn_tail() && !report.is_corrupt(), "{report:?}");
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.recovery().truncated_bytes, bytes.len() as u64 - end);
    assert_eq!(wal.recovery().problems[0].kind, LogProblemKind::TornTail);
    assert_eq!(wal.recovery().problems[0].offset, end);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), end);
    assert_eq!(all(&wal).len(), 10);
}

#[test]
fn zero_fill_after_the_last_record_is_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 5);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(f.metadata().unwrap().len() + (1 << 16)).unwrap();
    drop(f);
    let wal = open(dir.path(), WalOptions::default().recovery(RecoveryMode::Strict));
    assert_eq!(all(&wal).len(), 5);
    assert_eq!(wal.append(b"6").unwrap(), 6);
}

#[test]
fn damage_before_the_durable_point_is_an_error_and_salvage_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let seg = log_with(dir.path(), 20);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a payload byte of record 3.
    let at = bytes.windows(9).position(|w| w == b"record 3 ").unwrap();
    bytes[at + 4] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();

    let err = Wal::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let report = cairn::wal::verify(&StdFs, dir.path()).unwrap();
    assert!(report.is_corrupt());

    let wal = open(dir.path(), WalOptions::default().recovery(RecoveryMode::Salvage));
    let lsns: Vec<u64> = all(&wal).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lsns.len(), 19, "{lsns:?}");
    assert!(!lsns.contains(&3), "{lsns:?}");
    assert_eq!(wal.recovery().problems.len(), 1);
    assert_eq!(wal.append(b"more").unwrap(), 21);
}

#[test]
fn damage_to_the_last_synced_batch_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    wal.append_batch([&b"one"[..], b"two", b"three"]).unwrap();
    // No close: the process could be killed here.
    std::mem::forget(wal);
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.windows(3).position(|w| w == b"one").unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    assert!(cairn::wal::verify(&StdFs, dir.path()).unwrap().is_corrupt());
    assert!(matches!(WalReader::open(dir.path()), Err(Error::Corrupt { .. })));
}

#[test]
fn rotate_starts_a_segment_at_the_next_lsn_only_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    wal.rotate().unwrap();
    assert_eq!(segments(dir.path()).len(), 1, "an empty segment is not sealed");
    for i in 1..=3 {
        wal.append(&payload(i)).unwrap();
    }
    wal.rotate().unwrap();
    wal.rotate().unwrap();
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 2);
    assert!(segs[1].ends_with("00000000000000000004.wal"), "{segs:?}");
    wal.append(&payload(4)).unwrap();
    assert_eq!(wal.truncate_before(4).unwrap(), 1);
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(all(&wal), vec![(4, payload(4))]);
}
