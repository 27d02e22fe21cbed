//! Delta files on the command line: `pack --base`, and `cat`, `unpack`,
//! `inspect`, `verify` and `cp` with `--base`; without the base they exit 1
//! naming its digest, with another base 3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

mod common;

use common::{cairn, noise};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn pack(dir: &Path, out: &str, frozen: &[u8], rows: &[u8], base: Option<&Path>) -> PathBuf {
    let (a, b) = (dir.join(format!("{out}.frozen")), dir.join(format!("{out}.rows")));
    std::fs::write(&a, frozen).unwrap();
    std::fs::write(&b, rows).unwrap();
    let out = dir.join(out);
    let mut args = vec![
        "pack".to_string(),
        s(&out),
        "--chunk".into(),
        format!("frozen={}", a.display()),
        "--tensor".into(),
        format!("rows={}:f32:{},128", b.display(), rows.len() / 512),
    ];
    if let Some(base) = base {
        args.extend(["--base".to_string(), s(base)]);
    }
    cairn(&args).expect(0);
    out
}

#[test]
fn delta_files_pack_small_and_read_only_with_their_base() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frozen = noise(3 << 20, 1);
    let rows = noise(2 << 20, 2);
    let base = pack(d, "base.cairn", &frozen, &rows, None);
    let mut rows2 = rows.clone();
    for r in [10usize, 2000, 3500] {
        for b in &mut rows2[r * 512..r * 512 + 512] {
            *b ^= 0x55;
        }
    }
    let delta = pack(d, "delta.cairn", &frozen, &rows2, Some(&base));
    let (base_len, delta_len) = (std::fs::metadata(&base).unwrap().len(), std::fs::metadata(&delta).unwrap().len());
    assert!(delta_len * 100 < base_len, "delta {delta_len} bytes against a base of {base_len}");

    // inspect names the base, with and without it.
    let base_digest = cairn(["inspect", &s(&base), "--json"]).json()["digest"].clone();
    let info = cairn(["inspect", &s(&delta), "--json"]);
    info.expect(0);
    assert_eq!(info.json()["base_digest"], base_digest);
    assert!(cairn(["inspect", &s(&delta)]).out().contains("delta file"));

    // Without the base: exit 1, naming the base's digest.
    for args in [vec!["cat", &s(&delta), "frozen"], vec!["verify", &s(&delta)]] {
        let run = cairn(&args);
        run.expect(1);
        assert!(run.stderr.contains(base_digest.as_str().unwrap()), "{}", run.stderr);
    }
    // With it: the content, and a clean verify.
    let cat = cairn(["cat", &s(&delta), "rows", "--base", &s(&base)]);
    cat.expect(0);
    assert!(cat.stdout == rows2);
    cairn(["verify", &s(&delta), "--base", &s(&base)]).expect(0);
    let out = d.join("unpacked");
    cairn(["unpack", &s(&delta), &s(&out), "--base", &s(&base)]).expect(0);
    assert!(std::fs::read(out.join("frozen")).unwrap() == frozen);

    // A copy is verified against the base; without one it is refused.
    let copy = d.join("copy.cairn");
    cairn(["cp", &s(&delta), &s(&copy)]).expect(1);
    assert!(!copy.exists());
    cairn(["cp", &s(&delta), &s(&copy), "--base", &s(&base)]).expect(0);
    assert!(std::fs::read(&copy).unwrap() == std::fs::read(&delta).unwrap());

    // Another base (other content under the same names): damage, exit 3.
    let other = pack(d, "other.cairn", &noise(3 << 20, 9), &rows, None);
    let run = cairn(["cat", &s(&delta), "rows", "--base", &s(&other)]);
    run.expect(3);
    assert!(run.stderr.contains("base"), "{}", run.stderr);
    cairn(["verify", &s(&delta), "--base", &s(&other)]).expect(3);
    // A delta file is no base.
    cairn([
        "pack",
        &s(&d.join("x.cairn")),
        "--chunk",
        &format!("frozen={}", d.join("base.cairn.frozen").display()),
        "--base",
        &s(&delta),
    ])
    .expect(2);
}
