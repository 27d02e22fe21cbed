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

#[path = "backend/s3_env.rs"]
mod s3_env;

use std::sync::Arc;

use cairn::backend::Backend;

fn make() -> Option<(Arc<dyn Backend>, conformance::Guard)> {
    s3_env::backend().map(|(b, guard)| (b, Box::new(guard) as conformance::Guard))
}

conformance_tests!(make);

/// The object store's own error stays reachable as the source of the kinds
/// cairn maps it to, so callers can see what S3 said.
#[test]
fn mapped_errors_keep_the_object_stores_error_as_their_source() {
    use cairn::backend::PutMode;
    use std::error::Error as _;
    let Some((b, _guard)) = make() else { return };
    match b.get("missing") {
        Err(e @ cairn::Error::NotFound { .. }) => assert!(e.source().is_some(), "{e}: no source"),
        other => panic!("{other:?}"),
    }
    b.put("once", bytes::Bytes::from_static(b"x"), PutMode::Create).unwrap();
    match b.put("once", bytes::Bytes::from_static(b"y"), PutMode::Create) {
        Err(e @ cairn::Error::AlreadyExists { .. }) => assert!(e.source().is_some(), "{e}: no source"),
        other => panic!("{other:?}"),
    }
    let _ = b.delete("once");
}
