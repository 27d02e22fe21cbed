//! Shared frames in the store (docs/STORE.md, "Shared frames"), on memory and local
//! disk: a save stores only the frames the store does not hold, entries
//! read back whole and verify, and a damaged shared frame is damage of the
//! entries that name it, never data.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::sync::Arc;

use cairn::backend::{Backend, BackendExt, LocalBackend, MemoryBackend, PutMode, PutResult};
use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
use cairn::{Checkpoint, WriterOptions};

const FRAME: u32 = 256 << 10;
const N: usize = 1 << 18; // 1 MiB of f32: four frames

fn weights(seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

fn stored_bytes(b: &dyn Backend) -> u64 {
    b.list("").unwrap().iter().map(|m| m.size).sum()
}

fn save(store: &Store, key: &Key, step: u64, tensors: &[Vec<f32>]) -> cairn::store::EntryInfo {
    store
        .save_with(key, SaveInfo::checkpoint().iteration(step), WriterOptions::default().frame_size(FRAME), |w| {
            for (i, t) in tensors.iter().enumerate() {
                w.add_tensor(&format!("layer{i}"), &[N as u64], t)?;
            }
            w.add_json("config", &serde_json::json!({"step": step}))
        })
        .unwrap()
}

fn check_backend(backend: Arc<dyn Backend>) {
    let store = Store::open(backend.clone(), "", StoreOptions::default().share_frames(true)).unwrap();
    let key = Key::new("fine-tune");
    let state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    let empty = stored_bytes(backend.as_ref());
    let a = save(&store, &key, 1, &state);
    let full = stored_bytes(backend.as_ref()) - empty;
    assert!(full >= 4 * N as u64 * 4, "a first save stores everything: {full}");

    // One tensor of four changes: the save stores about that tensor.
    let mut next = state.clone();
    next[3] = weights(99);
    let before = stored_bytes(backend.as_ref());
    let b = save(&store, &key, 2, &next);
    let added = stored_bytes(backend.as_ref()) - before;
    assert!(added < full / 3, "the second save added {added} bytes of a full {full}");
    // The entries say what they added, and it is what the store grew by
    // (the save's lease and index writes aside).
    assert!(b.added_bytes <= added && added - b.added_bytes < 64 << 10, "{} recorded, {added} grown", b.added_bytes);
    assert!(a.added_bytes > b.bytes / 2 && b.added_bytes < b.bytes / 3, "{a:?} {b:?}");
    let listed = store.entries(&key).unwrap();
    assert_eq!(listed.iter().map(|e| e.added_bytes).collect::<Vec<_>>(), [a.added_bytes, b.added_bytes]);

    // Another key with the same frozen tensors shares them too.
    let other = Key::new("another-run");
    let before = stored_bytes(backend.as_ref());
    save(&store, &other, 1, &state);
    let added_other = stored_bytes(backend.as_ref()) - before;
    assert!(added_other < full / 20, "identical frames of another key: {added_other} bytes");

    // Both entries read back whole, with the bytes their saves recorded.
    for (e, want) in [(&a, &state), (&b, &next)] {
        let found = store.lookup(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
        for (i, t) in want.iter().enumerate() {
            assert_eq!(&found.checkpoint.read_tensor::<f32>(&format!("layer{i}")).unwrap(), t);
        }
        let (info, bytes) = store.read(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
        assert_eq!(bytes.len() as u64, info.bytes);
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), info.digest);
        // The bytes are an ordinary checkpoint.
        let plain = Checkpoint::from_bytes(bytes.to_vec()).unwrap();
        assert!(plain.verify().unwrap().is_ok());
        assert_eq!(plain.read_tensor::<f32>("layer3").unwrap(), want[3]);
    }
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");

    // Damaged shared frames: the entries naming them do not read as data.
    let frames = backend.list("frames/").unwrap();
    assert!(frames.len() >= 16, "{} frame objects", frames.len());
    for f in &frames {
        let mut bytes = backend.get(&f.key).unwrap().to_vec();
        bytes[1000] ^= 0x20;
        backend.put(&f.key, bytes.into(), cairn::backend::PutMode::Overwrite).unwrap();
    }
    let fresh = Store::open(backend.clone(), "", StoreOptions::default().share_frames(true)).unwrap();
    let report = fresh.verify().unwrap();
    assert!(!report.is_clean(), "damaged shared frames went unnoticed");
    // Each damaged frame object is named once, and the entries naming
    // them are corrupt.
    let mut named: Vec<String> = frames.iter().map(|f| f.key.clone()).collect();
    named.sort();
    assert_eq!(report.damaged_frames, named);
    assert!(report.corrupt.iter().any(|p| p.id == a.id), "{:?}", report.corrupt);
    let err = fresh.lookup(&key, &Select::Id(a.id.clone())).unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn shared_frames_in_memory() {
    check_backend(Arc::new(MemoryBackend::new()));
}

#[test]
fn shared_frames_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    check_backend(Arc::new(LocalBackend::open(dir.path()).unwrap()));
}

/// The frame collection (docs/STORE.md, "Shared frames"): frames no entry names go
/// to the trash once past the grace and are deleted by a later collection;
/// a trashed frame an entry names still reads and is put back; a lease
/// taken before the trashing keeps the trash as it is.
#[test]
fn collections_reclaim_exactly_the_frames_no_entry_names() {
    use cairn::store::GcOptions;
    use std::time::Duration;
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let opts = || {
        StoreOptions::default()
            .share_frames(true)
            .orphan_grace(Duration::from_secs(3600))
            .lease_ttl(Duration::from_secs(7 * 24 * 3600))
    };
    let store = Store::open(backend.clone(), "", opts()).unwrap();
    let key = Key::new("k");
    let state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    let a = save(&store, &key, 1, &state);
    let mut next = state.clone();
    next[0] = weights(50);
    next[1] = weights(51);
    let b = save(&store, &key, 2, &next);
    let frames = |b: &dyn Backend, p: &str| b.list(p).unwrap().len();
    assert_eq!(frames(backend.as_ref(), "frames/"), 24, "16 frames, 8 of them replaced");

    // Within the grace nothing goes, whatever names it.
    store.remove(&key, Some(&a.id)).unwrap();
    let hour = 3_600_000_000_000u64;
    let now = b.created_at;
    let r = store.gc(&GcOptions::default().at(now + hour / 2)).unwrap();
    assert_eq!((r.frames_trashed, frames(backend.as_ref(), "frames/")), (0, 24));

    // Past it, the eight frames only `a` named go to the trash; `b` reads.
    let r = store.gc(&GcOptions::default().at(now + 2 * hour)).unwrap();
    assert_eq!(r.frames_trashed, 8, "{r:?}");
    assert_eq!((frames(backend.as_ref(), "frames/"), frames(backend.as_ref(), "trash/frames/")), (16, 8));
    let found = store.lookup(&key, &Select::Id(b.id.clone())).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("layer0").unwrap(), next[0]);

    // A frame `b` names, trashed under it (as a collection racing a save
    // that found it does): `b` still reads, and the next collection puts
    // it back rather than deleting it. A lease taken before the trashing
    // keeps the trash as it is until it goes.
    let victim = backend.list("frames/").unwrap()[0].key.clone();
    let lease = store.lease(&key, &b.id).unwrap();
    let trashed = format!("trash/{victim}");
    backend.copy(&victim, &trashed).unwrap();
    backend.delete(&victim).unwrap();
    let fresh = Store::open(backend.clone(), "", opts()).unwrap();
    let found = fresh.lookup(&key, &Select::Id(b.id.clone())).unwrap().unwrap();
    for (i, t) in next.iter().enumerate() {
        assert_eq!(&found.checkpoint.read_tensor::<f32>(&format!("layer{i}")).unwrap(), t);
    }
    // While the lease lives the trash stays as it is: the one frame was
    // trashed after the lease was taken, the eight too shortly before it
    // to tell (`trash_taken_long_before_a_lease_goes` has the other side).
    let r = store.gc(&GcOptions::default().at(now + 4 * hour)).unwrap();
    assert_eq!((r.frames_deleted, r.frames_restored), (0, 0), "{r:?}");
    assert!(backend.exists(&trashed).unwrap(), "a lease older than the trashing is live");
    assert_eq!(frames(backend.as_ref(), "trash/frames/"), 9);
    lease.release().unwrap();
    let r = store.gc(&GcOptions::default().at(now + 4 * hour)).unwrap();
    assert_eq!((r.frames_deleted, r.frames_restored), (8, 1), "{r:?}");
    assert!(backend.exists(&victim).unwrap() && !backend.exists(&trashed).unwrap());
    assert_eq!(frames(backend.as_ref(), "trash/frames/"), 0);
    assert_eq!(frames(backend.as_ref(), "frames/"), 16);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A backend whose modification times read `early` before the truth: S3
/// gives them in whole seconds, so a time can read up to a second early;
/// a store's clock can lag a saver's.
#[derive(Debug)]
struct EarlyTimes {
    inner: Arc<dyn Backend>,
    early: std::time::Duration,
}

impl EarlyTimes {
    fn shift(&self, mut m: cairn::backend::ObjectMeta) -> cairn::backend::ObjectMeta {
        m.modified = m.modified.map(|t| t - self.early);
        m
    }
}

impl Backend for EarlyTimes {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn put(&self, key: &str, data: bytes::Bytes, mode: PutMode) -> cairn::Result<PutResult> {
        self.inner.put(key, data, mode)
    }
    fn writer(&self, key: &str, mode: PutMode) -> cairn::Result<Box<dyn cairn::backend::ObjectWriter>> {
        self.inner.writer(key, mode)
    }
    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> cairn::Result<bytes::Bytes> {
        self.inner.get_range(key, range)
    }
    fn get(&self, key: &str) -> cairn::Result<bytes::Bytes> {
        self.inner.get(key)
    }
    fn get_versioned(&self, key: &str) -> cairn::Result<cairn::backend::Versioned> {
        self.inner.get_versioned(key)
    }
    fn head(&self, key: &str) -> cairn::Result<cairn::backend::ObjectMeta> {
        self.inner.head(key).map(|m| self.shift(m))
    }
    fn list(&self, prefix: &str) -> cairn::Result<Vec<cairn::backend::ObjectMeta>> {
        Ok(self.inner.list(prefix)?.into_iter().map(|m| self.shift(m)).collect())
    }
    fn delete(&self, key: &str) -> cairn::Result<()> {
        self.inner.delete(key)
    }
    fn copy(&self, from: &str, to: &str) -> cairn::Result<()> {
        self.inner.copy(from, to)
    }
}

/// Trashes the frames only a removed entry named, then takes a lease, on a
/// backend whose times read `early`; returns the store, the backend and
/// when the entry was saved.
fn trash_then_lease(early: std::time::Duration) -> (Store, Arc<dyn Backend>, cairn::store::Lease, u64) {
    use cairn::store::GcOptions;
    use std::time::Duration;
    let backend: Arc<dyn Backend> = Arc::new(EarlyTimes { inner: Arc::new(MemoryBackend::new()), early });
    let opts =
        StoreOptions::default().orphan_grace(Duration::from_secs(3600)).lease_ttl(Duration::from_secs(7 * 24 * 3600));
    let store = Store::open(backend.clone(), "", opts).unwrap();
    let key = Key::new("k");
    let a = save(&store, &key, 1, &[weights(1), weights(2)]);
    let b = save(&store, &key, 2, &[weights(3), weights(4)]);
    store.remove(&key, Some(&a.id)).unwrap();
    let hour = 3_600_000_000_000u64;
    let r = store.gc(&GcOptions::default().at(a.created_at + 2 * hour)).unwrap();
    assert_eq!(r.frames_trashed, 8, "{r:?}");
    let lease = store.lease(&key, &b.id).unwrap();
    (store, backend, lease, a.created_at)
}

/// A lease taken just after a trashing whose time reads a second early (as
/// S3's whole seconds can make it) still keeps the trash: a save that
/// found a frame the collection then trashed may hold such a lease, and
/// its manifest, not yet written, names the frame.
#[test]
fn trash_times_in_whole_seconds_keep_the_trash_for_a_lease_taken_in_the_same_second() {
    use cairn::store::GcOptions;
    let (store, backend, lease, saved) = trash_then_lease(std::time::Duration::from_millis(999));
    let r = store.gc(&GcOptions::default().at(saved + 4 * 3_600_000_000_000)).unwrap();
    assert_eq!((r.frames_deleted, r.frames_restored), (0, 0), "a lease as old as the trashing is live: {r:?}");
    assert_eq!(backend.list("trash/frames/").unwrap().len(), 8);
    lease.release().unwrap();
    let r = store.gc(&GcOptions::default().at(saved + 4 * 3_600_000_000_000)).unwrap();
    assert_eq!((r.frames_deleted, r.frames_restored), (8, 0), "{r:?}");
}

/// A lease taken long after the trashing does not hold the trash.
#[test]
fn trash_taken_long_before_a_lease_goes() {
    use cairn::store::GcOptions;
    let (store, backend, lease, saved) = trash_then_lease(std::time::Duration::from_secs(60));
    let r = store.gc(&GcOptions::default().at(saved + 4 * 3_600_000_000_000)).unwrap();
    assert_eq!((r.frames_deleted, r.frames_restored), (8, 0), "{r:?}");
    assert!(backend.list("trash/frames/").unwrap().is_empty());
    assert!(store.verify().unwrap().is_clean());
    lease.release().unwrap();
}

/// Sparse row updates cost about their rows: a frame that changed a little
/// since the key's latest entry is stored as an XOR against that entry's
/// whole frame, and later saves take their XORs against the same whole
/// frames (never against an XOR).
#[test]
fn sparse_row_updates_cost_about_their_rows() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let store = Store::open(backend.clone(), "", StoreOptions::default().share_frames(true)).unwrap();
    let key = Key::new("embeddings");
    const ROWS: usize = 8192; // rows of 128 f32 (512 bytes): 4 MiB
    let mut table: Vec<f32> = (0..ROWS as u32 * 128).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as f32).collect();
    let save = |t: &[f32], step: u64| {
        store
            .save_with(&key, SaveInfo::checkpoint().iteration(step), WriterOptions::default().frame_size(FRAME), |w| {
                w.add_tensor("embedding", &[ROWS as u64, 128], t)
            })
            .unwrap()
    };
    let empty = stored_bytes(backend.as_ref());
    save(&table, 1);
    let full = stored_bytes(backend.as_ref()) - empty;
    let mut x = 12345u32;
    for step in 2..5u64 {
        // 1 % of the rows, at random.
        for _ in 0..ROWS / 100 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let row = x as usize % ROWS;
            for v in &mut table[row * 128..row * 128 + 128] {
                *v += 1.0;
            }
        }
        let before = stored_bytes(backend.as_ref());
        let e = save(&table, step);
        let added = stored_bytes(backend.as_ref()) - before;
        eprintln!("step {step}: {added} bytes added, {:.4} of a full save", added as f64 / full as f64);
        // Step 2 changed 1 % of the rows, step 4 about 3 % against the
        // first entry's frames.
        assert!(added * 100 < full * 5 * (step - 1), "step {step}: {added} bytes added, a full save is {full}");
        let found = store.lookup(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
        assert_eq!(found.checkpoint.read_tensor::<f32>("embedding").unwrap(), table);
    }
    assert!(store.verify().unwrap().is_clean());
}

/// A raw tensor of an entry whose frames are shared frame objects (some
/// of them XOR pieces) is still a zero-copy `tensor` on local disk: the
/// frame objects mapped back to back, the rest copied in.
#[test]
fn raw_tensors_view_their_frame_objects() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path()).unwrap());
    let store = Store::open(backend, "", StoreOptions::default().share_frames(true)).unwrap();
    let key = Key::new("view");
    let opts = WriterOptions::default().frame_size(FRAME).compression(cairn::Compression::None);
    let save = |t: &[Vec<f32>], step: u64| {
        store
            .save_with(&key, SaveInfo::checkpoint().iteration(step), opts.clone(), |w| {
                w.add_tensor("small", &[3], &[1.0f32, 2.0, 3.0])?;
                for (i, t) in t.iter().enumerate() {
                    w.add_tensor(&format!("layer{i}"), &[t.len() as u64], t)?;
                }
                Ok(())
            })
            .unwrap()
    };
    // A tensor of four and a half frames: its last frame is inline.
    let mut state = vec![weights(1), [weights(2), weights(3)[..N / 8].to_vec()].concat()];
    save(&state, 1);
    // A few values change: those frames become XOR pieces.
    state[0][10] += 1.0;
    state[1][N + 5] -= 1.0;
    let e = save(&state, 2);
    assert!(e.added_bytes < e.bytes / 4, "{e:?}");
    let found = store.lookup(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
    for (i, t) in state.iter().enumerate() {
        let view = found.checkpoint.tensor::<f32>(&format!("layer{i}")).unwrap();
        assert_eq!(view, &t[..], "layer{i}");
        // Asked again, the same view.
        assert_eq!(found.checkpoint.tensor::<f32>(&format!("layer{i}")).unwrap().as_ptr(), view.as_ptr());
    }
    assert_eq!(found.checkpoint.tensor::<f32>("small").unwrap(), &[1.0, 2.0, 3.0]);
}

/// `save_file` and `save_bytes` share frames as a save does: a file whose
/// frames the store holds adds about its header and index, and the entry
/// gives back the very bytes of the file.
#[test]
fn saved_files_and_bytes_share_frames() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path().join("store")).unwrap());
    let store = Store::open(backend.clone(), "", StoreOptions::default().share_frames(true)).unwrap();
    let state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    let first = save(&store, &Key::new("trained"), 1, &state);
    let file = dir.path().join("model.cairn");
    let found = store.lookup(&Key::new("trained"), &Select::Id(first.id.clone())).unwrap().unwrap();
    found.checkpoint.copy_to(&mut std::fs::File::create(&file).unwrap(), "model").unwrap();
    let bytes = std::fs::read(&file).unwrap();

    let before = stored_bytes(backend.as_ref());
    let put = store.save_file(&Key::new("imported"), &file, SaveInfo::checkpoint()).unwrap();
    let added = stored_bytes(backend.as_ref()) - before;
    assert_eq!(put.bytes, bytes.len() as u64);
    assert!(added < put.bytes / 10, "save_file added {added} of {}", put.bytes);
    // What the entry says it added is what the store grew by, its info
    // and index writes aside.
    assert!(put.added_bytes <= added && added - put.added_bytes < 4096, "{added}: {put:?}");
    let again = store.save_bytes(&Key::new("copied"), bytes.clone(), SaveInfo::checkpoint()).unwrap();
    assert!(again.added_bytes < again.bytes / 10, "{again:?}");
    for (key, e) in [("imported", &put), ("copied", &again)] {
        let found = store.lookup(&Key::new(key), &Select::Id(e.id.clone())).unwrap().unwrap();
        let mut out = Vec::new();
        found.checkpoint.copy_to(&mut out, key).unwrap();
        assert!(out == bytes, "{key}: the entry's bytes differ from the file's");
        assert_eq!(e.digest, blake3::hash(&bytes).to_hex().to_string());
    }
    assert!(store.verify().unwrap().is_clean());
}

/// `full_every(n)`: of n saves of a key in a row, one stores its changed
/// frames whole, so no XOR's base is older than n entries.
#[test]
fn frames_are_stored_whole_again_every_n_saves() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let store = Store::open(backend, "", StoreOptions::default().full_every(3)).unwrap();
    let key = Key::new("drift");
    let mut state = vec![weights(7)];
    let mut added = Vec::new();
    for step in 1..=7u64 {
        state[0][step as usize * 1000] += 1.0;
        let e = save(&store, &key, step, &state);
        added.push(e.added_bytes);
        let found = store.lookup(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
        assert_eq!(found.checkpoint.read_tensor::<f32>("layer0").unwrap(), state[0]);
    }
    // The changed frame stored whole (a quarter of the tensor), or as a
    // small XOR.
    let big: Vec<bool> = added.iter().map(|a| *a >= u64::from(FRAME)).collect();
    assert_eq!(big, [true, false, false, true, false, false, true], "bytes added per save: {added:?}");
    assert!(store.verify().unwrap().is_clean());
}

/// The byte budget counts stored bytes, each shared frame once: entries
/// that share most of their frames fit many more into the same budget than
/// their logical sizes add up to, and what a collection reports as left is
/// what the store holds once the frames no entry names are gone.
#[test]
fn the_byte_budget_counts_each_shared_frame_once() {
    use cairn::store::GcOptions;
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path()).unwrap());
    let store = Store::open(backend.clone(), "", StoreOptions::default()).unwrap();
    let key = Key::new("budget");
    let mut state = vec![weights(1)];
    let quarter = N / 4; // one frame of the four
    for step in 1..=10u64 {
        // One frame changes wholly (no XOR helps), three stay.
        let fresh = weights(100 + step as u32);
        state[0][..quarter].copy_from_slice(&fresh[..quarter]);
        save(&store, &key, step, &state);
    }
    let logical: u64 = store.entries(&key).unwrap().iter().map(|e| e.bytes).sum();
    let budget = 4 << 20;
    assert!(logical > 2 * budget, "{logical}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let hour = 3_600_000_000_000u64;
    let r = store.gc(&GcOptions::default().max_bytes(budget)).unwrap();
    let left = store.entries(&key).unwrap();
    // Four frames of 256 KiB for the first entry kept, one for each other:
    // about 7 entries in 4 MiB, where logical sizes would allow 3.
    assert!(left.len() >= 6, "{} entries left of 10, {r:?}", left.len());
    assert!(r.bytes <= budget, "{r:?}");
    assert_eq!((r.keys, r.entries), (1, left.len() as u64), "{r:?}");
    // Two collections past the grace reclaim the evicted entries' frames:
    // the store then holds what the report said, give or take its
    // documents (indexes, infos, usage).
    store.gc(&GcOptions::default().at(now + 2 * hour)).unwrap();
    let r2 = store.gc(&GcOptions::default().at(now + 4 * hour)).unwrap();
    let held: u64 = backend
        .list("")
        .unwrap()
        .iter()
        .filter(|m| m.key.starts_with("frames/") || m.key.ends_with(".data"))
        .map(|m| m.size)
        .sum();
    assert_eq!(held, r2.bytes, "{r2:?}");
    for e in &left {
        let found = store.lookup(&key, &Select::Id(e.id.clone())).unwrap().unwrap();
        assert_eq!(found.checkpoint.read_tensor::<f32>("layer0").unwrap().len(), N);
    }
    assert!(store.verify().unwrap().is_clean());
}

/// `verify` reads each shared frame once however many entries name it,
/// and still names every damage a read would refuse: a damaged frame (in
/// every entry naming it), a missing one, damaged inline bytes of a
/// manifest.
#[test]
fn verify_reads_each_shared_frame_once_and_names_what_is_damaged() {
    use cairn::backend::{CountingBackend, PutMode};
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let counting = Arc::new(CountingBackend::new(memory.clone()));
    let store = Store::open(counting.clone(), "", StoreOptions::default()).unwrap();
    let state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    let mut ids = Vec::new();
    for k in 0..10 {
        let key = Key::new(&format!("run{k}"));
        ids.push((key.clone(), save(&store, &key, 1, &state).id));
    }
    let logical = 10 * 4 * N as u64 * 4;
    counting.reset();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let read = counting.traffic().bytes_read;
    // The frames once (4 MiB), the manifests: not ten times the frames.
    assert!(read < logical / 4, "verify read {read} bytes for {logical} logical bytes");

    // A damaged frame is damage of every entry naming it.
    let frames = memory.list("frames/").unwrap();
    let first = &frames[0].key;
    let mut bytes = memory.get(first).unwrap().to_vec();
    bytes[10] ^= 1;
    memory.put(first, bytes.into(), PutMode::Overwrite).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.damaged_frames, std::slice::from_ref(first));
    assert_eq!(report.corrupt.len(), 10, "{report:?}");
    assert!(report.corrupt.iter().all(|p| p.detail.contains("damaged shared frame")), "{report:?}");
    // A missing frame, likewise.
    memory.delete(first).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.corrupt.len(), 10, "{report:?}");
    assert!(report.corrupt.iter().all(|p| p.detail.contains("missing")), "{report:?}");
    let err = store.lookup(&ids[0].0, &Select::Id(ids[0].1.clone())).unwrap_err();
    assert!(err.is_corruption(), "{err}");

    // Damaged inline bytes of one manifest: that entry only.
    let fresh: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let store = Store::open(fresh.clone(), "", StoreOptions::default()).unwrap();
    let a = save(&store, &Key::new("a"), 1, &state);
    save(&store, &Key::new("b"), 1, &state);
    let data = fresh.list("").unwrap().into_iter().find(|m| m.key.ends_with(&format!("{}.data", a.id))).unwrap();
    let mut bytes = fresh.get(&data.key).unwrap().to_vec();
    bytes[20] ^= 1; // inside the checkpoint's header, an inline piece
    fresh.put(&data.key, bytes.into(), PutMode::Overwrite).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(
        report.corrupt.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&a.id),
        "{report:?}"
    );
    assert!(report.damaged_frames.is_empty());
}

/// `repair` quarantines a damaged shared frame once and the entries that
/// name it; a later save of the same bytes writes the frame anew instead
/// of sharing the damaged one, and the next repair puts the entries back.
#[test]
fn repair_quarantines_a_damaged_frame_once() {
    use cairn::backend::PutMode;
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let store = Store::open(memory.clone(), "", StoreOptions::default()).unwrap();
    let state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    for k in 0..3 {
        save(&store, &Key::new(&format!("run{k}")), 1, &state);
    }
    let frames = memory.list("frames/").unwrap();
    let first = frames[0].key.clone();
    let mut bytes = memory.get(&first).unwrap().to_vec();
    bytes[10] ^= 1;
    memory.put(&first, bytes.into(), PutMode::Overwrite).unwrap();
    let rep = store.repair().unwrap();
    assert_eq!(rep.frames_quarantined, std::slice::from_ref(&first));
    assert_eq!(rep.quarantined.len(), 3, "{rep:?}");
    assert!(!memory.exists(&first).unwrap());
    assert!(memory.exists(&format!("quarantine/{first}")).unwrap());
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.quarantined.len(), 3);

    // The same bytes saved again: the frame is written anew, whole.
    let e = save(&store, &Key::new("again"), 1, &state);
    assert!(e.added_bytes >= u64::from(FRAME), "{e:?}");
    assert!(memory.exists(&first).unwrap());
    let found = store.lookup(&Key::new("again"), &Select::Latest).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("layer0").unwrap(), state[0]);
    // Their frame intact again, the quarantined entries go back.
    let rep = store.repair().unwrap();
    assert_eq!(rep.restored.len(), 3, "{rep:?}");
    assert!(store.verify().unwrap().is_clean());
}

/// A save reads no base and asks nothing of the backend for the frames
/// the key's latest entry already names: with one tensor of four changed,
/// it reads only the changed tensor's base frames (to try an XOR), not
/// the whole state (on object storage every frame looked at is a round
/// trip).
#[test]
fn unchanged_frames_cost_no_reads() {
    use cairn::backend::CountingBackend;
    let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
    let backend: Arc<dyn Backend> = counting.clone();
    let store = Store::open(backend.clone(), "", StoreOptions::default()).unwrap();
    let key = Key::new("k");
    let mut state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    save(&store, &key, 1, &state);
    state[2] = weights(99);
    counting.reset();
    let b = save(&store, &key, 2, &state);
    let t = counting.traffic();
    let tensor = (N * 4) as u64;
    assert!(t.bytes_read < tensor + tensor / 2, "read {} bytes for one changed tensor of {tensor}", t.bytes_read);
    assert!(b.added_bytes > tensor && b.added_bytes < tensor + tensor / 4, "{b:?}");
    let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("layer2").unwrap(), state[2]);
}

/// A frame object that cannot be put fails the save (the puts run on
/// worker threads, their errors come back), and nothing is committed.
#[test]
fn a_failed_frame_put_fails_the_save() {
    use cairn::backend::FaultBackend;
    let fault = Arc::new(FaultBackend::new(Arc::new(MemoryBackend::new())));
    let backend: Arc<dyn Backend> = fault.clone();
    let store = Store::open(backend.clone(), "", StoreOptions::default()).unwrap();
    let key = Key::new("k");
    let state: Vec<Vec<f32>> = (0..4).map(weights).collect();
    fault.fail_puts_after(u64::from(FRAME) / 2);
    let err = store
        .save_with(&key, SaveInfo::checkpoint(), WriterOptions::default().frame_size(FRAME), |w| {
            for (i, t) in state.iter().enumerate() {
                w.add_tensor(&format!("layer{i}"), &[N as u64], t)?;
            }
            Ok(())
        })
        .unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(chain.contains("injected fault") && chain.contains("frames/"), "{chain}");
    fault.clear();
    assert!(store.lookup(&key, &Select::Latest).unwrap().is_none());
    assert!(store.verify().unwrap().is_clean());
    save(&store, &key, 1, &state);
    assert_eq!(
        store.lookup(&key, &Select::Latest).unwrap().unwrap().checkpoint.read_tensor::<f32>("layer3").unwrap(),
        state[3]
    );
}

/// A save whose every tensor changed (a training step) reads the base of
/// one frame per chunk to try an XOR, not every frame's: after a frame
/// changed too much, the chunk's next frames are stored whole at once.
#[test]
fn a_state_that_changed_everywhere_reads_few_bases() {
    use cairn::backend::CountingBackend;
    let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
    let backend: Arc<dyn Backend> = counting.clone();
    let store = Store::open(backend.clone(), "", StoreOptions::default()).unwrap();
    let key = Key::new("k");
    save(&store, &key, 1, &(0..4).map(weights).collect::<Vec<_>>());
    counting.reset();
    let b = save(&store, &key, 2, &(10..14).map(weights).collect::<Vec<_>>());
    let t = counting.traffic();
    // Four chunks of four frames: one base read per chunk, and the index
    // and the previous manifest.
    let frame = u64::from(FRAME);
    assert!(t.bytes_read < 4 * frame + frame / 2, "read {} bytes", t.bytes_read);
    assert!(b.added_bytes >= 16 * frame, "{b:?}");
    let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("layer1").unwrap(), weights(11));
}
