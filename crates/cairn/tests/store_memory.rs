//! The store suite on the memory backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "store/suite.rs"]
mod suite;

use std::sync::Arc;

use cairn::backend::{Backend, MemoryBackend, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    Some((Arc::new(MemoryBackend::new()), Box::new(())))
}

store_tests!(make);

/// Memory, where a put of entry data returns only some time after the
/// object became visible: a long upload's last moments.
#[derive(Debug)]
struct SlowData(MemoryBackend, std::time::Duration);

impl Backend for SlowData {
    fn url(&self) -> &str {
        self.0.url()
    }
    fn put(&self, key: &str, data: bytes::Bytes, mode: PutMode) -> cairn::Result<PutResult> {
        let r = self.0.put(key, data, mode);
        if key.ends_with(".data") {
            std::thread::sleep(self.1);
        }
        r
    }
    fn writer(&self, key: &str, mode: PutMode) -> cairn::Result<Box<dyn ObjectWriter>> {
        self.0.writer(key, mode)
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> cairn::Result<bytes::Bytes> {
        self.0.get_range(key, range)
    }
    fn get(&self, key: &str) -> cairn::Result<bytes::Bytes> {
        self.0.get(key)
    }
    fn get_versioned(&self, key: &str) -> cairn::Result<Versioned> {
        self.0.get_versioned(key)
    }
    fn head(&self, key: &str) -> cairn::Result<ObjectMeta> {
        self.0.head(key)
    }
    fn list(&self, prefix: &str) -> cairn::Result<Vec<ObjectMeta>> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &str) -> cairn::Result<()> {
        self.0.delete(key)
    }
    fn copy(&self, from: &str, to: &str) -> cairn::Result<()> {
        self.0.copy(from, to)
    }
}

#[test]
fn a_save_outlasting_its_lease_ttl_keeps_its_lease_alive() {
    use std::time::Duration;

    use cairn::store::{GcOptions, Key, SaveInfo, Store, StoreOptions};

    let b: Arc<dyn Backend> = Arc::new(SlowData(MemoryBackend::new(), Duration::from_millis(600)));
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
