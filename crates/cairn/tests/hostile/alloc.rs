//! Allocation accounting: a counting global allocator and helpers that
//! measure what one call allocates.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, Once};

use cairn::{Checkpoint, Error};

use crate::builder::Spec;

#[path = "../shared/counting_alloc.rs"]
mod counting;

pub(crate) use counting::{measured, Usage};

pub(crate) static SERIAL: Mutex<()> = Mutex::new(());
pub(crate) static WARM: Once = Once::new();

/// Runs tests one at a time, so the counters see one test's allocations.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Start rayon's pool and the codecs' thread-local state outside any
    // measurement.
    WARM.call_once(|| {
        let ck = Checkpoint::from_bytes(Spec::valid().build()).unwrap();
        assert!(ck.verify().unwrap().is_ok());
    });
    guard
}

/// The most a reader may ask for to open a file of `len` bytes.
pub(crate) fn open_budget(len: usize) -> usize {
    (4 * len).max(64 << 10)
}

/// Opens `bytes` under measurement and checks the allocation budget.
pub(crate) fn open(bytes: Vec<u8>) -> cairn::Result<Checkpoint> {
    let len = bytes.len();
    let (r, u) = measured(|| Checkpoint::from_bytes(bytes));
    let budget = open_budget(len);
    assert!(u.largest <= budget, "opening a {len}-byte file asked for {} bytes at once", u.largest);
    assert!(u.peak <= budget, "opening a {len}-byte file held {} bytes", u.peak);
    r
}

/// Opens a file that must be refused.
pub(crate) fn refused(bytes: Vec<u8>) -> Error {
    match open(bytes) {
        Ok(_) => panic!("hostile file opened"),
        Err(e) => e,
    }
}

/// Asserts `e` is `Corrupt` in `part`, its detail mentions `says`, and its
/// message names the part and an offset within the file.
pub(crate) fn assert_corrupt(e: &Error, part: &str, says: &str, file_len: usize) {
    let msg = e.to_string();
    match e {
        Error::Corrupt { what, detail, offset, .. } => {
            assert_eq!(what, part, "{msg}");
            assert!(detail.contains(says), "expected {says:?} in: {msg}");
            assert!(*offset <= file_len as u64, "offset past the file: {msg}");
            assert!(msg.contains(part) && msg.contains(&format!("offset {offset}")), "{msg}");
        }
        other => panic!("expected corrupt {part}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A file builder that writes every field as told and every checksum right.
