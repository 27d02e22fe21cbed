//! Shared code of cairn's fuzz targets: what a target does with a file once
//! it is opened, and the checksum fix-up that lets the fuzzer reach the
//! index decoder.

use cairn::Checkpoint;

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
