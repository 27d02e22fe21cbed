//! The store suite on the memory backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "store/suite.rs"]
mod suite;

use std::sync::Arc;

use cairn::backend::{Backend, MemoryBackend};

fn make() -> Option<(Arc<dyn Backend>, suite::Guard)> {
    Some((Arc::new(MemoryBackend::new()), Box::new(())))
}

store_tests!(make);
