//! Types that save themselves into a checkpoint and restore from one.

use std::path::Path;
use std::sync::Arc;

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

    /// Adds this value's chunks to `w`, a writer of a delta file against
    /// `base` (an earlier save of this type). The writer already stores
    /// each frame equal to `base`'s as a reference and one that changed a
    /// little as an XOR, so the default, a full [`save`](Self::save), is
    /// incremental as it is; a type may override it to skip work it knows
    /// to be unchanged, as long as every chunk [`restore`](Self::restore)
    /// needs is added.
    ///
    /// # Errors
    /// Whatever adding a chunk returns.
    fn save_incremental<S: Sink>(&self, w: &mut CheckpointWriter<S>, base: &Checkpoint) -> Result<()> {
        let _ = base;
        self.save(w)
    }
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

/// Saves `value` durably at `path` as a delta file against `base`, a full
/// checkpoint (an earlier [`save`] of it), through
/// [`Checkpointable::save_incremental`]. The frame size is the base's,
/// whatever `opts` says. Reading it needs `base` ([`load_with_base`]).
///
/// # Errors
/// As [`save`] and [`CheckpointWriter::set_base`].
pub fn save_incremental<T: Checkpointable>(
    path: impl AsRef<Path>,
    value: &T,
    base: Arc<Checkpoint>,
    opts: WriterOptions,
) -> Result<()> {
    let mut w = CheckpointWriter::create(path, opts.frame_size(base.frame_size()))?;
    w.set_base(Arc::clone(&base))?;
    value.save_incremental(&mut w, &base)?;
    w.finish().map(|_| ())
}

/// Opens `path` with the base it was written against and restores a `T`.
///
/// # Errors
/// As [`Checkpoint::open_with_base`] and [`Checkpointable::restore`].
pub fn load_with_base<T: Checkpointable>(path: impl AsRef<Path>, base: Arc<Checkpoint>) -> Result<T> {
    T::restore(&Checkpoint::open_with_base(path, base)?)
}

/// Opens `path` and restores a `T` from it.
///
/// # Errors
/// As [`Checkpoint::open`] and [`Checkpointable::restore`].
pub fn load<T: Checkpointable>(path: impl AsRef<Path>) -> Result<T> {
    T::restore(&Checkpoint::open(path)?)
}
