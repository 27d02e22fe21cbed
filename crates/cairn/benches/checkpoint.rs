//! Checkpoint benchmark: durable save and verified load of N × M MiB of
//! normally distributed f32 tensors (default 64 × 16 MiB = 1 GiB), compared in
//! the same run with a plain `write_all` + `fsync` of the same bytes and with
//! the `safetensors` crate. Prints a markdown report with a PASS/FAIL line per
//! target (saves against the plain write, loads against safetensors, the
//! speed-up from more threads), as `docs/BENCHMARKS.md` records them.
//!
//! Environment:
//! - `CAIRN_BENCH_TENSORS` (default 64) and `CAIRN_BENCH_TENSOR_MIB` (default 16);
//! - `CAIRN_BENCH_REPS` (default 3): runs per measurement; the median is reported;
//! - `CAIRN_BENCH_DIR`: directory in which the bench makes its temp directory.
//!   Default: the nearest `target/` above the working directory, else the
//!   working directory (not `/tmp`, often a different file system).
//!
//! Run with `cargo bench -p cairn --bench checkpoint`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

#[path = "shared/null_sink.rs"]
mod null_sink;
#[path = "shared/weights.rs"]
mod weights;

use null_sink::NullSink;

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn::{Checkpoint, CheckpointWriter, Compression, WriterOptions};
use safetensors::tensor::{serialize_to_file, SafeTensors, TensorView};

/// Timed open + zero-copy accesses per file, after the warm-up ones.
const ZERO_COPY_ITERS: usize = 200;
const ZERO_COPY_WARMUP: usize = 20;
/// cairn's default frame size, used for the hashing ceiling.
const FRAME: usize = 1 << 20;
const MIB: f64 = (1u64 << 20) as f64;

// ---------------------------------------------------------------- setup

struct Config {
    tensors: usize,
    tensor_mib: usize,
    reps: usize,
    dir: tempfile::TempDir,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => {
            let n: usize = v.trim().parse().expect("CAIRN_BENCH_* variables must be positive integers");
            assert!(n > 0, "{name} must be at least 1");
            n
        }
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Self {
        let parent = match std::env::var_os("CAIRN_BENCH_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let cwd = std::env::current_dir().expect("current directory");
                cwd.ancestors().map(|a| a.join("target")).find(|t| t.is_dir()).unwrap_or(cwd)
            }
        };
        std::fs::create_dir_all(&parent).expect("create the bench directory");
        let dir = tempfile::Builder::new().prefix("cairn-bench-").tempdir_in(&parent).expect("create a temp dir");
        Config {
            tensors: env_usize("CAIRN_BENCH_TENSORS", 64),
            tensor_mib: env_usize("CAIRN_BENCH_TENSOR_MIB", 16),
            reps: env_usize("CAIRN_BENCH_REPS", 5),
            dir,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// The tensors, generated once. Tensor `i` is `layer{i}.weight`, shaped
/// `[256 × MiB, 1024]` (so `[4096, 1024]` for 16 MiB).
struct Data {
    tensors: Vec<Vec<f32>>,
    shape: [u64; 2],
}

impl Data {
    fn generate(count: usize, mib: usize) -> Self {
        let tensors = weights::weights(count, mib);
        Data { tensors, shape: [(mib * 256) as u64, 1024] }
    }

    fn name(i: usize) -> String {
        format!("layer{i}.weight")
    }

    fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| std::mem::size_of_val(t.as_slice()) as u64).sum()
    }

    fn tensor_bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.tensors.iter().map(|t| bytemuck::cast_slice::<f32, u8>(t))
    }

    /// The tensor probed by the zero-copy measurement: `layer7.weight`, or
    /// the last one when there are fewer than eight.
    fn probe(&self) -> usize {
        7.min(self.tensors.len() - 1)
    }
}

fn remove_if_exists(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        assert!(e.kind() == std::io::ErrorKind::NotFound, "cannot remove {}: {e}", path.display());
    }
}

// ---------------------------------------------------------------- timing and results

/// Durations of the repeated runs of one measurement, sorted.
struct Samples(Vec<Duration>);

impl Samples {
    fn collect(reps: usize, mut run: impl FnMut() -> Duration) -> Self {
        Self::from((0..reps).map(|_| run()).collect())
    }

    fn from(mut v: Vec<Duration>) -> Self {
        v.sort();
        Samples(v)
    }

    fn median(&self) -> Duration {
        let n = self.0.len();
        if n % 2 == 1 {
            self.0[n / 2]
        } else {
            (self.0[n / 2 - 1] + self.0[n / 2]) / 2
        }
    }

    /// The smallest sample at or above the `q` quantile (nearest rank).
    fn quantile(&self, q: f64) -> Duration {
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    fn min(&self) -> Duration {
        self.0[0]
    }

    fn max(&self) -> Duration {
        self.0[self.0.len() - 1]
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One throughput measurement.
struct Row {
    key: String,
    label: String,
    how: String,
    /// Logical (uncompressed) bytes moved per run.
    bytes: u64,
    samples: Samples,
    file_len: Option<u64>,
    /// Content bytes per stored byte.
    ratio: Option<f64>,
    /// Key of the row this one is compared with.
    reference: Option<&'static str>,
}

impl Row {
    fn new(
        key: impl Into<String>,
        label: impl Into<String>,
        how: impl Into<String>,
        bytes: u64,
        samples: Samples,
    ) -> Self {
        Row {
            key: key.into(),
            label: label.into(),
            how: how.into(),
            bytes,
            samples,
            file_len: None,
            ratio: None,
            reference: None,
        }
    }

    fn compared_with(mut self, key: &'static str) -> Self {
        self.reference = Some(key);
        self
    }

    fn stored(mut self, file_len: u64, ratio: f64) -> Self {
        self.file_len = Some(file_len);
        self.ratio = Some(ratio);
        self
    }

    /// Bytes per second at the median.
    fn rate(&self) -> f64 {
        self.bytes as f64 / self.samples.median().as_secs_f64()
    }
}

/// Open + zero-copy access latencies for one file.
struct Latency {
    label: String,
    file_len: u64,
    frames: usize,
    samples: Samples,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    latencies: Vec<Latency>,
    /// Per-round speed ratios of two measurements run back to back, keyed
    /// "a/b": each round's `time(b) / time(a)`. Their median is robust to the
    /// slow drifts of a shared virtual disk that skew medians of each alone.
    paired: Vec<(String, Vec<f64>)>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, row: Row) {
        eprintln!(
            "  {:<44} median {:>8.3} s  {:>6.2} GB/s",
            row.label,
            row.samples.median().as_secs_f64(),
            row.rate() / 1e9
        );
        self.rows.push(row);
    }

    fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }

    fn rate(&self, key: &str) -> Option<f64> {
        self.row(key).map(Row::rate)
    }

    /// Records, per round, how many times faster `a` ran than `b`.
    fn pair(&mut self, a: &str, b: &str, ta: &[Duration], tb: &[Duration]) {
        let ratios = ta.iter().zip(tb).map(|(x, y)| y.as_secs_f64() / x.as_secs_f64()).collect();
        self.paired.push((format!("{a}/{b}"), ratios));
    }

    /// Median of the per-round ratios of `a` over `b`.
    fn paired_ratio(&self, a: &str, b: &str) -> Option<f64> {
        let key = format!("{a}/{b}");
        let (_, v) = self.paired.iter().find(|(k, _)| *k == key)?;
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
}

/// Lets earlier writes drain before a timed save, so one save's writeback
/// does not land in the next one's time: sync every file system, then pause.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(200));
}

// ---------------------------------------------------------------- measurements

/// Baseline: create, `write_all` every tensor's bytes in turn, `sync_all`.
fn plain_write(path: &Path, data: &Data) -> Duration {
    remove_if_exists(path);
    settle();
    let t = Instant::now();
    let mut f = File::create(path).expect("create");
    for bytes in data.tensor_bytes() {
        f.write_all(bytes).expect("write");
    }
    f.sync_all().expect("fsync");
    t.elapsed()
}

/// A durable cairn save: temp file, frames, index, fsync, rename, dir fsync.
fn cairn_save(path: &Path, data: &Data, opts: &WriterOptions) -> Duration {
    remove_if_exists(path);
    settle();
    let t = Instant::now();
    let mut w = CheckpointWriter::create(path, opts.clone()).expect("create writer");
    for (i, tensor) in data.tensors.iter().enumerate() {
        w.add_tensor(&Data::name(i), &data.shape, tensor).expect("add tensor");
    }
    w.finish().expect("finish");
    t.elapsed()
}

/// Opens the file and runs a full verify on the current rayon pool.
fn cairn_open_verify(path: &Path) -> Duration {
    let t = Instant::now();
    let ck = Checkpoint::open(path).expect("open");
    let report = ck.verify().expect("verify");
    let elapsed = t.elapsed();
    assert!(report.is_ok(), "verify found problems: {:?}", report.problems);
    elapsed
}

/// Opens the file and reads every tensor into a new `Vec<f32>` (checked).
fn cairn_read_all(path: &Path, data: &Data) -> Duration {
    let t = Instant::now();
    let ck = Checkpoint::open(path).expect("open");
    for i in 0..data.tensors.len() {
        let v: Vec<f32> = ck.read_tensor(&Data::name(i)).expect("read tensor");
        black_box(&v);
    }
    t.elapsed()
}

/// Untimed: what was written reads back equal.
fn check_content(path: &Path, data: &Data) {
    let ck = Checkpoint::open(path).expect("open");
    for (i, tensor) in data.tensors.iter().enumerate() {
        let v: Vec<f32> = ck.read_tensor(&Data::name(i)).expect("read tensor");
        assert!(v == *tensor, "tensor {i} differs after a round trip through {}", path.display());
    }
}

/// File length and content bytes per stored byte, from the index.
fn stored_size(path: &Path) -> (u64, f64) {
    let ck = Checkpoint::open(path).expect("open");
    let raw: u64 = ck.chunks().iter().map(|c| c.raw_len).sum();
    let stored: u64 = ck.chunks().iter().map(|c| c.stored_len).sum();
    (ck.file_len(), raw as f64 / stored as f64)
}

/// `serialize_to_file` (which writes through a `BufWriter` and does not
/// sync), then `sync_all` on the file. No directory sync, like the baseline.
fn safetensors_save(path: &Path, data: &Data) -> Duration {
    remove_if_exists(path);
    settle();
    let shape: Vec<usize> = data.shape.iter().map(|d| *d as usize).collect();
    let t = Instant::now();
    let views = data.tensor_bytes().enumerate().map(|(i, bytes)| {
        (Data::name(i), TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).expect("tensor view"))
    });
    serialize_to_file(views, &None, path).expect("serialize_to_file");
    File::open(path).expect("reopen").sync_all().expect("fsync");
    t.elapsed()
}

/// Copies each tensor of a deserialized safetensors buffer into a new
/// `Vec<f32>`, as `read_tensor` gives: zero-filled, then copied into.
fn safetensors_copy_out(buf: &[u8], data: &Data) {
    let st = SafeTensors::deserialize(buf).expect("deserialize");
    for i in 0..data.tensors.len() {
        let view = st.tensor(&Data::name(i)).expect("tensor");
        let mut v = vec![0f32; view.data().len() / 4];
        bytemuck::cast_slice_mut::<f32, u8>(&mut v).copy_from_slice(view.data());
        black_box(&v);
    }
}

/// `std::fs::read` of the whole file, deserialize, copy out every tensor.
fn safetensors_load_read(path: &Path, data: &Data) -> Duration {
    let t = Instant::now();
    let buf = std::fs::read(path).expect("read");
    safetensors_copy_out(&buf, data);
    t.elapsed()
}

/// Memory-map the file, deserialize, copy out every tensor.
fn safetensors_load_mmap(path: &Path, data: &Data) -> Duration {
    let t = Instant::now();
    let file = File::open(path).expect("open");
    // SAFETY: the bench owns the file and does not modify it while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mmap");
    safetensors_copy_out(&map, data);
    t.elapsed()
}

/// Times `Checkpoint::open` + `tensor::<f32>(probe)` + reading its middle
/// element; the drop (munmap) is outside the timed part.
fn open_zero_copy(path: &Path, probe: &str, expected: f32) -> Duration {
    let t = Instant::now();
    let ck = Checkpoint::open(path).expect("open");
    let view = ck.tensor::<f32>(probe).expect("zero-copy view");
    let x = black_box(view[view.len() / 2]);
    let elapsed = t.elapsed();
    assert!(x == expected, "zero-copy read the wrong value");
    drop(ck);
    elapsed
}

fn zero_copy_latency(label: String, path: &Path, probe: &str, expected: f32) -> Latency {
    for _ in 0..ZERO_COPY_WARMUP {
        open_zero_copy(path, probe, expected);
    }
    let samples = Samples::from((0..ZERO_COPY_ITERS).map(|_| open_zero_copy(path, probe, expected)).collect());
    let ck = Checkpoint::open(path).expect("open");
    let frames = ck.chunks().iter().map(|c| c.frame_count() as usize).sum();
    Latency { label, file_len: ck.file_len(), frames, samples }
}

/// xxh3 + BLAKE3 of every 1 MiB frame of the in-memory tensors on this one
/// thread: what verify computes per frame, without reading a file.
fn hash_ceiling(data: &Data) -> Duration {
    let t = Instant::now();
    for bytes in data.tensor_bytes() {
        for frame in bytes.chunks(FRAME) {
            black_box(xxhash_rust::xxh3::xxh3_64(frame));
            black_box(blake3::hash(frame));
        }
    }
    t.elapsed()
}

// ---------------------------------------------------------------- groups of measurements

struct SaveConfig {
    key: &'static str,
    label: &'static str,
    compression: Compression,
    shuffle: bool,
}

const CONFIGS: [SaveConfig; 5] = [
    SaveConfig { key: "none", label: "none", compression: Compression::None, shuffle: false },
    SaveConfig { key: "lz4", label: "lz4", compression: Compression::Lz4, shuffle: false },
    SaveConfig { key: "lz4s", label: "lz4+shuffle", compression: Compression::Lz4, shuffle: true },
    SaveConfig { key: "zstd", label: "zstd(3)", compression: Compression::Zstd(3), shuffle: false },
    SaveConfig { key: "zstds", label: "zstd(3)+shuffle", compression: Compression::Zstd(3), shuffle: true },
];

fn key(prefix: &str, c: &SaveConfig) -> String {
    format!("{prefix}-{}", c.key)
}

fn config_path(cfg: &Config, c: &SaveConfig) -> PathBuf {
    cfg.path(&format!("{}.cairn", c.key))
}

fn save_row(path: &Path, data: &Data, c: &SaveConfig, samples: Samples) -> Row {
    let (file_len, ratio) = stored_size(path);
    let how = format!(
        "CheckpointWriter::create, add_tensor × {}, finish (temp file, fsync, rename, dir fsync); compression {}, shuffle {}",
        data.tensors.len(),
        c.compression,
        c.shuffle
    );
    let row = Row::new(key("save", c), format!("cairn save {}", c.label), how, data.bytes(), samples);
    row.compared_with("plain").stored(file_len, ratio)
}

/// The three writes the save targets compare, in rotation (plain,
/// safetensors, cairn uncompressed) so that background load hits them alike.
/// Leaves the safetensors and the uncompressed cairn file for the loads.
fn bench_durable_saves(cfg: &Config, data: &Data, report: &mut Report) {
    eprintln!("plain write+fsync, safetensors save, cairn save none (interleaved)");
    let plain = cfg.path("plain.bin");
    let st = cfg.path("model.safetensors");
    let none = &CONFIGS[0];
    let cairn = config_path(cfg, none);
    let opts = WriterOptions::default();
    let (mut t_plain, mut t_st, mut t_cairn) = (Vec::new(), Vec::new(), Vec::new());
    // One untimed round first: the first GiB written into a fresh VM's page
    // cache runs several times slower than later ones, for all three alike.
    plain_write(&plain, data);
    safetensors_save(&st, data);
    cairn_save(&cairn, data, &opts);
    for _ in 0..cfg.reps {
        t_plain.push(plain_write(&plain, data));
        t_st.push(safetensors_save(&st, data));
        t_cairn.push(cairn_save(&cairn, data, &opts));
    }
    remove_if_exists(&plain);
    report.pair("save-none", "plain", &t_cairn, &t_plain);
    report.pair("save-none", "st-save", &t_cairn, &t_st);
    let bytes = data.bytes();
    let how = "File::create, write_all of each tensor's bytes in turn, sync_all (no rename, no dir sync)";
    report.add(Row::new("plain", "plain write_all + fsync", how, bytes, Samples::from(t_plain)));
    let how = "safetensors::serialize_to_file (BufWriter, no sync) then File::open + sync_all (no dir sync)";
    let file_len = std::fs::metadata(&st).expect("metadata").len();
    let row = Row::new("st-save", "safetensors save + fsync", how, bytes, Samples::from(t_st)).compared_with("plain");
    report.add(row.stored(file_len, bytes as f64 / file_len as f64));
    report.add(save_row(&cairn, data, none, Samples::from(t_cairn)));
}

fn bench_safetensors_loads(cfg: &Config, data: &Data, report: &mut Report) {
    eprintln!("safetensors loads");
    let path = cfg.path("model.safetensors");
    let bytes = data.bytes();
    let samples = Samples::collect(cfg.reps, || safetensors_load_read(&path, data));
    let how = "std::fs::read of the file, SafeTensors::deserialize, copy every tensor into a new Vec<f32> (page cache warm, no checksum)";
    report.add(Row::new("st-load-read", "safetensors load (fs::read)", how, bytes, samples));

    let samples = Samples::collect(cfg.reps, || safetensors_load_mmap(&path, data));
    let how = "mmap, SafeTensors::deserialize, copy every tensor into a new Vec<f32> (page cache warm, no checksum)";
    report.add(Row::new("st-load-mmap", "safetensors load (mmap)", how, bytes, samples));
    remove_if_exists(&path);
}

/// Save with one codec setting, then measure its loads and delete the file.
fn bench_config(cfg: &Config, data: &Data, c: &SaveConfig, report: &mut Report) {
    eprintln!("cairn {}", c.label);
    let path = config_path(cfg, c);
    let opts = WriterOptions::default().compression(c.compression).shuffle(c.shuffle);
    let samples = Samples::collect(cfg.reps, || cairn_save(&path, data, &opts));
    report.add(save_row(&path, data, c, samples));
    bench_loads(cfg, data, c, &path, report);
    remove_if_exists(&path);
}

/// Verify and read back a saved file. The uncompressed file is also used
/// for the zero-copy and one-core verify measurements.
fn bench_loads(cfg: &Config, data: &Data, c: &SaveConfig, path: &Path, report: &mut Report) {
    let bytes = data.bytes();
    check_content(path, data);
    let samples = Samples::collect(cfg.reps, || cairn_open_verify(path));
    let how =
        "Checkpoint::open + verify() on rayon's global pool: checksums, decode, BLAKE3 of every frame (warm cache)";
    report.add(Row::new(key("verify", c), format!("cairn open+verify {}", c.label), how, bytes, samples));

    let samples = Samples::collect(cfg.reps, || cairn_read_all(path, data));
    let how = "Checkpoint::open + read_tensor::<f32> of every tensor into a new Vec (checksummed, decoded; warm cache)";
    let read = Row::new(key("read", c), format!("cairn open+read_tensor all {}", c.label), how, bytes, samples);
    report.add(read.compared_with("st-load-mmap"));

    if c.compression == Compression::None {
        bench_zero_copy(cfg, data, path, report);
        bench_verify_one_core(cfg, data, path, report);
    }
}

/// Open + zero-copy access on the full file and on a file with the same
/// tensors cut short, so that any dependence on file size shows.
fn bench_zero_copy(cfg: &Config, data: &Data, large: &Path, report: &mut Report) {
    eprintln!("zero-copy open");
    let probe = data.probe();
    let name = Data::name(probe);
    let tensor = &data.tensors[probe];
    let expected = tensor[tensor.len() / 2];

    // The same tensors cut to 4 rows: the same chunks and index layout in a
    // file a few hundred times smaller, so only the file size differs.
    let small = cfg.path("small.cairn");
    let small_shape = [4u64, data.shape[1]];
    let small_n = (small_shape[0] * small_shape[1]) as usize;
    let mut w = CheckpointWriter::create(&small, WriterOptions::default()).expect("create writer");
    for (i, t) in data.tensors.iter().enumerate() {
        w.add_tensor(&Data::name(i), &small_shape, &t[..small_n]).expect("add tensor");
    }
    w.finish().expect("finish");
    let small_expected = tensor[small_n / 2];

    let n = data.tensors.len();
    let small_label = format!("{n} tensors × {} KiB", small_n * 4 / 1024);
    let large_label = format!("{n} tensors × {} MiB", (tensor.len() * 4) >> 20);
    report.latencies.push(zero_copy_latency(small_label, &small, &name, small_expected));
    report.latencies.push(zero_copy_latency(large_label, large, &name, expected));
    remove_if_exists(&small);
}

/// Verify of the uncompressed file on a one-thread rayon pool: on a fresh
/// open (the target), then again on the same open file, whose pages are
/// then mapped, to separate page-fault cost from hashing cost.
fn bench_verify_one_core(cfg: &Config, data: &Data, path: &Path, report: &mut Report) {
    eprintln!("verify on one core");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("one-thread pool");
    let bytes = data.bytes();
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    for _ in 0..cfg.reps {
        let t = Instant::now();
        let ck = Checkpoint::open(path).expect("open");
        let first = pool.install(|| ck.verify()).expect("verify");
        fresh.push(t.elapsed());
        let t = Instant::now();
        let second = pool.install(|| ck.verify()).expect("verify");
        again.push(t.elapsed());
        assert!(first.is_ok() && second.is_ok(), "verify found problems");
    }
    let how = "1-thread rayon pool: pool.install(|| Checkpoint::open + verify()) on the uncompressed file (warm cache)";
    report.add(Row::new("verify-1t", "cairn open+verify none, 1 thread", how, bytes, Samples::from(fresh)));
    let how = "as above, a second verify() on the same open Checkpoint: its pages are already mapped";
    report.add(Row::new("verify-1t-again", "cairn verify none, 1 thread, 2nd pass", how, bytes, Samples::from(again)));
    let samples = Samples::collect(cfg.reps, || hash_ceiling(data));
    let how = "xxh3_64 + blake3::hash of each 1 MiB frame of the in-memory tensors on one thread: the hashing ceiling for verify";
    report.add(Row::new("hash-1t", "xxh3+BLAKE3 in memory, 1 thread", how, bytes, samples));
}

/// zstd(3) encoding of every tensor into a [`NullSink`]: hashing,
/// compression and checksums on the writer's pool, no file system.
fn cairn_encode_null(data: &Data, opts: &WriterOptions) -> Duration {
    let t = Instant::now();
    let mut w = CheckpointWriter::with_sink(NullSink(0), opts.clone()).expect("writer");
    for (i, tensor) in data.tensors.iter().enumerate() {
        w.add_tensor(&Data::name(i), &data.shape, tensor).expect("add tensor");
    }
    black_box(w.finish().expect("finish"));
    t.elapsed()
}

/// zstd(3) saves on a writer pool of one and of two threads, interleaved so
/// that background load affects both alike.
fn bench_zstd_threads(cfg: &Config, data: &Data, report: &mut Report) {
    eprintln!("zstd(3) save, 1 vs 2 threads");
    let path = cfg.path("zstd-threads.cairn");
    let opts = |n| WriterOptions::default().compression(Compression::Zstd(3)).threads(Some(n));
    let (one, two) = (opts(1), opts(2));
    let mut t1 = Vec::new();
    let mut t2 = Vec::new();
    for _ in 0..cfg.reps {
        t1.push(cairn_save(&path, data, &one));
        t2.push(cairn_save(&path, data, &two));
    }
    report.pair("zstd-2t", "zstd-1t", &t2, &t1);
    let (mut n1, mut n2) = (Vec::new(), Vec::new());
    for _ in 0..cfg.reps {
        n1.push(cairn_encode_null(data, &one));
        n2.push(cairn_encode_null(data, &two));
    }
    report.pair("null-2t", "null-1t", &n2, &n1);
    let how_null = |n| {
        format!("CheckpointWriter::with_sink(a sink that only counts bytes), zstd(3), threads(Some({n})): the encode pipeline without disk I/O; interleaved")
    };
    report.add(Row::new(
        "null-1t",
        "cairn encode zstd(3), no disk, threads(1)",
        how_null(1),
        data.bytes(),
        Samples::from(n1),
    ));
    let row =
        Row::new("null-2t", "cairn encode zstd(3), no disk, threads(2)", how_null(2), data.bytes(), Samples::from(n2));
    report.add(row.compared_with("null-1t"));
    let how = |n| format!("as cairn save zstd(3), with WriterOptions::threads(Some({n})); runs interleaved 1,2,1,2…");
    report.add(Row::new("zstd-1t", "cairn save zstd(3), threads(1)", how(1), data.bytes(), Samples::from(t1)));
    let row = Row::new("zstd-2t", "cairn save zstd(3), threads(2)", how(2), data.bytes(), Samples::from(t2));
    report.add(row.compared_with("zstd-1t"));
    remove_if_exists(&path);
}

// ---------------------------------------------------------------- printing

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn cpu_model() -> String {
    read_proc("/proc/cpuinfo")
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().into())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The mount holding `dir`: the longest mount point that is a prefix of it.
fn file_system_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = read_proc("/proc/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, mnt, _)| dir.starts_with(mnt))
        .max_by_key(|(_, mnt, _)| mnt.len());
    match best {
        Some((dev, mnt, fs)) => format!("{fs} ({dev} mounted at {mnt})"),
        None => "unknown".into(),
    }
}

fn load_average() -> String {
    read_proc("/proc/loadavg")
        .map_or_else(|| "unknown".into(), |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn print_header(cfg: &Config, data: &Data) {
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# cairn checkpoint benchmark\n");
    println!("- machine: {threads} hardware threads, CPU {}", cpu_model());
    println!("- kernel: {}", read_proc("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
    println!("- rayon global pool: {} threads", rayon::current_num_threads());
    println!("- directory: {}", cfg.dir.path().display());
    println!("- file system: {}", file_system_of(cfg.dir.path()));
    println!(
        "- data: {} tensors × {} MiB = {:.0} MiB of f32 ~ N(0, {}), shape {:?} each, seeded StdRng",
        data.tensors.len(),
        cfg.tensor_mib,
        data.bytes() as f64 / MIB,
        weights::STD_DEV,
        data.shape
    );
    println!("- runs per measurement: {}; figures are the median run (min–max shown)", cfg.reps);
    println!("- load average at start: {}", load_average());
    println!();
}

fn print_rows(report: &Report) {
    println!("## Throughput (GB/s = 10^9 bytes/s of tensor content)\n");
    println!("| # | measurement | median s | min–max s | GB/s | MiB/s | vs | file MiB | raw/stored |");
    println!("|---|---|---:|---:|---:|---:|---|---:|---:|");
    for (i, r) in report.rows.iter().enumerate() {
        let vs = r
            .reference
            .and_then(|k| report.row(k))
            .map_or_else(String::new, |b| format!("{:.2}× {}", r.rate() / b.rate(), b.label));
        let file = r.file_len.map_or_else(String::new, |n| format!("{:.1}", n as f64 / MIB));
        let ratio = r.ratio.map_or_else(String::new, |x| format!("{x:.3}"));
        println!(
            "| {} | {} | {:.3} | {:.3}–{:.3} | {:.2} | {:.0} | {vs} | {file} | {ratio} |",
            i + 1,
            r.label,
            r.samples.median().as_secs_f64(),
            r.samples.min().as_secs_f64(),
            r.samples.max().as_secs_f64(),
            r.rate() / 1e9,
            r.rate() / MIB,
        );
    }
    println!("\nHow each row is measured:\n");
    for (i, r) in report.rows.iter().enumerate() {
        println!("{}. {}: {}", i + 1, r.label, r.how);
    }
    println!();
}

fn print_latencies(report: &Report) {
    println!(
        "## Open + zero-copy access ({ZERO_COPY_ITERS} runs after {ZERO_COPY_WARMUP} warm-up; file in page cache)\n"
    );
    println!("Timed: Checkpoint::open + tensor::<f32>(probe) + reading its middle element; the drop (munmap) is not timed.\n");
    println!("| file | file MiB | frames | median µs | p99 µs | max µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    for l in &report.latencies {
        println!(
            "| {} | {:.1} | {} | {:.1} | {:.1} | {:.1} |",
            l.label,
            l.file_len as f64 / MIB,
            l.frames,
            micros(l.samples.median()),
            micros(l.samples.quantile(0.99)),
            micros(l.samples.max())
        );
    }
    println!();
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Prints one target line; `None` when a figure is missing.
fn target_line(target: &str, figures: Option<(String, bool)>) {
    match figures {
        Some((measured, pass)) => println!("| {target} | {measured} | {} |", verdict(pass)),
        None => println!("| {target} | not measured | FAIL |"),
    }
}

/// "0.93× (median of 5 paired rounds: 0.88–0.97; medians alone 0.91×)".
fn paired_text(report: &Report, a: &str, b: &str, r: f64) -> String {
    let rounds = report.paired.iter().find(|(k, _)| *k == format!("{a}/{b}")).map_or(&[][..], |(_, v)| v.as_slice());
    let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rounds.iter().copied().fold(0.0, f64::max);
    let alone = report.rate(a).zip(report.rate(b)).map_or(f64::NAN, |(x, y)| x / y);
    let best = report
        .row(a)
        .zip(report.row(b))
        .map_or(f64::NAN, |(x, y)| y.samples.min().as_secs_f64() / x.samples.min().as_secs_f64());
    format!(
        "{r:.2}× (median of {} paired rounds, {lo:.2}–{hi:.2}; ratio of medians {alone:.2}×, of best runs {best:.2}×)",
        rounds.len()
    )
}

fn print_targets(report: &Report) {
    println!("## Targets\n");
    println!("| target | measured | result |");
    println!("|---|---|---|");
    target_line(
        "durable uncompressed save ≥ 0.9× plain write+fsync",
        report.paired_ratio("save-none", "plain").map(|r| (paired_text(report, "save-none", "plain", r), r >= 0.9)),
    );
    target_line(
        "durable uncompressed save faster than safetensors save+fsync",
        report.paired_ratio("save-none", "st-save").map(|r| (paired_text(report, "save-none", "st-save", r), r > 1.0)),
    );
    let (small, large) = match report.latencies.as_slice() {
        [s, l] => (Some(s), Some(l)),
        _ => (None, None),
    };
    target_line(
        "open + zero-copy access to one tensor < 1 ms (p99 of the large file)",
        large.map(|l| {
            let p99 = micros(l.samples.quantile(0.99));
            (format!("median {:.1} µs, p99 {p99:.1} µs", micros(l.samples.median())), p99 < 1000.0)
        }),
    );
    target_line(
        "… independent of file size (median large ≤ 1.5× median small)",
        small.zip(large).map(|(s, l)| {
            let r = l.samples.median().as_secs_f64() / s.samples.median().as_secs_f64();
            let measured =
                format!("{:.1} µs vs {:.1} µs ({r:.2}×)", micros(l.samples.median()), micros(s.samples.median()));
            (measured, r <= 1.5)
        }),
    );
    target_line(
        "full verify (open + verify) of the uncompressed file ≥ 2 GB/s on one core",
        report.rate("verify-1t").map(|r| (format!("{:.2} GB/s", r / 1e9), r >= 2e9)),
    );
    target_line(
        "zstd(3) save ≥ 1.7× faster with 2 threads than with 1",
        report.paired_ratio("zstd-2t", "zstd-1t").map(|r| (paired_text(report, "zstd-2t", "zstd-1t", r), r >= 1.7)),
    );
    target_line(
        "… the same encoding without disk I/O (a counting sink), 2 threads vs 1",
        report.paired_ratio("null-2t", "null-1t").map(|r| (paired_text(report, "null-2t", "null-1t", r), r >= 1.7)),
    );
    println!();
    println!("Compression ratios (content bytes / stored bytes):\n");
    for (plain, shuffled, name) in [("save-lz4", "save-lz4s", "lz4"), ("save-zstd", "save-zstds", "zstd(3)")] {
        let get = |k: &str| report.row(k).and_then(|r| r.ratio).map_or_else(|| "n/a".into(), |x| format!("{x:.3}"));
        println!("- {name}: {} without shuffle, {} with shuffle", get(plain), get(shuffled));
    }
    println!();
}

// ---------------------------------------------------------------- main

fn main() {
    let cfg = Config::from_env();
    let t = Instant::now();
    let data = Data::generate(cfg.tensors, cfg.tensor_mib);
    eprintln!("generated {:.0} MiB in {:.1} s", data.bytes() as f64 / MIB, t.elapsed().as_secs_f64());
    print_header(&cfg, &data);

    let mut report = Report::default();
    bench_durable_saves(&cfg, &data, &mut report);
    bench_safetensors_loads(&cfg, &data, &mut report);
    let none = &CONFIGS[0];
    bench_loads(&cfg, &data, none, &config_path(&cfg, none), &mut report);
    remove_if_exists(&config_path(&cfg, none));
    for c in &CONFIGS[1..] {
        bench_config(&cfg, &data, c, &mut report);
    }
    bench_zstd_threads(&cfg, &data, &mut report);
    report.notes.push(format!("load average at end: {}", load_average()));
    report.notes.push(format!("total bench time: {:.0} s", t.elapsed().as_secs_f64()));

    print_rows(&report);
    print_latencies(&report);
    print_targets(&report);
    for n in &report.notes {
        println!("- {n}");
    }
}
