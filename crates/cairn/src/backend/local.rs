//! Objects as files under a root directory, on the io layer: each put writes
//! a temp file beside its target, syncs it, renames it into place and syncs
//! the directory; a create-only put renames without replacing.
//!
//! Version tags are the hex xxh3-128 of an object's bytes, computed by puts
//! (over the data as it is written) and by `get_versioned` (over the bytes
//! it read). An update compares the stored object's tag and renames under
//! the key's lock (see `key_lock.rs`), which overwrites and deletes take
//! too; create-only puts need none, the no-replace rename being atomic.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use xxhash_rust::xxh3::Xxh3Default;

use super::api::{Backend, Durability, ObjectMeta, ObjectWriter, PutMode, PutResult, Versioned};
use super::key_lock::KeyLocks;
use super::{check_key, check_prefix, check_range, locator, stale_update};
use crate::error::{Error, Result};
use crate::io::{create_dir_durable, dir_of, sweep_orphans_in, FsFile, FsRef, OpenMode, StdFs, Steps, TempFile};

/// How much of a stored object an update hashes at a time.
const HASH_CHUNK: usize = 1 << 20;

/// The version tag of bytes hashed so far.
fn tag(hasher: &Xxh3Default) -> String {
    format!("{:032x}", hasher.digest128())
}

/// The version tag of `data`.
fn tag_of(data: &[u8]) -> String {
    let mut h = Xxh3Default::new();
    h.update(data);
    tag(&h)
}

/// The version tag of a whole open file, read a chunk at a time.
fn tag_of_file(file: &dyn FsFile) -> std::io::Result<String> {
    let len = file.len()?;
    let mut h = Xxh3Default::new();
    let mut buf = vec![0u8; usize::try_from(len).map_or(HASH_CHUNK, |n| n.min(HASH_CHUNK))];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |left| left.min(buf.len()));
        let Some(chunk) = buf.get_mut(..n) else { break };
        file.read_exact_at(chunk, at)?;
        h.update(chunk);
        at += n as u64;
    }
    Ok(tag(&h))
}

/// `root` made absolute against the working directory.
fn absolute(root: &Path) -> Result<PathBuf> {
    if root.is_absolute() {
        return Ok(root.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the working directory for", root, e))?;
    Ok(cwd.join(root))
}

/// A directory of objects on a local (or mounted) file system.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    fs: FsRef,
    root: PathBuf,
    url: String,
    locks: KeyLocks,
}

impl LocalBackend {
    /// Opens the directory `root` on the real file system, creating it if
    /// missing, and removes temp files that dead processes left in it.
    /// A relative `root` is made absolute against the working directory.
    ///
    /// # Errors
    /// As [`open_in`](Self::open_in).
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_in(StdFs::shared(), absolute(root.as_ref())?)
    }

    /// Opens the directory `root` on `fs`, creating it (durably) if missing,
    /// and removes temp files that dead processes left in it (not below it:
    /// [`sweep`](Self::sweep) walks the whole tree). Updates, overwrites and
    /// deletes lock their keys through files in `root/.locks/`, made on the
    /// first of them, so a root that is only read is never written to.
    ///
    /// # Errors
    /// I/O errors creating or listing the directory.
    pub fn open_in(fs: FsRef, root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        create_dir_durable(&*fs, &root)?;
        Self::existing_in(fs, root)
    }

    /// Opens the directory `root` on the real file system, which must exist
    /// (for readers, which create nothing), as [`open`](Self::open) does
    /// otherwise.
    ///
    /// # Errors
    /// [`Error::NotFound`] if `root` is missing; [`Error::InvalidArgument`]
    /// if it is not a directory; I/O errors.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Self> {
        let root = absolute(root.as_ref())?;
        let fs = StdFs::shared();
        match fs.stat(&root) {
            Ok(s) if s.is_dir => Self::existing_in(fs, root),
            Ok(_) => Err(Error::InvalidArgument(format!("{} is not a directory", root.display()))),
            Err(e) => Err(Error::io("opening", &root, e)),
        }
    }

    fn existing_in(fs: FsRef, root: PathBuf) -> Result<Self> {
        sweep_orphans_in(&*fs, &root)?;
        let url = format!("file://{}", root.display());
        let locks = KeyLocks::new(fs.clone(), &root);
        Ok(LocalBackend { fs, root, url, locks })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes temp files of dead processes anywhere under the root;
    /// returns how many went. Lock files are never touched: they live in
    /// `.locks/`, a dot-directory the walk skips, under names that are not
    /// temp-file names.
    ///
    /// # Errors
    /// I/O errors walking the tree or removing files.
    pub fn sweep(&self) -> Result<usize> {
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            removed += sweep_orphans_in(&*self.fs, &dir)?.len();
            for (path, is_dir) in self.entries(&dir)? {
                if is_dir {
                    dirs.push(path);
                }
            }
        }
        Ok(removed)
    }

    /// The path of the object under `key` (checked).
    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(key.split('/').fold(self.root.clone(), |p, segment| p.join(segment)))
    }

    /// The entries of `dir` that can be objects or directories of objects
    /// (no dot-names, so no temp files), with whether each is a directory.
    fn entries(&self, dir: &Path) -> Result<Vec<(PathBuf, bool)>> {
        let listed = match self.fs.list_dir_kinds(dir) {
            Ok(listed) => listed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            // A file where a directory of the prefix would be.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", dir, e)),
        };
        Ok(listed.into_iter().filter(|(n, _)| !n.starts_with('.')).map(|(n, is_dir)| (dir.join(n), is_dir)).collect())
    }

    /// The keys under `prefix`, walking only the directories it can match
    /// below; `meta` true also reads each object's size and time.
    fn walk(&self, prefix: &str, meta: bool) -> Result<Vec<ObjectMeta>> {
        check_prefix(prefix)?;
        // Walk only the directory the prefix's complete segments name.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = dir_part.split('/').filter(|s| !s.is_empty()).fold(self.root.clone(), |p, s| p.join(s));
        let mut out = Vec::new();
        let mut dirs = vec![start];
        while let Some(dir) = dirs.pop() {
            for (path, is_dir) in self.entries(&dir)? {
                let Some(key) = self.key_of(&path) else { continue };
                if is_dir {
                    // Descend where the prefix can still match below.
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        dirs.push(path);
                    }
                } else if key.starts_with(prefix) {
                    if !meta {
                        out.push(ObjectMeta { key, size: 0, modified: None, etag: None });
                        continue;
                    }
                    match self.meta(&key, &path) {
                        Ok(m) => out.push(m),
                        Err(Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Errors about `key` name it as `<url>/<key>`.
    fn rename_error(&self, key: &str, e: Error) -> Error {
        match e {
            Error::NotFound { source, .. } => Error::NotFound { what: locator(&self.url, key), source },
            Error::AlreadyExists { source, .. } => Error::AlreadyExists { what: locator(&self.url, key), source },
            other => other,
        }
    }

    fn meta(&self, key: &str, path: &Path) -> Result<ObjectMeta> {
        let st = self.fs.stat(path).map_err(|e| self.rename_error(key, Error::io("reading metadata of", path, e)))?;
        if st.is_dir {
            return Err(Error::NotFound { what: locator(&self.url, key), source: None });
        }
        Ok(ObjectMeta { key: key.to_string(), size: st.len, modified: st.modified, etag: None })
    }

    /// A temp file beside the object under `key`, its directories made.
    fn temp_for(&self, key: &str) -> Result<TempFile> {
        let path = self.path(key)?;
        create_dir_durable(&*self.fs, dir_of(&path))?;
        TempFile::create_in(self.fs.clone(), &path)
    }

    /// Publishes `temp` (holding bytes whose tag is `etag`) under `key`.
    fn publish(&self, key: &str, temp: TempFile, mode: &PutMode, etag: String) -> Result<PutResult> {
        self.publish_with(key, temp, mode, etag, Durability::Durable)
    }

    fn publish_with(
        &self,
        key: &str,
        temp: TempFile,
        mode: &PutMode,
        etag: String,
        durability: Durability,
    ) -> Result<PutResult> {
        let steps = match durability {
            Durability::Volatile => Steps::NoSync,
            Durability::Durable if matches!(mode, PutMode::Create) => Steps::All,
            Durability::Durable => {
                // Synced before the lock, so that it is held for a rename,
                // not for writing back a large object.
                if let Some(file) = temp.file() {
                    file.sync_all().map_err(|e| Error::io("syncing", temp.temp_path(), e))?;
                }
                Steps::Rename
            }
        };
        let published = match mode {
            PutMode::Create => temp.publish_steps(true, steps),
            PutMode::Overwrite => {
                let _held = self.locks.lock(key)?;
                temp.publish_steps(false, steps)
            }
            PutMode::Update(expected) => {
                let _held = self.locks.lock(key)?;
                match self.current_tag(key)? {
                    Some(current) if current == *expected => temp.publish_steps(false, steps),
                    // Dropping the temp file removes it.
                    current => return Err(stale_update(&self.url, key, expected, current.is_some())),
                }
            }
        };
        published.map(|_| PutResult { etag: Some(etag) }).map_err(|e| self.rename_error(key, e))
    }

    /// The tag of the object now stored under `key`, `None` if there is
    /// none. Reads the whole object; callers hold the key's lock, so it
    /// cannot change meanwhile.
    fn current_tag(&self, key: &str) -> Result<Option<String>> {
        let path = self.path(key)?;
        match self.fs.stat(&path) {
            Ok(st) if st.is_dir => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading metadata of", &path, e)),
        }
        let file = self.fs.open(&path, OpenMode::Read).map_err(|e| Error::io("opening", &path, e))?;
        tag_of_file(&*file).map(Some).map_err(|e| Error::io("reading", &path, e))
    }
}

impl Backend for LocalBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<PutResult> {
        self.put_with(key, data, mode, Durability::Durable)
    }

    fn put_with(&self, key: &str, data: Bytes, mode: PutMode, durability: Durability) -> Result<PutResult> {
        let temp = self.temp_for(key)?;
        if let Some(file) = temp.file() {
            file.write_at(&data, 0).map_err(|e| Error::io("writing", temp.temp_path(), e))?;
        }
        self.publish_with(key, temp, &mode, tag_of(&data), durability)
    }

    fn volatile_is_weaker(&self) -> bool {
        true
    }

    fn writer(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        let temp = self.temp_for(key)?;
        Ok(Box::new(LocalWriter {
            backend: self.clone(),
            key: key.to_string(),
            mode,
            temp,
            written: 0,
            hasher: Xxh3Default::new(),
        }))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        let file =
            self.fs.open(&path, OpenMode::Read).map_err(|e| self.rename_error(key, Error::io("opening", &path, e)))?;
        let len = file.len().map_err(|e| Error::io("reading the length of", &path, e))?;
        check_range(&range, len, &locator(&self.url, key))?;
        let end = range.end.min(len);
        let n = usize::try_from(end - range.start)
            .map_err(|_| Error::InvalidArgument(format!("range {range:?} is too large")))?;
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, range.start).map_err(|e| Error::io("reading", &path, e))?;
        Ok(Bytes::from(buf))
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        let file =
            self.fs.open(&path, OpenMode::Read).map_err(|e| self.rename_error(key, Error::io("opening", &path, e)))?;
        Ok(Bytes::from(file.read_all().map_err(|e| Error::io("reading", &path, e))?))
    }

    fn open_file(&self, key: &str) -> Result<Option<std::fs::File>> {
        let path = self.path(key)?;
        let file =
            self.fs.open(&path, OpenMode::Read).map_err(|e| self.rename_error(key, Error::io("opening", &path, e)))?;
        // A simulated file system has no file to map.
        match file.as_std() {
            Some(f) => f.try_clone().map(Some).map_err(|e| Error::io("opening", &path, e)),
            None => Ok(None),
        }
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned> {
        // One open file: a put renames a new file over the name and never
        // changes this one, so the bytes and their tag are of one version.
        let data = self.get(key)?;
        Ok(Versioned { etag: tag_of(&data), data })
    }

    fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        self.meta(key, &path)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.walk(prefix, true)
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.walk(prefix, false)?.into_iter().map(|m| m.key).collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.delete_with(key, Durability::Durable)
    }

    fn delete_with(&self, key: &str, durability: Durability) -> Result<()> {
        let path = self.path(key)?;
        // Not between an update's compare and its rename.
        let _held = self.locks.lock(key)?;
        match self.fs.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        if durability == Durability::Volatile {
            return Ok(());
        }
        let dir = dir_of(&path);
        self.fs.sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        // Streamed through a temp file beside the target, a piece at a time.
        let path = self.path(from)?;
        let src =
            self.fs.open(&path, OpenMode::Read).map_err(|e| self.rename_error(from, Error::io("opening", &path, e)))?;
        let mut w = self.writer(to, PutMode::Overwrite)?;
        let mut buf = vec![0u8; COPY_PIECE];
        let mut at = 0u64;
        loop {
            let n = src.read_at(&mut buf, at).map_err(|e| Error::io("reading", &path, e))?;
            if n == 0 {
                break;
            }
            let piece = buf.get(..n).unwrap_or_default();
            w.write_all(piece).map_err(|e| Error::io("copying into", self.root.join(to), e))?;
            at += n as u64;
        }
        w.finish().map(|_| ())
    }

    fn sweep_temp_files(&self) -> Result<usize> {
        self.sweep()
    }
}

/// Bytes a copy moves per step.
const COPY_PIECE: usize = 1 << 20;

impl LocalBackend {
    /// The key of a path under the root, if it has one.
    fn key_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        Some(parts?.join("/"))
    }
}

/// Writes a temp file beside the target and publishes it on finish.
struct LocalWriter {
    backend: LocalBackend,
    key: String,
    mode: PutMode,
    temp: TempFile,
    written: u64,
    /// Hashes what was written so far, for the tag.
    hasher: Xxh3Default,
}

impl Write for LocalWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let Some(file) = self.temp.file() else {
            return Err(std::io::Error::other("the object writer is finished"));
        };
        file.write_at(data, self.written)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for LocalWriter {
    fn finish(self: Box<Self>) -> Result<PutResult> {
        let LocalWriter { backend, key, mode, temp, hasher, .. } = *self;
        backend.publish(&key, temp, &mode, tag(&hasher))
    }

    fn abort(self: Box<Self>) -> Result<()> {
        // Dropping the temp file removes it.
        Ok(())
    }
}
