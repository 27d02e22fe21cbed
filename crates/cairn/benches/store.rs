//! Store benchmark: save + lookup latency in stores of 10, 1 000 and
//! 100 000 entries, a full collection over each, and cache hits.
//!
//! Each store is filled through the store's own API (on a file system
//! whose syncs are no-ops, to fill 100 000 entries in reasonable time),
//! 100 entries per key (10 in one key for the smallest). The timed part
//! runs on the real file system with every sync: a training loop's step
//! saving a checkpoint (64 KiB) to a probe key that keeps its last 10
//! entries (so each save also removes one), then looking up the latest
//! entry with the cache off, so the data is read and verified each time.
//! The stores take turns, one pair each per round.
//!
//! Environment: `CAIRN_BENCH_SIZES` (default `10,1000,100000`),
//! `CAIRN_BENCH_ITERS` (timed save + lookup pairs, default 200),
//! `CAIRN_BENCH_DIR` (default: the workspace's `target/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

#[path = "shared/dir.rs"]
mod dir;
#[path = "store/nosync_fs.rs"]
mod nosync_fs;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn::backend::LocalBackend;
use cairn::store::{GcOptions, Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::{CheckpointWriter, WriterOptions};

const PER_KEY: usize = 100;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().parse().unwrap()).collect()
}

fn checkpoint(len: usize, seed: u32) -> Bytes {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    let values: Vec<f32> = (0..len / 4).map(|i| (i as u32 ^ seed) as f32).collect();
    w.add_tensor("w", &[values.len() as u64], &values).unwrap();
    Bytes::from(w.finish().unwrap())
}

/// Fills `root` with `n` entries, 100 per key, without syncs.
fn fill(root: &Path, n: usize) -> Duration {
    let t = Instant::now();
    let backend = LocalBackend::open_in(nosync_fs::no_sync(), root).unwrap();
    let store = Store::open(Arc::new(backend), "", StoreOptions::default().cache_bytes(0)).unwrap();
    let data = checkpoint(4096, 1);
    for i in 0..n {
        let key = Key::new(&format!("config-{}", i / PER_KEY));
        store.save_bytes(&key, data.clone(), SaveInfo::checkpoint().iteration(i as u64).objective(i as f64)).unwrap();
        if i > 0 && i % 10_000 == 0 {
            eprintln!("  filled {i} of {n} in {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    t.elapsed()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Row {
    entries: usize,
    save_p50: f64,
    save_p90: f64,
    lookup_p50: f64,
    lookup_p90: f64,
    pair_p50: f64,
    gc: f64,
}

fn main() {
    let sizes = env_list("CAIRN_BENCH_SIZES", "10,1000,100000");
    let iters = env_list("CAIRN_BENCH_ITERS", "200")[0].max(10);
    let tmp = tempfile::Builder::new().prefix("cairn-store-bench-").tempdir_in(dir::bench_dir()).unwrap();
    let probe_data = checkpoint(64 << 10, 7);
    // Fill every store first, then time them in turns, round by round, so
    // the disk's slow and fast moments fall on all of them alike.
    let mut stores = Vec::new();
    for &n in &sizes {
        let root = tmp.path().join(format!("s{n}"));
        let took = fill(&root, n);
        eprintln!("store of {n} entries filled in {:.1} s", took.as_secs_f64());
        let opts = StoreOptions::default().cache_bytes(0).retention(Retention::default().keep_last(10));
        let store = Store::open(Arc::new(LocalBackend::open(&root).unwrap()), "", opts).unwrap();
        for i in 0..10 {
            store.save_bytes(&Key::new("probe"), probe_data.clone(), SaveInfo::checkpoint().iteration(i)).unwrap();
        }
        stores.push((n, store, Vec::new(), Vec::new(), Vec::new()));
    }
    let probe = Key::new("probe");
    for i in 0..iters {
        for (_, store, saves, lookups, pairs) in &mut stores {
            let t = Instant::now();
            let e =
                store.save_bytes(&probe, probe_data.clone(), SaveInfo::checkpoint().iteration(100 + i as u64)).unwrap();
            let saved = t.elapsed();
            let t2 = Instant::now();
            let found = store.lookup(&probe, &Select::Latest).unwrap().unwrap();
            let looked = t2.elapsed();
            assert_eq!(found.info.id, e.id);
            saves.push(saved.as_secs_f64() * 1e3);
            lookups.push(looked.as_secs_f64() * 1e3);
            pairs.push((saved + looked).as_secs_f64() * 1e3);
        }
    }
    let mut rows = Vec::new();
    for (n, store, mut saves, mut lookups, mut pairs) in stores {
        let t = Instant::now();
        let report = store.gc(&GcOptions::default().retention(Retention::keep_all())).unwrap();
        let gc = t.elapsed().as_secs_f64();
        assert_eq!(report.entries as usize, n + 10);
        rows.push(Row {
            entries: n,
            save_p50: percentile(&mut saves, 0.5),
            save_p90: percentile(&mut saves, 0.9),
            lookup_p50: percentile(&mut lookups, 0.5),
            lookup_p90: percentile(&mut lookups, 0.9),
            pair_p50: percentile(&mut pairs, 0.5),
            gc,
        });
    }

    println!("\nsave + lookup on the local-disk backend, every sync on; {iters} pairs per store; 64 KiB checkpoints");
    println!("| entries in the store | save p50 | save p90 | lookup p50 | lookup p90 | save+lookup p50 | vs smallest | gc pass |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let base = rows.first().map(|r| r.pair_p50).unwrap_or(1.0);
    for r in &rows {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}× | {:.2} s |",
            r.entries,
            r.save_p50,
            r.save_p90,
            r.lookup_p50,
            r.lookup_p90,
            r.pair_p50,
            r.pair_p50 / base,
            r.gc
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let ratio = last.pair_p50 / first.pair_p50;
        let verdict = if ratio <= 1.5 { "meets" } else { "MISSES" };
        println!(
            "target: save+lookup at {} entries ≤ 1.5× at {}: {ratio:.2}× ({verdict})",
            last.entries, first.entries
        );
    }

    // Cache: the same lookup answered from memory, against the same lookup
    // with the cache off (index read, data read, digest check, open).
    let root = tmp.path().join(format!("s{}", sizes[0]));
    let cached = Store::open(Arc::new(LocalBackend::open(&root).unwrap()), "", StoreOptions::default()).unwrap();
    let uncached =
        Store::open(Arc::new(LocalBackend::open(&root).unwrap()), "", StoreOptions::default().cache_bytes(0)).unwrap();
    let probe = Key::new("probe");
    let time = |s: &Store| {
        s.lookup(&probe, &Select::Best).unwrap().unwrap();
        let mut v: Vec<f64> = (0..iters)
            .map(|_| {
                let t = Instant::now();
                s.lookup(&probe, &Select::Best).unwrap().unwrap();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        percentile(&mut v, 0.5)
    };
    let (hit, miss) = (time(&cached), time(&uncached));
    let stats = cached.cache_stats();
    println!(
        "\ncache: lookup p50 {hit:.1} µs from the cache, {miss:.1} µs without ({:.1}× faster); hit rate {:.3} ({} hits, {} misses)",
        miss / hit,
        stats.hit_rate(),
        stats.hits,
        stats.misses
    );
}
