//! One contiguous, read-only stretch of memory assembled from several
//! files: the frame objects of a raw chunk mapped back to back into one
//! reserved range of addresses (`MAP_FIXED` over an anonymous
//! reservation), and the parts that cannot be mapped there (bytes at an
//! offset that is not a page boundary, XOR pieces) copied in. So a raw
//! tensor whose frames are shared frame objects is still one slice over
//! the files (docs/STORE.md, "Reading").

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// One part of a view, in order: `len` bytes mapped from `file` at
/// `offset`, or, where `file` is `None` or the part cannot be mapped at
/// its place, filled by the caller.
pub(crate) struct Part<'a> {
    pub len: usize,
    pub file: Option<(&'a File, u64)>,
}

/// The mapped stretch; unmapped when dropped.
pub(crate) struct View {
    ptr: NonNull<u8>,
    len: usize,
    reserved: usize,
}

// SAFETY: the memory is read-only once built and owned by the view alone.
unsafe impl Send for View {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for View {}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("len", &self.len).finish()
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|n| n.is_power_of_two()).unwrap_or(4096)
}

impl View {
    /// Builds a view of the parts concatenated. A part with a file is
    /// mapped where its place in the view and its offset in the file are
    /// both page boundaries and it ends on one (or is the last part);
    /// every other part is filled by `fill(offset in the view, bytes)`.
    ///
    /// # Errors
    /// The system's error for a failed map, or `fill`'s.
    pub(crate) fn build(parts: &[Part<'_>], fill: impl Fn(usize, &mut [u8]) -> io::Result<()>) -> io::Result<View> {
        let len = parts.iter().try_fold(0usize, |a, p| a.checked_add(p.len));
        let len = len.ok_or_else(|| io::Error::other("view too large"))?;
        let page = page_size();
        let reserved = len.max(1).div_ceil(page).checked_mul(page).ok_or_else(|| io::Error::other("view too large"))?;
        // SAFETY: a fresh anonymous private mapping at an address of the
        // kernel's choice; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave a null address"))?;
        // From here the view owns the reservation: an error unmaps it.
        let view = View { ptr, len, reserved };
        let mut at = 0usize;
        for (i, p) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let aligned = at.is_multiple_of(page) && (p.len.is_multiple_of(page) || last) && p.len > 0;
            let mapped = match p.file {
                Some((file, offset)) if aligned && offset.is_multiple_of(page as u64) => {
                    view.map_file(at, p.len, file, offset)
                }
                _ => false,
            };
            if !mapped {
                // SAFETY: `at..at + p.len` lies within the reservation,
                // which is still writable and not yet handed out.
                let part = unsafe { std::slice::from_raw_parts_mut(view.ptr.as_ptr().add(at), p.len) };
                fill(at, part)?;
            }
            at += p.len;
        }
        // SAFETY: the whole reservation is ours; from now on it is only read.
        if unsafe { libc::mprotect(view.ptr.as_ptr().cast(), reserved, libc::PROT_READ) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(view)
    }

    /// Maps `len` bytes of `file` from `offset` over the view's bytes from
    /// `at` (a page boundary). `false` where the file is shorter or the
    /// map fails, so the caller copies instead.
    fn map_file(&self, at: usize, len: usize, file: &File, offset: u64) -> bool {
        let Ok(file_len) = file.metadata().map(|m| m.len()) else { return false };
        if offset.checked_add(len as u64).is_none_or(|end| end > file_len) {
            return false;
        }
        let Ok(off) = libc::off_t::try_from(offset) else { return false };
        // SAFETY: the target range lies within the view's own reservation
        // (MAP_FIXED replaces only those pages); the file is a store object,
        // published by rename or created once and never changed in place.
        let got = unsafe {
            libc::mmap(
                self.ptr.as_ptr().add(at).cast(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                off,
            )
        };
        got != libc::MAP_FAILED
    }

    /// The view's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` are mapped read-only for as long
        // as the view lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the reservation made in `build` (with the
        // files mapped over parts of it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.reserved) };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(bytes).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn maps_aligned_parts_and_fills_the_rest() {
        let page = page_size();
        let a: Vec<u8> = (0..2 * page).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..page).map(|i| (i % 13) as u8).collect();
        let (_ta, fa) = file_of(&a);
        let (_tb, fb) = file_of(&b);
        let parts = [
            Part { len: a.len(), file: Some((&fa, 0)) },
            Part { len: 100, file: None },
            // Unaligned now: filled, not mapped.
            Part { len: b.len(), file: Some((&fb, 0)) },
        ];
        let filled = std::sync::Mutex::new(Vec::new());
        let view = View::build(&parts, |at, out| {
            filled.lock().unwrap().push(at);
            if at == a.len() {
                out.fill(7);
            } else {
                out.copy_from_slice(&b);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(*filled.lock().unwrap(), vec![a.len(), a.len() + 100]);
        let s = view.as_slice();
        assert_eq!(s.len(), a.len() + 100 + b.len());
        assert_eq!(&s[..a.len()], &a[..]);
        assert!(s[a.len()..a.len() + 100].iter().all(|&x| x == 7));
        assert_eq!(&s[a.len() + 100..], &b[..]);
    }

    #[test]
    fn a_short_file_is_filled_instead() {
        let page = page_size();
        let (_t, f) = file_of(&vec![1u8; page]);
        let parts = [Part { len: 2 * page, file: Some((&f, 0)) }];
        let view = View::build(&parts, |_, out| {
            out.fill(9);
            Ok(())
        })
        .unwrap();
        assert!(view.as_slice().iter().all(|&x| x == 9));
    }
}
