//! A wrapper that slows any backend down, to see how code behaves against
//! a distant store.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::api::{Backend, Durability, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use crate::error::Result;

/// Passes every call to the backend inside after sleeping a fixed time,
/// to see how code behaves against a distant store.
#[derive(Debug, Clone)]
pub struct LatencyBackend {
    inner: Arc<dyn Backend>,
    delay: Duration,
}

impl LatencyBackend {
    /// `inner`, each call delayed by `delay`.
    pub fn new(inner: Arc<dyn Backend>, delay: Duration) -> Self {
        LatencyBackend { inner, delay }
    }

    fn wait(&self) {
        std::thread::sleep(self.delay);
    }
}

impl Backend for LatencyBackend {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult> {
        self.wait();
        self.inner.put(key, data, mode)
    }

    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        self.wait();
        self.inner.writer(key, mode)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.wait();
        self.inner.get_range(key, range)
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        self.wait();
        self.inner.get(key)
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        self.wait();
        self.inner.get_versioned(key)
    }

    fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.wait();
        self.inner.head(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.wait();
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.wait();
        self.inner.delete(key)
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.wait();
        self.inner.copy(from, to)
    }

    fn sweep_temp_files(&self) -> Result<usize> {
        self.inner.sweep_temp_files()
    }

    fn put_with(&self, key: &str, data: Bytes, mode: PutMode, durability: Durability) -> Result<PutResult> {
        self.wait();
        self.inner.put_with(key, data, mode, durability)
    }

    fn delete_with(&self, key: &str, durability: Durability) -> Result<()> {
        self.wait();
        self.inner.delete_with(key, durability)
    }

    fn volatile_is_weaker(&self) -> bool {
        self.inner.volatile_is_weaker()
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.wait();
        self.inner.list_keys(prefix)
    }
}
