//! `cairn import` and `cairn export` against the real `safetensors` Python
//! package (`scripts/safetensors_interop.py`, run by the interpreter in
//! `CAIRN_TEST_PYTHON`, which `scripts/test` installs at a pinned version):
//! files the package writes import exactly, and files cairn exports the
//! package reads back equal. Without `CAIRN_TEST_PYTHON` those tests are
//! skipped, except under CI, where they fail. The foreign-file and
//! bad-input tests need no Python.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn::{Checkpoint, DType};
use common::cairn;

fn python() -> Option<PathBuf> {
    match std::env::var_os("CAIRN_TEST_PYTHON") {
        Some(p) => Some(p.into()),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but CAIRN_TEST_PYTHON is not: the safetensors interop tests must run"
            );
            eprintln!("CAIRN_TEST_PYTHON is not set: skipping the safetensors interop test");
            None
        }
    }
}

/// Runs the interop script; panics with its output unless it succeeds.
fn interop(py: &Path, args: &[&Path]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/safetensors_interop.py");
    let mut cmd = Command::new(py);
    cmd.arg(script);
    if args.len() == 1 {
        cmd.arg("write");
    } else {
        cmd.arg("check");
    }
    let out = cmd.args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

fn dtype(name: &str) -> DType {
    match name {
        "F16" => DType::F16,
        "F32" => DType::F32,
        "F64" => DType::F64,
        "I8" => DType::I8,
        "I16" => DType::I16,
        "I32" => DType::I32,
        "I64" => DType::I64,
        "U8" => DType::U8,
        "U16" => DType::U16,
        "U32" => DType::U32,
        "U64" => DType::U64,
        "BOOL" => DType::Bool,
        other => panic!("dtype {other}"),
    }
}

#[test]
fn files_the_safetensors_package_writes_import_exactly() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    interop(&py, &[dir.path()]);
    let src = dir.path().join("model.safetensors");
    let run = cairn(["import".as_ref(), src.as_os_str()]);
    run.expect(0);
    assert!(run.out().contains("13 chunks"), "{}", run.out());
    let out = dir.path().join("model.cairn");
    let ck = Checkpoint::open(&out).unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    let tensors = expected["tensors"].as_object().unwrap();
    assert_eq!(ck.chunks().len(), tensors.len());
    for (name, want) in tensors {
        let c = ck.chunk(name).unwrap_or_else(|| panic!("no chunk {name}"));
        assert_eq!(c.dtype, Some(dtype(want["dtype"].as_str().unwrap())), "{name}");
        let shape: Vec<u64> = want["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(c.shape.as_deref(), Some(&shape[..]), "{name}");
        assert_eq!(ck.read(name).unwrap(), std::fs::read(dir.path().join(format!("{name}.bin"))).unwrap(), "{name}");
    }
    for (k, v) in expected["metadata"].as_object().unwrap() {
        assert_eq!(&ck.metadata()[k], v, "metadata {k}");
    }
    cairn(["verify".as_ref(), out.as_os_str()]).expect(0);
    // Uncompressed, the float tensors are viewed in place.
    assert_eq!(ck.tensor::<f32>("layer.0.weight").unwrap().len(), 128);
}

#[test]
fn files_cairn_exports_read_back_equal_in_the_safetensors_package() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    interop(&py, &[dir.path()]);
    let src = dir.path().join("model.safetensors");
    // Through cairn compressed and shuffled, and back out.
    let ck = dir.path().join("packed.cairn");
    cairn([
        "import".as_ref(),
        src.as_os_str(),
        ck.as_os_str(),
        "--compression".as_ref(),
        "lz4".as_ref(),
        "--shuffle".as_ref(),
    ])
    .expect(0);
    let out = dir.path().join("back.safetensors");
    let run = cairn(["export".as_ref(), ck.as_os_str(), out.as_os_str()]);
    run.expect(0);
    assert!(run.out().contains("exported 13 tensors"), "{}", run.out());
    assert!(interop(&py, &[&out, dir.path()]).contains("ok 13 tensors"));
}

/// A small safetensors file by hand: one U8 tensor `t` of 3 bytes.
fn small_safetensors() -> Vec<u8> {
    let header = br#"{"t":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"__metadata__":{"k":"v"}}"#;
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(&[1, 2, 3]);
    f
}

#[test]
fn foreign_files_are_named_not_called_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("model.safetensors");
    std::fs::write(&st, small_safetensors()).unwrap();
    let target = dir.path().join("unpacked");
    for args in [
        vec!["inspect".as_ref(), st.as_os_str()],
        vec!["verify".as_ref(), st.as_os_str()],
        vec!["cat".as_ref(), st.as_os_str(), "t".as_ref()],
        vec!["unpack".as_ref(), st.as_os_str(), target.as_os_str()],
    ] {
        let run = cairn(&args);
        run.expect(1);
        assert!(
            run.stderr.contains("not a cairn checkpoint (looks like safetensors: try `cairn import`)"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // A file of no known format: bad magic, damage as before.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, vec![7u8; 200]).unwrap();
    cairn(["inspect".as_ref(), junk.as_os_str()]).expect(3);
    // Import without --from: sniffed; an unknown source is a usage error
    // that lists the formats.
    let run = cairn(["import".as_ref(), junk.as_os_str()]);
    run.expect(2);
    assert!(run.stderr.contains("safetensors"), "{}", run.stderr);
    let run = cairn(["import".as_ref(), st.as_os_str()]);
    run.expect(0);
    let ck = Checkpoint::open(dir.path().join("model.cairn")).unwrap();
    assert_eq!(ck.read("t").unwrap(), [1, 2, 3]);
    assert_eq!(ck.metadata()["k"], "v");
}

#[test]
fn damaged_or_unsupported_sources_leave_nothing_at_out() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_safetensors();
    let f8 = {
        let header = br#"{"q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#;
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header);
        f.push(0);
        f
    };
    let cases: Vec<(Vec<u8>, i32, &str)> = vec![
        (good[..good.len() - 1].to_vec(), 3, "safetensors data"),
        ([&good[..], &[0]].concat(), 3, "safetensors data"),
        ([&u64::MAX.to_le_bytes()[..], &good[8..]].concat(), 3, "header length"),
        (f8, 1, "F8_E4M3"),
    ];
    for (i, (bytes, code, says)) in cases.into_iter().enumerate() {
        let src = dir.path().join(format!("bad{i}.safetensors"));
        std::fs::write(&src, bytes).unwrap();
        let out = dir.path().join(format!("bad{i}.cairn"));
        let run =
            cairn(["import".as_ref(), src.as_os_str(), out.as_os_str(), "--from".as_ref(), "safetensors".as_ref()]);
        run.expect(code);
        assert!(run.stderr.contains(says), "case {i}: {}", run.stderr);
        assert!(!out.exists(), "case {i}: something at OUT");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 4, "only the sources are left: {left:?}");
}

#[test]
fn export_refuses_chunks_that_are_not_tensors_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("notes.txt");
    std::fs::write(&data, b"hello").unwrap();
    let ck = dir.path().join("mixed.cairn");
    let spec = format!("notes={}", data.display());
    cairn(["pack".as_ref(), ck.as_os_str(), "--chunk".as_ref(), spec.as_ref()]).expect(0);
    let out = dir.path().join("mixed.safetensors");
    let run = cairn(["export".as_ref(), ck.as_os_str(), out.as_os_str()]);
    run.expect(1);
    assert!(run.stderr.contains("\"notes\"") && run.stderr.contains("--skip-non-tensors"), "{}", run.stderr);
    assert!(!out.exists());
    let run = cairn(["export".as_ref(), ck.as_os_str(), out.as_os_str(), "--skip-non-tensors".as_ref()]);
    run.expect(0);
    assert!(run.stderr.contains("\"notes\""), "{}", run.stderr);
    assert_eq!(std::fs::read(&out).unwrap().len(), 16, "an empty safetensors file: length and `{{}}` padded");
}

/// An APR2 file the way trueno's `save_apr` writes one: magic, the JSON's
/// length, the JSON (its samples, pretty-printed), CRC32 (IEEE) of the JSON.
fn apr2(json: &[u8]) -> Vec<u8> {
    let mut f = b"APR2".to_vec();
    f.extend_from_slice(&(json.len() as u32).to_le_bytes());
    f.extend_from_slice(json);
    f.extend_from_slice(&crc32fast::hash(json).to_le_bytes());
    f
}

#[test]
fn trueno_apr2_samples_import_as_one_json_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let samples = serde_json::json!([
        {"hardware_id": "a1b2c3d4", "kernel": "TiledQ4K", "throughput_tps": 100000.0, "batch": 4},
        {"hardware_id": "a1b2c3d4", "kernel": "CoalescedQ4K", "throughput_tps": 98000.5, "batch": 8}
    ]);
    let json = serde_json::to_vec_pretty(&samples).unwrap();
    let src = dir.path().join("training_data_a1b2c3d4.apr");
    std::fs::write(&src, apr2(&json)).unwrap();
    let run = cairn(["inspect".as_ref(), src.as_os_str()]);
    run.expect(1);
    assert!(run.stderr.contains("looks like apr2"), "{}", run.stderr);
    cairn(["import".as_ref(), src.as_os_str()]).expect(0);
    let ck = Checkpoint::open(dir.path().join("training_data_a1b2c3d4.cairn")).unwrap();
    assert_eq!(ck.read("samples").unwrap(), json, "the file's JSON, byte for byte");
    assert_eq!(ck.chunk("samples").unwrap().kind, cairn::ChunkKind::Json);

    // A wrong CRC with otherwise valid structure: exit 3, nothing written.
    let mut bad = apr2(&json);
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let src = dir.path().join("bad.apr");
    std::fs::write(&src, bad).unwrap();
    let run = cairn(["import".as_ref(), src.as_os_str()]);
    run.expect(3);
    assert!(run.stderr.contains("CRC mismatch"), "{}", run.stderr);
    assert!(!dir.path().join("bad.cairn").exists());
}

/// A ringkernel checkpoint the way its `Checkpoint::to_bytes` writes one:
/// the 64-byte header (CRC32 of everything after it), the metadata, then
/// each chunk's 32-byte header and bytes.
fn rkckpt(step: u64, chunks: &[(u32, u64, &[u8])]) -> Vec<u8> {
    let mut meta = Vec::new();
    for s in ["sim-0", "wave_sim"] {
        meta.extend((s.len() as u32).to_le_bytes());
        meta.extend(s.as_bytes());
    }
    meta.extend(step.to_le_bytes());
    for v in [128u32, 128, 1, 16, 16, 1] {
        meta.extend(v.to_le_bytes());
    }
    for v in [1_750_000_000_000_000u64, 2, 1] {
        meta.extend(v.to_le_bytes());
    }
    meta.extend(1u32.to_le_bytes());
    for s in ["courant", "0.5"] {
        meta.extend((s.len() as u32).to_le_bytes());
        meta.extend(s.as_bytes());
    }
    let mut f = vec![0u8; 64];
    f.extend((meta.len() as u32).to_le_bytes());
    f.extend(&meta);
    for (t, id, data) in chunks {
        for v in [*t, 0] {
            f.extend(v.to_le_bytes());
        }
        for v in [data.len() as u64, data.len() as u64, *id] {
            f.extend(v.to_le_bytes());
        }
        f.extend(*data);
    }
    let total = f.len() as u64;
    f[0..8].copy_from_slice(&0x524B_434B_5054_3031u64.to_le_bytes());
    f[8..12].copy_from_slice(&1u32.to_le_bytes());
    f[12..16].copy_from_slice(&64u32.to_le_bytes());
    f[16..24].copy_from_slice(&total.to_le_bytes());
    f[24..28].copy_from_slice(&(chunks.len() as u32).to_le_bytes());
    f[40..48].copy_from_slice(&1_750_000_000_123_000u64.to_le_bytes());
    let crc = crc32fast::hash(&f[64..]);
    f[32..36].copy_from_slice(&crc.to_le_bytes());
    f
}

#[test]
fn ringkernel_checkpoints_import_with_their_chunks_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let field: Vec<u8> = (0..128 * 128u32).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
    let src = dir.path().join("sim-0.rkcp");
    std::fs::write(&src, rkckpt(900, &[(1, 0, &[0xcb; 256]), (3, 0, b"k2h"), (5, 0x1234, &field)])).unwrap();
    let run = cairn(["verify".as_ref(), src.as_os_str()]);
    run.expect(1);
    assert!(run.stderr.contains("looks like ringkernel"), "{}", run.stderr);
    let run = cairn(["import".as_ref(), src.as_os_str()]);
    run.expect(0);
    let ck = Checkpoint::open(dir.path().join("sim-0.cairn")).unwrap();
    assert_eq!(ck.step(), Some(900));
    let names: Vec<&str> = ck.chunks().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["control_block", "k2h_queue", "device_memory/0000000000001234"]);
    assert_eq!(ck.read("device_memory/0000000000001234").unwrap(), field);
    assert_eq!(ck.metadata()["kernel_type"], "wave_sim");
    assert_eq!(ck.metadata()["custom"]["courant"], "0.5");
    let created = ck.created_at().duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(created.as_micros(), 1_750_000_000_123_000);

    // A flipped bit after the header: the CRC names it (exit 3), nothing written.
    let mut bad = rkckpt(900, &[(1, 0, &[0xcb; 256])]);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let src = dir.path().join("bad.rkcp");
    std::fs::write(&src, bad).unwrap();
    let run = cairn(["import".as_ref(), src.as_os_str()]);
    run.expect(3);
    assert!(run.stderr.contains("CRC mismatch"), "{}", run.stderr);
    assert!(!dir.path().join("bad.cairn").exists());
}

#[test]
fn an_anomalyzer_directory_imports_as_its_recovered_window() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("detector");
    std::fs::create_dir(&state).unwrap();
    // As anomalyzer writes them: the snapshot (bincode 1 of {version: 1,
    // data}) and the values pushed since, one 9-byte record each, the last
    // cut short by a crash.
    let snap: Vec<f64> = (0..100).map(|i| f64::from(i) * 0.25).collect();
    let mut f = vec![1u8];
    f.extend((snap.len() as u64).to_le_bytes());
    snap.iter().for_each(|v| f.extend(v.to_le_bytes()));
    std::fs::write(state.join("anomalyzer.snap"), f).unwrap();
    let pushed = [100.5f64, -3.0, 42.0];
    let mut wal: Vec<u8> = pushed.iter().flat_map(|v| [&[0xAEu8][..], &v.to_le_bytes()].concat()).collect();
    wal.extend([0xAE, 1, 2, 3]);
    std::fs::write(state.join("anomalyzer.wal"), wal).unwrap();
    let run = cairn(["import".as_ref(), state.as_os_str()]);
    run.expect(0);
    assert!(run.stderr.contains("torn last record of 4 bytes"), "{}", run.stderr);
    let ck = Checkpoint::open(dir.path().join("detector.cairn")).unwrap();
    let data = ck.read_tensor::<f64>("data").unwrap();
    assert_eq!(data.len(), 103);
    assert_eq!(&data[..100], &snap[..]);
    assert_eq!(&data[100..], &pushed[..]);
}
