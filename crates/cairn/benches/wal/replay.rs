//! Replay throughput: a log of N records of 64 bytes, written under
//! `SyncPolicy::Never` and closed, read back whole through the read-only
//! `WalReader` and through `Wal::open` (recovery), beside reading the same
//! segment files and checksumming every byte, the floor for any replay.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn::io::StdFs;
use cairn::wal::{SyncPolicy, Wal, WalOptions, WalReader};

use crate::common::{dir_bytes, payload, remove_dir, settle, Config, Stats};

pub const RECORD: usize = 64;
/// Records per `append_batch` while the log is written.
const BATCH: usize = 1024;

/// One way of reading the log, over the rounds.
pub struct Row {
    pub key: &'static str,
    pub label: &'static str,
    pub how: &'static str,
    /// Seconds per full pass.
    pub secs: Vec<f64>,
    /// Seconds of the open (scan, or scan + repair) within each pass, for
    /// the ways that open something.
    pub open_secs: Vec<f64>,
}

impl Row {
    /// Records per second at the median pass.
    pub fn rate(&self, records: u64) -> f64 {
        records as f64 / Stats::from(self.secs.clone()).median()
    }
}

pub struct Replay {
    pub records: u64,
    pub log_bytes: u64,
    pub segments: usize,
    pub write_secs: f64,
    pub rows: Vec<Row>,
}

impl Replay {
    pub fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }
}

/// Record `i` (from 0) is 64 bytes: `i` little-endian, then fixed noise.
fn write_log(dir: &Path, records: u64) {
    let noise = payload(RECORD, 7);
    let opts = WalOptions::default().sync(SyncPolicy::Never);
    let wal = Wal::open_with(StdFs::shared(), dir, opts).expect("open log");
    let mut buf = Vec::with_capacity(BATCH * RECORD);
    let mut i = 0u64;
    while i < records {
        buf.clear();
        let n = (records - i).min(BATCH as u64);
        for j in i..i + n {
            buf.extend_from_slice(&j.to_le_bytes());
            buf.extend_from_slice(&noise[8..]);
        }
        wal.append_batch(buf.chunks(RECORD)).expect("append batch");
        i += n;
    }
    wal.close().expect("close log");
}

/// What a consumer does with each record here: checks it is the next one.
#[inline]
fn check(expected: u64, lsn: u64, payload: &[u8]) {
    assert!(lsn == expected + 1 && payload.get(..8) == Some(&expected.to_le_bytes()[..]), "record {lsn} is wrong");
}

/// Reads every file of the log directory and computes CRC32C over it.
fn read_and_checksum(dir: &Path) -> (Duration, Option<Duration>) {
    let t = Instant::now();
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("list log").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut crc = 0;
    for f in files {
        let bytes = std::fs::read(&f).expect("read segment");
        crc = crc32c::crc32c_append(crc, &bytes);
    }
    black_box(crc);
    (t.elapsed(), None)
}

fn reader_next_ref(dir: &Path, records: u64) -> (Duration, Option<Duration>) {
    let t = Instant::now();
    let reader = WalReader::open(dir).expect("open reader");
    let opened = t.elapsed();
    let mut it = reader.iter_from(1);
    let mut n = 0u64;
    while let Some((lsn, p)) = it.next_ref().expect("read record") {
        check(n, lsn, p);
        n += 1;
    }
    let elapsed = t.elapsed();
    assert!(n == records, "read {n} records, wrote {records}");
    (elapsed, Some(opened))
}

fn reader_iterator(dir: &Path, records: u64) -> (Duration, Option<Duration>) {
    let t = Instant::now();
    let reader = WalReader::open(dir).expect("open reader");
    let opened = t.elapsed();
    let mut n = 0u64;
    for r in reader.iter_from(1) {
        let r = r.expect("read record");
        check(n, r.lsn, &r.payload);
        n += 1;
    }
    let elapsed = t.elapsed();
    assert!(n == records, "read {n} records, wrote {records}");
    (elapsed, Some(opened))
}

fn wal_next_ref(dir: &Path, records: u64) -> (Duration, Option<Duration>) {
    let t = Instant::now();
    let opts = WalOptions::default().sync(SyncPolicy::Never);
    let wal = Wal::open_with(StdFs::shared(), dir, opts).expect("open log");
    let opened = t.elapsed();
    let mut it = wal.iter_from(1);
    let mut n = 0u64;
    while let Some((lsn, p)) = it.next_ref().expect("read record") {
        check(n, lsn, p);
        n += 1;
    }
    let elapsed = t.elapsed();
    assert!(n == records && wal.recovery().records == records, "read {n} records, wrote {records}");
    drop(it);
    wal.close().expect("close log");
    (elapsed, Some(opened))
}

type Pass = fn(&Path, u64) -> (Duration, Option<Duration>);

const WAYS: [(&str, &str, &str, Pass); 4] = [
    (
        "read-crc",
        "read segment files + CRC32C (floor)",
        "std::fs::read of every file in the log directory, crc32c over all bytes; no parsing",
        |d, _| read_and_checksum(d),
    ),
    (
        "reader",
        "WalReader::open + next_ref",
        "WalReader::open (scans and checks the log), iter_from(1), next_ref until None; each record's LSN and first 8 bytes checked",
        reader_next_ref,
    ),
    (
        "reader-iter",
        "WalReader::open + Iterator (Vec per record)",
        "as above, iterating with Iterator::next, which copies each payload into a new Vec",
        reader_iterator,
    ),
    (
        "wal",
        "Wal::open (recovery) + next_ref",
        "Wal::open_with(StdFs, dir, SyncPolicy::Never): lock, scan, repair, sync of the last segment; then iter_from(1) + next_ref; close untimed",
        wal_next_ref,
    ),
];

pub fn bench_replay(cfg: &Config) -> Replay {
    let records = cfg.records;
    eprintln!("replay: writing {records} records of {RECORD} B under SyncPolicy::Never");
    let dir = cfg.fresh("replay");
    let t = Instant::now();
    write_log(&dir, records);
    let write_secs = t.elapsed().as_secs_f64();
    let log_bytes = dir_bytes(&dir);
    let segments = WalReader::open(&dir).expect("open reader").report().segments;
    settle();
    let mut rows: Vec<Row> = WAYS
        .iter()
        .map(|&(key, label, how, _)| Row { key, label, how, secs: Vec::new(), open_secs: Vec::new() })
        .collect();
    // One untimed pass of each first, so every timed one reads from the
    // page cache alike.
    for (_, _, _, pass) in WAYS {
        pass(&dir, records);
    }
    for round in 1..=cfg.reps {
        for (row, (_, _, _, pass)) in rows.iter_mut().zip(WAYS) {
            let (total, open) = pass(&dir, records);
            row.secs.push(total.as_secs_f64());
            row.open_secs.extend(open.map(|d| d.as_secs_f64()));
        }
        eprintln!("  replay round {round} of {}", cfg.reps);
    }
    remove_dir(&dir);
    Replay { records, log_bytes, segments, write_secs, rows }
}
