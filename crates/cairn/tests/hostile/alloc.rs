//! Allocation accounting: a counting global allocator and helpers that
//! measure what one call allocates.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use cairn::{Checkpoint, Error};

use crate::builder::Spec;
// ---------------------------------------------------------------------------
// Allocation accounting.

pub(crate) struct Counting;

pub(crate) static LARGEST: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LIVE: AtomicIsize = AtomicIsize::new(0);
pub(crate) static PEAK: AtomicIsize = AtomicIsize::new(0);

pub(crate) fn note_request(size: usize) {
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

pub(crate) fn note_live(delta: isize) {
    let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_request(layout.size());
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_live(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_request(layout.size());
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_live(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        note_live(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_request(new_size);
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note_live(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
pub(crate) static ALLOC: Counting = Counting;

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

#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub(crate) largest: usize,
    pub(crate) peak: usize,
}

/// Runs `f` and reports the largest allocation request and the peak of live
/// bytes above what was live before. Call with `serial()` held.
pub(crate) fn measured<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LARGEST.store(0, Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    (r, Usage { largest: LARGEST.load(Ordering::Relaxed), peak: peak.max(0) as usize })
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
