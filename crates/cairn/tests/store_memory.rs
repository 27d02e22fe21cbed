//! The store suite on the memory backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/hooked.rs"]
mod hooked;
#[path = "store/suite.rs"]
mod suite;
#[path = "store/suite_async.rs"]
mod suite_async;
#[path = "store/suite_shared.rs"]
mod suite_shared;

use std::sync::Arc;

use cairn::backend::{Backend, MemoryBackend};
use hooked::{Hooked, When};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    Some((Arc::new(MemoryBackend::new()), Box::new(())))
}

store_tests!(make);
store_async_tests!(make);
store_shared_tests!(make);

#[test]
fn a_save_outlasting_its_lease_ttl_keeps_its_lease_alive() {
    use std::time::Duration;

    use cairn::store::{GcOptions, Key, SaveInfo, Store, StoreOptions};

    // Memory, where a put of entry data returns only some time after the
    // object became visible: a long upload's last moments.
    let b: Arc<dyn Backend> = Arc::new(Hooked::new(Arc::new(MemoryBackend::new()), |op, key, when| {
        if op == "put" && when == When::After && key.ends_with(".data") {
            std::thread::sleep(Duration::from_millis(600));
        }
        Ok(())
    }));
    let opts = StoreOptions::default().lease_ttl(Duration::from_millis(150)).orphan_grace(Duration::ZERO);
    let store = Arc::new(Store::open(b, "", opts).unwrap());
    let saver = {
        let store = store.clone();
        std::thread::spawn(move || store.save_bytes(&Key::new("k"), suite::ckpt(1.0), SaveInfo::checkpoint()).unwrap())
    };
    // The data is visible and the lease TTL long past, but the save goes on.
    std::thread::sleep(Duration::from_millis(400));
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.orphans, 0, "a save in progress lost its data: {report:?}");
    saver.join().unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.entries == 1, "{report:?}");
}

/// A save that finds a frame object in the moment between a collection's
/// copy of it to the trash and its delete takes its lease after the
/// trashed copy was written: a later collection must still not delete that
/// copy while the save is in flight, since the save's entry will name it.
#[test]
fn a_frame_found_while_it_is_being_trashed_is_kept_for_the_save_that_found_it() {
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use cairn::store::{GcOptions, Key, SaveInfo, Select, Store, StoreOptions};
    use cairn::WriterOptions;

    const FRAME: usize = 64 << 10;
    let frame = |seed: u8| -> Vec<f32> { (0..FRAME / 4).map(|i| (i as f32) * 0.5 + f32::from(seed) * 1e6).collect() };
    let key_of = |t: &[f32]| {
        let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
        let hex = blake3::hash(&bytes).to_hex();
        format!("frames/{}/{}", &hex[..2], &hex[2..])
    };
    let (x, y, z) = (frame(1), frame(2), frame(3));
    let (x_key, y_key) = (key_of(&x), key_of(&y));
    // 0: all run freely; 1: the collector is to stop at its delete of
    // frames/x; 2: it has; 3: the save is to stop at its put of frames/y;
    // 4: it has; 5: the collector goes on; 6: the save goes on.
    let phase = Arc::new((Mutex::new(0u8), Condvar::new()));
    let hook = {
        let phase = phase.clone();
        move |op: &'static str, key: &str, when: When| {
            let (lock, cv) = &*phase;
            let mut p = lock.lock().unwrap();
            let wait_for = if op == "delete" && when == When::Before && key == x_key && *p == 1 {
                Some((2, 5))
            } else if op == "put" && when == When::Before && key == y_key && *p == 3 {
                Some((4, 6))
            } else {
                None
            };
            if let Some((at, until)) = wait_for {
                *p = at;
                cv.notify_all();
                while *p != until {
                    p = cv.wait(p).unwrap();
                }
            }
            Ok(())
        }
    };
    let b: Arc<dyn Backend> = Arc::new(Hooked::new(Arc::new(MemoryBackend::new()), hook));
    let store = Arc::new(Store::open(b.clone(), "", StoreOptions::default().orphan_grace(Duration::ZERO)).unwrap());
    let save = |store: &Store, key: &str, parts: &[&[f32]]| {
        let t: Vec<f32> = parts.concat();
        let opts = WriterOptions::default().frame_size(FRAME as u32);
        store
            .save_with(&Key::new(key), SaveInfo::checkpoint(), opts, |w| w.add_tensor("t", &[t.len() as u64], &t))
            .unwrap()
    };
    // Bounded, so that a change in the order of a save's or a
    // collection's calls fails the test instead of hanging it.
    let wait = |until: u8| {
        let (lock, cv) = &*phase;
        let p = lock.lock().unwrap();
        let (p, waited) = cv.wait_timeout_while(p, Duration::from_secs(30), |p| *p != until).unwrap();
        assert!(!waited.timed_out(), "phase {} never became {until}", *p);
    };
    let set = |to: u8| {
        let (lock, cv) = &*phase;
        *lock.lock().unwrap() = to;
        cv.notify_all();
    };
    // Frame x, then named by no entry.
    let first = save(&store, "a", &[&x, &z]);
    store.remove(&Key::new("a"), Some(&first.id)).unwrap();
    // A collection trashes x: copied to the trash, and stopped before the
    // delete of frames/x.
    set(1);
    let collector = {
        let store = store.clone();
        std::thread::spawn(move || store.gc(&GcOptions::default()).unwrap())
    };
    wait(2);
    // A save takes its lease, finds frames/x and names it, and is held
    // before its next frame.
    set(3);
    let saver = {
        let (store, x, y) = (store.clone(), x.clone(), y.clone());
        std::thread::spawn(move || save(&store, "b", &[&x, &y]))
    };
    wait(4);
    // The collection deletes frames/x and ends; another runs while the
    // save is still in flight.
    set(5);
    collector.join().unwrap();
    store.gc(&GcOptions::default()).unwrap();
    set(6);
    let e = saver.join().unwrap();
    let found = store.lookup(&Key::new("b"), &Select::Id(e.id.clone())).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("t").unwrap(), [x, y].concat());
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
