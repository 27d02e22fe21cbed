//! The log's one scanner on logs built byte by byte from docs/WAL.md:
//! records whose LSNs jump ahead, files named like segments outside the
//! LSN range, damage all through a segment. Verification reports exactly
//! what opening refuses, and salvage keeps every intact record.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::Path;

use cairn::io::StdFs;
use cairn::wal::{LogProblemKind, RecoveryMode, Wal, WalOptions, WalReader};
use cairn::Error;

/// A segment header for `first` (docs/WAL.md, "Segment header").
fn header(first: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(32);
    h.extend_from_slice(b"CAIRNWAL");
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&32u16.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&first.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// One frame (docs/WAL.md, "Records"): type 1 with a payload, or a
/// durable mark (type 2, no payload, distance 0).
fn frame(kind: u8, lsn: u64, distance: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&lsn.to_le_bytes());
    f.extend_from_slice(&[kind, 0, 0, 0]);
    f.extend_from_slice(&distance.to_le_bytes());
    f.extend_from_slice(payload);
    let crc = crc32c::crc32c(&f[4..]);
    f[..4].copy_from_slice(&crc.to_le_bytes());
    f.resize(f.len().next_multiple_of(8), 0);
    f
}

fn record(lsn: u64) -> Vec<u8> {
    // Each record says the one before it was durable.
    frame(1, lsn, 1, &payload(lsn))
}

fn mark(lsn: u64) -> Vec<u8> {
    frame(2, lsn, 0, &[])
}

fn payload(lsn: u64) -> Vec<u8> {
    format!("record {lsn}").into_bytes()
}

fn segment(first: u64, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut s = header(first);
    for f in frames {
        s.extend_from_slice(f);
    }
    s
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn name(first: u64) -> String {
    format!("{first:020}.wal")
}

fn salvaged(dir: &Path) -> Vec<u64> {
    let r = WalReader::open_with(StdFs::shared(), dir, RecoveryMode::Salvage).unwrap();
    r.iter_from(0).map(|r| r.unwrap().lsn).collect()
}

/// Opening for appending refuses the log as corrupt, and so does verify.
fn assert_refused_alike(dir: &Path) -> cairn::wal::RecoveryReport {
    let report = cairn::wal::verify(&StdFs, dir).unwrap();
    assert!(report.is_corrupt(), "verify calls it clean: {:?}", report.problems);
    let opened = Wal::open_with(StdFs::shared(), dir, WalOptions::default());
    assert!(matches!(opened, Err(Error::Corrupt { .. })), "open accepted it: {:?}", opened.map(|_| ()));
    let read = WalReader::open(dir);
    assert!(matches!(read, Err(Error::Corrupt { .. })), "a reader accepted it");
    report
}

#[test]
fn a_jump_in_lsns_before_a_durable_mark_is_corruption_to_verify_as_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let frames = [record(1), record(2), record(5), record(6), mark(6)];
    write(dir.path(), &name(1), &segment(1, &frames));
    let report = assert_refused_alike(dir.path());
    let at = 32 + (record(1).len() + record(2).len()) as u64;
    let p = &report.problems[0];
    assert_eq!((p.kind, p.lsn, p.offset, p.bytes), (LogProblemKind::Corrupt, 3, at, 0), "{p:?}");
    assert!(p.detail.contains("3..=4 are missing"), "{}", p.detail);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(salvaged(dir.path()), [1, 2, 5, 6], "salvage keeps every intact record");
}

#[test]
fn a_jump_in_lsns_in_a_sealed_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &name(1), &segment(1, &[record(1), record(2), record(5), record(6), mark(6)]));
    write(dir.path(), &name(7), &segment(7, &[record(7), mark(7)]));
    let report = assert_refused_alike(dir.path());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].lsn, 3);
    assert_eq!(salvaged(dir.path()), [1, 2, 5, 6, 7]);
}

#[test]
fn a_jump_in_lsns_past_the_durable_point_is_a_torn_tail_to_both() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing vouches that 3 or later was ever durable.
    let unknown = |lsn| frame(1, lsn, u32::MAX, &payload(lsn));
    write(dir.path(), &name(1), &segment(1, &[record(1), mark(1), unknown(2), unknown(5)]));
    let report = cairn::wal::verify(&StdFs, dir.path()).unwrap();
    assert!(!report.is_corrupt() && report.has_torn_tail(), "{:?}", report.problems);
    let torn = &report.problems[0];
    assert_eq!((torn.lsn, torn.offset), (3, 32 + 2 * record(1).len() as u64 + 24));
    let wal = Wal::open_with(StdFs::shared(), dir.path(), WalOptions::default()).unwrap();
    assert_eq!(wal.recovery().truncated_bytes, torn.bytes, "open cuts what verify reports");
    assert_eq!(wal.last_lsn(), Some(2));
}

#[test]
fn files_named_like_segments_outside_the_lsn_range_are_reported() {
    for bad in ["00000000000000000000.wal", "18446744073709551615.wal", "99999999999999999999.wal", "1.wal"] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &name(1), &segment(1, &[record(1), mark(1)]));
        write(dir.path(), bad, &segment(2, &[record(2), mark(2)]));
        let report = assert_refused_alike(dir.path());
        let p = &report.problems[0];
        assert!(p.segment.ends_with(bad) && p.kind == LogProblemKind::Corrupt, "{bad}: {p:?}");
        assert_eq!(salvaged(dir.path()), [1], "{bad}");
    }
    // Other files in the directory are not the log's business.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &name(1), &segment(1, &[record(1), mark(1)]));
    write(dir.path(), "notes.txt", b"hello");
    assert!(cairn::wal::verify(&StdFs, dir.path()).unwrap().problems.is_empty());
}

#[test]
fn flipped_padding_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    // "record 1" is 8 bytes: 24 + 8 = 32, no padding; "record 10" has 7.
    let mut seg = segment(1, &(1..=10).map(record).chain([mark(10)]).collect::<Vec<_>>());
    let tenth = 32 + (1..=9).map(|l| record(l).len()).sum::<usize>();
    let pad = tenth + 24 + payload(10).len();
    assert!(seg[pad..tenth + record(10).len()].iter().all(|b| *b == 0));
    seg[pad] = 0x20;
    write(dir.path(), &name(1), &seg);
    let report = assert_refused_alike(dir.path());
    assert!(report.problems[0].detail.contains("padding"), "{:?}", report.problems);
    assert_eq!(report.problems[0].lsn, 10);
}

#[test]
fn damage_all_through_a_segment_is_reported_within_a_bounded_list() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2 * cairn::wal::MAX_PROBLEMS as u64 + 200;
    let mut frames = Vec::new();
    for lsn in 1..=n {
        let mut f = record(lsn);
        if lsn % 2 == 0 {
            f[30] ^= 0xFF;
        }
        frames.push(f);
    }
    frames.push(mark(n));
    write(dir.path(), &name(1), &segment(1, &frames));
    let report = cairn::wal::verify(&StdFs, dir.path()).unwrap();
    assert!(report.is_corrupt());
    assert_eq!(report.problems.len(), cairn::wal::MAX_PROBLEMS);
    assert_eq!(report.omitted.corrupt, n / 2 - cairn::wal::MAX_PROBLEMS as u64, "every damaged record counted");
    assert_eq!(report.records, n / 2, "every intact record counted");
    assert!(report.problems.iter().all(|p| p.kind == LogProblemKind::Corrupt && p.bytes == record(p.lsn).len() as u64));
    let kept = salvaged(dir.path());
    assert_eq!(kept, (1..=n).step_by(2).collect::<Vec<_>>());
}
