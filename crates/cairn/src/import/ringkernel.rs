//! ringkernel's RKCKPT01 checkpoints: a 64-byte header (magic, version,
//! header size, total size, chunk count, compression, CRC32 (IEEE) of
//! every byte after the header, flags, created_at in µs, reserved), a u32
//! LE metadata length and the metadata (length-prefixed kernel id and
//! type, the step, grid and tile sizes, the HLC timestamp, custom string
//! pairs), then per chunk a 32-byte header (type, flags, uncompressed size,
//! compressed size, id) and its bytes.
//!
//! The importer checks what ringkernel's loader checks (magic, version,
//! CRC, every length within the file) before writing anything, then streams
//! each chunk into a chunk named by its type (`device_memory/<id hex>` when
//! the id is nonzero), so memory stays at a few frames plus the metadata.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::safetensors::ImportReport;
use super::sniff::Format;
use crate::error::{Error, Result};
use crate::format::{CheckpointWriter, ChunkSpec, Sink, WriterOptions};

/// The magic number, `"RKCKPT01"` read as a u64 LE.
pub(crate) const MAGIC: u64 = 0x524B_434B_5054_3031;

/// The newest version ringkernel reads.
const VERSION: u32 = 1;

/// The fixed header's size.
const HEADER: u64 = 64;

/// Each chunk's header size.
const CHUNK_HEADER: u64 = 32;

/// Largest metadata block read (the seed's whole checkpoint may be 1 GiB;
/// its metadata is a few strings).
const MAX_METADATA: u64 = 16 << 20;

/// The chunk name of a ringkernel chunk type.
fn type_name(t: u32) -> String {
    match t {
        1 => "control_block".into(),
        2 => "h2k_queue".into(),
        3 => "k2h_queue".into(),
        4 => "hlc_state".into(),
        5 => "device_memory".into(),
        6 => "k2k_routing".into(),
        7 => "halo_buffers".into(),
        8 => "telemetry".into(),
        100 => "custom".into(),
        // Kept, not dropped: a newer writer's type, under its number.
        other => format!("chunk_type_{other}"),
    }
}

/// A chunk found in the source.
struct Chunk {
    name: String,
    flags: u32,
    offset: u64,
    len: u64,
}

/// What the source holds, checked, before anything is written.
struct Parsed {
    created_at: SystemTime,
    step: u64,
    metadata: Map<String, Value>,
    chunks: Vec<Chunk>,
    /// Bytes after the last chunk (covered by the CRC, ignored by the seed's
    /// loader): kept as a chunk of their own.
    trailing: Option<(u64, u64)>,
}

fn corrupt(src: &Path, what: &str, offset: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt { file: src.display().to_string(), what: what.to_string(), offset, detail: detail.into() }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// A cursor over the metadata block, naming offsets in the file.
struct Meta<'a> {
    src: &'a Path,
    bytes: &'a [u8],
    at: usize,
    base: u64,
}

impl Meta<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let here = self.base + self.at as u64;
        let out = self.at.checked_add(n).and_then(|end| self.bytes.get(self.at..end)).ok_or_else(|| {
            corrupt(self.src, "RKCKPT01 metadata", here, format!("{what}: {n} bytes past the metadata's end"))
        })?;
        self.at += n;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32_at(self.take(4, what)?, 0))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64_at(self.take(8, what)?, 0))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u32(what)? as usize;
        let here = self.base + self.at as u64;
        let bytes = self.take(n, what)?.to_vec();
        String::from_utf8(bytes).map_err(|e| corrupt(self.src, "RKCKPT01 metadata", here, format!("{what}: {e}")))
    }
}

/// Reads and checks the whole source: header, CRC (streamed), metadata and
/// every chunk's header, with every length checked against the file first.
fn parse(src: &Path, file: &mut (impl Read + Seek), len: u64) -> Result<Parsed> {
    let io = |e| Error::io("reading", src, e);
    if len < HEADER {
        return Err(corrupt(src, "RKCKPT01 header", 0, format!("the file holds only {len} bytes, the header 64")));
    }
    let mut h = [0u8; HEADER as usize];
    file.read_exact(&mut h).map_err(io)?;
    let magic = u64_at(&h, 0);
    if magic != MAGIC {
        return Err(corrupt(src, "RKCKPT01 header", 0, format!("magic {magic:#018x}, expected {MAGIC:#018x}")));
    }
    let version = u32_at(&h, 8);
    if version > VERSION {
        return Err(Error::Unsupported {
            file: src.display().to_string(),
            feature: format!("RKCKPT01 version {version} (ringkernel reads up to {VERSION})"),
        });
    }
    let (header_size, total_size, count) = (u32_at(&h, 12), u64_at(&h, 16), u32_at(&h, 24));
    let (compression, stored_crc, flags, created_us) = (u32_at(&h, 28), u32_at(&h, 32), u32_at(&h, 36), u64_at(&h, 40));

    // The CRC covers every byte after the header; stream it.
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (len - HEADER).min(1 << 20) as usize];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        crc.update(buf.get(..n).unwrap_or_default());
    }
    let actual = crc.finalize();
    if actual != stored_crc {
        return Err(corrupt(
            src,
            "RKCKPT01 checksum",
            32,
            format!("CRC mismatch: stored {stored_crc:08x}, the data's is {actual:08x}"),
        ));
    }

    file.seek(SeekFrom::Start(HEADER)).map_err(io)?;
    let mut l = [0u8; 4];
    if len < HEADER + 4 {
        return Err(corrupt(src, "RKCKPT01 metadata length", HEADER, "the file ends after the header"));
    }
    file.read_exact(&mut l).map_err(io)?;
    let meta_len = u64::from(u32::from_le_bytes(l));
    let meta_at = HEADER + 4;
    if meta_len > MAX_METADATA || meta_len > len - meta_at {
        return Err(corrupt(
            src,
            "RKCKPT01 metadata length",
            HEADER,
            format!("{meta_len} bytes of metadata, {} left in the file (at most {MAX_METADATA})", len - meta_at),
        ));
    }
    let mut meta_bytes = Vec::with_capacity(meta_len as usize);
    Read::by_ref(file).take(meta_len).read_to_end(&mut meta_bytes).map_err(io)?;
    let mut m = Meta { src, bytes: &meta_bytes, at: 0, base: meta_at };
    let kernel_id = m.string("kernel_id")?;
    let kernel_type = m.string("kernel_type")?;
    let step = m.u64("current_step")?;
    let grid = [m.u32("grid_size")?, m.u32("grid_size")?, m.u32("grid_size")?];
    let tile = [m.u32("tile_size")?, m.u32("tile_size")?, m.u32("tile_size")?];
    let (physical, logical, node_id) = (m.u64("hlc")?, m.u64("hlc")?, m.u64("hlc")?);
    let pairs = m.u32("custom count")?;
    // Each pair takes at least its two 4-byte lengths.
    if u64::from(pairs) * 8 > meta_len {
        return Err(corrupt(
            src,
            "RKCKPT01 metadata",
            meta_at + m.at as u64 - 4,
            format!("{pairs} custom pairs cannot fit in {meta_len} bytes of metadata"),
        ));
    }
    let mut custom = Map::new();
    for _ in 0..pairs {
        let k = m.string("custom key")?;
        let v = m.string("custom value")?;
        custom.insert(k, Value::String(v));
    }
    let mut metadata = Map::new();
    metadata.insert("kernel_id".into(), json!(kernel_id));
    metadata.insert("kernel_type".into(), json!(kernel_type));
    metadata.insert("grid_size".into(), json!(grid));
    metadata.insert("tile_size".into(), json!(tile));
    metadata.insert("hlc".into(), json!({"physical": physical, "logical": logical, "node_id": node_id}));
    metadata.insert("custom".into(), Value::Object(custom));
    metadata.insert(
        "rkckpt".into(),
        json!({"version": version, "header_size": header_size, "total_size": total_size, "compression": compression, "flags": flags}),
    );

    let mut at = meta_at + meta_len;
    if u64::from(count) * CHUNK_HEADER > len - at {
        return Err(corrupt(
            src,
            "RKCKPT01 chunk count",
            24,
            format!("{count} chunks cannot fit in the {} bytes after the metadata", len - at),
        ));
    }
    let mut chunks: Vec<Chunk> = Vec::with_capacity(count as usize);
    for i in 0..count {
        let mut ch = [0u8; CHUNK_HEADER as usize];
        if len - at < CHUNK_HEADER {
            return Err(corrupt(src, "RKCKPT01 chunk header", at, format!("chunk {i}: the file ends")));
        }
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        file.read_exact(&mut ch).map_err(io)?;
        let (t, cflags, raw, stored, id) =
            (u32_at(&ch, 0), u32_at(&ch, 4), u64_at(&ch, 8), u64_at(&ch, 16), u64_at(&ch, 24));
        let data_at = at + CHUNK_HEADER;
        if stored > len - data_at {
            return Err(corrupt(
                src,
                "RKCKPT01 chunk header",
                at + 16,
                format!("chunk {i}: {stored} bytes, {} left in the file", len - data_at),
            ));
        }
        if raw != stored {
            return Err(Error::Unsupported {
                file: src.display().to_string(),
                feature: format!("a compressed RKCKPT01 chunk (chunk {i}: {stored} bytes stored for {raw})"),
            });
        }
        let mut name = type_name(t);
        if id != 0 {
            name = format!("{name}/{id:016x}");
        }
        if chunks.iter().any(|c| c.name == name) {
            return Err(Error::Refused {
                what: format!("importing {}", src.display()),
                reason: format!("two chunks would be named {name:?} (same type and id)"),
            });
        }
        chunks.push(Chunk { name, flags: cflags, offset: data_at, len: stored });
        at = data_at + stored;
    }
    let trailing = (at < len).then_some((at, len - at));
    let created_at = SystemTime::UNIX_EPOCH + Duration::from_micros(created_us);
    Ok(Parsed { created_at, step, metadata, chunks, trailing })
}

/// The chunk that keeps bytes after the last chunk.
const TRAILING_CHUNK: &str = "trailing_bytes";

fn write<S: Sink>(
    src: &Path,
    file: &mut (impl Read + Seek),
    p: Parsed,
    w: &mut CheckpointWriter<S>,
) -> Result<ImportReport> {
    w.set_step(p.step);
    let mut flags = Map::new();
    for c in &p.chunks {
        if c.flags != 0 {
            flags.insert(c.name.clone(), json!(c.flags));
        }
    }
    let mut metadata = p.metadata;
    if !flags.is_empty() {
        metadata.insert("chunk_flags".into(), Value::Object(flags));
    }
    let report_metadata = metadata.len();
    for (k, v) in metadata {
        w.set_metadata(k, v);
    }
    let mut bytes = 0;
    let extra = p.trailing.map(|(offset, len)| Chunk { name: TRAILING_CHUNK.into(), flags: 0, offset, len });
    for c in p.chunks.iter().chain(extra.as_ref()) {
        file.seek(SeekFrom::Start(c.offset)).map_err(|e| Error::io("reading", src, e))?;
        let got = w.add_reader(&c.name, &ChunkSpec::bytes(), Read::by_ref(file).take(c.len))?;
        if got != c.len {
            return Err(corrupt(
                src,
                "RKCKPT01 chunk",
                c.offset,
                format!("{got} of {} bytes read (the file shrank?)", c.len),
            ));
        }
        bytes += got;
    }
    let chunks = p.chunks.len() + usize::from(extra.is_some());
    let notes = extra
        .iter()
        .map(|c| format!("{}: {} bytes after the last chunk kept as chunk {TRAILING_CHUNK:?}", src.display(), c.len))
        .collect();
    Ok(ImportReport { format: Format::Ringkernel, chunks, bytes, metadata: report_metadata, notes })
}

/// Imports the RKCKPT01 checkpoint `src` into a new checkpoint at `out`:
/// its step and creation time, its metadata under `kernel_id`,
/// `kernel_type`, `grid_size`, `tile_size`, `hlc` and `custom` (and the
/// header's other fields under `rkckpt`), and one chunk per chunk, named by
/// its type. `out` is published durably, and nothing is left there on
/// failure.
///
/// # Errors
/// [`Error::Corrupt`] naming the part and offset for a bad magic, a CRC
/// mismatch or a length or count that does not fit the file;
/// [`Error::Unsupported`] for a newer version or a compressed chunk (the
/// seed never wrote one); [`Error::Io`] if reading or writing fails.
pub fn from_ringkernel(src: impl AsRef<Path>, out: impl AsRef<Path>, opts: WriterOptions) -> Result<ImportReport> {
    let src = src.as_ref();
    let mut file = File::open(src).map_err(|e| Error::io("opening", src, e))?;
    let len = file.metadata().map_err(|e| Error::io("reading", src, e))?.len();
    let parsed = parse(src, &mut file, len)?;
    let mut w = CheckpointWriter::create(out.as_ref(), opts.created_at(parsed.created_at))?;
    let report = write(src, &mut file, parsed, &mut w)?;
    w.finish()?;
    Ok(report)
}

/// Imports RKCKPT01 bytes into an in-memory checkpoint: for fuzz targets
/// (feature `testing`).
///
/// # Errors
/// As [`from_ringkernel`].
#[cfg(feature = "testing")]
pub fn from_ringkernel_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    in_memory(bytes)
}

#[cfg(any(test, feature = "testing"))]
fn in_memory(bytes: &[u8]) -> Result<Vec<u8>> {
    let src = Path::new("<memory>");
    let mut r = std::io::Cursor::new(bytes);
    let parsed = parse(src, &mut r, bytes.len() as u64)?;
    let mut w = CheckpointWriter::in_memory(WriterOptions::default().created_at(parsed.created_at))?;
    write(src, &mut r, parsed, &mut w)?;
    w.finish()
}

#[cfg(test)]
#[path = "ringkernel_tests.rs"]
mod tests;
