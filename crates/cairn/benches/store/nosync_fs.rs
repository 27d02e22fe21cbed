//! The real file system with syncs turned into no-ops, used only to fill
//! the benchmark's stores quickly: the files are the same, only not
//! forced to disk. Every timed operation runs on the plain `StdFs`.

use std::io;
use std::path::Path;
use std::sync::Arc;

use cairn::io::{Fs, FsFile, FsLock, FsRef, OpenMode, Stat, StdFs};

#[derive(Debug)]
struct NoSyncFs(FsRef);

/// [`StdFs`] without syncs.
pub fn no_sync() -> FsRef {
    Arc::new(NoSyncFs(StdFs::shared()))
}

impl Fs for NoSyncFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(NoSyncFile(self.0.open(path, mode)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename_noreplace(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.0.remove_file(path)
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.0.stat(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.0.create_dir_all(path)
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.list_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<FsLock> {
        self.0.try_lock(path)
    }
}

#[derive(Debug)]
struct NoSyncFile(Box<dyn FsFile>);

impl FsFile for NoSyncFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }

    fn read_all(&self) -> io::Result<Vec<u8>> {
        self.0.read_all()
    }
}
