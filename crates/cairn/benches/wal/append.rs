//! Append throughput: 1, 4 and 16 writers sharing one log under each sync
//! policy, beside a raw `write_all` + `sync_data` loop on a plain file in
//! the same directory, the most one writer can get under `SyncPolicy::Always`.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cairn::wal::{SyncPolicy, Wal, WalOptions};

use crate::common::{payload, remove_dir, settle, Config, Stats};
use crate::counting_fs::{self, Counts, Snapshot};

pub const SIZES: [usize; 2] = [64, 4096];
pub const WRITERS: [usize; 3] = [1, 4, 16];
const INTERVAL: Duration = Duration::from_millis(1);

/// What appends: the baseline loop or a log under one sync policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Raw,
    Always,
    Interval,
    Never,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Raw => "raw write_all + sync_data loop",
            Mode::Always => "SyncPolicy::Always",
            Mode::Interval => "SyncPolicy::Interval(1 ms)",
            Mode::Never => "SyncPolicy::Never",
        }
    }

    fn sync(self) -> SyncPolicy {
        match self {
            Mode::Raw | Mode::Always => SyncPolicy::Always,
            Mode::Interval => SyncPolicy::Interval(INTERVAL),
            Mode::Never => SyncPolicy::Never,
        }
    }

    /// Per-append latencies are recorded where an append waits for a sync;
    /// elsewhere the two clock reads would be a visible part of its cost.
    fn timed(self) -> bool {
        matches!(self, Mode::Raw | Mode::Always)
    }
}

/// One configuration's share of a round: its time slices, summed.
pub struct Run {
    pub records: u64,
    pub elapsed: Duration,
    /// Microseconds per append (or per write + sync), when recorded.
    pub latencies_us: Vec<u32>,
    /// Writes and syncs of the log file(s) while the clock ran.
    pub io: Snapshot,
    /// Records/s of each slice, in the order they ran.
    pub slice_rates: Vec<f64>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    fn empty() -> Self {
        Run {
            records: 0,
            elapsed: Duration::ZERO,
            latencies_us: Vec::new(),
            io: Snapshot::default(),
            slice_rates: Vec::new(),
        }
    }

    fn add(&mut self, other: Run) {
        self.slice_rates.push(other.rate());
        self.records += other.records;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.io.writes += other.io.writes;
        self.io.syncs += other.io.syncs;
        self.io.sync_nanos += other.io.sync_nanos;
    }
}

/// One configuration, set up on a fresh file or log and run in time slices.
struct Contender {
    mode: Mode,
    size: usize,
    writers: usize,
    dir: PathBuf,
    target: Target,
    /// This round's slices, summed.
    round: Run,
}

enum Target {
    /// The baseline's file and record.
    Raw(File, Vec<u8>),
    Wal(Arc<Wal>, Arc<Counts>),
}

impl Contender {
    fn open(cfg: &Config, mode: Mode, size: usize, writers: usize) -> Self {
        let dir = cfg.fresh("append");
        let target = match mode {
            Mode::Raw => {
                std::fs::create_dir_all(&dir).expect("create directory");
                Target::Raw(File::create(dir.join("raw.bin")).expect("create baseline file"), payload(size, 1))
            }
            _ => {
                let (fs, counts) = counting_fs::std_fs();
                let opts = WalOptions::default().sync(mode.sync());
                Target::Wal(Arc::new(Wal::open_with(fs, &dir, opts).expect("open log")), counts)
            }
        };
        Contender { mode, size, writers, dir, target, round: Run::empty() }
    }

    fn slice(&mut self, secs: Duration) {
        let run = match &mut self.target {
            Target::Raw(file, data) => raw_loop(file, data, secs),
            Target::Wal(wal, counts) => wal_appends(wal, counts, self.mode, self.size, self.writers, secs),
        };
        self.round.add(run);
    }

    /// Closes the file or log, deletes it, and files the round's figures.
    fn finish(self, cases: &mut Vec<Case>) {
        let Contender { mode, size, writers, dir, target, round } = self;
        match target {
            Target::Raw(file, _) => drop(file),
            Target::Wal(wal, _) => {
                let wal = Arc::try_unwrap(wal).expect("the writers are done");
                assert!(
                    wal.last_lsn() == Some(round.records),
                    "the log holds a different number of records than were appended"
                );
                wal.close().expect("close log");
            }
        }
        remove_dir(&dir);
        eprintln!("  {:<32} {size:>5} B × {writers:>2}: {:>10.0} records/s", mode.label(), round.rate());
        match cases.iter_mut().find(|c| c.mode == mode && c.size == size && c.writers == writers) {
            Some(c) => c.runs.push(round),
            None => cases.push(Case { mode, size, writers, runs: vec![round] }),
        }
    }
}

/// The baseline: one thread, `write_all` of the record then `sync_data`,
/// until `secs` have passed.
fn raw_loop(file: &mut File, data: &[u8], secs: Duration) -> Run {
    let mut latencies_us = Vec::new();
    let mut sync_nanos = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        file.write_all(data).expect("write");
        let synced = Instant::now();
        file.sync_data().expect("fdatasync");
        sync_nanos += u64::try_from(synced.elapsed().as_nanos()).unwrap_or(u64::MAX);
        latencies_us.push(micros(t.elapsed()));
    }
    let elapsed = start.elapsed();
    let n = latencies_us.len() as u64;
    Run { records: n, elapsed, latencies_us, io: Snapshot { writes: n, syncs: n, sync_nanos }, slice_rates: Vec::new() }
}

/// `writers` threads appending `size`-byte records to `wal` for `secs`.
/// Timing starts when all threads are released and stops once every thread
/// has finished the append it was in when told to stop.
fn wal_appends(wal: &Arc<Wal>, counts: &Counts, mode: Mode, size: usize, writers: usize, secs: Duration) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let start_line = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (wal, stop, start_line) = (Arc::clone(wal), Arc::clone(&stop), Arc::clone(&start_line));
            std::thread::spawn(move || {
                let data = payload(size, 2 + w as u64);
                let mut latencies_us = Vec::new();
                let mut n = 0u64;
                start_line.wait();
                while !stop.load(Ordering::Relaxed) {
                    if mode.timed() {
                        let t = Instant::now();
                        wal.append(&data).expect("append");
                        latencies_us.push(micros(t.elapsed()));
                    } else {
                        wal.append(&data).expect("append");
                    }
                    n += 1;
                }
                (n, latencies_us)
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    let io_before = counts.now();
    std::thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    let mut run = Run::empty();
    for h in handles {
        let (n, lat) = h.join().expect("writer thread");
        run.records += n;
        run.latencies_us.extend(lat);
    }
    run.elapsed = start.elapsed();
    run.io = counts.now().since(io_before);
    run
}

/// One configuration and its runs, one per round.
pub struct Case {
    pub mode: Mode,
    pub size: usize,
    pub writers: usize,
    pub runs: Vec<Run>,
}

impl Case {
    pub fn rates(&self) -> Vec<f64> {
        self.runs.iter().map(Run::rate).collect()
    }

    /// Records/s of every slice of every round, in the order they ran.
    pub fn slice_rates(&self) -> Vec<f64> {
        self.runs.iter().flat_map(|r| r.slice_rates.iter().copied()).collect()
    }

    pub fn stats(&self) -> Stats {
        Stats::from(self.rates())
    }

    /// Records per write, records per sync and mean milliseconds per sync,
    /// over all rounds (`None` where there was no write or no sync).
    pub fn io(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let records: u64 = self.runs.iter().map(|r| r.records).sum();
        let writes: u64 = self.runs.iter().map(|r| r.io.writes).sum();
        let syncs: u64 = self.runs.iter().map(|r| r.io.syncs).sum();
        let nanos: u64 = self.runs.iter().map(|r| r.io.sync_nanos).sum();
        let per = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        (per(records, writes), per(records, syncs), per(nanos, syncs).map(|x| x / 1e6))
    }

    /// Latencies of every append of every round, in microseconds.
    pub fn latencies(&self) -> Stats {
        Stats::from(self.runs.iter().flat_map(|r| r.latencies_us.iter().map(|&x| f64::from(x))).collect())
    }
}

pub fn find(cases: &[Case], mode: Mode, size: usize, writers: usize) -> Option<&Case> {
    cases.iter().find(|c| c.mode == mode && c.size == size && c.writers == writers)
}

/// Slices per round for the configurations a target compares.
const SLICES: u32 = 4;

/// Every configuration, `cfg.reps` rounds of `cfg.secs` each. In a round,
/// the raw loop and the `SyncPolicy::Always` logs of one record size take turns
/// in slices of a quarter of that time, each on its own file or log kept
/// open for the round: the shared disk's fsync latency drifts between
/// about 0.3 and 4 ms from one second to the next, and slices let those
/// phases hit every configuration a target compares alike. The other sync
/// policies run whole, one after another.
pub fn bench_appends(cfg: &Config) -> Vec<Case> {
    let mut cases = Vec::new();
    let always = if cfg.runs("always") { cfg.reps } else { 0 };
    let relaxed = if cfg.runs("relaxed") { cfg.reps } else { 0 };
    for round in 1..=always {
        eprintln!("appends under SyncPolicy::Always and the raw loop, round {round} of {}", cfg.reps);
        for size in SIZES {
            let mut group = vec![Contender::open(cfg, Mode::Raw, size, 1)];
            group.extend(WRITERS.iter().map(|&w| Contender::open(cfg, Mode::Always, size, w)));
            settle();
            for _ in 0..SLICES {
                for c in &mut group {
                    c.slice(cfg.secs / SLICES);
                }
            }
            for c in group {
                c.finish(&mut cases);
            }
        }
    }
    for round in 1..=relaxed {
        eprintln!("appends under SyncPolicy::Interval(1 ms) and SyncPolicy::Never, round {round} of {}", cfg.reps);
        for mode in [Mode::Interval, Mode::Never] {
            for size in SIZES {
                for writers in WRITERS {
                    let mut c = Contender::open(cfg, mode, size, writers);
                    settle();
                    c.slice(cfg.secs);
                    c.finish(&mut cases);
                }
            }
        }
    }
    cases
}
