//! A wrapper that counts what passes through any backend: gets and the
//! bytes they return, puts and the bytes they store. For measuring what a
//! read costs against remote storage.

use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::api::{Backend, Durability, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use crate::error::Result;

/// What a [`CountingBackend`] has seen since it was made or last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Traffic {
    /// `get`, `get_range` and `get_versioned` calls that returned data.
    pub gets: u64,
    /// Bytes they returned.
    pub bytes_read: u64,
    /// Objects stored, by `put` or a finished writer.
    pub puts: u64,
    /// Bytes given to `put` and to writers.
    pub bytes_written: u64,
}

#[derive(Debug, Default)]
struct Counters {
    gets: AtomicU64,
    bytes_read: AtomicU64,
    puts: AtomicU64,
    bytes_written: AtomicU64,
}

/// Passes every call to the backend inside and counts the traffic.
#[derive(Debug, Clone)]
pub struct CountingBackend {
    inner: Arc<dyn Backend>,
    counters: Arc<Counters>,
}

impl CountingBackend {
    /// `inner`, counted from zero.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        CountingBackend { inner, counters: Arc::default() }
    }

    /// The traffic so far.
    pub fn traffic(&self) -> Traffic {
        let c = &self.counters;
        Traffic {
            gets: c.gets.load(Ordering::SeqCst),
            bytes_read: c.bytes_read.load(Ordering::SeqCst),
            puts: c.puts.load(Ordering::SeqCst),
            bytes_written: c.bytes_written.load(Ordering::SeqCst),
        }
    }

    /// The traffic so far, and zero from now on.
    pub fn reset(&self) -> Traffic {
        let c = &self.counters;
        Traffic {
            gets: c.gets.swap(0, Ordering::SeqCst),
            bytes_read: c.bytes_read.swap(0, Ordering::SeqCst),
            puts: c.puts.swap(0, Ordering::SeqCst),
            bytes_written: c.bytes_written.swap(0, Ordering::SeqCst),
        }
    }

    /// Counts a read that returned `len` bytes.
    fn read(&self, len: usize) {
        self.counters.gets.fetch_add(1, Ordering::SeqCst);
        self.counters.bytes_read.fetch_add(len as u64, Ordering::SeqCst);
    }
}

impl Backend for CountingBackend {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult> {
        let n = data.len() as u64;
        let r = self.inner.put(key, data, mode)?;
        self.counters.puts.fetch_add(1, Ordering::SeqCst);
        self.counters.bytes_written.fetch_add(n, Ordering::SeqCst);
        Ok(r)
    }

    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        let inner = self.inner.writer(key, mode)?;
        Ok(Box::new(CountingWriter { inner, counters: Arc::clone(&self.counters) }))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let b = self.inner.get_range(key, range)?;
        self.read(b.len());
        Ok(b)
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let b = self.inner.get(key)?;
        self.read(b.len());
        Ok(b)
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        let v = self.inner.get_versioned(key)?;
        self.read(v.data.len());
        Ok(v)
    }

    fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner.copy(from, to)
    }

    fn sweep_temp_files(&self) -> Result<usize> {
        self.inner.sweep_temp_files()
    }

    fn put_with(&self, key: &str, data: Bytes, mode: PutMode, durability: Durability) -> Result<PutResult> {
        let n = data.len() as u64;
        let r = self.inner.put_with(key, data, mode, durability)?;
        self.counters.puts.fetch_add(1, Ordering::SeqCst);
        self.counters.bytes_written.fetch_add(n, Ordering::SeqCst);
        Ok(r)
    }

    fn delete_with(&self, key: &str, durability: Durability) -> Result<()> {
        self.inner.delete_with(key, durability)
    }

    fn volatile_is_weaker(&self) -> bool {
        self.inner.volatile_is_weaker()
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_keys(prefix)
    }
}

struct CountingWriter {
    inner: Box<dyn ObjectWriter>,
    counters: Arc<Counters>,
}

impl Write for CountingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.counters.bytes_written.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ObjectWriter for CountingWriter {
    fn finish(self: Box<Self>) -> Result<PutResult> {
        let r = self.inner.finish()?;
        self.counters.puts.fetch_add(1, Ordering::SeqCst);
        Ok(r)
    }

    fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort()
    }
}
