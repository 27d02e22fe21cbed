//! safetensors in and out. A safetensors file is a u64 LE header length,
//! a JSON header mapping each tensor's name to its dtype, shape and byte
//! range of the data region (plus an optional `__metadata__` map of
//! strings), and the data region, tensors back to back.
//!
//! Importing checks the header as the reference reader does (ranges
//! contiguous from 0, each as long as its shape says, the last ending at
//! the end of the file) and streams each tensor into its own chunk, so
//! memory stays at a few frames whatever the file's size. Exporting
//! streams each tensor chunk out through its checksums.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Deserialize;

use super::sniff::Format;
use crate::error::{Error, Result};
use crate::format::{Checkpoint, CheckpointWriter, ChunkKind, ChunkSpec, DType, WriterOptions};
use crate::io::TempFile;

/// Largest header read, as the reference implementation allows.
const MAX_HEADER: u64 = 100_000_000;

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The source's format.
    pub format: Format,
    /// Chunks written.
    pub chunks: usize,
    /// Content bytes written (before compression).
    pub bytes: u64,
    /// Metadata entries written.
    pub metadata: usize,
    /// What the source held that was not imported, or how it was read
    /// (a torn record dropped, a replay stopped), one line each.
    pub notes: Vec<String>,
}

/// What an export wrote and left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportReport {
    /// Tensors written.
    pub tensors: usize,
    /// Tensor bytes written.
    pub bytes: u64,
    /// Chunks left out because they are not tensors (only with
    /// `skip_non_tensors`).
    pub skipped_chunks: Vec<String>,
    /// Metadata keys left out because their values are not strings.
    pub skipped_metadata: Vec<String>,
}

/// One header entry as safetensors writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// The safetensors dtype name of each cairn dtype, and back.
const DTYPES: &[(DType, &str)] = &[
    (DType::Bool, "BOOL"),
    (DType::U8, "U8"),
    (DType::I8, "I8"),
    (DType::U16, "U16"),
    (DType::I16, "I16"),
    (DType::U32, "U32"),
    (DType::I32, "I32"),
    (DType::U64, "U64"),
    (DType::I64, "I64"),
    (DType::F16, "F16"),
    (DType::BF16, "BF16"),
    (DType::F32, "F32"),
    (DType::F64, "F64"),
];

fn dtype_of(name: &str) -> Option<DType> {
    DTYPES.iter().find(|(_, n)| *n == name).map(|(d, _)| *d)
}

fn name_of(dtype: DType) -> Option<&'static str> {
    DTYPES.iter().find(|(d, _)| *d == dtype).map(|(_, n)| *n)
}

fn corrupt(src: &Path, what: impl Into<String>, offset: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt { file: src.display().to_string(), what: what.into(), offset, detail: detail.into() }
}

/// A tensor of the source, checked against the file.
struct Tensor {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    begin: u64,
    len: u64,
}

/// Reads and checks the header of the safetensors file `file` of `len`
/// bytes: its tensors in data order, its metadata, and where the data
/// region starts.
fn read_header(src: &Path, file: &mut impl Read, len: u64) -> Result<(Vec<Tensor>, HashMap<String, String>, u64)> {
    let io = |e| Error::io("reading", src, e);
    let mut n8 = [0u8; 8];
    if len < 8 {
        return Err(corrupt(src, "safetensors header length", 0, format!("the file holds only {len} bytes")));
    }
    file.read_exact(&mut n8).map_err(io)?;
    let n = u64::from_le_bytes(n8);
    if n > MAX_HEADER || n > len - 8 {
        return Err(corrupt(
            src,
            "safetensors header length",
            0,
            format!("{n} bytes of header in a file of {len} bytes (at most {MAX_HEADER})"),
        ));
    }
    let mut header = Vec::with_capacity(n as usize);
    Read::by_ref(file).take(n).read_to_end(&mut header).map_err(io)?;
    let text = std::str::from_utf8(&header)
        .map_err(|e| corrupt(src, "safetensors header", 8 + e.valid_up_to() as u64, "not UTF-8"))?;
    let mut raw: HashMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| corrupt(src, "safetensors header", 8, e.to_string()))?;
    let metadata = match raw.remove("__metadata__") {
        None => HashMap::new(),
        Some(m) => serde_json::from_value(m)
            .map_err(|e| corrupt(src, "safetensors __metadata__", 8, format!("not a map of strings: {e}")))?,
    };
    let data_start = 8 + n;
    let mut tensors = Vec::with_capacity(raw.len());
    let mut unsupported: Vec<String> = Vec::new();
    for (name, v) in raw {
        let e: Entry = serde_json::from_value(v)
            .map_err(|e| corrupt(src, format!("safetensors header entry {name:?}"), 8, e.to_string()))?;
        let Some(dtype) = dtype_of(&e.dtype) else {
            unsupported.push(format!("{name:?} ({})", e.dtype));
            continue;
        };
        let [b, end] = e.data_offsets;
        let elems = e.shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
        let bytes = elems.and_then(|n| n.checked_mul(dtype.size() as u64));
        if end < b || bytes != Some(end - b) {
            return Err(corrupt(
                src,
                format!("safetensors tensor {name:?}"),
                8,
                format!("bytes {b}..{end} do not hold a {} tensor of shape {:?}", e.dtype, e.shape),
            ));
        }
        tensors.push(Tensor { name, dtype, shape: e.shape, begin: b, len: end - b });
    }
    if !unsupported.is_empty() {
        unsupported.sort();
        return Err(Error::Unsupported {
            file: src.display().to_string(),
            feature: format!("safetensors dtypes (cairn has none for {})", unsupported.join(", ")),
        });
    }
    tensors.sort_by_key(|t| (t.begin, t.len));
    let mut at = 0u64;
    for t in &tensors {
        if t.begin != at {
            return Err(corrupt(
                src,
                format!("safetensors tensor {:?}", t.name),
                data_start.saturating_add(t.begin),
                format!("starts at byte {} of the data, expected {at} (tensors must lie back to back)", t.begin),
            ));
        }
        at += t.len;
    }
    if data_start.checked_add(at) != Some(len) {
        return Err(corrupt(
            src,
            "safetensors data",
            data_start,
            format!("the tensors hold {at} bytes but the file has {} after the header", len - data_start),
        ));
    }
    Ok((tensors, metadata, data_start))
}

/// Imports the safetensors file `src` into a new checkpoint at `out`: each
/// tensor a chunk with the same name, dtype and shape, each `__metadata__`
/// entry a metadata string. Tensors are streamed from the file in data
/// order. `out` is published durably, and nothing is left there on failure.
///
/// # Errors
/// [`Error::Corrupt`] naming the part and offset if the file is not valid
/// safetensors; [`Error::Unsupported`] naming the tensors whose dtypes cairn
/// does not have (the `F8` types); [`Error::Io`] if reading or writing
/// fails.
pub fn from_safetensors(src: impl AsRef<Path>, out: impl AsRef<Path>, opts: WriterOptions) -> Result<ImportReport> {
    let src = src.as_ref();
    let mut file = File::open(src).map_err(|e| Error::io("opening", src, e))?;
    let len = file.metadata().map_err(|e| Error::io("reading", src, e))?.len();
    // The header is checked before anything is created at `out`.
    let header = read_header(src, &mut file, len)?;
    let mut w = CheckpointWriter::create(out.as_ref(), opts)?;
    let report = write_tensors(src, &mut file, header, &mut w)?;
    w.finish()?;
    Ok(report)
}

/// Imports safetensors bytes into an in-memory checkpoint, as
/// [`from_safetensors`] does a file: for fuzz targets (feature `testing`).
///
/// # Errors
/// As [`from_safetensors`].
#[cfg(feature = "testing")]
pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    let src = Path::new("<memory>");
    let mut r = std::io::Cursor::new(bytes);
    let header = read_header(src, &mut r, bytes.len() as u64)?;
    let mut w = CheckpointWriter::in_memory(WriterOptions::default())?;
    write_tensors(src, &mut r, header, &mut w)?;
    w.finish()
}

/// Writes the checked header's metadata and tensors into `w`, streaming
/// each tensor from `r`.
fn write_tensors<S: crate::format::Sink>(
    src: &Path,
    r: &mut (impl Read + Seek),
    (tensors, metadata, data_start): (Vec<Tensor>, HashMap<String, String>, u64),
    w: &mut CheckpointWriter<S>,
) -> Result<ImportReport> {
    let mut keys: Vec<_> = metadata.into_iter().collect();
    keys.sort();
    let report_metadata = keys.len();
    for (k, v) in keys {
        w.set_metadata(k, serde_json::Value::String(v));
    }
    let mut bytes = 0u64;
    for t in &tensors {
        r.seek(SeekFrom::Start(data_start + t.begin)).map_err(|e| Error::io("reading", src, e))?;
        let got = w.add_reader(&t.name, &ChunkSpec::tensor(t.dtype, &t.shape), Read::by_ref(r).take(t.len))?;
        if got != t.len {
            return Err(corrupt(
                src,
                format!("safetensors tensor {:?}", t.name),
                data_start + t.begin,
                format!("{got} of its {} bytes could be read (the file shrank?)", t.len),
            ));
        }
        bytes += got;
    }
    Ok(ImportReport {
        format: Format::Safetensors,
        chunks: tensors.len(),
        bytes,
        metadata: report_metadata,
        notes: Vec::new(),
    })
}

/// Exports the tensor chunks of `ck` to a safetensors file at `out`, in
/// chunk order, decoding compressed chunks and checking every frame on
/// the way; string metadata becomes `__metadata__`. `out` is published
/// durably, and nothing is left there on failure.
///
/// # Errors
/// [`Error::Refused`] naming the chunks that are not tensors, unless
/// `skip_non_tensors`; [`Error::Corrupt`] if a frame fails its checks;
/// [`Error::Io`] if writing fails.
pub fn to_safetensors(ck: &Checkpoint, out: impl AsRef<Path>, skip_non_tensors: bool) -> Result<ExportReport> {
    let mut report = ExportReport::default();
    let mut header = serde_json::Map::new();
    let mut tensors = Vec::new();
    let mut at = 0u64;
    for c in ck.chunks() {
        let typed = match (c.kind, c.dtype, &c.shape) {
            (ChunkKind::Tensor, Some(d), Some(shape)) => name_of(d).map(|n| (n, shape)),
            _ => None,
        };
        let Some((dtype, shape)) = typed else {
            report.skipped_chunks.push(c.name.clone());
            continue;
        };
        if c.name == "__metadata__" {
            // The header's metadata key: a tensor of that name would make
            // the file unreadable.
            return Err(Error::Refused {
                what: format!("exporting {} to safetensors", ck.origin()),
                reason: "a tensor chunk is named \"__metadata__\", the key safetensors keeps for metadata".into(),
            });
        }
        let end = at + c.raw_len;
        header.insert(c.name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [at, end]}));
        tensors.push(c.name.clone());
        at = end;
    }
    if !report.skipped_chunks.is_empty() && !skip_non_tensors {
        return Err(Error::Refused {
            what: format!("exporting {} to safetensors", ck.origin()),
            reason: format!(
                "chunks {} are not tensors (pass --skip-non-tensors to leave them out)",
                report.skipped_chunks.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let mut strings = serde_json::Map::new();
    for (k, v) in ck.metadata() {
        match v {
            serde_json::Value::String(s) => {
                strings.insert(k.clone(), serde_json::Value::String(s.clone()));
            }
            _ => report.skipped_metadata.push(k.clone()),
        }
    }
    if !strings.is_empty() {
        header.insert("__metadata__".to_string(), serde_json::Value::Object(strings));
    }
    let mut text = serde_json::to_vec(&header).map_err(|e| Error::Internal(format!("safetensors header: {e}")))?;
    // The reference writer pads the header with spaces to 8 bytes.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let out = out.as_ref();
    let mut temp = TempFile::create(out)?;
    let io = |e| Error::io("writing", out, e);
    temp.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
    temp.write_all(&text).map_err(io)?;
    for name in &tensors {
        report.bytes += ck.read_to(name, &mut temp)?;
        report.tensors += 1;
    }
    temp.publish()?;
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(data);
        f
    }

    fn import(bytes: &[u8]) -> Result<Checkpoint> {
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("m.safetensors"), dir.path().join("m.cairn"));
        std::fs::write(&src, bytes).unwrap();
        let r = from_safetensors(&src, &out, WriterOptions::default());
        assert_eq!(r.is_ok(), out.exists(), "published only on success");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1 + usize::from(r.is_ok()), "nothing else left: {names:?}");
        r?;
        Checkpoint::from_bytes(std::fs::read(&out).unwrap())
    }

    #[test]
    fn tensors_and_metadata_come_across() {
        let h = r#"{"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}"#;
        let data = [&1.5f32.to_le_bytes()[..], &(-2f32).to_le_bytes(), &[7, 8, 9]].concat();
        let ck = import(&file(h, &data)).unwrap();
        assert_eq!(ck.read_tensor::<f32>("a").unwrap(), [1.5, -2.0]);
        assert_eq!(ck.read("b").unwrap(), [7, 8, 9]);
        assert_eq!(ck.chunk("a").unwrap().shape.as_deref(), Some(&[2u64][..]));
        assert_eq!(ck.metadata()["format"], "pt");
    }

    #[test]
    fn bad_headers_are_refused_naming_the_part() {
        let ok = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "header length"),
            ([&u64::MAX.to_le_bytes()[..], b"{}"].concat(), "header length"),
            ([&100u64.to_le_bytes()[..], b"{}"].concat(), "header length"),
            (file("{\"a\":", &[]), "safetensors header"),
            (file(&ok.replace("[0,2]", "[0,3]"), &[1, 2]), "tensor \"a\""),
            (file(&ok.replace("[0,2]", "[1,3]"), &[1, 2, 3]), "back to back"),
            (file(ok, &[1, 2, 3]), "safetensors data"),
            (file(ok, &[1]), "safetensors data"),
            (file(&ok.replace("[2]", "[18446744073709551615, 2]"), &[1, 2]), "tensor \"a\""),
            (file(r#"{"__metadata__":{"a":1}}"#, &[]), "__metadata__"),
            (file(r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":1}}"#, &[1, 2]), "entry"),
        ];
        for (bytes, says) in cases {
            let e = import(&bytes).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }) && e.to_string().contains(says), "{says}: {e}");
        }
        let f8 = file(r#"{"q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#, &[0]);
        let e = import(&f8).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("\"q\" (F8_E4M3)"), "{e}");
    }

    #[test]
    fn a_tensor_named_like_the_metadata_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
        w.add_tensor("__metadata__", &[1], &[1.0f32]).unwrap();
        let ck = Checkpoint::from_bytes(w.finish().unwrap()).unwrap();
        let out = dir.path().join("x.safetensors");
        let e = to_safetensors(&ck, &out, true).unwrap_err();
        assert!(matches!(e, Error::Refused { .. }) && e.to_string().contains("__metadata__"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn export_writes_what_import_reads_and_refuses_other_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
        w.add_tensor("w", &[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let lz4 = ChunkSpec::tensor(DType::I64, &[3]).compression(crate::Compression::Lz4).shuffle(true);
        w.add_chunk("ids", &lz4, bytemuck::cast_slice(&[5i64, 6, 7])).unwrap();
        w.add_json("config", &serde_json::json!({"lr": 1})).unwrap();
        w.set_metadata("arch", serde_json::json!("mlp"));
        w.set_metadata("loss", serde_json::json!(0.5));
        let ck = Checkpoint::from_bytes(w.finish().unwrap()).unwrap();
        let out = dir.path().join("x.safetensors");
        let e = to_safetensors(&ck, &out, false).unwrap_err();
        assert!(e.to_string().contains("\"config\""), "{e}");
        assert!(!out.exists());
        let r = to_safetensors(&ck, &out, true).unwrap();
        assert_eq!((r.tensors, r.bytes), (2, 40));
        assert_eq!((r.skipped_chunks, r.skipped_metadata), (vec!["config".to_string()], vec!["loss".to_string()]));
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()) % 8, 0);
        let back = import(&bytes).unwrap();
        assert_eq!(back.read_tensor::<f32>("w").unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(back.read_tensor::<i64>("ids").unwrap(), [5, 6, 7]);
        assert_eq!(back.metadata()["arch"], "mlp");
    }
}
