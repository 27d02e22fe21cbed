//! A wrapper that makes any backend fail on purpose, for tests: a chosen
//! operation, or uploads past some number of bytes.

use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::api::{Backend, Durability, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use super::locator;
use crate::error::{Error, Result};

/// Never: the value of a rule that is off.
const OFF: u64 = u64::MAX;

#[derive(Debug)]
struct Rules {
    /// Operations started so far.
    ops: AtomicU64,
    /// The operation number (from 1) that fails, or [`OFF`].
    fail_op: AtomicU64,
    /// Bytes an upload may carry before it fails, or [`OFF`].
    put_limit: AtomicU64,
}

/// Passes every call to the backend inside, failing the ones its rules
/// pick with [`Error::Backend`] ("injected fault").
#[derive(Debug, Clone)]
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    rules: Arc<Rules>,
}

fn injected(op: &'static str, what: String) -> Error {
    Error::Backend { op, what, source: "injected fault".into() }
}

impl FaultBackend {
    /// `inner` with no faults yet.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        let rules = Rules { ops: AtomicU64::new(0), fail_op: AtomicU64::new(OFF), put_limit: AtomicU64::new(OFF) };
        FaultBackend { inner, rules: Arc::new(rules) }
    }

    /// Fails the `n`th operation from now (1 = the next one); the others
    /// pass. Every trait method counts as one operation, and so does every
    /// `write` and the `finish` of a writer.
    pub fn fail_nth(&self, n: u64) {
        let now = self.rules.ops.load(Ordering::SeqCst);
        self.rules.fail_op.store(now.saturating_add(n.max(1)), Ordering::SeqCst);
    }

    /// Fails any put or writer once it has been given more than `bytes`:
    /// a put of more is refused whole; a writer's `write` that would pass
    /// the limit fails.
    pub fn fail_puts_after(&self, bytes: u64) {
        self.rules.put_limit.store(bytes, Ordering::SeqCst);
    }

    /// Turns every rule off.
    pub fn clear(&self) {
        self.rules.fail_op.store(OFF, Ordering::SeqCst);
        self.rules.put_limit.store(OFF, Ordering::SeqCst);
    }

    /// Counts an operation; an error if it is the one to fail.
    fn op(&self, op: &'static str, key: &str) -> Result<()> {
        let n = self.rules.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.rules.fail_op.load(Ordering::SeqCst) {
            return Err(injected(op, locator(self.inner.url(), key)));
        }
        Ok(())
    }

    fn over_limit(&self, bytes: u64) -> bool {
        bytes > self.rules.put_limit.load(Ordering::SeqCst)
    }
}

impl Backend for FaultBackend {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult> {
        self.op("uploading", key)?;
        if self.over_limit(data.len() as u64) {
            return Err(injected("uploading", locator(self.url(), key)));
        }
        self.inner.put(key, data, mode)
    }

    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        self.op("starting an upload of", key)?;
        let inner = self.inner.writer(key, mode)?;
        Ok(Box::new(FaultWriter { backend: self.clone(), key: key.to_string(), inner, written: 0 }))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.op("reading", key)?;
        self.inner.get_range(key, range)
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        self.op("reading", key)?;
        self.inner.get(key)
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        self.op("reading", key)?;
        self.inner.get_versioned(key)
    }

    fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.op("reading metadata of", key)?;
        self.inner.head(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.op("listing", prefix)?;
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.op("deleting", key)?;
        self.inner.delete(key)
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.op("copying", from)?;
        self.inner.copy(from, to)
    }

    fn sweep_temp_files(&self) -> Result<usize> {
        self.inner.sweep_temp_files()
    }

    fn put_with(&self, key: &str, data: Bytes, mode: PutMode, durability: Durability) -> Result<PutResult> {
        self.op("uploading", key)?;
        if self.over_limit(data.len() as u64) {
            return Err(injected("uploading", locator(self.url(), key)));
        }
        self.inner.put_with(key, data, mode, durability)
    }

    fn delete_with(&self, key: &str, durability: Durability) -> Result<()> {
        self.op("deleting", key)?;
        self.inner.delete_with(key, durability)
    }

    fn volatile_is_weaker(&self) -> bool {
        self.inner.volatile_is_weaker()
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.op("listing", prefix)?;
        self.inner.list_keys(prefix)
    }
}

struct FaultWriter {
    backend: FaultBackend,
    key: String,
    inner: Box<dyn ObjectWriter>,
    written: u64,
}

impl Write for FaultWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.backend.op("uploading", &self.key).map_err(std::io::Error::other)?;
        if self.backend.over_limit(self.written + data.len() as u64) {
            return Err(std::io::Error::other(injected("uploading", locator(self.backend.url(), &self.key))));
        }
        let n = self.inner.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ObjectWriter for FaultWriter {
    fn finish(self: Box<Self>) -> Result<PutResult> {
        if let Err(e) = self.backend.op("finishing the upload of", &self.key) {
            // A real failure here leaves the upload unfinished: abort it.
            let _ = self.inner.abort();
            return Err(e);
        }
        self.inner.finish()
    }

    fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort()
    }
}
