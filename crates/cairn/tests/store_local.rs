//! The store suite on the local-disk backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "store/suite.rs"]
mod suite;

use std::sync::Arc;

use cairn::backend::{Backend, LocalBackend};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    Some((Arc::new(backend), Box::new(dir)))
}

store_tests!(make);

#[test]
fn open_url_takes_paths_and_file_urls_and_refuses_memory() {
    use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a store");
    let by_path = Store::open_url(root.to_str().unwrap(), StoreOptions::default()).unwrap();
    by_path.save_bytes(&Key::new("k"), suite::ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    assert!(root.join("index").is_dir(), "the store is not at the path given");
    let by_url = Store::open_url(&format!("file://{}", root.display()), StoreOptions::default()).unwrap();
    assert!(by_url.lookup(&Key::new("k"), &Select::Latest).unwrap().is_some());
    let err = Store::open_url("memory://", StoreOptions::default()).unwrap_err();
    assert!(matches!(err, cairn::Error::InvalidArgument(_)), "{err}");
    assert!(Store::open_url("s3://", StoreOptions::default()).is_err());
}
