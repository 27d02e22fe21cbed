//! StateLog snapshots: checkpoint files named by the LSN they include,
//! published through the io layer (temp file, sync, rename, directory sync).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{Checkpoint, CheckpointWriter, WriterOptions};
use crate::io::{FsRef, OpenMode, TEMP_SUFFIX};

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".cairn";
/// The chunk holding the state.
const STATE_CHUNK: &str = "state";
/// Metadata key holding the snapshot's LSN, checked against its name.
const LSN_KEY: &str = "cairn.statelog.lsn";

/// The file name of the snapshot that includes every op up to `lsn`.
pub(crate) fn file_name(lsn: u64) -> String {
    format!("{PREFIX}{lsn:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|lsn| *lsn <= super::record::MAX_LSN)
}

/// Snapshots in `dir`, newest first.
pub(crate) fn list(fs: &FsRef, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let names = fs.list_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    let mut snaps: Vec<(u64, PathBuf)> =
        names.iter().filter_map(|n| parse_name(n).map(|lsn| (lsn, dir.join(n)))).collect();
    snaps.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(snaps)
}

/// Removes snapshot temp files left by a crash. The caller holds the log's
/// lock, so no one else can be writing one.
pub(crate) fn remove_temps(fs: &FsRef, dir: &Path) -> Result<usize> {
    let names = fs.list_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    let mut removed = 0;
    for name in names.iter().filter(|n| n.starts_with(&format!(".{PREFIX}")) && n.ends_with(TEMP_SUFFIX)) {
        let path = dir.join(name);
        fs.remove_file(&path).map_err(|e| Error::io("removing orphan temp file", &path, e))?;
        removed += 1;
    }
    if removed > 0 {
        fs.sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    Ok(removed)
}

/// Writes and durably publishes the snapshot of `state` at `lsn`.
pub(crate) fn write<S: Serialize>(
    fs: &FsRef,
    dir: &Path,
    lsn: u64,
    state: &S,
    opts: &WriterOptions,
) -> Result<PathBuf> {
    let path = dir.join(file_name(lsn));
    let mut w = CheckpointWriter::create_in(fs.clone(), &path, opts.clone())?;
    w.set_step(lsn);
    w.set_metadata(LSN_KEY, serde_json::json!(lsn));
    w.add_serde(STATE_CHUNK, state)?;
    w.finish()
}

/// Reads and checks the snapshot at `path`, which its name says is at `lsn`.
pub(crate) fn read<S: DeserializeOwned>(fs: &FsRef, path: &Path, lsn: u64) -> Result<S> {
    let file = fs.open(path, OpenMode::Read).map_err(|e| Error::io("opening snapshot", path, e))?;
    let bytes = file.read_all().map_err(|e| Error::io("reading snapshot", path, e))?;
    let ckpt = Checkpoint::from_bytes(bytes).map_err(|e| name_file(e, path))?;
    if ckpt.metadata().get(LSN_KEY).and_then(serde_json::Value::as_u64) != Some(lsn) {
        return Err(Error::Corrupt {
            file: path.display().to_string(),
            what: "snapshot metadata".into(),
            offset: 0,
            detail: format!("the file name says LSN {lsn} but the snapshot does not"),
        });
    }
    ckpt.read_serde(STATE_CHUNK).map_err(|e| name_file(e, path))
}

/// Puts the snapshot's path into errors that say `<memory>`.
fn name_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Corrupt { what, offset, detail, .. } => {
            Error::Corrupt { file: path.display().to_string(), what, offset, detail }
        }
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("snapshot-42.cairn"), None);
        assert_eq!(parse_name(".snapshot-00000000000000000042.cairn.1.2.cairn-tmp"), None);
        assert!(file_name(9) < file_name(10));
    }
}
