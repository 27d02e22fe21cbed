//! The checkpoint container: layout, codecs, digests, writer and reader.

mod checkpointable;
mod codec;
mod cursor;
mod delta;
mod digest;
mod dtype;
mod file_hash;
mod fill;
#[cfg(feature = "testing")]
pub mod frame_probe;
mod index;
// The byte layout is the format's business; cairn's tests and fuzz
// targets build hostile files from it (feature `testing`).
#[cfg(feature = "testing")]
pub mod layout;
#[cfg(not(feature = "testing"))]
pub(crate) mod layout;
mod nibbles;
mod options;
mod pipeline;
mod planes;
mod reader;
mod shuffle;
mod sink;
mod source;
pub(crate) mod stage;
mod stats;
mod stream_check;
mod verify;
mod whole;
mod writer;

pub use checkpointable::{load, load_with_base, save, save_incremental, Checkpointable};
pub(crate) use codec::tag as codec_tag;
pub use codec::Compression;
pub(crate) use delta::{apply as apply_delta, xor_block};
pub use dtype::{ChunkKind, DType, Element};
pub(crate) use index::frame_raw_len;
pub use index::ChunkInfo;
pub use options::{ChunkSpec, WriterOptions, DEFAULT_FRAME_SIZE};
pub use reader::{Checkpoint, ReadOptions};
pub use sink::{FileSink, FrameAt, Sink};
pub use source::RangeRead;
pub use stats::LoadStats;
pub(crate) use stream_check::StreamCheck;
pub use verify::{CheckpointProblem, VerifyReport};
pub use writer::CheckpointWriter;
