//! trueno's APR2 files: the tuner's training samples as
//! `"APR2" | u32 LE length | JSON | CRC32 (IEEE) of the JSON, u32 LE`.
//! The importer checks what trueno's loader checks (magic, length, CRC,
//! JSON) and keeps the JSON byte for byte as one JSON chunk, `samples`.

use std::io::Read;
use std::path::Path;

use super::safetensors::ImportReport;
use super::sniff::Format;
use crate::error::{Error, Result};
use crate::format::{CheckpointWriter, ChunkKind, ChunkSpec, Sink, WriterOptions};

/// The magic bytes.
pub(crate) const MAGIC: &[u8; 4] = b"APR2";

/// Bytes around the JSON: magic, length, CRC.
const FRAMING: u64 = 12;

/// The name of the chunk that holds the samples.
pub const SAMPLES_CHUNK: &str = "samples";

/// Checks an APR2 file's bytes and returns its JSON.
fn check<'a>(src: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let corrupt = |what: &str, offset: u64, detail: String| Error::Corrupt {
        file: src.display().to_string(),
        what: what.to_string(),
        offset,
        detail,
    };
    let len = bytes.len() as u64;
    let (Some(magic), Some(&[l0, l1, l2, l3])) = (bytes.get(..4), bytes.get(4..8)) else {
        return Err(corrupt("APR2 header", 0, format!("the file holds only {len} bytes, the header 8")));
    };
    if magic != MAGIC {
        return Err(corrupt("APR2 header", 0, format!("magic {magic:02x?}, expected \"APR2\"")));
    }
    let n = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
    if n + FRAMING != len {
        return Err(corrupt(
            "APR2 length",
            4,
            format!("{n} bytes of JSON do not fit a file of {len} bytes (it would be {})", n + FRAMING),
        ));
    }
    let (Some(json), Some(&[c0, c1, c2, c3])) = (bytes.get(8..8 + n as usize), bytes.get(8 + n as usize..)) else {
        return Err(corrupt("APR2 length", 4, "cut short".to_string()));
    };
    let stored = u32::from_le_bytes([c0, c1, c2, c3]);
    let actual = crc32fast::hash(json);
    if stored != actual {
        return Err(corrupt(
            "APR2 CRC",
            8 + n,
            format!("CRC mismatch: stored {stored:08x}, the JSON's is {actual:08x}"),
        ));
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(json) {
        return Err(corrupt("APR2 JSON", 8, e.to_string()));
    }
    Ok(json)
}

/// Imports the APR2 file `src` into a new checkpoint at `out`, its JSON
/// kept byte for byte as the JSON chunk [`SAMPLES_CHUNK`]. `out` is
/// published durably, and nothing is left there on failure.
///
/// # Errors
/// [`Error::Corrupt`] naming the part and offset for a bad magic, a length
/// that does not fit the file, a CRC mismatch or JSON that does not parse;
/// [`Error::Io`] if reading or writing fails.
pub fn from_apr2(src: impl AsRef<Path>, out: impl AsRef<Path>, opts: WriterOptions) -> Result<ImportReport> {
    let src = src.as_ref();
    let mut bytes = Vec::new();
    std::fs::File::open(src).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::io("reading", src, e))?;
    let json = check(src, &bytes)?;
    let mut w = CheckpointWriter::create(out.as_ref(), opts)?;
    let report = write(json, &mut w)?;
    w.finish()?;
    Ok(report)
}

/// Imports APR2 bytes into an in-memory checkpoint: for fuzz targets
/// (feature `testing`).
///
/// # Errors
/// As [`from_apr2`].
#[cfg(feature = "testing")]
pub fn from_apr2_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    in_memory(bytes)
}

#[cfg(any(test, feature = "testing"))]
fn in_memory(bytes: &[u8]) -> Result<Vec<u8>> {
    let json = check(Path::new("<memory>"), bytes)?;
    let mut w = CheckpointWriter::in_memory(WriterOptions::default())?;
    write(json, &mut w)?;
    w.finish()
}

fn write<S: Sink>(json: &[u8], w: &mut CheckpointWriter<S>) -> Result<ImportReport> {
    w.add_chunk(SAMPLES_CHUNK, &ChunkSpec::bytes().kind(ChunkKind::Json), json)?;
    Ok(ImportReport { format: Format::Apr2, chunks: 1, bytes: json.len() as u64, metadata: 0, notes: Vec::new() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::format::Checkpoint;

    /// An APR2 file as trueno's `save_apr` writes one.
    fn apr2(json: &[u8]) -> Vec<u8> {
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&(json.len() as u32).to_le_bytes());
        f.extend_from_slice(json);
        f.extend_from_slice(&crc32fast::hash(json).to_le_bytes());
        f
    }

    fn import(bytes: &[u8]) -> Result<Checkpoint> {
        Checkpoint::from_bytes(in_memory(bytes)?)
    }

    #[test]
    fn the_json_comes_across_byte_for_byte() {
        let json = br#"[{"throughput_tps": 1.5e5, "kernel": "TiledQ4K"},  {"throughput_tps": 2}]"#;
        let ck = import(&apr2(json)).unwrap();
        assert_eq!(ck.read(SAMPLES_CHUNK).unwrap(), json);
        assert_eq!(ck.chunk(SAMPLES_CHUNK).unwrap().kind, ChunkKind::Json);
        assert_eq!(import(&apr2(b"[]")).unwrap().read(SAMPLES_CHUNK).unwrap(), b"[]");
    }

    #[test]
    fn damage_is_named_with_its_offset() {
        let good = apr2(b"[1,2]");
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut long = good.clone();
        long[4] = 200;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"APR2".to_vec(), "APR2 header"),
            ([b"XXXX", &good[4..]].concat(), "APR2 header"),
            (long, "APR2 length"),
            ([&good[..], b"x"].concat(), "APR2 length"),
            ([&good[..8], &u32::MAX.to_le_bytes()[..]].concat(), "APR2 length"),
            (bad_crc, "CRC mismatch"),
            (apr2(b"not json"), "APR2 JSON"),
        ];
        for (bytes, says) in cases {
            let e = import(&bytes).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }) && e.to_string().contains(says), "{says}: {e}");
        }
    }
}
