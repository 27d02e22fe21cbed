//! The store suite every backend runs: selection, retention, eviction,
//! quarantine and fallback, index loss and damage, leases, crash leftovers
//! and concurrent savers. `store_tests!(make)` expands to one `#[test]` per
//! check; `make` returns a fresh backend and a guard, or `None` when the
//! backend is not available here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn::backend::{Backend, PutMode};
use cairn::store::{Direction, EntryKind, GcOptions, Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::{CheckpointWriter, WriterOptions};

/// What a test's `make` returns besides the backend.
pub type Guard = Box<dyn std::any::Any>;

/// A small checkpoint whose tensor holds `value`.
pub fn ckpt(value: f32) -> Bytes {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    w.add_tensor("w", &[64], &[value; 64]).unwrap();
    Bytes::from(w.finish().unwrap())
}

fn value(found: &cairn::store::Found) -> f32 {
    found.checkpoint.read_tensor::<f32>("w").unwrap()[0]
}

fn open(b: &Arc<dyn Backend>, opts: StoreOptions) -> Store {
    Store::open(b.clone(), "store", opts).unwrap()
}

fn ids(store: &Store, key: &Key) -> Vec<String> {
    store.entries(key).unwrap().into_iter().map(|e| e.id).collect()
}

pub fn selection_best_latest_and_by_id(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("cfg-a");
    let a = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint().objective(0.5).iteration(1)).unwrap();
    let best = store.save_bytes(&key, ckpt(2.0), SaveInfo::checkpoint().objective(0.1).iteration(2)).unwrap();
    let last = store.save_bytes(&key, ckpt(3.0), SaveInfo::checkpoint().objective(0.9).iteration(3)).unwrap();
    assert_eq!(value(&store.lookup(&key, &Select::Best).unwrap().unwrap()), 2.0);
    assert_eq!(store.lookup(&key, &Select::Best).unwrap().unwrap().info.id, best.id);
    assert_eq!(store.lookup(&key, &Select::Latest).unwrap().unwrap().info.id, last.id);
    assert_eq!(value(&store.lookup(&key, &Select::Id(a.id.clone())).unwrap().unwrap()), 1.0);
    assert!(store.lookup(&key, &Select::Id("nope".into())).unwrap().is_none());
    assert!(store.lookup(&Key::new("other"), &Select::Best).unwrap().is_none());
    // The direction is a store setting.
    let max = open(&b, StoreOptions::default().direction(Direction::Maximize));
    assert_eq!(max.lookup(&key, &Select::Best).unwrap().unwrap().info.id, last.id);
    // A final result beats a checkpoint of equal objective.
    let fin = store.save_bytes(&key, ckpt(4.0), SaveInfo::final_result().objective(0.1)).unwrap();
    let got = store.lookup(&key, &Select::Best).unwrap().unwrap();
    assert_eq!((got.info.id.as_str(), got.info.kind), (fin.id.as_str(), EntryKind::Final));
    // With no objective anywhere, Best is Latest.
    let plain = Key::new("cfg-b");
    store.save_bytes(&plain, ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    let newest = store.save_bytes(&plain, ckpt(2.0), SaveInfo::checkpoint()).unwrap();
    assert_eq!(store.lookup(&plain, &Select::Best).unwrap().unwrap().info.id, newest.id);
    // NaN objectives are refused.
    assert!(store.save_bytes(&plain, ckpt(1.0), SaveInfo::checkpoint().objective(f64::NAN)).is_err());
    // Not a checkpoint: refused before anything is stored.
    assert!(store.save_bytes(&plain, Bytes::from_static(b"not a checkpoint"), SaveInfo::checkpoint()).is_err());
    assert_eq!(store.entries(&plain).unwrap().len(), 2);
    let listed = store.list().unwrap();
    assert_eq!(listed.iter().map(|(k, v)| (k.as_str(), v.len())).collect::<Vec<_>>(), [("cfg-a", 4), ("cfg-b", 2)]);
}

pub fn retention_after_each_save_spares_pinned(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default().retention(Retention::default().keep_last(2).keep_best(1)));
    let key = Key::new("run");
    let pinned = store.save_bytes(&key, ckpt(0.0), SaveInfo::checkpoint().objective(5.0).pinned(true)).unwrap();
    let best = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint().objective(0.1)).unwrap();
    let mut last = Vec::new();
    for i in 0..5 {
        last.push(
            store
                .save_bytes(&key, ckpt(2.0 + i as f32), SaveInfo::checkpoint().objective(1.0 + f64::from(i)))
                .unwrap()
                .id,
        );
    }
    let mut want = vec![pinned.id, best.id];
    want.extend(last.iter().rev().take(2).rev().cloned());
    want.sort();
    let mut got = ids(&store, &key);
    got.sort();
    assert_eq!(got, want);
    // Removed entries leave no objects behind.
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.entries, 4);
    assert_eq!(report.orphans, 0);
    assert!(report.unindexed.is_empty());
}

pub fn gc_evicts_least_recently_used_past_the_budget_and_by_ttl(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default().touch_interval(Duration::ZERO));
    let keys: Vec<Key> = (0..3).map(|i| Key::new(&format!("k{i}"))).collect();
    let mut all = Vec::new();
    for round in 0..3 {
        for k in &keys {
            all.push((k.clone(), store.save_bytes(k, ckpt(round as f32), SaveInfo::checkpoint()).unwrap()));
        }
    }
    let size = all[0].1.bytes;
    // The oldest entry is read, so it becomes the most recently used.
    let (k0, first) = all[0].clone();
    std::thread::sleep(Duration::from_millis(5));
    store.lookup(&k0, &Select::Id(first.id.clone())).unwrap().unwrap();
    let report = store.gc(&GcOptions::default().max_bytes(size * 5)).unwrap();
    assert_eq!(report.removed.len(), 4, "{report:?}");
    assert!(report.removed.iter().all(|r| r.reason == "budget"));
    let mut evicted: Vec<&str> = report.removed.iter().map(|r| r.id.as_str()).collect();
    evicted.sort_unstable();
    let mut expected: Vec<&str> = all[1..5].iter().map(|(_, e)| e.id.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(evicted, expected);
    assert_eq!((report.entries, report.bytes), (5, size * 5));
    assert!(store.lookup(&k0, &Select::Id(first.id.clone())).unwrap().is_some());
    // TTL: an hour later, everything unused for 30 minutes goes, except a pinned entry.
    let (k8, last) = all[8].clone();
    store.pin(&k8, &last.id, true).unwrap();
    let later = last.created_at + 3_600_000_000_000;
    let report = store.gc(&GcOptions::default().ttl(Duration::from_secs(1800)).at(later)).unwrap();
    assert_eq!(report.removed.len(), 4);
    assert!(report.removed.iter().all(|r| r.reason == "ttl"));
    assert_eq!(store.list().unwrap().iter().map(|(_, v)| v.len()).sum::<usize>(), 1);
    assert!(store.verify().unwrap().is_clean());
}

pub fn budget_is_enforced_after_saves_without_a_scan_per_save(b: Arc<dyn Backend>) {
    let size = ckpt(0.0).len() as u64;
    let store = open(&b, StoreOptions::default().max_bytes(Some(size * 4)));
    let key = Key::new("budget");
    for i in 0..10 {
        store.save_bytes(&key, ckpt(i as f32), SaveInfo::checkpoint().iteration(i)).unwrap();
    }
    let left = store.entries(&key).unwrap();
    assert!(left.len() <= 4, "{} entries kept", left.len());
    assert_eq!(left.last().unwrap().iteration, Some(9), "the newest entry was evicted");
    // In a full store a pass evicts down to 90 % of the budget, so the
    // saves after it fit without a pass of their own: the count climbs
    // back to the budget between passes instead of sitting at it.
    let store = open(&b, StoreOptions::default().max_bytes(Some(size * 40)));
    let key = Key::new("watermark");
    let mut counts = Vec::new();
    for i in 0..80 {
        store.save_bytes(&key, ckpt(i as f32), SaveInfo::checkpoint()).unwrap();
        counts.push(store.entries(&key).unwrap().len());
    }
    let tail = &counts[45..];
    assert!(tail.iter().all(|&n| n <= 40), "{counts:?}");
    assert!(tail.contains(&36) && tail.contains(&40), "no hysteresis: {counts:?}");
}

pub fn damaged_entries_are_quarantined_and_lookup_falls_back(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("flaky");
    let good = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint().objective(0.5)).unwrap();
    let best = store.save_bytes(&key, ckpt(2.0), SaveInfo::checkpoint().objective(0.1)).unwrap();
    // Flip one byte of the best entry's data.
    let data_key = format!("store/entries/{}/{}.data", key.hash_path(), best.id);
    let mut bytes = b.get(&data_key).unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    b.put(&data_key, Bytes::from(bytes.clone()), PutMode::Overwrite).unwrap();
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].id, best.id);
    // The lookup never returns the damaged data: it moves it aside and falls back.
    let found = store.lookup(&key, &Select::Best).unwrap().unwrap();
    assert_eq!(found.info.id, good.id);
    assert_eq!(value(&found), 1.0);
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].key.as_str(), q[0].id.as_str()), ("flaky", best.id.as_str()));
    assert!(q[0].detail.contains("BLAKE3"), "{}", q[0].detail);
    // The evidence is kept byte for byte.
    let kept = b.get(&format!("store/quarantine/{}/{}.data", key.hash_path(), best.id)).unwrap();
    assert_eq!(kept.as_ref(), bytes.as_slice());
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.quarantined.len(), 1);
    // Asked for by id, a damaged entry is an error, not data (a handle
    // that cached the entry while it was intact would answer from memory).
    let store = open(&b, StoreOptions::default().cache_bytes(0));
    let data_key = format!("store/entries/{}/{}.data", key.hash_path(), good.id);
    b.put(&data_key, Bytes::from_static(b"garbage"), PutMode::Overwrite).unwrap();
    let err = store.lookup(&key, &Select::Id(good.id.clone())).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(store.lookup(&key, &Select::Best).unwrap().is_none());
}

/// An entry streamed in and later cut short (its tail lost) is refused by
/// the lazy reader as damage of that entry and quarantined, never read.
pub fn truncated_entries_are_quarantined_not_read(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default().cache_bytes(0));
    let key = Key::new("cut");
    let good = save_with(&store, &key, 1.0, SaveInfo::checkpoint().objective(0.5));
    let cut_index = save_with(&store, &key, 2.0, SaveInfo::checkpoint().objective(0.1));
    let cut_frames = save_with(&store, &key, 3.0, SaveInfo::checkpoint().objective(0.2));
    for (e, keep) in [(&cut_index, 100), (&cut_frames, 200)] {
        let data_key = format!("store/entries/{}/{}.data", key.hash_path(), e.id);
        let bytes = b.get(&data_key).unwrap();
        let keep = if keep == 100 { bytes.len() - 100 } else { keep };
        b.put(&data_key, bytes.slice(..keep), PutMode::Overwrite).unwrap();
    }
    let report = store.verify().unwrap();
    assert_eq!(report.corrupt.len(), 2, "{report:?}");
    let err = store.lookup(&key, &Select::Id(cut_index.id.clone())).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let found = store.lookup(&key, &Select::Best).unwrap().unwrap();
    assert_eq!(found.info.id, good.id);
    assert_eq!(value(&found), 1.0);
    let q: Vec<String> = store.quarantined().unwrap().into_iter().map(|p| p.id).collect();
    assert!(q.contains(&cut_index.id) && q.contains(&cut_frames.id), "{q:?}");
}

pub fn lost_or_damaged_indexes_are_rebuilt(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("idx");
    let mut saved = Vec::new();
    for i in 0..4 {
        saved.push(store.save_bytes(&key, ckpt(i as f32), SaveInfo::checkpoint().objective(f64::from(i))).unwrap().id);
    }
    store.pin(&key, &saved[3], true).unwrap();
    let index_key = format!("store/index/{}", key.hash_path());
    // Damaged: the lookup rebuilds it (and keeps the damaged copy).
    b.put(&index_key, Bytes::from_static(b"{\"version\":1,\"key\":"), PutMode::Overwrite).unwrap();
    let report = store.verify().unwrap();
    if b.volatile_is_weaker() {
        // Index writes are not synced here, so a crash may do this: named,
        // and not damage, since the infos hold everything an index does.
        assert!(report.is_clean() && report.stale_indexes == [key.hash_path()], "{report:?}");
    } else {
        assert!(!report.is_clean() && report.damaged_indexes == [key.hash_path()], "{report:?}");
    }
    assert_eq!(value(&store.lookup(&key, &Select::Best).unwrap().unwrap()), 0.0);
    let mut got = ids(&store, &key);
    got.sort();
    assert_eq!(got, saved);
    assert!(store.entries(&key).unwrap().iter().any(|e| e.pinned && e.id == saved[3]), "the pin was lost");
    assert!(b.list("store/quarantine/").unwrap().iter().any(|m| m.key.contains("index-")));
    // Lost: damage (a save makes the index before its first entry), found
    // by verify, unless index writes are volatile (then a crash state); the
    // entries stay reachable, and repair brings it back.
    b.delete(&index_key).unwrap();
    let report = store.verify().unwrap();
    if b.volatile_is_weaker() {
        assert!(report.is_clean() && report.stale_indexes == [key.hash_path()], "{report:?}");
    } else {
        assert!(!report.is_clean() && report.missing_indexes == [key.hash_path()], "{report:?}");
    }
    // Where indexes lag by design their entries are counted, not listed.
    assert_eq!(report.unindexed.len(), if b.volatile_is_weaker() { 0 } else { 4 });
    let rep = store.repair().unwrap();
    assert_eq!(rep.entries, 4);
    assert_eq!(ids(&store, &key).len(), 4);
    assert!(store.verify().unwrap().is_clean());
    // A lookup rebuilds it too.
    b.delete(&index_key).unwrap();
    assert_eq!(value(&store.lookup(&key, &Select::Best).unwrap().unwrap()), 0.0);
    assert!(store.verify().unwrap().is_clean());
    // A key never saved to has no index and no entries: nothing to report.
    assert!(store.lookup(&Key::new("never saved"), &Select::Best).unwrap().is_none());
}

pub fn crash_leftovers_are_cleaned_or_adopted(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default().orphan_grace(Duration::ZERO));
    let key = Key::new("crashy");
    let kept = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    let hp = key.hash_path();
    // A removal that died after the info went: still indexed, and its
    // lease (a remover leases what it removes) says it was being removed.
    let half = store.save_bytes(&key, ckpt(2.0), SaveInfo::checkpoint()).unwrap();
    index_all(&store);
    // A save that died after its data: an orphan.
    b.put(&format!("store/entries/{hp}/0000000000000001-deadbeef0000.data"), ckpt(9.0), PutMode::Create).unwrap();
    b.put(
        &format!("store/leases/{hp}/{}.remover", half.id),
        Bytes::from_static(b"{\"version\":1,\"expires_at\":1,\"holder\":\"x:1\"}"),
        PutMode::Create,
    )
    .unwrap();
    b.delete(&format!("store/entries/{hp}/{}.info", half.id)).unwrap();
    // A save that died after its info, before the index: committed,
    // unindexed (made last: a save folds what its index lags back in).
    let info = b.get(&format!("store/entries/{hp}/{}.info", kept.id)).unwrap();
    let twin = "0000000000000002-feedface0000";
    b.put(
        &format!("store/entries/{hp}/{twin}.data"),
        b.get(&format!("store/entries/{hp}/{}.data", kept.id)).unwrap(),
        PutMode::Create,
    )
    .unwrap();
    // As a document from before checksums, so that editing the id is fair.
    let mut info: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&info).unwrap();
    info.remove("checksum");
    let info = serde_json::to_string(&info).unwrap().replace(&kept.id, twin);
    b.put(&format!("store/entries/{hp}/{twin}.info"), Bytes::from(info), PutMode::Create).unwrap();
    // A lease whose holder is long gone.
    b.put(
        &format!("store/leases/{hp}/{}.stale", kept.id),
        Bytes::from_static(b"{\"version\":1,\"expires_at\":1,\"holder\":\"x:1\"}"),
        PutMode::Create,
    )
    .unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "crash leftovers are not damage: {report:?}");
    let unindexed = if b.volatile_is_weaker() { 0 } else { 1 };
    assert_eq!((report.orphans, report.unindexed.len()), (1, unindexed), "{report:?}");
    let gc = store.gc(&GcOptions::default()).unwrap();
    assert_eq!((gc.orphans, gc.adopted, gc.finished_removals, gc.stale_leases), (1, 1, 1, 2), "{gc:?}");
    let mut got = ids(&store, &key);
    got.sort();
    assert_eq!(got, [twin.to_string(), kept.id.clone()]);
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{report:?}");
    assert!(b.list(&format!("store/entries/{hp}/{}.", half.id)).unwrap().is_empty());
    assert!(b.list("store/leases/").unwrap().is_empty());
}

pub fn leased_entries_are_not_removed(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("leased");
    let a = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    let lease = store.lease(&key, &a.id).unwrap();
    store.save_bytes(&key, ckpt(2.0), SaveInfo::checkpoint()).unwrap();
    let report = store.gc(&GcOptions::default().retention(Retention::default().keep_last(1))).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(store.remove(&key, Some(&a.id)).unwrap().is_empty());
    assert_eq!(store.entries(&key).unwrap().len(), 2);
    lease.renew().unwrap();
    lease.release().unwrap();
    let report = store.gc(&GcOptions::default().retention(Retention::default().keep_last(1))).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].id, a.id);
    assert!(store.lease(&key, &a.id).is_err(), "a removed entry cannot be leased");
    assert!(b.list("store/leases/").unwrap().is_empty());
}

/// This machine's host name, as the library reads it for lease holders.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

pub fn leases_held_by_impossible_pids_on_this_host_are_stale(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("held");
    let e = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    let hp = key.hash_path();
    let host = host_name();
    // Far from expiring: only the holder's pid can make these stale.
    // `kill(0, 0)` and `kill(-1, 0)` succeed (they address process groups),
    // so a check that only looks for ESRCH takes these holders for alive.
    let lease = |holder: &str| format!("{{\"version\":1,\"expires_at\":{},\"holder\":\"{holder}\"}}", u64::MAX / 2);
    let stale = [format!("{host}:0"), format!("{host}:-1"), format!("{host}:abc"), format!("{host}:99999999999")];
    for (i, holder) in stale.iter().enumerate() {
        b.put(&format!("store/leases/{hp}/{}.dead{i}", e.id), Bytes::from(lease(holder)), PutMode::Create).unwrap();
    }
    // A live holder on this host, and a holder on another host (whose
    // pids say nothing here), keep their leases.
    let live = [format!("{host}:{}", std::process::id()), "another-host.invalid:0".to_string()];
    for (i, holder) in live.iter().enumerate() {
        b.put(&format!("store/leases/{hp}/{}.live{i}", e.id), Bytes::from(lease(holder)), PutMode::Create).unwrap();
    }
    let gc = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(gc.stale_leases, stale.len(), "{gc:?}");
    let mut left: Vec<String> = b.list("store/leases/").unwrap().into_iter().map(|m| m.key).collect();
    left.sort();
    assert_eq!(left, [format!("store/leases/{hp}/{}.live0", e.id), format!("store/leases/{hp}/{}.live1", e.id)]);
    assert_eq!(ids(&store, &key), vec![e.id]);
}

pub fn remove_and_pin(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("../../etc/passwd");
    let a = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint().meta("run", "7")).unwrap();
    let c = store.save_bytes(&key, ckpt(2.0), SaveInfo::checkpoint()).unwrap();
    store.pin(&key, &a.id, true).unwrap();
    assert!(store.pin(&key, "missing", true).is_err());
    assert!(store.remove(&key, Some(&a.id)).is_err(), "a pinned entry was removed");
    let removed = store.remove(&key, None).unwrap();
    assert_eq!(removed.iter().map(|e| &e.id).collect::<Vec<_>>(), [&c.id]);
    let left = store.entries(&key).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].metadata.get("run").map(String::as_str), Some("7"));
    // The hostile key never reached a path.
    for m in b.list("").unwrap() {
        assert!(!m.key.contains("etc") && !m.key.contains(".."), "{}", m.key);
    }
    assert_eq!(store.list().unwrap()[0].0, "../../etc/passwd");
}

pub fn concurrent_savers_lose_nothing(b: Arc<dyn Backend>) {
    let store = Arc::new(open(&b, StoreOptions::default()));
    let threads = 8;
    let per = 12;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let key = Key::new(&format!("shared-{}", (t + i) % 3));
                        store.save_bytes(&key, ckpt(i as f32), SaveInfo::checkpoint().iteration(i as u64)).unwrap().id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut saved: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    saved.sort();
    let mut listed: Vec<String> =
        store.list().unwrap().into_iter().flat_map(|(_, v)| v.into_iter().map(|e| e.id)).collect();
    listed.sort();
    assert_eq!(listed, saved);
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty(), "{report:?}");
    assert_eq!(report.entries, (threads * per) as u64);
}

pub fn saves_with_retention_racing_collections_stay_clean(b: Arc<dyn Backend>) {
    let opts = StoreOptions::default().retention(Retention::default().keep_last(2)).orphan_grace(Duration::ZERO);
    let store = Arc::new(open(&b, opts));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || passes == 0 {
                store.gc(&GcOptions::default()).unwrap();
                passes += 1;
            }
            passes
        })
    };
    let savers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut newest = Vec::new();
                for i in 0..15 {
                    let key = Key::new(&format!("race-{}", (t + i) % 2));
                    newest.push((
                        key.clone(),
                        store.save_bytes(&key, ckpt(i as f32), SaveInfo::checkpoint()).unwrap().id,
                    ));
                }
                newest
            })
        })
        .collect();
    let saved: Vec<(Key, String)> = savers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = collector.join().unwrap();
    assert!(passes >= 1);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    store.gc(&GcOptions::default()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{report:?}");
    // Each key keeps its two newest entries, and the newest save survives.
    for k in ["race-0", "race-1"] {
        let key = Key::new(k);
        let ids: Vec<String> = store.entries(&key).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2, "{k}: {ids:?}");
        let newest = saved.iter().filter(|(kk, _)| kk == &key).map(|(_, id)| id).max().unwrap();
        assert!(ids.contains(newest), "{k}: newest {newest} lost, have {ids:?}");
    }
}

pub fn cache_answers_repeated_lookups(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("hot");
    store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    for _ in 0..5 {
        assert_eq!(value(&store.lookup(&key, &Select::Latest).unwrap().unwrap()), 1.0);
    }
    let s = store.cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (4, 1, 1));
    assert!((s.hit_rate() - 0.8).abs() < 1e-9);
    // An idle TTL drops what was not used for that long.
    let short = open(&b, StoreOptions::default().cache_ttl(Some(Duration::from_millis(50))));
    short.lookup(&key, &Select::Latest).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    short.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!((short.cache_stats().hits, short.cache_stats().misses), (0, 2));
    let off = open(&b, StoreOptions::default().cache_bytes(0));
    off.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(off.cache_stats(), cairn::store::CacheStats::default());
}

fn entry_key(hp: &str, id: &str, part: &str) -> String {
    format!("store/entries/{hp}/{id}.{part}")
}

/// Brings every index up to date with its entries: where index writes are
/// volatile (local disk) an index lags its newest entries by design
/// (docs/STORE.md), and these tests damage what an index records.
fn index_all(store: &Store) {
    store.gc(&GcOptions::default()).unwrap();
}

/// A checkpoint saved through `save_with`, which records the entry's facts
/// in it.
fn save_with(store: &Store, key: &Key, v: f32, info: SaveInfo) -> cairn::store::EntryInfo {
    store.save_with(key, info, WriterOptions::default(), |w| w.add_tensor("w", &[64], &[v; 64])).unwrap()
}

pub fn damaged_or_lost_infos_are_found_and_recovered(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("infos");
    let hp = key.hash_path();
    let saved: Vec<_> = (0..4)
        .map(|i| store.save_bytes(&key, ckpt(i as f32), SaveInfo::checkpoint().objective(f64::from(i))).unwrap())
        .collect();
    index_all(&store);
    assert!(store.verify().unwrap().is_clean());
    // One byte flipped, one truncated, one deleted; the data is intact.
    let info = |i: usize| entry_key(&hp, &saved[i].id, "info");
    let mut flipped = b.get(&info(0)).unwrap().to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    b.put(&info(0), Bytes::from(flipped), PutMode::Overwrite).unwrap();
    let whole = b.get(&info(1)).unwrap();
    b.put(&info(1), whole.slice(..whole.len() / 2), PutMode::Overwrite).unwrap();
    b.delete(&info(2)).unwrap();
    let report = store.verify().unwrap();
    assert!(!report.is_clean(), "{report:?}");
    let named: Vec<&str> = report.damaged_infos.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(named, [saved[0].id.as_str(), saved[1].id.as_str(), saved[2].id.as_str()], "{report:?}");
    // A collection takes none of them for a half-done removal.
    let gc = store.gc(&GcOptions::default()).unwrap();
    assert_eq!((gc.finished_removals, gc.damaged), (0, 1), "{gc:?}");
    assert_eq!(ids(&store, &key).len(), 4);
    // Repair writes each info again from the index: nothing vanishes.
    let rep = store.repair().unwrap();
    let recovered: Vec<&str> = rep.recovered.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(recovered.len(), 3, "{rep:?}");
    for s in &saved[..3] {
        assert!(recovered.contains(&s.id.as_str()), "{rep:?}");
    }
    assert!(rep.quarantined.is_empty(), "{rep:?}");
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.entries == 4, "{report:?}");
    for (i, s) in saved.iter().enumerate() {
        let found = store.lookup(&key, &Select::Id(s.id.clone())).unwrap().unwrap();
        assert_eq!((value(&found), found.info.objective), (i as f32, Some(i as f64)));
    }
    // The whole entries/ folder gone: every entry is named.
    for m in b.list("store/entries/").unwrap() {
        b.delete(&m.key).unwrap();
    }
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    assert_eq!((report.damaged_infos.len(), report.missing.len()), (4, 4), "{report:?}");
}

pub fn an_index_that_disagrees_with_the_data_is_rebuilt_not_blamed_on_it(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default().cache_bytes(0));
    let key = Key::new("edited");
    let a = store.save_bytes(&key, ckpt(1.0), SaveInfo::checkpoint().objective(0.5)).unwrap();
    index_all(&store);
    let index_key = format!("store/index/{}", key.hash_path());
    let edit = |text: &str| text.replacen(&a.digest[..8], "00000000", 1);
    // One digest edited, still valid JSON: the index's checksum finds it.
    let text = String::from_utf8(b.get(&index_key).unwrap().to_vec()).unwrap();
    b.put(&index_key, Bytes::from(edit(&text)), PutMode::Overwrite).unwrap();
    let report = store.verify().unwrap();
    assert!(!report.damaged_indexes.is_empty() || !report.stale_indexes.is_empty(), "{report:?}");
    let found = store.lookup(&key, &Select::Best).unwrap().unwrap();
    assert_eq!((found.info.id.as_str(), value(&found)), (a.id.as_str(), 1.0));
    assert!(store.quarantined().unwrap().is_empty(), "a healthy entry was quarantined");
    assert!(store.verify().unwrap().is_clean());
    // An index from before checksums, edited the same way: the entry's own
    // info settles it.
    let text = String::from_utf8(b.get(&index_key).unwrap().to_vec()).unwrap();
    let legacy: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut legacy = legacy.as_object().unwrap().clone();
    legacy.remove("checksum");
    let legacy = edit(&serde_json::to_string(&legacy).unwrap());
    assert!(!legacy.contains(&a.digest));
    b.put(&index_key, Bytes::from(legacy), PutMode::Overwrite).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.damaged_infos.len(), 1, "verify names the disagreement: {report:?}");
    let found = store.lookup(&key, &Select::Best).unwrap().unwrap();
    assert_eq!((found.info.id.as_str(), value(&found)), (a.id.as_str(), 1.0));
    assert!(store.quarantined().unwrap().is_empty(), "a healthy entry was quarantined");
    assert!(store.verify().unwrap().is_clean());
}

pub fn repair_restores_quarantined_entries_whose_data_is_intact(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default().cache_bytes(0));
    let key = Key::new("restore");
    let hp = key.hash_path();
    let a = store.save_bytes(&key, ckpt(3.0), SaveInfo::checkpoint()).unwrap();
    let data_key = entry_key(&hp, &a.id, "data");
    let good = b.get(&data_key).unwrap();
    let mut bad = good.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    b.put(&data_key, Bytes::from(bad), PutMode::Overwrite).unwrap();
    assert!(store.lookup(&key, &Select::Best).unwrap().is_none());
    assert_eq!(store.quarantined().unwrap().len(), 1);
    // The damage was in the reading, say, and the quarantined copy is whole.
    b.put(&format!("store/quarantine/{hp}/{}.data", a.id), good, PutMode::Overwrite).unwrap();
    let rep = store.repair().unwrap();
    assert_eq!(rep.restored.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [a.id.as_str()], "{rep:?}");
    assert!(store.quarantined().unwrap().is_empty());
    assert_eq!(value(&store.lookup(&key, &Select::Best).unwrap().unwrap()), 3.0);
    assert!(store.verify().unwrap().is_clean());
    // A copy still damaged stays in quarantine.
    let data_key = entry_key(&hp, &a.id, "data");
    let mut bad = b.get(&data_key).unwrap().to_vec();
    bad[mid] ^= 0x40;
    b.put(&data_key, Bytes::from(bad), PutMode::Overwrite).unwrap();
    assert!(store.lookup(&key, &Select::Best).unwrap().is_none());
    assert!(store.repair().unwrap().restored.is_empty());
    assert_eq!(store.quarantined().unwrap().len(), 1);
}

pub fn entries_that_lost_info_and_index_are_recovered_or_quarantined(b: Arc<dyn Backend>) {
    let store = open(&b, StoreOptions::default());
    let key = Key::new("both lost");
    let hp = key.hash_path();
    let with = save_with(&store, &key, 5.0, SaveInfo::final_result().iteration(9).objective(0.125).meta("m", "v"));
    let without = store.save_bytes(&key, ckpt(6.0), SaveInfo::checkpoint()).unwrap();
    for e in [&with, &without] {
        b.put(&entry_key(&hp, &e.id, "info"), Bytes::from_static(b"{\"version\":1,\"ke"), PutMode::Overwrite).unwrap();
    }
    b.delete(&format!("store/index/{hp}")).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.damaged_infos.len(), 2, "{report:?}");
    let rep = store.repair().unwrap();
    // The entry saved with its facts comes back whole; the other is named
    // and kept in quarantine, not dropped.
    assert_eq!(rep.recovered.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [with.id.as_str()], "{rep:?}");
    assert!(rep.recovered[0].detail.contains("checkpoint"), "{rep:?}");
    assert_eq!(rep.quarantined.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [without.id.as_str()], "{rep:?}");
    let got = store.entries(&key).unwrap();
    assert_eq!(
        got.len(),
        1,
        "{got:?} {rep:?} {:?}",
        b.list("store/").unwrap().iter().map(|m| &m.key).collect::<Vec<_>>()
    );
    let mut want = with.clone();
    want.last_used = got[0].last_used;
    assert_eq!(got[0], want, "the recovered info is the saved one");
    assert_eq!(store.quarantined().unwrap()[0].id, without.id);
    assert!(store.verify().unwrap().is_clean());
}

#[macro_export]
macro_rules! store_tests {
    ($make:expr) => {
        $crate::store_tests!(@each $make;
            selection_best_latest_and_by_id,
            retention_after_each_save_spares_pinned,
            gc_evicts_least_recently_used_past_the_budget_and_by_ttl,
            budget_is_enforced_after_saves_without_a_scan_per_save,
            damaged_entries_are_quarantined_and_lookup_falls_back,
            lost_or_damaged_indexes_are_rebuilt,
            crash_leftovers_are_cleaned_or_adopted,
            leased_entries_are_not_removed,
            leases_held_by_impossible_pids_on_this_host_are_stale,
            remove_and_pin,
            concurrent_savers_lose_nothing,
            saves_with_retention_racing_collections_stay_clean,
            cache_answers_repeated_lookups,
            damaged_or_lost_infos_are_found_and_recovered,
            an_index_that_disagrees_with_the_data_is_rebuilt_not_blamed_on_it,
            repair_restores_quarantined_entries_whose_data_is_intact,
            entries_that_lost_info_and_index_are_recovered_or_quarantined,
            truncated_entries_are_quarantined_not_read
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let Some((b, _guard)) = $make() else { return };
                suite::$name(b);
            }
        )*
    };
}
