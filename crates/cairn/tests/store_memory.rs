//! The store suite on the memory backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/hooked.rs"]
mod hooked;
#[path = "store/suite.rs"]
mod suite;
#[path = "store/suite_async.rs"]
mod suite_async;

use std::sync::Arc;

use cairn::backend::{Backend, MemoryBackend};
use hooked::{Hooked, When};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    Some((Arc::new(MemoryBackend::new()), Box::new(())))
}

store_tests!(make);
store_async_tests!(make);

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
