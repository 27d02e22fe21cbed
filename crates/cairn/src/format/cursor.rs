//! A bounds-checked little-endian reader over untrusted bytes. Every failure
//! is an [`Error::Corrupt`] naming the part and the file offset.

use crate::error::{Error, Result};

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// File offset of `buf[0]`, for error messages.
    base: u64,
    file: &'a str,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64, file: &'a str, what: &'static str) -> Self {
        Cursor { buf, pos: 0, base, file, what }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn err(&self, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            file: self.file.to_string(),
            what: self.what.to_string(),
            offset: self.offset(),
            detail: detail.into(),
        }
    }

    pub(crate) fn err_at(&self, offset: u64, detail: impl Into<String>) -> Error {
        Error::Corrupt { file: self.file.to_string(), what: self.what.to_string(), offset, detail: detail.into() }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.err(format!("needs {n} more bytes, {} left", self.remaining()))),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    pub(crate) fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_le_bytes(self.array()?))
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn digest(&mut self) -> Result<[u8; 32]> {
        self.array()
    }
}
