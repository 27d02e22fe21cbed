//! The scan's worst case: a segment with every other record damaged, so
//! that every second record starts a search for the next valid one. Timed
//! for `wal::verify` and for salvage (open + read every record) at growing
//! segment sizes, beside `wal::verify` of the same segment undamaged in the
//! same round. A linear scan keeps the time per MiB flat as the segment
//! grows; the scan this replaced redid the rest of the segment per damaged
//! record (18 s at 2 MB).

use std::path::Path;
use std::time::Instant;

use cairn::io::StdFs;
use cairn::wal::{RecoveryMode, SyncPolicy, Wal, WalOptions, WalReader};

use crate::common::{payload, remove_dir, settle, Config, Stats};

/// Payload bytes per record: frames of exactly 88 bytes, back to back.
const RECORD: usize = 64;
const FRAME: u64 = 24 + RECORD as u64;
/// Segment sizes measured, in MiB.
pub const SIZES_MIB: [u64; 4] = [1, 4, 16, 64];

pub struct Row {
    pub mib: u64,
    pub records: u64,
    /// Seconds per round: verify clean, verify damaged, salvage damaged.
    pub clean: Vec<f64>,
    pub verify: Vec<f64>,
    pub salvage: Vec<f64>,
    /// Problems the damaged verify reported (listed plus counted).
    pub problems: u64,
}

impl Row {
    pub fn per_mib(v: &[f64], mib: u64) -> f64 {
        Stats::from(v.to_vec()).median() / mib as f64
    }
}

/// Writes a one-segment log of `records` records in `dir` and returns the
/// segment's path.
fn write_log(dir: &Path, records: u64, segment_size: u64) -> std::path::PathBuf {
    let opts = WalOptions::default().sync(SyncPolicy::Never).segment_size(segment_size);
    let wal = Wal::open_with(StdFs::shared(), dir, opts).expect("open log");
    let noise = payload(RECORD, 3);
    let mut left = records;
    while left > 0 {
        let n = left.min(1024);
        wal.append_batch((0..n).map(|_| noise.as_slice())).expect("append");
        left -= n;
    }
    wal.close().expect("close");
    let segments = std::fs::read_dir(dir)
        .expect("list log")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wal")));
    assert_eq!(segments.count(), 1, "the log spans one segment");
    dir.join("00000000000000000001.wal")
}

/// Flips a payload byte of every second record (LSN 2, 4, …).
fn damage_every_other(seg: &Path, records: u64) {
    let mut bytes = std::fs::read(seg).expect("read segment");
    for lsn in (2..=records).step_by(2) {
        let at = (32 + (lsn - 1) * FRAME) as usize;
        assert_eq!(bytes[at + 8..at + 16], lsn.to_le_bytes(), "record {lsn} is not where it should be");
        bytes[at + 30] ^= 0xFF;
    }
    std::fs::write(seg, bytes).expect("write segment");
}

pub fn bench_damage(cfg: &Config) -> Vec<Row> {
    let mut rows = Vec::new();
    for mib in SIZES_MIB {
        let records = (mib << 20) / FRAME;
        let clean = cfg.fresh("clean");
        let damaged = cfg.fresh("damaged");
        let size = (mib + 1) << 20;
        write_log(&clean, records, size);
        let seg = write_log(&damaged, records, size);
        damage_every_other(&seg, records);
        let mut row = Row { mib, records, clean: Vec::new(), verify: Vec::new(), salvage: Vec::new(), problems: 0 };
        for round in 0..=cfg.reps {
            settle();
            let t = Instant::now();
            let r = cairn::wal::verify(&StdFs, &clean).expect("verify clean");
            let clean_secs = t.elapsed().as_secs_f64();
            assert!(r.problems.is_empty() && r.records == records);

            let t = Instant::now();
            let r = cairn::wal::verify(&StdFs, &damaged).expect("verify damaged");
            let verify_secs = t.elapsed().as_secs_f64();
            assert_eq!(r.records, records.div_ceil(2));
            row.problems = r.problems.len() as u64 + r.omitted.corrupt + r.omitted.torn;

            let t = Instant::now();
            let reader = WalReader::open_with(StdFs::shared(), &damaged, RecoveryMode::Salvage).expect("salvage");
            let mut it = reader.iter_from(1);
            let mut n = 0u64;
            while let Some((_, p)) = it.next_ref().expect("salvaged record") {
                std::hint::black_box(p);
                n += 1;
            }
            let salvage_secs = t.elapsed().as_secs_f64();
            assert_eq!(n, records.div_ceil(2));
            // The first round warms the page cache and is not counted.
            if round > 0 {
                row.clean.push(clean_secs);
                row.verify.push(verify_secs);
                row.salvage.push(salvage_secs);
            }
        }
        remove_dir(&clean);
        remove_dir(&damaged);
        rows.push(row);
    }
    rows
}
