//! Open files and held locks of the simulated file system.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::fault::OpKind;
use super::state::{check_len, stale, Change, Ino, State};
use crate::io::vfs::FsFile;

/// Locks the shared state. A panic in another thread (a failed assertion
/// in a test) must not hide the state from the rest of the test, and every
/// change is made after its checks, so a poisoned state is still whole.
pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    crate::util::lock(state)
}

/// An open file: an inode of one epoch. After a crash it only returns
/// errors, as the process that opened it is gone.
pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: Ino,
    pub(super) epoch: u64,
    /// The path it was opened with; fault rules match it.
    pub(super) path: PathBuf,
    pub(super) writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("epoch", &self.epoch)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// The state, if this handle is of the running epoch and the power is on.
    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = lock(&self.state);
        if st.epoch != self.epoch {
            return Err(stale());
        }
        st.check_up()?;
        Ok(st)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: opened read-only", self.path.display())))
        }
    }

    /// Passes the gate for `kind` and applies `change`.
    fn change(&self, kind: OpKind, change: Change) -> io::Result<()> {
        let mut st = self.live()?;
        self.check_writable()?;
        let end = match &change {
            Change::Write { offset, data } => offset.checked_add(data.len() as u64),
            Change::SetLen(len) => Some(*len),
        };
        check_len(end, &self.path)?;
        st.gate(kind, &[self.path.as_path()])?;
        let inode = st.inode_mut(self.ino)?;
        if !matches!(&change, Change::Write { data, .. } if data.is_empty()) {
            inode.change(change);
        }
        Ok(())
    }

    fn sync(&self, kind: OpKind) -> io::Result<()> {
        let mut st = self.live()?;
        st.gate(kind, &[self.path.as_path()])?;
        st.inode_mut(self.ino)?.sync();
        Ok(())
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.live()?;
        let content = &st.inode_mut(self.ino)?.current;
        let Some(rest) = usize::try_from(offset).ok().and_then(|o| content.get(o..)) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.change(OpKind::Write, Change::Write { offset, data: buf.to_vec() })
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.live()?;
        Ok(st.inode_mut(self.ino)?.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.change(OpKind::SetLen, Change::SetLen(len))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(OpKind::SyncData)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(OpKind::SyncAll)
    }

    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        // A hint only: nothing becomes durable and nothing is counted, but a
        // dead machine or handle still answers with an error.
        self.live().map(drop)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if st.epoch != self.epoch {
            return;
        }
        if let Some(inode) = st.inodes.get_mut(&self.ino) {
            inode.handles = inode.handles.saturating_sub(1);
        }
        // The last handle of a removed file frees it.
        st.maybe_free(self.ino);
    }
}

/// What an [`FsLock`](crate::io::FsLock) from `SimFs::try_lock` holds.
pub(super) struct LockHold {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) key: PathBuf,
    pub(super) id: u64,
}

impl fmt::Debug for LockHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockHold").field("key", &self.key).field("id", &self.id).finish()
    }
}

impl Drop for LockHold {
    fn drop(&mut self) {
        lock(&self.state).unlock(&self.key, self.id);
    }
}
