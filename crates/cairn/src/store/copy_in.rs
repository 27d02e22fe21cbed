//! A verified checkpoint's bytes copied into a store entry: what
//! [`Store::save_file`](super::Store::save_file) and
//! [`Store::save_bytes`](super::Store::save_bytes) store. The bytes go in
//! file order through the entry's sink, each checked against what
//! verification proved, and each frame handed over as a frame, so the
//! store shares it with the entries that hold it already
//! (docs/STORE.md, "Shared frames") exactly as for a checkpoint a save writes.

use std::io;

use super::sink::{EntrySink, SHARE_MIN};
use crate::error::{Error, Result};
use crate::format::{codec_tag, Checkpoint, FrameAt, Sink, StreamCheck};

/// Bytes between frames are copied this many at a time.
const BLOCK: usize = 1 << 20;

/// One frame large enough to share: where it is and what it is.
struct Frame {
    offset: u64,
    len: usize,
    chunk: usize,
    index: u64,
    raw: bool,
}

/// Copies `ck`'s file (verified clean) into `sink`, reading it with
/// `read_at(offset, buf)`, which fills `buf` from `offset` and returns how
/// many bytes it read (0 at the end). Memory: a block, or one frame.
///
/// # Errors
/// [`Error::Corrupt`] naming the part whose bytes differ from the verified
/// ones (the file changed), or a file shorter or longer than verified;
/// `read_at`'s errors; the sink's.
pub(crate) fn copy_verified(
    ck: &Checkpoint,
    origin: &str,
    mut read_at: impl FnMut(u64, &mut [u8]) -> io::Result<usize>,
    sink: &mut EntrySink,
) -> Result<()> {
    let mut frames = Vec::new();
    for (chunk, c) in ck.chunks().iter().enumerate() {
        for (index, f) in ck.frames_of(c)?.iter().enumerate() {
            let len = f.stored_len as usize;
            if len >= SHARE_MIN {
                frames.push(Frame {
                    offset: f.offset,
                    len,
                    chunk,
                    index: index as u64,
                    raw: f.codec == codec_tag::NONE,
                });
            }
        }
    }
    frames.sort_by_key(|f| f.offset);
    let mut check = StreamCheck::new(ck);
    let mut buf = Vec::new();
    let mut pos = 0u64;
    let sink_err = |e: io::Error| Error::Backend { op: "uploading", what: origin.to_string(), source: Box::new(e) };
    let mut fill = |pos: u64, buf: &mut [u8], check: &mut StreamCheck<'_>| -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let rest = buf.get_mut(got..).unwrap_or_default();
            let n = read_at(pos + got as u64, rest).map_err(|e| Error::io("reading", origin, e))?;
            if n == 0 {
                let detail = format!("changed after it was verified: it ends at {}", pos + got as u64);
                return Err(Error::Corrupt { file: origin.into(), what: "file".into(), offset: pos, detail });
            }
            got += n;
        }
        check.update(buf)
    };
    let file_len = ck.file_len();
    for f in frames.iter().map(Some).chain(std::iter::once(None)) {
        // The bytes before the frame (or, last, up to the end).
        let upto = f.map_or(file_len, |f| f.offset);
        while pos < upto {
            let n = usize::try_from(upto - pos).unwrap_or(BLOCK).min(BLOCK);
            buf.resize(n, 0);
            fill(pos, &mut buf, &mut check)?;
            sink.write_all(&buf).map_err(sink_err)?;
            pos += n as u64;
        }
        let Some(f) = f else { break };
        if f.offset != pos {
            let detail = "overlaps the part before it".to_string();
            return Err(Error::Corrupt { file: origin.into(), what: "frame".into(), offset: f.offset, detail });
        }
        buf.resize(f.len, 0);
        fill(pos, &mut buf, &mut check)?;
        let name = ck.chunks().get(f.chunk).map_or("", |c| c.name.as_str());
        sink.write_frame(&buf, &FrameAt { chunk: name, index: f.index, raw: f.raw }).map_err(sink_err)?;
        pos += f.len as u64;
    }
    // Nothing past the verified length.
    let mut probe = [0u8; 1];
    if read_at(file_len, &mut probe).map_err(|e| Error::io("reading", origin, e))? != 0 {
        let detail = format!("changed after it was verified: longer than the {file_len} bytes checked");
        return Err(Error::Corrupt { file: origin.into(), what: "file".into(), offset: file_len, detail });
    }
    check.finish()
}
