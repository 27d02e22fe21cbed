//! Incremental saves into a store that shares frames (issue 14,
//! docs/STORE.md, "Shared frames"), each figure against a baseline measured in the
//! same run:
//!
//! 1. **one tensor changed**: a model of 64 tensors × 16 MiB saved, then
//!    saved again with one tensor changed; the second save's added bytes
//!    over a full save's (target ≤ 1/30), and its time over a full save of
//!    the same state into a store that does not share (target ≤ 1.0×),
//!    taken in turns (A B A B).
//! 2. **sparse rows**: a 256 MiB f32 embedding table (rows of 512 bytes)
//!    with 1 % of its rows changed at random (target ≤ 1/20).
//! 3. **fine-tuning**: the model and an adapter of 1 % of its parameters,
//!    only the adapter trained, 10 checkpoints: everything stored over one
//!    full checkpoint (target ≤ 1.2×).
//! 4. **reading a delta entry**: lookup + `read_tensor` of every tensor of
//!    the second save of (1) against the same in the store that does not
//!    share, and the entry copied out (what `cairn store get` does);
//!    target ≤ 1.5× each.
//!
//! 5. **memory**: the peak heap (a counting allocator, above what the
//!    caller holds) of the incremental save (bound: 4 frames per thread
//!    and the 8 MiB of frame puts in flight), of the full save, and of
//!    reading every tensor of the delta entry (bound: the tensor being
//!    read and 16 MiB, and on object storage the 64 MiB span a ranged
//!    read fetches ahead).
//! 6. **every tensor changed**: a save into the sharing store of a state
//!    it holds no frame of, against the same into the plain store
//!    (target ≤ 1.0×: sharing must not slow a training loop whose every
//!    weight changes).
//!
//! Environment: `CAIRN_BENCH_TENSORS` (64) × `CAIRN_BENCH_TENSOR_MIB` (16),
//! `CAIRN_BENCH_EMB_MIB` (256), `CAIRN_BENCH_ROUNDS` (3),
//! `CAIRN_BENCH_URL` (where the stores go, e.g. `s3://cairn-test/inc` on the
//! test server; default a directory under the workspace's `target/`).
//!
//! Run with `cargo bench -p cairn --bench incremental`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

#[path = "../tests/shared/counting_alloc.rs"]
mod counting;
#[path = "shared/dir.rs"]
mod dir;
#[path = "shared/weights.rs"]
mod weights;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::backend::{Backend, LocalBackend};
use cairn::store::{EntryInfo, Key, SaveInfo, Select, Store, StoreOptions};
use cairn::WriterOptions;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// A store at `base/name` and the backend and prefix it lives in, to count
/// what it stores.
struct Place {
    store: Store,
    backend: Arc<dyn Backend>,
    prefix: String,
}

fn place(base: &str, name: &str, share: bool) -> Place {
    let url = format!("{}/{name}", base.trim_end_matches('/'));
    let opts = StoreOptions::default().share_frames(share).cache_bytes(0);
    let store = Store::open_url(&url, opts).unwrap();
    let (backend, prefix): (Arc<dyn Backend>, String) = if cairn::backend::is_url(&url) {
        let loc = cairn::backend::resolve(&url).unwrap();
        (loc.backend, format!("{}/", loc.key.trim_end_matches('/')))
    } else {
        (Arc::new(LocalBackend::open(&url).unwrap()), String::new())
    };
    Place { store, backend, prefix }
}

impl Place {
    fn stored(&self) -> u64 {
        self.backend.list(&self.prefix).unwrap().iter().map(|m| m.size).sum()
    }

    fn save(&self, key: &Key, step: u64, tensors: &[(String, &[f32])]) -> (Duration, EntryInfo) {
        let (out, _) = self.save_measured(key, step, tensors);
        out
    }

    /// As `save`, with the peak heap the save held.
    fn save_measured(&self, key: &Key, step: u64, tensors: &[(String, &[f32])]) -> ((Duration, EntryInfo), usize) {
        let t = Instant::now();
        let (e, usage) = counting::measured(|| {
            self.store
                .save_with(key, SaveInfo::checkpoint().iteration(step), WriterOptions::default(), |w| {
                    for (name, data) in tensors {
                        w.add_tensor(name, &[data.len() as u64], data)?;
                    }
                    Ok(())
                })
                .unwrap()
        });
        ((t.elapsed(), e), usage.peak)
    }

    fn read_all(&self, key: &Key, names: &[String]) -> Duration {
        self.read_all_measured(key, names).0
    }

    /// As `read_all`, with the peak heap it held (one tensor is live at
    /// a time).
    fn read_all_measured(&self, key: &Key, names: &[String]) -> (Duration, usize) {
        let t = Instant::now();
        let ((), usage) = counting::measured(|| {
            let found = self.store.lookup(key, &Select::Latest).unwrap().unwrap();
            for n in names {
                std::hint::black_box(found.checkpoint.read_tensor::<f32>(n).unwrap());
            }
        });
        (t.elapsed(), usage.peak)
    }

    fn copy_out(&self, key: &Key) -> Duration {
        let t = Instant::now();
        let found = self.store.lookup(key, &Select::Latest).unwrap().unwrap();
        let mut sink = std::io::sink();
        found.checkpoint.copy_to(&mut sink, "sink").unwrap();
        t.elapsed()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn range(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!("{:.3}–{:.3}", s[0], s[s.len() - 1])
}

fn row(what: &str, figure: f64, detail: &str, limit: &str, pass: bool) {
    println!("| {what} | {figure:.4} | {detail} | {limit} | {} |", if pass { "PASS" } else { "FAIL" });
}

fn named(ts: &[Vec<f32>]) -> Vec<(String, &[f32])> {
    ts.iter().enumerate().map(|(i, t)| (format!("layer{i}.weight"), t.as_slice())).collect()
}

fn main() {
    let count = env("CAIRN_BENCH_TENSORS", 64);
    let mib = env("CAIRN_BENCH_TENSOR_MIB", 16);
    let emb_mib = env("CAIRN_BENCH_EMB_MIB", 256);
    let rounds = env("CAIRN_BENCH_ROUNDS", 3);
    let tmp = tempfile::Builder::new().prefix("cairn-incremental-").tempdir_in(dir::bench_dir()).unwrap();
    let base = std::env::var("CAIRN_BENCH_URL").unwrap_or_else(|_| tmp.path().display().to_string());
    let run = format!("{}/{}", base.trim_end_matches('/'), std::process::id());
    println!("### Incremental saves: {count} tensors × {mib} MiB, {rounds} rounds, stores at {}", base);
    println!();
    println!("| target | figure | measured | limit | result |");
    println!("|---|---|---|---|---|");

    // 1. One tensor changed.
    let mut model = weights::weights(count, mib);
    let names: Vec<String> = (0..count).map(|i| format!("layer{i}.weight")).collect();
    let shared = place(&run, "shared", true);
    let plain = place(&run, "plain", false);
    let key = Key::new("model");
    let empty = shared.stored();
    let (first, _) = shared.save(&key, 0, &named(&model));
    let full_bytes = shared.stored() - empty;
    plain.save(&key, 0, &named(&model));
    let (mut inc_t, mut full_t, mut added) = (Vec::new(), Vec::new(), Vec::new());
    let (mut inc_heap, mut full_heap) = (0usize, 0usize);
    for r in 0..rounds {
        let changed = r % count;
        model[changed] = weights::weights(count + r + 1, mib).pop().unwrap();
        let before = shared.stored();
        let ts = named(&model);
        let (((a, _), ha), ((b, _), hb)) = if r % 2 == 0 {
            let a = shared.save_measured(&key, r as u64 + 1, &ts);
            (a, plain.save_measured(&key, r as u64 + 1, &ts))
        } else {
            let b = plain.save_measured(&key, r as u64 + 1, &ts);
            (shared.save_measured(&key, r as u64 + 1, &ts), b)
        };
        (inc_heap, full_heap) = (inc_heap.max(ha), full_heap.max(hb));
        // Only the shared store's growth is counted: the plain one is elsewhere.
        added.push((shared.stored() - before) as f64);
        inc_t.push(a.as_secs_f64());
        full_t.push(b.as_secs_f64());
    }
    let ratio_bytes = median(&added) / full_bytes as f64;
    row(
        &format!("one tensor of {count} changed: bytes added / full save"),
        ratio_bytes,
        &format!(
            "{:.1} MiB of {:.1} MiB (first save {:.3} s)",
            median(&added) / 1048576.0,
            full_bytes as f64 / 1048576.0,
            first.as_secs_f64()
        ),
        "≤ 1/30 (0.0333)",
        ratio_bytes <= 1.0 / 30.0,
    );
    let per_round: Vec<f64> = inc_t.iter().zip(&full_t).map(|(a, b)| a / b).collect();
    row(
        "incremental save time / full save time",
        median(&per_round),
        &format!(
            "incremental {:.3} s ({}), full {:.3} s ({}); per round {}",
            median(&inc_t),
            range(&inc_t),
            median(&full_t),
            range(&full_t),
            range(&per_round)
        ),
        "≤ 1.0",
        median(&per_round) <= 1.0,
    );

    // 5. Memory, of the saves above and of one read of the delta entry.
    let (_, read_heap) = shared.read_all_measured(&key, &names);
    let mib_f = |b: usize| b as f64 / 1048576.0;
    let tensor = mib as f64;
    let frames_bound = 4.0 * rayon::current_num_threads() as f64 + 8.0;
    row(
        "peak heap of the incremental save, MiB",
        mib_f(inc_heap),
        &format!(
            "the full save into the plain store {:.1} MiB (1 MiB frames, {} threads)",
            mib_f(full_heap),
            rayon::current_num_threads()
        ),
        &format!("≤ 4 frames per thread + 8 MiB of puts ({frames_bound:.0} MiB)"),
        mib_f(inc_heap) <= frames_bound,
    );
    let read_bound = tensor + 16.0 + if cairn::backend::is_url(&base) { 64.0 } else { 0.0 };
    row(
        "peak heap reading every tensor of the delta entry, MiB",
        mib_f(read_heap),
        &format!("one {tensor:.0} MiB tensor live at a time"),
        &format!("≤ {read_bound:.0} MiB"),
        mib_f(read_heap) <= read_bound,
    );

    // 4. Reading the latest (delta) entry against a full one.
    let (mut rd, mut rf, mut cd, mut cf) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    shared.read_all(&key, &names);
    plain.read_all(&key, &names);
    for r in 0..rounds {
        if r % 2 == 0 {
            rd.push(shared.read_all(&key, &names).as_secs_f64());
            rf.push(plain.read_all(&key, &names).as_secs_f64());
            cd.push(shared.copy_out(&key).as_secs_f64());
            cf.push(plain.copy_out(&key).as_secs_f64());
        } else {
            rf.push(plain.read_all(&key, &names).as_secs_f64());
            rd.push(shared.read_all(&key, &names).as_secs_f64());
            cf.push(plain.copy_out(&key).as_secs_f64());
            cd.push(shared.copy_out(&key).as_secs_f64());
        }
    }
    let read_ratio: Vec<f64> = rd.iter().zip(&rf).map(|(a, b)| a / b).collect();
    row(
        "delta entry: lookup + read every tensor / full entry",
        median(&read_ratio),
        &format!("delta {:.3} s ({}), full {:.3} s ({})", median(&rd), range(&rd), median(&rf), range(&rf)),
        "≤ 1.5",
        median(&read_ratio) <= 1.5,
    );
    let copy_ratio: Vec<f64> = cd.iter().zip(&cf).map(|(a, b)| a / b).collect();
    row(
        "delta entry: copied out (store get) / full entry",
        median(&copy_ratio),
        &format!("delta {:.3} s ({}), full {:.3} s ({})", median(&cd), range(&cd), median(&cf), range(&cf)),
        "≤ 1.5",
        median(&copy_ratio) <= 1.5,
    );
    // Every tensor changed: the sharing store hashes and puts every frame
    // as its own object, against one streamed file. Two rounds, so the
    // "median" printed is the larger ratio.
    let (mut all_t, mut plain_t) = (Vec::new(), Vec::new());
    for r in 0..2 {
        let fresh: Vec<Vec<f32>> = model.iter().map(|t| t.iter().map(|x| x + (r + 1) as f32).collect()).collect();
        let ts = named(&fresh);
        let step = (rounds + 1 + r) as u64;
        if r % 2 == 0 {
            all_t.push(shared.save(&key, step, &ts).0.as_secs_f64());
            plain_t.push(plain.save(&key, step, &ts).0.as_secs_f64());
        } else {
            plain_t.push(plain.save(&key, step, &ts).0.as_secs_f64());
            all_t.push(shared.save(&key, step, &ts).0.as_secs_f64());
        }
    }
    let all_ratio: Vec<f64> = all_t.iter().zip(&plain_t).map(|(a, b)| a / b).collect();
    row(
        "every tensor changed: save into the sharing store / into the plain store",
        median(&all_ratio),
        &format!("{} against {} s; per round {}", range(&all_t), range(&plain_t), range(&all_ratio)),
        "≤ 1.0",
        median(&all_ratio) <= 1.0,
    );

    drop(model);

    // 2. Sparse rows of an embedding table.
    let emb = place(&run, "embedding", true);
    let rows = emb_mib * (1 << 20) / 512;
    let mut table = weights::weights(1, emb_mib).pop().unwrap();
    let ekey = Key::new("embedding");
    let empty = emb.stored();
    emb.save(&ekey, 0, &[("embedding".to_string(), &table)]);
    let emb_full = emb.stored() - empty;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..rows / 100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let row = (x % rows as u64) as usize;
        for v in &mut table[row * 128..row * 128 + 128] {
            *v += 0.001;
        }
    }
    let before = emb.stored();
    emb.save(&ekey, 1, &[("embedding".to_string(), &table)]);
    let emb_added = emb.stored() - before;
    let r = emb_added as f64 / emb_full as f64;
    row(
        "1 % of an embedding table's rows changed: bytes added / full save",
        r,
        &format!(
            "{:.2} MiB of {:.1} MiB ({rows} rows of 512 bytes)",
            emb_added as f64 / 1048576.0,
            emb_full as f64 / 1048576.0
        ),
        "≤ 1/20 (0.05)",
        r <= 0.05,
    );
    drop(table);

    // 3. Fine-tuning: frozen model, an adapter of 1 % trained.
    let ft = place(&run, "fine-tune", true);
    let frozen = weights::weights(count, mib);
    let adapter_len = count * mib * (1 << 20) / 4 / 100;
    let fkey = Key::new("fine-tune");
    let empty = ft.stored();
    let mut one_full = 0;
    for step in 0..10u64 {
        let adapter: Vec<f32> =
            (0..adapter_len).map(|i| ((i as u64 * 31 + step * 7919) % 1000) as f32 * 1e-4).collect();
        let mut ts = named(&frozen);
        ts.push(("adapter".to_string(), &adapter));
        let before = ft.stored();
        ft.save(&fkey, step, &ts);
        if step == 0 {
            one_full = ft.stored() - before;
        }
    }
    let total = ft.stored() - empty;
    let r = total as f64 / one_full as f64;
    row(
        "fine-tuning, 1 % trainable, 10 checkpoints: stored / one full checkpoint",
        r,
        &format!("{:.1} MiB for 10 of {:.1} MiB", total as f64 / 1048576.0, one_full as f64 / 1048576.0),
        "≤ 1.2",
        r <= 1.2,
    );
    println!();
    println!("- rayon threads: {}", rayon::current_num_threads());
}
