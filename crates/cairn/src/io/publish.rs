//! Durable publish: write to a temp file in the target's directory, sync it,
//! rename it over the target, sync the directory.

use std::path::{Path, PathBuf};

use super::std_fs::StdFs;
use super::vfs::{dir_of, Fs, FsFile, FsRef, OpenMode};
use crate::error::{Error, Result};

/// Every temp file's name ends with this, after `.<pid>.<nonce>`.
pub const TEMP_SUFFIX: &str = ".cairn-tmp";

/// A file being written under a temporary name beside its final path. It is
/// removed on drop unless [`TempFile::publish`] succeeded.
///
/// Besides positional writes through [`file`](Self::file), it is an
/// [`io::Write`](std::io::Write) that appends from offset 0, so a stream
/// (a chunk read with [`Checkpoint::read_to`](crate::Checkpoint::read_to),
/// a download) can go straight into it. `flush` does nothing: only
/// [`publish`](Self::publish) makes the bytes durable.
#[derive(Debug)]
pub struct TempFile {
    fs: FsRef,
    file: Option<Box<dyn FsFile>>,
    temp: PathBuf,
    target: PathBuf,
    /// Where the next `io::Write` write goes.
    appended: u64,
}

/// Syncs a directory of the real file system so that creates, renames and
/// removes in it are durable.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> Result<()> {
    StdFs.sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))
}

impl TempFile {
    /// Creates `.<name>.<pid>.<nonce>.cairn-tmp` in `target`'s directory on
    /// the real file system.
    ///
    /// # Errors
    /// As [`create_in`](Self::create_in).
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        Self::create_in(StdFs::shared(), target)
    }

    /// Creates `.<name>.<pid>.<nonce>.cairn-tmp` in `target`'s directory on
    /// `fs`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `target` has no file name; [`Error::Io`]
    /// or [`Error::NotFound`] if the file cannot be created.
    pub fn create_in(fs: FsRef, target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            return Err(Error::InvalidArgument(format!("{} has no UTF-8 file name", target.display())));
        };
        let nonce = crate::util::nonce();
        let temp = dir_of(&target).join(format!(".{name}.{}.{nonce}{TEMP_SUFFIX}", std::process::id()));
        let file =
            fs.open(&temp, OpenMode::CreateNew).map_err(|e| Error::io("creating a temp file beside", &target, e))?;
        Ok(TempFile { fs, file: Some(file), temp, target, appended: 0 })
    }

    /// The open temp file.
    pub fn file(&self) -> Option<&dyn FsFile> {
        self.file.as_deref()
    }

    /// The temp file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the file, renames it to the target and syncs the directory.
    /// On error the temp file is removed and the target is untouched or, if
    /// the rename happened, the directory sync is what failed.
    ///
    /// # Errors
    /// [`Error::Io`] naming the step that failed.
    pub fn publish(self) -> Result<PathBuf> {
        self.publish_as(false)
    }

    /// As [`publish`](Self::publish), but only if nothing is at the target:
    /// of concurrent publishers of one target exactly one succeeds.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] naming the target if it exists (the temp
    /// file is removed); otherwise as [`publish`](Self::publish).
    pub fn publish_new(self) -> Result<PathBuf> {
        self.publish_as(true)
    }

    fn publish_as(self, create_only: bool) -> Result<PathBuf> {
        self.publish_steps(create_only, Steps::All)
    }

    /// Publishes with only some of the syncs: for a caller that synced the
    /// file itself ([`Steps::Rename`] after its own `sync_all` is still
    /// durable) or that needs no durability at all.
    pub(crate) fn publish_steps(mut self, create_only: bool, steps: Steps) -> Result<PathBuf> {
        let Some(file) = self.file.take() else {
            return Err(Error::Internal(format!("the temp file of {} is already closed", self.target.display())));
        };
        if steps == Steps::All {
            file.sync_all().map_err(|e| Error::io("syncing", &self.temp, e))?;
        }
        drop(file);
        let renamed = if create_only {
            self.fs.rename_noreplace(&self.temp, &self.target)
        } else {
            self.fs.rename(&self.temp, &self.target)
        };
        renamed.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists if create_only => {
                Error::AlreadyExists { what: self.target.display().to_string(), source: Some(Box::new(e)) }
            }
            _ => Error::io("renaming temp file to", &self.target, e),
        })?;
        // The rename is done: the temp path no longer exists, so Drop must not
        // remove anything, even if the directory sync below fails.
        self.temp = PathBuf::new();
        if steps != Steps::NoSync {
            let dir = dir_of(&self.target);
            self.fs.sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))?;
        }
        Ok(self.target.clone())
    }
}

/// Which syncs [`TempFile::publish_steps`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Steps {
    /// Sync the file, rename, sync the directory: durable.
    All,
    /// Rename and sync the directory: durable if the caller synced the file.
    Rename,
    /// Rename only: atomic for readers, undone or damaged by a crash.
    NoSync,
}

impl std::io::Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(file) = self.file.as_deref() else {
            return Err(std::io::Error::other("the temp file is already closed"));
        };
        file.write_at(buf, self.appended)?;
        self.appended += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = self.fs.remove_file(&self.temp);
        }
    }
}

/// The pid in a temp file name `.<name>.<pid>.<nonce>.cairn-tmp`, as
/// written: a decimal integer, or `None` for a name cairn did not make.
fn temp_pid(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(TEMP_SUFFIX)?;
    let mut parts = stem.rsplitn(3, '.');
    let _nonce = parts.next()?;
    let pid = parts.next()?;
    let digits = pid.strip_prefix('-').unwrap_or(pid);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(pid)
}

/// Removes temp files in `dir` on the real file system left by processes
/// that no longer run, and syncs the directory if it removed any. Returns the
/// removed paths.
///
/// # Errors
/// As [`sweep_orphans_in`].
pub fn sweep_orphans(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    sweep_orphans_in(&StdFs, dir.as_ref())
}

/// Removes temp files in `dir` on `fs` left by processes that no longer
/// run, and syncs the directory if it removed any. Returns the removed paths.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be listed, a file removed or the
/// directory synced.
pub fn sweep_orphans_in(fs: &dyn Fs, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let names = fs.list_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for name in names {
        let Some(pid) = temp_pid(&name) else { continue };
        // This process is alive, so its own temp files stay.
        if !super::process_alive(pid) {
            let path = dir.join(&name);
            match fs.remove_file(&path) {
                Ok(()) => removed.push(path),
                // Another sweeper got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing orphan", &path, e)),
            }
        }
    }
    if !removed.is_empty() {
        fs.sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    Ok(removed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn temp_names_carry_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let t = TempFile::create(dir.path().join("a.ckpt")).unwrap();
        let name = t.temp_path().file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(temp_pid(&name), Some(std::process::id().to_string().as_str()));
        assert!(name.starts_with(".a.ckpt."));
    }

    #[test]
    fn sweep_removes_only_dead_writers_files() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above any default pid_max is certainly not running.
        let dead = dir.path().join(format!(".x.ckpt.2147483000.1f{TEMP_SUFFIX}"));
        fs::write(&dead, b"partial").unwrap();
        let live = TempFile::create(dir.path().join("y.ckpt")).unwrap();
        let removed = sweep_orphans(dir.path()).unwrap();
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.temp_path().exists());
    }

    #[test]
    fn sweep_takes_pids_that_name_no_process_for_dead() {
        let dir = tempfile::tempdir().unwrap();
        // `kill(0, 0)` and `kill(-1, 0)` succeed (they address process
        // groups), and the last two do not fit a pid_t: none is a live writer.
        let dead: Vec<PathBuf> = ["0", "-1", "2147483648", "99999999999999999999"]
            .iter()
            .map(|pid| dir.path().join(format!(".x.ckpt.{pid}.1f{TEMP_SUFFIX}")))
            .collect();
        for p in &dead {
            fs::write(p, b"partial").unwrap();
        }
        // Not a name cairn writes (no decimal pid): left alone.
        let foreign = dir.path().join(format!(".x.ckpt.abc.1f{TEMP_SUFFIX}"));
        fs::write(&foreign, b"someone else's").unwrap();
        let mut removed = sweep_orphans(dir.path()).unwrap();
        removed.sort();
        let mut want = dead.clone();
        want.sort();
        assert_eq!(removed, want);
        assert!(foreign.exists());
    }

    #[test]
    fn written_bytes_are_appended_and_published() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.bin");
        let mut t = TempFile::create(&target).unwrap();
        t.write_all(b"hello, ").unwrap();
        t.write_all(b"world").unwrap();
        t.flush().unwrap();
        assert!(!target.exists(), "nothing is visible before publish");
        assert_eq!(fs::read(t.temp_path()).unwrap(), b"hello, world");
        t.publish().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello, world");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_temp_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = TempFile::create(dir.path().join("z.ckpt")).unwrap();
        drop(t);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
