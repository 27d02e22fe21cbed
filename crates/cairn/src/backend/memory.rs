//! A backend in memory, for tests and for short-lived data.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;

use super::api::{Backend, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use super::{check_key, check_prefix, locator, slice_range, stale_update};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    modified: SystemTime,
    /// Unique across the store's lifetime, so a tag never comes back.
    version: u64,
}

impl Object {
    fn etag(&self) -> String {
        format!("{:x}", self.version)
    }
}

#[derive(Debug, Default)]
struct Objects {
    map: BTreeMap<String, Object>,
    next_version: u64,
}

/// Objects in a map behind a mutex. Clones share the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<Mutex<Objects>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, Objects> {
        crate::util::lock(&self.objects)
    }

    fn meta(key: &str, o: &Object) -> ObjectMeta {
        ObjectMeta { key: key.to_string(), size: o.data.len() as u64, modified: Some(o.modified), etag: Some(o.etag()) }
    }

    fn missing(&self, key: &str) -> Error {
        Error::NotFound { what: locator(self.url(), key), source: None }
    }

    fn lookup(&self, key: &str) -> Result<Object> {
        check_key(key)?;
        self.objects().map.get(key).cloned().ok_or_else(|| self.missing(key))
    }
}

impl Backend for MemoryBackend {
    fn url(&self) -> &str {
        "memory://"
    }

    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult> {
        check_key(key)?;
        // The check and the insert are under one lock: that is what makes
        // create and update atomic.
        let mut objects = self.objects();
        let current = objects.map.get(key);
        match &mode {
            PutMode::Create if current.is_some() => {
                return Err(Error::AlreadyExists { what: locator(self.url(), key), source: None });
            }
            PutMode::Update(expected) if current.map(Object::etag).as_ref() != Some(expected) => {
                return Err(stale_update(self.url(), key, expected, current.is_some()));
            }
            _ => {}
        }
        objects.next_version += 1;
        let o = Object { data, modified: SystemTime::now(), version: objects.next_version };
        let etag = o.etag();
        objects.map.insert(key.to_string(), o);
        Ok(PutResult { etag: Some(etag) })
    }

    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        check_key(key)?;
        Ok(Box::new(MemoryWriter { backend: self.clone(), key: key.to_string(), mode, buf: Vec::new() }))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let o = self.lookup(key)?;
        slice_range(&o.data, range, &locator(self.url(), key))
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        Ok(self.lookup(key)?.data)
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        let o = self.lookup(key)?;
        Ok(Versioned { etag: o.etag(), data: o.data })
    }

    fn head(&self, key: &str) -> Result<ObjectMeta> {
        let o = self.lookup(key)?;
        Ok(Self::meta(key, &o))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        check_prefix(prefix)?;
        let objects = self.objects();
        Ok(objects
            .map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| Self::meta(k, o))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.objects().map.remove(key);
        Ok(())
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        let o = self.lookup(from)?;
        self.put(to, o.data, PutMode::Overwrite).map(|_| ())
    }
}

/// Buffers the object and stores it on finish.
struct MemoryWriter {
    backend: MemoryBackend,
    key: String,
    mode: PutMode,
    buf: Vec<u8>,
}

impl Write for MemoryWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for MemoryWriter {
    fn finish(self: Box<Self>) -> Result<PutResult> {
        let MemoryWriter { backend, key, mode, buf } = *self;
        backend.put(&key, Bytes::from(buf), mode)
    }

    fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
