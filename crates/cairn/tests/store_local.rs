//! The store suite on the local-disk backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/hooked.rs"]
mod hooked;
#[path = "store/suite.rs"]
mod suite;
#[path = "store/suite_async.rs"]
mod suite_async;
#[path = "store/suite_shared.rs"]
mod suite_shared;

use std::sync::Arc;

use cairn::backend::{Backend, LocalBackend};
use hooked::{Hooked, When};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    Some((Arc::new(backend), Box::new(dir)))
}

store_tests!(make);
store_async_tests!(make);
store_shared_tests!(make);

#[test]
fn open_url_takes_paths_and_file_urls_and_refuses_memory() {
    use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a store");
    let by_path = Store::open_url(root.to_str().unwrap(), StoreOptions::default()).unwrap();
    by_path.save_bytes(&Key::new("k"), suite::ckpt(1.0), SaveInfo::checkpoint()).unwrap();
    assert!(root.join("index").is_dir(), "the store is not at the path given");
    let by_url = Store::open_url(&format!("file://{}", root.display()), StoreOptions::default()).unwrap();
    assert!(by_url.lookup(&Key::new("k"), &Select::Latest).unwrap().is_some());
    let err = Store::open_url("memory://", StoreOptions::default()).unwrap_err();
    assert!(matches!(err, cairn::Error::InvalidArgument(_)), "{err}");
    assert!(Store::open_url("s3://", StoreOptions::default()).is_err());
}

/// A local store whose first data upload runs `hook` first, and the
/// backend under it.
fn hooked_store(
    dir: &std::path::Path,
    hook: impl FnOnce() + Send + 'static,
) -> (cairn::store::Store, Arc<dyn Backend>) {
    use cairn::store::{Store, StoreOptions};
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.join("store")).unwrap());
    // Runs `hook` once, when the first data object's writer opens: after
    // `save_file` has verified its file, before any byte of it is streamed.
    let once = std::sync::Mutex::new(Some(hook));
    let hooked = Hooked::new(backend.clone(), move |op, key, when| {
        if op == "writer" && when == When::Before && key.ends_with(".data") {
            if let Some(hook) = once.lock().unwrap().take() {
                hook();
            }
        }
        Ok(())
    });
    (Store::open(Arc::new(hooked), "", StoreOptions::default()).unwrap(), backend)
}

/// Changes `len` bytes at `offset` of the file in place (same inode).
fn overwrite(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, offset).unwrap();
}

#[test]
fn save_file_refuses_a_file_changed_in_place_after_it_was_verified() {
    use cairn::store::{Key, SaveInfo};
    let len = suite::ckpt(1.0).len() as u64;
    // Each change lands between verification and streaming; each would be
    // stored, unverified, if what is streamed were not checked.
    type Change = Box<dyn Fn(&std::path::Path) + Send + Sync>;
    let cases: Vec<(&str, &str, Change)> = vec![
        ("a byte of the tensor", "chunk \"w\" frame 0", Box::new(|p| overwrite(p, 64 + 10, &[0xEE]))),
        ("a reserved header byte", "header", Box::new(|p| overwrite(p, 40, &[1]))),
        ("the index", "index", Box::new(move |p| overwrite(p, len - 64 - 3, &[0xEE]))),
        (
            "cut short",
            "file",
            Box::new(move |p| std::fs::File::options().write(true).open(p).unwrap().set_len(len - 64).unwrap()),
        ),
        ("grown", "file", Box::new(move |p| overwrite(p, len, b"more bytes"))),
    ];
    for (what, part, change) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.cairn");
        std::fs::write(&path, suite::ckpt(1.0)).unwrap();
        let p = path.clone();
        let (store, backend) = hooked_store(dir.path(), move || change(&p));
        let key = Key::new("k");
        let err = store.save_file(&key, &path, SaveInfo::checkpoint()).expect_err(what);
        match &err {
            cairn::Error::Corrupt { file, what: got, .. } => {
                assert_eq!(got, part, "{what}: {err}");
                assert_eq!(file, &path.display().to_string(), "{what}: {err}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(store.entries(&key).unwrap().is_empty(), "{what}: an entry was committed");
        let data: Vec<_> = backend.list("").unwrap().into_iter().filter(|m| m.key.ends_with(".data")).collect();
        assert!(data.is_empty(), "{what}: data was stored: {data:?}");
    }
}

#[test]
fn save_file_stores_the_file_it_verified_when_another_is_renamed_over_it() {
    use cairn::store::{Key, SaveInfo, Select};
    let mut damaged = suite::ckpt(3.0).to_vec();
    damaged[64 + 10] ^= 0xFF;
    for (what, replacement) in [("a different checkpoint", suite::ckpt(2.0).to_vec()), ("a damaged file", damaged)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.cairn");
        std::fs::write(&path, suite::ckpt(1.0)).unwrap();
        let (p, other) = (path.clone(), dir.path().join("other.cairn"));
        let (store, _backend) = hooked_store(dir.path(), move || {
            std::fs::write(&other, replacement).unwrap();
            std::fs::rename(&other, &p).unwrap();
        });
        let key = Key::new("k");
        store.save_file(&key, &path, SaveInfo::checkpoint()).unwrap();
        let found = store.lookup(&key, &Select::Latest).unwrap().expect("the entry");
        assert_eq!(found.checkpoint.read_tensor::<f32>("w").unwrap(), vec![1.0; 64], "{what} was stored");
        assert!(store.verify().unwrap().is_clean(), "{what}");
    }
}

/// The niceness of this process's thread named `name`, if one runs now
/// (field 19 of `/proc/self/task/TID/stat`).
#[cfg(target_os = "linux")]
fn nice_of_thread(name: &str) -> Option<i64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the parenthesised command: state is field 3.
        let rest = &stat[stat.rfind(')')? + 1..];
        return rest.split_whitespace().nth(16)?.parse().ok();
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn background_saves_run_at_the_niceness_asked_for() {
    use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
    use cairn::{Compression, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open(Arc::new(LocalBackend::open(dir.path()).unwrap()), "", StoreOptions::default().background_nice(7))
            .unwrap();
    // Enough work on one encoding thread to watch the save run.
    let data: Vec<f32> = (0..(8u32 << 20)).map(|i| (i % 977) as f32 * 0.25).collect();
    let opts = WriterOptions::default().compression(Compression::Zstd(9)).threads(Some(1));
    let key = Key::new("nice");
    let h = store
        .save_async(&key, SaveInfo::checkpoint(), opts, |w| w.add_tensor("x", &[data.len() as u64], &data))
        .unwrap();
    let mut seen = None;
    while seen.is_none() && !h.is_finished() {
        seen = nice_of_thread("cairn-save");
    }
    h.wait().unwrap();
    assert_eq!(seen, Some(7), "the background save's thread did not run at niceness 7");
    // The caller's thread keeps its own.
    let me = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let mine: i64 = me[me.rfind(')').unwrap() + 1..].split_whitespace().nth(16).unwrap().parse().unwrap();
    assert!(mine < 7, "the caller's thread was lowered too ({mine})");
    let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
    assert_eq!(found.checkpoint.read_tensor::<f32>("x").unwrap(), data);
}
