//! Where a writer's bytes go: a temp file published durably, or memory.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::TempFile;

/// A destination for a checkpoint being written.
///
/// # Contract
/// Bytes are appended with `write_all` and only the header is rewritten in
/// place with `write_at` before `commit`. Nothing is visible to readers
/// before `commit` returns `Ok`; after an error the sink is not used again.
pub trait Sink: Send {
    /// What `commit` yields.
    type Output;
    /// Appends bytes.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Overwrites bytes already written.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
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

impl Sink for Vec<u8> {
    type Output = Vec<u8>;

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.extend_from_slice(buf);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        match self.get_mut(start..start.saturating_add(buf.len())) {
            Some(dst) => {
                dst.copy_from_slice(buf);
                Ok(())
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "write_at past the end")),
        }
    }

    fn commit(self) -> Result<Vec<u8>> {
        Ok(self)
    }
}

/// Small writes are gathered up to this size; larger ones go straight through.
const BUF_LEN: usize = 256 << 10;

/// A checkpoint file written under a temp name and published by rename.
#[derive(Debug)]
pub struct FileSink {
    temp: TempFile,
    buf: Vec<u8>,
}

impl FileSink {
    /// Creates the temp file beside `target`.
    ///
    /// # Errors
    /// As [`TempFile::create`].
    pub fn create(target: &Path) -> Result<Self> {
        Ok(FileSink { temp: TempFile::create(target)?, buf: Vec::with_capacity(BUF_LEN) })
    }

    fn file(&self) -> io::Result<&File> {
        self.temp.file().ok_or_else(|| io::Error::other("temp file already closed"))
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let mut f = self.file()?;
            f.write_all(&self.buf)?;
            self.buf.clear();
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
            let mut f = self.file()?;
            f.write_all(buf)
        }
    }

    fn describe(&self) -> PathBuf {
        self.temp.target().to_path_buf()
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.flush_buf()?;
        self.file()?.write_all_at(buf, offset)
    }

    fn commit(mut self) -> Result<PathBuf> {
        self.flush_buf().map_err(|e| Error::io("writing", self.temp.temp_path(), e))?;
        self.temp.publish()
    }
}
