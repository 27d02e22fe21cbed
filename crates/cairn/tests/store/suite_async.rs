//! Background saves (`Store::save_async`), run on every backend: staging
//! frees the caller's data at once, a failed closure publishes nothing,
//! background failures reach the handle or the next save, saves in flight
//! are bounded, staging beyond its budget blocks for the rest, and
//! dropping the store waits for what is in flight.

use std::sync::Arc;
use std::time::Duration;

use cairn::backend::{Backend, FaultBackend, LatencyBackend};
use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
use cairn::{Compression, Error, WriterOptions};

fn open(b: Arc<dyn Backend>, opts: StoreOptions) -> Store {
    Store::open(b, "store", opts).unwrap()
}

fn small_frames() -> WriterOptions {
    WriterOptions::default().frame_size(16 << 10)
}

pub fn async_saves_stage_the_state_then_write_it(b: Arc<dyn Backend>) {
    let store = open(b.clone(), StoreOptions::default());
    let key = Key::new("async");
    let mut state: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
    let want = state.clone();
    let h = store
        .save_async(&key, SaveInfo::checkpoint().iteration(7), small_frames(), |w| {
            w.set_metadata("note", serde_json::json!("staged"));
            w.add_tensor("w", &[state.len() as u64], &state)?;
            w.add_json("cfg", &serde_json::json!({"lr": 0.1}))
        })
        .unwrap();
    // The caller may change its tensors the moment save_async returns.
    state.iter_mut().for_each(|x| *x = -1.0);
    let staged = h.stats();
    assert_eq!(staged.staged_bytes, 400_000 + 10, "{staged:?}");
    let e = h.wait().unwrap();
    assert_eq!(e.iteration, Some(7));
    let found = store.lookup(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("w").unwrap(), want);
    assert_eq!(found.checkpoint.step(), Some(7));
    assert_eq!(found.checkpoint.metadata()["note"], serde_json::json!("staged"));
    assert_eq!(found.checkpoint.read_json::<serde_json::Value>("cfg").unwrap(), serde_json::json!({"lr": 0.1}));
    // A reader's chunk streams through staging too.
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let h = store
        .save_async(&key, SaveInfo::checkpoint(), small_frames(), |w| {
            w.add_reader("r", &cairn::ChunkSpec::bytes(), &bytes[..]).map(drop)
        })
        .unwrap();
    let e = h.wait().unwrap();
    let found = store.lookup(&key, &Select::Id(e.id)).unwrap().unwrap();
    assert_eq!(found.checkpoint.read("r").unwrap(), bytes);
    store.flush().unwrap();
    assert!(store.verify().unwrap().is_clean());
}

pub fn a_failed_closure_publishes_nothing(b: Arc<dyn Backend>) {
    let store = open(b.clone(), StoreOptions::default());
    let key = Key::new("refused");
    let err = store
        .save_async(&key, SaveInfo::checkpoint(), small_frames(), |w| {
            w.add_tensor("w", &[50_000], &[1.0f32; 50_000])?;
            Err(Error::InvalidArgument("the caller changed its mind".into()))
        })
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("changed its mind")), "{err}");
    // A duplicate chunk name is refused at once, while staging.
    let err = store
        .save_async(&key, SaveInfo::checkpoint(), small_frames(), |w| {
            w.add_bytes("x", b"1")?;
            w.add_bytes("x", b"2")
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    store.flush().unwrap();
    assert!(store.entries(&key).unwrap().is_empty());
    let data: Vec<String> =
        b.list("store/entries/").unwrap().into_iter().map(|m| m.key).filter(|k| k.ends_with(".data")).collect();
    assert!(data.is_empty(), "a refused save left {data:?}");
    assert!(store.verify().unwrap().is_clean());
}

pub fn background_failures_reach_the_handle_or_the_next_save(b: Arc<dyn Backend>) {
    let faulty = Arc::new(FaultBackend::new(b.clone()));
    let store = open(faulty.clone(), StoreOptions::default());
    let key = Key::new("failing");
    let save = |v: f32| {
        store.save_async(&key, SaveInfo::checkpoint(), WriterOptions::default(), |w| {
            w.add_tensor("w", &[4096], &[v; 4096])
        })
    };
    // The data upload fails in the background: the handle says so.
    faulty.fail_puts_after(2000);
    let err = match save(1.0) {
        Ok(h) => h.wait().unwrap_err(),
        Err(e) => e,
    };
    assert!(cairn::error_chain(&err).contains("injected"), "{err}");
    // Dropped without waiting: flush returns the failure, once.
    drop(save(2.0).unwrap());
    let err = store.flush().unwrap_err();
    assert!(cairn::error_chain(&err).contains("injected"), "{err}");
    store.flush().unwrap();
    // Dropped again: the next save returns it, and the one after works.
    drop(save(3.0).unwrap());
    // Let the failing save finish without flush collecting its failure.
    while !faulty_done(&store) {
        std::thread::sleep(Duration::from_millis(5));
    }
    faulty.clear();
    let next = store.save_bytes(&key, crate::suite::ckpt(6.0), SaveInfo::checkpoint()).unwrap_err();
    assert!(cairn::error_chain(&next).contains("injected"), "{next}");
    let ok = save(7.0).unwrap().wait().unwrap();
    let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(found.info.id, ok.id);
    store.flush().unwrap();
    // Nothing partial: every entry left reads whole.
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Whether the store has no save in flight, asked without collecting
/// failures: a save with a slot limit of one waits for it.
fn faulty_done(store: &Store) -> bool {
    store.saves_in_flight() == 0
}

pub fn saves_in_flight_are_bounded_and_dropping_the_store_waits(b: Arc<dyn Backend>) {
    let slow: Arc<dyn Backend> = Arc::new(LatencyBackend::new(b.clone(), Duration::from_millis(15)));
    let store = open(slow, StoreOptions::default().max_saves_in_flight(1));
    let key = Key::new("bounded");
    let save = |v: f32| {
        store
            .save_async(&key, SaveInfo::checkpoint(), WriterOptions::default(), |w| w.add_tensor("w", &[64], &[v; 64]))
            .unwrap()
    };
    let first = save(1.0);
    let second = save(2.0);
    // The second waited for the first's slot.
    assert!(second.stats().waited_for_slot > Duration::from_millis(10), "{:?}", second.stats());
    assert!(first.is_finished());
    let third = save(3.0);
    drop(store);
    // Dropping the store waited for the save in flight.
    assert!(third.is_finished());
    let ids: Vec<String> = [first, second, third].into_iter().map(|h| h.wait().unwrap().id).collect();
    let store = open(b, StoreOptions::default());
    let got: Vec<String> = store.entries(&key).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids);
}

pub fn staging_beyond_its_budget_blocks_for_the_rest(b: Arc<dyn Backend>) {
    // Four frames of staging for 64 frames of slow-to-encode state.
    let store = open(b, StoreOptions::default().stage_bytes(64 << 10));
    let key = Key::new("budget");
    let state: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let opts = small_frames().compression(Compression::Zstd(19));
    let h = store
        .save_async(&key, SaveInfo::checkpoint(), opts, |w| w.add_chunk("s", &cairn::ChunkSpec::bytes(), &state))
        .unwrap();
    let stats = h.stats();
    assert!(stats.waited_for_memory > Duration::ZERO, "{stats:?}");
    assert_eq!(stats.staged_bytes, 1 << 20);
    let e = h.wait().unwrap();
    let found = store.lookup(&key, &Select::Id(e.id)).unwrap().unwrap();
    assert_eq!(found.checkpoint.read("s").unwrap(), state);
}

#[macro_export]
macro_rules! store_async_tests {
    ($make:expr) => {
        $crate::store_async_tests!(@each $make;
            async_saves_stage_the_state_then_write_it,
            a_failed_closure_publishes_nothing,
            background_failures_reach_the_handle_or_the_next_save,
            saves_in_flight_are_bounded_and_dropping_the_store_waits,
            staging_beyond_its_budget_blocks_for_the_rest
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let Some((b, _guard)) = $make() else { return };
                suite_async::$name(b);
            }
        )*
    };
}
