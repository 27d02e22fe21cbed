//! Reading a segment front to back through a window of bounded size, and
//! the two ways the log's one scanner looks at the bytes: decoding the frame
//! at an offset, and searching forward for the next valid record after
//! damage. Memory stays at the window whatever the segment's length: a
//! frame longer than the window has its checksum computed piece by piece.

use std::path::{Path, PathBuf};

use super::record::{self, HeaderCheck, RecordType, ALIGN, HEADER_LEN};
use crate::error::{Error, Result};
use crate::io::{Fs, FsFile, OpenMode};

/// Bytes read from a segment at a time.
pub(crate) const BLOCK: usize = 1 << 20;

/// A segment file read through a sliding window.
#[derive(Debug)]
pub(crate) struct Window {
    file: Box<dyn FsFile>,
    path: PathBuf,
    /// Where reading stops: the file's length, or the end of the records a
    /// reader may read.
    end: u64,
    /// The most a single [`get`](Self::get) hands out; frames up to this
    /// are checked from one slice.
    cap: usize,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
}

impl Window {
    /// Opens `path` for reading up to its current length.
    pub fn open(fs: &dyn Fs, path: &Path, cap: usize) -> Result<Self> {
        let file = fs.open(path, OpenMode::Read).map_err(|e| Error::io("opening log segment", path, e))?;
        let end = file.len().map_err(|e| Error::io("reading the length of", path, e))?;
        Ok(Self::over(file, path.to_path_buf(), end, cap))
    }

    /// A window over `file` that reads nothing at or past `end`.
    pub fn over(file: Box<dyn FsFile>, path: PathBuf, end: u64, cap: usize) -> Self {
        Window { file, path, end, cap: cap.max(BLOCK), base: 0, buf: Vec::new() }
    }

    /// Where reading stops.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The longest slice [`get`](Self::get) returns.
    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `n` bytes at `at` (fewer at the end; `n` is capped at
    /// [`cap`](Self::cap)), read ahead a block at a time.
    pub fn get(&mut self, at: u64, n: usize) -> Result<&[u8]> {
        let n = n.min(self.cap);
        let want_end = at.saturating_add(n as u64).min(self.end);
        let have_end = self.base + self.buf.len() as u64;
        if at < self.base || want_end > have_end {
            let len = usize::try_from(self.end.saturating_sub(at)).unwrap_or(usize::MAX).min(n.max(BLOCK));
            // Grown once, then reused: the read overwrites it.
            if self.buf.len() < len {
                self.buf.resize(len, 0);
            }
            self.buf.truncate(len);
            self.base = at;
            self.file.read_exact_at(&mut self.buf, at).map_err(|e| Error::io("reading log segment", &self.path, e))?;
        }
        let start = usize::try_from(at.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let stop = usize::try_from(want_end.saturating_sub(self.base)).unwrap_or(usize::MAX);
        Ok(self.buf.get(start..stop.max(start)).unwrap_or_default())
    }
}

/// A valid frame found at an offset; its payload stays in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameAt {
    pub lsn: u64,
    pub kind: RecordType,
    /// The highest LSN the frame says was durable.
    pub durable: u64,
    pub payload_len: usize,
    /// Bytes the frame takes, padding included.
    pub len: u64,
}

impl FrameAt {
    /// The highest LSN this frame vouches was durable: a mark's own LSN, a
    /// record's durable distance.
    pub fn claim(&self) -> u64 {
        match self.kind {
            RecordType::DurableMark => self.lsn,
            RecordType::Data => self.durable,
        }
    }
}

/// What lies at an offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    Frame(FrameAt),
    /// Zeros (or nothing) where a header would start.
    End,
    Invalid(&'static str),
}

/// Decodes the frame at `at`, checking its checksum and padding.
pub(crate) fn decode_at(w: &mut Window, at: u64) -> Result<At> {
    let h = match record::check_header(w.get(at, HEADER_LEN)?) {
        HeaderCheck::Header(h) => h,
        HeaderCheck::End => return Ok(At::End),
        HeaderCheck::Invalid(why) => return Ok(At::Invalid(why)),
    };
    let flen = h.frame_len() as u64;
    if at.checked_add(flen).is_none_or(|end| end > w.end()) {
        return Ok(At::Invalid("record runs past the end of the segment"));
    }
    let frame = FrameAt { lsn: h.lsn, kind: h.kind, durable: h.durable(), payload_len: h.len, len: flen };
    if h.frame_len() <= w.cap() {
        return Ok(match record::decode(w.get(at, h.frame_len())?) {
            record::Decoded::Record(_) => At::Frame(frame),
            record::Decoded::End => At::End,
            record::Decoded::Invalid(why) => At::Invalid(why),
        });
    }
    // Longer than the window: the checksum is computed piece by piece.
    let mut crc = h.crc_start();
    let mut pos = at + HEADER_LEN as u64;
    let payload_end = pos + h.len as u64;
    while pos < payload_end {
        let n = usize::try_from(payload_end - pos).unwrap_or(usize::MAX).min(w.cap());
        let piece = w.get(pos, n)?;
        if piece.is_empty() {
            return Ok(At::Invalid("record runs past the end of the segment"));
        }
        crc = crc32c::crc32c_append(crc, piece);
        pos += piece.len() as u64;
    }
    if crc != h.crc {
        return Ok(At::Invalid("record checksum mismatch"));
    }
    let pad = usize::try_from(at + flen - payload_end).unwrap_or(0);
    if let Some(why) = record::check_padding(w.get(payload_end, pad)?) {
        return Ok(At::Invalid(why));
    }
    Ok(At::Frame(frame))
}

/// What a search past damage found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Resync {
    /// The first valid data record with an LSN of at least the minimum:
    /// its offset and LSN.
    pub data: Option<(u64, u64)>,
    /// The highest LSN a durable mark met on the way vouches for.
    pub evidence: u64,
    /// Whether any valid frame (record or mark) was found.
    pub frames: bool,
    /// Whether any byte searched was not zero.
    pub nonzero: bool,
}

/// Searches from `from` (rounded up to a record boundary) for the first
/// valid data record with an LSN of at least `min`, trying every aligned
/// offset. Durable marks met on the way (for LSN `min - 1` or later) are
/// stepped over whole and counted as evidence; runs of zeros are skipped a
/// block at a time. Each byte is looked at a bounded number of times, so
/// the cost is linear in the distance searched.
pub(crate) fn resync(w: &mut Window, from: u64, min: u64) -> Result<Resync> {
    let mut out = Resync::default();
    let mut p = from.next_multiple_of(ALIGN as u64);
    while p < w.end() {
        let head = w.get(p, HEADER_LEN)?;
        if head.iter().all(|b| *b == 0) {
            // No header can start in a zero run before its last 23 bytes.
            let block = w.get(p, BLOCK)?;
            let Some(q) = first_nonzero(block) else {
                p += block.len() as u64;
                if block.len() < BLOCK {
                    break;
                }
                continue;
            };
            out.nonzero = true;
            let first = (p + q as u64).saturating_sub(HEADER_LEN as u64 - 1) / ALIGN as u64 * ALIGN as u64;
            p = first.max(p + ALIGN as u64);
            continue;
        }
        out.nonzero = true;
        // A mark names the record before it, so it may be one below `min`.
        if record::peek_lsn(head).is_none_or(|lsn| lsn.saturating_add(1) < min) {
            p += ALIGN as u64;
            continue;
        }
        match decode_at(w, p)? {
            At::Frame(f) if f.kind == RecordType::Data && f.lsn >= min => {
                out.frames = true;
                out.data = Some((p, f.lsn));
                return Ok(out);
            }
            At::Frame(f) if f.kind == RecordType::DurableMark => {
                out.frames = true;
                out.evidence = out.evidence.max(f.lsn);
                p += f.len;
            }
            _ => p += ALIGN as u64,
        }
    }
    Ok(out)
}

/// The index of the first byte that is not zero. Zero runs are compared a
/// page at a time against zeros (a `memcmp`), which keeps skipping the
/// empty space of a sparse or preallocated segment cheap.
fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    const PAGE: usize = 4096;
    static ZEROS: [u8; PAGE] = [0; PAGE];
    let mut start = 0;
    for page in bytes.chunks(PAGE) {
        if page != ZEROS.get(..page.len()).unwrap_or_default() {
            return page.iter().position(|b| *b != 0).map(|i| start + i);
        }
        start += page.len();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::io::{Fs, SimFs};

    fn window(bytes: &[u8], cap: usize) -> Window {
        let sim = SimFs::new();
        sim.put_durable(Path::new("/s"), bytes).unwrap();
        let fs: &dyn Fs = &sim;
        Window::open(fs, Path::new("/s"), cap).unwrap()
    }

    fn frames(lsns: &[u64], payload: usize) -> Vec<u8> {
        let mut out = vec![0u8; 32];
        for &lsn in lsns {
            record::encode(&mut out, lsn, lsn - 1, &vec![7u8; payload]);
        }
        out
    }

    #[test]
    fn windows_hand_out_what_is_asked_and_stop_at_the_end() {
        let bytes: Vec<u8> = (0..3 * BLOCK + 5).map(|i| (i % 251) as u8).collect();
        let mut w = window(&bytes, BLOCK);
        assert_eq!(w.get(10, 4).unwrap(), &bytes[10..14]);
        assert_eq!(w.get(2 * BLOCK as u64 + 3, 100).unwrap(), &bytes[2 * BLOCK + 3..2 * BLOCK + 103]);
        assert_eq!(w.get(5, 3).unwrap(), &bytes[5..8], "going back re-reads");
        assert_eq!(w.get(3 * BLOCK as u64, 100).unwrap(), &bytes[3 * BLOCK..]);
        assert!(w.get(4 * BLOCK as u64, 10).unwrap().is_empty());
    }

    #[test]
    fn frames_longer_than_the_window_are_checked_in_pieces() {
        let big = 3 * BLOCK + 17;
        let bytes = frames(&[1], big);
        let mut w = window(&bytes, BLOCK);
        let At::Frame(f) = decode_at(&mut w, 32).unwrap() else { panic!("not a frame") };
        assert_eq!((f.lsn, f.payload_len), (1, big));
        for at in [32 + 24 + 5, 32 + 24 + 2 * BLOCK, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            let mut w = window(&bad, BLOCK);
            assert!(matches!(decode_at(&mut w, 32).unwrap(), At::Invalid(_)), "flip at {at} accepted");
        }
    }

    #[test]
    fn resync_finds_the_next_record_past_damage_and_zeros() {
        let mut bytes = frames(&[1, 2, 3], 100);
        let second = 32 + record::frame_len(100);
        bytes[second + 30] ^= 1;
        let mut w = window(&bytes, BLOCK);
        let r = resync(&mut w, second as u64 + 8, 2).unwrap();
        assert_eq!(r.data, Some((32 + 2 * record::frame_len(100) as u64, 3)));

        let mut zeros = vec![0u8; 3 * BLOCK];
        zeros.extend_from_slice(&frames(&[9], 10)[32..]);
        let mut w = window(&zeros, BLOCK);
        let r = resync(&mut w, 0, 5).unwrap();
        assert_eq!(r.data, Some((3 * BLOCK as u64, 9)));
        let r = resync(&mut w, 0, 10).unwrap();
        assert_eq!((r.data, r.frames, r.nonzero), (None, false, true));
        let mut w = window(&vec![0u8; 2 * BLOCK + 8], BLOCK);
        assert_eq!(resync(&mut w, 0, 1).unwrap(), Resync::default());
    }
}
