//! Corruption sweeps over a small checkpoint: every flipped byte is detected
//! (open fails, or verify reports it) or harmless (the content read is
//! unchanged); every truncation and appended garbage fails to open with an
//! error naming the part. Nothing may be silently wrong or panic.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant, UNIX_EPOCH};

use cairn::{Checkpoint, CheckpointWriter, ChunkSpec, Compression, DType, Error, ReadOptions, WriterOptions};

const FRAME: u32 = 4096;
/// Parts an open error may name.
const PARTS: [&str; 4] = ["file", "header", "trailer", "index"];

/// What the sample checkpoint holds, to compare reads against.
struct Sample {
    bytes: Vec<u8>,
    chunks: Vec<(String, Vec<u8>)>,
    metadata: serde_json::Map<String, serde_json::Value>,
    step: Option<u64>,
    digest: [u8; 32],
}

/// A byte stream that does not compress (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sample() -> Sample {
    let opts = WriterOptions::default().frame_size(FRAME).created_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let mut w = CheckpointWriter::in_memory(opts).unwrap();
    w.set_step(1234);
    w.set_metadata("loss", serde_json::json!(0.5));
    w.set_metadata("tags", serde_json::json!(["a", "b"]));

    let pattern = |n: usize, k: usize| -> Vec<u8> { (0..n).map(|i| (i / k % 7) as u8).collect() };
    // Raw bytes that do not compress, one frame.
    let raw = noise(700, 1);
    // lz4, one frame.
    let lz4 = pattern(3000, 3);
    // zstd, three frames.
    let zstd = pattern(2 * FRAME as usize + 500, 5);
    // auto: a compressible frame stored as zstd, then an incompressible one stored raw.
    let mut auto = pattern(FRAME as usize, 11);
    auto.extend(noise(600, 2));
    // A shuffled zstd tensor over two frames.
    let tensor: Vec<f32> = (0..1280).map(|i| (i % 50) as f32 * 0.25).collect();
    let tensor_bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();

    let bytes_spec = |c| ChunkSpec::bytes().compression(c);
    w.add_chunk("raw", &bytes_spec(Compression::None), &raw).unwrap();
    w.add_chunk("lz4", &bytes_spec(Compression::Lz4), &lz4).unwrap();
    w.add_chunk("zstd", &bytes_spec(Compression::Zstd(3)), &zstd).unwrap();
    w.add_chunk("auto", &bytes_spec(Compression::Auto), &auto).unwrap();
    w.add_chunk("empty", &bytes_spec(Compression::Zstd(1)), &[]).unwrap();
    let spec = ChunkSpec::tensor(DType::F32, &[32, 40]).compression(Compression::Zstd(3)).shuffle(true);
    w.add_chunk("tensor", &spec, &tensor_bytes).unwrap();
    w.add_json("config", &serde_json::json!({"lr": 0.001})).unwrap();
    let bytes = w.finish().unwrap();

    let ck = Checkpoint::from_bytes(bytes.clone()).unwrap();
    assert!(ck.verify().unwrap().is_ok());
    let chunks: Vec<(String, Vec<u8>)> =
        ck.chunks().iter().map(|c| (c.name.clone(), ck.read(&c.name).unwrap())).collect();
    let sample = Sample { bytes, chunks, metadata: ck.metadata().clone(), step: ck.step(), digest: ck.digest() };
    // The sample covers what the sweep is meant to cover.
    let info = |n: &str| ck.chunk(n).unwrap().clone();
    assert!(info("raw").frame_count() == 1 && info("raw").is_raw());
    assert!(info("lz4").stored_len < info("lz4").raw_len);
    assert_eq!(info("zstd").frame_count(), 3);
    let auto = info("auto");
    assert!(auto.frame_count() == 2 && auto.stored_len > 600 && auto.stored_len < auto.raw_len - 3000);
    assert_eq!(info("empty").frame_count(), 0);
    assert!(info("tensor").shuffle && info("tensor").frame_count() == 2);
    assert!((2 << 10..=20 << 10).contains(&sample.bytes.len()), "sample is {} bytes", sample.bytes.len());
    sample
}

/// An open error must be Corrupt or Unsupported and name the part and file.
fn check_open_error(e: &Error, len: usize, context: &str) -> &'static str {
    let msg = e.to_string();
    match e {
        Error::Corrupt { what, offset, file, .. } => {
            assert!(file == "<memory>" || !file.is_empty(), "{context}: {msg}");
            assert!(*offset <= len as u64, "{context}: offset past the end: {msg}");
            let part = PARTS.iter().find(|p| what.starts_with(**p)).unwrap_or_else(|| panic!("{context}: {msg}"));
            assert!(msg.contains(what.as_str()), "{context}: {msg}");
            part
        }
        Error::Unsupported { feature, .. } => {
            assert!(!feature.is_empty() && msg.contains(feature.as_str()), "{context}: {msg}");
            "unsupported"
        }
        other => panic!("{context}: unexpected error kind {other:?}"),
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    /// Flips refused at open, by the part named.
    open_err: std::collections::BTreeMap<&'static str, usize>,
    /// Flips that opened and that verify reported.
    verify_reported: usize,
    /// Flips that opened, verified clean and read back unchanged.
    harmless: usize,
    /// Chunk reads that returned an error (never wrong bytes).
    read_errors: usize,
    /// Anything that returned wrong data without an error.
    silently_wrong: Vec<String>,
}

/// Opens `bytes` and checks the no-silent-corruption rule.
fn check_damaged(s: &Sample, bytes: Vec<u8>, context: &str, out: &mut Outcomes) {
    let len = bytes.len();
    let ck = match Checkpoint::from_bytes(bytes) {
        Ok(ck) => ck,
        Err(e) => {
            *out.open_err.entry(check_open_error(&e, len, context)).or_default() += 1;
            return;
        }
    };
    let report = ck.verify().unwrap_or_else(|e| panic!("{context}: verify failed with {e}"));
    for p in &report.problems {
        assert!(!p.what.is_empty() && p.offset < len as u64, "{context}: {p:?}");
    }
    let names: Vec<&str> = ck.chunks().iter().map(|c| c.name.as_str()).collect();
    let same_index = names == s.chunks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
        && ck.metadata() == &s.metadata
        && ck.step() == s.step
        && ck.digest() == s.digest;
    let mut wrong = Vec::new();
    if !same_index {
        wrong.push("index fields".to_string());
    }
    for (name, want) in &s.chunks {
        if ck.chunk(name).is_none() {
            continue;
        }
        match ck.read(name) {
            Ok(got) if got == *want => {}
            Ok(_) => wrong.push(format!("read({name})")),
            Err(e) => {
                assert!(matches!(e, Error::Corrupt { .. }), "{context}: read({name}): {e:?}");
                assert!(e.to_string().contains("chunk"), "{context}: read({name}): {e}");
                out.read_errors += 1;
            }
        }
        let mut streamed = Vec::new();
        match ck.read_to(name, &mut streamed) {
            Ok(n) if streamed == *want && n == want.len() as u64 => {}
            Ok(_) => wrong.push(format!("read_to({name})")),
            Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{context}: read_to({name}): {e:?}"),
        }
    }
    if report.is_ok() {
        if wrong.is_empty() {
            out.harmless += 1;
        } else {
            out.silently_wrong.push(format!("{context}: verify clean but {wrong:?} differ"));
        }
    } else {
        out.verify_reported += 1;
        // Even when verify reports damage, a read that succeeds must be right.
        if let Some(w) = wrong.iter().find(|w| w.starts_with("read")) {
            out.silently_wrong.push(format!("{context}: {w} returned wrong bytes without an error"));
        }
    }
}

#[test]
fn every_flipped_byte_is_detected_or_harmless() {
    let s = sample();
    let start = Instant::now();
    let mut out = Outcomes::default();
    let mut cases = 0;
    for mask in [0x01u8, 0x80, 0xFF] {
        for at in 0..s.bytes.len() {
            let mut bytes = s.bytes.clone();
            bytes[at] ^= mask;
            check_damaged(&s, bytes, &format!("byte {at} ^ {mask:#04x}"), &mut out);
            cases += 1;
        }
    }
    eprintln!("{} bytes, {cases} flips in {:?}: {out:?}", s.bytes.len(), start.elapsed());
    assert!(out.silently_wrong.is_empty(), "silently wrong: {:#?}", out.silently_wrong);
    let opened = out.verify_reported + out.harmless;
    assert_eq!(out.open_err.values().sum::<usize>() + opened, cases);
    // Flips in the chunk data open and are caught by verify and by reads.
    assert!(out.verify_reported > 0 && out.read_errors > 0, "{out:?}");
    for part in ["header", "trailer", "index"] {
        assert!(out.open_err.get(part).copied().unwrap_or(0) > 0, "no flip was refused as {part}: {out:?}");
    }
}

/// The same rule through files on disk, over both read paths (mmap and
/// positional reads), on a sample of offsets.
#[test]
fn flipped_bytes_in_files_are_detected_with_and_without_mmap() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flipped.cairn");
    let mut out = Outcomes::default();
    for at in (0..s.bytes.len()).step_by(61) {
        let mut bytes = s.bytes.clone();
        bytes[at] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        for mmap in [true, false] {
            let context = format!("file byte {at}, mmap {mmap}");
            match Checkpoint::open_with(&path, &ReadOptions::default().mmap(mmap)) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&path.display().to_string()), "{context}: {msg}");
                    *out.open_err.entry(check_open_error(&e, bytes.len(), &context)).or_default() += 1;
                }
                Ok(ck) => {
                    let report = ck.verify().unwrap();
                    let all_same = s.chunks.iter().all(|(n, want)| ck.read(n).map_or(true, |got| got == *want));
                    assert!(all_same, "{context}: a read returned wrong bytes");
                    if report.is_ok() {
                        out.harmless += 1;
                    } else {
                        out.verify_reported += 1;
                    }
                }
            }
        }
    }
    assert!(out.verify_reported > 0 && !out.open_err.is_empty(), "{out:?}");
}

#[test]
fn every_truncation_fails_to_open_naming_the_part() {
    let s = sample();
    let mut parts = std::collections::BTreeMap::<String, usize>::new();
    for len in 0..s.bytes.len() {
        let e = Checkpoint::from_bytes(s.bytes[..len].to_vec()).err().unwrap_or_else(|| panic!("length {len} opened"));
        let Error::Corrupt { ref what, .. } = e else { panic!("length {len}: {e:?}") };
        let msg = e.to_string();
        assert!(PARTS.iter().any(|p| what == p) && msg.contains(what.as_str()), "length {len}: {msg}");
        *parts.entry(what.clone()).or_default() += 1;
    }
    eprintln!("truncations by part: {parts:?}");
    assert_eq!(parts.get("file"), Some(&128), "{parts:?}");
}

#[test]
fn appended_bytes_fail_to_open() {
    let s = sample();
    let trailer = s.bytes[s.bytes.len() - 64..].to_vec();
    let tails: Vec<(&str, Vec<u8>)> = vec![
        ("one zero byte", vec![0]),
        ("64 zero bytes", vec![0; 64]),
        ("a copy of the trailer", trailer.clone()),
        ("garbage then the trailer", [noise(100, 9), trailer].concat()),
        ("the whole file again", s.bytes.clone()),
    ];
    for (what, tail) in tails {
        let bytes = [s.bytes.clone(), tail].concat();
        let len = bytes.len();
        let e = Checkpoint::from_bytes(bytes).err().unwrap_or_else(|| panic!("{what}: opened"));
        assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e:?}");
        assert_eq!(check_open_error(&e, len, what), "trailer", "{what}: {e}");
    }
}
