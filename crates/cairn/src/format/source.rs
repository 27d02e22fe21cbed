//! Where a reader's bytes come from: a memory map, positional reads on an
//! open file, a buffer in memory, or ranged reads of a remote object.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use memmap2::Mmap;

/// Positional reads of a checkpoint stored elsewhere (an object on a
/// storage backend), for [`Checkpoint::open_ranged`](super::Checkpoint::open_ranged).
pub trait RangeRead: Send + Sync + std::fmt::Debug {
    /// The object's length in bytes.
    fn len(&self) -> u64;

    /// Whether the object is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exactly `len` bytes from `offset`, which the caller keeps within
    /// [`len`](Self::len).
    ///
    /// # Errors
    /// The transport's error.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// Whether reads are served locally (memory maps), so that reading
    /// ahead in large spans buys nothing. Default = `false`.
    fn is_local(&self) -> bool {
        false
    }

    /// The bytes from `offset` to the end of the stretch that holds them,
    /// borrowed (a memory map), where the source has them so; `None`
    /// otherwise. Default = `None`.
    fn contiguous(&self, offset: u64) -> Option<&[u8]> {
        let _ = offset;
        None
    }

    /// Bytes `offset..offset + len` as one borrowed slice, where the
    /// source can give them so (memory maps), for zero-copy tensor views;
    /// `None` otherwise. Default = the stretch
    /// [`contiguous`](Self::contiguous) gives, where it holds them all.
    fn view(&self, offset: u64, len: usize) -> Option<&[u8]> {
        self.contiguous(offset).and_then(|s| s.get(..len))
    }
}

#[derive(Debug)]
pub(crate) enum Source {
    Map(Mmap),
    File { file: File, len: u64 },
    Bytes(Vec<u8>),
    Ranged(Box<dyn RangeRead>, Prefetched),
}

/// The longest span a ranged source fetches in one read ahead of a chunk's
/// frames.
pub(crate) const PREFETCH_MAX: u64 = 64 << 20;

/// One span of a ranged source read ahead, so that a chunk's frames cost
/// one round trip instead of one each.
#[derive(Debug, Default)]
pub(crate) struct Prefetched(std::sync::Mutex<Option<(u64, std::sync::Arc<Vec<u8>>)>>);

impl Prefetched {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, std::sync::Arc<Vec<u8>>)>> {
        crate::util::lock(&self.0)
    }

    /// Bytes `offset..offset+len` if the span holds them.
    fn get(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let span = self.lock().clone()?;
        let start = usize::try_from(offset.checked_sub(span.0)?).ok()?;
        span.1.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
    }
}

fn out_of_range(offset: u64, len: usize, total: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("range {offset}+{len} is past the end of the {total}-byte file"),
    )
}

impl Source {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Source::Map(m) => m.len() as u64,
            Source::File { len, .. } => *len,
            Source::Bytes(b) => b.len() as u64,
            Source::Ranged(r, _) => r.len(),
        }
    }

    /// Whether bytes come by ranged reads of a remote object (each read a
    /// round trip, so fewer, larger reads pay).
    pub(crate) fn is_ranged(&self) -> bool {
        matches!(self, Source::Ranged(r, _) if !r.is_local())
    }

    /// Borrowed bytes from `offset` to the end of the stretch holding them,
    /// where the source has such stretches (a ranged source served from
    /// maps).
    pub(crate) fn contiguous(&self, offset: u64) -> Option<&[u8]> {
        match self {
            Source::Ranged(r, _) => r.contiguous(offset),
            _ => None,
        }
    }

    /// Bytes `offset..offset + len` borrowed, where the source is mapped or
    /// in memory, or a ranged source can give them as one slice.
    pub(crate) fn view(&self, offset: u64, len: usize) -> Option<&[u8]> {
        match self {
            Source::Ranged(r, _) => r.view(offset, len),
            _ => {
                let start = usize::try_from(offset).ok()?;
                self.slice()?.get(start..start.checked_add(len)?)
            }
        }
    }

    /// The whole file as one slice, when it is mapped or in memory.
    pub(crate) fn slice(&self) -> Option<&[u8]> {
        match self {
            Source::Map(m) => Some(m),
            Source::Bytes(b) => Some(b),
            Source::File { .. } | Source::Ranged(..) => None,
        }
    }

    /// For a ranged source, reads `span` in one go so that reads inside it
    /// are served from memory, until [`forget`](Self::forget). Spans over
    /// [`PREFETCH_MAX`] or past the end are not read ahead. Other sources
    /// need nothing.
    pub(crate) fn prefetch(&self, span: std::ops::Range<u64>) -> io::Result<()> {
        let (r, ahead) = match self {
            Source::Ranged(r, _) if r.is_local() => return Ok(()),
            Source::Ranged(r, ahead) => (r, ahead),
            Source::Map(_) => {
                // The start only: readers advise the rest as they go.
                self.will_need(span.start..span.end.min(span.start.saturating_add(PREFETCH_MAX)));
                return Ok(());
            }
            Source::File { .. } | Source::Bytes(_) => return Ok(()),
        };
        let Some(len) = span.end.checked_sub(span.start).filter(|l| *l > 0 && *l <= PREFETCH_MAX) else {
            return Ok(());
        };
        if span.end > r.len() {
            return Ok(());
        }
        let buf = r.read_at(span.start, usize::try_from(len).map_err(io::Error::other)?)?;
        *ahead.lock() = Some((span.start, std::sync::Arc::new(buf)));
        Ok(())
    }

    /// For a mapped file, asks the kernel to start reading `span` in now
    /// (`madvise(MADV_WILLNEED)`), so pages not yet in memory arrive while
    /// earlier ones are worked on instead of one fault at a time. Advice
    /// only: nothing for other sources, and a refusal changes nothing.
    pub(crate) fn will_need(&self, span: std::ops::Range<u64>) {
        let Source::Map(m) = self else { return };
        let len = m.len() as u64;
        let (start, end) = (span.start.min(len), span.end.min(len));
        if let (Ok(start), Ok(n)) = (usize::try_from(start), usize::try_from(end.saturating_sub(start))) {
            if n > 0 {
                let _ = m.advise_range(memmap2::Advice::WillNeed, start, n);
            }
        }
    }

    /// Drops what [`prefetch`](Self::prefetch) read.
    pub(crate) fn forget(&self) {
        if let Source::Ranged(_, ahead) = self {
            *ahead.lock() = None;
        }
    }

    /// Bytes `offset..offset+len`: borrowed when mapped, read otherwise.
    pub(crate) fn read(&self, offset: u64, len: usize) -> io::Result<Cow<'_, [u8]>> {
        let total = self.len();
        let end = offset.checked_add(len as u64).filter(|e| *e <= total);
        if end.is_none() {
            return Err(out_of_range(offset, len, total));
        }
        if let Some(all) = self.slice() {
            let start = usize::try_from(offset).map_err(io::Error::other)?;
            return all.get(start..start + len).map(Cow::Borrowed).ok_or_else(|| out_of_range(offset, len, total));
        }
        match self {
            Source::File { file, .. } => {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset)?;
                Ok(Cow::Owned(buf))
            }
            Source::Ranged(r, ahead) => {
                if let Some(mapped) = r.contiguous(offset).and_then(|s| s.get(..len)) {
                    return Ok(Cow::Borrowed(mapped));
                }
                if let Some(buf) = ahead.get(offset, len) {
                    return Ok(Cow::Owned(buf));
                }
                let buf = r.read_at(offset, len)?;
                if buf.len() != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("asked for {len} bytes at {offset}, got {}", buf.len()),
                    ));
                }
                Ok(Cow::Owned(buf))
            }
            _ => Err(out_of_range(offset, len, total)),
        }
    }
}
