//! Large store entries: memory and time of saving a training state of
//! `CAIRN_BENCH_GIB` GiB (default 1; four f32 tensors) into a local store
//! with `save_with` (durable, streamed) and with `save_async` (staged, then
//! written in the background), of looking it up and reading every tensor
//! into new `Vec`s, of copying the entry out (what `cairn store get` does)
//! and of verifying the store; and, when the release binary is built
//! (`cargo build --release -p cairn-cli`), `cairn store get` and
//! `cairn store verify` as processes.
//!
//! Heap is measured by a counting allocator (peak live bytes above what the
//! caller holds); the processes' anonymous memory by polling `RssAnon` in
//! `/proc/<pid>/status` every 5 ms. `save_with` and `save_async` take turns
//! (A B A B), and the blocking time of `save_async` is reported as a ratio
//! of the durable `save_with` of the same state in the same run.
//!
//! The store keeps the last two entries, so a large state fits the disk
//! (and an in-memory S3 test server). At the end the process's peak
//! resident memory (`VmHWM`) is printed beside what the caller's state and
//! the read-back tensors account for.
//!
//! Environment: `CAIRN_BENCH_GIB`, `CAIRN_BENCH_ROUNDS` (save rounds,
//! default 3), `CAIRN_BENCH_READ_BACK=lookup` (stop after the lookup and
//! read; on the moto test server every ranged read costs a read of the
//! whole object), `CAIRN_BENCH_DIR` (default: the
//! workspace's `target/`), `CAIRN_BENCH_URL` (a store URL, e.g.
//! `s3://bucket/prefix` on the test server, used instead of a local store
//! for the save and lookup rows).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

#[path = "shared/dir.rs"]
mod dir;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn::store::{Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::WriterOptions;

#[path = "../tests/shared/counting_alloc.rs"]
mod counting;

static PEAK_ANON_STOP: AtomicBool = AtomicBool::new(false);

/// Samples this process's `RssAnon` every 5 ms until told to stop; returns
/// the largest, in MiB.
fn sample_anon() -> std::thread::JoinHandle<f64> {
    std::thread::spawn(|| {
        let mut peak = 0f64;
        while !PEAK_ANON_STOP.load(Ordering::Relaxed) {
            let kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
                s.lines().find(|l| l.starts_with("RssAnon:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            });
            peak = peak.max(kib.unwrap_or(0.0) / 1024.0);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    })
}

/// Runs `f`; returns its value, its time and the most heap it held above
/// what was live before.
fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let t = Instant::now();
    let (out, usage) = counting::measured(f);
    (out, t.elapsed(), usage.peak)
}

const MIB: f64 = (1u64 << 20) as f64;

fn mib(b: usize) -> f64 {
    b as f64 / MIB
}

/// Runs the release `cairn` with `args`, polling its anonymous memory.
fn peak_anon(bin: &std::path::Path, args: &[&str]) -> (Duration, f64) {
    let t = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kib) = s.lines().find_map(|l| l.strip_prefix("RssAnon:")) {
                let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "cairn {args:?} failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (t.elapsed(), peak_kib as f64 / 1024.0)
}

fn main() {
    let sampler = sample_anon();
    let gib: usize = std::env::var("CAIRN_BENCH_GIB").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let tmp = tempfile::Builder::new().prefix("cairn-store-big-").tempdir_in(dir::bench_dir()).unwrap();
    let root = tmp.path().join("store");
    let url = std::env::var("CAIRN_BENCH_URL").unwrap_or_else(|_| root.display().to_string());
    let rounds: u64 = std::env::var("CAIRN_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let opts = StoreOptions::default().cache_bytes(0).retention(Retention::default().keep_last(2));
    let store = Store::open_url(&url, opts).unwrap();
    let key = Key::new("big");
    // Four tensors of a quarter each: weights and optimiser moments.
    let per = (gib << 30) / 4 / 4;
    let mut state: Vec<Vec<f32>> =
        (0..4u32).map(|t| (0..per).map(|i| ((i as u32) ^ (t << 28)) as f32 * 1e-3).collect()).collect();
    let total = 4 * per * 4;
    println!("store entries of {gib} GiB ({} f32 in 4 tensors) at {url}", 4 * per);
    let write = |w: &mut cairn::CheckpointWriter<cairn::store::EntrySink>, s: &[Vec<f32>]| -> cairn::Result<()> {
        for (i, t) in s.iter().enumerate() {
            w.add_tensor(&format!("t{i}"), &[t.len() as u64], t)?;
        }
        Ok(())
    };
    let (mut with_t, mut with_heap, mut blocked, mut background, mut async_heap) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (e, took, heap) = measured(|| {
            store.save_with(&key, SaveInfo::checkpoint().iteration(round), WriterOptions::default(), |w| {
                write(w, &state)
            })
        });
        e.unwrap();
        with_t.push(took);
        with_heap.push(heap);
        let ((stats, _), _, heap) = measured(|| {
            let h = store
                .save_async(&key, SaveInfo::checkpoint().iteration(100 + round), WriterOptions::default(), |w| {
                    write(w, &state)
                })
                .unwrap();
            // The caller changes its state at once.
            state[0][0] += 1.0;
            let (_, stats) = h.wait_with_stats().unwrap();
            (stats, ())
        });
        blocked.push(stats.blocked);
        background.push(stats.background.unwrap_or_default());
        async_heap.push(heap);
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    println!("{:<52} {:>12} {:>14}", "operation", "time ms", "peak heap MiB");
    for (i, (t, h)) in with_t.iter().zip(&with_heap).enumerate() {
        println!("{:<52} {:>12.0} {:>14.1}", format!("save_with, durable (round {})", i + 1), ms(t), mib(*h));
    }
    for i in 0..blocked.len() {
        println!(
            "{:<52} {:>12.0} {:>14.1}",
            format!("save_async, caller blocked (round {})", i + 1),
            ms(&blocked[i]),
            mib(async_heap[i])
        );
        println!("{:<52} {:>12.0}", format!("save_async, background part (round {})", i + 1), ms(&background[i]));
    }
    let ratios: Vec<String> =
        blocked.iter().zip(&with_t).map(|(b, w)| format!("{:.3}", b.as_secs_f64() / w.as_secs_f64())).collect();
    println!("save_async blocking / save_with, per round: {}", ratios.join(", "));

    // Reading back: the caller's state is dropped first, so what the
    // lookup holds above the new tensors is what counts.
    drop(state);
    let (read, took, heap) = measured(|| {
        let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
        (0..4).map(|i| found.checkpoint.read_tensor::<f32>(&format!("t{i}")).unwrap()).collect::<Vec<_>>()
    });
    let held: usize = read.iter().map(|t| t.len() * 4).sum();
    assert_eq!(held, total);
    println!(
        "{:<52} {:>12.0} {:>14.1}",
        "lookup + read every tensor (heap above the tensors)",
        ms(&took),
        mib(heap.saturating_sub(held))
    );
    drop(read);
    if std::env::var("CAIRN_BENCH_READ_BACK").is_ok_and(|v| v == "lookup") {
        PEAK_ANON_STOP.store(true, Ordering::Relaxed);
        println!("process peak: {:.0} MiB anonymous (sampled every 5 ms)", sampler.join().unwrap());
        return;
    }
    let out = tmp.path().join("out.cairn");
    let (n, took, heap) = measured(|| {
        let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
        let mut f = std::fs::File::create(&out).unwrap();
        found.checkpoint.copy_to(&mut f, "out").unwrap()
    });
    println!("{:<52} {:>12.0} {:>14.1}", format!("lookup + copy out {} MiB", n >> 20), ms(&took), mib(heap));
    let (report, took, heap) = measured(|| store.verify().unwrap());
    assert!(report.is_clean());
    println!("{:<52} {:>12.0} {:>14.1}", format!("store verify ({} entries)", report.entries), ms(&took), mib(heap));

    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/cairn");
    if bin.exists() && std::env::var("CAIRN_BENCH_URL").is_err() {
        let r = root.to_str().unwrap();
        let o = out.to_str().unwrap();
        let (t, anon) = peak_anon(&bin, &["store", "--root", r, "get", "big", o, "--latest"]);
        println!("{:<52} {:>12.0} {:>14.1}  (peak RssAnon)", "cairn store get (process)", ms(&t), anon);
        let (t, anon) = peak_anon(&bin, &["store", "--root", r, "verify"]);
        println!("{:<52} {:>12.0} {:>14.1}  (peak RssAnon)", "cairn store verify (process)", ms(&t), anon);
    } else {
        println!("(cairn store get/verify as processes: build target/release/cairn to measure them)");
    }
    let status = |field: &str| -> f64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0.0)
            / 1024.0
    };
    PEAK_ANON_STOP.store(true, Ordering::Relaxed);
    let peak_anon = sampler.join().unwrap();
    println!(
        "process peak: {:.0} MiB anonymous (sampled every 5 ms), {:.0} MiB resident with mapped file pages (VmHWM); \
         the caller's state was {} MiB and the tensors read back {} MiB, held one after the other",
        peak_anon,
        status("VmHWM:"),
        total >> 20,
        total >> 20
    );
}
