//! Where a writer's bytes go: a temp file published durably, or memory.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{FsFile, FsRef, StdFs, TempFile};

/// A destination for a checkpoint being written.
///
/// # Contract
/// Bytes are only appended, with `write_all`, front to back: a sink may be
/// a pipe or an upload that cannot seek. Nothing is visible to readers
/// before `commit` returns `Ok`; after an error the sink is not used again,
/// and a sink dropped without `commit` leaves nothing behind.
pub trait Sink: Send {
    /// What `commit` yields.
    type Output;
    /// Appends bytes.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Appends one frame's stored bytes, saying which frame they are (a
    /// store that shares frames between entries looks at them). Default =
    /// [`write_all`](Self::write_all).
    ///
    /// # Errors
    /// The underlying I/O error.
    fn write_frame(&mut self, stored: &[u8], at: &FrameAt<'_>) -> io::Result<()> {
        let _ = at;
        self.write_all(stored)
    }
    /// Where the bytes go, for error messages. Default = `<memory>`.
    fn describe(&self) -> PathBuf {
        PathBuf::from("<memory>")
    }
    /// Makes the complete file durable and visible.
    ///
    /// # Errors
    /// Any failure to sync or publish.
    fn commit(self) -> Result<Self::Output>;
}

/// Which frame [`Sink::write_frame`] is given.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FrameAt<'a> {
    /// The chunk's name.
    pub chunk: &'a str,
    /// The frame's number in the chunk, from 0.
    pub index: u64,
    /// Whether the frame is stored raw (its stored bytes are its content).
    pub raw: bool,
}

impl Sink for Vec<u8> {
    type Output = Vec<u8>;

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.extend_from_slice(buf);
        Ok(())
    }

    fn commit(self) -> Result<Vec<u8>> {
        Ok(self)
    }
}

/// Small writes are gathered up to this size; larger ones go straight through.
const BUF_LEN: usize = 256 << 10;

/// Written bytes are handed to the kernel's writeback in steps of this size
/// while the checkpoint is still being written.
const WRITEBACK_STEP: u64 = 8 << 20;

/// A checkpoint file written under a temp name and published by rename,
/// through the [`io`](crate::io) layer.
///
/// While writing, it asks the system to start writing back each completed
/// 8 MiB ([`FsFile::start_writeback`], `sync_file_range` on Linux), so disk
/// I/O overlaps with producing the rest and the final `fsync` has little
/// left to do. That call only starts writeback; durability still comes from
/// the sync in [`TempFile::publish`].
#[derive(Debug)]
pub struct FileSink {
    temp: TempFile,
    buf: Vec<u8>,
    /// Bytes handed to the file so far.
    written: u64,
    /// Bytes whose writeback has been started.
    kicked: u64,
}

impl FileSink {
    /// Creates the temp file beside `target` on the real file system.
    ///
    /// # Errors
    /// As [`TempFile::create`].
    pub fn create(target: &Path) -> Result<Self> {
        Self::create_in(StdFs::shared(), target)
    }

    /// Creates the temp file beside `target` on `fs`.
    ///
    /// # Errors
    /// As [`TempFile::create_in`].
    pub fn create_in(fs: FsRef, target: &Path) -> Result<Self> {
        let temp = TempFile::create_in(fs, target)?;
        Ok(FileSink { temp, buf: Vec::with_capacity(BUF_LEN), written: 0, kicked: 0 })
    }

    fn file(&self) -> io::Result<&dyn FsFile> {
        self.temp.file().ok_or_else(|| io::Error::other("temp file already closed"))
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        let f = self.file()?;
        f.write_at(bytes, self.written)?;
        self.written += bytes.len() as u64;
        if self.written - self.kicked >= WRITEBACK_STEP {
            self.file()?.start_writeback(self.kicked, self.written - self.kicked)?;
            self.kicked = self.written;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let r = self.put(&buf);
            self.buf = buf;
            self.buf.clear();
            r?;
        }
        Ok(())
    }
}

impl Sink for FileSink {
    type Output = PathBuf;

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.buf.len() + buf.len() <= BUF_LEN {
            self.buf.extend_from_slice(buf);
            return Ok(());
        }
        self.flush_buf()?;
        if buf.len() < BUF_LEN {
            self.buf.extend_from_slice(buf);
            Ok(())
        } else {
            self.put(buf)
        }
    }

    fn describe(&self) -> PathBuf {
        self.temp.target().to_path_buf()
    }

    fn commit(mut self) -> Result<PathBuf> {
        self.flush_buf().map_err(|e| Error::io("writing", self.temp.temp_path(), e))?;
        self.temp.publish()
    }
}
