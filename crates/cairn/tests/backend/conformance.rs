//! The conformance suite every backend runs: put/get/list/delete semantics,
//! create-only races, compare-and-swap updates (and racing ones that lose
//! nothing), ranged reads at the edges, large objects through the writer,
//! `NotFound` told apart from other errors, failed uploads that leave
//! nothing visible, and listings that never show objects being written.
//!
//! Each check takes a fresh, empty backend. `conformance_tests!(make)`
//! expands to one `#[test]` per check, `make` being a function returning
//! the backend and a guard that keeps what it needs (a temp directory, a
//! prefix to clean) until the test ends, or `None` when the backend is not
//! available here (the test then passes without running; see
//! `backend_s3.rs` for when that is allowed).

use std::io::Write;
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use cairn::backend::{Backend, BackendExt, FaultBackend, PutMode, PutResult, Versioned};
use cairn::Error;

/// Deterministic bytes, different for each seed.
/// What a test's `make` returns besides the backend.
pub type Guard = Box<dyn std::any::Any>;

pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn keys(b: &dyn Backend, prefix: &str) -> Vec<String> {
    b.list(prefix).unwrap().into_iter().map(|m| m.key).collect()
}

fn assert_not_found(r: cairn::Result<impl std::fmt::Debug>, key: &str) {
    match r {
        Err(Error::NotFound { what, .. }) => assert!(what.ends_with(key), "{what:?} does not name {key:?}"),
        other => panic!("expected NotFound for {key}, got {other:?}"),
    }
}

pub fn put_get_head_overwrite(b: Arc<dyn Backend>) {
    let one = data(1000, 1);
    b.put("a/b/one.bin", Bytes::from(one.clone()), PutMode::Overwrite).unwrap();
    assert_eq!(b.get("a/b/one.bin").unwrap(), one);
    assert_eq!(b.head("a/b/one.bin").unwrap().size, 1000);
    let two = data(10, 2);
    b.put("a/b/one.bin", Bytes::from(two.clone()), PutMode::Overwrite).unwrap();
    assert_eq!(b.get("a/b/one.bin").unwrap(), two);
    assert_eq!(b.head("a/b/one.bin").unwrap().size, 10);
    b.put("empty", Bytes::new(), PutMode::Overwrite).unwrap();
    assert_eq!(b.get("empty").unwrap().len(), 0);
    assert_eq!(b.head("empty").unwrap().size, 0);
    assert!(b.exists("empty").unwrap());
    assert!(!b.exists("nothing-here").unwrap());
}

pub fn create_only_keeps_the_first(b: Arc<dyn Backend>) {
    b.create("k", data(100, 1)).unwrap();
    match b.create("k", data(50, 2)) {
        Err(Error::AlreadyExists { what, .. }) => assert!(what.ends_with("k"), "{what}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(b.get("k").unwrap(), data(100, 1));
    // A writer in create-only mode is refused at finish, and leaves the
    // object as it was.
    let mut w = b.writer("k", PutMode::Create).unwrap();
    w.write_all(&data(10, 3)).unwrap();
    assert!(matches!(w.finish(), Err(Error::AlreadyExists { .. })));
    assert_eq!(b.get("k").unwrap(), data(100, 1));
    assert_eq!(keys(&*b, ""), vec!["k".to_string()]);
}

pub fn create_race_has_one_winner(b: Arc<dyn Backend>) {
    const THREADS: u64 = 16;
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (b, start) = (Arc::clone(&b), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                (t, b.create("race/manifest", data(64 + t as usize, t)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<u64> = results.iter().filter(|(_, r)| r.is_ok()).map(|(t, _)| *t).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}; results: {results:?}");
    for (t, r) in &results {
        if !winners.contains(t) {
            assert!(matches!(r, Err(Error::AlreadyExists { .. })), "thread {t}: {r:?}");
        }
    }
    let w = winners[0];
    assert_eq!(b.get("race/manifest").unwrap(), data(64 + w as usize, w));
}

/// The version tag a put must return.
fn tag(r: cairn::Result<PutResult>) -> String {
    r.unwrap().etag.expect("a put returned no version tag")
}

fn assert_precondition(r: cairn::Result<impl std::fmt::Debug>, key: &str) {
    match r {
        Err(Error::Precondition { what, .. }) => assert!(what.ends_with(key), "{what:?} does not name {key:?}"),
        other => panic!("expected Precondition for {key}, got {other:?}"),
    }
}

pub fn update_swaps_only_from_the_current_tag(b: Arc<dyn Backend>) {
    let first = tag(b.put("idx", Bytes::from(data(100, 1)), PutMode::Overwrite));
    let v = b.get_versioned("idx").unwrap();
    assert_eq!(v, Versioned { data: Bytes::from(data(100, 1)), etag: first.clone() });
    let second = tag(b.put("idx", Bytes::from(data(50, 2)), PutMode::Update(first.clone())));
    assert_ne!(second, first);
    assert_eq!(b.get("idx").unwrap(), data(50, 2));
    // A stale tag is refused and changes nothing.
    assert_precondition(b.put("idx", Bytes::from(data(10, 3)), PutMode::Update(first.clone())), "idx");
    assert_eq!(b.get_versioned("idx").unwrap(), Versioned { data: Bytes::from(data(50, 2)), etag: second.clone() });
    // So is any tag for a missing object, and a deleted one.
    assert_precondition(b.put("missing", Bytes::from(data(10, 4)), PutMode::Update(second.clone())), "missing");
    assert_not_found(b.get("missing"), "missing");
    assert_not_found(b.get_versioned("missing"), "missing");
    b.delete("idx").unwrap();
    assert_precondition(b.put("idx", Bytes::from(data(10, 5)), PutMode::Update(second)), "idx");
    assert_not_found(b.get("idx"), "idx");
    // A create's tag works too.
    let created = tag(b.put("c", Bytes::from(data(30, 6)), PutMode::Create));
    tag(b.put("c", Bytes::from(data(31, 7)), PutMode::Update(created)));
    assert_eq!(b.get("c").unwrap(), data(31, 7));
    assert_eq!(keys(&*b, ""), ["c"]);
}

/// 8 threads each add 1 to a counter 25 times by compare-and-swap, retrying
/// on a lost race: no increment may be lost.
pub fn racing_updates_lose_nothing(b: Arc<dyn Backend>) {
    const THREADS: usize = 8;
    const EACH: u64 = 25;
    b.put("counter", Bytes::from_static(b"0"), PutMode::Overwrite).unwrap();
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (b, start) = (Arc::clone(&b), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut lost = 0u64;
                for _ in 0..EACH {
                    loop {
                        let v = b.get_versioned("counter").unwrap();
                        let n: u64 = std::str::from_utf8(&v.data).unwrap().parse().unwrap();
                        match b.put("counter", Bytes::from((n + 1).to_string()), PutMode::Update(v.etag)) {
                            Ok(_) => break,
                            Err(Error::Precondition { .. }) => lost += 1,
                            Err(e) => panic!("update failed: {e}"),
                        }
                    }
                }
                lost
            })
        })
        .collect();
    let lost: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let total = b.get("counter").unwrap();
    assert_eq!(
        std::str::from_utf8(&total).unwrap(),
        (THREADS as u64 * EACH).to_string(),
        "updates were lost ({lost} races lost and retried)"
    );
}

pub fn update_through_the_writer(b: Arc<dyn Backend>) {
    let mut w = b.writer("w", PutMode::Create).unwrap();
    w.write_all(&data(10, 1)).unwrap();
    let created = tag(w.finish());
    let mut w = b.writer("w", PutMode::Update(created.clone())).unwrap();
    for piece in data(100_000, 2).chunks(33_333) {
        w.write_all(piece).unwrap();
    }
    let updated = tag(w.finish());
    assert_ne!(updated, created);
    assert_eq!(b.get_versioned("w").unwrap(), Versioned { data: Bytes::from(data(100_000, 2)), etag: updated });
    // A writer from a stale tag is refused at finish and changes nothing.
    let mut w = b.writer("w", PutMode::Update(created)).unwrap();
    w.write_all(&data(20, 3)).unwrap();
    assert_precondition(w.finish(), "w");
    assert_eq!(b.get("w").unwrap(), data(100_000, 2));
    // An overwriting writer's tag is the object's.
    let mut w = b.writer("w", PutMode::Overwrite).unwrap();
    w.write_all(&data(40, 4)).unwrap();
    let overwritten = tag(w.finish());
    tag(b.put("w", Bytes::from(data(5, 5)), PutMode::Update(overwritten)));
    assert_eq!(b.get("w").unwrap(), data(5, 5));
    assert_eq!(keys(&*b, ""), ["w"]);
}

pub fn ranged_reads_at_the_edges(b: Arc<dyn Backend>) {
    let obj = data(10_000, 7);
    b.put("r", Bytes::from(obj.clone()), PutMode::Overwrite).unwrap();
    let len = obj.len() as u64;
    for (s, e) in [(0, 1), (0, len), (len - 1, len), (123, 4567), (9_999, 10_000), (5_000, len + 1000)] {
        let got = b.get_range("r", s..e).unwrap();
        assert_eq!(got, obj[s as usize..e.min(len) as usize], "range {s}..{e}");
    }
    for (s, e) in [(len, len + 1), (len + 5, len + 10), (10, 10), (20, 10)] {
        assert!(matches!(b.get_range("r", s..e), Err(Error::InvalidArgument(_))), "range {s}..{e}");
    }
    assert_not_found(b.get_range("missing", 0..1), "missing");
}

pub fn list_by_prefix(b: Arc<dyn Backend>) {
    for k in ["a/b", "a/bc", "a/b2/x", "a/c/d/e", "b", "ab"] {
        b.put(k, Bytes::from_static(b"x"), PutMode::Overwrite).unwrap();
    }
    assert_eq!(keys(&*b, ""), ["a/b", "a/b2/x", "a/bc", "a/c/d/e", "ab", "b"]);
    assert_eq!(keys(&*b, "a/"), ["a/b", "a/b2/x", "a/bc", "a/c/d/e"]);
    assert_eq!(keys(&*b, "a/b"), ["a/b", "a/b2/x", "a/bc"]);
    assert_eq!(keys(&*b, "a/c/"), ["a/c/d/e"]);
    assert_eq!(keys(&*b, "a"), ["a/b", "a/b2/x", "a/bc", "a/c/d/e", "ab"]);
    assert!(keys(&*b, "zz").is_empty());
    assert!(keys(&*b, "a/zz/").is_empty());
    let meta = b.list("b").unwrap();
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].size, 1);
}

pub fn delete_and_not_found(b: Arc<dyn Backend>) {
    b.put("d/x", Bytes::from_static(b"123"), PutMode::Overwrite).unwrap();
    b.delete("d/x").unwrap();
    assert_not_found(b.get("d/x"), "d/x");
    assert_not_found(b.head("d/x"), "d/x");
    b.delete("d/x").unwrap();
    b.delete("never/was").unwrap();
    assert!(keys(&*b, "d/").is_empty());
    // Missing objects are NotFound, never another error.
    assert_not_found(b.get("no/such/key"), "no/such/key");
    assert_not_found(b.copy("no/such/key", "dest"), "no/such/key");
}

pub fn copy_makes_an_independent_object(b: Arc<dyn Backend>) {
    b.put("src", Bytes::from(data(300, 3)), PutMode::Overwrite).unwrap();
    b.copy("src", "dir/dst").unwrap();
    b.put("src", Bytes::from(data(5, 4)), PutMode::Overwrite).unwrap();
    assert_eq!(b.get("dir/dst").unwrap(), data(300, 3));
}

/// 24 MiB in uneven pieces, enough for several parts on object storage.
pub fn large_object_through_the_writer(b: Arc<dyn Backend>) {
    let obj = data(24 << 20, 9);
    let mut w = b.writer("big/object", PutMode::Overwrite).unwrap();
    for piece in obj.chunks(3_333_331) {
        w.write_all(piece).unwrap();
    }
    let etag = tag(w.finish());
    assert_eq!(b.head("big/object").unwrap().size, obj.len() as u64);
    let got = b.get("big/object").unwrap();
    assert!(got == obj, "the large object came back different");
    let mid = b.get_range("big/object", (12 << 20) - 5..(12 << 20) + 5).unwrap();
    assert_eq!(mid, obj[(12 << 20) - 5..(12 << 20) + 5]);
    // The tag of an object uploaded in parts works for an update.
    tag(b.put("big/object", Bytes::from_static(b"small"), PutMode::Update(etag)));
    assert_eq!(b.get("big/object").unwrap(), &b"small"[..]);
}

pub fn unfinished_uploads_stay_invisible(b: Arc<dyn Backend>) {
    let mut w = b.writer("pending/obj", PutMode::Overwrite).unwrap();
    w.write_all(&data(100_000, 1)).unwrap();
    assert!(keys(&*b, "").is_empty(), "an unfinished upload is listed");
    assert_not_found(b.get("pending/obj"), "pending/obj");
    w.abort().unwrap();
    let mut w = b.writer("pending/obj", PutMode::Overwrite).unwrap();
    w.write_all(&data(100_000, 2)).unwrap();
    drop(w);
    assert!(keys(&*b, "").is_empty(), "a dropped upload is listed");
    assert_not_found(b.get("pending/obj"), "pending/obj");
}

pub fn an_upload_failing_midway_leaves_nothing(b: Arc<dyn Backend>) {
    let f = FaultBackend::new(Arc::clone(&b));
    // Past the first parts of a multipart upload on object storage.
    f.fail_puts_after(18 << 20);
    let mut w = f.writer("failed/obj", PutMode::Overwrite).unwrap();
    let obj = data(24 << 20, 5);
    let err = obj.chunks(1 << 20).try_for_each(|p| w.write_all(p));
    assert!(err.is_err(), "the writer did not fail");
    w.abort().unwrap();
    assert!(f.put("failed/small", Bytes::from(obj), PutMode::Overwrite).is_err());
    assert!(keys(&*b, "").is_empty(), "a failed upload left {:?}", keys(&*b, ""));
    // A failure at finish (the nth operation) leaves nothing either.
    f.clear();
    let mut w = f.writer("failed/late", PutMode::Overwrite).unwrap();
    w.write_all(b"abc").unwrap();
    f.fail_nth(1);
    assert!(w.finish().is_err());
    assert!(keys(&*b, "").is_empty(), "a failed finish left {:?}", keys(&*b, ""));
}

pub fn bad_keys_are_refused(b: Arc<dyn Backend>) {
    for k in ["", "../x", "a//b", "/abs", ".hidden", "a/./b", "sp ace"] {
        assert!(
            matches!(b.put(k, Bytes::from_static(b"x"), PutMode::Overwrite), Err(Error::InvalidArgument(_))),
            "{k:?}"
        );
        assert!(matches!(b.get(k), Err(Error::InvalidArgument(_))), "{k:?}");
    }
    assert!(keys(&*b, "").is_empty());
}

#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        #[test]
        fn put_get_head_overwrite() {
            let Some((b, _guard)) = $make() else { return };
            conformance::put_get_head_overwrite(b);
        }
        #[test]
        fn create_only_keeps_the_first() {
            let Some((b, _guard)) = $make() else { return };
            conformance::create_only_keeps_the_first(b);
        }
        #[test]
        fn create_race_has_one_winner() {
            let Some((b, _guard)) = $make() else { return };
            conformance::create_race_has_one_winner(b);
        }
        #[test]
        fn update_swaps_only_from_the_current_tag() {
            let Some((b, _guard)) = $make() else { return };
            conformance::update_swaps_only_from_the_current_tag(b);
        }
        #[test]
        fn racing_updates_lose_nothing() {
            let Some((b, _guard)) = $make() else { return };
            conformance::racing_updates_lose_nothing(b);
        }
        #[test]
        fn update_through_the_writer() {
            let Some((b, _guard)) = $make() else { return };
            conformance::update_through_the_writer(b);
        }
        #[test]
        fn ranged_reads_at_the_edges() {
            let Some((b, _guard)) = $make() else { return };
            conformance::ranged_reads_at_the_edges(b);
        }
        #[test]
        fn list_by_prefix() {
            let Some((b, _guard)) = $make() else { return };
            conformance::list_by_prefix(b);
        }
        #[test]
        fn delete_and_not_found() {
            let Some((b, _guard)) = $make() else { return };
            conformance::delete_and_not_found(b);
        }
        #[test]
        fn copy_makes_an_independent_object() {
            let Some((b, _guard)) = $make() else { return };
            conformance::copy_makes_an_independent_object(b);
        }
        #[test]
        fn large_object_through_the_writer() {
            let Some((b, _guard)) = $make() else { return };
            conformance::large_object_through_the_writer(b);
        }
        #[test]
        fn unfinished_uploads_stay_invisible() {
            let Some((b, _guard)) = $make() else { return };
            conformance::unfinished_uploads_stay_invisible(b);
        }
        #[test]
        fn an_upload_failing_midway_leaves_nothing() {
            let Some((b, _guard)) = $make() else { return };
            conformance::an_upload_failing_midway_leaves_nothing(b);
        }
        #[test]
        fn bad_keys_are_refused() {
            let Some((b, _guard)) = $make() else { return };
            conformance::bad_keys_are_refused(b);
        }
    };
}
