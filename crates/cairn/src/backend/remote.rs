//! Checkpoints read straight from a backend with ranged gets: the header,
//! trailer and index first, then only the frames asked for.

use std::path::Path;
use std::sync::Arc;

use super::api::Backend;
use super::local::LocalBackend;
use super::locator;
use super::url::{is_url, parse_url, Target};
use crate::error::{Error, Result};
use crate::format::{Checkpoint, RangeRead};

/// Ranged reads of one object.
#[derive(Debug)]
struct ObjectRanges {
    backend: Arc<dyn Backend>,
    key: String,
    len: u64,
}

impl RangeRead for ObjectRanges {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len as u64);
        let bytes = self.backend.get_range(&self.key, offset..end).map_err(std::io::Error::other)?;
        Ok(Vec::from(bytes))
    }
}

/// Opens the checkpoint stored under `key` through ranged reads.
///
/// # Errors
/// [`Error::NotFound`] if there is no such object; backend errors; the
/// errors of [`Checkpoint::open`] for a damaged checkpoint.
pub fn open_checkpoint(backend: Arc<dyn Backend>, key: &str) -> Result<Checkpoint> {
    let len = backend.head(key)?.size;
    let origin = locator(backend.url(), key);
    Checkpoint::open_ranged(Box::new(ObjectRanges { backend, key: key.to_string(), len }), origin)
}

/// Where a URL points: a backend and a key in it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The backend holding the object.
    pub backend: Arc<dyn Backend>,
    /// The object's key.
    pub key: String,
}

/// Resolves `file:///dir/name` (the directory as a [`LocalBackend`]),
/// `s3://bucket/key`, `gs://bucket/key` or `az://container/key` (the bucket
/// as an [`ObjectBackend`](super::ObjectBackend), configured from the
/// environment) to a backend and a key.
///
/// # Errors
/// [`Error::InvalidArgument`] for a plain path, an unknown scheme or a URL
/// without a key; errors opening the backend.
pub fn resolve(url: &str) -> Result<Location> {
    let bad = |why: &str| Error::InvalidArgument(format!("{url:?}: {why}"));
    if !is_url(url) {
        return Err(bad("not a URL (scheme://...)"));
    }
    match parse_url(url)? {
        Target::Path(rest) => {
            let path = Path::new(rest);
            let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
                return Err(bad("no file name"));
            };
            let backend: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir)?);
            Ok(Location { backend, key: name.to_string() })
        }
        Target::Memory => Err(bad("a memory backend is private to one handle; use MemoryBackend")),
        Target::Object { key: "", .. } => Err(bad("no key after the bucket")),
        Target::Object { scheme, bucket, key } => {
            Ok(Location { backend: bucket_backend(scheme, bucket, url)?, key: key.to_string() })
        }
    }
}

/// The object storage backend of `scheme://bucket` (`url` names it in
/// errors).
///
/// # Errors
/// [`Error::InvalidArgument`] when object storage is not built in;
/// configuration errors of the service.
#[cfg(feature = "cloud")]
pub(crate) fn bucket_backend(scheme: &str, bucket: &str, _url: &str) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(super::ObjectBackend::open(&format!("{scheme}://{bucket}"))?))
}

/// Without object storage built in, every bucket URL is refused.
#[cfg(not(feature = "cloud"))]
pub(crate) fn bucket_backend(scheme: &str, _bucket: &str, url: &str) -> Result<Arc<dyn Backend>> {
    Err(Error::InvalidArgument(format!(
        "{url:?}: scheme {scheme:?} needs object storage support (build with feature s3, gcs or azure)"
    )))
}

impl Checkpoint {
    /// Opens a checkpoint named by a URL (`s3://bucket/key`, `gs://…`,
    /// `az://…`, `file:///path`) or a plain path. Files are opened as by
    /// [`open`](Self::open); objects through ranged reads, so reading one
    /// chunk of a large remote checkpoint transfers little more than that
    /// chunk.
    ///
    /// # Errors
    /// As [`resolve`] and [`open_checkpoint`].
    pub fn open_url(url: &str) -> Result<Self> {
        if let Target::Path(path) = parse_url(url)? {
            return Checkpoint::open(path);
        }
        let loc = resolve(url)?;
        open_checkpoint(loc.backend, &loc.key)
    }
}
