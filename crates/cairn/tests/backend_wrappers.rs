//! The fault and latency wrappers: with no rule set they pass the whole
//! conformance suite (they change nothing by themselves), latency delays
//! every call, and the fault rules fail what they say.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/conformance.rs"]
mod conformance;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn::backend::{Backend, FaultBackend, LatencyBackend, MemoryBackend, PutMode};

fn make() -> Option<(Arc<dyn Backend>, conformance::Guard)> {
    let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let slow: Arc<dyn Backend> = Arc::new(LatencyBackend::new(inner, Duration::from_micros(50)));
    Some((Arc::new(FaultBackend::new(slow)), Box::new(())))
}

conformance_tests!(make);

#[test]
fn latency_delays_every_call() {
    let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let slow = LatencyBackend::new(Arc::clone(&inner), Duration::from_millis(20));
    let t = Instant::now();
    slow.put("k", Bytes::from_static(b"v"), PutMode::Overwrite).unwrap();
    assert_eq!(slow.get("k").unwrap(), &b"v"[..]);
    slow.head("k").unwrap();
    assert!(t.elapsed() >= Duration::from_millis(60), "{:?}", t.elapsed());
    assert_eq!(inner.get("k").unwrap(), &b"v"[..]);
}

#[test]
fn fault_rules_fail_the_operation_they_name() {
    let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let f = FaultBackend::new(Arc::clone(&inner));
    f.put("a", Bytes::from_static(b"1"), PutMode::Overwrite).unwrap();
    f.fail_nth(2);
    f.get("a").unwrap();
    assert!(matches!(f.get("a"), Err(cairn::Error::Backend { .. })), "the second call did not fail");
    f.get("a").unwrap();
    f.fail_puts_after(10);
    assert!(f.put("b", Bytes::from(vec![0u8; 11]), PutMode::Overwrite).is_err());
    f.put("b", Bytes::from(vec![0u8; 10]), PutMode::Overwrite).unwrap();
    let mut w = f.writer("c", PutMode::Overwrite).unwrap();
    w.write_all(&[0u8; 6]).unwrap();
    assert!(w.write_all(&[0u8; 6]).is_err());
    w.abort().unwrap();
    assert!(!inner.list("").unwrap().iter().any(|m| m.key == "c"));
    f.clear();
    f.put("d", Bytes::from(vec![0u8; 100]), PutMode::Overwrite).unwrap();
}

#[test]
fn counting_sees_reads_and_writes() {
    let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let c = cairn::backend::CountingBackend::new(inner);
    c.put("a", Bytes::from(vec![1u8; 100]), PutMode::Overwrite).unwrap();
    let mut w = c.writer("b", PutMode::Overwrite).unwrap();
    w.write_all(&[2u8; 50]).unwrap();
    w.finish().unwrap();
    assert_eq!(c.get_range("a", 10..30).unwrap().len(), 20);
    assert_eq!(c.get("b").unwrap().len(), 50);
    let t = c.reset();
    assert_eq!((t.gets, t.bytes_read, t.puts, t.bytes_written), (2, 70, 2, 150));
    assert_eq!(c.traffic(), cairn::backend::Traffic::default());
}
