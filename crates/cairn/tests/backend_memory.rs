//! The backend conformance suite on the memory backend.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/conformance.rs"]
mod conformance;

use std::sync::Arc;

use cairn::backend::{Backend, MemoryBackend};

fn make() -> Option<(Arc<dyn Backend>, conformance::Guard)> {
    Some((Arc::new(MemoryBackend::new()), Box::new(())))
}

conformance_tests!(make);
