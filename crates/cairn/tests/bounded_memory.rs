//! The writer streams: writing a chunk far larger than a few frames keeps
//! live memory at a few frames per worker thread, and so does `read_to`.
//! Scanning, verifying, reading and recovering a log stream too: a 2 GiB
//! segment costs a window of it, not its size.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::io::Read;

use cairn::{Checkpoint, CheckpointWriter, ChunkSpec, Compression, WriterOptions};

#[path = "shared/counting_alloc.rs"]
mod counting;

/// The peak is process-wide: tests that measure it run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and returns its result and the most heap it held at once.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let (out, usage) = counting::measured(f);
    (out, usage.peak)
}

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
    let _serial = serial();
    const FRAME: usize = 1 << 20;
    const TOTAL: u64 = 128 << 20;
    let threads = 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.cairn");
    for compression in [Compression::None, Compression::Zstd(1)] {
        let opts = WriterOptions::default().compression(compression).threads(Some(threads));
        let mut w = CheckpointWriter::create(&path, opts).unwrap();
        let (n, used) = peak_of(|| w.add_reader("big", &ChunkSpec::bytes(), Pattern(7).take(TOTAL)).unwrap());
        assert_eq!(n, TOTAL);
        // Two windows of 2 × threads frames, plus compressed copies and
        // codec state: far below the 128 MiB written.
        let bound = 12 * threads * FRAME;
        assert!(used < bound, "{compression}: writer peak {used} bytes, bound {bound}");
        w.finish().unwrap();

        let ck = Checkpoint::open(&path).unwrap();
        let (read, used) = peak_of(|| ck.read_to("big", &mut std::io::sink()).unwrap());
        assert_eq!(read, TOTAL);
        assert!(used < 4 * FRAME, "{compression}: read_to peak {used} bytes");
    }
}

/// A segment of 2 GiB (sparse: zeros after the first records) whose first
/// record is damaged, optionally followed by a durable mark that makes the
/// damage corruption rather than a torn write.
fn huge_segment(dir: &std::path::Path, marked: bool) {
    use cairn::wal::{SyncPolicy, Wal, WalOptions};
    let opts = WalOptions::default().sync(SyncPolicy::Always);
    let wal = Wal::open_with(cairn::io::StdFs::shared(), dir, opts).unwrap();
    wal.append(b"the first record, damaged below").unwrap();
    wal.close().unwrap();
    let seg = dir.join("00000000000000000001.wal");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[32 + 30] ^= 0xFF;
    if !marked {
        // The close mark follows the record (24 + 31 bytes, padded to 56).
        bytes[32 + 56..32 + 80].fill(0);
    }
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(2 << 30).unwrap();
}

#[test]
fn a_two_gib_segment_is_scanned_through_a_small_window() {
    use cairn::wal::{RecoveryMode, Wal, WalOptions, WalReader};
    let _serial = serial();
    let bound = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    huge_segment(dir.path(), true);
    let (report, used) = peak_of(|| cairn::wal::verify(&cairn::io::StdFs, dir.path()).unwrap());
    assert!(report.is_corrupt(), "{:?}", report.problems);
    assert!(used < bound, "verify peak {used} bytes");
    // Longer than any segment of 64 MiB that the writer makes: noted.
    assert_eq!(report.oversized.len(), 1, "{:?}", report.oversized);
    assert_eq!(report.oversized[0].bytes, 2 << 30);

    let (read, used) = peak_of(|| {
        let r = WalReader::open_with(cairn::io::StdFs::shared(), dir.path(), RecoveryMode::Salvage).unwrap();
        r.iter_from(1).count()
    });
    assert_eq!(read, 0);
    assert!(used < bound, "salvage read peak {used} bytes");
    let (opened, used) = peak_of(|| Wal::open(dir.path()).map(|_| ()));
    assert!(matches!(opened, Err(cairn::Error::Corrupt { .. })), "{opened:?}");
    assert!(used < bound, "open peak {used} bytes");

    // Without the mark nothing vouches for the record: a torn write, cut.
    let dir = tempfile::tempdir().unwrap();
    huge_segment(dir.path(), false);
    let (wal, used) = peak_of(|| Wal::open_with(cairn::io::StdFs::shared(), dir.path(), WalOptions::default()));
    let wal = wal.unwrap();
    assert!(used < bound, "recovery peak {used} bytes");
    assert_eq!(wal.recovery().truncated_bytes, (2 << 30) - 32);
    assert_eq!(wal.append(b"again").unwrap(), 1);
}

#[test]
fn a_store_entry_streams_in_and_out_in_a_few_frames() {
    use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
    use cairn::DType;
    let _serial = serial();
    const TOTAL: u64 = 256 << 20;
    let bound = 48 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_url(&dir.path().display().to_string(), StoreOptions::default()).unwrap();
    let key = Key::new("big");
    let opts = WriterOptions::default().compression(Compression::None).threads(Some(2));
    let spec = ChunkSpec::tensor(DType::F32, &[TOTAL / 4]);
    let (saved, used) = peak_of(|| {
        store.save_with(&key, SaveInfo::checkpoint(), opts, |w| {
            w.add_reader("w", &spec, Pattern(3).take(TOTAL)).map(drop)
        })
    });
    let saved = saved.unwrap();
    assert!(saved.bytes > TOTAL);
    assert!(used < bound, "save_with peak {used} bytes for a {TOTAL}-byte entry");

    // Looked up, the raw tensor is a view of the entry's file, not a copy.
    let (viewed, used) = peak_of(|| {
        let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
        let t = found.checkpoint.tensor::<f32>("w").unwrap();
        let mut expect = vec![0u8; 4096];
        Pattern(3).read_exact(&mut expect).unwrap();
        assert_eq!(bytemuck::cast_slice::<f32, u8>(&t[..1024]), &expect[..]);
        t.len() as u64
    });
    assert_eq!(viewed, TOTAL / 4);
    assert!(used < bound, "lookup and tensor view peak {used} bytes");

    let (report, used) = peak_of(|| store.verify().unwrap());
    assert!(report.is_clean(), "{report:?}");
    assert!(used < bound, "store verify peak {used} bytes");

    // What `cairn store get` does: the entry's bytes copied to a file.
    let out = dir.path().join("out.cairn");
    let (copied, used) = peak_of(|| {
        let found = store.lookup(&key, &Select::Latest).unwrap().unwrap();
        let mut f = std::fs::File::create(&out).unwrap();
        found.checkpoint.copy_to(&mut f, "out").unwrap()
    });
    assert_eq!(copied, saved.bytes);
    assert!(used < bound, "copying an entry out peak {used} bytes");
}

#[test]
fn importing_and_exporting_safetensors_streams() {
    let _serial = serial();
    const FRAME: usize = 1 << 20;
    const BIG: u64 = 128 << 20;
    let threads = 2;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    // A safetensors file with one 128 MiB tensor and a small one, written
    // by hand as the reference writer lays it out.
    let header = format!(
        r#"{{"big":{{"dtype":"U8","shape":[{BIG}],"data_offsets":[0,{BIG}]}},"small":{{"dtype":"F32","shape":[4],"data_offsets":[{BIG},{}]}}}}"#,
        BIG + 16
    );
    let mut header = header.into_bytes();
    header.resize(header.len().div_ceil(8) * 8, b' ');
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        std::io::Write::write_all(&mut f, &(header.len() as u64).to_le_bytes()).unwrap();
        std::io::Write::write_all(&mut f, &header).unwrap();
        std::io::copy(&mut Pattern(3).take(BIG), &mut f).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 16]).unwrap();
    }
    let out = dir.path().join("model.cairn");
    let opts = WriterOptions::default().threads(Some(threads));
    let (report, used) = peak_of(|| cairn::import::from_safetensors(&src, &out, opts).unwrap());
    assert_eq!((report.chunks, report.bytes), (2, BIG + 16));
    let bound = 12 * threads * FRAME;
    eprintln!("safetensors import of {} MiB: peak heap {used} bytes", BIG >> 20);
    assert!(used < bound, "import peak {used} bytes, bound {bound}");

    let ck = Checkpoint::open(&out).unwrap();
    let back = dir.path().join("back.safetensors");
    let (report, used) = peak_of(|| cairn::import::to_safetensors(&ck, &back, false).unwrap());
    assert_eq!(report.bytes, BIG + 16);
    eprintln!("safetensors export of {} MiB: peak heap {used} bytes", BIG >> 20);
    assert!(used < bound, "export peak {used} bytes, bound {bound}");
    assert_eq!(std::fs::metadata(&back).unwrap().len(), std::fs::metadata(&src).unwrap().len());
}
