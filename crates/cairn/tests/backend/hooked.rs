//! A backend for tests that passes every call to another one and runs a
//! hook just before and just after each: to change a file as an upload
//! starts, to lose a reply after the object was stored, to make a put
//! return late. A hook's error becomes the call's.
#![allow(dead_code)]

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cairn::backend::{Backend, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};

/// Whether a hook runs before the call is passed on or after it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    /// After the call succeeded.
    After,
}

/// Called with the operation (`"put"`, `"writer"`, `"get"`, …), the key
/// (the prefix for `"list"`, the source for `"copy"`) and when.
pub type Hook = Box<dyn Fn(&'static str, &str, When) -> cairn::Result<()> + Send + Sync>;

pub struct Hooked {
    inner: Arc<dyn Backend>,
    hook: Hook,
}

impl Hooked {
    pub fn new(
        inner: Arc<dyn Backend>,
        hook: impl Fn(&'static str, &str, When) -> cairn::Result<()> + Send + Sync + 'static,
    ) -> Self {
        Hooked { inner, hook: Box::new(hook) }
    }

    fn around<T>(&self, op: &'static str, key: &str, call: impl FnOnce() -> cairn::Result<T>) -> cairn::Result<T> {
        (self.hook)(op, key, When::Before)?;
        let out = call()?;
        (self.hook)(op, key, When::After)?;
        Ok(out)
    }
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooked").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Backend for Hooked {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> cairn::Result<PutResult> {
        self.around("put", key, || self.inner.put(key, data, mode))
    }
    fn writer(&self, key: &str, mode: PutMode) -> cairn::Result<Box<dyn ObjectWriter>> {
        self.around("writer", key, || self.inner.writer(key, mode))
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> cairn::Result<Bytes> {
        self.around("get_range", key, || self.inner.get_range(key, range))
    }
    fn get(&self, key: &str) -> cairn::Result<Bytes> {
        self.around("get", key, || self.inner.get(key))
    }
    fn get_versioned(&self, key: &str) -> cairn::Result<Versioned> {
        self.around("get_versioned", key, || self.inner.get_versioned(key))
    }
    fn head(&self, key: &str) -> cairn::Result<ObjectMeta> {
        self.around("head", key, || self.inner.head(key))
    }
    fn list(&self, prefix: &str) -> cairn::Result<Vec<ObjectMeta>> {
        self.around("list", prefix, || self.inner.list(prefix))
    }
    fn delete(&self, key: &str) -> cairn::Result<()> {
        self.around("delete", key, || self.inner.delete(key))
    }
    fn copy(&self, from: &str, to: &str) -> cairn::Result<()> {
        self.around("copy", from, || self.inner.copy(from, to))
    }
}
