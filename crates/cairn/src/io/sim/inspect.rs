//! Test helpers on [`SimFs`]: look at and set up the disk directly.
//!
//! None of them is a counted operation, none passes the crash point or
//! fault rules, and all of them work while the machine is down, so a test
//! can look at the state at the moment the power went.

use std::io;
use std::path::{Path, PathBuf};

use super::file::lock;
use super::path::{key, split};
use super::state::{apply_change, check_len, not_found, Change, Entry, Inode, Namespace};
use super::SimFs;

/// The inode `path` names in `ns`.
fn file_in(ns: &Namespace, path: &Path) -> io::Result<u64> {
    match ns.get(&key(path)?) {
        Some(Entry::File(ino)) => Ok(*ino),
        Some(Entry::Dir) => {
            Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{}: is a directory", path.display())))
        }
        None => Err(not_found(path)),
    }
}

/// Whether `key` is in `ns` (or the root) and every directory above it too:
/// a name whose directory's own creation is not durable is lost on crash.
fn durably_reachable(ns: &Namespace, key: &Path) -> bool {
    let named = key.as_os_str().is_empty() || ns.contains_key(key);
    named && key.ancestors().skip(1).all(|a| a.as_os_str().is_empty() || ns.get(a) == Some(&Entry::Dir))
}

impl SimFs {
    /// The current content of the file at `path` (what a read sees).
    ///
    /// # Errors
    /// `NotFound` if there is no such file, `IsADirectory` for a directory.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = lock(&self.state);
        let ino = file_in(&st.current, path)?;
        Ok(st.inodes.get(&ino).map(|i| i.current.clone()).unwrap_or_default())
    }

    /// Whether a file or directory is at `path` in the current view.
    pub fn exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        key(path).is_ok_and(|k| st.is_dir(&k) || st.current.contains_key(&k))
    }

    /// What would surely survive a power loss now at `path`: the file's
    /// durable content, if its name and every directory above it are
    /// durable.
    ///
    /// # Errors
    /// `NotFound` if the name is not durable, `IsADirectory` for a directory.
    pub fn durable_read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = lock(&self.state);
        if !durably_reachable(&st.durable, &key(path)?) {
            return Err(not_found(path));
        }
        let ino = file_in(&st.durable, path)?;
        Ok(st.inodes.get(&ino).map(|i| i.durable.clone()).unwrap_or_default())
    }

    /// Whether the name `path` would surely survive a power loss now: it and
    /// every directory above it were made durable by directory syncs.
    pub fn durable_exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        key(path).is_ok_and(|k| durably_reachable(&st.durable, &k))
    }

    /// Every entry of the current view, parents before children, with the
    /// length of each file (`None` for directories). For debugging and
    /// for tests that compare whole trees.
    pub fn list_all(&self) -> Vec<(PathBuf, Option<u64>)> {
        let st = lock(&self.state);
        st.current
            .iter()
            .map(|(k, e)| {
                let len = match e {
                    Entry::File(ino) => Some(st.inodes.get(ino).map_or(0, |i| i.current.len() as u64)),
                    Entry::Dir => None,
                };
                (k.clone(), len)
            })
            .collect()
    }

    /// Overwrites `bytes` at `offset` in the file at `path`, in both its
    /// durable and its current content (extending with zeros if needed): a
    /// disk that rots, for corruption tests. Pending changes are left as
    /// they are.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, `FileTooLarge` past the size
    /// limit.
    pub fn corrupt(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        let ino = file_in(&st.current, path)?;
        check_len(offset.checked_add(bytes.len() as u64), path)?;
        let change = Change::Write { offset, data: bytes.to_vec() };
        let inode = st.inode_mut(ino)?;
        apply_change(&mut inode.durable, &change);
        apply_change(&mut inode.current, &change);
        Ok(())
    }

    /// Puts a file with `content` at `path`, with any missing directories,
    /// all durable at once: a fixture, as if written and synced before the
    /// test began. An existing file's content is replaced (its pending
    /// changes dropped) and stays the same file for open handles.
    ///
    /// # Errors
    /// `InvalidInput` for the root or `..`, `NotADirectory` or
    /// `IsADirectory` if an entry of the other kind is in the way,
    /// `FileTooLarge` past the size limit.
    pub fn put_durable(&self, path: &Path, content: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        let key = key(path)?;
        let Some((dir, _)) = split(&key) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the root is not a file"));
        };
        check_len(Some(content.len() as u64), path)?;
        let mut prefix = PathBuf::new();
        for part in dir.iter() {
            prefix.push(part);
            if st.current.get(&prefix).is_some_and(|e| *e != Entry::Dir) {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{}: a parent is a file", path.display()),
                ));
            }
        }
        if st.current.get(&key) == Some(&Entry::Dir) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{}: is a directory", path.display())));
        }
        let mut prefix = PathBuf::new();
        for part in dir.iter() {
            prefix.push(part);
            st.current.insert(prefix.clone(), Entry::Dir);
            st.durable.insert(prefix.clone(), Entry::Dir);
        }
        match st.current.get(&key) {
            Some(Entry::File(ino)) => {
                let ino = *ino;
                let inode = st.inode_mut(ino)?;
                inode.durable = content.to_vec();
                inode.current = content.to_vec();
                inode.pending.clear();
                st.durable.insert(key, Entry::File(ino));
            }
            _ => {
                let ino = st.new_inode();
                *st.inode_mut(ino)? = Inode::with_content(content.to_vec());
                st.current.insert(key.clone(), Entry::File(ino));
                st.durable.insert(key, Entry::File(ino));
            }
        }
        Ok(())
    }

    /// How many directory operations and file changes are pending (not yet
    /// synced): `(directory operations, file changes)`.
    pub fn pending_counts(&self) -> (usize, usize) {
        let st = lock(&self.state);
        let dir_ops = st.dir_pending.values().map(Vec::len).sum();
        let changes = st.inodes.values().map(|i| i.pending.len()).sum();
        (dir_ops, changes)
    }
}
