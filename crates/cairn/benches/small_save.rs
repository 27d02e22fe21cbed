//! Small durable saves: `Store::save_with` of a small checkpoint into a
//! local store against the hand-rolled put it replaces (the warm-start
//! store's pattern: payload to a temp file + fsync, JSON to a temp file +
//! fsync, two renames), side by side in one process, taking turns
//! (A B A B) so the disk's slow and fast moments fall on both alike.
//!
//! The hand-rolled put syncs no directory, so its renames are not durable;
//! cairn's save is (docs/STORE.md counts its four syncs). The store keeps
//! its last 10 entries per key, as a training loop's store would, so each
//! save past the tenth also removes one; a second row saves without
//! retention.
//!
//! Environment: `CAIRN_BENCH_ITERS` (timed saves per variant, default 300),
//! `CAIRN_BENCH_DIR` (default: the workspace's `target/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

#[path = "shared/dir.rs"]
mod dir;
#[path = "store/nosync_fs.rs"]
mod nosync_fs;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cairn::backend::LocalBackend;
use cairn::store::{Key, Retention, SaveInfo, Store, StoreOptions};
use cairn::WriterOptions;

/// The payload: 4 KiB of parameters, as a small optimiser state.
fn params(seed: u64) -> Vec<f32> {
    (0..1024u64).map(|i| ((i ^ seed) as f32) * 0.5).collect()
}

/// The pattern cairn replaces: payload and a JSON record, each written to a
/// temp file and fsynced, then both renamed into place.
fn hand_rolled(dir: &Path, i: u64, values: &[f32]) {
    let payload = dir.join(format!("run-{i}.bin"));
    let meta = dir.join(format!("run-{i}.json"));
    let tmp_payload = dir.join(format!(".run-{i}.bin.tmp"));
    let tmp_meta = dir.join(format!(".run-{i}.json.tmp"));
    let mut f = std::fs::File::create(&tmp_payload).unwrap();
    f.write_all(bytemuck::cast_slice(values)).unwrap();
    f.sync_all().unwrap();
    let record = serde_json::json!({"iteration": i, "objective": 0.5, "bytes": values.len() * 4});
    let mut f = std::fs::File::create(&tmp_meta).unwrap();
    f.write_all(&serde_json::to_vec(&record).unwrap()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp_payload, &payload).unwrap();
    std::fs::rename(&tmp_meta, &meta).unwrap();
}

fn cairn_save(store: &Store, key: &Key, i: u64, values: &[f32]) {
    let info = SaveInfo::checkpoint().iteration(i).objective(0.5);
    store.save_with(key, info, WriterOptions::default(), |w| w.add_tensor("params", &[1024], values)).unwrap();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p) as usize]
}

fn main() {
    let iters: u64 = std::env::var("CAIRN_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(300).max(20);
    let tmp = tempfile::Builder::new().prefix("cairn-small-save-").tempdir_in(dir::bench_dir()).unwrap();
    let plain = tmp.path().join("hand-rolled");
    std::fs::create_dir_all(&plain).unwrap();
    let kept = Store::open(
        Arc::new(LocalBackend::open(tmp.path().join("store-keep10")).unwrap()),
        "",
        StoreOptions::default().retention(Retention::default().keep_last(10)),
    )
    .unwrap();
    let all =
        Store::open(Arc::new(LocalBackend::open(tmp.path().join("store-all")).unwrap()), "", StoreOptions::default())
            .unwrap();
    // The same save with every sync a no-op: what the store costs besides
    // the disk.
    let nosync = Store::open(
        Arc::new(LocalBackend::open_in(nosync_fs::no_sync(), tmp.path().join("store-nosync")).unwrap()),
        "",
        StoreOptions::default(),
    )
    .unwrap();
    let key = Key::new("warm-start/cfg-1");
    let values = params(1);
    // Warm-up: each key's first save makes its folders and index.
    for i in 0..12 {
        hand_rolled(&plain, 1_000_000 + i, &values);
        cairn_save(&kept, &key, i, &values);
        cairn_save(&all, &key, i, &values);
        cairn_save(&nosync, &key, i, &values);
    }
    let (mut hand, mut keep10, mut keep_all, mut no_syncs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..iters {
        let t = Instant::now();
        hand_rolled(&plain, i, &values);
        hand.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        cairn_save(&kept, &key, 100 + i, &values);
        keep10.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        cairn_save(&all, &key, 100 + i, &values);
        keep_all.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        cairn_save(&nosync, &key, 100 + i, &values);
        no_syncs.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let base = median(&mut hand.clone());
    println!("small durable save, 4 KiB of f32, {iters} saves per variant, taking turns");
    println!("{:<44} {:>10} {:>10} {:>10} {:>7}", "variant", "median us", "p10 us", "p90 us", "ratio");
    for (name, v) in [
        ("hand-rolled put (2 fsyncs, renames unsynced)", &hand),
        ("cairn save_with, keep last 10", &keep10),
        ("cairn save_with, no retention", &keep_all),
        ("cairn save_with, no retention, syncs no-ops", &no_syncs),
    ] {
        let m = median(&mut v.clone());
        println!("{name:<44} {m:>10.0} {:>10.0} {:>10.0} {:>6.2}x", pct(v, 0.1), pct(v, 0.9), m / base);
    }
}
