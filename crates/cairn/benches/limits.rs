//! The speed limits of issue 13, each a ratio against a baseline measured in
//! the same run, in paired rounds (A B A B) so the shared machine's slow and
//! fast moments fall on both sides alike:
//!
//! 1. **verified load**: `Checkpoint::open` + `read_tensor::<f32>` of every
//!    tensor of a 1 GiB uncompressed checkpoint (every frame's checksum
//!    checked) against the `safetensors` crate's mmap + deserialize + copy
//!    of every tensor into a new `Vec` (nothing checked). Target ≤ 1.0×.
//! 2. **shuffle**: lz4 + byte shuffle against lz4 alone: encoding (into a
//!    sink that only counts bytes), a durable save to a file, and a verified
//!    load. Target ≤ 1.5× each. Two more rows compare lz4 + shuffle with
//!    lz4 alone on the same weights shuffled beforehand (frame by frame, as
//!    the filter does): the same shuffled bytes on both sides, stored plane
//!    by plane (the `PLANES` frame codec) against one lz4 block per frame.
//! 3. **zstd(3) on two threads**: encoding into the counting sink with a
//!    writer pool of two threads against one. Target ≥ 1.7×.
//!
//! Loads read from a warm page cache, and again from a cold one (each
//! file's pages dropped with `posix_fadvise(DONTNEED)` before each run;
//! the eviction is not timed). Environment: `CAIRN_BENCH_TENSORS`
//! (default 64) × `CAIRN_BENCH_TENSOR_MIB` (default 16), `CAIRN_BENCH_ROUNDS`
//! (default 7), `CAIRN_BENCH_DIR` (default: the workspace's `target/`),
//! `CAIRN_BENCH_ONLY` (a comma-separated subset of `load`, `shuffle`, `zstd`).
//!
//! Run with `cargo bench -p cairn --bench limits`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

#[path = "shared/dir.rs"]
mod dir;
#[path = "shared/null_sink.rs"]
mod null_sink;
#[path = "shared/weights.rs"]
mod weights;

use null_sink::NullSink;

use std::fs::File;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn::{Checkpoint, CheckpointWriter, Compression, WriterOptions};
use safetensors::tensor::{serialize_to_file, SafeTensors, TensorView};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

struct Data {
    tensors: Vec<Vec<f32>>,
    shape: [u64; 2],
}

impl Data {
    fn name(i: usize) -> String {
        format!("layer{i}.weight")
    }

    fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.len() as u64 * 4).sum()
    }
}

/// The weights as the shuffle filter hands them to lz4: each frame of each
/// tensor byte-shuffled (byte 0 of every element, then byte 1, …).
fn shuffled_beforehand(data: &Data, frame: usize) -> Data {
    let tensors = data
        .tensors
        .iter()
        .map(|t| {
            let src: &[u8] = bytemuck::cast_slice(t);
            let mut out = vec![0f32; t.len()];
            let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
            for (s, d) in src.chunks(frame).zip(dst.chunks_mut(frame)) {
                let n = s.len() / 4;
                for (i, e) in s.chunks_exact(4).enumerate() {
                    for (b, byte) in e.iter().enumerate() {
                        d[b * n + i] = *byte;
                    }
                }
            }
            out
        })
        .collect();
    Data { tensors, shape: data.shape }
}

fn write_safetensors(path: &Path, data: &Data) {
    let shape: Vec<usize> = data.shape.iter().map(|d| *d as usize).collect();
    let views = data.tensors.iter().enumerate().map(|(i, t)| {
        let bytes: &[u8] = bytemuck::cast_slice(t);
        (Data::name(i), TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).expect("tensor view"))
    });
    serialize_to_file(views, &None, path).expect("serialize_to_file");
}

fn write_cairn(path: &Path, data: &Data, opts: &WriterOptions) {
    let mut w = CheckpointWriter::create(path, opts.clone()).expect("create writer");
    for (i, t) in data.tensors.iter().enumerate() {
        w.add_tensor(&Data::name(i), &data.shape, t).expect("add tensor");
    }
    w.finish().expect("finish");
}

/// Drops `path`'s pages from the page cache (after syncing them, so they
/// are clean and can go), so the next read comes from the disk.
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = File::open(path).expect("open");
    f.sync_all().expect("fsync");
    // SAFETY: a valid descriptor; advice only.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise");
}

/// mmap, deserialize, copy every tensor into a new zeroed `Vec<f32>`.
fn safetensors_load(path: &Path, data: &Data) -> Duration {
    let t = Instant::now();
    let file = File::open(path).expect("open");
    // SAFETY: the bench owns the file and does not modify it while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap");
    let st = SafeTensors::deserialize(&map).expect("deserialize");
    for i in 0..data.tensors.len() {
        let view = st.tensor(&Data::name(i)).expect("tensor");
        let mut v = vec![0f32; view.data().len() / 4];
        bytemuck::cast_slice_mut::<f32, u8>(&mut v).copy_from_slice(view.data());
        black_box(&v);
    }
    t.elapsed()
}

/// `Checkpoint::open` + `read_tensor::<f32>` of every tensor, checked.
fn cairn_load(path: &Path, data: &Data) -> Duration {
    let t = Instant::now();
    let ck = Checkpoint::open(path).expect("open");
    for i in 0..data.tensors.len() {
        let v: Vec<f32> = ck.read_tensor(&Data::name(i)).expect("read tensor");
        black_box(&v);
    }
    t.elapsed()
}

/// A durable save into `path` (temp file, fsync, rename, directory
/// fsync), after `sync` and a pause so the last save's writeback is done.
fn timed_save(path: &Path, data: &Data, opts: &WriterOptions) -> Duration {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    write_cairn(path, data, opts);
    t.elapsed()
}

fn cairn_encode(data: &Data, opts: &WriterOptions) -> Duration {
    let t = Instant::now();
    let mut w = CheckpointWriter::with_sink(NullSink(0), opts.clone()).expect("writer");
    for (i, tensor) in data.tensors.iter().enumerate() {
        w.add_tensor(&Data::name(i), &data.shape, tensor).expect("add tensor");
    }
    black_box(w.finish().expect("finish"));
    t.elapsed()
}

fn check_equal(path: &Path, data: &Data) {
    let ck = Checkpoint::open(path).expect("open");
    for (i, t) in data.tensors.iter().enumerate() {
        let v: Vec<f32> = ck.read_tensor(&Data::name(i)).expect("read tensor");
        // Bit for bit: shuffled weights read as f32 may hold NaNs.
        let same = bytemuck::cast_slice::<f32, u8>(&v) == bytemuck::cast_slice::<f32, u8>(t);
        assert!(same, "tensor {i} of {} reads back different", path.display());
    }
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let v = sorted(v.to_vec());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One target: `rounds` pairs of timings of the measured side (`a`) and its
/// baseline (`b`), taken in turn.
struct Pair {
    what: &'static str,
    a: &'static str,
    b: &'static str,
    bytes: u64,
    ta: Vec<f64>,
    tb: Vec<f64>,
    /// The figure is `time(a) / time(b)` (`true`) or `time(b) / time(a)`.
    a_over_b: bool,
    limit: f64,
}

impl Pair {
    fn run(
        what: &'static str,
        (a, b): (&'static str, &'static str),
        bytes: u64,
        rounds: usize,
        mut run_a: impl FnMut() -> Duration,
        mut run_b: impl FnMut() -> Duration,
    ) -> Self {
        eprintln!("{what}");
        // One untimed round of each: first-touch costs (page cache, pools).
        run_a();
        run_b();
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // Alternate which side goes first, so neither always follows the other.
            let (x, y) = if r % 2 == 0 {
                let x = run_a();
                (x, run_b())
            } else {
                let y = run_b();
                (run_a(), y)
            };
            ta.push(x.as_secs_f64());
            tb.push(y.as_secs_f64());
        }
        Pair { what, a, b, bytes, ta, tb, a_over_b: true, limit: 1.0 }
    }

    fn ratios(&self) -> Vec<f64> {
        self.ta.iter().zip(&self.tb).map(|(a, b)| if self.a_over_b { a / b } else { b / a }).collect()
    }

    fn passes(&self) -> bool {
        let m = median(&self.ratios());
        if self.a_over_b {
            m <= self.limit
        } else {
            m >= self.limit
        }
    }

    fn print(&self) {
        let rate = |t: &[f64]| self.bytes as f64 / median(t) / 1e9;
        let range = |t: &[f64]| {
            let s = sorted(t.to_vec());
            format!("{:.3}–{:.3}", s[0], s[s.len() - 1])
        };
        let r = sorted(self.ratios());
        let (op, figure) = if self.a_over_b { ("≤", "time ratio") } else { ("≥", "speed-up") };
        println!(
            "| {} | {} {:.3} s ({}; {:.2} GB/s) | {} {:.3} s ({}; {:.2} GB/s) | {figure} {:.2}× ({:.2}–{:.2}) | {op} {:.1}× | {} |",
            self.what,
            self.a,
            median(&self.ta),
            range(&self.ta),
            rate(&self.ta),
            self.b,
            median(&self.tb),
            range(&self.tb),
            rate(&self.tb),
            median(&r),
            r[0],
            r[r.len() - 1],
            self.limit,
            if self.passes() { "PASS" } else { "FAIL" }
        );
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let tensors = env_usize("CAIRN_BENCH_TENSORS", 64);
    let mib = env_usize("CAIRN_BENCH_TENSOR_MIB", 16);
    let rounds = env_usize("CAIRN_BENCH_ROUNDS", 7);
    let started = Instant::now();
    let load_at_start = load_average();
    let data = Data { tensors: weights::weights(tensors, mib), shape: [(mib * 256) as u64, 1024] };
    let bytes = data.bytes();
    let tmp = tempfile::Builder::new().prefix("cairn-limits-").tempdir_in(dir::bench_dir()).expect("temp dir");
    let st = tmp.path().join("model.safetensors");
    let plain = tmp.path().join("none.cairn");
    let lz4 = tmp.path().join("lz4.cairn");
    let lz4s = tmp.path().join("lz4s.cairn");
    write_safetensors(&st, &data);
    let opts = WriterOptions::default();
    let lz4_opts = opts.clone().compression(Compression::Lz4);
    let lz4s_opts = lz4_opts.clone().shuffle(true);
    write_cairn(&plain, &data, &opts);
    write_cairn(&lz4, &data, &lz4_opts);
    write_cairn(&lz4s, &data, &lz4s_opts);
    for p in [&plain, &lz4, &lz4s] {
        check_equal(p, &data);
    }

    let only = std::env::var("CAIRN_BENCH_ONLY").unwrap_or_default();
    let wanted = |what: &str| only.is_empty() || only.split(',').any(|w| w.trim() == what);
    let mut pairs = Vec::new();
    if wanted("load") {
        pairs.push(Pair::run(
            "verified load, uncompressed",
            ("cairn open + read_tensor all", "safetensors mmap + copy all"),
            bytes,
            rounds,
            || cairn_load(&plain, &data),
            || safetensors_load(&st, &data),
        ));
        pairs.push(Pair::run(
            "verified load, uncompressed, cold page cache",
            ("cairn open + read_tensor all", "safetensors mmap + copy all"),
            bytes,
            rounds,
            || {
                evict(&plain);
                cairn_load(&plain, &data)
            },
            || {
                evict(&st);
                safetensors_load(&st, &data)
            },
        ));
    }
    if wanted("shuffle") {
        let mut p = Pair::run(
            "lz4 + shuffle, encode",
            ("lz4+shuffle", "lz4"),
            bytes,
            rounds,
            || cairn_encode(&data, &lz4s_opts),
            || cairn_encode(&data, &lz4_opts),
        );
        p.limit = 1.5;
        pairs.push(p);
        let save = tmp.path().join("save.cairn");
        let mut p = Pair::run(
            "lz4 + shuffle, durable save",
            ("lz4+shuffle", "lz4"),
            bytes,
            rounds,
            || timed_save(&save, &data, &lz4s_opts),
            || timed_save(&save, &data, &lz4_opts),
        );
        p.limit = 1.5;
        pairs.push(p);
        let mut p = Pair::run(
            "lz4 + shuffle, verified load",
            ("lz4+shuffle", "lz4"),
            bytes,
            rounds,
            || cairn_load(&lz4s, &data),
            || cairn_load(&lz4, &data),
        );
        p.limit = 1.5;
        pairs.push(p);
        let pre = shuffled_beforehand(&data, cairn::format::DEFAULT_FRAME_SIZE as usize);
        let lz4_pre = tmp.path().join("lz4-preshuffled.cairn");
        write_cairn(&lz4_pre, &pre, &lz4_opts);
        check_equal(&lz4_pre, &pre);
        let mut p = Pair::run(
            "lz4 + shuffle against lz4 of the same shuffled bytes, encode",
            ("lz4+shuffle", "lz4 of the weights shuffled beforehand"),
            bytes,
            rounds,
            || cairn_encode(&data, &lz4s_opts),
            || cairn_encode(&pre, &lz4_opts),
        );
        p.limit = 1.5;
        pairs.push(p);
        let mut p = Pair::run(
            "lz4 + shuffle against lz4 of the same shuffled bytes, verified load",
            ("lz4+shuffle", "lz4 of the weights shuffled beforehand"),
            bytes,
            rounds,
            || cairn_load(&lz4s, &data),
            || cairn_load(&lz4_pre, &pre),
        );
        p.limit = 1.5;
        pairs.push(p);
    }
    if wanted("zstd") {
        let zstd = |n| WriterOptions::default().compression(Compression::Zstd(3)).threads(Some(n));
        let (one, two) = (zstd(1), zstd(2));
        let mut p = Pair::run(
            "zstd(3) encode, 2 threads vs 1",
            ("threads(2)", "threads(1)"),
            bytes,
            rounds,
            || cairn_encode(&data, &two),
            || cairn_encode(&data, &one),
        );
        p.a_over_b = false;
        p.limit = 1.7;
        pairs.push(p);
    }

    println!(
        "### Limits: {tensors} tensors × {mib} MiB of f32 ({:.0} MiB), {rounds} paired rounds",
        bytes as f64 / (1u64 << 20) as f64
    );
    println!();
    println!("| target | measured (median, min–max) | baseline (median, min–max) | per-round figure, median (min–max) | limit | result |");
    println!("|---|---|---|---|---|---|");
    for p in &pairs {
        p.print();
    }
    println!();
    let mib = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / f64::from(1 << 20));
    println!(
        "- stored: uncompressed {:.0} MiB, lz4 {:.0} MiB, lz4+shuffle {:.0} MiB",
        mib(&plain),
        mib(&lz4),
        mib(&lz4s)
    );
    println!("- rayon global pool: {} threads", rayon::current_num_threads());
    println!("- load average at start: {load_at_start}; at end: {}", load_average());
    println!("- total bench time: {:.0} s", started.elapsed().as_secs_f64());
}
