//! Exclusive per-key locks for the local-disk backend. An update compares
//! the stored object's tag and then renames the new one into place; the
//! overwrites and deletes that must not slip between those two steps take
//! the same lock. The locks are files in `<root>/.locks/`, one of 256
//! stripes per key, so threads and processes sharing the root exclude each
//! other alike.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::{create_dir_durable, FsLock, FsRef};

/// The directory of lock files under the root. Its dot-name keeps it out
/// of listings and away from keys, which may not start with a dot.
pub(super) const LOCK_DIR: &str = ".locks";

/// Lock files: unrelated keys sharing a stripe only wait on each other
/// briefly, and the directory never grows past this many files.
const STRIPES: u64 = 256;

/// The first pause after finding a lock held; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_micros(50);
const MAX_PAUSE: Duration = Duration::from_millis(5);

/// How long to wait for a lock before giving up. Holders keep it for one
/// compare and one rename, so only a stuck holder (a process stopped with
/// the lock, a hung disk) makes anyone wait this long.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The lock files of one root.
#[derive(Debug, Clone)]
pub(super) struct KeyLocks {
    fs: FsRef,
    dir: PathBuf,
}

impl KeyLocks {
    /// The locks of `root`; nothing is created until the first lock.
    pub(super) fn new(fs: FsRef, root: &Path) -> Self {
        KeyLocks { fs, dir: root.join(LOCK_DIR) }
    }

    /// The stripe file of `key`.
    fn path(&self, key: &str) -> PathBuf {
        let stripe = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % STRIPES;
        self.dir.join(format!("{stripe:02x}"))
    }

    /// Waits for the exclusive lock of `key`'s stripe; it is held until the
    /// guard drops. [`Fs::try_lock`](crate::io::Fs::try_lock) opens the
    /// file anew on every call, and its locks (`flock` on the real file
    /// system) belong to the open file, so two threads of one process
    /// exclude each other as two processes do. (On NFS, where Linux emulates
    /// `flock` with per-process POSIX locks, only processes would: keep a
    /// root shared by threads on a local file system.)
    ///
    /// # Errors
    /// [`Error::Io`] naming the lock file if it cannot be taken, or is
    /// still held by someone else after 30 s.
    pub(super) fn lock(&self, key: &str) -> Result<FsLock> {
        let path = self.path(key);
        let deadline = Instant::now() + TIMEOUT;
        let mut pause = FIRST_PAUSE;
        let mut made_dir = false;
        loop {
            match self.fs.try_lock(&path) {
                Ok(held) => return Ok(held),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(Error::Io { op: "gave up after 30 s waiting for the lock", path, source: e });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                // The first lock under this root (or the directory is gone):
                // make the directory, durably, and try again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_dir => {
                    create_dir_durable(&*self.fs, &self.dir)?;
                    made_dir = true;
                }
                Err(e) => return Err(Error::Io { op: "taking the lock", path, source: e }),
            }
        }
    }
}
