//! Tests of the RKCKPT01 importer, on files made the way ringkernel's
//! `Checkpoint::to_bytes` makes them.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::format::Checkpoint;

/// A ringkernel checkpoint: metadata as `CheckpointMetadata::to_bytes`
/// writes it, chunks as `(type, id, bytes)`, the CRC filled in last.
pub(super) fn rkckpt(custom: &[(&str, &str)], chunks: &[(u32, u64, &[u8])]) -> Vec<u8> {
    let mut meta = Vec::new();
    for s in ["kernel-7", "fdtd_3d"] {
        meta.extend((s.len() as u32).to_le_bytes());
        meta.extend(s.as_bytes());
    }
    meta.extend(4200u64.to_le_bytes());
    for v in [64u32, 32, 16, 8, 8, 4] {
        meta.extend(v.to_le_bytes());
    }
    for v in [1_700_000_000_000_000u64, 17, 3] {
        meta.extend(v.to_le_bytes());
    }
    meta.extend((custom.len() as u32).to_le_bytes());
    for (k, v) in custom {
        for s in [k, v] {
            meta.extend((s.len() as u32).to_le_bytes());
            meta.extend(s.as_bytes());
        }
    }
    let mut f = vec![0u8; 64];
    f.extend((meta.len() as u32).to_le_bytes());
    f.extend(&meta);
    for (t, id, data) in chunks {
        f.extend(t.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend((data.len() as u64).to_le_bytes());
        f.extend((data.len() as u64).to_le_bytes());
        f.extend(id.to_le_bytes());
        f.extend(*data);
    }
    let total = f.len() as u64;
    f[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    f[8..12].copy_from_slice(&1u32.to_le_bytes());
    f[12..16].copy_from_slice(&64u32.to_le_bytes());
    f[16..24].copy_from_slice(&total.to_le_bytes());
    f[24..28].copy_from_slice(&(chunks.len() as u32).to_le_bytes());
    f[40..48].copy_from_slice(&1_700_000_123_456_789u64.to_le_bytes());
    fix_crc(&mut f);
    f
}

pub(super) fn fix_crc(f: &mut [u8]) {
    let crc = crc32fast::hash(&f[64..]);
    f[32..36].copy_from_slice(&crc.to_le_bytes());
}

fn import(bytes: &[u8]) -> Result<Checkpoint> {
    Checkpoint::from_bytes(in_memory(bytes)?)
}

#[test]
fn everything_the_checkpoint_holds_comes_across() {
    let pressure: Vec<u8> = (0..10_000u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let f = rkckpt(
        &[("solver", "fdtd"), ("dt", "0.001")],
        &[(1, 0, &[9; 256]), (2, 0, b"h2k"), (4, 0, &[1; 24]), (5, 0xabc, &pressure), (100, 0, b"app")],
    );
    let ck = import(&f).unwrap();
    assert_eq!(ck.step(), Some(4200));
    let created = ck.created_at().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(created.as_micros(), 1_700_000_123_456_789);
    let m = ck.metadata();
    assert_eq!(m["kernel_id"], "kernel-7");
    assert_eq!(m["kernel_type"], "fdtd_3d");
    assert_eq!(m["grid_size"], json!([64, 32, 16]));
    assert_eq!(m["tile_size"], json!([8, 8, 4]));
    assert_eq!(m["hlc"], json!({"physical": 1_700_000_000_000_000u64, "logical": 17, "node_id": 3}));
    assert_eq!(m["custom"], json!({"solver": "fdtd", "dt": "0.001"}));
    let names: Vec<&str> = ck.chunks().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["control_block", "h2k_queue", "hlc_state", "device_memory/0000000000000abc", "custom"]);
    assert_eq!(ck.read("device_memory/0000000000000abc").unwrap(), pressure);
    assert_eq!(ck.read("control_block").unwrap(), [9; 256]);
}

#[test]
fn damage_and_crafted_lengths_are_named_with_their_offsets() {
    let good = rkckpt(&[("a", "b")], &[(1, 0, &[7; 100])]);
    let meta_len = u32_at(&good, 64) as usize;
    let chunk_at = 68 + meta_len;
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    cases.push((good[..40].to_vec(), "RKCKPT01 header"));
    let mut f = good.clone();
    f[0] ^= 1;
    cases.push((f, "magic"));
    let mut f = good.clone();
    f[chunk_at + 40] ^= 1;
    cases.push((f, "CRC mismatch"));
    let mut f = good.clone();
    f[64..68].copy_from_slice(&u32::MAX.to_le_bytes());
    fix_crc(&mut f);
    cases.push((f, "metadata length"));
    let mut f = good.clone();
    f[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push((f, "chunk count"));
    let mut f = good.clone();
    f[chunk_at + 16..chunk_at + 24].copy_from_slice(&u64::MAX.to_le_bytes());
    fix_crc(&mut f);
    cases.push((f, "chunk header"));
    let mut f = good.clone();
    // The kernel id's length past the metadata.
    f[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
    fix_crc(&mut f);
    cases.push((f, "kernel_id"));
    let mut f = good.clone();
    f[72] = 0xff; // invalid UTF-8 in the kernel id
    fix_crc(&mut f);
    cases.push((f, "kernel_id"));
    let mut f = good.clone();
    let count_at = 68 + meta_len - 4 - 10; // the custom count, before one pair of 1-byte strings
    f[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fix_crc(&mut f);
    cases.push((f, "custom pairs"));
    for (bytes, says) in cases {
        let e = import(&bytes).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }) && e.to_string().contains(says), "{says}: {e}");
    }
}

#[test]
fn compressed_chunks_and_newer_versions_are_unsupported() {
    let good = rkckpt(&[], &[(5, 1, &[3; 64])]);
    let chunk_at = 68 + u32_at(&good, 64) as usize;
    let mut f = good.clone();
    f[chunk_at + 8..chunk_at + 16].copy_from_slice(&100u64.to_le_bytes());
    fix_crc(&mut f);
    let e = import(&f).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("compressed"), "{e}");
    let mut f = good;
    f[8..12].copy_from_slice(&2u32.to_le_bytes());
    let e = import(&f).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("version 2"), "{e}");
}

#[test]
fn unknown_types_and_trailing_bytes_are_kept_not_dropped() {
    let mut f = rkckpt(&[], &[(9, 0, b"new"), (1, 0, b"cb")]);
    f.extend(b"tail");
    fix_crc(&mut f);
    let ck = import(&f).unwrap();
    assert_eq!(ck.read("chunk_type_9").unwrap(), b"new");
    assert_eq!(ck.read("trailing_bytes").unwrap(), b"tail");
    // Two chunks of one type and id cannot both be named.
    let f = rkckpt(&[], &[(1, 0, b"a"), (1, 0, b"b")]);
    assert!(matches!(import(&f), Err(Error::Refused { .. })));
}
