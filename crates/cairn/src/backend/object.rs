//! Object storage (S3, GCS, Azure) through the `object_store` crate, behind
//! the synchronous [`Backend`] trait: calls block on a small tokio runtime
//! that every object backend of the process shares (made on first use), so
//! callers need none.
//!
//! - Called from inside a tokio runtime (an async caller), where blocking on
//!   another runtime would panic, a call runs on a thread of its own and
//!   blocks the calling thread until it ends. It works, but it blocks an
//!   async worker: async callers should call from `spawn_blocking`.
//!
//! - Credentials, region and endpoint come from the environment the way
//!   `object_store`'s builders read it (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
//! - S3 create-only puts are conditional puts (`If-None-Match: *`), and
//!   updates are puts with `If-Match: <etag>`, unless `AWS_CONDITIONAL_PUT`
//!   says otherwise. Version tags are the service's ETags. (GCS matches
//!   generations, not ETags, which `object_store` refuses to update by:
//!   updates work on S3 and Azure.)
//! - Large objects written through [`Backend::writer`] go up as multipart
//!   uploads with several parts in flight; nothing is visible until the
//!   upload completes, and an upload that fails or is dropped is aborted.
//! - Retries with backoff are `object_store`'s.

use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, PutOptions, PutPayload, UpdateVersion, WriteMultipart};
use tokio::runtime::Runtime;

use super::api::{Backend, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use super::{check_key, check_prefix, check_range, locator, stale_update};
use crate::error::{Error, Result};

/// Part size of multipart uploads unless set otherwise: above S3's 5 MiB
/// minimum, small enough that a few parts in flight stay cheap in memory.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once unless set otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// A bucket (and prefix in it) on object storage.
#[derive(Debug, Clone)]
pub struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    /// Keys are stored under this prefix ("" for the bucket's root).
    prefix: String,
    url: String,
    rt: &'static Runtime,
    part_size: usize,
    concurrency: usize,
}

/// The runtime every object backend of the process blocks on, made on
/// first use (a failure to make it is reported to every caller).
fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    let made = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-object-store")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    made.as_ref().map_err(|e| Error::Backend {
        op: "starting the I/O runtime for",
        what: "object storage".into(),
        source: e.clone().into(),
    })
}

/// Runs `f` to completion on `rt`. Outside any runtime it blocks on `rt`
/// directly; inside one (where that would panic) it does so on a scoped
/// thread of its own, which the calling thread waits for.
fn block_on<F>(rt: &'static Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(f);
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// `scheme://bucket/prefix` split into the scheme, the bucket and the prefix.
fn split_url(url: &str) -> Result<(&str, &str, String)> {
    let bad = |why: &str| Error::InvalidArgument(format!("object storage URL {url:?}: {why}"));
    let super::Target::Object { scheme, bucket, key: prefix } = super::parse_url(url)? else {
        return Err(bad("not an object storage URL (scheme://bucket/prefix)"));
    };
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        check_prefix(prefix).map_err(|_| bad("the prefix is not a valid key"))?;
    }
    Ok((scheme, bucket, prefix.to_string()))
}

impl ObjectBackend {
    /// Opens `s3://bucket[/prefix]` (feature `s3`), `gs://…` (feature
    /// `gcs`) or `az://container[/prefix]` (feature `azure`), configured
    /// from the environment.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL of no enabled service;
    /// [`Error::Backend`] if the client cannot be built.
    pub fn open(url: &str) -> Result<Self> {
        let (scheme, bucket, prefix) = split_url(url)?;
        let root = format!("{scheme}://{bucket}");
        let built: std::result::Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
            #[cfg(feature = "s3")]
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(&root);
                if std::env::var_os("AWS_CONDITIONAL_PUT").is_none() {
                    b = b.with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                }
                b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            #[cfg(feature = "gcs")]
            "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(&root)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            #[cfg(feature = "azure")]
            "az" | "azure" | "abfs" | "abfss" => object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(&root)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            other => {
                return Err(Error::InvalidArgument(format!(
                "object storage URL {url:?}: scheme {other:?} is not enabled in this build (features s3, gcs, azure)"
            )))
            }
        };
        let store =
            built.map_err(|e| Error::Backend { op: "configuring", what: url.to_string(), source: Box::new(e) })?;
        Self::with_store(store, url.trim_end_matches('/').to_string(), prefix)
    }

    /// Wraps an `object_store` client; `url` names it in messages, and keys
    /// are stored under `prefix` (may be empty).
    ///
    /// # Errors
    /// [`Error::Backend`] if the runtime cannot start.
    pub fn with_store(store: Arc<dyn ObjectStore>, url: String, prefix: String) -> Result<Self> {
        Ok(ObjectBackend {
            store,
            prefix,
            url,
            rt: runtime()?,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
        })
    }

    /// Sets the part size of multipart uploads (at least 5 MiB, S3's
    /// minimum). Default [`DEFAULT_PART_SIZE`].
    #[must_use]
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(5 << 20);
        self
    }

    /// Sets how many parts are uploaded at once. Default
    /// [`DEFAULT_CONCURRENCY`].
    #[must_use]
    pub fn concurrency(mut self, parts: usize) -> Self {
        self.concurrency = parts.max(1);
        self
    }

    fn path(&self, key: &str) -> Result<StorePath> {
        check_key(key)?;
        Ok(StorePath::from(self.full(key)))
    }

    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Maps an `object_store` error about `key`.
    fn error(&self, op: &'static str, key: &str, e: object_store::Error) -> Error {
        let what = locator(&self.url, key);
        match e {
            e @ object_store::Error::NotFound { .. } => Error::NotFound { what, source: Some(Box::new(e)) },
            e @ object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { what, source: Some(Box::new(e)) },
            e @ (object_store::Error::Precondition { .. } | object_store::Error::NotModified { .. }) => {
                Error::Precondition {
                    what,
                    detail: "the backend refused the condition".into(),
                    source: Some(Box::new(e)),
                }
            }
            other => Error::Backend { op, what, source: Box::new(other) },
        }
    }

    /// Maps the error of an update of `key` from version `expected`.
    /// `object_store` reports a missing object as a failed precondition
    /// (S3's 404 included) and gives up on repeated 409 conflicts (S3's
    /// answer to racing conditional puts) as "already exists": all are
    /// the update losing.
    fn update_error(&self, key: &str, expected: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => stale_update(&self.url, key, expected, false),
            e @ (object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                Error::Precondition {
                    what: locator(&self.url, key),
                    detail: format!("the object changed or is gone since version {expected}"),
                    source: Some(Box::new(e)),
                }
            }
            other => self.error("uploading", key, other),
        }
    }

    fn meta(&self, m: object_store::ObjectMeta) -> Option<ObjectMeta> {
        let full = m.location.as_ref();
        let key =
            if self.prefix.is_empty() { full } else { full.strip_prefix(self.prefix.as_str())?.strip_prefix('/')? };
        Some(ObjectMeta { key: key.to_string(), size: m.size, modified: Some(m.last_modified.into()), etag: m.e_tag })
    }
}

impl Backend for ObjectBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult> {
        let path = self.path(key)?;
        let store_mode = match &mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::Create => object_store::PutMode::Create,
            PutMode::Update(etag) => {
                object_store::PutMode::Update(UpdateVersion { e_tag: Some(etag.clone()), version: None })
            }
        };
        let opts = PutOptions { mode: store_mode, ..PutOptions::default() };
        let put = self.store.put_opts(&path, PutPayload::from(data), opts);
        let r = block_on(self.rt, put).map_err(|e| match &mode {
            PutMode::Update(expected) => self.update_error(key, expected, e),
            _ => self.error("uploading", key, e),
        })?;
        // S3, GCS and Azure always send one (object_store fails the put
        // otherwise).
        Ok(PutResult { etag: r.e_tag })
    }

    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        let path = self.path(key)?;
        Ok(Box::new(Upload { backend: self.clone(), key: key.to_string(), path, mode, buf: Vec::new(), parts: None }))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        // An empty or backward range is refused before any request (the
        // object's length does not matter for that check).
        check_range(&range, u64::MAX, &locator(&self.url, key))?;
        let opts = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
        let got = block_on(self.rt, async {
            let r = self.store.get_opts(&path, opts).await?;
            r.bytes().await
        });
        match got {
            Ok(b) => Ok(b),
            // Tell a range past the end from other failures.
            Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => {
                let len = self.head(key)?.size;
                check_range(&range, len, &locator(&self.url, key))?;
                Err(self.error("reading", key, e))
            }
            Err(e) => Err(self.error("reading", key, e)),
        }
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        block_on(self.rt, async {
            let r = self.store.get(&path).await?;
            r.bytes().await
        })
        .map_err(|e| self.error("reading", key, e))
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        let path = self.path(key)?;
        // One request: the ETag is the one of the body it returns.
        let (etag, data) = block_on(self.rt, async {
            let r = self.store.get(&path).await?;
            let etag = r.meta.e_tag.clone();
            Ok::<_, object_store::Error>((etag, r.bytes().await?))
        })
        .map_err(|e| self.error("reading", key, e))?;
        let Some(etag) = etag else {
            return Err(Error::Backend {
                op: "reading the version tag of",
                what: locator(&self.url, key),
                source: "the service returned the object without an ETag".into(),
            });
        };
        Ok(Versioned { data, etag })
    }

    fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let m = block_on(self.rt, self.store.head(&path)).map_err(|e| self.error("reading metadata of", key, e))?;
        self.meta(m).ok_or_else(|| Error::NotFound { what: locator(&self.url, key), source: None })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        use futures_util::TryStreamExt;
        check_prefix(prefix)?;
        // object_store lists whole path segments: list the directory the
        // prefix's complete segments name, then keep what matches.
        let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let base = match (self.prefix.is_empty(), dir.is_empty()) {
            (true, true) => None,
            (true, false) => Some(StorePath::from(dir)),
            (false, true) => Some(StorePath::from(self.prefix.as_str())),
            (false, false) => Some(StorePath::from(self.full(dir))),
        };
        let all: Vec<object_store::ObjectMeta> = block_on(self.rt, self.store.list(base.as_ref()).try_collect())
            .map_err(|e| self.error("listing", prefix, e))?;
        let mut out: Vec<ObjectMeta> =
            all.into_iter().filter_map(|m| self.meta(m)).filter(|m| m.key.starts_with(prefix)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match block_on(self.rt, self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", key, e)),
        }
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        block_on(self.rt, self.store.copy(&src, &dst)).map_err(|e| self.error("copying", from, e))
    }
}

/// An object being uploaded: buffered until it outgrows one part, then a
/// multipart upload with parts in flight. Create-only and update uploads
/// stay buffered and go up as one conditional put, since multipart
/// completion cannot be made conditional here.
struct Upload {
    backend: ObjectBackend,
    key: String,
    path: StorePath,
    mode: PutMode,
    buf: Vec<u8>,
    parts: Option<WriteMultipart>,
}

impl Upload {
    fn start_parts(&mut self) -> std::io::Result<&mut WriteMultipart> {
        let parts = match self.parts.take() {
            Some(p) => p,
            None => {
                let b = &self.backend;
                let upload = block_on(b.rt, b.store.put_multipart(&self.path)).map_err(std::io::Error::other)?;
                WriteMultipart::new_with_chunk_size(upload, b.part_size)
            }
        };
        Ok(self.parts.insert(parts))
    }
}

impl Write for Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.mode == PutMode::Overwrite && self.buf.len() >= self.backend.part_size {
            let (rt, concurrency) = (self.backend.rt, self.backend.concurrency);
            let pending = std::mem::take(&mut self.buf);
            let parts = self.start_parts()?;
            block_on(rt, async {
                parts.wait_for_capacity(concurrency).await?;
                parts.write(&pending);
                Ok::<_, object_store::Error>(())
            })
            .map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for Upload {
    fn finish(mut self: Box<Self>) -> Result<PutResult> {
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let Some(mut parts) = self.parts.take() else {
            let mode = std::mem::take(&mut self.mode);
            return self.backend.put(&self.key, data, mode);
        };
        let b = &self.backend;
        let r = block_on(b.rt, async {
            parts.put(data);
            parts.finish().await
        });
        r.map(|r| PutResult { etag: r.e_tag }).map_err(|e| b.error("uploading", &self.key, e))
    }

    fn abort(mut self: Box<Self>) -> Result<()> {
        match self.parts.take() {
            Some(parts) => {
                let b = &self.backend;
                block_on(b.rt, parts.abort()).map_err(|e| b.error("aborting the upload of", &self.key, e))
            }
            None => Ok(()),
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // An upload neither finished nor aborted: abort it, so its parts do
        // not linger (best effort; the object is invisible either way).
        if let Some(parts) = self.parts.take() {
            let _ = block_on(self.backend.rt, parts.abort());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn memory() -> ObjectBackend {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        ObjectBackend::with_store(store, "memory://test".into(), String::new()).unwrap()
    }

    /// Puts, a multipart upload and reads, as an async caller's thread
    /// would make them.
    fn exercise(b: &ObjectBackend) {
        b.put("k", Bytes::from_static(b"v"), PutMode::Create).unwrap();
        assert_eq!(b.get("k").unwrap().as_ref(), b"v");
        let b = b.clone().part_size(5 << 20);
        let mut w = b.writer("big", PutMode::Overwrite).unwrap();
        w.write_all(&vec![7u8; 12 << 20]).unwrap();
        w.finish().unwrap();
        assert_eq!(b.head("big").unwrap().size, 12 << 20);
        assert_eq!(b.list("").unwrap().len(), 2);
    }

    #[test]
    fn calls_from_inside_a_tokio_runtime_work() {
        let b = memory();
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async { exercise(&b) });
        let b = memory();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        rt.block_on(async { exercise(&b) });
        // And from plain threads, as before.
        exercise(&memory());
    }

    #[test]
    fn every_backend_shares_one_runtime() {
        let (a, b) = (memory(), memory());
        assert!(std::ptr::eq(a.rt, b.rt));
    }
}
