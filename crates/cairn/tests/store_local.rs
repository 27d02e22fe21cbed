//! The store suite on the local-disk backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "store/suite.rs"]
mod suite;

use std::sync::Arc;

use cairn::backend::{Backend, LocalBackend};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    Some((Arc::new(backend), Box::new(dir)))
}

store_tests!(make);
