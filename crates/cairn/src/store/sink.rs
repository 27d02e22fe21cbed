//! Where [`Store::save_with`](super::Store::save_with) writes: a checkpoint
//! streamed into the backend's object writer (a temp file beside the entry
//! on local disk, a multipart upload on object storage), hashed as it goes
//! so that the entry's digest needs no second pass.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::backend::ObjectWriter;
use crate::error::Result;
use crate::format::Sink;

/// Small writes (frame padding, the trailer) are gathered up to this size.
const GATHER: usize = 256 << 10;

/// Buffers this large are hashed on the rayon pool: BLAKE3 splits them
/// across threads; smaller ones are not worth the hand-off.
const PARALLEL_HASH: usize = 1 << 20;

/// A checkpoint being streamed into a store entry's data object. Nothing is
/// visible before the checkpoint writer's `finish`; a sink dropped before
/// that leaves nothing behind (the object writer's contract).
pub struct EntrySink {
    writer: Option<Box<dyn ObjectWriter>>,
    /// The object's locator, for messages.
    target: String,
    hasher: blake3::Hasher,
    len: u64,
    buf: Vec<u8>,
    /// Whether large writes are hashed on rayon's pool (all cores) or on
    /// the writing thread.
    parallel_hash: bool,
}

impl std::fmt::Debug for EntrySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntrySink").field("target", &self.target).field("len", &self.len).finish_non_exhaustive()
    }
}

/// What a committed [`EntrySink`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// Its length in bytes.
    pub len: u64,
    /// BLAKE3 of the bytes, in hex.
    pub digest: String,
}

impl EntrySink {
    /// A sink into `writer`. `parallel_hash` lets large writes be hashed on
    /// rayon's global pool; a save limited to one encoding thread (a
    /// background save that leaves the caller's cores alone) hashes on the
    /// writing thread instead.
    pub(crate) fn new(writer: Box<dyn ObjectWriter>, target: String, parallel_hash: bool) -> Self {
        EntrySink {
            writer: Some(writer),
            target,
            hasher: blake3::Hasher::new(),
            len: 0,
            buf: Vec::new(),
            parallel_hash,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the entry's upload already failed"));
        };
        if let Err(e) = w.write_all(bytes) {
            // The upload is in an unknown state: give it up now.
            if let Some(w) = self.writer.take() {
                let _ = w.abort();
            }
            return Err(e);
        }
        if self.parallel_hash && bytes.len() >= PARALLEL_HASH {
            self.hasher.update_rayon(bytes);
        } else {
            self.hasher.update(bytes);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let r = self.put(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }
}

impl Sink for EntrySink {
    type Output = Stored;

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() <= GATHER {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(GATHER);
            }
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_buf()?;
        if bytes.len() < GATHER {
            self.buf.extend_from_slice(bytes);
            Ok(())
        } else {
            self.put(bytes)
        }
    }

    fn describe(&self) -> PathBuf {
        PathBuf::from(&self.target)
    }

    fn commit(mut self) -> Result<Stored> {
        self.flush_buf().map_err(|e| crate::Error::Backend {
            op: "uploading",
            what: self.target.clone(),
            source: Box::new(e),
        })?;
        let Some(w) = self.writer.take() else {
            return Err(crate::Error::Internal(format!("{}: the upload was given up", self.target)));
        };
        w.finish()?;
        Ok(Stored { len: self.len, digest: self.hasher.finalize().to_hex().to_string() })
    }
}
