//! Options for writing a checkpoint and for each chunk in it.

use std::time::SystemTime;

use super::codec::Compression;
use super::dtype::{ChunkKind, DType};

/// Default frame size: 1 MiB, large enough to compress well, small enough to
/// spread a 16 MiB tensor over many cores and to read a slice cheaply.
pub const DEFAULT_FRAME_SIZE: u32 = 1 << 20;

/// How a [`CheckpointWriter`](super::CheckpointWriter) stores chunks.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub(crate) compression: Compression,
    pub(crate) shuffle: bool,
    pub(crate) frame_size: u32,
    pub(crate) threads: Option<usize>,
    pub(crate) created_at: Option<SystemTime>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            compression: Compression::None,
            shuffle: false,
            frame_size: DEFAULT_FRAME_SIZE,
            threads: None,
            created_at: None,
        }
    }
}

impl WriterOptions {
    /// Compression for every chunk that does not choose its own.
    /// Default = [`Compression::None`].
    #[must_use]
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Byte-shuffle typed chunks before compressing them. With lz4, each
    /// shuffled frame is stored plane by plane (raw, lz4 or four-bit codes,
    /// whichever is smallest cheaply), which files from cairn before the
    /// `PLANES` feature bit cannot read. Default = `false`.
    #[must_use]
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Frame size in bytes: a power of two from 4 KiB to 64 MiB.
    /// Default = 1 MiB.
    #[must_use]
    pub fn frame_size(mut self, bytes: u32) -> Self {
        self.frame_size = bytes;
        self
    }

    /// Worker threads compressing frames: `Some(n)` uses a pool of its own,
    /// `None` rayon's global pool. Default = `None`.
    #[must_use]
    pub fn threads(mut self, n: Option<usize>) -> Self {
        self.threads = n;
        self
    }

    /// The creation time recorded in the file. Default = the time `finish` runs.
    #[must_use]
    pub fn created_at(mut self, t: SystemTime) -> Self {
        self.created_at = Some(t);
        self
    }
}

/// What a chunk is and how to store it.
#[derive(Debug, Clone)]
pub struct ChunkSpec {
    pub(crate) kind: ChunkKind,
    pub(crate) dtype: Option<DType>,
    pub(crate) shape: Option<Vec<u64>>,
    pub(crate) compression: Option<Compression>,
    pub(crate) shuffle: Option<bool>,
}

impl ChunkSpec {
    /// Opaque bytes.
    pub fn bytes() -> Self {
        ChunkSpec { kind: ChunkKind::Bytes, dtype: None, shape: None, compression: None, shuffle: None }
    }

    /// A tensor of `dtype` with dimensions `shape` (row-major).
    pub fn tensor(dtype: DType, shape: &[u64]) -> Self {
        ChunkSpec { kind: ChunkKind::Tensor, dtype: Some(dtype), shape: Some(shape.to_vec()), ..Self::bytes() }
    }

    /// Sets the kind label. Default = [`ChunkKind::Bytes`], or `Tensor` from
    /// [`ChunkSpec::tensor`].
    #[must_use]
    pub fn kind(mut self, kind: ChunkKind) -> Self {
        self.kind = kind;
        self
    }

    /// Overrides the writer's compression for this chunk.
    /// Default = the writer's.
    #[must_use]
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = Some(c);
        self
    }

    /// Overrides the writer's shuffle setting for this chunk.
    /// Default = the writer's.
    #[must_use]
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = Some(on);
        self
    }
}
