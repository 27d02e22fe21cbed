//! Write-ahead log benchmark: appends per second for 1, 4 and 16 writers
//! under each sync policy (64-byte and 4-KiB records) beside a raw
//! `write_all` + `sync_data` loop measured in the same run; replay
//! throughput of a log of 64-byte records; `StateLog` recovery time
//! against log length, with and without snapshots; and the scan's worst
//! case, a segment with every other record damaged, at growing sizes, beside
//! verifying it undamaged. Prints a markdown report
//! with a PASS/FAIL line per target (one writer against the raw loop, group
//! commit against one writer, replay speed, linear scans of damaged segments).
//!
//! Environment:
//! - `CAIRN_BENCH_SECS` (default 2): seconds each append configuration runs
//!   per round (the raw loop and the `SyncPolicy::Always` logs of one record size
//!   take turns in four slices of a quarter of it);
//! - `CAIRN_BENCH_REPS` (default 3): rounds of every measurement; the
//!   median is reported, with min–max beside it;
//! - `CAIRN_BENCH_RECORDS` (default 1000000): records in the replay log,
//!   and ops in the longest `StateLog` (the others have 1/10 and 1/100);
//! - `CAIRN_BENCH_PARTS`: a comma-separated subset of `always` (the raw
//!   loop and `SyncPolicy::Always`), `relaxed` (`Interval` and `Never`), `replay`,
//!   `recovery` and `damage` to run instead of all of them; targets of parts not run
//!   are reported as not measured;
//! - `CAIRN_BENCH_DIR`: directory in which the bench makes its temp
//!   directory. Default: the nearest `target/` above the working directory,
//!   else the working directory (not `/tmp`, often a different file system).
//!
//! Run with `cargo bench -p cairn --bench wal`; a smoke run:
//! `CAIRN_BENCH_SECS=0.2 CAIRN_BENCH_REPS=1 CAIRN_BENCH_RECORDS=20000 cargo bench -p cairn --bench wal`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

#[path = "wal/append.rs"]
mod append;
#[path = "wal/common.rs"]
mod common;
#[path = "wal/counting_fs.rs"]
mod counting_fs;
#[path = "wal/damage.rs"]
mod damage;
#[path = "wal/replay.rs"]
mod replay;
#[path = "wal/statelog.rs"]
mod statelog;

use std::time::Instant;

use append::{Case, Mode, SIZES, WRITERS};
use common::{paired, thousands, verdict, Config, Stats, MB, MIB};
use replay::Replay;
use statelog::Recovery;

/// The targets the report judges (see `docs/BENCHMARKS.md`).
const ONE_WRITER_VS_RAW: f64 = 0.9;
const GROUP_COMMIT_GAIN: f64 = 10.0;
const REPLAY_RECORDS_PER_SEC: f64 = 2e6;
/// Linear scans: the time per MiB of the largest damaged segment within this
/// factor of the smallest's (a quadratic scan grows with the size).
const DAMAGE_LINEARITY: f64 = 2.0;

fn print_header(cfg: &Config) {
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# cairn write-ahead log benchmark\n");
    println!("- machine: {threads} hardware threads, CPU {}", common::cpu_model());
    println!("- kernel: {}", common::kernel());
    println!("- directory: {}", cfg.dir.path().display());
    println!("- file system: {}", common::file_system_of(cfg.dir.path()));
    println!(
        "- appends: {:.1} s per configuration, fresh log each; replay: {} records; state logs up to {} ops",
        cfg.secs.as_secs_f64(),
        thousands(cfg.records),
        thousands(cfg.records + (cfg.records / 100).clamp(1, 10_000) / 2)
    );
    println!("- rounds per measurement: {}; figures are the median round (min–max shown)", cfg.reps);
    println!("- load average at start: {}", common::load_average());
    println!();
}

fn size_label(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn print_appends(cases: &[Case]) {
    println!("## Appends (MB/s = 10^6 payload bytes/s)\n");
    println!("| # | mode | record | writers | records/s | min–max records/s | MB/s | × raw loop | × 1 writer | latency p50 / p99 ms | records per write / per sync | mean sync ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let opt = |x: Option<f64>, digits: usize| x.map_or_else(|| "–".to_string(), |x| format!("{x:.digits$}"));
    for (i, c) in cases.iter().enumerate() {
        let s = c.stats();
        let raw = append::find(cases, Mode::Raw, c.size, 1).map(|r| r.stats().median());
        let vs_raw = match (c.mode, raw) {
            (Mode::Raw, _) | (_, None) => String::new(),
            (_, Some(r)) => format!("{:.2}×", s.median() / r),
        };
        let one = append::find(cases, c.mode, c.size, 1).map(|o| o.stats().median());
        let vs_one = match one {
            Some(o) if c.writers > 1 => format!("{:.2}×", s.median() / o),
            _ => String::new(),
        };
        let lat = c.latencies();
        let lat = if lat.is_empty() {
            String::new()
        } else {
            format!("{:.3} / {:.3}", lat.quantile(0.5) / 1e3, lat.quantile(0.99) / 1e3)
        };
        let (per_write, per_sync, sync_ms) = c.io();
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0}–{:.0} | {:.2} | {vs_raw} | {vs_one} | {lat} | {} / {} | {} |",
            i + 1,
            c.mode.label(),
            size_label(c.size),
            c.writers,
            s.median(),
            s.min(),
            s.max(),
            s.median() * c.size as f64 / MB,
            opt(per_write, 1),
            opt(per_sync, 1),
            opt(sync_ms, 3),
        );
    }
    println!();
    println!("Each configuration appends the same record from every writer thread to a fresh log (default");
    println!("options but the sync policy: 64 MiB segments) for the set time per round; records/s counts");
    println!("every append that returned. The raw loop is one thread doing `write_all` of a record of the");
    println!("same size to a new file in the same directory, then `sync_data`. The raw loop and the");
    println!("`SyncPolicy::Always` rows of one record size run in turns, in slices of a quarter of that time each,");
    println!("on files and logs kept open through the round; the other rows run whole. Latency is per append");
    println!("(per write + sync for the raw loop), over all rounds, recorded only where an append waits for");
    println!("a sync. Writes and syncs are counted by a pass-through `Fs` wrapper around `StdFs` (the raw");
    println!(
        "loop: one each per record); mean sync ms is the wall time of a `sync_data` call, scheduling delays included."
    );
    println!();
}

fn print_replay(r: &Replay) {
    println!(
        "## Replay of {} records of {} B (log {:.1} MiB in {} segment(s), page cache warm)\n",
        thousands(r.records),
        replay::RECORD,
        r.log_bytes as f64 / MIB,
        r.segments
    );
    println!("| # | measurement | median s | min–max s | M records/s | MB/s of payload | of which open, median ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (i, row) in r.rows.iter().enumerate() {
        let s = Stats::from(row.secs.clone());
        let open = if row.open_secs.is_empty() {
            String::new()
        } else {
            format!("{:.1}", Stats::from(row.open_secs.clone()).median() * 1e3)
        };
        let rate = row.rate(r.records);
        println!(
            "| {} | {} | {:.4} | {:.4}–{:.4} | {:.2} | {:.0} | {open} |",
            i + 1,
            row.label,
            s.median(),
            s.min(),
            s.max(),
            rate / 1e6,
            rate * replay::RECORD as f64 / MB
        );
    }
    println!("\nHow each row is measured:\n");
    for (i, row) in r.rows.iter().enumerate() {
        println!("{}. {}: {}", i + 1, row.label, row.how);
    }
    println!(
        "\nThe log was written with `append_batch` of 1,024 records under `SyncPolicy::Never` and closed ({:.2} s); one untimed pass of each way precedes the timed rounds.\n",
        r.write_secs
    );
}

fn print_recovery(r: &Recovery) {
    println!("## StateLog recovery against log length\n");
    println!(
        "State: 1,000 counters in a BTreeMap; op: {} B postcard-encoded; logs written under `SyncPolicy::Never`; 2 snapshots kept (the default).\n",
        r.op_bytes
    );
    println!("| ops in log | snapshots, log segments | dir MiB | snapshot LSN | log records scanned | ops replayed | open median ms | min–max ms | of which Wal::open ms | build s |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &r.rows {
        let s = Stats::from(row.open_secs.clone());
        let snaps = row.variant.label();
        println!(
            "| {} | {snaps} | {:.1} | {} | {} | {} | {:.2} | {:.2}–{:.2} | {:.2} | {:.2} |",
            thousands(row.ops),
            row.dir_bytes as f64 / MIB,
            row.snapshot_lsn.map_or_else(|| "–".to_string(), thousands),
            thousands(row.wal_records),
            thousands(row.replayed),
            s.median() * 1e3,
            s.min() * 1e3,
            s.max() * 1e3,
            Stats::from(row.wal_secs.clone()).median() * 1e3,
            row.build_secs,
        );
    }
    println!();
    println!("Timed: `StateLog::open_with` until it returns, on a log written and closed before, after one");
    println!("untimed open; the three logs of a length take turns. Each length is whole snapshot intervals");
    println!("plus half of one, so with snapshots the last half interval is replayed, as after a crash at");
    println!("a random moment. \"Log records scanned\" is what `Wal::open` read and checked");
    println!("(`recovery().wal.records`): every record of the segments not yet deleted.\n");
}

fn print_damage(rows: &[damage::Row]) {
    println!("## Scanning a segment with every other record damaged\n");
    println!("| segment MiB | records | problems | verify clean ms | verify damaged ms | × clean | salvage (open + read) ms | verify damaged ms per MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (c, v, s) = (Stats::from(r.clean.clone()), Stats::from(r.verify.clone()), Stats::from(r.salvage.clone()));
        println!(
            "| {} | {} | {} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.2}× | {:.1} ({:.1}–{:.1}) | {:.2} |",
            r.mib,
            thousands(r.records),
            thousands(r.problems),
            c.median() * 1e3,
            c.min() * 1e3,
            c.max() * 1e3,
            v.median() * 1e3,
            v.min() * 1e3,
            v.max() * 1e3,
            v.median() / c.median(),
            s.median() * 1e3,
            s.min() * 1e3,
            s.max() * 1e3,
            damage::Row::per_mib(&r.verify, r.mib) * 1e3,
        );
    }
    println!();
    println!("Records of 64 B (88-byte frames) written under `SyncPolicy::Never` into one segment; every record with");
    println!("an even LSN has a payload byte flipped. Each round verifies the clean copy, then verifies the");
    println!("damaged one, then salvages it (`WalReader` in `Salvage` and every record read); medians of the");
    println!("rounds after one warm-up round, min–max in brackets.\n");
}

fn target_line(target: &str, figures: Option<(String, bool)>) {
    match figures {
        Some((measured, pass)) => println!("| {target} | {measured} | {} |", verdict(pass)),
        None => println!("| {target} | not measured | FAIL |"),
    }
}

/// The median of the ratios of `a` over `b` in slices that ran back to
/// back, with the ratio of the median rounds and of the best rounds beside.
fn compare(a: Option<&Case>, b: Option<&Case>) -> Option<(String, f64)> {
    let (a, b) = (a?, b?);
    let pairs = paired(&a.slice_rates(), &b.slice_rates());
    let (sa, sb) = (a.stats(), b.stats());
    let text = format!(
        "{:.2}× (median of {} slices run back to back, {:.2}–{:.2}); ratio of median rounds {:.2}×, of best rounds {:.2}× ({:.0} vs {:.0} records/s)",
        pairs.median(),
        pairs.len(),
        pairs.min(),
        pairs.max(),
        sa.median() / sb.median(),
        sa.max() / sb.max(),
        sa.median(),
        sb.median()
    );
    Some((text, pairs.median()))
}

fn print_targets(cases: &[Case], replay: Option<&Replay>, recovery: Option<&Recovery>, damage: Option<&[damage::Row]>) {
    println!("## Targets\n");
    println!("| target | measured | result |");
    println!("|---|---|---|");
    for size in SIZES {
        let one = append::find(cases, Mode::Always, size, 1);
        let raw = append::find(cases, Mode::Raw, size, 1);
        target_line(
            &format!(
                "1 writer, SyncPolicy::Always, {} records ≥ {ONE_WRITER_VS_RAW}× raw write+fdatasync loop",
                size_label(size)
            ),
            compare(one, raw).map(|(t, r)| (t, r >= ONE_WRITER_VS_RAW)),
        );
    }
    for size in SIZES {
        let many = append::find(cases, Mode::Always, size, WRITERS[2]);
        let one = append::find(cases, Mode::Always, size, 1);
        let target = format!(
            "{} writers, SyncPolicy::Always, {} records ≥ {GROUP_COMMIT_GAIN}× 1 writer (group commit)",
            WRITERS[2],
            size_label(size)
        );
        target_line(&target, compare(many, one).map(|(t, r)| (t, r >= GROUP_COMMIT_GAIN)));
    }
    for (key, what) in [("reader", "WalReader::open + next_ref"), ("wal", "Wal::open (recovery) + next_ref")] {
        target_line(
            &format!("replay ≥ 2 M records/s of {} B: {what}", replay::RECORD),
            replay.and_then(|r| r.row(key).map(|row| (r, row))).map(|(replay, row)| {
                let rate = row.rate(replay.records);
                (
                    format!("{:.2} M records/s (median of {} rounds)", rate / 1e6, row.secs.len()),
                    rate >= REPLAY_RECORDS_PER_SEC,
                )
            }),
        );
    }
    for (what, pick) in [("wal::verify", 0usize), ("salvage (open + read)", 1)] {
        let figures = damage.and_then(|rows| Some((rows.first()?, rows.last()?))).map(|(small, large)| {
            let series = |r: &damage::Row| if pick == 0 { r.verify.clone() } else { r.salvage.clone() };
            let (a, b) =
                (damage::Row::per_mib(&series(small), small.mib), damage::Row::per_mib(&series(large), large.mib));
            (
                format!(
                    "{:.2}× ({:.2} ms per MiB at {} MiB, {:.2} at {} MiB)",
                    b / a,
                    b * 1e3,
                    large.mib,
                    a * 1e3,
                    small.mib
                ),
                b / a <= DAMAGE_LINEARITY,
            )
        });
        target_line(
            &format!("{what} of a segment with every other record damaged is linear: time per MiB at the largest size ≤ {DAMAGE_LINEARITY}× at the smallest"),
            figures,
        );
    }
    println!();
    // No numeric target: the shape (flat with snapshots) is what matters.
    println!("StateLog recovery from the shortest to the longest log (no numeric target):\n");
    for v in recovery.iter().flat_map(|r| &r.variants) {
        let rows: Vec<_> = recovery.iter().flat_map(|r| &r.rows).filter(|r| r.variant == *v).collect();
        let text = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => format!(
                "{:.2} ms → {:.2} ms ({:.1}×) for {:.0}× the ops",
                a.median() * 1e3,
                b.median() * 1e3,
                b.median() / a.median(),
                b.ops as f64 / a.ops as f64
            ),
            _ => "not measured".into(),
        };
        println!("- snapshots {}: {text}", v.label());
    }
    println!();
}

fn main() {
    let cfg = Config::from_env();
    let t = Instant::now();
    print_header(&cfg);
    let cases = append::bench_appends(&cfg);
    let replay = cfg.runs("replay").then(|| replay::bench_replay(&cfg));
    let recovery = cfg.runs("recovery").then(|| statelog::bench_recovery(&cfg));
    let damage = cfg.runs("damage").then(|| damage::bench_damage(&cfg));

    print_appends(&cases);
    if let Some(r) = &replay {
        print_replay(r);
    }
    if let Some(r) = &recovery {
        print_recovery(r);
    }
    if let Some(rows) = &damage {
        print_damage(rows);
    }
    print_targets(&cases, replay.as_ref(), recovery.as_ref(), damage.as_deref());
    println!("- load average at end: {}", common::load_average());
    println!("- total bench time: {:.0} s", t.elapsed().as_secs_f64());
}
