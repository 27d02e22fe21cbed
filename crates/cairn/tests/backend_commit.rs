//! The commit protocol on every backend: nothing is visible before the
//! manifest, of racing commits exactly one wins, a publish whose reply was
//! lost finds its own manifest, damaged parts are caught, and what a failed
//! or losing commit left is removed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/hooked.rs"]
mod hooked;
#[path = "backend/s3_env.rs"]
mod s3_env;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use cairn::backend::commit::{self, Commit};
use cairn::backend::{Backend, FaultBackend, LocalBackend, MemoryBackend, PutMode};
use cairn::Error;
use hooked::{Hooked, When};

fn part(i: u8, len: usize) -> Bytes {
    Bytes::from((0..len).map(|j| (j as u8).wrapping_mul(31) ^ i).collect::<Vec<u8>>())
}

fn publish_and_read(b: &Arc<dyn Backend>) {
    let mut c = Commit::begin(Arc::clone(b), "runs/7/step-100").unwrap();
    c.put_part("weights", part(1, 100_000)).unwrap();
    c.put_part("optimizer", part(2, 5_000)).unwrap();
    c.set_metadata("step", serde_json::json!(100));
    // Nothing is published until the manifest is.
    assert!(matches!(commit::read_manifest(&**b, "runs/7/step-100"), Err(Error::NotFound { .. })));
    assert!(!commit::is_published(&**b, "runs/7/step-100").unwrap());
    let m = c.publish().unwrap();
    let read = commit::read_manifest(&**b, "runs/7/step-100").unwrap();
    assert_eq!(read, m);
    assert_eq!(read.metadata["step"], 100);
    assert_eq!(commit::read_part(&**b, &read, "weights").unwrap(), part(1, 100_000));
    assert_eq!(commit::read_part(&**b, &read, "optimizer").unwrap(), part(2, 5_000));
    assert!(matches!(commit::read_part(&**b, &read, "nope"), Err(Error::InvalidArgument(_))));
}

fn racing_commits_have_one_winner(b: &Arc<dyn Backend>) {
    const N: usize = 8;
    let start = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (b, start) = (Arc::clone(b), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut c = Commit::begin(b, "race").unwrap();
                c.put_part("data", part(i as u8, 10_000)).unwrap();
                start.wait();
                c.publish().map(|m| (i, m))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(Error::AlreadyExists { .. }))));
    let (i, m) = winners[0];
    let read = commit::read_manifest(&**b, "race").unwrap();
    assert_eq!(&read, m);
    assert_eq!(commit::read_part(&**b, &read, "data").unwrap(), part(*i as u8, 10_000));
    // The losers' parts go; the winner's stay.
    assert_eq!(commit::remove_unpublished(&**b, "race").unwrap(), N - 1);
    assert_eq!(b.list("race/data/").unwrap().len(), 1);
    assert_eq!(commit::read_part(&**b, &read, "data").unwrap(), part(*i as u8, 10_000));
}

fn damaged_parts_are_caught(b: &Arc<dyn Backend>) {
    let mut c = Commit::begin(Arc::clone(b), "dmg").unwrap();
    c.put_part("p", part(3, 4096)).unwrap();
    let m = c.publish().unwrap();
    let key = &m.parts[0].key;
    let mut bytes = b.get(key).unwrap().to_vec();
    bytes[100] ^= 1;
    b.put(key, Bytes::from(bytes), PutMode::Overwrite).unwrap();
    assert!(matches!(commit::read_part(&**b, &m, "p"), Err(Error::Corrupt { .. })));
    b.put(key, part(3, 4000), PutMode::Overwrite).unwrap();
    assert!(matches!(commit::read_part(&**b, &m, "p"), Err(Error::Corrupt { .. })));
    b.put("dmg/MANIFEST", Bytes::from_static(b"{not json"), PutMode::Overwrite).unwrap();
    assert!(matches!(commit::read_manifest(&**b, "dmg"), Err(Error::Corrupt { .. })));
}

fn a_failed_commit_leaves_nothing_published(b: &Arc<dyn Backend>) {
    let f = Arc::new(FaultBackend::new(Arc::clone(b)));
    let mut c = Commit::begin(f.clone(), "failed").unwrap();
    c.put_part("a", part(1, 1000)).unwrap();
    f.fail_nth(1);
    assert!(c.put_part("b", part(2, 1000)).is_err());
    drop(c);
    assert!(!commit::is_published(&**b, "failed").unwrap());
    // Its part stays unreferenced until a manifest exists to judge by.
    assert_eq!(commit::remove_unpublished(&**b, "failed").unwrap(), 0);
    let mut c = Commit::begin(Arc::clone(b), "failed").unwrap();
    c.put_part("a", part(9, 10)).unwrap();
    c.publish().unwrap();
    assert_eq!(commit::remove_unpublished(&**b, "failed").unwrap(), 1);
}

fn a_retried_publish_finds_its_own_manifest(b: &Arc<dyn Backend>) {
    // Stores the manifest, then reports a failure, the first time: a reply
    // lost on the way back.
    let lost = AtomicBool::new(false);
    let lossy: Arc<dyn Backend> = Arc::new(Hooked::new(Arc::clone(b), move |op, key, when| {
        if op == "put" && when == When::After && key.ends_with("/MANIFEST") && !lost.swap(true, Ordering::SeqCst) {
            return Err(Error::Backend { op: "uploading", what: key.into(), source: "connection reset".into() });
        }
        Ok(())
    }));
    let mut c = Commit::begin(lossy, "retried").unwrap();
    c.put_part("x", part(5, 500)).unwrap();
    let nonce = c.nonce().to_string();
    let m = c.publish().unwrap();
    assert_eq!(m.nonce, nonce);
    assert_eq!(commit::read_manifest(&**b, "retried").unwrap().nonce, nonce);
    // Someone else's manifest is not taken for ours.
    let mut other = Commit::begin(Arc::clone(b), "retried").unwrap();
    other.put_part("x", part(6, 500)).unwrap();
    assert!(matches!(other.publish(), Err(Error::AlreadyExists { .. })));
}

fn all(b: Arc<dyn Backend>) {
    publish_and_read(&b);
    racing_commits_have_one_winner(&b);
    damaged_parts_are_caught(&b);
    a_failed_commit_leaves_nothing_published(&b);
    a_retried_publish_finds_its_own_manifest(&b);
}

#[test]
fn commit_protocol_on_memory() {
    all(Arc::new(MemoryBackend::new()));
}

#[test]
fn commit_protocol_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    all(Arc::new(LocalBackend::open(dir.path()).unwrap()));
}

#[test]
fn commit_protocol_on_s3() {
    let Some((b, _cleanup)) = s3_env::backend() else { return };
    all(b);
}
