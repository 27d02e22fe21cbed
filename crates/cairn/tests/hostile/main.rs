//! Hand-crafted hostile files: every checksum is valid, but lengths, counts,
//! offsets and feature bits are hostile. Each attack must be refused with an
//! error naming the part, never a panic, and opening must never ask for an
//! allocation much larger than the file. A counting global allocator records
//! the largest single request and the peak of live bytes; tests run one at a
//! time under a lock so that the process-wide counters measure only them.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

mod alloc;
mod builder;

use alloc::*;
use builder::*;
use std::time::{Duration, UNIX_EPOCH};

use cairn::{CheckpointWriter, Error, WriterOptions};

#[test]
fn builder_reproduces_the_writer() {
    let _g = serial();
    let opts =
        WriterOptions::default().frame_size(FRAME).created_at(UNIX_EPOCH + Duration::from_micros(CREATED_US as u64));
    let mut w = CheckpointWriter::in_memory(opts).unwrap();
    w.add_bytes("a", &(0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    w.add_tensor("t", &[2, 3], &[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let written = w.finish().unwrap();
    assert_eq!(Spec::valid().build(), written);

    let ck = open(written).unwrap();
    assert!(ck.verify().unwrap().is_ok());
    assert_eq!(ck.read_tensor::<f32>("t").unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

// ---------------------------------------------------------------------------
// Trailer attacks.

#[test]
fn index_length_near_u64_max() {
    let _g = serial();
    let mut s = Spec::valid();
    s.index_len = Some(u64::MAX - 7);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "exceeds the limit", len);
}

#[test]
fn index_range_overflowing_u64() {
    let _g = serial();
    let mut s = Spec::valid();
    s.index_offset = Some(u64::MAX - 100);
    s.index_len = Some(1000);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "does not end at the trailer", len);
}

#[test]
fn index_length_past_the_file() {
    let _g = serial();
    let mut s = Spec::valid();
    s.index_len = Some(1 << 20);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "does not end at the trailer", len);
}

#[test]
fn index_offset_inside_the_header() {
    let _g = serial();
    let mut s = Spec::valid();
    let real = s.build();
    let index_end = real.len() as u64 - 64;
    s.index_offset = Some(8);
    s.index_len = Some(index_end - 8);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "does not end at the trailer", len);
}

#[test]
fn file_length_lies() {
    let _g = serial();
    for lie in [0, 1 << 40, u64::MAX] {
        let mut s = Spec::valid();
        s.file_len = Some(lie);
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "trailer", "but the trailer says", len);
    }
}

// ---------------------------------------------------------------------------
// Header attacks and versioning.

/// Re-encodes a valid file's header with new fields and a valid checksum.
fn with_header(version: u16, header_len: u16, frame_size: u32, required: u64, optional: u64) -> Vec<u8> {
    let mut bytes = Spec::valid().build();
    bytes[..64].copy_from_slice(&header(version, header_len, frame_size, required, optional));
    bytes
}

#[test]
fn unknown_required_feature_bit_is_refused_by_name() {
    let _g = serial();
    for bit in [5u32, 12, 63] {
        let e = refused(with_header(1, 64, FRAME, 1 << bit, 1));
        let msg = e.to_string();
        let Error::Unsupported { feature, .. } = &e else { panic!("bit {bit}: {e:?}") };
        assert_eq!(feature, &format!("required feature bit {bit}"), "{msg}");
        assert!(msg.contains(&format!("required feature bit {bit}")) && msg.contains("<memory>"), "{msg}");
    }
}

#[test]
fn unknown_optional_feature_bits_are_ignored() {
    let _g = serial();
    let ck = open(with_header(1, 64, FRAME, 0, u64::MAX)).unwrap();
    let report = ck.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(ck.read("a").unwrap(), (0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
}

#[test]
fn other_format_versions_are_unsupported() {
    let _g = serial();
    for version in [0u16, 3, u16::MAX] {
        let e = refused(with_header(version, 64, FRAME, 0, 1));
        let Error::Unsupported { feature, .. } = &e else { panic!("version {version}: {e:?}") };
        assert!(feature.starts_with(&format!("format version {version} ")), "{e}");
    }
}

#[test]
fn bad_header_length() {
    let _g = serial();
    for header_len in [0u16, 63, 65, u16::MAX] {
        let bytes = with_header(1, header_len, FRAME, 0, 1);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "header", "header length", len);
    }
}

#[test]
fn bad_frame_sizes() {
    let _g = serial();
    for frame_size in [0u32, 1, 1000, 2048, 4097, 128 << 20, 1 << 31, u32::MAX] {
        let bytes = with_header(1, 64, frame_size, 0, 1);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "header", "frame size", len);
    }
}

// ---------------------------------------------------------------------------
// Index header attacks.

#[test]
fn chunk_count_u32_max() {
    let _g = serial();
    let mut s = Spec::valid();
    s.count = Some(u32::MAX);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "chunk count", len);
}

#[test]
fn chunk_count_at_the_limit_with_a_large_empty_index() {
    let _g = serial();
    // The count passes its limit; the index has room for many records of
    // zeros, so only the allocation budget stands between the count and a
    // large reservation.
    let mut s = Spec::new();
    s.count = Some(1 << 20);
    s.tail = vec![0; 200 << 10];
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "chunk name length 0", len);
}

#[test]
fn chunk_count_larger_than_the_records() {
    let _g = serial();
    let mut s = Spec::valid();
    s.count = Some(3);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "more bytes", len);
}

#[test]
fn trailing_bytes_after_the_last_record() {
    let _g = serial();
    let mut s = Spec::valid();
    s.tail = vec![0; 5];
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "unexpected bytes", len);
}

#[test]
fn producer_length_huge() {
    let _g = serial();
    let mut s = Spec::valid();
    s.producer_len = Some(u16::MAX);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "producer length", len);
}

#[test]
fn metadata_length_huge() {
    let _g = serial();
    for meta_len in [u32::MAX, (16 << 20) + 1] {
        let mut s = Spec::valid();
        s.meta_len = Some(meta_len);
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", "metadata length", len);
    }
}

#[test]
fn metadata_length_within_the_limit_but_past_the_index() {
    let _g = serial();
    let mut s = Spec::valid();
    s.meta_len = Some(16 << 20);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "more bytes", len);
}

#[test]
fn metadata_not_a_json_object() {
    let _g = serial();
    for meta in [&b"[1,2]"[..], b"{\"a\":", b"\xff\xfe", b""] {
        let mut s = Spec::valid();
        s.meta = meta.to_vec();
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index metadata", "", len);
    }
}

#[test]
fn metadata_deeply_nested_json() {
    let _g = serial();
    let mut s = Spec::valid();
    let depth = 100_000;
    s.meta = [b"{\"a\":".to_vec(), vec![b'['; depth], vec![b']'; depth], b"}".to_vec()].concat();
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index metadata", "recursion limit", len);
}

// ---------------------------------------------------------------------------
// Chunk record attacks.

#[test]
fn name_length_huge() {
    let _g = serial();
    let bytes = one_chunk(|r| r.name_len = Some(u16::MAX));
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "chunk name length 65535", len);
}

#[test]
fn name_length_within_the_limit_but_past_the_index() {
    let _g = serial();
    let bytes = one_chunk(|r| r.name_len = Some(1024));
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "more bytes", len);
}

#[test]
fn name_not_utf8() {
    let _g = serial();
    let bytes = one_chunk(|r| r.name = vec![0xC3, 0x28]);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "not UTF-8", len);
}

#[test]
fn duplicate_chunk_names() {
    let _g = serial();
    let mut s = Spec::new();
    s.add_raw("x", &[1; 10]);
    s.add_raw("x", &[2; 10]);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "duplicate chunk name", len);
}

#[test]
fn ndim_huge() {
    let _g = serial();
    let bytes = one_chunk(|r| {
        r.dtype = 2; // u8
        r.ndim = Some(u8::MAX);
    });
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "bad dimension count 255", len);
}

#[test]
fn dims_without_a_dtype() {
    let _g = serial();
    let bytes = one_chunk(|r| r.dims = vec![100]);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "bad dimension count 1", len);
}

#[test]
fn dims_whose_product_overflows() {
    let _g = serial();
    let bytes = one_chunk(|r| {
        r.dtype = 12; // f32
        r.dims = vec![u64::MAX; 32];
    });
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "does not match", len);
}

#[test]
fn unknown_tags() {
    let _g = serial();
    let cases: [(&str, Edit); 2] =
        [("unknown dtype tag 200", |r| r.dtype = 200), ("unknown compression tag 9", |r| r.comp = 9)];
    for (says, edit) in cases {
        let bytes = one_chunk(edit);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", says, len);
    }
    // Frame tables are decoded when a chunk is first read.
    table_refused(one_chunk(|r| r.frames[0].codec = 7), "x", "unknown codec 7");
    // An unknown kind is a label: it opens.
    let ck = open(one_chunk(|r| r.kind = 250)).unwrap();
    assert_eq!(ck.chunk("x").unwrap().kind, cairn::ChunkKind::Other(250));
}

#[test]
fn raw_length_u64_max() {
    let _g = serial();
    let bytes = one_chunk(|r| r.raw_len = u64::MAX);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "frames", len);
}

#[test]
fn raw_length_with_a_huge_frame_count() {
    let _g = serial();
    // 2^28 frames of 4 KiB: a frame table of 3.4 GB that the file lacks.
    let bytes = one_chunk(|r| r.raw_len = 1 << 40);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "in 268435456 frames", len);
}

#[test]
fn raw_length_disagreeing_with_the_frame_table() {
    let _g = serial();
    // Two frames' worth of content, one frame record.
    let bytes = one_chunk(|r| r.raw_len = u64::from(FRAME) + 1);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "frames do not fit in the index", len);
    // A raw frame of 100 stored bytes for 99 content bytes.
    let bytes = one_chunk(|r| r.raw_len = 99);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "100 stored bytes for 99 raw bytes", len);
}

#[test]
fn stored_length_larger_than_raw() {
    let _g = serial();
    // The chunk record's stored length exceeds its raw length: refused at open.
    let cases: [Edit; 2] = [|r| r.frames[0].stored_len = 101, |r| r.frames[0].stored_len = u32::MAX];
    for edit in cases {
        let mut s = Spec::new();
        edit(s.add_raw("x", &[7u8; 100]));
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", "stored bytes for 100 raw bytes", len);
    }
    // A compressed frame no smaller than raw: refused when its table is read.
    let mut s = Spec::new();
    s.required = REQ_LZ4;
    s.add_raw("x", &[7u8; 100]).frames[0].codec = LZ4;
    table_refused(s.build(), "x", "invalid");
}

#[test]
fn feature_bits_in_a_version_2_trailer_count() {
    let _g = serial();
    let stored = lz4_flex::block::compress(&[0u8; 1000]);
    // The bit only in the trailer, as a v2 writer puts it: readable.
    let mut s = Spec::new();
    s.trailer_required = REQ_LZ4;
    s.add("x", 1000, &[(LZ4, &stored)]);
    let ck = open(s.build()).unwrap();
    assert_eq!(ck.read("x").unwrap(), vec![0u8; 1000]);
    // An unknown bit in the trailer is refused like one in the header.
    let mut s = Spec::valid();
    s.trailer_required = 1 << 40;
    let e = refused(s.build());
    assert!(matches!(&e, Error::Unsupported { feature, .. } if feature.contains("bit 40")), "{e}");
}

#[test]
fn a_version_1_trailer_keeps_its_reserved_bytes_reserved() {
    let _g = serial();
    let stored = lz4_flex::block::compress(&[0u8; 1000]);
    // Version 1 readers never looked at trailer bytes 32..40: bits there
    // neither make an lz4 frame legal nor an unknown bit fatal.
    let mut s = Spec::new();
    s.version = 1;
    s.trailer_required = REQ_LZ4 | (1 << 40);
    s.add("x", 1000, &[(LZ4, &stored)]);
    let bytes = s.build();
    table_refused(bytes, "x", "invalid");
}

#[test]
fn compressed_frame_without_its_feature_bit() {
    let _g = serial();
    let stored = lz4_flex::block::compress(&[0u8; 1000]);
    let mut s = Spec::new();
    s.add("x", 1000, &[(LZ4, &stored)]);
    table_refused(s.build(), "x", "invalid");
}

#[test]
fn shuffle_without_its_feature_bit() {
    let _g = serial();
    let stored = zstd::bulk::compress(&[0u8; 1000], 3).unwrap();
    let mut s = Spec::new();
    s.required = REQ_ZSTD;
    s.add("x", 1000, &[(ZSTD, &stored)]).shuffle = 4;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "shuffle", len);
}

#[test]
fn data_offset_misaligned() {
    let _g = serial();
    let bytes = one_chunk(|r| r.data_offset += 1);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "misaligned", len);
}

#[test]
fn data_offset_inside_the_header() {
    let _g = serial();
    let bytes = one_chunk(|r| r.data_offset = 0);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "overlaps", len);
}

#[test]
fn data_offsets_overlapping() {
    let _g = serial();
    let mut s = Spec::new();
    s.add_raw("a", &[1; 200]);
    s.add_raw("b", &[2; 200]).data_offset = 128;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "overlaps", len);
}

#[test]
fn data_running_past_the_index() {
    let _g = serial();
    let mut s = Spec::new();
    s.add_raw("a", &[1; 200]);
    // Aligned and after the header, but its 200 bytes end past the index at 264.
    s.recs[0].data_offset = 128;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "past the index", len);
}

#[test]
fn data_offset_near_u64_max() {
    let _g = serial();
    for (offset, says) in [(u64::MAX - 63, "runs past the index"), (1 << 62, "past the index")] {
        let bytes = one_chunk(|r| r.data_offset = offset);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", says, len);
    }
    // An empty chunk far past the index is refused too.
    let mut s = Spec::new();
    s.add_raw("e", &[]).data_offset = 1 << 62;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "past the index", len);
}

#[test]
fn chunk_stored_length_disagreeing_with_its_frames() {
    let _g = serial();
    // The record claims fewer stored bytes than its frames hold.
    let mut s = Spec::new();
    s.add_raw("x", &[7u8; 100]);
    s.add_raw("y", &[8u8; 100]).stored_len = Some(99);
    table_refused(s.build(), "y", "frames store 100 bytes but the record says 99");
    // Fewer stored bytes than frames: every frame takes at least one byte,
    // so the frame count is bounded by the file's size.
    let mut s = Spec::new();
    s.required = REQ_LZ4;
    s.add("x", 3 * u64::from(FRAME), &[(LZ4, &[1][..]), (LZ4, &[2][..]), (LZ4, &[3][..])]).stored_len = Some(2);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "2 stored bytes for 12288 raw bytes in 3 frames", len);
}

/// Opens `bytes` (the chunk records are sound) and checks that the frame
/// table of `name` is refused when read, naming it, and reported by verify.
fn table_refused(bytes: Vec<u8>, name: &str, says: &str) {
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    let e = ck.read(name).expect_err("hostile frame table read as data");
    assert_corrupt(&e, "index frame table", says, len);
    assert!(matches!(ck.read_to(name, &mut std::io::sink()), Err(Error::Corrupt { .. })));
    let report = ck.verify().unwrap();
    let named = |p: &cairn::CheckpointProblem| p.what == "index frame table" && p.chunk.as_deref() == Some(name);
    assert!(report.problems.iter().any(named), "{report:?}");
}

// ---------------------------------------------------------------------------
// Frames with valid checksums but hostile contents: they open (the index is
// consistent) and fail when read or verified, naming the frame.

/// Opens `bytes`, then checks that reading `name` fails naming frame `frame`,
/// that verify reports it, and that neither exceeds the budget.
fn read_fails(bytes: Vec<u8>, name: &str, frame: usize, says: &str) {
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    let budget = open_budget(len) + ck.frame_size() as usize * 2;
    let (r, u) = measured(|| ck.read(name));
    let e = r.expect_err("hostile frame read as data");
    assert_corrupt(&e, &format!("chunk {name:?} frame {frame}"), says, len);
    assert!(u.largest <= budget && u.peak <= budget, "read: {u:?}");
    let (r, u) = measured(|| ck.read_to(name, &mut std::io::sink()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert!(u.largest <= budget && u.peak <= budget, "read_to: {u:?}");
    let (report, u) = measured(|| ck.verify().unwrap());
    assert!(report.problems.iter().any(|p| p.what == format!("chunk {name:?} frame {frame}")), "{report:?}");
    assert!(u.largest <= budget && u.peak <= budget, "verify: {u:?}");
}

#[test]
fn garbage_lz4_frame_with_a_valid_checksum() {
    let _g = serial();
    let garbage: Vec<u8> = (0..500u32).map(|i| (i * 7919 % 256) as u8).collect();
    let mut s = Spec::new();
    s.required = REQ_LZ4;
    s.add("x", 4096, &[(LZ4, &garbage)]);
    read_fails(s.build(), "x", 0, "lz4");
}

#[test]
fn garbage_zstd_frame_with_a_valid_checksum() {
    let _g = serial();
    let mut s = Spec::new();
    s.required = REQ_ZSTD;
    let garbage = [0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3];
    s.add("x", 4096, &[(ZSTD, &garbage)]);
    read_fails(s.build(), "x", 0, "zstd");
}

/// A planes frame (codec 6) of `elem` planes of `n` bytes each: every
/// plane's mode byte and payload as given, then `tail`.
fn planes_frame(planes: &[(u8, &[u8])], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (mode, payload) in planes {
        out.push(*mode);
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }
    out.extend_from_slice(tail);
    out
}

/// A file with one shuffled lz4 chunk `x` of 4096 bytes in 4-byte elements
/// whose one frame is `frame` (codec 6).
fn one_planes_chunk(frame: &[u8], required: u64, shuffle: u8) -> Vec<u8> {
    let mut s = Spec::new();
    s.required = required;
    let r = s.add("x", 4096, &[(PLANES, frame)]);
    r.comp = LZ4;
    r.shuffle = shuffle;
    s.build()
}

#[test]
fn planes_frame_needs_its_feature_bit_and_a_shuffled_chunk() {
    let _g = serial();
    let codes = [&[0u8, 0][..], &[0x11; 512]].concat();
    let frame = planes_frame(&[(2, &codes), (2, &codes), (2, &codes), (2, &codes)], &[]);
    let ok = one_planes_chunk(&frame, REQ_SHUFFLE | REQ_PLANES, 4);
    let ck = open(ok).unwrap();
    assert_eq!(ck.read("x").unwrap(), vec![1u8; 4096]);
    table_refused(one_planes_chunk(&frame, REQ_SHUFFLE | REQ_LZ4, 4), "x", "invalid");
    table_refused(one_planes_chunk(&frame, REQ_PLANES, 1), "x", "not shuffled");
}

#[test]
fn hostile_planes_frames_with_valid_checksums() {
    let _g = serial();
    let raw = [7u8; 1024];
    let codes = [&[0u8, 0][..], &[0u8; 512]].concat();
    let escapes = [&[0u8, 0][..], &[0xffu8; 512]].concat();
    let lz4 = lz4_flex::block::compress(&[3u8; 1024]);
    let short_lz4 = lz4_flex::block::compress(&[3u8; 1000]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // (A frame's stored bytes must stay below its 4096 raw ones.)
        // Records and payloads cut short or too long.
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw)], &[]), "record cut short"),
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw), (0, &raw[..1000])], &[]), "raw plane of 1000"),
        ([planes_frame(&[(0, &raw), (0, &raw), (0, &raw)], &[]), vec![0, 0xff, 0xff, 0xff, 0x7f]].concat(), "payload"),
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw), (2, &codes)], &[1]), "after the planes"),
        // Unknown modes and rotation flags; lz4 of the wrong length.
        (planes_frame(&[(9, &codes), (0, &raw), (0, &raw), (2, &codes)], &[]), "unknown plane mode 9"),
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw), (2, &[&[2u8, 0][..], &[0; 512]].concat())], &[]), "rotation"),
        (planes_frame(&[(1, &short_lz4), (0, &raw), (0, &raw), (1, &lz4)], &[]), "lz4"),
        // Escapes without their exceptions, and exceptions without escapes.
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw), (2, &escapes)], &[]), "exception"),
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw), (2, &[&codes[..], &[5]].concat())], &[]), "exception"),
        (planes_frame(&[(0, &raw), (0, &raw), (0, &raw), (2, &codes[..100])], &[]), "too short"),
    ];
    for (frame, says) in cases {
        read_fails(one_planes_chunk(&frame, REQ_SHUFFLE | REQ_PLANES, 4), "x", 0, says);
    }
}

#[test]
fn compressed_frames_of_the_wrong_length() {
    let _g = serial();
    let short = zstd::bulk::compress(&[5u8; 3000], 3).unwrap();
    let long = zstd::bulk::compress(&[5u8; 4096 + 500], 3).unwrap();
    let lz4_short = lz4_flex::block::compress(&[5u8; 3000]);
    for (codec, stored, says) in [(ZSTD, &short, "decoded to 3000"), (ZSTD, &long, "zstd"), (LZ4, &lz4_short, "")] {
        let mut s = Spec::new();
        s.required = REQ_LZ4 | REQ_ZSTD;
        s.add("x", 4096, &[(codec, stored)]);
        read_fails(s.build(), "x", 0, says);
    }
}

#[test]
fn shuffled_frame_with_an_odd_element_size() {
    let _g = serial();
    // Any element size must unshuffle without panicking; the digest is
    // wrong, so verify reports the chunk.
    let stored = zstd::bulk::compress(&[9u8; 4096], 3).unwrap();
    for elem in [2u8, 3, 7, 255] {
        let mut s = Spec::new();
        s.required = REQ_ZSTD | REQ_SHUFFLE;
        s.add("x", 4096, &[(ZSTD, &stored)]).shuffle = elem;
        let ck = open(s.build()).unwrap();
        assert_eq!(ck.read("x").unwrap(), vec![9u8; 4096]);
        let report = ck.verify().unwrap();
        assert!(report.problems.iter().any(|p| p.detail.contains("BLAKE3")), "{report:?}");
    }
}

#[test]
fn many_one_byte_compressed_frames() {
    let _g = serial();
    // Frames of one stored byte each (the least a frame may take): the index
    // pays 13 bytes for each. Opening stays within the budget; reading fails on the first.
    let n = 3000u64;
    let mut s = Spec::new();
    s.required = REQ_LZ4;
    let frames: Vec<(u8, &[u8])> = (0..n).map(|_| (LZ4, &[0u8][..])).collect();
    s.add("x", n * u64::from(FRAME), &frames);
    let bytes = s.build();
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    assert_eq!(ck.chunk("x").unwrap().frame_count(), n);
    let (r, u) = measured(|| ck.read_to("x", &mut std::io::sink()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert!(u.largest <= open_budget(len), "read_to: {u:?}");
    let (report, u) = measured(|| ck.verify().unwrap());
    // The first 64 damaged frames are listed, the rest counted in one line.
    assert_eq!(report.problems.len(), 65, "{:?}", report.problems.last());
    assert!(report.problems.iter().any(|p| p.detail.contains(&format!("{} more damaged frames", n - 64))));
    eprintln!("verify of {n} one-byte frames in a {len}-byte file: {u:?}");
    // verify keeps one small slot per frame (the index pays 13 bytes a
    // frame), so its memory stays within a few times the file.
    assert!(u.largest <= 4 * len && u.peak <= 8 * len, "verify: {u:?}");
}

#[test]
fn largest_frame_size_with_a_one_byte_frame() {
    let _g = serial();
    // A 64 MiB frame declared by a file of a few hundred bytes. Opening costs
    // nothing; reading needs a buffer of the declared frame length before it
    // can decode (a decompression bomb is bounded by the frame size limit).
    let frame_size = 64u32 << 20;
    let mut s = Spec::new();
    s.frame_size = frame_size;
    s.required = REQ_LZ4;
    s.add("x", u64::from(frame_size), &[(LZ4, &[0x00][..])]);
    let bytes = s.build();
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    let (r, u) = measured(|| ck.read_to("x", &mut std::io::sink()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert!(u.largest <= frame_size as usize + open_budget(len), "read_to: {u:?}");
    eprintln!("read_to of a 64 MiB frame stored in 1 byte, {len}-byte file: {u:?}");
}

/// A chunk that declares 2 GiB in 32 frames of the largest frame size, each
/// stored in one lz4 byte: a file of well under a kilobyte. `tensor` makes
/// it an f32 tensor; `bad_sums` gives every frame a wrong checksum.
fn two_gib_in_one_byte_frames(tensor: bool, bad_sums: bool) -> Vec<u8> {
    let frame_size = 64u32 << 20;
    let mut s = Spec::new();
    s.frame_size = frame_size;
    s.required = REQ_LZ4;
    let frames: Vec<(u8, &[u8])> = (0..32).map(|_| (LZ4, &[0x00][..])).collect();
    let r = s.add("x", 32 * u64::from(frame_size), &frames);
    if tensor {
        r.kind = 1;
        r.dtype = 12; // f32
        r.dims = vec![32 * u64::from(frame_size) / 4];
    }
    if bad_sums {
        for f in &mut r.frames {
            f.checksum ^= 1;
        }
    }
    s.build()
}

/// Opens the crafted file and reads its chunk whole (as bytes, or as a
/// tensor), which must fail; returns the error, what the read cost and
/// the file's length.
fn read_two_gib(tensor: bool, bad_sums: bool) -> (Error, Usage, usize) {
    let bytes = two_gib_in_one_byte_frames(tensor, bad_sums);
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    let (r, u) = measured(|| if tensor { ck.read_tensor::<f32>("x").map(|_| ()) } else { ck.read("x").map(|_| ()) });
    let how = if tensor { "read_tensor" } else { "read" };
    eprintln!("{how} of a 2 GiB chunk (bad checksums: {bad_sums}), {len}-byte file: {u:?}");
    (r.expect_err("hostile frames read as data"), u, len)
}

#[test]
fn two_gib_chunk_in_a_tiny_file_is_not_allocated_before_its_frames_check() {
    let _g = serial();
    for tensor in [false, true] {
        let (e, u, len) = read_two_gib(tensor, true);
        // The first frame is the first damaged one, whatever the threads do.
        assert_corrupt(&e, "chunk \"x\" frame 0", "frame checksum mismatch", len);
        assert!(u.peak < 64 << 20 && u.largest < 64 << 20, "a {len}-byte file made read hold {u:?}");
    }
}

#[test]
fn two_gib_chunk_in_a_tiny_file_costs_at_most_one_frame_when_frames_do_not_decode() {
    let _g = serial();
    // Valid checksums: the first frame is decoded (into its 64 MiB) and
    // fails; nothing past it is allocated.
    for tensor in [false, true] {
        let (e, u, len) = read_two_gib(tensor, false);
        assert_corrupt(&e, "chunk \"x\" frame 0", "", len);
        let bound = (64 << 20) + (1 << 20);
        assert!(u.peak < bound && u.largest < bound, "a {len}-byte file made read hold {u:?}");
    }
}

#[test]
fn the_counter_sees_allocations() {
    let _g = serial();
    let (v, u) = measured(|| vec![1u8; 3 << 20]);
    // Peak is live bytes, so a pool thread freeing a little meanwhile may
    // shave a few bytes off it.
    assert!(u.largest >= 3 << 20 && u.peak >= (3 << 20) - 4096, "{u:?}");
    drop(v);
}
