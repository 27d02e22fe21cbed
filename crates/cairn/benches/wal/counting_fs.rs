//! A file system that passes every call to the real one and counts the log
//! writes and syncs, so the report can say how many records each write and
//! each `fdatasync` carried (what group commit achieved), and how long the
//! syncs took. Counting costs an atomic add per call.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cairn::io::{Fs, FsFile, FsLock, FsRef, OpenMode, Stat, StdFs};

#[derive(Debug, Default)]
pub struct Counts {
    writes: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
}

/// Counts taken at one moment; differences of two give a run's share.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub writes: u64,
    pub syncs: u64,
    pub sync_nanos: u64,
}

impl Snapshot {
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            writes: self.writes - earlier.writes,
            syncs: self.syncs - earlier.syncs,
            sync_nanos: self.sync_nanos - earlier.sync_nanos,
        }
    }
}

impl Counts {
    pub fn now(&self) -> Snapshot {
        Snapshot {
            writes: self.writes.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            sync_nanos: self.sync_nanos.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct CountingFs {
    inner: FsRef,
    counts: Arc<Counts>,
}

/// [`StdFs`] with counters.
pub fn std_fs() -> (FsRef, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    (Arc::new(CountingFs { inner: StdFs::shared(), counts: Arc::clone(&counts) }), counts)
}

impl Fs for CountingFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(CountingFile { inner, counts: Arc::clone(&self.counts) }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename_noreplace(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.inner.stat(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<FsLock> {
        self.inner.try_lock(path)
    }
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn FsFile>,
    counts: Arc<Counts>,
}

impl FsFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let t = Instant::now();
        let r = self.inner.sync_data();
        let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counts.syncs.fetch_add(1, Ordering::Relaxed);
        self.counts.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
        r
    }

    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(offset, len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn read_all(&self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }
}
