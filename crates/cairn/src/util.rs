//! Small things every layer uses, each in one place: taking a lock whose
//! holder panicked, and unique nonces for names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Takes `m`'s lock even if a thread panicked while holding it. Every lock
/// in cairn guards state that is changed in single steps (a field set, a
/// map operation, a value replaced whole), so a panic never leaves half a
/// change for the next holder to misread; and an error or a panic in one
/// caller must not take the lock from all the others.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The value inside `m`, whether or not a holder panicked (see [`lock`]).
pub(crate) fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// A new nonce: 24 hex digits of a BLAKE3 hash of the time, the process id
/// and a counter, unique across the processes and threads of a host and,
/// in practice, across hosts. For temp file names, commit parts, entry ids
/// and lease objects.
pub(crate) fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.finalize().to_hex().as_str().get(..24).unwrap_or_default().to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_distinct_hex() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| nonce()).collect();
        assert_eq!(a.len(), 1000);
        assert!(a.iter().all(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn a_lock_whose_holder_panicked_is_still_taken() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
