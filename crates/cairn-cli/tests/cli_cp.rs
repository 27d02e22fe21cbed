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
