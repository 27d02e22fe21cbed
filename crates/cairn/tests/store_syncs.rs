//! What durability costs a small save into a local store (fsync-family
//! calls, counted on the simulated file system; docs/STORE.md argues why
//! each one that remains is needed), and a background save on a full disk.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use cairn::backend::LocalBackend;
use cairn::io::SimFs;
use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
use cairn::WriterOptions;

#[test]
fn a_small_save_makes_at_most_four_syncs() {
    let sim = SimFs::new();
    let backend = LocalBackend::open_in(sim.shared(), "root").unwrap();
    let store = Store::open(Arc::new(backend), "", StoreOptions::default()).unwrap();
    let key = Key::new("k");
    let mut per_save = Vec::new();
    for i in 0..5u64 {
        let before = sim.sync_count();
        store
            .save_with(&key, SaveInfo::checkpoint().iteration(i), WriterOptions::default(), |w| {
                w.add_tensor("w", &[16], &[i as f32; 16])
            })
            .unwrap();
        per_save.push(sim.sync_count() - before);
    }
    eprintln!("syncs per save: {per_save:?}");
    // The first save of a key also makes its index durable.
    assert!(per_save[1..].iter().all(|&n| n <= 4), "syncs per save: {per_save:?}");
    let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(found.info.iteration, Some(4));
}

/// How many entries the stored index of `key` names (raw, as on disk).
fn indexed(backend: &dyn cairn::backend::Backend, key: &Key) -> usize {
    let raw = backend.get(&format!("index/{}", key.hash_path())).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    doc["entries"].as_array().unwrap().len()
}

/// A save into a local store without retention reads neither the key's
/// index nor its folder once the handle has counted what the index lags;
/// the index is still written every eighth entry, also when each save
/// comes from a handle of its own (one CLI process per save).
#[test]
fn saves_without_retention_read_nothing_and_the_index_keeps_up() {
    use cairn::backend::{Backend, CountingBackend};
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path()).unwrap());
    let counting = Arc::new(CountingBackend::new(local.clone()));
    let store = Store::open(counting.clone(), "", StoreOptions::default()).unwrap();
    let key = Key::new("k");
    let save = |store: &Store, i: u64| {
        store
            .save_with(&key, SaveInfo::checkpoint().iteration(i), WriterOptions::default(), |w| {
                w.add_tensor("w", &[16], &[i as f32; 16])
            })
            .unwrap()
    };
    save(&store, 0);
    let mut reads = Vec::new();
    for i in 1..40u64 {
        let before = counting.traffic().gets;
        save(&store, i);
        reads.push(counting.traffic().gets - before);
        let lag = usize::try_from(i + 1).unwrap() - indexed(local.as_ref(), &key);
        assert!(lag < 8, "after save {i} the index lags {lag} entries");
    }
    // Only the saves that write the index read it (one in eight).
    assert!(reads.iter().filter(|&&n| n > 0).count() <= 39 / 8 + 1, "reads per save: {reads:?}");
    // A handle per save: each counts the lag afresh and keeps it under 8.
    for i in 40..60u64 {
        let fresh = Store::open(local.clone(), "", StoreOptions::default()).unwrap();
        save(&fresh, i);
        let lag = usize::try_from(i + 1).unwrap() - indexed(local.as_ref(), &key);
        assert!(lag < 8, "after save {i} the index lags {lag} entries");
    }
    // Another handle's saves are found by the first handle's lookups.
    let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(found.info.iteration, Some(59));
    assert_eq!(store.entries(&key).unwrap().len(), 60);
}

/// A background save that runs out of space returns the error from
/// `wait`, leaves nothing partial, and the store saves again once space is
/// freed.
#[test]
fn a_background_save_out_of_space_fails_cleanly_and_the_store_recovers() {
    use cairn::io::{Fault, FaultRule, OpKind};
    let sim = SimFs::new();
    let backend = LocalBackend::open_in(sim.shared(), "root").unwrap();
    let store = Store::open(Arc::new(backend), "", StoreOptions::default()).unwrap();
    let key = Key::new("k");
    let opts = || WriterOptions::default().frame_size(4096);
    let first =
        store.save_with(&key, SaveInfo::checkpoint().iteration(1), opts(), |w| w.add_bytes("b", &[1; 9000])).unwrap();
    // The disk is full for every write from here.
    sim.inject(FaultRule::on(OpKind::Write).with_fault(Fault::Enospc));
    let err =
        match store.save_async(&key, SaveInfo::checkpoint().iteration(2), opts(), |w| w.add_bytes("b", &[2; 50_000])) {
            Ok(h) => h.wait().unwrap_err(),
            Err(e) => e,
        };
    assert!(cairn::error_chain(&err).contains("No space left"), "{}", cairn::error_chain(&err));
    sim.clear_faults();
    let latest = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(latest.info.id, first.id, "a failed save became the latest");
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.orphans == 0, "{report:?}");
    let again = store
        .save_async(&key, SaveInfo::checkpoint().iteration(3), opts(), |w| w.add_bytes("b", &[3; 50_000]))
        .unwrap()
        .wait()
        .unwrap();
    let latest = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(latest.info.id, again.id);
    assert_eq!(latest.checkpoint.read("b").unwrap(), vec![3; 50_000]);
}
