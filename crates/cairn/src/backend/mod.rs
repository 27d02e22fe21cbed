//! Object-level storage behind one small synchronous trait: local disk (on
//! the io layer), memory, and object storage through `object_store`, with
//! wrappers that inject faults or latency or count the traffic.
//!
//! Every backend stores each object atomically: a reader sees the whole old
//! object or the whole new one. Checkpoints made of several objects are
//! committed by publishing a manifest last, create-only (see
//! docs/DURABILITY.md).

mod api;
pub mod commit;
mod counting;
#[cfg(any(test, feature = "testing"))]
mod fault;
mod key;
mod key_lock;
#[cfg(any(test, feature = "testing"))]
mod latency;
mod local;
mod memory;
#[cfg(feature = "cloud")]
mod object;
mod remote;
mod url;

pub use api::{Backend, BackendExt, Durability, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
pub use counting::{CountingBackend, Traffic};
#[cfg(any(test, feature = "testing"))]
pub use fault::FaultBackend;
pub use key::{check_key, check_prefix, MAX_KEY_LEN};
#[cfg(any(test, feature = "testing"))]
pub use latency::LatencyBackend;
pub use local::LocalBackend;
pub use memory::MemoryBackend;
#[cfg(feature = "cloud")]
pub use object::{ObjectBackend, DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE};
pub use remote::{open_checkpoint, resolve, Location};
pub use url::{is_url, parse_url, Target};

pub(crate) use remote::bucket_backend;

use std::ops::Range;

use bytes::Bytes;

use crate::error::{Error, Result};

/// How an object is named in messages: `<backend URL>/<key>`.
pub(crate) fn locator(url: &str, key: &str) -> String {
    if url.ends_with('/') {
        format!("{url}{key}")
    } else {
        format!("{url}/{key}")
    }
}

/// The refusal of a [`PutMode::Update`] from version `expected` of `key`,
/// which has changed since (`exists`) or is gone.
pub(crate) fn stale_update(url: &str, key: &str, expected: &str, exists: bool) -> Error {
    let detail = if exists {
        format!("the object changed since version {expected}")
    } else {
        format!("no object to update (expected version {expected})")
    };
    Error::Precondition { what: locator(url, key), detail, source: None }
}

/// Bytes `range` of `data`, cut at its end, as [`Backend::get_range`]
/// specifies.
pub(crate) fn slice_range(data: &Bytes, range: Range<u64>, what: &str) -> Result<Bytes> {
    let len = data.len() as u64;
    check_range(&range, len, what)?;
    let (start, end) = (to_usize(range.start), to_usize(range.end.min(len)));
    Ok(data.slice(start..end))
}

/// Refuses an empty or backward range, or one starting past `len`.
pub(crate) fn check_range(range: &Range<u64>, len: u64, what: &str) -> Result<()> {
    if range.start >= range.end {
        return Err(Error::InvalidArgument(format!("empty or backward range {range:?} of {what}")));
    }
    if range.start >= len {
        return Err(Error::InvalidArgument(format!("range {range:?} starts past the end of {what} ({len} bytes)")));
    }
    Ok(())
}

/// A length already checked against an in-memory buffer's length.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
