//! The backend conformance suite on S3, through `object_store`, against the
//! server named by `CAIRN_TEST_S3_URL` (`s3://bucket[/prefix]`, with
//! endpoint and credentials in the `AWS_*` variables). `./scripts/test`
//! starts a local moto server and sets these; to run the suite against real
//! AWS or another S3-compatible store, set them yourself:
//!
//! ```sh
//! CAIRN_TEST_S3_URL=s3://my-bucket/cairn-tests AWS_REGION=eu-west-1 \
//!   AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cargo test -p cairn --test backend_s3
//! ```
//!
//! Without `CAIRN_TEST_S3_URL` the tests pass without running, except under
//! CI (`CI` set), where they fail: CI must exercise S3 for real.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/conformance.rs"]
mod conformance;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn::backend::{Backend, ObjectBackend};

/// Deletes everything under a test's prefix when the test ends.
struct Cleanup(Arc<dyn Backend>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(all) = self.0.list("") {
            for m in all {
                let _ = self.0.delete(&m.key);
            }
        }
    }
}

/// A backend under a prefix of its own, so tests run in parallel and
/// leave nothing behind.
fn make() -> Option<(Arc<dyn Backend>, conformance::Guard)> {
    static N: AtomicU64 = AtomicU64::new(0);
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but CAIRN_TEST_S3_URL is not: the S3 tests must run");
        eprintln!("CAIRN_TEST_S3_URL is not set: skipping (./scripts/test starts a local S3 server)");
        return None;
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let url = format!(
        "{}/t{}-{nanos:x}-{}",
        base.trim_end_matches('/'),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let backend: Arc<dyn Backend> = Arc::new(ObjectBackend::open(&url).unwrap());
    Some((Arc::clone(&backend), Box::new(Cleanup(backend))))
}

conformance_tests!(make);
