//! The backend conformance suite on the local-disk backend, and what only
//! it does: orphan temp files swept, temp files never listed, objects as
//! plain files under the root, updates serialized by lock files that other
//! handles (as other processes would) hold, on the real and the simulated
//! file system.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/conformance.rs"]
mod conformance;

use std::sync::Arc;

use cairn::backend::{Backend, LocalBackend};

fn make() -> Option<(Arc<dyn Backend>, conformance::Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    Some((Arc::new(backend), Box::new(dir)))
}

conformance_tests!(make);

#[test]
fn objects_are_plain_files_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::open(dir.path()).unwrap();
    b.put("runs/7/step-100.cairn", bytes::Bytes::from_static(b"abc"), cairn::backend::PutMode::Overwrite).unwrap();
    assert_eq!(std::fs::read(dir.path().join("runs/7/step-100.cairn")).unwrap(), b"abc");
    assert_eq!(b.url(), format!("file://{}", dir.path().display()));
}

#[test]
fn temp_files_of_dead_processes_are_swept_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    // A pid far above any default pid_max is certainly not running.
    let dead = nested.join(".obj.2147483000.1f.cairn-tmp");
    std::fs::write(&dead, b"partial").unwrap();
    let dead_top = dir.path().join(".top.2147483000.2f.cairn-tmp");
    std::fs::write(&dead_top, b"partial").unwrap();
    std::fs::write(nested.join("obj"), b"whole").unwrap();
    let b = LocalBackend::open(dir.path()).unwrap();
    assert!(!dead_top.exists(), "the orphan in the root survived open");
    let keys: Vec<String> = b.list("").unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["a/b/obj"], "a temp file was listed");
    assert_eq!(b.sweep().unwrap(), 1);
    assert!(!dead.exists(), "the nested orphan survived sweep");
    let keys: Vec<String> = b.list("").unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["a/b/obj"]);
    // A live writer's temp file stays, and is not listed either.
    let mut w = b.writer("a/b/pending", cairn::backend::PutMode::Overwrite).unwrap();
    std::io::Write::write_all(&mut w, b"half").unwrap();
    assert_eq!(b.sweep().unwrap(), 0);
    assert_eq!(b.list("a/").unwrap().len(), 1);
    w.finish().unwrap();
    assert_eq!(b.list("a/").unwrap().len(), 2);
}

#[test]
fn lock_files_are_made_on_first_use_and_never_listed_or_swept() {
    use cairn::backend::PutMode;
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::open(dir.path()).unwrap();
    let locks = dir.path().join(".locks");
    assert!(!locks.exists(), "opening (which may be read-only use) made the lock directory");
    let t = b.put("idx", bytes::Bytes::from_static(b"1"), PutMode::Overwrite).unwrap().etag.unwrap();
    b.put("idx", bytes::Bytes::from_static(b"2"), PutMode::Update(t)).unwrap();
    assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 1, "one key, one stripe");
    let keys: Vec<String> = b.list("").unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["idx"]);
    assert_eq!(b.sweep().unwrap(), 0);
    assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 1, "sweep removed a lock file");
    // Local disk has tags from puts and get_versioned only: a head would
    // have to read the whole file.
    assert_eq!(b.head("idx").unwrap().etag, None);
    assert_eq!(b.get_versioned("idx").unwrap().etag.len(), 32, "not a hex xxh3-128");
}

#[test]
fn an_update_waits_while_another_handle_holds_its_lock() {
    use cairn::backend::PutMode;
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::open(dir.path()).unwrap();
    let t = b.put("k", bytes::Bytes::from_static(b"old"), PutMode::Overwrite).unwrap().etag.unwrap();
    // Every stripe, locked through handles of our own, as another process
    // would hold them.
    let held: Vec<std::fs::File> = (0..256)
        .map(|i| {
            let path = dir.path().join(format!(".locks/{i:02x}"));
            let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).unwrap();
            f.try_lock().unwrap();
            f
        })
        .collect();
    let b2 = b.clone();
    let update = std::thread::spawn(move || b2.put("k", bytes::Bytes::from_static(b"new"), PutMode::Update(t)));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!update.is_finished(), "the update did not wait for the lock");
    assert_eq!(b.get("k").unwrap(), &b"old"[..]);
    drop(held);
    update.join().unwrap().unwrap();
    assert_eq!(b.get("k").unwrap(), &b"new"[..]);
}

#[test]
fn racing_updates_on_the_simulated_fs_lose_nothing() {
    let sim = cairn::io::SimFs::new();
    let b = LocalBackend::open_in(sim.shared(), "root").unwrap();
    conformance::racing_updates_lose_nothing(Arc::new(b));
}
