//! The writer streams: writing a chunk far larger than a few frames keeps
//! live memory at a few frames per worker thread, and so does `read_to`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn::{Checkpoint, CheckpointWriter, ChunkSpec, Compression, WriterOptions};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// An endless, mildly compressible byte stream, limited with `take`.
struct Pattern(u64);

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for b in buf.iter_mut() {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (self.0 >> 60) as u8;
        }
        Ok(buf.len())
    }
}

#[test]
fn writing_and_streaming_a_large_chunk_keeps_memory_to_a_few_frames() {
    const FRAME: usize = 1 << 20;
    const TOTAL: u64 = 128 << 20;
    let threads = 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.cairn");
    for compression in [Compression::None, Compression::Zstd(1)] {
        let opts = WriterOptions::default().compression(compression).threads(Some(threads));
        let mut w = CheckpointWriter::create(&path, opts).unwrap();
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let n = w.add_reader("big", &ChunkSpec::bytes(), Pattern(7).take(TOTAL)).unwrap();
        let used = PEAK.load(Ordering::Relaxed) - base;
        assert_eq!(n, TOTAL);
        // Two windows of 2 × threads frames, plus compressed copies and
        // codec state: far below the 128 MiB written.
        let bound = 12 * threads * FRAME;
        assert!(used < bound, "{compression}: writer peak {used} bytes, bound {bound}");
        w.finish().unwrap();

        let ck = Checkpoint::open(&path).unwrap();
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let read = ck.read_to("big", &mut std::io::sink()).unwrap();
        let used = PEAK.load(Ordering::Relaxed) - base;
        assert_eq!(read, TOTAL);
        assert!(used < 4 * FRAME, "{compression}: read_to peak {used} bytes");
    }
}
