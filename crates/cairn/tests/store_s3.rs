//! The store suite on S3, against the server `CAIRN_TEST_S3_URL` names
//! (see `backend_s3.rs`: `./scripts/test` starts one on loopback).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "store/suite.rs"]
mod suite;
#[path = "store/suite_async.rs"]
mod suite_async;
#[path = "store/suite_shared.rs"]
mod suite_shared;

#[path = "backend/s3_env.rs"]
mod s3_env;

use std::sync::Arc;

use cairn::backend::Backend;

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    s3_env::backend().map(|(b, guard)| (b, Box::new(guard) as suite::Guard))
}

store_tests!(make);
store_async_tests!(make);
store_shared_tests!(make);
