//! Every truncation length and every flipped byte of a small log with three
//! segments: each is detected (an error, or a problem in the report) or
//! harmless (the records read back are exactly those appended), and nothing
//! panics. A flipped byte never costs a record without an error: durable
//! marks vouch for every synced record, the last one included.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use cairn::io::SimFs;
use cairn::wal::{RecoveryMode, SyncPolicy, Wal, WalOptions, WalReader};
use cairn::Error;

const DIR: &str = "/log";
const N: u64 = 15;

fn payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("{lsn}:").into_bytes();
    p.resize(500 + (lsn as usize * 41) % 300, b'a' + (lsn % 26) as u8);
    p
}

/// Every record is synced, and a durable mark follows each sync.
fn opts(mode: RecoveryMode) -> WalOptions {
    WalOptions::default().sync(SyncPolicy::Always).segment_size(4096).recovery(mode)
}

/// The segments of a clean log: (path, bytes), in LSN order.
fn clean_log() -> Vec<(PathBuf, Vec<u8>)> {
    let sim = SimFs::new();
    let wal = Wal::open_with(sim.shared(), DIR, opts(RecoveryMode::Strict)).unwrap();
    for lsn in 1..=N {
        wal.append(&payload(lsn)).unwrap();
    }
    wal.close().unwrap();
    let mut segs: Vec<(PathBuf, Vec<u8>)> = sim
        .list_all()
        .into_iter()
        .filter(|(p, len)| len.is_some() && p.extension().is_some_and(|x| x == "wal"))
        .map(|(p, _)| {
            let p = Path::new("/").join(p);
            let bytes = sim.read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 3, "the sweep wants three segments");
    segs
}

fn sim_with(segs: &[(PathBuf, Vec<u8>)]) -> SimFs {
    let sim = SimFs::new();
    for (p, bytes) in segs {
        sim.put_durable(p, bytes).unwrap();
    }
    sim
}

/// Opens the damaged log every way and checks each outcome. `in_last` says
/// whether the damage lies where a torn write could be. Returns what
/// verification found.
fn check(segs: &[(PathBuf, Vec<u8>)], context: &str, in_last: bool) -> cairn::wal::RecoveryReport {
    let sim = sim_with(segs);
    let verified = cairn::wal::verify(&sim, Path::new(DIR)).unwrap_or_else(|e| panic!("{context}: verify: {e}"));

    // Salvage never fails, and never returns bytes that were not appended.
    let salvaged = WalReader::open_with(sim.shared(), DIR, RecoveryMode::Salvage).unwrap();
    let mut prev = 0;
    for r in salvaged.iter_from(0) {
        let r = r.unwrap_or_else(|e| panic!("{context}: salvage read: {e}"));
        assert!(r.lsn > prev, "{context}: salvage went backwards");
        assert_eq!(r.payload, payload(r.lsn), "{context}: salvage returned wrong bytes for {}", r.lsn);
        prev = r.lsn;
    }

    match Wal::open_with(sim.shared(), DIR, opts(RecoveryMode::TolerateTornTail)) {
        Ok(wal) => {
            assert!(!verified.is_corrupt(), "{context}: open accepted what verify calls corrupt");
            let records: Vec<_> = wal
                .iter_from(0)
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| panic!("{context}: {e}: {:?}", sim.list_all()));
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r.lsn, i as u64 + 1, "{context}");
                assert_eq!(r.payload, payload(r.lsn), "{context}: wrong bytes for LSN {}", r.lsn);
            }
            let k = records.len() as u64;
            if !in_last {
                assert_eq!(k, N, "{context}: records lost silently");
            }
        }
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. }), "{context}: {e}");
            assert!(verified.is_corrupt(), "{context}: open refused what verify accepts: {e}");
        }
    }
    verified
}

#[test]
fn every_flipped_byte_is_detected_or_harmless() {
    let segs = clean_log();
    for s in 0..segs.len() {
        for at in 0..segs[s].1.len() {
            let mut damaged = segs.clone();
            damaged[s].1[at] ^= 0x5A;
            // The durable mark after the last record vouches for it: no flip
            // may cost a record without an error. And every byte is
            // checked (padding and the zeros after the records included):
            // verification names each flip.
            let context = format!("segment {s} byte {at} flipped");
            let verified = check(&damaged, &context, false);
            assert!(!verified.problems.is_empty(), "{context}: verify found nothing");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Several bytes damaged at once, anywhere: verify and opening still
    /// agree, and nothing read back is wrong.
    #[test]
    fn several_damaged_bytes_are_judged_alike_by_verify_and_open(
        flips in proptest::collection::vec((0usize..3, 0usize..4096, 1u8..=255), 1..6)
    ) {
        let mut segs = clean_log();
        for (s, at, x) in &flips {
            let len = segs[*s].1.len();
            segs[*s].1[at % len] ^= x;
        }
        let _ = check(&segs, &format!("flips {flips:?}"), true);
    }
}

#[test]
fn every_truncation_is_detected_or_a_prefix() {
    let segs = clean_log();
    for s in 0..segs.len() {
        for len in 0..segs[s].1.len() {
            let mut cut = segs.clone();
            cut[s].1.truncate(len);
            let last = s + 1 == segs.len();
            // A sealed segment cut short is corruption (check demands it).
            let _ = check(&cut, &format!("segment {s} cut to {len} bytes"), last);
        }
    }
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let mut segs = clean_log();
    segs.remove(1);
    let sim = sim_with(&segs);
    assert!(matches!(
        Wal::open_with(sim.shared(), DIR, opts(RecoveryMode::TolerateTornTail)),
        Err(Error::Corrupt { .. })
    ));
    assert!(cairn::wal::verify(&sim, Path::new(DIR)).unwrap().is_corrupt());
    // Salvage keeps what is there.
    let sim = sim_with(&segs);
    let wal = Wal::open_with(sim.shared(), DIR, opts(RecoveryMode::Salvage)).unwrap();
    assert!(wal.recovery().is_corrupt());
    assert_eq!(wal.append(b"x").unwrap(), N + 1);
}

#[test]
fn salvage_keeps_the_records_of_a_segment_whose_header_is_damaged() {
    let mut segs = clean_log();
    let last = segs.len() - 1;
    segs[last].1[0] ^= 0xFF;
    let sim = sim_with(&segs);
    assert!(matches!(
        Wal::open_with(sim.shared(), DIR, opts(RecoveryMode::TolerateTornTail)),
        Err(Error::Corrupt { .. })
    ));
    let wal = Wal::open_with(sim.shared(), DIR, opts(RecoveryMode::Salvage)).unwrap();
    assert!(wal.recovery().is_corrupt());
    let lsns: Vec<u64> = wal.iter_from(0).map(|r| r.unwrap().lsn).collect();
    assert_eq!(lsns, (1..=N).collect::<Vec<_>>());
    assert_eq!(wal.append(b"x").unwrap(), N + 1, "no LSN is handed out twice");
}

/// Found by the fuzzer: a segment named for LSN 0, and LSNs at the top of
/// the range, must be refused or ignored, never overflow.
#[test]
fn lsns_at_the_ends_of_the_range_do_not_overflow() {
    for name_lsn in [0u64, 1, u64::MAX - 1, u64::MAX] {
        for header_lsn in [0u64, name_lsn, u64::MAX] {
            let sim = SimFs::new();
            let mut bytes = clean_log().remove(0).1;
            bytes[16..24].copy_from_slice(&header_lsn.to_le_bytes());
            let path = format!("{DIR}/{name_lsn:020}.wal");
            sim.put_durable(Path::new(&path), &bytes).unwrap();
            let _ = cairn::wal::verify(&sim, Path::new(DIR));
            for mode in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail, RecoveryMode::Salvage] {
                if let Ok(wal) = Wal::open_with(sim.shared(), DIR, opts(mode)) {
                    let _ = wal.iter_from(0).count();
                    let _ = wal.append(b"x");
                }
            }
        }
    }
}
