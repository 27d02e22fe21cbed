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
//!
//! # Where things live
//!
//! Each module is a layer; a layer uses only the layers listed before it
//! (and the crate's errors), so any behaviour is found from the folder tree
//! in one step:
//!
//! - [`io`]: file access that must survive a crash, behind the small [`io::Fs`]
//!   trait (positional reads and writes, the two syncs, rename, remove,
//!   directory sync, locks); durable publish of a file by temp file, sync,
//!   rename and directory sync ([`io::TempFile`]); the sweep of temp files
//!   dead processes left; whether a process still runs. With the `testing`
//!   feature, `SimFs`, a file system that loses power on command.
//! - [`format`](mod@format): the checkpoint file: its byte layout, frame codecs,
//!   checksums and digests, the streaming [`CheckpointWriter`], the reader
//!   ([`Checkpoint`]) over a memory map, positional or ranged reads, and
//!   verification. Uses `io`.
//! - [`wal`]: the write-ahead log ([`wal::Wal`]): record framing, segments,
//!   group commit, the one scanner that recovery, reading and verification
//!   share; and [`wal::StateLog`], state kept as snapshots (checkpoint files)
//!   plus the ops logged since. Uses `io` and `format`.
//! - [`backend`]: object-level storage behind the [`backend::Backend`] trait
//!   (local disk on `io`, memory, S3/GCS/Azure through `object_store`), the
//!   one parser of paths and URLs, multi-object commits by manifest, ranged
//!   reads of checkpoints, and wrappers (traffic counting; with `testing`,
//!   faults and latency). Uses `io` and `format`.
//! - [`store`]: the keyed checkpoint store ([`store::Store`]): keys and
//!   fingerprints, the save protocol, indexes updated by compare-and-swap,
//!   lookup by best, latest or id, retention, eviction, leases, collection,
//!   verification and repair, and the cache of opened checkpoints. Uses
//!   `backend`, `format` and `io`.
//!
//! Errors are one type, [`Error`], whose kinds say what failed (damage,
//! a missing object, a refused change, a bad argument, an internal bug).
//! docs/FORMAT.md, docs/WAL.md, docs/STORE.md and docs/DURABILITY.md state
//! the formats and protocols.
//!
//! cairn runs on Unix (it is tested on Linux): process liveness, positional
//! file I/O and directory syncs use Unix interfaces.
#![deny(missing_docs)]

#[cfg(not(unix))]
compile_error!(
    "cairn runs on Unix only: it relies on Unix file and process interfaces (kill, pread, fsync of directories)"
);

pub mod backend;
mod error;
pub mod format;
pub mod import;
pub mod io;
pub mod store;
mod util;
pub mod wal;

pub use error::{chain as error_chain, BoxError, Error, Result};
pub use format::{
    load, load_with_base, save, save_incremental, Checkpoint, CheckpointProblem, CheckpointWriter, Checkpointable,
    ChunkInfo, ChunkKind, ChunkSpec, Compression, DType, Element, FileSink, FrameAt, LoadStats, ReadOptions, Sink,
    VerifyReport, WriterOptions,
};
