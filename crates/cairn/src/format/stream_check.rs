//! Checks that a stream of bytes is the file a [`Checkpoint`] was opened
//! from and verified: part by part (header, padding, each frame, index,
//! trailer) against the checksums verification proved, and to the byte
//! for length. A copy made after `verify` (a store saving a file) is then
//! known to be the bytes that were checked, even if the file changed in
//! between, without hashing the whole file a second time during `verify`.

use xxhash_rust::xxh3::Xxh3;

use super::layout::{HEADER_LEN, TRAILER_LEN};
use super::reader::Checkpoint;
use crate::error::{Error, Result};

/// What one part of the file must hold.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Bytes whose xxh3-64 is this.
    Xxh3(u64),
    /// Zero bytes (alignment padding).
    Zero,
}

/// Which part a region is, for messages.
#[derive(Debug, Clone, Copy)]
enum Part {
    Header,
    Padding,
    Frame { chunk: usize, frame: usize },
    Index,
    Trailer,
}

#[derive(Debug, Clone, Copy)]
struct Region {
    start: u64,
    end: u64,
    expect: Expect,
    part: Part,
}

/// Where the walk over the file's parts is.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Header,
    Chunk { chunk: usize, frame: usize },
    Index,
    Trailer,
    Done,
}

/// Follows a stream of the file from offset 0; see the module docs.
pub(crate) struct StreamCheck<'a> {
    ck: &'a Checkpoint,
    stage: Stage,
    /// Bytes of the stream seen so far.
    pos: u64,
    /// Where the last region handed out ends.
    covered: u64,
    current: Option<Region>,
    hasher: Box<Xxh3>,
    zeros: bool,
}

impl<'a> StreamCheck<'a> {
    /// A check of a stream of `ck`'s file, which must have verified clean.
    pub(crate) fn new(ck: &'a Checkpoint) -> Self {
        StreamCheck {
            ck,
            stage: Stage::Header,
            pos: 0,
            covered: 0,
            current: None,
            hasher: Box::new(Xxh3::new()),
            zeros: true,
        }
    }

    /// Bytes of the stream seen so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.pos
    }

    fn changed(&self, what: String, offset: u64, detail: String) -> Error {
        Error::Corrupt { file: self.ck.origin().to_string(), what, offset, detail }
    }

    /// The part `start..end`, or the padding up to `start` first. Parts of a
    /// verified file follow one another; one that starts inside the part
    /// before it cannot be checked on its own and is refused.
    fn region(&mut self, start: u64, end: u64, expect: Expect, part: Part) -> Result<Option<Region>> {
        if start < self.covered {
            return Err(self.changed(self.what(part), start, "overlaps the part before it".into()));
        }
        if start > self.covered {
            let pad = Region { start: self.covered, end: start, expect: Expect::Zero, part: Part::Padding };
            self.covered = start;
            return Ok(Some(pad));
        }
        self.covered = end;
        self.advance();
        Ok(Some(Region { start, end, expect, part }))
    }

    /// Moves past the part just handed out.
    fn advance(&mut self) {
        self.stage = match self.stage {
            Stage::Header => Stage::Chunk { chunk: 0, frame: 0 },
            Stage::Chunk { chunk, frame } => Stage::Chunk { chunk, frame: frame + 1 },
            Stage::Index => Stage::Trailer,
            Stage::Trailer | Stage::Done => Stage::Done,
        };
    }

    /// The next part of the file, or `None` past the trailer.
    fn next_region(&mut self) -> Result<Option<Region>> {
        let ck = self.ck;
        loop {
            return match self.stage {
                Stage::Header => self.region(0, HEADER_LEN as u64, Expect::Xxh3(ck.header_xxh3), Part::Header),
                Stage::Chunk { chunk, frame } => {
                    let Some(c) = ck.chunks().get(chunk) else {
                        self.stage = Stage::Index;
                        continue;
                    };
                    let Some(f) = ck.frames_of(c)?.get(frame) else {
                        self.stage = Stage::Chunk { chunk: chunk + 1, frame: 0 };
                        continue;
                    };
                    let end = f.offset.saturating_add(u64::from(f.stored_len));
                    self.region(f.offset, end, Expect::Xxh3(f.checksum), Part::Frame { chunk, frame })
                }
                Stage::Index => {
                    let t = ck.trailer();
                    let end = t.index_offset.saturating_add(t.index_len);
                    self.region(t.index_offset, end, Expect::Xxh3(t.index_checksum), Part::Index)
                }
                Stage::Trailer => {
                    let start = ck.file_len().saturating_sub(TRAILER_LEN as u64);
                    self.region(start, ck.file_len(), Expect::Xxh3(ck.trailer_xxh3), Part::Trailer)
                }
                Stage::Done => Ok(None),
            };
        }
    }

    fn what(&self, part: Part) -> String {
        match part {
            Part::Header => "header".into(),
            Part::Padding => "padding".into(),
            Part::Frame { chunk, frame } => {
                let name = self.ck.chunks().get(chunk).map_or("?", |c| c.name.as_str());
                format!("chunk {name:?} frame {frame}")
            }
            Part::Index => "index".into(),
            Part::Trailer => "trailer".into(),
        }
    }

    /// Checks the region that just ended.
    fn close(&mut self, r: Region) -> Result<()> {
        let ok = match r.expect {
            Expect::Xxh3(sum) => self.hasher.digest() == sum,
            Expect::Zero => self.zeros,
        };
        self.hasher.reset();
        self.zeros = true;
        if ok {
            return Ok(());
        }
        let detail = "changed after it was verified: these bytes are not the ones that were checked".to_string();
        Err(self.changed(self.what(r.part), r.start, detail))
    }

    /// Feeds the next bytes of the stream.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the part once a part's bytes differ from
    /// the verified ones, or when the stream runs past the verified length.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let r = match self.current {
                Some(r) => r,
                None => match self.next_region()? {
                    Some(r) => {
                        self.current = Some(r);
                        r
                    }
                    None => {
                        let len = self.ck.file_len();
                        let detail = format!("changed after it was verified: longer than the {len} bytes checked");
                        return Err(self.changed("file".into(), len, detail));
                    }
                },
            };
            let take = usize::try_from(r.end.saturating_sub(self.pos)).unwrap_or(usize::MAX).min(bytes.len());
            let Some((head, rest)) = bytes.split_at_checked(take) else { break };
            match r.expect {
                Expect::Xxh3(_) => self.hasher.update(head),
                Expect::Zero => self.zeros &= head.iter().all(|b| *b == 0),
            }
            self.pos += take as u64;
            bytes = rest;
            if self.pos >= r.end {
                self.current = None;
                self.close(r)?;
            }
        }
        Ok(())
    }

    /// Ends the stream.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the stream ended before the verified length.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if self.current.is_none() && self.next_region()?.is_none() {
            return Ok(());
        }
        let (pos, len) = (self.pos, self.ck.file_len());
        let detail = format!("changed after it was verified: ended after {pos} of the {len} bytes checked");
        Err(self.changed("file".into(), pos, detail))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::format::{ChunkSpec, Compression, WriterOptions};
    use crate::CheckpointWriter;

    /// Chunks of every shape: raw and compressed frames, a short last
    /// frame, an empty chunk and padding between chunks.
    fn sample() -> Vec<u8> {
        let mut w = CheckpointWriter::in_memory(WriterOptions::default().frame_size(4096)).unwrap();
        w.add_bytes("raw", &(0..9000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
        w.add_chunk("empty", &ChunkSpec::bytes(), &[]).unwrap();
        w.add_chunk("lz4", &ChunkSpec::bytes().compression(Compression::Lz4), &[3u8; 5000]).unwrap();
        w.add_tensor("t", &[3], &[1.0f32, 2.0, 3.0]).unwrap();
        w.finish().unwrap()
    }

    /// Streams `bytes` through a check of `ck` in pieces of `step` bytes.
    fn stream(ck: &Checkpoint, bytes: &[u8], step: usize) -> Result<u64> {
        let mut check = StreamCheck::new(ck);
        for piece in bytes.chunks(step) {
            check.update(piece)?;
        }
        check.finish()?;
        Ok(check.len())
    }

    #[test]
    fn the_verified_bytes_pass_in_pieces_of_any_size() {
        let bytes = sample();
        let ck = Checkpoint::from_bytes(bytes.clone()).unwrap();
        assert!(ck.verify().unwrap().is_ok());
        for step in [1, 7, 64, 4096, bytes.len()] {
            assert_eq!(stream(&ck, &bytes, step).unwrap(), bytes.len() as u64, "pieces of {step}");
        }
    }

    #[test]
    fn every_changed_byte_and_every_other_length_is_caught() {
        let bytes = sample();
        let ck = Checkpoint::from_bytes(bytes.clone()).unwrap();
        let mut padding = 0;
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x20;
            let e = stream(&ck, &changed, 1000).expect_err("a changed byte passed");
            let Error::Corrupt { what, offset, .. } = &e else { panic!("{e:?}") };
            assert!(*offset <= at as u64, "byte {at}: {e}");
            padding += usize::from(what == "padding");
        }
        assert!(padding > 0, "the sample has padding between chunks");
        for len in [0, 1, 63, 64, bytes.len() - 64, bytes.len() - 1] {
            let e = stream(&ck, &bytes[..len], 1000).expect_err("a short stream passed");
            assert!(matches!(&e, Error::Corrupt { .. }), "{len}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let e = stream(&ck, &longer, 1000).expect_err("a longer stream passed");
        assert!(matches!(&e, Error::Corrupt { what, .. } if what == "file"), "{e}");
    }
}
