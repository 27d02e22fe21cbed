//! `cairn cp` and URLs in place of FILE: copies between paths, `file://`
//! and S3 (the server `./scripts/test` starts, or `CAIRN_TEST_S3_URL`),
//! verified; damaged or missing sources give exit 3 and 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

use std::path::Path;

use common::{cairn, noise};

/// Packs two chunks (2.5 MiB) into `out` and returns the input bytes.
fn pack(dir: &Path, out: &str) -> (Vec<u8>, Vec<u8>) {
    let (a, b) = (noise(2 << 20, 1), noise(512 << 10, 2));
    std::fs::write(dir.join("a.bin"), &a).unwrap();
    std::fs::write(dir.join("b.bin"), &b).unwrap();
    let a_spec = format!("a={}", dir.join("a.bin").display());
    let b_spec = format!("b={}", dir.join("b.bin").display());
    cairn(["pack", out, "--chunk", &a_spec, "--chunk", &b_spec, "--compression", "lz4"]).expect(0);
    (a, b)
}

/// A fresh prefix in the S3 test bucket, or `None` when there is no server
/// (a failure under CI).

#[test]
fn cp_between_paths_and_file_urls_verifies_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.cairn");
    pack(dir.path(), src.to_str().unwrap());
    let dst = dir.path().join("copy dir/dst.cairn");
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    let r = cairn(["cp", src.to_str().unwrap(), dst.to_str().unwrap()]);
    r.expect(0);
    assert!(r.out().contains("verified"), "{}", r.out());
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
    let url = format!("file://{}", dir.path().join("via-url.cairn").display());
    cairn(["cp", dst.to_str().unwrap(), &url]).expect(0);
    cairn(["verify", &url]).expect(0);

    // A damaged source fails the copy's verification (exit 3), and a
    // missing one is a runtime error (exit 1).
    let mut bytes = std::fs::read(&src).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let bad = dir.path().join("bad.cairn");
    std::fs::write(&bad, &bytes).unwrap();
    cairn(["cp", bad.to_str().unwrap(), dir.path().join("bad-copy.cairn").to_str().unwrap()]).expect(3);
    cairn(["cp", dir.path().join("none.cairn").to_str().unwrap(), dst.to_str().unwrap()]).expect(1);
    cairn(["cp", src.to_str().unwrap(), "nope://bucket/key"]).expect(2);
}

#[test]
fn every_file_command_takes_an_s3_url() {
    let Some(prefix) = common::s3_prefix("cli") else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.cairn");
    let (a, b) = pack(dir.path(), src.to_str().unwrap());
    let remote = format!("{prefix}/ckpt/model.cairn");
    cairn(["cp", src.to_str().unwrap(), &remote]).expect(0);
    cairn(["verify", &remote]).expect(0);
    let inspect = cairn(["inspect", &remote, "--json"]);
    inspect.expect(0);
    assert!(inspect.out().contains("\"a\""), "{}", inspect.out());
    assert_eq!(cairn(["cat", &remote, "b"]).expect(0).stdout, b);
    let out_dir = dir.path().join("unpacked");
    cairn(["unpack", &remote, out_dir.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(out_dir.join("a")).unwrap(), a);
    let back = dir.path().join("back.cairn");
    cairn(["cp", &remote, back.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&back).unwrap());
    // pack straight to a URL, and copy object to object.
    let packed = format!("{prefix}/ckpt/packed.cairn");
    pack(dir.path(), &packed);
    cairn(["verify", &packed]).expect(0);
    cairn(["cp", &packed, &format!("{prefix}/other/copy.cairn")]).expect(0);
    // A damaged object is caught by verify (exit 3); a missing one is exit 1.
    let mut bytes = std::fs::read(&src).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let bad = dir.path().join("bad.cairn");
    std::fs::write(&bad, &bytes).unwrap();
    // Copied up, it fails cp's verification of the upload (exit 3); the
    // object stays for `verify` to find damaged too.
    cairn(["cp", bad.to_str().unwrap(), &format!("{prefix}/bad.cairn")]).expect(3);
    cairn(["verify", &format!("{prefix}/bad.cairn")]).expect(3);
    cairn(["inspect", &format!("{prefix}/missing.cairn")]).expect(1);
}

/// Runs `rounds` rounds of `n` concurrent `cairn cp` of distinct checkpoints
/// to `dst` (a path or URL). Each copy exits 0, or 1 saying another writer
/// replaced the destination, never 3 (nothing is damaged); the checkpoint
/// left at `dst` verifies and is the source of a copy that exited 0.
/// Returns how many copies lost the race.
fn race_to_one_destination(dir: &Path, dst: &str, n: usize, rounds: usize) -> usize {
    let sources: Vec<(std::path::PathBuf, [u8; 32])> = (0..n)
        .map(|i| {
            let path = dir.join(format!("src-{i}.cairn"));
            let mut w = cairn::CheckpointWriter::create(&path, cairn::WriterOptions::default()).unwrap();
            w.add_bytes("w", &noise(256 << 10, i as u64 + 1)).unwrap();
            w.finish().unwrap();
            let digest = cairn::Checkpoint::open(&path).unwrap().digest();
            (path, digest)
        })
        .collect();
    let mut lost = 0;
    for round in 0..rounds {
        let children: Vec<_> = sources
            .iter()
            .map(|(src, _)| {
                std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
                    .args(["cp", src.to_str().unwrap(), dst])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut winners = Vec::new();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => winners.push(i),
                Some(1) if stderr.contains("replaced during the copy by another writer") => lost += 1,
                other => panic!("round {round}, copy {i}: exit {other:?}: {stderr}"),
            }
        }
        assert!(!winners.is_empty(), "round {round}: no copy succeeded");
        cairn(["verify", dst]).expect(0);
        let inspect = cairn(["inspect", dst, "--json"]);
        let left = inspect.expect(0).json()["digest"].as_str().unwrap().to_string();
        let hex = |d: &[u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert!(
            winners.iter().any(|i| hex(&sources[*i].1) == left),
            "round {round}: {dst} holds {left}, the source of no copy that exited 0 ({winners:?})"
        );
    }
    lost
}

#[test]
fn concurrent_copies_to_one_path_report_lost_races_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst.cairn");
    // Every copy publishes (rename, directory sync) and then reads the
    // destination back: with 16 at once, most read another's copy.
    let lost = race_to_one_destination(dir.path(), dst.to_str().unwrap(), 16, 8);
    eprintln!("{lost} of 128 copies lost the race");
    assert!(lost > 0, "no copy lost the race in 8 rounds of 16: the test did not test anything");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(cairn::io::TEMP_SUFFIX)), "{names:?}");
}

#[test]
fn concurrent_copies_to_one_object_report_lost_races_not_damage() {
    let Some(prefix) = common::s3_prefix("race") else { return };
    let dir = tempfile::tempdir().unwrap();
    let lost = race_to_one_destination(dir.path(), &format!("{prefix}/dst.cairn"), 16, 2);
    eprintln!("{lost} of 32 copies lost the race");
    assert!(lost > 0, "no copy lost the race in 2 rounds of 16: the test did not test anything");
}
