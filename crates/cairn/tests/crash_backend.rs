//! Crash safety of the local-disk backend on the simulated file system: a
//! crash after every I/O operation of a small workload, under every crash
//! plan, never leaves a partial object, never loses an acknowledged put,
//! and never lists a temp file.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::io::Write;

use bytes::Bytes;
use cairn::backend::{Backend, LocalBackend, PutMode};
use cairn::io::{CrashPlan, SimFs};

const ROOT: &str = "store";

fn version(v: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ v).collect()
}

/// What the workload got acknowledged, in order.
#[derive(Debug, Default)]
struct Acked {
    x1: bool,
    x2: bool,
    y: bool,
    z_deleted: bool,
}

/// Puts `a/x` twice (overwrite), creates `a/b/y` through a writer in
/// pieces, then deletes `z` (put at the start); stops at the first error,
/// as a crashed process would.
fn workload(sim: &SimFs) -> Acked {
    let mut acked = Acked::default();
    let _ = (|| -> cairn::Result<()> {
        let b = LocalBackend::open_in(sim.shared(), ROOT)?;
        b.put("z", Bytes::from_static(b"zzz"), PutMode::Overwrite)?;
        b.put("a/x", Bytes::from(version(1, 5000)), PutMode::Overwrite)?;
        acked.x1 = true;
        b.put("a/x", Bytes::from(version(2, 7000)), PutMode::Overwrite)?;
        acked.x2 = true;
        let mut w = b.writer("a/b/y", PutMode::Create)?;
        for piece in version(3, 9000).chunks(4000) {
            w.write_all(piece).map_err(|e| cairn::Error::InvalidArgument(e.to_string()))?;
        }
        w.finish()?;
        acked.y = true;
        b.delete("z")?;
        acked.z_deleted = true;
        Ok(())
    })();
    acked
}

fn check(sim: &SimFs, acked: &Acked, context: &str) {
    let b = LocalBackend::open_in(sim.shared(), ROOT).unwrap();
    let keys: Vec<String> = b.list("").unwrap().into_iter().map(|m| m.key).collect();
    for k in &keys {
        assert!(["a/x", "a/b/y", "z"].contains(&k.as_str()), "{context}: listed {k:?}");
    }
    match b.get("a/x") {
        Ok(got) => {
            let is1 = got == version(1, 5000);
            let is2 = got == version(2, 7000);
            assert!(is1 || is2, "{context}: a/x is partial ({} bytes)", got.len());
            assert!(!(acked.x2 && is1), "{context}: the acknowledged second put of a/x was lost");
        }
        Err(cairn::Error::NotFound { .. }) => assert!(!acked.x1, "{context}: acknowledged a/x is gone"),
        Err(e) => panic!("{context}: {e}"),
    }
    match b.get("a/b/y") {
        Ok(got) => assert!(got == version(3, 9000), "{context}: a/b/y is partial ({} bytes)", got.len()),
        Err(cairn::Error::NotFound { .. }) => assert!(!acked.y, "{context}: acknowledged a/b/y is gone"),
        Err(e) => panic!("{context}: {e}"),
    }
    if acked.z_deleted {
        assert!(!keys.contains(&"z".to_string()), "{context}: an acknowledged delete came back");
    }
    // The store takes writes again after recovery.
    b.put("a/x", Bytes::from_static(b"after"), PutMode::Overwrite).unwrap();
    assert_eq!(b.get("a/x").unwrap(), &b"after"[..]);
}

#[test]
fn crash_at_every_operation_of_puts_creates_and_deletes() {
    let total = {
        let sim = SimFs::new();
        let acked = workload(&sim);
        assert!(acked.z_deleted, "the workload fails without a crash");
        sim.op_count()
    };
    let mut runs = 0;
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            sim.crash_after(n);
            let acked = workload(&sim);
            sim.crash(&plan);
            check(&sim, &acked, &format!("crash after op {n} of {total}, plan {v} {plan:?}"));
            runs += 1;
        }
    }
    assert!(runs > 200, "only {runs} crash runs");
}
