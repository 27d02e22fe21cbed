//! Storage backend benchmark: upload and download of a 1 GiB checkpoint
//! through the S3 backend (multipart, parts in flight) and through the
//! local-disk backend, measured in the same run; and a ranged read of one
//! 16 MiB chunk of that checkpoint stored remotely (time and bytes
//! transferred) beside the same read from local disk.
//!
//! S3 is the server named by `CAIRN_TEST_S3_URL` with the `AWS_*`
//! variables; `scripts/bench-backend` starts a local moto server and runs
//! this bench against it. Without `CAIRN_TEST_S3_URL` only the local rows
//! run.
//!
//! Environment:
//! - `CAIRN_BENCH_CHUNKS` (default 64) chunks of 16 MiB in the checkpoint;
//! - `CAIRN_BENCH_REPS` (default 3): rounds; medians are reported;
//! - `CAIRN_BENCH_DIR`: where the temp directory goes (default: `target/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

#[path = "shared/dir.rs"]
mod dir;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cairn::backend::{open_checkpoint, Backend, BackendExt, CountingBackend, LocalBackend, ObjectBackend, PutMode};
use cairn::{Checkpoint, CheckpointWriter, WriterOptions};

const CHUNK: usize = 16 << 20;
const MIB: f64 = (1u64 << 20) as f64;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `chunks` chunks of 16 MiB of noise, uncompressed: a checkpoint whose
/// size is what is moved.
fn make_checkpoint(path: &Path, chunks: usize) {
    let mut w = CheckpointWriter::create(path, WriterOptions::default()).unwrap();
    for i in 0..chunks {
        w.add_bytes(&format!("c{i:03}"), &noise(CHUNK, i as u64)).unwrap();
    }
    w.finish().unwrap();
}

/// Seconds to upload the file at `path` to `key` through the writer.
fn upload(b: &dyn Backend, path: &Path, key: &str) -> f64 {
    let mut f = File::open(path).unwrap();
    let t = Instant::now();
    b.put_from(key, &mut f, PutMode::Overwrite).unwrap();
    t.elapsed().as_secs_f64()
}

/// Seconds to read the whole object with `threads` threads of ranged gets
/// of 16 MiB; checks the length.
fn download(b: &Arc<dyn Backend>, key: &str, len: u64, threads: usize) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (b, next, key) = (Arc::clone(b), Arc::clone(&next), key.to_string());
            std::thread::spawn(move || {
                let mut got = 0u64;
                loop {
                    let start = next.fetch_add(CHUNK as u64, Ordering::SeqCst);
                    if start >= len {
                        return got;
                    }
                    got += b.get_range(&key, start..(start + CHUNK as u64).min(len)).unwrap().len() as u64;
                }
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, len);
    t.elapsed().as_secs_f64()
}

/// Open + read of the middle chunk through ranged gets: seconds, bytes
/// transferred, gets.
fn ranged_chunk(b: &Arc<dyn Backend>, key: &str, name: &str) -> (f64, u64, u64) {
    let counting = Arc::new(CountingBackend::new(Arc::clone(b)));
    let t = Instant::now();
    let ck = open_checkpoint(counting.clone(), key).unwrap();
    let data = ck.read(name).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(data.len(), CHUNK);
    let t = counting.traffic();
    (secs, t.bytes_read, t.gets)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn range_of(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.2}–{hi:.2}")
}

struct Row {
    what: String,
    secs: Vec<f64>,
    bytes: u64,
}

fn main() {
    let chunks = env_usize("CAIRN_BENCH_CHUNKS", 64).max(2);
    let reps = env_usize("CAIRN_BENCH_REPS", 3).max(1);
    let tmp = tempfile::Builder::new().prefix("cairn-backend-bench-").tempdir_in(dir::bench_dir()).unwrap();
    let src = tmp.path().join("source.cairn");
    let t = Instant::now();
    make_checkpoint(&src, chunks);
    let len = std::fs::metadata(&src).unwrap().len();
    eprintln!("made a {:.0} MiB checkpoint in {:.1} s", len as f64 / MIB, t.elapsed().as_secs_f64());
    let middle = format!("c{:03}", chunks / 2);

    let local: Arc<dyn Backend> = Arc::new(LocalBackend::open(tmp.path().join("local")).unwrap());
    let s3_base = std::env::var("CAIRN_TEST_S3_URL").ok();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let s3 = |parts: usize| -> Option<Arc<dyn Backend>> {
        let url = format!("{}/bench-{nanos:x}", s3_base.as_deref()?.trim_end_matches('/'));
        Some(Arc::new(ObjectBackend::open(&url).unwrap().concurrency(parts)))
    };
    // (name, backend, whether to time downloads and the ranged read: the
    // part concurrency matters to uploads only).
    let mut targets: Vec<(String, Arc<dyn Backend>, bool)> =
        vec![("local disk backend".into(), Arc::clone(&local), true)];
    if let (Some(b4), Some(b1)) = (s3(4), s3(1)) {
        targets.push(("S3 backend, 4 parts in flight".into(), b4, true));
        targets.push(("S3 backend, 1 part in flight".into(), b1, false));
    } else {
        eprintln!("CAIRN_TEST_S3_URL is not set: local rows only (scripts/bench-backend starts a local S3 server)");
    }

    let mut rows: Vec<Row> = Vec::new();
    let mut push = |what: String, secs: f64, bytes: u64| match rows.iter_mut().find(|r| r.what == what) {
        Some(r) => r.secs.push(secs),
        None => rows.push(Row { what, secs: vec![secs], bytes }),
    };
    let mut ranged: Vec<(String, Vec<f64>, u64, u64)> = Vec::new();
    for round in 1..=reps {
        eprintln!("round {round} of {reps}");
        for (name, b, reads) in &targets {
            let key = format!("up-{round}.cairn");
            let up = upload(&**b, &src, &key);
            eprintln!("  {name}: upload {up:.2} s");
            push(format!("upload, {name}"), up, len);
            if *reads {
                let t = Instant::now();
                assert_eq!(b.get(&key).unwrap().len() as u64, len);
                let whole = t.elapsed().as_secs_f64();
                eprintln!("  {name}: download {whole:.2} s");
                push(format!("download, {name}, one get"), whole, len);
                let down4 = download(b, &key, len, 4);
                eprintln!("  {name}: download by ranges {down4:.2} s");
                push(format!("download, {name}, 4 threads of 16 MiB ranged gets"), down4, len);
                let (secs, bytes, gets) = ranged_chunk(b, &key, &middle);
                eprintln!("  {name}: one chunk {secs:.3} s");
                match ranged.iter_mut().find(|r| r.0 == *name) {
                    Some(r) => r.1.push(secs),
                    None => ranged.push((name.clone(), vec![secs], bytes, gets)),
                }
            }
            b.delete(&key).unwrap();
        }
    }
    // What one small ranged get costs against the size of the object it is
    // cut from: a server that reads whole objects to serve a range shows it.
    let mut probes: Vec<(String, f64, f64)> = Vec::new();
    for (name, b, reads) in &targets {
        if !*reads {
            continue;
        }
        b.put("probe/small", Bytes::from(noise(1 << 20, 9)), PutMode::Overwrite).unwrap();
        upload(&**b, &src, "probe/large");
        let time = |key: &str| {
            let ms: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    assert_eq!(b.get_range(key, 4096..8192).unwrap().len(), 4096);
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            median(ms)
        };
        probes.push((name.clone(), time("probe/small"), time("probe/large")));
        b.delete("probe/small").unwrap();
        b.delete("probe/large").unwrap();
    }
    // The same chunk from the local file through a memory map, the floor.
    let mut mapped = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let ck = Checkpoint::open(&src).unwrap();
        assert_eq!(ck.read(&middle).unwrap().len(), CHUNK);
        mapped.push(t.elapsed().as_secs_f64());
    }

    println!("# cairn storage backend benchmark\n");
    println!("- machine: {} hardware threads", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!(
        "- checkpoint: {chunks} chunks × 16 MiB of noise, uncompressed: {len} bytes ({:.0} MiB)",
        len as f64 / MIB
    );
    println!("- S3: {}", if s3_base.is_some() { "CAIRN_TEST_S3_URL (see the command used)" } else { "not run" });
    println!("- rounds: {reps}; figures are the median round (min–max shown)\n");
    println!("## Upload and download\n");
    println!("| what | median s | min–max s | MiB/s |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        let m = median(r.secs.clone());
        println!("| {} | {m:.2} | {} | {:.0} |", r.what, range_of(&r.secs), r.bytes as f64 / MIB / m);
    }
    println!(
        "\nUpload: `put_from` of the file through `Backend::writer` (local: temp file, fsync, rename, directory fsync;"
    );
    println!(
        "S3: multipart upload of 8 MiB parts). Download into memory: one `get`, or ranged gets of 16 MiB from 4 threads.\n"
    );
    println!("## One 16 MiB chunk of the {:.0} MiB checkpoint\n", len as f64 / MIB);
    println!("| from | median ms | min–max ms | bytes transferred | gets | transferred ÷ chunk |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, secs, bytes, gets) in &ranged {
        let ms: Vec<f64> = secs.iter().map(|s| s * 1e3).collect();
        println!(
            "| {name}, open_checkpoint + read | {:.1} | {} | {bytes} | {gets} | {:.4} |",
            median(ms.clone()),
            range_of(&ms),
            *bytes as f64 / CHUNK as f64
        );
    }
    let ms: Vec<f64> = mapped.iter().map(|s| s * 1e3).collect();
    println!(
        "| local file, Checkpoint::open (mmap) + read | {:.1} | {} | – | – | – |",
        median(ms.clone()),
        range_of(&ms)
    );
    println!(
        "\nTimed: opening the checkpoint (header, trailer and index by ranged gets) and reading the chunk, verified.\n"
    );
    println!("## One 4 KiB ranged get, from a 1 MiB object and from the {:.0} MiB one\n", len as f64 / MIB);
    println!("| backend | from 1 MiB, median ms | from {:.0} MiB, median ms |", len as f64 / MIB);
    println!("|---|---:|---:|");
    for (name, small, large) in &probes {
        println!("| {name} | {small:.2} | {large:.2} |");
    }
    println!("\n5 gets each. A server whose cost per ranged get grows with the size of the object rather than of");
    println!("the range shows it here; every remote read above pays that cost once per get.");
}
