//! Crash enumeration of the write-ahead log on the simulated file system.
//!
//! A small workload (appends and batches across several segments, a
//! truncation) runs under each sync policy; the power is cut after every
//! I/O operation in turn, with every crash plan of `CrashPlan::variants`
//! (dropping, keeping, reordering, tearing or garbling what was pending).
//! Recovery must then give a contiguous run of records, each holding exactly
//! what was appended at its LSN, containing every record acknowledged under
//! `SyncPolicy::Always`; and the recovered log must take new appends after it.
//! Recovery itself is crashed too, and so is a log whose syncs fail.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use cairn::io::{CrashPlan, FaultRule, OpKind, SimFs};
use cairn::wal::{SyncPolicy, Wal, WalOptions};
use cairn::Error;

const DIR: &str = "/data/log";
/// Records in the workload.
const N: u64 = 14;
/// Records before this LSN may be truncated away by the workload.
const TRUNCATE_BEFORE: u64 = 6;

/// What was appended at `lsn`: big enough that 4 KiB segments hold a few.
fn payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("lsn {lsn}:").into_bytes();
    p.resize(600 + (lsn as usize * 37) % 200, b'a' + (lsn % 26) as u8);
    p
}

fn opts(sync: SyncPolicy) -> WalOptions {
    WalOptions::default().sync(sync).segment_size(4096)
}

/// Runs the workload until the file system fails; returns the LSNs whose
/// append returned `Ok`.
fn workload(sim: &SimFs, sync: SyncPolicy) -> Vec<u64> {
    let mut acked = Vec::new();
    let Ok(wal) = Wal::open_with(sim.shared(), DIR, opts(sync)) else { return acked };
    let mut lsn = 1;
    while lsn <= N {
        if lsn % 4 == 0 && lsn < N {
            match wal.append_batch([payload(lsn), payload(lsn + 1)]) {
                Ok(Some(r)) => {
                    assert_eq!(r, lsn..=lsn + 1);
                    acked.extend(r);
                }
                _ => return acked,
            }
            lsn += 2;
        } else {
            match wal.append(&payload(lsn)) {
                Ok(l) => {
                    assert_eq!(l, lsn);
                    acked.push(l);
                }
                Err(_) => return acked,
            }
            lsn += 1;
        }
        if lsn == 10 && wal.truncate_before(TRUNCATE_BEFORE).is_err() {
            return acked;
        }
    }
    if wal.close().is_err() {
        acked.clear(); // nothing more is promised, but what was acked stays
    }
    acked
}

/// Opens the log after a crash and checks it against what was acked.
/// Returns the last recovered LSN.
fn check_recovered(sim: &SimFs, sync: SyncPolicy, acked: &[u64], context: &str) -> u64 {
    let wal = Wal::open_with(sim.shared(), DIR, opts(sync))
        .unwrap_or_else(|e| panic!("{context}: recovery failed: {e}\n{:?}", sim.list_all()));
    let records: Vec<(u64, Vec<u8>)> = wal
        .iter_from(0)
        .map(|r| r.map(|r| (r.lsn, r.payload)))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{context}: reading back failed: {e}"));
    for w in records.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{context}: a gap in the LSNs");
    }
    for (lsn, p) in &records {
        assert!(*lsn <= N, "{context}: LSN {lsn} was never written");
        assert!(*p == payload(*lsn), "{context}: LSN {lsn} holds other bytes than were appended");
    }
    let first = records.first().map_or(u64::MAX, |r| r.0);
    let last = records.last().map_or(0, |r| r.0);
    assert!(first <= TRUNCATE_BEFORE || records.is_empty(), "{context}: records from {first} on only");
    if sync == SyncPolicy::Always {
        for lsn in acked.iter().filter(|l| **l >= TRUNCATE_BEFORE) {
            assert!(*lsn >= first && *lsn <= last, "{context}: acknowledged LSN {lsn} lost ({first}..={last})");
        }
    }
    // The recovered log takes new records right after what it holds.
    let next = wal.last_lsn().map_or(1, |l| l + 1);
    assert!(next > last || records.is_empty(), "{context}");
    assert_eq!(wal.append(b"after").unwrap(), next, "{context}");
    drop(wal);
    let wal = Wal::open_with(sim.shared(), DIR, opts(sync)).unwrap();
    assert_eq!(wal.last_lsn(), Some(next), "{context}: the new record did not survive a clean reopen");
    last
}

fn ops_of_full_run(sync: SyncPolicy) -> u64 {
    let sim = SimFs::new();
    let acked = workload(&sim, sync);
    assert_eq!(acked.len() as u64, N);
    sim.op_count()
}

fn enumerate(sync: SyncPolicy) {
    let total = ops_of_full_run(sync);
    let mut runs = 0;
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            sim.crash_after(n);
            let acked = workload(&sim, sync);
            sim.crash(&plan);
            check_recovered(&sim, sync, &acked, &format!("{sync:?}, crash after op {n}, plan {v} {plan:?}"));
            runs += 1;
        }
    }
    assert!(runs > 200, "only {runs} crash runs");
}

#[test]
fn crash_at_every_operation_under_sync_always() {
    enumerate(SyncPolicy::Always);
}

#[test]
fn crash_at_every_operation_under_sync_never() {
    enumerate(SyncPolicy::Never);
}

#[test]
fn crash_at_every_operation_under_sync_interval() {
    enumerate(SyncPolicy::Interval(Duration::from_millis(1)));
}

/// A crash while recovering from a crash: the second recovery must still
/// hold everything acknowledged before the first.
#[test]
fn crash_during_recovery() {
    let total = ops_of_full_run(SyncPolicy::Always);
    for n in (0..=total).step_by(3) {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            sim.crash_after(n);
            let acked = workload(&sim, SyncPolicy::Always);
            sim.crash(&plan);
            for m in 0..4 {
                let before = sim.op_count();
                sim.crash_after(m);
                let _ = Wal::open_with(sim.shared(), DIR, opts(SyncPolicy::Always));
                let finished = sim.op_count() - before < m;
                // Crashing also disarms a crash point recovery did not reach.
                sim.crash(&CrashPlan::variants(m + n).swap_remove(v));
                if finished {
                    break;
                }
            }
            check_recovered(
                &sim,
                SyncPolicy::Always,
                &acked,
                &format!("crash after op {n}, plan {v}, then in recovery"),
            );
        }
    }
}

#[test]
fn a_failed_sync_poisons_the_log_until_reopened() {
    let sim = SimFs::new();
    let wal = Wal::open_with(sim.shared(), DIR, opts(SyncPolicy::Always)).unwrap();
    for lsn in 1..=3 {
        wal.append(&payload(lsn)).unwrap();
    }
    sim.inject(FaultRule::on(OpKind::SyncData).fail_times(1));
    let err = wal.append(&payload(4)).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("syncing log segment"), "the message names the failure: {err}");
    assert!(wal.is_poisoned());
    // The fault is spent, yet nothing is accepted or retried.
    let syncs = sim.op_count();
    assert!(matches!(wal.append(&payload(4)), Err(Error::Poisoned { .. })));
    assert!(matches!(wal.append_batch([payload(4)]), Err(Error::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert_eq!(sim.op_count(), syncs, "a poisoned log does no more I/O");
    drop(wal);
    sim.crash(&CrashPlan::drop_all());
    let last = check_recovered(&sim, SyncPolicy::Always, &[1, 2, 3], "after a failed sync");
    assert!(last >= 3);
}

#[test]
fn a_failed_write_poisons_the_log_and_nothing_partial_is_read() {
    let sim = SimFs::new();
    let wal = Wal::open_with(sim.shared(), DIR, opts(SyncPolicy::Never)).unwrap();
    wal.append(&payload(1)).unwrap();
    sim.inject(FaultRule::on(OpKind::Write).with_fault(cairn::io::Fault::Enospc).fail_times(1));
    let err = wal.append(&payload(2)).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(matches!(wal.append(&payload(2)), Err(Error::Poisoned { .. })));
    drop(wal);
    let wal = Wal::open_with(sim.shared(), DIR, opts(SyncPolicy::Never)).unwrap();
    assert_eq!(wal.last_lsn(), Some(1));
    assert_eq!(wal.append(&payload(2)).unwrap(), 2);
}

#[test]
fn a_failed_segment_creation_poisons_the_log() {
    let sim = SimFs::new();
    let wal = Wal::open_with(sim.shared(), DIR, opts(SyncPolicy::Always)).unwrap();
    sim.inject(FaultRule::on(OpKind::SyncDir).on_path(DIR).fail_times(1));
    let mut acked = Vec::new();
    let err = loop {
        let lsn = acked.len() as u64 + 1;
        match wal.append(&payload(lsn)) {
            Ok(l) => acked.push(l),
            Err(e) => break e,
        }
        assert!(lsn < 50, "the segment never rotated");
    };
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    drop(wal);
    sim.crash(&CrashPlan::drop_all());
    check_recovered(&sim, SyncPolicy::Always, &acked, "after a failed directory sync");
    assert!(!Path::new(DIR).exists(), "the simulated log never touches the real disk");
}
