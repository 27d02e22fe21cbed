//! Runs the real `cairn` binary: round trips, JSON contracts, exit codes,
//! damage detection, hostile chunk names and closed pipes (the demo has
//! its own tests, in demo.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod common;

use common::cairn;

/// Deterministic bytes, half compressible, half noise.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if (i / 4096) % 2 == 0 {
                (i % 7) as u8
            } else {
                (x >> 56) as u8
            }
        })
        .collect()
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| ((i as f32) * 0.01).sin().to_le_bytes()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn arg(name: &str, path: &Path) -> String {
    format!("{name}={}", path.display())
}

/// Packs `first` (bytes), `w` (f32 tensor [50, 100]) and `dir/sub/c.json`.
/// Returns the checkpoint, the chunks, and pack's summary line.
fn pack_sample(dir: &Path, extra: &[&str]) -> (PathBuf, Vec<(&'static str, Vec<u8>)>, String) {
    let chunks = vec![("first", data(70_000, 1)), ("w", f32_bytes(5000)), ("dir/sub/c.json", b"{\"lr\":0.1}".to_vec())];
    let paths: Vec<PathBuf> = chunks.iter().enumerate().map(|(i, (_, d))| write(dir, &format!("in{i}"), d)).collect();
    let out = dir.join("ck.cairn");
    let mut args = vec![
        "pack".to_string(),
        out.display().to_string(),
        "--chunk".into(),
        arg("first", &paths[0]),
        "--tensor".into(),
        format!("{}:f32:50,100", arg("w", &paths[1])),
        "--chunk".into(),
        arg("dir/sub/c.json", &paths[2]),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = cairn(&args);
    run.expect(0);
    assert!(run.stderr.is_empty(), "no progress bar when stderr is not a terminal: {}", run.stderr);
    (out, chunks, run.out())
}

fn chunk<'a>(inspect: &'a Value, name: &str) -> &'a Value {
    inspect["chunks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

fn is_hex64(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn round_trip_every_compression() {
    for compression in ["none", "lz4", "zstd", "zstd:7", "zstd:-3", "auto"] {
        for shuffle in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut extra = vec!["--compression", compression, "--frame-size", "16384"];
            if shuffle {
                extra.push("--shuffle");
            }
            let (ck, chunks, _) = pack_sample(dir.path(), &extra);
            let ck_s = ck.to_str().unwrap();

            let inspect = cairn(["inspect", ck_s, "--json"]);
            let info = inspect.expect(0).json();
            let names: Vec<&str> =
                info["chunks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["first", "w", "dir/sub/c.json"], "command-line order");
            let codec = if compression == "zstd" { "zstd:3" } else { compression };
            for c in info["chunks"].as_array().unwrap() {
                assert_eq!(c["codec"], codec);
            }
            let typed_shuffle = shuffle && compression != "none";
            assert_eq!(chunk(&info, "w")["shuffle"], typed_shuffle);
            assert_eq!(chunk(&info, "first")["shuffle"], false);
            assert_eq!(info["frame_size"], 16384);
            assert_eq!(chunk(&info, "first")["frames"], 5);
            if compression != "none" {
                let first = chunk(&info, "first");
                assert!(first["stored_bytes"].as_u64().unwrap() < first["raw_bytes"].as_u64().unwrap());
            }

            let verify = cairn(["verify", ck_s, "--json"]);
            let v = verify.expect(0).json();
            assert_eq!(v["ok"], true);
            assert_eq!(v["problems"], json!([]));
            assert_eq!(v["digest"], info["digest"]);

            let out_dir = dir.path().join("out");
            cairn(["unpack", ck_s, out_dir.to_str().unwrap()]).expect(0);
            for (name, bytes) in &chunks {
                assert_eq!(&std::fs::read(out_dir.join(name)).unwrap(), bytes, "unpacked {name} ({compression})");
                let cat = cairn(["cat", ck_s, name]);
                assert_eq!(&cat.expect(0).stdout, bytes, "cat {name} ({compression})");
            }
        }
    }
}

#[test]
fn inspect_json_has_every_contract_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, chunks, summary) = pack_sample(dir.path(), &["--step", "42", "--compression", "zstd:5", "--shuffle"]);
    assert!(summary.contains(ck.to_str().unwrap()) && summary.contains("3 chunks"), "{summary}");
    assert_eq!(summary.lines().count(), 1);

    let info = cairn(["inspect", "--json", ck.to_str().unwrap()]).expect(0).json();
    assert!(info.as_object().is_some());
    assert!(info["format_version"].is_u64());
    assert_eq!(info["step"], 42);
    assert!(info["metadata"].as_object().unwrap().is_empty());
    assert!(is_hex64(&info["digest"]));
    assert_eq!(summary.split_whitespace().last(), info["digest"].as_str(), "pack prints the digest");
    let created = humantime::parse_rfc3339(info["created_at"].as_str().unwrap()).unwrap();
    let age = std::time::SystemTime::now().duration_since(created).unwrap();
    assert!(age.as_secs() < 600, "created_at is now-ish: {age:?}");
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));

    let list = info["chunks"].as_array().unwrap();
    assert_eq!(list.len(), chunks.len());
    for c in list {
        for key in ["name", "kind", "codec"] {
            assert!(c[key].is_string(), "{key} in {c}");
        }
        for key in ["raw_bytes", "stored_bytes"] {
            assert!(c[key].is_u64(), "{key} in {c}");
        }
        assert!(c["dtype"].is_string() || c["dtype"].is_null());
        assert!(c["shape"].is_array() || c["shape"].is_null());
        assert_eq!(c["codec"], "zstd:5");
    }
    let w = chunk(&info, "w");
    assert_eq!((w["kind"].as_str(), w["dtype"].as_str()), (Some("tensor"), Some("f32")));
    assert_eq!(w["shape"], json!([50, 100]));
    assert_eq!(w["raw_bytes"], 20000);
    let first = chunk(&info, "first");
    assert_eq!(first["kind"], "bytes");
    assert!(first["dtype"].is_null() && first["shape"].is_null());
    assert_eq!(first["raw_bytes"], 70000);

    // Without --json: the summary and a table naming every chunk.
    let human = cairn(["inspect", ck.to_str().unwrap()]).expect(0).out();
    assert!(human.contains("step:      42"), "{human}");
    for (name, _) in &chunks {
        assert!(human.lines().any(|l| l.starts_with(name)), "{name} in {human}");
    }
    assert!(human.contains("[50, 100]"));
}

#[test]
fn step_is_null_without_step_and_empty_pack_works() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("empty.cairn");
    cairn(["pack", ck.to_str().unwrap()]).expect(0);
    let info = cairn(["inspect", "--json", ck.to_str().unwrap()]).expect(0).json();
    assert!(info["step"].is_null());
    assert_eq!(info["chunks"], json!([]));
    assert_eq!(cairn(["verify", "--json", ck.to_str().unwrap()]).expect(0).json()["chunks"], 0);
}

#[test]
fn meta_values_are_json_or_strings() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("m.cairn");
    let run = cairn([
        "pack",
        ck.to_str().unwrap(),
        "--meta",
        "lr=0.001",
        "--meta",
        "run=first try",
        "--meta",
        "tags=[1,\"a\"]",
        "--meta",
        "opts={\"warm\":true}",
        "--meta",
        "quoted=\"5\"",
        "--meta",
        "n=5",
        "--meta",
        "expr=a=b",
    ]);
    run.expect(0);
    let info = cairn(["inspect", "--json", ck.to_str().unwrap()]).expect(0).json();
    assert_eq!(
        info["metadata"],
        json!({"lr": 0.001, "run": "first try", "tags": [1, "a"], "opts": {"warm": true}, "quoted": "5", "n": 5, "expr": "a=b"})
    );
}

#[test]
fn tensors_keep_dtype_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u8> = (0..6i64).flat_map(|i| (i * 1000).to_le_bytes()).collect();
    let ids_path = write(dir.path(), "ids.bin", &ids);
    let scalar_path = write(dir.path(), "s.bin", &1.5f64.to_le_bytes());
    let half_path = write(dir.path(), "h.bin", &[0u8; 16]);
    let ck = dir.path().join("t.cairn");
    let run = cairn([
        "pack",
        ck.to_str().unwrap(),
        "--tensor",
        &format!("{}:i64:3,2", arg("ids", &ids_path)),
        "--tensor",
        &format!("{}:F64:", arg("scalar", &scalar_path)),
        "--tensor",
        &format!("{}:bf16:2,2,2", arg("h", &half_path)),
        "--compression",
        "lz4",
        "--shuffle",
    ]);
    run.expect(0);
    let info = cairn(["inspect", "--json", ck.to_str().unwrap()]).expect(0).json();
    assert_eq!((chunk(&info, "ids")["dtype"].as_str(), &chunk(&info, "ids")["shape"]), (Some("i64"), &json!([3, 2])));
    assert_eq!((chunk(&info, "scalar")["dtype"].as_str(), &chunk(&info, "scalar")["shape"]), (Some("f64"), &json!([])));
    assert_eq!((chunk(&info, "h")["dtype"].as_str(), &chunk(&info, "h")["shape"]), (Some("bf16"), &json!([2, 2, 2])));
    assert_eq!(cairn(["cat", ck.to_str().unwrap(), "ids"]).expect(0).stdout, ids);
}

#[test]
fn runtime_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.cairn");
    for args in [vec!["inspect", missing.to_str().unwrap()], vec!["verify", missing.to_str().unwrap()]] {
        let run = cairn(&args);
        run.expect(1);
        assert!(run.stderr.starts_with("cairn: ") && run.stderr.contains("missing.cairn"), "{}", run.stderr);
    }
    let out = dir.path().join("out.cairn");
    let run = cairn(["pack", out.to_str().unwrap(), "--chunk", &arg("a", &dir.path().join("nope.bin"))]);
    run.expect(1);
    assert!(run.stderr.contains("nope.bin") && run.stderr.contains("\"a\""), "{}", run.stderr);
    assert!(!out.exists());

    let (ck, _, _) = pack_sample(dir.path(), &[]);
    let run = cairn(["cat", ck.to_str().unwrap(), "absent"]);
    run.expect(1);
    assert!(run.stderr.contains("absent"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.bin", &[0u8; 12]);
    let out = dir.path().join("out.cairn");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "Usage"),
        (vec!["frobnicate".into()], "unrecognized subcommand"),
        (vec!["pack".into()], "OUT"),
        (vec!["inspect".into(), "a".into(), "--bogus".into()], "--bogus"),
        (vec!["pack".into(), o.into(), "--chunk".into(), "no-equals-sign".into()], "NAME=PATH"),
        (vec!["pack".into(), o.into(), "--tensor".into(), format!("{}:f33:3", arg("t", &input))], "unknown dtype"),
        (vec!["pack".into(), o.into(), "--tensor".into(), format!("{}:f32:x", arg("t", &input))], "dimension"),
        (vec!["pack".into(), o.into(), "--tensor".into(), format!("{}:f32:2,2", arg("t", &input))], "shape [2, 2]"),
        (vec!["pack".into(), o.into(), "--compression".into(), "gzip".into()], "unknown compression"),
        (vec!["pack".into(), o.into(), "--compression".into(), "zstd:99".into()], "zstd level"),
        (vec!["pack".into(), o.into(), "--meta".into(), "=1".into()], "KEY=VALUE"),
        (vec!["pack".into(), o.into(), "--step".into(), "ten".into()], "--step"),
        (vec!["pack".into(), o.into(), "--frame-size".into(), "1000".into()], "frame size"),
        (
            vec!["pack".into(), o.into(), "--chunk".into(), arg("a", &input), "--chunk".into(), arg("a", &input)],
            "given twice",
        ),
    ];
    for (args, needle) in cases {
        let run = cairn(&args);
        run.expect(2);
        assert!(run.stderr.contains(needle), "{args:?}: {needle:?} not in {}", run.stderr);
        assert!(!out.exists(), "{args:?} wrote the output");
    }
    // The shape mismatch message names the tensor and both sizes.
    let run = cairn(["pack", o, "--tensor", &format!("{}:f64:2", arg("weights", &input))]);
    run.expect(2);
    assert!(
        run.stderr.contains("\"weights\"") && run.stderr.contains("16") && run.stderr.contains("12"),
        "{}",
        run.stderr
    );
}

/// Flips one byte of a file in place.
fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damage_exits_3_and_names_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, chunks, _) = pack_sample(dir.path(), &["--compression", "zstd"]);
    let ck_s = ck.to_str().unwrap();
    let info = cairn(["inspect", "--json", ck_s]).expect(0).json();
    let w = chunk(&info, "w");
    flip(&ck, w["data_offset"].as_u64().unwrap() + w["stored_bytes"].as_u64().unwrap() / 2);

    let run = cairn(["verify", ck_s]);
    run.expect(3);
    assert!(run.stderr.contains("chunk \"w\""), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    let v = cairn(["verify", "--json", ck_s]);
    let report = v.expect(3).json();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    for p in problems {
        assert_eq!(p["chunk"], "w");
        assert!(p["what"].as_str().unwrap().contains("\"w\""));
        assert!(p["offset"].is_u64() && p["detail"].is_string());
    }
    for key in ["chunks", "frames", "raw_bytes", "stored_bytes", "elapsed_ms"] {
        assert!(report[key].is_number(), "{key}");
    }

    let run = cairn(["cat", ck_s, "w"]);
    run.expect(3);
    assert!(run.stderr.contains("\"w\""), "{}", run.stderr);
    // Undamaged chunks still read.
    assert_eq!(cairn(["cat", ck_s, "first"]).expect(0).stdout, chunks[0].1);

    let out = dir.path().join("out");
    let run = cairn(["unpack", ck_s, out.to_str().unwrap()]);
    run.expect(3);
    assert!(run.stderr.contains("\"w\""), "{}", run.stderr);
    assert!(!out.join("w").exists(), "a damaged chunk leaves no partial file");
    let temps: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(temps.is_empty(), "a damaged chunk leaves no temp file: {temps:?}");
}

#[test]
fn damage_at_the_first_data_byte_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, _, _) = pack_sample(dir.path(), &[]);
    flip(&ck, 64);
    let run = cairn(["verify", ck.to_str().unwrap()]);
    run.expect(3);
    assert!(run.stderr.contains("chunk \"first\""), "{}", run.stderr);
}

#[test]
fn damaged_trailer_exits_3_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, _, _) = pack_sample(dir.path(), &[]);
    let len = std::fs::metadata(&ck).unwrap().len();
    flip(&ck, len - 20);
    let ck_s = ck.to_str().unwrap();
    for args in [vec!["inspect", ck_s], vec!["verify", ck_s], vec!["cat", ck_s, "first"]] {
        let run = cairn(&args);
        run.expect(3);
        assert!(run.stderr.contains("trailer"), "{args:?}: {}", run.stderr);
    }
    let report = cairn(["verify", "--json", ck_s]).expect(3).json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["what"], "trailer");
}

#[test]
fn unpack_refuses_names_that_escape() {
    for bad in ["../x", "/abs", "a/../../x", "a//b", "./a", "dir/"] {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("evil.cairn");
        let mut w = cairn::CheckpointWriter::create(&ck, cairn::WriterOptions::default()).unwrap();
        w.add_bytes("good", b"fine").unwrap();
        w.add_bytes(bad, b"evil").unwrap();
        w.finish().unwrap();

        let out = dir.path().join("nest").join("out");
        let run = cairn(["unpack", ck.to_str().unwrap(), out.to_str().unwrap()]);
        run.expect(1);
        assert!(run.stderr.contains(&format!("{bad:?}")), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("refusing"), "{}", run.stderr);
        assert!(!out.exists(), "{bad}: nothing is written");
        assert!(!dir.path().join("nest").join("x").exists() && !dir.path().join("x").exists());
    }
}

#[test]
fn unpack_twice_overwrites_and_skips_symlinked_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, chunks, _) = pack_sample(dir.path(), &[]);
    let out = dir.path().join("out");
    for _ in 0..2 {
        cairn(["unpack", ck.to_str().unwrap(), out.to_str().unwrap()]).expect(0);
    }
    assert_eq!(std::fs::read(out.join("dir/sub/c.json")).unwrap(), chunks[2].1);
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "no temp files left: {leftovers:?}");

    // A symlink planted where a chunk's directory goes is not followed.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out2 = dir.path().join("out2");
    std::fs::create_dir(&out2).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out2.join("dir")).unwrap();
    let run = cairn(["unpack", ck.to_str().unwrap(), out2.to_str().unwrap()]);
    run.expect(1);
    assert!(run.stderr.contains("not a directory"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn unpack_killed_half_way_leaves_only_temp_files_the_sweep_knows() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("two.cairn");
    let mut w = cairn::CheckpointWriter::create(&ck, cairn::WriterOptions::default()).unwrap();
    w.add_bytes("small", &data(4096, 1)).unwrap();
    w.add_bytes("big", &vec![7u8; 16 << 20]).unwrap();
    w.finish().unwrap();
    let out = dir.path().join("out");
    // A file size limit of 1 or 2 MiB (ulimit counts 512- or 1024-byte
    // blocks): the kernel kills the process with SIGXFSZ at the write that
    // crosses it, half way through "big", as a crash would stop it.
    let status = Command::new("sh")
        .args(["-c", "ulimit -f 2048 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_cairn"), "unpack"])
        .arg(&ck)
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(SIGXFSZ), "unpack was not stopped by the size limit: {status:?}");
    assert_eq!(std::fs::read(out.join("small")).unwrap(), data(4096, 1), "the chunk before is published whole");
    assert!(!out.join("big").exists(), "a chunk cut short is not at its name");
    let temps: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "small")
        .collect();
    // What the killed process left is a library temp file, which the
    // orphan sweep (run by `gc`, `get` and the store) recognises and removes.
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert!(temps[0].starts_with(".big.") && temps[0].ends_with(cairn::io::TEMP_SUFFIX), "{temps:?}");
    let removed = cairn::io::sweep_orphans(&out).unwrap();
    assert_eq!(removed, [out.join(&temps[0])]);
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["small"]);
}

/// The signal a process gets for writing past its file size limit (Linux).
const SIGXFSZ: i32 = 25;

#[test]
fn cat_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let big = write(dir.path(), "big.bin", &data(8 << 20, 3));
    let ck = dir.path().join("big.cairn");
    cairn(["pack", ck.to_str().unwrap(), "--chunk", &arg("big", &big)]).expect(0);

    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["cat", ck.to_str().unwrap(), "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 16];
    stdout.read_exact(&mut head).unwrap();
    assert_eq!(head[..], data(16, 3)[..]);
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
