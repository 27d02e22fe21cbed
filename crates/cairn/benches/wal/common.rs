//! What every part of the WAL benchmark shares: settings from the
//! environment, the temp directory, statistics over repeated runs, and the
//! description of the machine.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MB: f64 = 1e6;
pub const MIB: f64 = (1u64 << 20) as f64;

pub struct Config {
    /// How long each append configuration runs.
    pub secs: Duration,
    /// Rounds of every measurement.
    pub reps: usize,
    /// Records in the replay log, and ops in the longest StateLog.
    pub records: u64,
    pub dir: tempfile::TempDir,
    /// The parts of the benchmark to run (all when empty).
    pub parts: Vec<String>,
    next_id: std::cell::Cell<u64>,
}

/// The parts `CAIRN_BENCH_PARTS` may name.
pub const PARTS: [&str; 5] = ["always", "relaxed", "replay", "recovery", "damage"];

fn env_parse<T: std::str::FromStr + PartialOrd + Default + Copy>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => {
            let x: T = v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a positive number, got {v:?}"));
            assert!(x > T::default(), "{name} must be positive");
            x
        }
        Err(_) => default,
    }
}

fn parts_from_env() -> Vec<String> {
    let Ok(v) = std::env::var("CAIRN_BENCH_PARTS") else { return Vec::new() };
    let parts: Vec<String> = v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
    for p in &parts {
        assert!(PARTS.contains(&p.as_str()), "CAIRN_BENCH_PARTS: unknown part {p:?}; the parts are {PARTS:?}");
    }
    parts
}

impl Config {
    pub fn from_env() -> Self {
        let parent = match std::env::var_os("CAIRN_BENCH_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let cwd = std::env::current_dir().expect("current directory");
                cwd.ancestors().map(|a| a.join("target")).find(|t| t.is_dir()).unwrap_or(cwd)
            }
        };
        std::fs::create_dir_all(&parent).expect("create the bench directory");
        let dir = tempfile::Builder::new().prefix("cairn-wal-bench-").tempdir_in(&parent).expect("create a temp dir");
        Config {
            secs: Duration::from_secs_f64(env_parse("CAIRN_BENCH_SECS", 2.0f64)),
            reps: env_parse("CAIRN_BENCH_REPS", 3usize),
            records: env_parse("CAIRN_BENCH_RECORDS", 1_000_000u64),
            dir,
            parts: parts_from_env(),
            next_id: std::cell::Cell::new(0),
        }
    }

    /// Whether `part` (one of [`PARTS`]) is to run.
    pub fn runs(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }

    /// A path in the temp directory not used before in this run, so every
    /// configuration starts from a fresh log.
    pub fn fresh(&self, what: &str) -> PathBuf {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.dir.path().join(format!("{what}-{id}"))
    }
}

/// Deterministic bytes that no layer can compress or dedupe by accident.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Lets earlier writes drain before a timed run, so one run's writeback
/// does not land in the next one's time: sync every file system, then pause.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(200));
}

pub fn remove_dir(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        assert!(e.kind() == std::io::ErrorKind::NotFound, "cannot remove {}: {e}", path.display());
    }
}

/// Bytes of all files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list directory")
        .map(|e| {
            let e = e.expect("directory entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Repeated measurements of one quantity, sorted ascending.
#[derive(Clone, Debug, Default)]
pub struct Stats(Vec<f64>);

impl Stats {
    pub fn from(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Stats(v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn median(&self) -> f64 {
        let v = &self.0;
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.0.first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(f64::NAN)
    }

    /// The smallest sample at or above the `q` quantile (nearest rank).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
}

/// Ratios `a[i] / b[i]` of two series of rates measured in turns.
pub fn paired(a: &[f64], b: &[f64]) -> Stats {
    Stats::from(a.iter().zip(b).map(|(x, y)| x / y).collect())
}

pub fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------- machine

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

pub fn cpu_model() -> String {
    read_proc("/proc/cpuinfo")
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().into())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn kernel() -> String {
    read_proc("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

/// The mount holding `dir`: the longest mount point that is a prefix of it.
pub fn file_system_of(dir: &Path) -> String {
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

pub fn load_average() -> String {
    read_proc("/proc/loadavg")
        .map_or_else(|| "unknown".into(), |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
