//! Staging for background saves: what a [`CheckpointWriter`] in staging
//! mode is given is copied, frame by frame and in parallel, into reusable
//! buffers drawn from a byte budget, and sent in order to the thread that
//! encodes and writes it ([`drive`]). The caller's data is free the moment
//! an `add_*` call returns; when the budget is spent, the call waits for the
//! writer to free buffers.
//!
//! [`CheckpointWriter`]: super::CheckpointWriter

use std::collections::HashSet;
use std::io::Read;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::options::ChunkSpec;
use super::sink::Sink;
use super::writer::{check_chunk, WriterCore};
use crate::error::{Error, Result};

/// One step of a staged checkpoint, in the order it was added.
pub(crate) enum Op {
    Step(u64),
    Meta(String, serde_json::Value),
    /// A chunk begins; its frames follow, then [`Op::EndChunk`].
    Chunk(String, ChunkSpec),
    /// A frame of the current chunk, and whether it is the last.
    Frame(Staged, bool),
    EndChunk,
    /// Asks for the digest of what was written so far.
    Digest(Sender<[u8; 32]>),
    /// Everything was added: the writer may finish.
    Finish,
}

/// The byte budget staging draws on, and the buffers it recycles.
///
/// One budget serves every background save of a store, so the buffers a
/// save freed serve the next one (no fresh pages to fault in per save).
#[derive(Debug)]
pub(crate) struct Budget {
    state: Mutex<BudgetState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct BudgetState {
    limit: usize,
    used: usize,
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
}

impl Budget {
    /// A budget of `limit` bytes (at least one frame is always allowed).
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget { state: Mutex::new(BudgetState { limit, ..Default::default() }), freed: Condvar::new() })
    }

    /// Raises the limit to at least `min` (a writer's window of frames).
    pub(crate) fn at_least(&self, min: usize) {
        let mut st = crate::util::lock(&self.state);
        st.limit = st.limit.max(min);
    }

    /// A buffer of `len` bytes' capacity if the budget has room now.
    fn try_take(self: &Arc<Self>, len: usize) -> Option<Staged> {
        let st = crate::util::lock(&self.state);
        if st.used > 0 && st.used + len > st.limit {
            return None;
        }
        drop(st);
        let mut none = Duration::ZERO;
        Some(self.take(len, &mut none))
    }

    /// A buffer of `len` bytes' capacity, waiting while the budget is
    /// spent; adds the time waited to `waited`.
    fn take(self: &Arc<Self>, len: usize, waited: &mut Duration) -> Staged {
        let mut st = crate::util::lock(&self.state);
        if st.used > 0 && st.used + len > st.limit {
            let t = Instant::now();
            while st.used > 0 && st.used + len > st.limit {
                st = self.freed.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *waited += t.elapsed();
        }
        st.used += len;
        let mut buf = st.spare.pop().unwrap_or_default();
        st.spare_bytes = st.spare_bytes.saturating_sub(buf.capacity());
        drop(st);
        buf.clear();
        buf.reserve_exact(len);
        Staged { buf, budget: Arc::clone(self), len }
    }

    fn give_back(&self, mut buf: Vec<u8>, len: usize) {
        let mut st = crate::util::lock(&self.state);
        st.used = st.used.saturating_sub(len);
        // Kept for the next frame, or save, while they fit the budget.
        if st.spare_bytes + buf.capacity() <= st.limit {
            buf.clear();
            st.spare_bytes += buf.capacity();
            st.spare.push(buf);
        }
        drop(st);
        self.freed.notify_all();
    }
}

/// A frame's bytes in a staging buffer; back to the budget on drop.
#[derive(Debug)]
pub(crate) struct Staged {
    buf: Vec<u8>,
    budget: Arc<Budget>,
    /// What it counts against the budget.
    len: usize,
}

impl AsRef<[u8]> for Staged {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.buf), self.len);
    }
}

/// The caller's side of a staging writer.
#[derive(Debug)]
pub(crate) struct Stager {
    tx: Sender<Op>,
    budget: Arc<Budget>,
    frame_size: usize,
    names: HashSet<String>,
    /// Time the caller waited for the budget.
    pub(crate) waited: Duration,
    /// Bytes staged.
    pub(crate) bytes: u64,
    /// Set once the writer is gone: nothing more can be staged.
    broken: bool,
}

/// Frames copied in parallel in one go.
const COPY_BATCH: usize = 16;

impl Stager {
    pub(crate) fn new(tx: Sender<Op>, budget: Arc<Budget>, frame_size: u32) -> Self {
        Stager {
            tx,
            budget,
            frame_size: frame_size as usize,
            names: HashSet::new(),
            waited: Duration::ZERO,
            bytes: 0,
            broken: false,
        }
    }

    fn send(&mut self, op: Op) -> Result<()> {
        if self.broken || self.tx.send(op).is_err() {
            self.broken = true;
            return Err(Error::Poisoned {
                what: "background save".into(),
                cause: "its writer stopped (SaveHandle::wait or Store::flush says why)".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn set_step(&mut self, step: u64) {
        let _ = self.send(Op::Step(step));
    }

    pub(crate) fn set_metadata(&mut self, key: String, value: serde_json::Value) {
        let _ = self.send(Op::Meta(key, value));
    }

    fn begin(&mut self, name: &str, spec: &ChunkSpec, len: Option<u64>) -> Result<()> {
        check_chunk(&self.names, self.names.len(), name, spec, len)?;
        self.names.insert(name.to_string());
        self.send(Op::Chunk(name.to_string(), spec.clone()))
    }

    pub(crate) fn add_chunk(&mut self, name: &str, spec: &ChunkSpec, data: &[u8]) -> Result<()> {
        self.begin(name, spec, Some(data.len() as u64))?;
        let n = data.len().div_ceil(self.frame_size);
        let mut sent = 0;
        // Frames are copied in parallel a group at a time. A group is sent
        // before its next buffer would wait for the budget: the writer may
        // be waiting for exactly the frames the group holds.
        let mut group: Vec<(Staged, &[u8])> = Vec::with_capacity(COPY_BATCH);
        for piece in data.chunks(self.frame_size) {
            let buf = match self.budget.try_take(piece.len()) {
                Some(b) => b,
                None => {
                    sent += self.send_group(&mut group, n - sent)?;
                    self.budget.take(piece.len(), &mut self.waited)
                }
            };
            group.push((buf, piece));
            if group.len() == COPY_BATCH {
                sent += self.send_group(&mut group, n - sent)?;
            }
        }
        self.send_group(&mut group, n - sent)?;
        self.send(Op::EndChunk)
    }

    /// Copies a group's pieces into its buffers, in parallel, and sends
    /// them; `left` is how many frames of the chunk were not sent yet.
    fn send_group(&mut self, group: &mut Vec<(Staged, &[u8])>, left: usize) -> Result<usize> {
        group.par_iter_mut().for_each(|(b, p)| b.buf.extend_from_slice(p));
        let count = group.len();
        for (i, (b, _)) in group.drain(..).enumerate() {
            self.bytes += b.buf.len() as u64;
            self.send(Op::Frame(b, i + 1 == left))?;
        }
        Ok(count)
    }

    pub(crate) fn add_reader(&mut self, name: &str, spec: &ChunkSpec, mut reader: impl Read) -> Result<u64> {
        self.begin(name, spec, None)?;
        let mut total = 0u64;
        let mut ahead = self.read_frame(&mut reader, name)?;
        while let Some(cur) = ahead {
            ahead = if cur.buf.len() == self.frame_size { self.read_frame(&mut reader, name)? } else { None };
            total += cur.buf.len() as u64;
            self.bytes += cur.buf.len() as u64;
            let last = ahead.is_none();
            self.send(Op::Frame(cur, last))?;
        }
        self.send(Op::EndChunk)?;
        Ok(total)
    }

    /// The next frame from `reader`, `None` at its end.
    fn read_frame(&mut self, reader: &mut impl Read, name: &str) -> Result<Option<Staged>> {
        let mut b = self.budget.take(self.frame_size, &mut self.waited);
        b.buf.resize(self.frame_size, 0);
        let mut n = 0;
        while n < self.frame_size {
            match reader.read(b.buf.get_mut(n..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken = true;
                    return Err(Error::io("reading chunk", name, e));
                }
            }
        }
        b.buf.truncate(n);
        Ok((n > 0).then_some(b))
    }

    pub(crate) fn digest(&self) -> [u8; 32] {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Op::Digest(tx)).is_err() {
            return [0; 32];
        }
        rx.recv().unwrap_or([0; 32])
    }

    /// Tells the writer that everything was added.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.send(Op::Finish)
    }
}

/// The writer's side: applies staged steps to `core` until the stager says
/// it is finished. A stager dropped before (its closure failed) ends it
/// with an error, and nothing is published.
pub(crate) fn drive<S: Sink>(core: &mut WriterCore<S>, rx: &Receiver<Op>) -> Result<()> {
    let aborted = || Error::Refused {
        what: "background save".into(),
        reason: "the closure that added its chunks failed or was abandoned: nothing was published".into(),
    };
    loop {
        match rx.recv() {
            Err(_) => return Err(aborted()),
            Ok(Op::Finish) => return Ok(()),
            Ok(Op::Step(s)) => core.set_step(s),
            Ok(Op::Meta(k, v)) => core.set_metadata(k, v),
            Ok(Op::Digest(reply)) => {
                let _ = reply.send(core.digest());
            }
            Ok(Op::Frame(..) | Op::EndChunk) => {
                return Err(Error::Internal("a staged frame outside any chunk".into()));
            }
            Ok(Op::Chunk(name, spec)) => {
                let mut ended = false;
                let mut cut = false;
                let frames = std::iter::from_fn(|| {
                    if ended {
                        return None;
                    }
                    match rx.recv() {
                        Ok(Op::Frame(b, last)) => Some(Ok((b, last))),
                        Ok(Op::EndChunk) => {
                            ended = true;
                            None
                        }
                        _ => {
                            ended = true;
                            cut = true;
                            Some(Err(std::io::Error::other("the staged chunk was cut short")))
                        }
                    }
                });
                let r = core.add_frames(&name, &spec, frames);
                if cut {
                    return Err(aborted());
                }
                r?;
                // A chunk refused early leaves its frames queued: skip them.
                if !ended {
                    loop {
                        match rx.recv() {
                            Ok(Op::EndChunk) => break,
                            Ok(Op::Frame(..)) => {}
                            _ => return Err(aborted()),
                        }
                    }
                }
            }
        }
    }
}
