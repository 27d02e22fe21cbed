//! The backend conformance suite on the local-disk backend, and what only
//! it does: orphan temp files swept, temp files never listed, objects as
//! plain files under the root.
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
