//! The model behind [`SimFs`](super::SimFs): inodes with durable and pending
//! content, a durable and a current namespace, pending directory
//! operations, and the gate every mutating operation passes (crash point,
//! injected faults, counting).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::fault::{ActiveRule, OpKind};

/// Inode number; never reused within one [`State`].
pub(super) type Ino = u64;

/// The largest file the simulation holds. Larger writes or `set_len` fail
/// with `FileTooLarge` instead of trying to allocate the memory.
pub(super) const MAX_FILE_LEN: u64 = 1 << 32;

/// What a name in the namespace refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    File(Ino),
    Dir,
}

/// Full key (see [`super::path`]) to entry. The root is implicit. Path keys
/// order parents before their children, which the orphan sweep relies on.
pub(super) type Namespace = BTreeMap<PathBuf, Entry>;

/// A change to a file's content not yet synced.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// A file's content.
#[derive(Debug, Default)]
pub(super) struct Inode {
    /// What survives power loss for sure.
    pub durable: Vec<u8>,
    /// `durable` with every pending change applied: what reads see. Kept
    /// rather than recomputed so reads stay cheap.
    pub current: Vec<u8>,
    /// Changes since the last sync, in order.
    pub pending: Vec<Change>,
    /// Open handles of the current epoch; an unlinked inode lives while
    /// one is open, as in POSIX.
    pub handles: usize,
}

impl Inode {
    pub(super) fn with_content(content: Vec<u8>) -> Self {
        Inode { durable: content.clone(), current: content, pending: Vec::new(), handles: 0 }
    }

    pub(super) fn change(&mut self, change: Change) {
        apply_change(&mut self.current, &change);
        self.pending.push(change);
    }

    pub(super) fn sync(&mut self) {
        for change in self.pending.drain(..) {
            apply_change(&mut self.durable, &change);
        }
    }
}

/// Applies a change to content. Offsets and lengths were checked against
/// [`MAX_FILE_LEN`] when the change was made, so the conversions hold.
pub(super) fn apply_change(buf: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write { offset, data } => {
            let Ok(start) = usize::try_from(*offset) else { return };
            let Some(end) = start.checked_add(data.len()) else { return };
            if data.is_empty() {
                // pwrite of nothing does not extend the file.
                return;
            }
            if buf.len() < end {
                buf.resize(end, 0);
            }
            if let Some(dst) = buf.get_mut(start..end) {
                dst.copy_from_slice(data);
            }
        }
        Change::SetLen(len) => {
            if let Ok(len) = usize::try_from(*len) {
                buf.resize(len, 0);
            }
        }
    }
}

/// A pending directory operation, recorded against the directory that
/// holds the entry. Each one checks, when applied to a namespace that may
/// lack earlier operations, that it still makes sense, and is skipped if
/// not: a crash may keep any subset.
#[derive(Debug, Clone)]
pub(super) enum DirOp {
    /// A new, empty file.
    Create { name: OsString, ino: Ino },
    /// A new directory.
    Mkdir { name: OsString },
    /// `remove_file`, and the leaving half of a rename across directories.
    Remove { name: OsString, ino: Ino },
    /// A rename within one directory: one operation, so no crash can keep
    /// half of it.
    Rename { from: OsString, to: OsString, ino: Ino },
    /// The arriving half of a rename across directories. Its halves become
    /// durable with their own directories; a crash may keep one without
    /// the other (the file under both names, or under neither), which POSIX
    /// allows.
    LinkIn { name: OsString, ino: Ino },
}

impl DirOp {
    pub(super) fn ino(&self) -> Option<Ino> {
        match self {
            DirOp::Create { ino, .. }
            | DirOp::Remove { ino, .. }
            | DirOp::Rename { ino, .. }
            | DirOp::LinkIn { ino, .. } => Some(*ino),
            DirOp::Mkdir { .. } => None,
        }
    }

    /// Applies the operation to `ns`, if it makes sense there.
    pub(super) fn apply(&self, dir: &Path, ns: &mut Namespace) {
        match self {
            DirOp::Create { name, ino } => {
                ns.entry(dir.join(name)).or_insert(Entry::File(*ino));
            }
            DirOp::Mkdir { name } => {
                ns.entry(dir.join(name)).or_insert(Entry::Dir);
            }
            DirOp::Remove { name, ino } => {
                let key = dir.join(name);
                if ns.get(&key) == Some(&Entry::File(*ino)) {
                    ns.remove(&key);
                }
            }
            DirOp::Rename { from, to, ino } => {
                let (from, to) = (dir.join(from), dir.join(to));
                if ns.get(&from) == Some(&Entry::File(*ino)) && ns.get(&to) != Some(&Entry::Dir) {
                    ns.remove(&from);
                    ns.insert(to, Entry::File(*ino));
                }
            }
            DirOp::LinkIn { name, ino } => {
                let key = dir.join(name);
                if ns.get(&key) != Some(&Entry::Dir) {
                    ns.insert(key, Entry::File(*ino));
                }
            }
        }
    }
}

/// Everything the simulation knows, behind one mutex.
#[derive(Debug, Default)]
pub(super) struct State {
    pub inodes: BTreeMap<Ino, Inode>,
    pub next_ino: Ino,
    /// What reads and lookups see.
    pub current: Namespace,
    /// What survives power loss for sure.
    pub durable: Namespace,
    /// Directory key to its operations since its last sync, in order.
    pub dir_pending: BTreeMap<PathBuf, Vec<DirOp>>,
    /// Mutating operations counted so far.
    pub ops: u64,
    /// Of those, the fsync family (`sync_data`, `sync_all`, `sync_dir`).
    pub syncs: u64,
    /// The op count at which the power goes.
    pub crash_at: Option<u64>,
    pub down: bool,
    pub rules: Vec<ActiveRule>,
    /// Bumped by every crash; handles of an older epoch are stale.
    pub epoch: u64,
    /// Held locks: key to the id of the guard that holds it.
    pub locks: HashMap<PathBuf, u64>,
    pub next_lock: u64,
}

pub(super) fn power_loss() -> io::Error {
    io::Error::other("simulated power loss")
}

pub(super) fn stale() -> io::Error {
    io::Error::other("stale handle: the simulated machine lost power since this file was opened")
}

impl State {
    /// Fails every operation once the power is gone.
    pub(super) fn check_up(&self) -> io::Result<()> {
        if self.down {
            Err(power_loss())
        } else {
            Ok(())
        }
    }

    /// The gate of every mutating operation, passed after the operation's
    /// own checks and before it changes anything: reaches the crash point
    /// (the operation does not happen and is not counted), or counts the
    /// operation and fails it if a fault rule says so.
    pub(super) fn gate(&mut self, kind: OpKind, paths: &[&Path]) -> io::Result<()> {
        self.check_up()?;
        if self.crash_at.is_some_and(|at| self.ops >= at) {
            self.down = true;
            return Err(power_loss());
        }
        self.ops = self.ops.saturating_add(1);
        if matches!(kind, OpKind::SyncData | OpKind::SyncAll | OpKind::SyncDir) {
            self.syncs = self.syncs.saturating_add(1);
        }
        // Every rule sees the operation, so each one's skip count means
        // "matching operations", whatever the other rules do.
        let mut fault = None;
        for rule in &mut self.rules {
            let f = rule.observe(kind, paths);
            fault = fault.or(f);
        }
        match fault {
            Some(f) => Err(f.to_io_error()),
            None => Ok(()),
        }
    }

    /// Whether `key` is a directory (the root always is) in the current view.
    pub(super) fn is_dir(&self, key: &Path) -> bool {
        key.as_os_str().is_empty() || self.current.get(key) == Some(&Entry::Dir)
    }

    /// Checks that `key`'s directory exists, for creating an entry in it.
    pub(super) fn check_parent(&self, dir: &Path, shown: &Path) -> io::Result<()> {
        if self.is_dir(dir) {
            return Ok(());
        }
        match self.current.get(dir) {
            Some(Entry::File(_)) => {
                Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{}: a parent is a file", shown.display())))
            }
            _ => Err(not_found(shown)),
        }
    }

    pub(super) fn record(&mut self, dir: &Path, op: DirOp) {
        self.dir_pending.entry(dir.to_path_buf()).or_default().push(op);
    }

    pub(super) fn new_inode(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.saturating_add(1);
        self.inodes.insert(ino, Inode::default());
        ino
    }

    /// Frees `ino` if nothing can reach it any more: no name in either
    /// view, no pending directory operation (a crash could bring it back),
    /// no open handle.
    pub(super) fn maybe_free(&mut self, ino: Ino) {
        let open = self.inodes.get(&ino).is_some_and(|i| i.handles > 0);
        let named = self.current.values().chain(self.durable.values()).any(|e| *e == Entry::File(ino));
        let pending = self.dir_pending.values().flatten().any(|op| op.ino() == Some(ino));
        if !open && !named && !pending {
            self.inodes.remove(&ino);
        }
    }

    /// Frees every inode nothing can reach; see [`State::maybe_free`].
    pub(super) fn collect_garbage(&mut self) {
        let reachable = self.reachable();
        self.inodes.retain(|ino, inode| inode.handles > 0 || reachable.contains(ino));
    }

    fn reachable(&self) -> BTreeSet<Ino> {
        let names = self.current.values().chain(self.durable.values()).filter_map(|e| match e {
            Entry::File(ino) => Some(*ino),
            Entry::Dir => None,
        });
        let pending = self.dir_pending.values().flatten().filter_map(DirOp::ino);
        names.chain(pending).collect()
    }
}

pub(super) fn not_found(shown: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file or directory", shown.display()))
}

pub(super) fn is_a_dir(shown: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::IsADirectory, format!("{}: is a directory", shown.display()))
}

/// Checks that content may grow to `end` bytes.
pub(super) fn check_len(end: Option<u64>, shown: &Path) -> io::Result<()> {
    match end {
        Some(end) if end <= MAX_FILE_LEN => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{}: the simulated file system holds files up to {MAX_FILE_LEN} bytes", shown.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_in_order() {
        let mut buf = b"hello".to_vec();
        apply_change(&mut buf, &Change::Write { offset: 7, data: b"xy".to_vec() });
        assert_eq!(buf, b"hello\0\0xy");
        apply_change(&mut buf, &Change::SetLen(3));
        assert_eq!(buf, b"hel");
        apply_change(&mut buf, &Change::Write { offset: 10, data: Vec::new() });
        assert_eq!(buf, b"hel");
        apply_change(&mut buf, &Change::SetLen(5));
        assert_eq!(buf, b"hel\0\0");
    }

    #[test]
    fn dir_ops_that_make_no_sense_are_skipped() {
        let dir = Path::new("d");
        let mut ns = Namespace::new();
        DirOp::Rename { from: "a".into(), to: "b".into(), ino: 1 }.apply(dir, &mut ns);
        assert!(ns.is_empty());
        DirOp::Create { name: "a".into(), ino: 1 }.apply(dir, &mut ns);
        DirOp::Create { name: "a".into(), ino: 2 }.apply(dir, &mut ns);
        assert_eq!(ns.get(Path::new("d/a")), Some(&Entry::File(1)));
        DirOp::Remove { name: "a".into(), ino: 2 }.apply(dir, &mut ns);
        assert_eq!(ns.get(Path::new("d/a")), Some(&Entry::File(1)));
        DirOp::Rename { from: "a".into(), to: "b".into(), ino: 1 }.apply(dir, &mut ns);
        assert_eq!(ns.get(Path::new("d/b")), Some(&Entry::File(1)));
        assert_eq!(ns.get(Path::new("d/a")), None);
    }
}
