//! Crash safety of the store on the simulated file system: a crash after
//! every I/O operation of saves (whole, streamed and in the background,
//! with retention) and a collection, under
//! every crash plan, leaves a store that verifies clean, loses no
//! acknowledged entry that retention keeps, and is clean of leftovers after
//! one collection. The same for saves that share frames (frame objects, an
//! XOR piece, a frame put back from the trash) and collections that trash
//! and delete frames no entry names: every acknowledged entry reads whole,
//! and two collections leave no leftover frame.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "shared/values.rs"]
mod values;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use values::values;

use bytes::Bytes;
use cairn::backend::{Backend, Durability, LocalBackend, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use cairn::io::{CrashPlan, SimFs};
use cairn::store::{GcOptions, GcReport, Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::{CheckpointWriter, WriterOptions};

fn ckpt(v: f32) -> Bytes {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    w.add_tensor("w", &[32], &[v; 32]).unwrap();
    Bytes::from(w.finish().unwrap())
}

fn open(sim: &SimFs) -> cairn::Result<Store> {
    let backend = LocalBackend::open_in(sim.shared(), "root")?;
    // The simulated crash leaves this (live) process as the holder of the
    // dead saves' leases: zero-length leases stand for their expiry.
    let opts = StoreOptions::default()
        .retention(Retention::default().keep_last(2))
        .orphan_grace(Duration::ZERO)
        .lease_ttl(Duration::ZERO);
    Store::open(Arc::new(backend), "", opts)
}

/// Saves three entries (retention keeps two), then collects down to one;
/// stops at the first error, as a crashed process would. Returns the ids
/// acknowledged and whether the collection finished.
fn workload(sim: &SimFs) -> (Vec<String>, bool) {
    let mut acked = Vec::new();
    let mut collected = false;
    let _ = (|| -> cairn::Result<()> {
        let store = open(sim)?;
        let key = Key::new("k");
        for i in 0..3 {
            let info = SaveInfo::checkpoint().iteration(i);
            let opts = WriterOptions::default().frame_size(4096);
            let saved = if i == 1 {
                // Streamed into the backend frame by frame (several frames).
                store.save_with(&key, info, opts, |w| w.add_tensor("w", &[3000], &[i as f32; 3000]))?
            } else if i == 2 {
                // Staged, then written by a background thread.
                store.save_async(&key, info, opts, |w| w.add_tensor("w", &[3000], &[i as f32; 3000]))?.wait()?
            } else {
                store.save_bytes(&key, ckpt(i as f32), info)?
            };
            acked.push(saved.id);
        }
        store.gc(&GcOptions::default().retention(Retention::default().keep_last(1)))?;
        collected = true;
        Ok(())
    })();
    (acked, collected)
}

fn check(sim: &SimFs, acked: &[String], collected: bool, context: &str) {
    let store = open(sim).unwrap();
    let key = Key::new("k");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{context}: {report:?}");
    // The newest acknowledged entry survives everything the workload does.
    if let Some(newest) = acked.last() {
        // Before anything repairs the store: an index that a crash left
        // behind its infos (index writes are not synced) still leads a
        // lookup to every acknowledged entry.
        let found = store.lookup(&key, &Select::Latest).unwrap().expect("an entry");
        assert!(found.info.id >= *newest, "{context}: latest {} is older than acknowledged {newest}", found.info.id);
        let ids: Vec<String> = store.entries(&key).unwrap().into_iter().map(|e| e.id).collect();
        let adopted_later = store.gc(&GcOptions::default()).unwrap();
        let ids_after: Vec<String> = store.entries(&key).unwrap().into_iter().map(|e| e.id).collect();
        assert!(
            ids.contains(newest) || ids_after.contains(newest),
            "{context}: acknowledged {newest} lost; index {ids:?}, after gc {ids_after:?}, {adopted_later:?}"
        );
        let found = store.lookup(&key, &Select::Latest).unwrap().expect("an entry");
        assert!(found.info.id >= *newest, "{context}: latest {} is older than acknowledged {newest}", found.info.id);
        if collected {
            assert_eq!(ids_after.len(), 1, "{context}: the collection's removals came back");
        }
    }
    // One collection clears every leftover.
    store.gc(&GcOptions::default()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{context}: {report:?}");
    // And the store takes saves again.
    store.save_bytes(&key, ckpt(9.0), SaveInfo::checkpoint()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{context}: after a new save: {report:?}");
}

#[test]
fn crash_at_every_operation_of_saves_and_gc() {
    let total = {
        let sim = SimFs::new();
        let (acked, collected) = workload(&sim);
        assert!(acked.len() == 3 && collected, "the workload fails without a crash");
        sim.op_count()
    };
    let mut runs = 0;
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            sim.crash_after(n);
            let (acked, collected) = workload(&sim);
            sim.crash(&plan);
            check(&sim, &acked, collected, &format!("crash after op {n} of {total}, plan {v} {plan:?}"));
            runs += 1;
        }
    }
    assert!(runs > 200, "only {runs} crash runs");
}

/// Frames of 64 KiB, the smallest a store shares: small enough for a short
/// crash enumeration, large enough that every frame is a frame object.
const FRAME: u32 = 64 << 10;
/// `f32`s in one frame.
const PER_FRAME: usize = FRAME as usize / 4;

/// The local backend on the simulated file system, whose files keep no
/// modification times, with every object's time given as the epoch: what
/// a collection with a zero orphan grace and no live lease (this test's)
/// makes of any real time, and what a collection already assumes for an
/// entry's data without one. Without a time a frame object is never
/// collected.
#[derive(Debug)]
struct Aged(LocalBackend);

fn aged(mut m: ObjectMeta) -> ObjectMeta {
    m.modified = m.modified.or(Some(UNIX_EPOCH));
    m
}

impl Backend for Aged {
    fn url(&self) -> &str {
        self.0.url()
    }
    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> cairn::Result<PutResult> {
        self.0.put(key, data, mode)
    }
    fn writer(&self, key: &str, mode: PutMode) -> cairn::Result<Box<dyn ObjectWriter>> {
        self.0.writer(key, mode)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> cairn::Result<Bytes> {
        self.0.get_range(key, range)
    }
    fn get(&self, key: &str) -> cairn::Result<Bytes> {
        self.0.get(key)
    }
    fn get_versioned(&self, key: &str) -> cairn::Result<Versioned> {
        self.0.get_versioned(key)
    }
    fn head(&self, key: &str) -> cairn::Result<ObjectMeta> {
        self.0.head(key).map(aged)
    }
    fn list(&self, prefix: &str) -> cairn::Result<Vec<ObjectMeta>> {
        Ok(self.0.list(prefix)?.into_iter().map(aged).collect())
    }
    fn list_keys(&self, prefix: &str) -> cairn::Result<Vec<String>> {
        self.0.list_keys(prefix)
    }
    fn delete(&self, key: &str) -> cairn::Result<()> {
        self.0.delete(key)
    }
    fn copy(&self, from: &str, to: &str) -> cairn::Result<()> {
        self.0.copy(from, to)
    }
    fn put_with(&self, key: &str, data: Bytes, mode: PutMode, durability: Durability) -> cairn::Result<PutResult> {
        self.0.put_with(key, data, mode, durability)
    }
    fn delete_with(&self, key: &str, durability: Durability) -> cairn::Result<()> {
        self.0.delete_with(key, durability)
    }
    fn volatile_is_weaker(&self) -> bool {
        self.0.volatile_is_weaker()
    }
    fn open_file(&self, key: &str) -> cairn::Result<Option<std::fs::File>> {
        self.0.open_file(key)
    }
    fn sweep_temp_files(&self) -> cairn::Result<usize> {
        self.0.sweep_temp_files()
    }
}

fn open_shared(sim: &SimFs) -> cairn::Result<(Store, Arc<dyn Backend>)> {
    let backend: Arc<dyn Backend> = Arc::new(Aged(LocalBackend::open_in(sim.shared(), "root")?));
    let opts = StoreOptions::default().orphan_grace(Duration::ZERO).lease_ttl(Duration::ZERO);
    Ok((Store::open(backend.clone(), "", opts)?, backend))
}

/// One acknowledged save: its key and id and the tensors it must hold.
#[derive(Debug, Clone)]
struct Acked {
    key: &'static str,
    id: String,
    tensors: Vec<(&'static str, Vec<f32>)>,
    /// What its save wrote.
    added_bytes: u64,
    /// Given to a removal (which may or may not have happened).
    removing: bool,
}

fn shared_ckpt(tensors: &[(&'static str, Vec<f32>)]) -> Bytes {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default().frame_size(FRAME)).unwrap();
    for (name, t) in tensors {
        w.add_tensor(name, &[t.len() as u64], t).unwrap();
    }
    Bytes::from(w.finish().unwrap())
}

/// The key of the frame object holding `t` (raw, so its stored bytes are
/// its values).
fn frame_object(t: &[f32]) -> String {
    let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
    let hex = blake3::hash(&bytes).to_hex();
    format!("frames/{}/{}", &hex[..2], &hex[2..])
}

/// What the shared workload did before it stopped.
#[derive(Debug, Default)]
struct SharedRun {
    acked: Vec<Acked>,
    reports: Vec<GcReport>,
}

/// Saves that share frames, a frame moved to the trash as a collection
/// racing a save leaves it, a removal that leaves a frame unreferenced, and
/// two collections (the first puts the moved frame back and trashes the
/// unreferenced one, the second deletes it); stops at the first error, as
/// a crashed process would.
fn shared_workload(sim: &SimFs) -> SharedRun {
    let mut run = SharedRun::default();
    let _ = (|| -> cairn::Result<()> {
        let (store, backend) = open_shared(sim)?;
        let opts = WriterOptions::default().frame_size(FRAME);
        // A frame every entry holds, and a head of one frame.
        let frozen = values(1, PER_FRAME);
        let head = values(2, PER_FRAME);
        let a1 = vec![("frozen", frozen.clone()), ("head", head.clone())];
        let info = SaveInfo::checkpoint().iteration(1);
        let e = store.save_with(&Key::new("a"), info, opts.clone(), |w| {
            for (name, t) in &a1 {
                w.add_tensor(name, &[t.len() as u64], t)?;
            }
            Ok(())
        })?;
        run.acked.push(Acked { key: "a", id: e.id, tensors: a1, added_bytes: e.added_bytes, removing: false });
        // Another key: the frozen frame is shared, its head is its own.
        let b1 = vec![("frozen", frozen.clone()), ("head", values(3, PER_FRAME))];
        let e = store.save_bytes(&Key::new("b"), shared_ckpt(&b1), SaveInfo::checkpoint())?;
        run.acked.push(Acked { key: "b", id: e.id, tensors: b1, added_bytes: e.added_bytes, removing: false });
        // A few values of a's head change: an XOR piece against a1's head.
        let mut head2 = head.clone();
        for i in [7, 4000, PER_FRAME - 1] {
            head2[i] += 1.0;
        }
        let a2 = vec![("frozen", frozen.clone()), ("head", head2)];
        let info = SaveInfo::checkpoint().iteration(2);
        let tensors = a2.clone();
        let e = store
            .save_async(&Key::new("a"), info, opts, move |w| {
                for (name, t) in &tensors {
                    w.add_tensor(name, &[t.len() as u64], t)?;
                }
                Ok(())
            })?
            .wait()?;
        run.acked.push(Acked { key: "a", id: e.id, tensors: a2, added_bytes: e.added_bytes, removing: false });
        // The base of that XOR trashed under both entries of `a`.
        let base = frame_object(&head);
        backend.copy(&base, &format!("trash/{base}"))?;
        backend.delete(&base)?;
        // b's head is then named by no entry.
        run.acked[1].removing = true;
        store.remove(&Key::new("b"), Some(&run.acked[1].id))?;
        run.reports.push(store.gc(&GcOptions::default())?);
        run.reports.push(store.gc(&GcOptions::default())?);
        Ok(())
    })();
    run
}

/// Whether the entry is there and holds the tensors its save was given
/// (its reader checks every frame it reads, the frame objects included).
fn check_entry(store: &Store, e: &Acked, context: &str) {
    let found = store.lookup(&Key::new(e.key), &Select::Id(e.id.clone())).unwrap();
    let found = found.unwrap_or_else(|| panic!("{context}: acknowledged {} of {} lost", e.id, e.key));
    for (name, t) in &e.tensors {
        assert!(&found.checkpoint.read_tensor::<f32>(name).unwrap() == t, "{context}: {}: {name} differs", e.id);
    }
}

fn check_shared(sim: &SimFs, run: &SharedRun, context: &str) {
    let (store, backend) = open_shared(sim).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{context}: {report:?}");
    let kept: Vec<&Acked> = run.acked.iter().filter(|e| !e.removing).collect();
    for e in &kept {
        check_entry(&store, e, context);
    }
    // Two collections clear every leftover: frames of saves that never
    // committed go to the trash, then out of it; a frame an entry names
    // comes back from it. Verify reads every entry whole again.
    store.gc(&GcOptions::default()).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.unindexed.is_empty() && report.orphans == 0, "{context}: {report:?}");
    // Nothing but the workload's three saves (acknowledged or not).
    assert!((kept.len()..=3).contains(&(report.entries as usize)), "{context}: {report:?}");
    assert!(backend.list("trash/").unwrap().is_empty(), "{context}: the trash was not emptied");
    // The store takes saves again.
    let tensors = vec![("frozen", values(1, PER_FRAME)), ("head", values(4, PER_FRAME))];
    let e = store.save_bytes(&Key::new("a"), shared_ckpt(&tensors), SaveInfo::checkpoint()).unwrap();
    check_entry(&store, &Acked { key: "a", id: e.id, tensors, added_bytes: e.added_bytes, removing: false }, context);
    // Once no entry is left, two collections leave no frame behind.
    for (key, _) in store.list().unwrap() {
        store.remove(&Key::new(&key), None).unwrap();
    }
    store.gc(&GcOptions::default()).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    let left: Vec<String> =
        backend.list("frames/").unwrap().into_iter().chain(backend.list("trash/").unwrap()).map(|m| m.key).collect();
    assert!(left.is_empty(), "{context}: frames no entry names are left: {left:?}");
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.entries == 0, "{context}: {report:?}");
}

#[test]
fn crash_at_every_operation_of_saves_and_gc_that_share_frames() {
    let total = {
        let sim = SimFs::new();
        let run = shared_workload(&sim);
        assert!(run.acked.len() == 3 && run.reports.len() == 2, "the workload fails without a crash: {run:?}");
        // Sharing happened: b stored only its head (a's frozen frame is
        // shared), a2 a small XOR piece against a1's head.
        let frame = u64::from(FRAME);
        let added: Vec<u64> = run.acked.iter().map(|e| e.added_bytes).collect();
        assert!(added[0] >= 2 * frame && added[1] < 2 * frame && added[2] < frame / 4, "{added:?}");
        let (_, backend) = open_shared(&sim).unwrap();
        let (r1, r2) = (&run.reports[0], &run.reports[1]);
        assert_eq!((r1.frames_restored, r1.frames_trashed), (1, 1), "{r1:?}");
        assert_eq!(r2.frames_deleted, 1, "{r2:?}");
        assert_eq!(backend.list("frames/").unwrap().len(), 2, "a frozen frame and a's head");
        sim.op_count()
    };
    // Every operation is a crash point, under a third of the crash plans
    // in turn (all of them over any three operations in a row): all nine
    // at every operation would take minutes in a debug build.
    let mut runs = 0;
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            if v as u64 % 3 != n % 3 {
                continue;
            }
            let sim = SimFs::new();
            sim.crash_after(n);
            let run = shared_workload(&sim);
            sim.crash(&plan);
            check_shared(&sim, &run, &format!("crash after op {n} of {total}, plan {v} {plan:?}"));
            runs += 1;
        }
    }
    assert!(runs > 150, "only {runs} crash runs");
}
