//! Types that save themselves into a checkpoint and restore from one.

use std::path::Path;

use super::options::WriterOptions;
use super::reader::Checkpoint;
use super::sink::Sink;
use super::writer::CheckpointWriter;
use crate::error::Result;

/// A type that can write its state as chunks and rebuild itself from them.
///
/// ```
/// use cairn::{Checkpoint, CheckpointWriter, Checkpointable, Result, Sink};
///
/// struct Model { weights: Vec<f32>, step: u64 }
///
/// impl Checkpointable for Model {
///     fn save<S: Sink>(&self, w: &mut CheckpointWriter<S>) -> Result<()> {
///         w.add_tensor("weights", &[self.weights.len() as u64], &self.weights)?;
///         w.add_serde("step", &self.step)
///     }
///     fn restore(c: &Checkpoint) -> Result<Self> {
///         Ok(Model { weights: c.read_tensor("weights")?, step: c.read_serde("step")? })
///     }
/// }
/// # fn main() -> Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("m.cairn");
/// cairn::save(&path, &Model { weights: vec![0.5; 8], step: 3 }, cairn::WriterOptions::default())?;
/// let m: Model = cairn::load(&path)?;
/// assert_eq!(m.step, 3);
/// # Ok(()) }
/// ```
///
/// # Contract
/// `restore` of what `save` wrote yields an equal value; chunk names chosen
/// by `save` must be unique within the writer.
pub trait Checkpointable: Sized {
    /// Adds this value's chunks to `w`.
    ///
    /// # Errors
    /// Whatever adding a chunk returns.
    fn save<S: Sink>(&self, w: &mut CheckpointWriter<S>) -> Result<()>;

    /// Rebuilds a value from an open checkpoint.
    ///
    /// # Errors
    /// Whatever reading a chunk returns.
    fn restore(c: &Checkpoint) -> Result<Self>;
}

/// Saves `value` durably at `path` (temp file, sync, rename, directory sync).
///
/// # Errors
/// As [`CheckpointWriter::create`], [`Checkpointable::save`] and [`CheckpointWriter::finish`].
pub fn save<T: Checkpointable>(path: impl AsRef<Path>, value: &T, opts: WriterOptions) -> Result<()> {
    let mut w = CheckpointWriter::create(path, opts)?;
    value.save(&mut w)?;
    w.finish().map(|_| ())
}

/// Opens `path` and restores a `T` from it.
///
/// # Errors
/// As [`Checkpoint::open`] and [`Checkpointable::restore`].
pub fn load<T: Checkpointable>(path: impl AsRef<Path>) -> Result<T> {
    T::restore(&Checkpoint::open(path)?)
}
