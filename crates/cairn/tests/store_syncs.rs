//! What durability costs a small save into a local store: fsync-family
//! calls, counted on the simulated file system (docs/STORE.md argues why
//! each one that remains is needed).
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
