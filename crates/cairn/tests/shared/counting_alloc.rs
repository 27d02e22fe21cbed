//! A counting global allocator for the tests and benches that bound
//! memory: it forwards to the system allocator and records the largest
//! single request and the peak of live bytes. Including this module
//! installs it as the binary's global allocator.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

pub struct Counting;

pub static LARGEST: AtomicUsize = AtomicUsize::new(0);
pub static LIVE: AtomicIsize = AtomicIsize::new(0);
pub static PEAK: AtomicIsize = AtomicIsize::new(0);

fn note_request(size: usize) {
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

fn note_live(delta: isize) {
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

    // Forwarded, so a growing vector is moved by the system's realloc
    // (which remaps large blocks) and counted once, as it really is.
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
pub static ALLOC: Counting = Counting;

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The largest single allocation request.
    pub largest: usize,
    /// The peak of live bytes above what was live before.
    pub peak: usize,
}

/// Runs `f` and reports what it allocated. The counters are process-wide:
/// callers that measure run one at a time.
pub fn measured<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LARGEST.store(0, Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    (r, Usage { largest: LARGEST.load(Ordering::Relaxed), peak: peak.max(0) as usize })
}
