//! Concurrency of the store with shared frames (docs/STORE.md, "Shared frames"), run
//! on every backend: savers whose checkpoints share most of their frames
//! (across saves and keys), with XOR pieces against each key's latest
//! entry, race collections that trash and delete frames under a zero
//! orphan grace; saves and collections coordinate only through the
//! backend's conditional puts. Every acknowledged entry reads back whole,
//! the store verifies clean, and the frames no entry names are reclaimed.

#[path = "../shared/values.rs"]
mod values;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use values::values;

use bytes::Bytes;
use cairn::backend::Backend;
use cairn::store::{EntryInfo, GcOptions, GcReport, Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::{CheckpointWriter, WriterOptions};

/// Frames of 64 KiB, the smallest the store shares: every frame of these
/// checkpoints is shared, and the S3 test server copes.
const FRAME: u32 = 64 << 10;
const PER_FRAME: usize = FRAME as usize / 4;
/// No saver starts a save after this long (once it has saved a few), so
/// that a slow backend (the S3 test server takes a second or two a save
/// under this load) does fewer saves rather than taking minutes.
const BUDGET: Duration = Duration::from_secs(6);

/// Four frames every save of every key holds.
fn frozen() -> &'static [f32] {
    static FROZEN: OnceLock<Vec<f32>> = OnceLock::new();
    FROZEN.get_or_init(|| values(1, 4 * PER_FRAME))
}

/// The tensors of save `step` (unique per saver and save) to key number
/// `key`: the frozen frames; a head of one frame a few values of which
/// differ from every other head of the key (an XOR piece against the
/// key's latest entry); one frame that cycles through three contents per
/// key, so that a frame retention left unreferenced is wanted again by a
/// later save (found, trashed or gone); and a small tensor of its own.
fn tensors(key: usize, step: usize) -> Vec<(&'static str, Vec<f32>)> {
    let mut head = values(100 + key as u32, PER_FRAME);
    for j in 0..4 {
        head[(step * 7919 + j * 104_729) % PER_FRAME] += step as f32 + 1.0;
    }
    vec![
        ("frozen", frozen().to_vec()),
        ("head", head),
        ("cycle", values(200 + 10 * key as u32 + (step % 3) as u32, PER_FRAME)),
        ("own", vec![step as f32; 16]),
    ]
}

/// Saves `tensors(key, step)`: streamed for even steps, as a finished
/// checkpoint's bytes (copied in frame by frame) for odd ones.
fn save(store: &Store, key: usize, step: usize) -> EntryInfo {
    let k = Key::new(&format!("shared-{key}"));
    let info = SaveInfo::checkpoint().iteration(step as u64);
    let opts = WriterOptions::default().frame_size(FRAME);
    let t = tensors(key, step);
    if step.is_multiple_of(2) {
        store
            .save_with(&k, info, opts, |w| {
                for (name, v) in &t {
                    w.add_tensor(name, &[v.len() as u64], v)?;
                }
                Ok(())
            })
            .unwrap()
    } else {
        let mut w = CheckpointWriter::in_memory(opts).unwrap();
        for (name, v) in &t {
            w.add_tensor(name, &[v.len() as u64], v).unwrap();
        }
        store.save_bytes(&k, Bytes::from(w.finish().unwrap()), info).unwrap()
    }
}

/// Whether entry `id` of key number `key` holds `tensors(key, step)`.
fn check_entry(store: &Store, key: usize, step: usize, id: &str) {
    let k = Key::new(&format!("shared-{key}"));
    let found = store.lookup(&k, &Select::Id(id.to_string())).unwrap();
    let found = found.unwrap_or_else(|| panic!("acknowledged {id} of {k:?} lost"));
    for (name, v) in tensors(key, step) {
        assert!(found.checkpoint.read_tensor::<f32>(name).unwrap() == v, "{id} of {k:?}: {name} differs");
    }
}

/// A collector that runs `gc` until told to stop (at least once), and the
/// reports of its passes.
struct Collector {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<GcReport>>,
}

impl Collector {
    fn start(store: &Arc<Store>) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reports = Vec::new();
                while !done.load(Ordering::Relaxed) || reports.is_empty() {
                    reports.push(store.gc(&GcOptions::default()).unwrap());
                }
                reports
            })
        };
        Collector { done, thread }
    }

    fn stop(self) -> Vec<GcReport> {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Runs `savers` threads of up to `per` saves each (fewer once the
/// budget is spent, at least `min` each); saver `t`'s save `i` goes to
/// key `(t + i) % keys` with step `t * per + i`. Returns (key, step,
/// entry) of every save.
fn run_savers(
    store: &Arc<Store>,
    savers: usize,
    per: usize,
    min: usize,
    keys: usize,
) -> Vec<(usize, usize, EntryInfo)> {
    let started = Instant::now();
    let handles: Vec<_> = (0..savers)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut saved = Vec::new();
                for i in 0..per {
                    if i >= min && started.elapsed() > BUDGET {
                        break;
                    }
                    let (key, step) = ((t + i) % keys, t * per + i);
                    saved.push((key, step, save(&store, key, step)));
                }
                saved
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

fn frame_objects(b: &Arc<dyn Backend>, under: &str) -> usize {
    b.list(&format!("store/{under}")).unwrap().len()
}

/// Eight savers sharing frames across saves and keys, while a collector
/// with a zero orphan grace loops: it trashes the fresh frames of saves
/// in flight (no manifest names them yet), which the saves' leases keep
/// from deletion until their manifests name them and a later pass puts
/// them back. Nothing is lost, and what the store holds is a fraction of
/// what was saved.
pub fn concurrent_savers_sharing_frames_lose_nothing(b: Arc<dyn Backend>) {
    let store =
        Arc::new(Store::open(b.clone(), "store", StoreOptions::default().orphan_grace(Duration::ZERO)).unwrap());
    let collector = Collector::start(&store);
    let saved = run_savers(&store, 8, 12, 3, 3);
    let passes = collector.stop();
    let trashed: usize = passes.iter().map(|r| r.frames_trashed).sum();
    let restored: usize = passes.iter().map(|r| r.frames_restored).sum();
    eprintln!("{} saves; {} collections trashed {trashed} frames, put back {restored}", saved.len(), passes.len());

    let mut want: Vec<String> = saved.iter().map(|(_, _, e)| e.id.clone()).collect();
    want.sort();
    let mut listed: Vec<String> =
        store.list().unwrap().into_iter().flat_map(|(_, v)| v.into_iter().map(|e| e.id)).collect();
    listed.sort();
    assert_eq!(listed, want);
    // Sharing happened: the frozen frames are stored once, most heads are
    // small XOR pieces.
    let logical: u64 = saved.iter().map(|(_, _, e)| e.bytes).sum();
    let added: u64 = saved.iter().map(|(_, _, e)| e.added_bytes).sum();
    assert!(added < logical / 3, "saves added {added} bytes of {logical}");
    assert!(frame_objects(&b, "frames/") >= 4, "no frame objects");
    // Once no save is in flight, what was trashed comes back or goes: two
    // collections empty the trash. (Verify reads every entry whole, and
    // would name a frame a race had lost.)
    store.gc(&GcOptions::default()).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    assert_eq!(frame_objects(&b, "trash/"), 0);
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{report:?}");
    assert_eq!(report.entries, saved.len() as u64);
    for (key, step, e) in &saved {
        check_entry(&store, *key, *step, &e.id);
    }
}

/// Savers with retention (each key keeps its two newest entries) racing a
/// collector under a zero orphan grace: removals leave frames
/// unreferenced, collections trash and delete them while later saves want
/// the same frames again. The store stays clean, every entry left reads
/// whole, the newest save of each key survives, and once every entry is
/// removed two collections leave no frame behind.
pub fn shared_saves_with_retention_racing_collections_stay_clean(b: Arc<dyn Backend>) {
    let opts = StoreOptions::default().retention(Retention::default().keep_last(2)).orphan_grace(Duration::ZERO);
    let store = Arc::new(Store::open(b.clone(), "store", opts).unwrap());
    let collector = Collector::start(&store);
    let saved = run_savers(&store, 4, 15, 4, 2);
    let passes = collector.stop();
    let trashed: usize = passes.iter().map(|r| r.frames_trashed).sum();
    let deleted: usize = passes.iter().map(|r| r.frames_deleted).sum();
    eprintln!("{} saves; {} collections trashed {trashed} frames, deleted {deleted}", saved.len(), passes.len());
    assert!(trashed > 0, "no collection trashed a frame: {passes:?}");

    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    store.gc(&GcOptions::default()).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{report:?}");
    assert_eq!(frame_objects(&b, "trash/"), 0);
    let by_id: HashMap<&str, (usize, usize)> =
        saved.iter().map(|(key, step, e)| (e.id.as_str(), (*key, *step))).collect();
    for key in 0..2 {
        let k = Key::new(&format!("shared-{key}"));
        let ids: Vec<String> = store.entries(&k).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2, "{k:?}: {ids:?}");
        let newest = saved.iter().filter(|(kk, _, _)| *kk == key).map(|(_, _, e)| &e.id).max().unwrap();
        assert!(ids.contains(newest), "{k:?}: newest {newest} lost, have {ids:?}");
        for id in &ids {
            let (_, step) = by_id[id.as_str()];
            check_entry(&store, key, step, id);
        }
    }
    // Sharing happened, and a removed entry's frames went.
    let logical: u64 = saved.iter().map(|(_, _, e)| e.bytes).sum();
    let added: u64 = saved.iter().map(|(_, _, e)| e.added_bytes).sum();
    assert!(added < logical / 2, "saves added {added} bytes of {logical}");
    // Four entries left: the frozen frames, a whole head per key at most
    // two, and two cycling frames per key (the third is reclaimed).
    let frames = frame_objects(&b, "frames/");
    assert!((4..=4 + 2 * 2 + 2 * 2).contains(&frames), "{frames} frame objects for four entries");
    for key in 0..2 {
        store.remove(&Key::new(&format!("shared-{key}")), None).unwrap();
    }
    store.gc(&GcOptions::default()).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    assert_eq!((frame_objects(&b, "frames/"), frame_objects(&b, "trash/")), (0, 0));
    assert!(store.verify().unwrap().is_clean());
}

#[macro_export]
macro_rules! store_shared_tests {
    ($make:expr) => {
        $crate::store_shared_tests!(@each $make;
            concurrent_savers_sharing_frames_lose_nothing,
            shared_saves_with_retention_racing_collections_stay_clean
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let Some((b, _guard)) = $make() else { return };
                suite_shared::$name(b);
            }
        )*
    };
}
