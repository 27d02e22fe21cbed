//! The file-access trait everything durable goes through.
//!
//! It is small on purpose: positional reads and writes, length changes,
//! the two syncs, and the directory operations whose durability a crash
//! test must be able to see (create, rename, remove, directory sync).
//! [`StdFs`](super::StdFs) implements it over `std::fs`;
//! `SimFs` (feature `testing`) implements it in memory and can lose power.

use std::any::Any;
use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How [`Fs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    Write,
    /// Read and write; the file is created empty if it is missing and kept
    /// as it is (never truncated) if it exists.
    Create,
    /// Read and write; fails with [`io::ErrorKind::AlreadyExists`] if the
    /// file exists.
    CreateNew,
}

impl OpenMode {
    /// Whether a file opened this way may be written.
    pub fn writes(self) -> bool {
        !matches!(self, OpenMode::Read)
    }
}

/// A shared handle to a file system.
pub type FsRef = Arc<dyn Fs>;

/// What [`Fs::stat`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// A directory rather than a file.
    pub is_dir: bool,
    /// A file's length in bytes (0 for a directory).
    pub len: u64,
    /// When the file was last modified, where the file system says.
    pub modified: Option<std::time::SystemTime>,
}

/// File and directory operations.
///
/// # Contract
/// - A create, rename or remove is durable only once the directory that
///   holds the entry (both directories, for a rename) has been synced with
///   [`sync_dir`](Fs::sync_dir). A crash before that may undo it.
/// - A directory made by [`create_dir_all`](Fs::create_dir_all) is itself an
///   entry of its parent: sync the parent to keep it.
/// - Errors are plain [`io::Error`]s with the operating system's kind
///   (`NotFound`, `AlreadyExists`, `WouldBlock` for a held lock); callers
///   add the path and what they were doing.
/// - Paths are used as given; relative paths are relative to the process's
///   working directory for [`StdFs`](super::StdFs) and to the root for
///   `SimFs`.
pub trait Fs: Send + Sync + Debug {
    /// Opens (or creates, per `mode`) the file at `path`.
    ///
    /// # Errors
    /// `NotFound` if it must exist and does not, `AlreadyExists` for
    /// [`OpenMode::CreateNew`] on an existing file, other I/O errors.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;

    /// Renames `from` to `to`, replacing `to` if it exists.
    ///
    /// # Errors
    /// `NotFound` if `from` is missing, other I/O errors.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Renames `from` to `to` only if nothing is at `to`, as one atomic
    /// step: of concurrent callers naming the same `to`, one wins.
    ///
    /// # Errors
    /// `AlreadyExists` if `to` exists; `NotFound` if `from` is missing;
    /// other I/O errors.
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    ///
    /// # Errors
    /// `NotFound` if it is missing, other I/O errors.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Whether `path` is a directory, and a file's length and modification
    /// time (where known).
    ///
    /// # Errors
    /// `NotFound` if it is missing, other I/O errors.
    fn stat(&self, path: &Path) -> io::Result<Stat>;

    /// Creates a directory and any missing parents.
    ///
    /// # Errors
    /// I/O errors.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Makes the creates, renames and removes in `dir` durable.
    ///
    /// # Errors
    /// I/O errors; the caller must treat a failure like a failed fsync.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// The names of the entries in `dir`, in no particular order.
    ///
    /// # Errors
    /// `NotFound` if `dir` is missing, other I/O errors.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// The entries in `dir` with whether each is a directory, in no
    /// particular order; entries removed while listing are left out.
    /// Default = [`list_dir`](Fs::list_dir) and a [`stat`](Fs::stat) of
    /// each; the real file system reads the kind from the listing itself.
    ///
    /// # Errors
    /// As [`list_dir`](Fs::list_dir).
    fn list_dir_kinds(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        for name in self.list_dir(dir)? {
            match self.stat(&dir.join(&name)) {
                Ok(st) => out.push((name, st.is_dir)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Takes an exclusive lock on the file at `path`, creating it if needed,
    /// without waiting. The lock is held until the returned guard drops, or
    /// the process ends.
    ///
    /// # Errors
    /// `WouldBlock` if another holder has it, other I/O errors.
    fn try_lock(&self, path: &Path) -> io::Result<FsLock>;
}

/// An open file.
///
/// # Contract
/// Writes are visible to later reads at once but survive a crash only after
/// [`sync_data`](FsFile::sync_data) or [`sync_all`](FsFile::sync_all)
/// returns `Ok`. After a sync fails, nothing about the file's durable state
/// is known: do not retry the sync, stop using what was written.
pub trait FsFile: Send + Sync + Debug {
    /// Reads at `offset` into `buf`; returns how many bytes were read, 0 at
    /// the end of the file.
    ///
    /// # Errors
    /// I/O errors.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed.
    ///
    /// # Errors
    /// I/O errors, e.g. `StorageFull`; part of `buf` may have been written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// The file's current length.
    ///
    /// # Errors
    /// I/O errors.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    ///
    /// # Errors
    /// As [`len`](FsFile::len).
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    ///
    /// # Errors
    /// I/O errors.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes the file's data (and the length needed to read it) durable.
    ///
    /// # Errors
    /// I/O errors. The caller must not retry: see the trait's contract.
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's data and all of its metadata durable.
    ///
    /// # Errors
    /// As [`sync_data`](FsFile::sync_data).
    fn sync_all(&self) -> io::Result<()>;

    /// Asks the system to start writing `offset..offset+len` back to disk
    /// without waiting. Only a hint; durability still needs a sync.
    /// Default = does nothing.
    ///
    /// # Errors
    /// An I/O failure the hint uncovered (e.g. EIO).
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// The operating system's file behind this one, when it is one (the
    /// real file system), so that a reader can map it. Default = `None`.
    fn as_std(&self) -> Option<&std::fs::File> {
        None
    }

    /// Writes all of `buf` at the current end of the file and returns the
    /// offset it starts at.
    ///
    /// # Errors
    /// As [`write_at`](FsFile::write_at).
    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let offset = self.len()?;
        self.write_at(buf, offset)?;
        Ok(offset)
    }

    /// Fills `buf` from `offset`.
    ///
    /// # Errors
    /// `UnexpectedEof` if the file ends first, other I/O errors.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file ends early")),
                Ok(n) => {
                    buf = buf.get_mut(n..).unwrap_or_default();
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads the whole file.
    ///
    /// # Errors
    /// I/O errors.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// A held lock from [`Fs::try_lock`]; dropping it releases the lock.
#[derive(Debug)]
pub struct FsLock {
    _held: Box<dyn Any + Send + Sync>,
}

impl FsLock {
    /// Wraps whatever keeps the lock held until it drops.
    pub fn new(held: Box<dyn Any + Send + Sync>) -> Self {
        FsLock { _held: held }
    }
}

/// The directory holding `path`: its parent, or `.` for a bare name.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing parents, syncing each parent after its new
/// entry is made, so the directories themselves survive a crash.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if a directory cannot be created or
/// synced.
pub fn create_dir_durable(fs: &dyn Fs, dir: &Path) -> crate::Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir;
    loop {
        // A stat, not a listing: this runs before every put, in
        // directories that may hold many entries.
        match fs.stat(cur) {
            Ok(st) if st.is_dir => break,
            Ok(_) => {
                let e = io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way of a directory");
                return Err(crate::Error::io("creating directory", cur, e));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur);
                match cur.parent() {
                    Some(p) if !p.as_os_str().is_empty() => cur = p,
                    _ => break,
                }
            }
            Err(e) => return Err(crate::Error::io("reading metadata of", cur, e)),
        }
    }
    for d in missing.iter().rev() {
        fs.create_dir_all(d).map_err(|e| crate::Error::io("creating directory", *d, e))?;
        let parent = dir_of(d);
        fs.sync_dir(parent).map_err(|e| crate::Error::io("syncing directory", parent, e))?;
    }
    Ok(())
}
