//! The object-level storage interface every backend implements: a small
//! required surface ([`Backend`]) and conveniences built on it
//! ([`BackendExt`]).

use std::fmt::Debug;
use std::io::Write;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;

use crate::error::Result;

/// How a put treats an object already stored under its key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Store only if no object has the key; otherwise fail with
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) and leave the
    /// existing object as it was. Of concurrent creates exactly one wins.
    Create,
    /// Replace the object only if its current version tag equals this one
    /// (from [`PutResult::etag`] or [`Versioned::etag`]); if the object
    /// changed or is missing, fail with
    /// [`Error::Precondition`](crate::Error::Precondition) and change
    /// nothing. Of concurrent updates from the same tag exactly one wins.
    Update(String),
}

/// How long a put or a delete must last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// It survives a crash of the machine once the call returns.
    #[default]
    Durable,
    /// Readers see it at once and atomically, but a crash of the machine
    /// may undo it, or, for a put, leave the key missing or holding damaged
    /// bytes. For what can be rebuilt (a store's indexes) or is worthless
    /// after a crash (leases). Where durability costs nothing extra (object
    /// storage) it is as durable as [`Durable`](Self::Durable).
    Volatile,
}

/// What a backend says about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key, relative to the backend's root.
    pub key: String,
    /// Its length in bytes.
    pub size: u64,
    /// When it was last written, where the backend knows.
    pub modified: Option<SystemTime>,
    /// An opaque version tag that changes whenever the object is replaced,
    /// where the backend has one here. Local disk gives none: its tags are
    /// hashes of the content, computed only by puts and
    /// [`Backend::get_versioned`], since hashing on every `head` or listing
    /// would read whole files.
    pub etag: Option<String>,
}

/// A whole object and the version tag of exactly those bytes, from
/// [`Backend::get_versioned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The object's bytes.
    pub data: Bytes,
    /// Their version tag, for a later [`PutMode::Update`].
    pub etag: String,
}

/// The outcome of a successful put.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutResult {
    /// The stored object's version tag, for a later [`PutMode::Update`].
    /// Memory, local disk and object storage always give one.
    pub etag: Option<String>,
}

/// An object being written in pieces: nothing is visible under its key
/// until [`finish`](ObjectWriter::finish) returns `Ok`, and a writer dropped
/// or [aborted](ObjectWriter::abort) before that leaves nothing behind.
pub trait ObjectWriter: Write + Send {
    /// Publishes the object.
    ///
    /// # Errors
    /// As [`Backend::put`] for the mode the writer was opened with.
    fn finish(self: Box<Self>) -> Result<PutResult>;

    /// Discards what was written.
    ///
    /// # Errors
    /// Failures to clean up (the object stays invisible either way).
    fn abort(self: Box<Self>) -> Result<()>;
}

/// Object storage with atomic puts: local disk, memory, S3, GCS, Azure.
///
/// # Contract
/// - Keys are relative, `/`-separated paths of non-empty segments; see
///   [`check_key`](super::check_key). A key names one object; no key is a
///   prefix directory of another's object on every backend, so callers
///   avoid storing both `a` and `a/b`.
/// - A put is atomic: readers see the old object or the complete new one,
///   never a part. After `put` returns `Ok` the object is durable.
/// - Every put returns the stored object's version tag
///   ([`PutResult::etag`]); [`get_versioned`](Self::get_versioned) returns
///   the tag of the bytes it read. [`PutMode::Update`] with such a tag is a
///   compare-and-swap: of updates racing from one tag exactly one wins.
///   Tags are opaque and may be content hashes (local disk; S3 for objects
///   put whole), so rewriting an object with the same bytes may give it
///   its old tag back: an update from that tag then succeeds, which is
///   safe because the bytes it replaces are the ones its caller read.
/// - Errors name the backend and the key: [`Error::NotFound`],
///   [`Error::AlreadyExists`], [`Error::Precondition`] for refused
///   conditions, [`Error::Backend`] for the rest.
///
/// [`Error::NotFound`]: crate::Error::NotFound
/// [`Error::AlreadyExists`]: crate::Error::AlreadyExists
/// [`Error::Precondition`]: crate::Error::Precondition
/// [`Error::Backend`]: crate::Error::Backend
pub trait Backend: Send + Sync + Debug {
    /// Where this backend stores objects, as a URL: `file:///srv/ckpt`,
    /// `memory://`, `s3://bucket/prefix`. Used in messages.
    fn url(&self) -> &str;

    /// Stores `data` under `key`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) for
    /// [`PutMode::Create`] on an existing key;
    /// [`Error::Precondition`](crate::Error::Precondition) for
    /// [`PutMode::Update`] on a changed or missing object; I/O and service
    /// errors.
    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult>;

    /// Opens a writer for a large object, uploaded in parts as it is written
    /// where the backend supports that.
    ///
    /// # Errors
    /// As [`put`](Self::put), for what can be checked before any data.
    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>>;

    /// Bytes `range` of the object; a range running past the end is cut at
    /// the end, and one starting past the end is an error.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such
    /// object; [`Error::InvalidArgument`](crate::Error::InvalidArgument) for
    /// an empty or backward range or one that starts past the end.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// The whole object.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such object.
    fn get(&self, key: &str) -> Result<Bytes>;

    /// The whole object and the version tag of exactly the bytes returned,
    /// for a later [`PutMode::Update`]. (A `get` and a separate `head`
    /// could see two different versions.)
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such
    /// object; [`Error::Backend`](crate::Error::Backend) if the service
    /// gives no tag.
    fn get_versioned(&self, key: &str) -> Result<Versioned>;

    /// The object's size and version, without its bytes (local disk gives
    /// no version here; see [`ObjectMeta::etag`]).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such object.
    fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Every object whose key starts with `prefix` (all of them for `""`),
    /// sorted by key. Objects being written are never listed.
    ///
    /// # Errors
    /// I/O and service errors.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// The keys of [`list`](Self::list), without sizes or times: where
    /// those cost a request or a `stat` per object (local disk), this is a
    /// directory read. Default = [`list`](Self::list)'s keys.
    ///
    /// # Errors
    /// As [`list`](Self::list).
    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.list(prefix)?.into_iter().map(|m| m.key).collect())
    }

    /// Removes the object under `key`; removing a missing object is not an
    /// error.
    ///
    /// # Errors
    /// I/O and service errors.
    fn delete(&self, key: &str) -> Result<()>;

    /// Copies the object under `from` to `to`, replacing what is there.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if `from` is missing.
    fn copy(&self, from: &str, to: &str) -> Result<()>;

    /// As [`put`](Self::put), with the durability asked for. Default = a
    /// durable [`put`](Self::put) whatever is asked: never weaker than
    /// asked.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    fn put_with(&self, key: &str, data: Bytes, mode: PutMode, durability: Durability) -> Result<PutResult> {
        let _ = durability;
        self.put(key, data, mode)
    }

    /// As [`delete`](Self::delete), with the durability asked for. Default
    /// = a durable [`delete`](Self::delete).
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    fn delete_with(&self, key: &str, durability: Durability) -> Result<()> {
        let _ = durability;
        self.delete(key)
    }

    /// Whether [`Durability::Volatile`] is really weaker here than
    /// [`Durability::Durable`] (local disk: it skips the syncs), so that
    /// what it wrote must be checked after a crash. Default = `false`.
    fn volatile_is_weaker(&self) -> bool {
        false
    }

    /// The object as a file of the real file system, opened for reading,
    /// where the backend keeps objects as files there (local disk), so that
    /// a reader can map it instead of copying it. The file is the object as
    /// it was when opened: a later put renames a new file over the name
    /// and leaves this one as it is. Default = `None` (read through
    /// [`get_range`](Self::get_range)); wrappers that must see every read
    /// keep the default.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such
    /// object; I/O errors.
    fn open_file(&self, key: &str) -> Result<Option<std::fs::File>> {
        let _ = key;
        Ok(None)
    }

    /// Removes what writers that died mid-put left behind (temp files on
    /// local disk) and returns how many went. Default = nothing to do:
    /// object stores never expose unfinished uploads.
    ///
    /// # Errors
    /// I/O and service errors.
    fn sweep_temp_files(&self) -> Result<usize> {
        Ok(0)
    }
}

/// Conveniences on every [`Backend`].
pub trait BackendExt: Backend {
    /// Whether an object is stored under `key`.
    ///
    /// # Errors
    /// Errors other than the object being missing.
    fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key) {
            Ok(_) => Ok(true),
            Err(crate::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores `data` under `key` only if the key is free.
    ///
    /// # Errors
    /// As [`Backend::put`] with [`PutMode::Create`].
    fn create(&self, key: &str, data: impl Into<Bytes>) -> Result<PutResult> {
        self.put(key, data.into(), PutMode::Create)
    }

    /// Uploads everything `reader` yields as one object, through
    /// [`Backend::writer`]; returns the bytes copied.
    ///
    /// # Errors
    /// Read errors of `reader` and put errors; nothing is stored on error.
    fn put_from(&self, key: &str, reader: &mut dyn std::io::Read, mode: PutMode) -> Result<(u64, PutResult)> {
        let mut w = self.writer(key, mode)?;
        match std::io::copy(reader, &mut w) {
            Ok(n) => Ok((n, w.finish()?)),
            Err(e) => {
                let _ = w.abort();
                Err(crate::Error::Backend {
                    op: "copying into",
                    what: super::locator(self.url(), key),
                    source: Box::new(e),
                })
            }
        }
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}
