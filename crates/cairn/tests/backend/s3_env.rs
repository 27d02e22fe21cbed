//! The S3 backend the tests use: `CAIRN_TEST_S3_URL` under a prefix of
//! each test's own, emptied when the test ends. Without the variable it is
//! `None`, except under CI (`CI` set), where that is a failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn::backend::Backend;

/// Deletes everything under a test's prefix when the test ends.
pub struct Cleanup(pub Arc<dyn Backend>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(all) = self.0.list("") {
            for m in all {
                let _ = self.0.delete(&m.key);
            }
        }
    }
}

/// A fresh prefix of the test bucket, and the guard that empties it.
pub fn backend() -> Option<(Arc<dyn Backend>, Cleanup)> {
    static N: AtomicU64 = AtomicU64::new(0);
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but CAIRN_TEST_S3_URL is not: the S3 tests must run");
        eprintln!("CAIRN_TEST_S3_URL is not set: skipping (./scripts/test starts a local S3 server)");
        return None;
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let url = format!(
        "{}/t{}-{nanos:x}-{}",
        base.trim_end_matches('/'),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    open(&url).map(|backend| (Arc::clone(&backend), Cleanup(backend)))
}

#[cfg(feature = "s3")]
fn open(url: &str) -> Option<Arc<dyn Backend>> {
    Some(Arc::new(cairn::backend::ObjectBackend::open(url).unwrap()))
}

/// Built without S3 support: nothing to test against.
#[cfg(not(feature = "s3"))]
fn open(_url: &str) -> Option<Arc<dyn Backend>> {
    eprintln!("built without the s3 feature: skipping");
    None
}
