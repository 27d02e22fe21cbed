//! The frame pipeline behind the writer: frames are hashed, compressed and
//! checksummed as rayon tasks while the calling thread reads the next frames
//! and writes finished ones in order. At most a few frames per worker are
//! in flight, so memory does not grow with the chunk.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::codec::{self, tag, Compression};
use super::delta;
use super::digest::{self, FrameHash};
use super::index::{frame_raw_len, ChunkInfo, FrameEntry};
use super::layout::xxh3;
use super::reader::Checkpoint;
use super::sink::{FrameAt, Sink};
use crate::error::{Error, Result};

/// How a chunk's frames are encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameParams {
    pub frame_size: u32,
    pub compression: Compression,
    pub shuffle_elem: usize,
}

/// The frames of a delta file's base for the chunk being written: the
/// base's chunk of the same name and its frame table.
pub(crate) struct BaseFrames {
    ck: Arc<Checkpoint>,
    chunk: ChunkInfo,
    frames: Vec<FrameEntry>,
}

impl BaseFrames {
    /// The base's chunk named `name`, if it has one whose frame table reads.
    pub(crate) fn of(ck: &Arc<Checkpoint>, name: &str) -> Option<Self> {
        let chunk = ck.chunk(name)?.clone();
        match ck.frames_of(&chunk) {
            Ok(frames) => Some(BaseFrames { ck: Arc::clone(ck), frames: frames.to_vec(), chunk }),
            Err(e) => {
                log::warn!("{}: the base's chunk {name:?} is unreadable, so it is written whole: {e}", ck.origin());
                None
            }
        }
    }

    /// Frame `i` (`raw`) encoded against the base's frame `i`, when that
    /// frame exists with the same length, reads back intact, and the
    /// difference is small (see `delta::encode`).
    fn delta(&self, raw: &[u8], i: u64) -> Option<(u8, Vec<u8>)> {
        let f = self.frames.get(usize::try_from(i).ok()?)?;
        if frame_raw_len(self.chunk.raw_len, self.ck.frame_size(), i) != raw.len() as u64 {
            return None;
        }
        BASE_FRAME.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.truncate(raw.len());
            buf.resize(raw.len(), 0);
            if let Err(e) = self.ck.read_frame(&self.chunk, i as usize, f, &mut buf) {
                log::warn!("{}: a base frame is unreadable, so the new one is written whole: {e}", self.ck.origin());
                return None;
            }
            delta::encode(raw, &buf, delta::BaseRef::of(f))
        })
    }
}

thread_local! {
    static BASE_FRAME: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What writing a chunk's frames produced.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub frames: Vec<FrameEntry>,
    pub hashes: Vec<FrameHash>,
    pub raw_len: u64,
    /// Required feature bits the frames use.
    pub required: u64,
}

/// One frame after hashing and encoding.
struct Encoded {
    codec: u8,
    compressed: Option<Vec<u8>>,
    checksum: u64,
    hash: FrameHash,
}

fn encode(raw: &[u8], index: u64, only: bool, p: FrameParams, base: Option<&BaseFrames>) -> std::io::Result<Encoded> {
    let hash = digest::hash_frame(raw, index, p.frame_size, only);
    let (codec, compressed) = match base.and_then(|b| b.delta(raw, index)) {
        Some((codec, stored)) => (codec, Some(stored)),
        None => codec::encode(raw, p.compression, p.shuffle_elem)?,
    };
    let checksum = xxh3(compressed.as_deref().unwrap_or(raw));
    Ok(Encoded { codec, compressed, checksum, hash })
}

type Pending<B> = Receiver<(B, std::io::Result<Encoded>)>;

/// Waits for a frame's result. A caller that is itself a rayon worker helps
/// with pending work meanwhile, so a pool of one thread cannot deadlock.
fn wait<T>(rx: &Receiver<T>) -> Option<T> {
    loop {
        if let Ok(v) = rx.try_recv() {
            return Some(v);
        }
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            continue;
        }
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(v) => return Some(v),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Streams `frames` (each with whether it is the chunk's last) through the
/// pool into `sink`, starting at file offset `*pos`.
pub(crate) fn write_frames<'s, S, B, I>(
    pool: Option<&rayon::ThreadPool>,
    sink: &mut S,
    pos: &mut u64,
    frames: I,
    p: FrameParams,
    base: Option<&'s BaseFrames>,
    chunk: &str,
) -> Result<Written>
where
    S: Sink,
    B: AsRef<[u8]> + Send + 's,
    I: Iterator<Item = std::io::Result<(B, bool)>>,
{
    let threads = pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
    let max_in_flight = 2 * threads + 2;
    let body = |scope: &rayon::ScopeFifo<'s>| -> Result<Written> {
        let mut out = Written::default();
        let mut in_flight: VecDeque<Pending<B>> = VecDeque::with_capacity(max_in_flight);
        let mut frames = frames.enumerate();
        let mut exhausted = false;
        loop {
            while !exhausted && in_flight.len() < max_in_flight {
                match frames.next() {
                    Some((i, Ok((buf, last)))) => {
                        let (tx, rx) = sync_channel(1);
                        let only = i == 0 && last;
                        if only {
                            // A chunk of one frame (every chunk of a small
                            // save) is encoded here: handing it to the pool
                            // would cost more in wake-ups than it saves.
                            let e = encode(buf.as_ref(), i as u64, only, p, base);
                            let _ = tx.send((buf, e));
                        } else {
                            scope.spawn_fifo(move |_| {
                                let e = encode(buf.as_ref(), i as u64, only, p, base);
                                let _ = tx.send((buf, e));
                            });
                        }
                        in_flight.push_back(rx);
                    }
                    Some((_, Err(e))) => {
                        return Err(Error::Io { op: "reading input for chunk", path: chunk.into(), source: e })
                    }
                    None => exhausted = true,
                }
            }
            let Some(rx) = in_flight.pop_front() else { break };
            let Some((raw, encoded)) = wait(&rx) else {
                return Err(Error::Internal(format!("chunk {chunk:?}: a frame task vanished")));
            };
            let e = encoded.map_err(|e| Error::Io { op: "compressing a frame of", path: chunk.into(), source: e })?;
            let raw = raw.as_ref();
            let stored = e.compressed.as_deref().unwrap_or(raw);
            let at = FrameAt { chunk, index: out.frames.len() as u64, raw: e.codec == tag::NONE };
            sink.write_frame(stored, &at).map_err(|source| Error::Io {
                op: "writing checkpoint",
                path: sink.describe(),
                source,
            })?;
            out.frames.push(FrameEntry {
                offset: *pos,
                stored_len: stored.len() as u32,
                codec: e.codec,
                checksum: e.checksum,
            });
            *pos += stored.len() as u64;
            out.raw_len += raw.len() as u64;
            out.hashes.push(e.hash);
            out.required |= codec::required_feature(e.codec).unwrap_or(0);
        }
        Ok(out)
    };
    match pool {
        Some(pool) => pool.in_place_scope_fifo(body),
        None => rayon::in_place_scope_fifo(body),
    }
}
