//! The on-disk formats' compatibility contract: files written by each
//! version of cairn's encoders, committed under `tests/fixtures/`, read back with
//! their content and the digests recorded in them. A change to a format
//! that the encoder and the decoder make together fails here; a new format
//! adds new fixtures and keeps reading these (docs/FORMAT.md, docs/WAL.md,
//! docs/STORE.md).
//!
//! The fixtures were made once by `write_fixtures` below
//! (`CAIRN_FIXTURES_OUT=DIR cargo test -p cairn --test fixtures -- --ignored`)
//! and must never be regenerated in place.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use cairn::store::{GcOptions, Key, SaveInfo, Select, Store, StoreOptions};
use cairn::wal::{LogProblemKind, RecoveryMode, WalReader};
use cairn::{Checkpoint, ChunkSpec, Compression, DType, WriterOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Copies a fixture directory to a temporary one, for tests that open it
/// with something that may write (a store lookup records use times).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

// ---- content the fixtures were made from ----------------------------------

fn weights() -> Vec<f32> {
    (0..4096).map(|i| ((i as f32) * 0.37).sin()).collect()
}

fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"cairn fixture "[i % 14]).collect()
}

fn raw_bytes() -> Vec<u8> {
    (0..3000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn wal_payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("event {lsn}:").into_bytes();
    p.resize(100 + (lsn as usize * 37) % 120, b'a' + (lsn % 26) as u8);
    p
}

const WAL_RECORDS: u64 = 40;

fn store_entry(step: u64) -> Vec<f32> {
    (0..256).map(|i| (i as f32) + step as f32 / 1000.0).collect()
}

// ---- the generator --------------------------------------------------------

/// Writes the fixtures of the current format versions into
/// `$CAIRN_FIXTURES_OUT`; only those of a new version are then committed
/// (`checkpoint-v1.cairn` came from format version 1, `checkpoint-v2.cairn`
/// from version 2; the log and the store are at their first versions).
#[test]
#[ignore = "writes the fixtures; run by hand once per new format version"]
fn write_fixtures() {
    let out = PathBuf::from(std::env::var("CAIRN_FIXTURES_OUT").expect("set CAIRN_FIXTURES_OUT"));
    std::fs::create_dir_all(&out).unwrap();
    write_checkpoint(&out.join(format!("checkpoint-v{}.cairn", cairn::format::layout::FORMAT_VERSION)));
    write_delta(&out.join("checkpoint-v2-delta.cairn"));
    write_planes(&out.join("checkpoint-v2-planes.cairn"));
    write_wal(&out.join("wal-v1"));
    write_store(&out.join("store-v1"));
}

fn write_checkpoint(path: &Path) {
    let opts = WriterOptions::default().frame_size(4096);
    let mut w = cairn::CheckpointWriter::create(path, opts).unwrap();
    w.set_step(1200);
    w.set_metadata("loss", serde_json::json!(0.25));
    w.set_metadata("run", serde_json::json!("fixture"));
    w.add_chunk("raw", &ChunkSpec::bytes().compression(Compression::None), &raw_bytes()).unwrap();
    w.add_chunk("lz4", &ChunkSpec::bytes().compression(Compression::Lz4), &text(10_000)).unwrap();
    w.add_chunk("zstd", &ChunkSpec::bytes().compression(Compression::Zstd(3)), &text(9_000)).unwrap();
    let shuffled = ChunkSpec::tensor(DType::F32, &[64, 64]).compression(Compression::Zstd(3)).shuffle(true);
    w.add_chunk("shuffled", &shuffled, bytemuck::cast_slice(&weights())).unwrap();
    w.add_tensor("weights", &[64, 64], &weights()).unwrap();
    w.finish().unwrap();
}

/// What the delta fixture holds: `checkpoint-v2.cairn`'s content with one
/// byte of `zstd` and eight weights changed, and a chunk `new`.
fn delta_content() -> (Vec<u8>, Vec<f32>) {
    let mut zstd = text(9_000);
    zstd[5_000] = b'#';
    let mut w = weights();
    for v in &mut w[1000..1008] {
        *v += 1.0;
    }
    (zstd, w)
}

/// `checkpoint-v2-delta.cairn`: a delta file against the committed
/// `checkpoint-v2.cairn` (the `DELTA` feature bit, base references and XOR
/// frames).
fn write_delta(path: &Path) {
    let base = std::sync::Arc::new(Checkpoint::open(fixtures().join("checkpoint-v2.cairn")).unwrap());
    let (zstd, w8) = delta_content();
    let mut w = cairn::CheckpointWriter::create(path, WriterOptions::default().frame_size(4096)).unwrap();
    w.set_base(base).unwrap();
    w.set_step(1300);
    w.add_chunk("raw", &ChunkSpec::bytes().compression(Compression::None), &raw_bytes()).unwrap();
    w.add_chunk("lz4", &ChunkSpec::bytes().compression(Compression::Lz4), &text(10_000)).unwrap();
    w.add_chunk("zstd", &ChunkSpec::bytes().compression(Compression::Zstd(3)), &zstd).unwrap();
    let shuffled = ChunkSpec::tensor(DType::F32, &[64, 64]).compression(Compression::Zstd(3)).shuffle(true);
    w.add_chunk("shuffled", &shuffled, bytemuck::cast_slice(&weights())).unwrap();
    w.add_tensor("weights", &[64, 64], &w8).unwrap();
    w.add_bytes("new", b"added after the base").unwrap();
    w.finish().unwrap();
}

/// What the shuffled lz4 fixtures hold: weights as f32, bf16 (their high
/// halves) and f64, counts as u32, noisy small weights as f32 and small
/// random counts as u32, each as a shuffled lz4 tensor.
fn shuffled_lz4_content() -> Vec<(&'static str, DType, Vec<u8>)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let noisy: Vec<u8> = (0..4096)
        .flat_map(|_| {
            let u = (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            (0.08 * u * u.abs().sqrt()).to_le_bytes()
        })
        .collect();
    let small: Vec<u8> = (0..4096).flat_map(|_| ((next() >> 33) as u32 % 7).to_le_bytes()).collect();
    let w = weights();
    let bf16: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()[2..].to_vec()).collect();
    let f64s: Vec<u8> = w.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect();
    let counts: Vec<u8> = (0..4096u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
    vec![
        ("f32", DType::F32, bytemuck::cast_slice(&w).to_vec()),
        ("bf16", DType::BF16, bf16),
        ("f64", DType::F64, f64s),
        ("counts", DType::U32, counts),
        ("noisy", DType::F32, noisy),
        ("small", DType::U32, small),
    ]
}

/// `checkpoint-v2-planes.cairn`: shuffled lz4 chunks stored plane by plane
/// (the `PLANES` bit: raw planes, lz4 planes, and four-bit codes with and
/// without the rotation). `checkpoint-v2-shuffled-lz4.cairn` holds the
/// same content from the writer before `PLANES` (commit f22268e), which
/// stored such frames as lz4 blocks of the shuffled bytes (codec 1).
fn write_planes(path: &Path) {
    let mut w = cairn::CheckpointWriter::create(path, WriterOptions::default().frame_size(4096)).unwrap();
    w.set_step(1400);
    for (name, dtype, bytes) in shuffled_lz4_content() {
        let n = (bytes.len() / dtype.size()) as u64;
        let spec = ChunkSpec::tensor(dtype, &[n]).compression(Compression::Lz4).shuffle(true);
        w.add_chunk(name, &spec, &bytes).unwrap();
    }
    w.finish().unwrap();
}

fn write_wal(dir: &Path) {
    use cairn::wal::{SyncPolicy, Wal, WalOptions};
    let opts = WalOptions::default().sync(SyncPolicy::Always).segment_size(6144);
    let wal = Wal::open_with(cairn::io::StdFs::shared(), dir, opts).unwrap();
    for lsn in 1..=WAL_RECORDS + 1 {
        assert_eq!(wal.append(&wal_payload(lsn)).unwrap(), lsn);
    }
    wal.close().unwrap();
    std::fs::remove_file(dir.join(cairn::wal::LOCK_FILE)).unwrap();
    // A torn tail: the last record cut in the middle of its payload, as a
    // crash during its write leaves it (no mark vouches for it then).
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    segs.sort();
    assert_eq!(segs.len(), 2, "{segs:?}");
    let last = segs.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    let at = (32..bytes.len() - 24)
        .step_by(8)
        .find(|&o| bytes[o + 8..o + 16] == (WAL_RECORDS + 1).to_le_bytes() && bytes[o + 16] == 1)
        .expect("the last record");
    let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    f.set_len((at + 24 + 40) as u64).unwrap();
}

fn write_store(root: &Path) {
    let store = Store::open_url(&root.display().to_string(), StoreOptions::default()).unwrap();
    let key = Key::new("run/lr=0.1");
    for (step, loss) in [(100u64, 0.5f64), (200, 0.25), (300, 0.375)] {
        store
            .save_with(&key, SaveInfo::checkpoint().iteration(step).objective(loss).meta("host", "a1"), opts(), |w| {
                w.add_tensor("w", &[256], &store_entry(step))
            })
            .unwrap();
    }
    let fin = Key::new("run/lr=0.2");
    let e = store
        .save_with(&fin, SaveInfo::final_result().iteration(400).objective(0.125).pinned(true), opts(), |w| {
            w.add_tensor("w", &[256], &store_entry(400))?;
            w.add_json("config", &serde_json::json!({"lr": 0.2}))
        })
        .unwrap();
    // A lease left behind by a reader that went away.
    std::mem::forget(store.lease(&fin, &e.id).unwrap());
    let leases = root.join("leases");
    let lease = walk(&leases).into_iter().next().expect("a lease file");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&lease).unwrap()).unwrap();
    // Fixed, long past: the fixture's lease is stale whenever it is read.
    let expired = 1_700_000_000_000_000_000u64;
    assert!(doc["expires_at"].as_u64().is_some());
    let neutral = serde_json::json!({"version": 1, "expires_at": expired, "holder": "fixture-host:4242"});
    std::fs::write(&lease, serde_json::to_vec(&neutral).unwrap()).unwrap();
}

fn opts() -> WriterOptions {
    WriterOptions::default().compression(Compression::Lz4).created_at(std::time::UNIX_EPOCH)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

// ---- the checks ------------------------------------------------------------

#[test]
fn v1_checkpoint_reads_as_written() {
    check_checkpoint(1, CHECKPOINT_V1_FILE_BLAKE3);
}

/// Version 2 holds the same content (so the same digests) with the feature
/// bits in the trailer instead of a rewritten header.
#[test]
fn v2_checkpoint_reads_as_written() {
    check_checkpoint(2, CHECKPOINT_V2_FILE_BLAKE3);
    let bytes = std::fs::read(fixtures().join("checkpoint-v2.cairn")).unwrap();
    let at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let trailer = bytes.len() - 64;
    use cairn::format::layout::features::{REQUIRED_LZ4, REQUIRED_SHUFFLE, REQUIRED_ZSTD};
    let all = REQUIRED_LZ4 | REQUIRED_ZSTD | REQUIRED_SHUFFLE;
    assert_eq!((at(16), at(trailer + 32)), (0, all), "required bits: header, trailer");
}

/// The delta file written against `checkpoint-v2.cairn` reads, with it, as
/// the content it was made from; without it, it names it.
#[test]
fn v2_delta_checkpoint_reads_against_its_base() {
    let path = fixtures().join("checkpoint-v2-delta.cairn");
    let base = std::sync::Arc::new(Checkpoint::open(fixtures().join("checkpoint-v2.cairn")).unwrap());
    let alone = Checkpoint::open(&path).unwrap();
    assert_eq!(alone.base_digest(), Some(base.digest()));
    assert!(matches!(alone.read("raw"), Err(cairn::Error::BaseNeeded { .. })));
    let ck = alone.with_base(base).unwrap();
    let (zstd, w8) = delta_content();
    assert_eq!(ck.step(), Some(1300));
    assert_eq!(ck.read("raw").unwrap(), raw_bytes());
    assert_eq!(ck.read("lz4").unwrap(), text(10_000));
    assert_eq!(ck.read("zstd").unwrap(), zstd);
    assert_eq!(ck.read_tensor::<f32>("shuffled").unwrap(), weights());
    assert_eq!(ck.read_tensor::<f32>("weights").unwrap(), w8);
    assert_eq!(ck.read("new").unwrap(), b"added after the base");
    assert!(ck.verify().unwrap().is_ok());
    let bytes = std::fs::read(&path).unwrap();
    let at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let delta = cairn::format::layout::features::REQUIRED_DELTA;
    assert_eq!(at(bytes.len() - 64 + 32) & delta, delta, "the DELTA bit");
    assert_eq!(b3(&bytes), CHECKPOINT_V2_DELTA_FILE_BLAKE3, "the fixture file changed");
}

/// Shuffled lz4 chunks stored plane by plane read as the content they were
/// made from, and so does the same content from the writer before `PLANES`.
#[test]
fn shuffled_lz4_checkpoints_read_as_written() {
    use cairn::format::layout::features::{REQUIRED_LZ4, REQUIRED_PLANES, REQUIRED_SHUFFLE};
    for (file, file_blake3, bits) in [
        ("checkpoint-v2-planes.cairn", CHECKPOINT_V2_PLANES_FILE_BLAKE3, REQUIRED_PLANES | REQUIRED_SHUFFLE),
        ("checkpoint-v2-shuffled-lz4.cairn", CHECKPOINT_V2_SHUFFLED_LZ4_FILE_BLAKE3, REQUIRED_LZ4 | REQUIRED_SHUFFLE),
    ] {
        let path = fixtures().join(file);
        let ck = Checkpoint::open(&path).unwrap();
        assert_eq!(ck.step(), Some(1400), "{file}");
        for (name, dtype, bytes) in shuffled_lz4_content() {
            let c = ck.chunk(name).unwrap().clone();
            assert_eq!((c.dtype, c.compression, c.shuffle), (Some(dtype), Compression::Lz4, true), "{file} {name}");
            assert!(c.stored_len < c.raw_len, "{file} {name} is compressed");
            assert_eq!(ck.read(name).unwrap(), bytes, "{file} {name}");
            assert_eq!(hex(&c.digest), b3(&bytes), "{file} {name}");
        }
        assert!(ck.verify().unwrap().is_ok(), "{file}");
        let bytes = std::fs::read(&path).unwrap();
        let at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        assert_eq!(at(bytes.len() - 64 + 32), bits, "{file}: required bits");
        assert_eq!(b3(&bytes), file_blake3, "{file}: the fixture file changed");
    }
}

fn check_checkpoint(version: u16, file_blake3: &str) {
    let path = fixtures().join(format!("checkpoint-v{version}.cairn"));
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.format_version(), version);
    assert_eq!(ckpt.frame_size(), 4096);
    assert_eq!(ckpt.step(), Some(1200));
    assert_eq!(ckpt.metadata()["loss"], serde_json::json!(0.25));
    assert_eq!(ckpt.metadata()["run"], serde_json::json!("fixture"));
    let names: Vec<&str> = ckpt.chunks().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["raw", "lz4", "zstd", "shuffled", "weights"]);

    assert_eq!(ckpt.read("raw").unwrap(), raw_bytes());
    assert_eq!(ckpt.read("lz4").unwrap(), text(10_000));
    assert_eq!(ckpt.read("zstd").unwrap(), text(9_000));
    assert_eq!(ckpt.read_tensor::<f32>("shuffled").unwrap(), weights());
    assert_eq!(ckpt.tensor::<f32>("weights").unwrap(), &weights()[..]);
    let c = |n: &str| ckpt.chunk(n).unwrap().clone();
    assert_eq!(c("raw").compression, Compression::None);
    assert_eq!(c("lz4").compression, Compression::Lz4);
    assert_eq!(c("zstd").compression, Compression::Zstd(3));
    assert!(c("shuffled").shuffle);
    assert_eq!(c("weights").dtype, Some(DType::F32));
    assert_eq!(c("weights").shape.as_deref(), Some(&[64u64, 64][..]));

    // Each chunk's recorded digest is BLAKE3 of its content.
    for (name, content) in [
        ("raw", raw_bytes()),
        ("lz4", text(10_000)),
        ("zstd", text(9_000)),
        ("shuffled", bytemuck::cast_slice(&weights()).to_vec()),
        ("weights", bytemuck::cast_slice(&weights()).to_vec()),
    ] {
        assert_eq!(hex(&c(name).digest), b3(&content), "chunk {name}");
    }
    assert_eq!(hex(&ckpt.digest()), CHECKPOINT_DIGEST);
    assert_eq!(b3(&std::fs::read(&path).unwrap()), file_blake3, "the fixture file changed");
    assert!(ckpt.verify().unwrap().is_ok());
}

#[test]
fn v1_wal_reads_with_its_torn_tail() {
    let dir = fixtures().join("wal-v1");
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Salvage] {
        let reader = WalReader::open_with(cairn::io::StdFs::shared(), &dir, mode).unwrap();
        let records: Vec<_> = reader.iter_from(1).collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len() as u64, WAL_RECORDS, "{mode:?}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.lsn, i as u64 + 1);
            assert_eq!(r.payload, wal_payload(r.lsn), "LSN {}", r.lsn);
        }
        assert_eq!(reader.report().segments, 2);
    }
    let strict = WalReader::open_with(cairn::io::StdFs::shared(), &dir, RecoveryMode::Strict);
    assert!(matches!(strict, Err(cairn::Error::Corrupt { .. })), "strict recovery accepted a torn tail");

    let report = cairn::wal::verify(&cairn::io::StdFs, &dir).unwrap();
    assert!(!report.is_corrupt(), "{:?}", report.problems);
    assert_eq!(report.records, WAL_RECORDS);
    assert_eq!((report.first_lsn, report.last_lsn, report.durable_lsn), (Some(1), Some(WAL_RECORDS), WAL_RECORDS));
    let torn: Vec<_> = report.problems.iter().filter(|p| p.kind == LogProblemKind::TornTail).collect();
    assert_eq!(torn.len(), 1, "{:?}", report.problems);
    assert_eq!(torn[0].lsn, WAL_RECORDS + 1);
    assert_eq!((torn[0].offset, torn[0].bytes), WAL_TORN_AT);

    for (name, digest) in WAL_FILES {
        assert_eq!(b3(&std::fs::read(dir.join(name)).unwrap()), *digest, "{name} changed");
    }

    // Opened for appending (on a copy), the tail is cut and appends go on.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir, tmp.path());
    let wal = cairn::wal::Wal::open(tmp.path()).unwrap();
    assert_eq!(wal.recovery().truncated_bytes, WAL_TORN_AT.1);
    assert_eq!(wal.append(b"after").unwrap(), WAL_RECORDS + 1);
}

#[test]
fn v1_store_reads_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("store-v1"), tmp.path());
    let store = Store::open_url(&tmp.path().display().to_string(), StoreOptions::default()).unwrap();

    let keys: Vec<(String, Vec<Option<u64>>)> =
        store.list().unwrap().into_iter().map(|(k, es)| (k, es.iter().map(|e| e.iteration).collect())).collect();
    assert_eq!(
        keys,
        [
            ("run/lr=0.1".to_string(), vec![Some(100), Some(200), Some(300)]),
            ("run/lr=0.2".to_string(), vec![Some(400)])
        ]
    );
    let key = Key::new("run/lr=0.1");
    let entries = store.entries(&key).unwrap();
    for (e, (id, digest)) in entries.iter().zip(STORE_ENTRIES) {
        assert_eq!((e.id.as_str(), e.digest.as_str()), (*id, *digest));
        assert_eq!(e.metadata.get("host").map(String::as_str), Some("a1"));
        assert_eq!(e.kind, cairn::store::EntryKind::Checkpoint);
    }
    let best = store.lookup(&key, &Select::Best).unwrap().unwrap();
    assert_eq!((best.info.iteration, best.info.objective), (Some(200), Some(0.25)));
    assert_eq!(best.checkpoint.read_tensor::<f32>("w").unwrap(), store_entry(200));
    let latest = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(latest.checkpoint.read_tensor::<f32>("w").unwrap(), store_entry(300));

    let fin = Key::new("run/lr=0.2");
    let f = store.lookup(&fin, &Select::Best).unwrap().unwrap();
    assert_eq!(f.info.kind, cairn::store::EntryKind::Final);
    assert!(f.info.pinned);
    assert_eq!(f.checkpoint.read_json::<serde_json::Value>("config").unwrap(), serde_json::json!({"lr": 0.2}));
    assert_eq!(f.checkpoint.read_tensor::<f32>("w").unwrap(), store_entry(400));

    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.keys, report.entries), (2, 4));
    assert!(report.unindexed.is_empty() && report.quarantined.is_empty() && report.orphans == 0, "{report:?}");
    // The lease decodes: it expired long ago, so a collection removes it.
    let gc = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(gc.stale_leases, 1, "{gc:?}");
    assert_eq!(gc.entries, 4);
}

// ---- what the fixtures hold (filled in from the generated files) ----------

const CHECKPOINT_DIGEST: &str = "44bcdc2264e088614c121c55d8d0bd1deeef61cbf6f8814c1e2a88b63b4eb9d0";
const CHECKPOINT_V1_FILE_BLAKE3: &str = "def0a4fb461f387071a238fe7d27f87b3a48fc351695d519f86d4c1b89c1a508";
const CHECKPOINT_V2_FILE_BLAKE3: &str = "d27f8363b52b861dccb99c3cd920333591f5b933abe42a0f51439fdba09d4d04";
/// BLAKE3 of `checkpoint-v2-delta.cairn`'s bytes.
const CHECKPOINT_V2_DELTA_FILE_BLAKE3: &str = "3dd95c3ec29c8edb82f40a4a78e80cb17b08d3e390fa361e03ab005680f97502";
const CHECKPOINT_V2_PLANES_FILE_BLAKE3: &str = "cf9ee909b86b411e5f32f6cce4b185b9471d9574da5138538b43f91be918c0cf";
const CHECKPOINT_V2_SHUFFLED_LZ4_FILE_BLAKE3: &str = "9d9be7aae2ef65d9360901925fc2ed9b6cfd22fc528a3d2345fece57e39b681d";
const WAL_TORN_AT: (u64, u64) = (2264, 64);
const WAL_FILES: &[(&str, &str)] = &[
    ("00000000000000000001.wal", "44c449a1f9002d38dd31b9078b864596c4917a2acfbec97cd26ac896351275fc"),
    ("00000000000000000030.wal", "ddf88e536a793b2e1ff3a4b092ac630b44a51e9d13b329876759268cb2ad0280"),
];
const STORE_ENTRIES: &[(&str, &str)] = &[
    ("18ed3a6741279ccc-c49aa7812550", "e69261dd91d89fd36fe99e55224fd5c116a08ebb64eba68a761667b7ab17694c"),
    ("18ed3a67419f4207-319665864541", "df4f6393ba6d67ee378bd2b3895bafc50a504839c6c3b977d1ba1c4701183b7a"),
    ("18ed3a6741f4ff77-feb18f316d58", "cc51b5009834ae5acd7ccc78f55491221b75da22d97dd6b6ccc254c990fd6e80"),
];
