//! Full verification: every frame's checksum, every frame decoded, every
//! chunk's BLAKE3 digest, the file digest, and the padding between chunks.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::codec;
use super::digest::{self, FrameHash};
use super::index::{file_digest, frame_raw_len, ChunkInfo};
use super::layout::HEADER_LEN;
use super::reader::Checkpoint;
use crate::error::{Error, Result};

/// One problem found by [`Checkpoint::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointProblem {
    /// The damaged part: `chunk "w" frame 3`, `chunk "w"`, `padding`, `index`.
    pub what: String,
    /// The chunk involved, if any.
    pub chunk: Option<String>,
    /// File offset of the damaged part.
    pub offset: u64,
    /// What check failed.
    pub detail: String,
}

/// What [`Checkpoint::verify`] checked and found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Chunks checked.
    pub chunks: usize,
    /// Frames checked.
    pub frames: usize,
    /// Content bytes hashed.
    pub raw_bytes: u64,
    /// Stored bytes read.
    pub stored_bytes: u64,
    /// Everything that failed; empty when the file is intact.
    pub problems: Vec<CheckpointProblem>,
    /// Wall time taken.
    pub elapsed: Duration,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Damaged frames listed one by one in a report; the rest are counted.
const MAX_FRAME_PROBLEMS: usize = 64;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Checkpoint {
    /// Checks everything: each frame's checksum and decoding, each chunk's
    /// BLAKE3 digest, the file digest, and that padding is zero. Frames are
    /// checked in parallel on rayon's pool. Damage is reported in the
    /// returned report, not as an error.
    ///
    /// # Errors
    /// Only I/O errors reading the file.
    pub fn verify(&self) -> Result<VerifyReport> {
        let wall = Instant::now();
        let chunks = self.chunks();
        let mut problems = Vec::new();
        // Frame tables first: a chunk whose table is damaged is reported
        // once and contributes no frames.
        let mut starts = Vec::with_capacity(chunks.len() + 1);
        let mut total_frames = 0usize;
        for c in chunks {
            starts.push(total_frames);
            match self.frames_of(c) {
                Ok(frames) => total_frames += frames.len(),
                Err(Error::Corrupt { what, offset, detail, .. }) => {
                    problems.push(CheckpointProblem { what, chunk: Some(c.name.clone()), offset, detail })
                }
                Err(e) => return Err(e),
            }
        }
        starts.push(total_frames);
        let damaged = AtomicUsize::new(0);
        let frame_problems = Mutex::new(Vec::new());
        let io_error = Mutex::new(None);
        // One small slot per frame, no per-frame errors kept: a hostile file
        // with many empty frames must not make verify allocate much more
        // than the index it came from.
        let hashes: Vec<Option<FrameHash>> = (0..total_frames)
            .into_par_iter()
            .map(|g| {
                let ci = starts.partition_point(|s| *s <= g).checked_sub(1)?;
                let c = chunks.get(ci)?;
                let fi = g.checked_sub(*starts.get(ci)?)?;
                match self.check_frame(c, fi) {
                    Ok(h) => Some(h),
                    Err(Error::Corrupt { what, offset, detail, .. }) => {
                        if damaged.fetch_add(1, Ordering::Relaxed) < MAX_FRAME_PROBLEMS {
                            let p = CheckpointProblem { what, chunk: Some(c.name.clone()), offset, detail };
                            crate::util::lock(&frame_problems).push(p);
                        }
                        None
                    }
                    Err(e) => {
                        crate::util::lock(&io_error).get_or_insert(e);
                        None
                    }
                }
            })
            .collect();
        if let Some(e) = crate::util::into_inner(io_error) {
            return Err(e);
        }
        let mut listed = crate::util::into_inner(frame_problems);
        listed.sort_by_key(|p| p.offset);
        problems.extend(listed);
        let damaged = damaged.into_inner();
        if damaged > MAX_FRAME_PROBLEMS {
            problems.push(CheckpointProblem {
                what: "frames".into(),
                chunk: None,
                offset: 0,
                detail: format!("{} more damaged frames not listed", damaged - MAX_FRAME_PROBLEMS),
            });
        }
        for (ci, c) in chunks.iter().enumerate() {
            let range = starts.get(ci).copied().unwrap_or(0)..starts.get(ci + 1).copied().unwrap_or(0);
            if range.len() as u64 != c.frame_count {
                continue; // its frame table is damaged, already reported
            }
            let frame_hashes: Option<Vec<FrameHash>> = hashes.get(range).unwrap_or_default().iter().copied().collect();
            // A chunk with a damaged frame is already reported.
            let Some(frame_hashes) = frame_hashes else { continue };
            if digest::chunk_digest(&frame_hashes) != Some(c.digest) {
                problems.push(CheckpointProblem {
                    what: format!("chunk {:?}", c.name),
                    chunk: Some(c.name.clone()),
                    offset: c.data_offset,
                    detail: "content does not match its BLAKE3 digest".into(),
                });
            }
        }
        self.check_padding(&mut problems)?;
        if file_digest(self.chunks()) != self.digest() {
            problems.push(CheckpointProblem {
                what: "index".into(),
                chunk: None,
                offset: 0,
                detail: "file digest does not match the chunk digests".into(),
            });
        }
        let report = VerifyReport {
            chunks: self.chunks().len(),
            frames: total_frames,
            raw_bytes: self.chunks().iter().map(|c| c.raw_len).sum(),
            stored_bytes: self.chunks().iter().map(|c| c.stored_len).sum(),
            problems,
            elapsed: wall.elapsed(),
        };
        self.stats.wall(wall);
        Ok(report)
    }

    /// Checks one frame's checksum and decoding and hashes its content.
    fn check_frame(&self, c: &ChunkInfo, fi: usize) -> Result<FrameHash> {
        let frame_size = self.frame_size();
        let f = self.frames_of(c)?.get(fi).ok_or_else(|| self.corrupt(c, fi, c.data_offset, "no such frame".into()))?;
        let stored = self.stored_frame(c, fi, f)?;
        let only = c.frame_count == 1;
        if f.codec == codec::tag::NONE {
            let t = Instant::now();
            let h = digest::hash_frame(&stored, fi as u64, frame_size, only);
            self.stats.verified(t);
            return Ok(h);
        }
        let raw_len = frame_raw_len(c.raw_len, frame_size, fi as u64) as usize;
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.resize(raw_len, 0);
            self.decode_frame(c, fi, f, &stored, &mut buf)?;
            let t = Instant::now();
            let h = digest::hash_frame(&buf, fi as u64, frame_size, only);
            self.stats.verified(t);
            Ok(h)
        })
    }

    /// Gaps between chunk regions must be alignment padding: shorter than
    /// 64 bytes and zero.
    fn check_padding(&self, problems: &mut Vec<CheckpointProblem>) -> Result<()> {
        let mut end = HEADER_LEN as u64;
        let index_offset = self.index_offset();
        let starts = self.chunks().iter().map(|c| (c.data_offset, c.data_offset + c.stored_len));
        for (start, next_end) in starts.chain(std::iter::once((index_offset, index_offset))) {
            let gap = start.saturating_sub(end);
            if gap > 0 {
                let bytes = self
                    .source()
                    .read(end, gap.min(64) as usize)
                    .map_err(|e| Error::io("reading", self.origin(), e))?;
                if gap >= 64 || bytes.iter().any(|b| *b != 0) {
                    problems.push(CheckpointProblem {
                        what: "padding".into(),
                        chunk: None,
                        offset: end,
                        detail: format!("{gap} bytes between chunks are not zero alignment padding"),
                    });
                }
            }
            end = next_end;
        }
        Ok(())
    }
}
