//! cairn gives long-running compute durable state: checkpoint files that are
//! written while a program runs, published atomically, and read back fast
//! and verified after a crash or on another machine.
//!
//! A checkpoint holds named chunks (tensors, serde values, raw buffers). Each
//! chunk is cut into frames that are compressed (none, lz4, zstd, auto) and
//! checksummed independently, in parallel; a BLAKE3 digest covers the
//! logical content. Uncompressed tensors are 64-byte aligned and can be
//! viewed in place from a memory map.
//!
//! ```
//! use cairn::{Checkpoint, CheckpointWriter, Compression, WriterOptions};
//! # fn main() -> Result<(), cairn::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("step-100.cairn");
//!
//! let opts = WriterOptions::default().compression(Compression::Zstd(3)).shuffle(true);
//! let mut w = CheckpointWriter::create(&path, opts)?;
//! w.set_step(100);
//! w.set_metadata("loss", serde_json::json!(0.25));
//! w.add_tensor("layer0.weight", &[256, 64], &vec![0.5f32; 256 * 64])?;
//! w.add_json("config", &serde_json::json!({"lr": 1e-3}))?;
//! w.finish()?; // temp file, fsync, rename, directory fsync
//!
//! let ckpt = Checkpoint::open(&path)?;
//! assert!(ckpt.verify()?.is_ok());
//! let weights: Vec<f32> = ckpt.read_tensor("layer0.weight")?;
//! assert_eq!(weights.len(), 256 * 64);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod backend;
mod error;
pub mod format;
pub mod io;
pub mod store;
mod util;
pub mod wal;

pub use error::{chain as error_chain, BoxError, Error, Result};
pub use format::{
    load, save, Checkpoint, CheckpointProblem, CheckpointWriter, Checkpointable, ChunkInfo, ChunkKind, ChunkSpec,
    Compression, DType, Element, FileSink, LoadStats, ReadOptions, Sink, VerifyReport, WriterOptions,
};
