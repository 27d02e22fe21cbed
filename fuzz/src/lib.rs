//! Shared code of cairn's fuzz targets: what a target does with a file once
//! it is opened, and the checksum fix-up that lets the fuzzer reach the
//! index decoder.

use std::sync::{Arc, OnceLock};

use cairn::{Checkpoint, CheckpointWriter, WriterOptions};

/// Hashes and counts what a streamed read writes, so that comparing it with
/// a whole read costs no second copy of the chunk.
struct Hashing {
    hasher: blake3::Hasher,
    len: u64,
}

impl std::io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Opens `bytes` and, if that succeeds, reads every chunk both ways and
/// verifies the file. Panics only if the reader contradicts itself: two
/// read paths disagree, or a clean verify does not match what was read.
///
/// Every chunk is read whole whatever length it declares: `read` grows its
/// result only as frames pass their checks, so a hostile length costs at
/// most a frame, and memory beyond that is content that really decoded.
pub fn exercise(bytes: Vec<u8>) {
    let Ok(ck) = Checkpoint::from_bytes(bytes) else { return };
    exercise_open(&ck);
}

/// The full checkpoint delta inputs are read against (frame size 4 KiB:
/// chunks `a` of 3 frames of a pattern, `b` of noise, `c` of one short
/// frame), and its bytes.
pub fn base() -> &'static (Arc<Checkpoint>, Vec<u8>) {
    static BASE: OnceLock<(Arc<Checkpoint>, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let build = || -> Result<Vec<u8>, cairn::Error> {
            let mut w = CheckpointWriter::in_memory(WriterOptions::default().frame_size(4096))?;
            w.add_bytes("a", &(0..3 * 4096).map(|i| (i / 5 % 7) as u8).collect::<Vec<u8>>())?;
            w.add_bytes("b", &(0..9000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>())?;
            w.add_bytes("c", &[9; 100])?;
            w.finish()
        };
        let bytes = build().unwrap_or_default();
        let ck = Checkpoint::from_bytes(bytes.clone()).map(Arc::new);
        (ck.unwrap_or_else(|e| panic!("building the fuzz base: {e}")), bytes)
    })
}

/// Makes `file` a delta file of [`base`] (the `DELTA` bit set, the base's
/// identity in the index, checksums fixed), opens it with that base and
/// exercises it: delta frame references and payloads, however mangled,
/// must fail cleanly or read consistently.
pub fn exercise_delta(mut file: Vec<u8>) {
    use cairn::format::layout::{features, trailer, HEADER_LEN, TRAILER_LEN};
    let (base, base_bytes) = base();
    let len = file.len();
    if len < HEADER_LEN + TRAILER_LEN {
        return;
    }
    let t = len - TRAILER_LEN;
    let required = u64_at(&file, t + trailer::REQUIRED) | features::REQUIRED_DELTA;
    put(&mut file, t + trailer::REQUIRED, &required.to_le_bytes());
    // The base's identity sits after the index's fixed fields and digest.
    let index_offset = u64_at(&file, t + trailer::INDEX_OFFSET);
    let bt = base_bytes.len().saturating_sub(TRAILER_LEN);
    if let Ok(at) = usize::try_from(index_offset.saturating_add(56)) {
        put(&mut file, at, &base.digest());
        put(&mut file, at + 32, &u64_at(base_bytes, bt + trailer::INDEX_CHECKSUM).to_le_bytes());
    }
    fix_checksums(&mut file);
    let Ok(ck) = Checkpoint::from_bytes(file) else { return };
    let Ok(ck) = ck.with_base(Arc::clone(base)) else { return };
    exercise_open(&ck);
}

/// [`exercise`] on a checkpoint already open.
fn exercise_open(ck: &Checkpoint) {
    let _ = (ck.step(), ck.metadata().len(), ck.created_at(), ck.producer(), ck.digest(), ck.stats());
    let mut reads = Vec::new();
    for c in ck.chunks() {
        let mut streamed = Hashing { hasher: blake3::Hasher::new(), len: 0 };
        let to = ck.read_to(&c.name, &mut streamed);
        let whole = ck.read(&c.name);
        if let (Ok(n), Ok(whole)) = (&to, &whole) {
            assert_eq!(*n, c.raw_len, "read_to length of {:?}", c.name);
            assert_eq!(streamed.len, whole.len() as u64, "read_to and read disagree on the length of {:?}", c.name);
            assert_eq!(streamed.hasher.finalize(), blake3::hash(whole), "read_to and read disagree on {:?}", c.name);
        }
        // Only the digest is kept: holding every chunk would add up.
        reads.push((c.name.clone(), whole.ok().map(|w| *blake3::hash(&w).as_bytes())));
    }
    let Ok(report) = ck.verify() else { return };
    if report.is_ok() {
        for (name, whole) in reads {
            let (Some(whole), Some(c)) = (whole, ck.chunk(&name)) else { continue };
            assert_eq!(whole, c.digest, "verify passed but {name:?} reads wrong");
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

/// Makes the header, trailer and index checksums (and magics, file length
/// and index length) right, so that the fuzzer's mutations reach the index
/// decoder instead of stopping at a checksum. Frame checksums stay as they are.
pub fn fix_checksums(file: &mut [u8]) {
    use cairn::format::layout::{header, trailer, END_MAGIC, HEADER_LEN, MAGIC, TRAILER_LEN};
    let len = file.len();
    if len < HEADER_LEN + TRAILER_LEN {
        return;
    }
    put(file, header::MAGIC, &MAGIC);
    let sum = xxhash_rust::xxh3::xxh3_64(&file[..header::CHECKSUM]);
    put(file, header::CHECKSUM, &sum.to_le_bytes());

    let t = len - TRAILER_LEN;
    let index_offset = u64_at(file, t + trailer::INDEX_OFFSET);
    if (HEADER_LEN as u64..=t as u64).contains(&index_offset) {
        let start = index_offset as usize;
        put(file, t + trailer::INDEX_LEN, &((t - start) as u64).to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&file[start..t]);
        put(file, t + trailer::INDEX_CHECKSUM, &sum.to_le_bytes());
    }
    put(file, t + trailer::FILE_LEN, &(len as u64).to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&file[t..t + trailer::CHECKSUM]);
    put(file, t + trailer::CHECKSUM, &sum.to_le_bytes());
    put(file, t + trailer::END_MAGIC, &END_MAGIC);
}
