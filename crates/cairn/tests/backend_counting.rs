//! The traffic-counting wrapper, public for users who account for what
//! their store moves: it passes the whole conformance suite over a real
//! backend (it changes nothing by itself), and counts what passed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/conformance.rs"]
mod conformance;

use std::sync::Arc;

use bytes::Bytes;
use cairn::backend::{Backend, CountingBackend, LocalBackend, PutMode};

fn make() -> Option<(Arc<dyn Backend>, conformance::Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path()).unwrap());
    Some((Arc::new(CountingBackend::new(inner)), Box::new(dir)))
}

conformance_tests!(make);

#[test]
fn what_passes_through_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path()).unwrap());
    let counting = CountingBackend::new(inner);
    counting.put("k", Bytes::from_static(b"12345"), PutMode::Overwrite).unwrap();
    assert_eq!(counting.get("k").unwrap().len(), 5);
    let t = counting.traffic();
    assert_eq!((t.puts, t.bytes_written, t.gets, t.bytes_read), (1, 5, 1, 5), "{t:?}");
}
