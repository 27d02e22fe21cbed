//! Crash safety of the store on the simulated file system: a crash after
//! every I/O operation of saves (whole, streamed and in the background,
//! with retention) and a collection, under
//! every crash plan, leaves a store that verifies clean, loses no
//! acknowledged entry that retention keeps, and is clean of leftovers after
//! one collection.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn::backend::LocalBackend;
use cairn::io::{CrashPlan, SimFs};
use cairn::store::{GcOptions, Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::{CheckpointWriter, WriterOptions};

fn ckpt(v: f32) -> Bytes {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    w.add_tensor("w", &[32], &[v; 32]).unwrap();
    Bytes::from(w.finish().unwrap())
}

fn open(sim: &SimFs) -> cairn::Result<Store> {
    let backend = LocalBackend::open_in(sim.shared(), "root")?;
    // The simulated crash leaves this (live) process as the holder of the
    // dead saves' leases: zero-length leases stand for their expiry.
    let opts = StoreOptions::default()
        .retention(Retention::default().keep_last(2))
        .orphan_grace(Duration::ZERO)
        .lease_ttl(Duration::ZERO);
    Store::open(Arc::new(backend), "", opts)
}

/// Saves three entries (retention keeps two), then collects down to one;
/// stops at the first error, as a crashed process would. Returns the ids
/// acknowledged and whether the collection finished.
fn workload(sim: &SimFs) -> (Vec<String>, bool) {
    let mut acked = Vec::new();
    let mut collected = false;
    let _ = (|| -> cairn::Result<()> {
        let store = open(sim)?;
        let key = Key::new("k");
        for i in 0..3 {
            let info = SaveInfo::checkpoint().iteration(i);
            let opts = WriterOptions::default().frame_size(4096);
            let saved = if i == 1 {
                // Streamed into the backend frame by frame (several frames).
                store.save_with(&key, info, opts, |w| w.add_tensor("w", &[3000], &[i as f32; 3000]))?
            } else if i == 2 {
                // Staged, then written by a background thread.
                store.save_async(&key, info, opts, |w| w.add_tensor("w", &[3000], &[i as f32; 3000]))?.wait()?
            } else {
                store.save_bytes(&key, ckpt(i as f32), info)?
            };
            acked.push(saved.id);
        }
        store.gc(&GcOptions::default().retention(Retention::default().keep_last(1)))?;
        collected = true;
        Ok(())
    })();
    (acked, collected)
}

fn check(sim: &SimFs, acked: &[String], collected: bool, context: &str) {
    let store = open(sim).unwrap();
    let key = Key::new("k");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{context}: {report:?}");
    // The newest acknowledged entry survives everything the workload does.
    if let Some(newest) = acked.last() {
        // Before anything repairs the store: an index that a crash left
        // behind its infos (index writes are not synced) still leads a
        // lookup to every acknowledged entry.
        let found = store.lookup(&key, &Select::Latest).unwrap().expect("an entry");
        assert!(found.info.id >= *newest, "{context}: latest {} is older than acknowledged {newest}", found.info.id);
        let ids: Vec<String> = store.entries(&key).unwrap().into_iter().map(|e| e.id).collect();
        let adopted_later = store.gc(&GcOptions::default()).unwrap();
        let ids_after: Vec<String> = store.entries(&key).unwrap().into_iter().map(|e| e.id).collect();
        assert!(
            ids.contains(newest) || ids_after.contains(newest),
            "{context}: acknowledged {newest} lost; index {ids:?}, after gc {ids_after:?}, {adopted_later:?}"
        );
        let found = store.lookup(&key, &Select::Latest).unwrap().expect("an entry");
        assert!(found.info.id >= *newest, "{context}: latest {} is older than acknowledged {newest}", found.info.id);
        if collected {
            assert_eq!(ids_after.len(), 1, "{context}: the collection's removals came back");
        }
    }
    // One collection clears every leftover.
    store.gc(&GcOptions::default()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{context}: {report:?}");
    // And the store takes saves again.
    store.save_bytes(&key, ckpt(9.0), SaveInfo::checkpoint()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{context}: after a new save: {report:?}");
}

#[test]
fn crash_at_every_operation_of_saves_and_gc() {
    let total = {
        let sim = SimFs::new();
        let (acked, collected) = workload(&sim);
        assert!(acked.len() == 3 && collected, "the workload fails without a crash");
        sim.op_count()
    };
    let mut runs = 0;
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            sim.crash_after(n);
            let (acked, collected) = workload(&sim);
            sim.crash(&plan);
            check(&sim, &acked, collected, &format!("crash after op {n} of {total}, plan {v} {plan:?}"));
            runs += 1;
        }
    }
    assert!(runs > 200, "only {runs} crash runs");
}
