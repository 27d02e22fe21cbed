//! anomalyzer's state directory: `anomalyzer.snap`, bincode 1 of
//! `{version: u8 = 1, data: Vec<f64>}` (the version byte, a u64 LE count,
//! the values as f64 LE), and `anomalyzer.wal`, the values pushed since,
//! as 9-byte records `0xAE` + f64 LE. Recovery is the snapshot's values
//! followed by the log's, as anomalyzer's own recovery replays them: a torn
//! last record (a push cut by a crash) is dropped, and a record with
//! another first byte stops the replay there. Both are reported.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::safetensors::ImportReport;
use super::sniff::Format;
use crate::error::{Error, Result};
use crate::format::{CheckpointWriter, ChunkSpec, DType, WriterOptions};

/// The snapshot's file name in the directory.
pub const SNAPSHOT_FILE: &str = "anomalyzer.snap";
/// The log's file name in the directory.
pub const LOG_FILE: &str = "anomalyzer.wal";
/// The chunk that holds the values.
pub const DATA_CHUNK: &str = "data";

/// First byte of every log record.
const RECORD_MAGIC: u8 = 0xAE;
/// A log record's size.
const RECORD: u64 = 9;
/// The snapshot's only version.
const SNAPSHOT_VERSION: u8 = 1;

/// Whether `dir` looks like anomalyzer's state directory.
pub(crate) fn is_state_dir(dir: &Path) -> bool {
    dir.join(SNAPSHOT_FILE).is_file() || dir.join(LOG_FILE).is_file()
}

fn corrupt(file: &Path, what: &str, offset: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt { file: file.display().to_string(), what: what.to_string(), offset, detail: detail.into() }
}

/// The snapshot's values: where they start and how many there are.
fn check_snapshot(path: &Path, file: &mut File, len: u64, notes: &mut Vec<String>) -> Result<u64> {
    let mut head = [0u8; 9];
    if len < 9 {
        return Err(corrupt(path, "anomalyzer snapshot", 0, format!("{len} bytes, the header takes 9")));
    }
    file.read_exact(&mut head).map_err(|e| Error::io("reading", path, e))?;
    let [version, count @ ..] = head;
    if version != SNAPSHOT_VERSION {
        return Err(Error::Unsupported {
            file: path.display().to_string(),
            feature: format!("anomalyzer snapshot version {version} (only {SNAPSHOT_VERSION} is known)"),
        });
    }
    let count = u64::from_le_bytes(count);
    let room = (len - 9) / 8;
    if count > room {
        return Err(corrupt(
            path,
            "anomalyzer snapshot",
            1,
            format!("{count} values declared, the file has room for {room}"),
        ));
    }
    let extra = len - 9 - count * 8;
    if extra > 0 {
        notes.push(format!("{}: {extra} bytes after the snapshot's values were not imported", path.display()));
    }
    Ok(count)
}

/// How many whole, well-formed records the log holds before it ends or
/// stops, with notes on a torn tail or a bad record.
fn scan_log(path: &Path, len: u64, notes: &mut Vec<String>, stopped: &mut Option<serde_json::Value>) -> Result<u64> {
    let mut r = BufReader::new(File::open(path).map_err(|e| Error::io("opening", path, e))?);
    let whole = len / RECORD;
    let mut rec = [0u8; RECORD as usize];
    for i in 0..whole {
        r.read_exact(&mut rec).map_err(|e| Error::io("reading", path, e))?;
        let [first, ..] = rec;
        if first != RECORD_MAGIC {
            let offset = i * RECORD;
            notes.push(format!(
                "{}: record {i} at offset {offset} starts with {:#04x}, not {RECORD_MAGIC:#04x}: the replay stops there, \
                 as anomalyzer's does ({} bytes after it not imported)",
                path.display(),
                first,
                len - offset
            ));
            *stopped = Some(json!({"record": i, "offset": offset, "byte": first, "bytes_left": len - offset}));
            return Ok(i);
        }
    }
    let torn = len % RECORD;
    if torn > 0 {
        notes.push(format!(
            "{}: a torn last record of {torn} bytes at offset {} was dropped (a push cut short by a crash)",
            path.display(),
            whole * RECORD
        ));
    }
    Ok(whole)
}

/// The log's values: each record without its first byte.
struct LogValues<R> {
    inner: R,
    left: u64,
    rec: [u8; RECORD as usize],
    at: usize,
}

impl<R: Read> Read for LogValues<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.at == 0 || self.at == RECORD as usize {
                if self.left == 0 {
                    break;
                }
                self.inner.read_exact(&mut self.rec)?;
                self.left -= 1;
                self.at = 1;
            }
            let (Some(src), Some(dst)) = (self.rec.get(self.at..), buf.get_mut(n..)) else { break };
            let k = src.len().min(dst.len());
            if let (Some(d), Some(s)) = (dst.get_mut(..k), src.get(..k)) {
                d.copy_from_slice(s);
            }
            self.at += k;
            n += k;
        }
        Ok(n)
    }
}

/// Imports anomalyzer's state directory `dir` into a new checkpoint at
/// `out`: one f64 tensor chunk [`DATA_CHUNK`] holding the snapshot's values
/// followed by the log's, as anomalyzer recovers them. A torn last record
/// and a record that stops the replay are named in the report's notes and,
/// for the latter, in the metadata (`wal_stopped_at`). `out` is published
/// durably, and nothing is left there on failure.
///
/// # Errors
/// [`Error::NotFound`] if `dir` holds neither file; [`Error::Corrupt`] for
/// a snapshot whose count does not fit its file; [`Error::Unsupported`] for
/// another snapshot version; [`Error::Io`] if reading or writing fails.
pub fn from_anomalyzer(dir: impl AsRef<Path>, out: impl AsRef<Path>, opts: WriterOptions) -> Result<ImportReport> {
    let dir = dir.as_ref();
    if !is_state_dir(dir) {
        return Err(Error::NotFound {
            what: format!("{SNAPSHOT_FILE} or {LOG_FILE} in {}", dir.display()),
            source: None,
        });
    }
    let mut notes = Vec::new();
    let (snap_path, log_path): (PathBuf, PathBuf) = (dir.join(SNAPSHOT_FILE), dir.join(LOG_FILE));
    let mut snap = None;
    if snap_path.is_file() {
        let mut f = File::open(&snap_path).map_err(|e| Error::io("opening", &snap_path, e))?;
        let len = f.metadata().map_err(|e| Error::io("reading", &snap_path, e))?.len();
        let count = check_snapshot(&snap_path, &mut f, len, &mut notes)?;
        snap = Some((f, count));
    }
    let mut stopped = None;
    let mut log = None;
    if log_path.is_file() {
        let len = std::fs::metadata(&log_path).map_err(|e| Error::io("reading", &log_path, e))?.len();
        let records = scan_log(&log_path, len, &mut notes, &mut stopped)?;
        log = Some(records);
    }
    let snap_count = snap.as_ref().map_or(0, |(_, c)| *c);
    let log_count = log.unwrap_or(0);
    let total = snap_count + log_count;
    let mut w = CheckpointWriter::create(out.as_ref(), opts)?;
    w.set_metadata("snapshot_values", json!(snap_count));
    w.set_metadata("log_values", json!(log_count));
    let metadata = 2 + usize::from(stopped.is_some());
    if let Some(s) = stopped {
        w.set_metadata("wal_stopped_at", s);
    }
    let snap_values: Box<dyn Read> = match snap {
        Some((f, count)) => Box::new(BufReader::new(f).take(count * 8)),
        None => Box::new(std::io::empty()),
    };
    let log_values: Box<dyn Read> = match log {
        Some(records) => {
            let f = File::open(&log_path).map_err(|e| Error::io("opening", &log_path, e))?;
            Box::new(LogValues { inner: BufReader::new(f), left: records, rec: [0; RECORD as usize], at: 0 })
        }
        None => Box::new(std::io::empty()),
    };
    let got = w.add_reader(DATA_CHUNK, &ChunkSpec::tensor(DType::F64, &[total]), snap_values.chain(log_values))?;
    if got != total * 8 {
        return Err(corrupt(dir, "anomalyzer state", 0, format!("{got} of {} bytes could be read", total * 8)));
    }
    w.finish()?;
    Ok(ImportReport { format: Format::Anomalyzer, chunks: 1, bytes: got, metadata, notes })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::format::Checkpoint;

    /// A snapshot as anomalyzer writes it: bincode 1 of `{version: 1, data}`.
    fn snapshot(values: &[f64]) -> Vec<u8> {
        let mut f = vec![SNAPSHOT_VERSION];
        f.extend((values.len() as u64).to_le_bytes());
        for v in values {
            f.extend(v.to_le_bytes());
        }
        f
    }

    /// Log records as anomalyzer appends them, one per push.
    fn log(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| [&[RECORD_MAGIC][..], &v.to_le_bytes()].concat()).collect()
    }

    fn import(snap: Option<Vec<u8>>, wal: Option<Vec<u8>>) -> (tempfile::TempDir, Result<ImportReport>) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        if let Some(s) = snap {
            std::fs::write(state.join(SNAPSHOT_FILE), s).unwrap();
        }
        if let Some(w) = wal {
            std::fs::write(state.join(LOG_FILE), w).unwrap();
        }
        let out = dir.path().join("state.cairn");
        let r = from_anomalyzer(&state, &out, WriterOptions::default());
        assert_eq!(r.is_ok(), out.exists(), "published only on success");
        (dir, r)
    }

    fn data(dir: &tempfile::TempDir) -> (Vec<f64>, Checkpoint) {
        let ck = Checkpoint::open(dir.path().join("state.cairn")).unwrap();
        (ck.read_tensor::<f64>(DATA_CHUNK).unwrap(), ck)
    }

    #[test]
    fn recovery_is_the_snapshot_then_the_log_without_its_torn_tail() {
        let mut wal = log(&[4.0, 5.5, -6.25]);
        wal.extend(&log(&[7.0])[..5]);
        let (dir, r) = import(Some(snapshot(&[1.0, 2.0, 3.0])), Some(wal));
        let r = r.unwrap();
        assert_eq!(data(&dir).0, [1.0, 2.0, 3.0, 4.0, 5.5, -6.25]);
        assert!(r.notes.iter().any(|n| n.contains("torn last record of 5 bytes at offset 27")), "{:?}", r.notes);
        let (_, ck) = data(&dir);
        assert_eq!(
            (ck.metadata()["snapshot_values"].clone(), ck.metadata()["log_values"].clone()),
            (json!(3), json!(3))
        );
        // Either file alone.
        let (dir, _) = import(Some(snapshot(&[9.0])), None);
        assert_eq!(data(&dir).0, [9.0]);
        let (dir, _) = import(None, Some(log(&[8.0, 7.0])));
        assert_eq!(data(&dir).0, [8.0, 7.0]);
    }

    #[test]
    fn a_record_with_a_wrong_magic_stops_the_replay_and_is_reported() {
        let mut wal = log(&[1.0, 2.0, 3.0, 4.0]);
        wal[18] = 0x00; // record 2
        let (dir, r) = import(Some(snapshot(&[0.5])), Some(wal));
        let r = r.unwrap();
        assert_eq!(data(&dir).0, [0.5, 1.0, 2.0]);
        assert!(r.notes.iter().any(|n| n.contains("record 2 at offset 18")), "{:?}", r.notes);
        let (_, ck) = data(&dir);
        assert_eq!(ck.metadata()["wal_stopped_at"], json!({"record": 2, "offset": 18, "byte": 0, "bytes_left": 18}));
    }

    #[test]
    fn bad_snapshots_are_refused_and_leave_nothing() {
        let mut lying = snapshot(&[1.0, 2.0]);
        lying[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        let (_, r) = import(Some(lying), Some(log(&[1.0])));
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }) && e.to_string().contains("room for 2"), "{e}");
        let mut v2 = snapshot(&[1.0]);
        v2[0] = 2;
        assert!(matches!(import(Some(v2), None).1, Err(Error::Unsupported { .. })));
        assert!(matches!(import(Some(vec![1, 2]), None).1, Err(Error::Corrupt { .. })));
        assert!(matches!(import(None, None).1, Err(Error::NotFound { .. })));
        // Bytes after the values are named, not silently dropped.
        let (_, r) = import(Some([snapshot(&[1.0]), vec![0; 3]].concat()), None);
        assert!(r.unwrap().notes.iter().any(|n| n.contains("3 bytes after")));
    }
}
