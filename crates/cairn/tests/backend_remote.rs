//! Checkpoints read from a backend through ranged gets: reading one chunk
//! of a large checkpoint transfers little more than that chunk, everything
//! reads back and verifies, and damage in the object is reported.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

#[path = "backend/s3_env.rs"]
mod s3_env;

use std::sync::Arc;

use bytes::Bytes;
use cairn::backend::{open_checkpoint, Backend, CountingBackend, LocalBackend, MemoryBackend, PutMode};
use cairn::{Checkpoint, CheckpointWriter, WriterOptions};

const CHUNKS: usize = 16;
const CHUNK: usize = 1 << 20;

fn chunk(i: usize) -> Vec<u8> {
    (0..CHUNK).map(|j| (j as u64).wrapping_mul(2_654_435_761).wrapping_add(i as u64 * 97) as u8).collect()
}

/// 16 chunks of 1 MiB, uncompressed, in 256 KiB frames.
fn checkpoint() -> Vec<u8> {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default().frame_size(256 << 10)).unwrap();
    for i in 0..CHUNKS {
        w.add_bytes(&format!("c{i:02}"), &chunk(i)).unwrap();
    }
    w.finish().unwrap()
}

fn check_on(inner: Arc<dyn Backend>) {
    let file = checkpoint();
    inner.put("ckpt/x.cairn", Bytes::from(file.clone()), PutMode::Overwrite).unwrap();
    let counting = Arc::new(CountingBackend::new(inner));
    let ck = open_checkpoint(counting.clone(), "ckpt/x.cairn").unwrap();
    let opened = counting.reset().bytes_read;
    assert!(opened < 64 << 10, "opening read {opened} bytes of a {} byte file", file.len());
    assert_eq!(ck.read("c07").unwrap(), chunk(7));
    let t = counting.reset();
    let (one, reads) = (t.bytes_read, t.gets);
    assert!(one >= CHUNK as u64 && one < CHUNK as u64 + (16 << 10), "reading one 1 MiB chunk transferred {one} bytes");
    assert!(reads <= 2, "{reads} reads for one chunk (its frame table, then its frames in one get)");
    let report = ck.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    for i in 0..CHUNKS {
        assert_eq!(ck.read(&format!("c{i:02}")).unwrap(), chunk(i));
    }
    // A flipped byte in a frame is reported by the read that covers it.
    let mut bad = file;
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    counting.put("ckpt/bad.cairn", Bytes::from(bad), PutMode::Overwrite).unwrap();
    let ck = open_checkpoint(counting.clone(), "ckpt/bad.cairn").unwrap();
    assert!(!ck.verify().unwrap().is_ok(), "damage went unnoticed");
    assert!(matches!(open_checkpoint(counting, "ckpt/none.cairn"), Err(cairn::Error::NotFound { .. })));
}

#[test]
fn ranged_reads_from_memory() {
    check_on(Arc::new(MemoryBackend::new()));
}

#[test]
fn ranged_reads_from_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    check_on(Arc::new(LocalBackend::open(dir.path()).unwrap()));
}

#[test]
fn open_url_takes_plain_paths_and_file_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cairn");
    std::fs::write(&path, checkpoint()).unwrap();
    let a = Checkpoint::open_url(path.to_str().unwrap()).unwrap();
    let b = Checkpoint::open_url(&format!("file://{}", path.display())).unwrap();
    assert_eq!(a.read("c03").unwrap(), b.read("c03").unwrap());
    assert!(matches!(Checkpoint::open_url("nope://bucket/key"), Err(cairn::Error::InvalidArgument(_))));
    assert!(matches!(Checkpoint::open_url("s3://bucket-only"), Err(cairn::Error::InvalidArgument(_))));
}

#[test]
fn ranged_reads_from_s3() {
    let Some((backend, _cleanup)) = s3_env::backend() else { return };
    check_on(backend);
}
