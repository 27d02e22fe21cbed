//! Namespace operations on the current view: each checks its arguments,
//! passes the gate, changes the current view and records a pending
//! directory operation for the directory holding the entry.
//!
//! A call that fails its own checks (`NotFound`, `AlreadyExists`, …)
//! changes nothing and is not counted, the way a failed system call writes
//! nothing to the disk; once the power is gone every call fails first with
//! the power-loss error.

use std::io;
use std::path::{Path, PathBuf};

use super::fault::OpKind;
use super::path::{key, split};
use super::state::{is_a_dir, not_found, DirOp, Entry, Ino, Inode, State};
use crate::io::vfs::{OpenMode, Stat};

impl State {
    /// Opens `path`, creating it if `mode` says so; counts one open handle.
    pub(super) fn open(&mut self, path: &Path, mode: OpenMode) -> io::Result<Ino> {
        self.check_up()?;
        let key = key(path)?;
        let ino = match self.current.get(&key) {
            Some(Entry::File(_)) if mode == OpenMode::CreateNew => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: file exists", path.display())))
            }
            Some(Entry::File(ino)) => *ino,
            Some(Entry::Dir) => return Err(is_a_dir(path)),
            None if matches!(mode, OpenMode::Read | OpenMode::Write) => {
                // Name the missing parent the same way a create would.
                if let Some((dir, _)) = split(&key) {
                    self.check_parent(dir, path)?;
                }
                return Err(not_found(path));
            }
            None => self.create(&key, path)?,
        };
        let inode = self.inode_mut(ino)?;
        inode.handles = inode.handles.saturating_add(1);
        Ok(ino)
    }

    /// Creates an empty file at `key`, which must be free.
    fn create(&mut self, key: &Path, shown: &Path) -> io::Result<Ino> {
        let Some((dir, name)) = split(key) else {
            return Err(is_a_dir(shown));
        };
        self.check_parent(dir, shown)?;
        self.gate(OpKind::Create, &[shown])?;
        let ino = self.new_inode();
        self.current.insert(key.to_path_buf(), Entry::File(ino));
        self.record(dir, DirOp::Create { name: name.to_os_string(), ino });
        Ok(ino)
    }

    pub(super) fn inode_mut(&mut self, ino: Ino) -> io::Result<&mut Inode> {
        // Unreachable while handles are counted right; an error, not a
        // panic, if that ever breaks.
        self.inodes.get_mut(&ino).ok_or_else(|| io::Error::other(format!("simulated inode {ino} is gone")))
    }

    pub(super) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_up()?;
        let (fk, tk) = (key(from)?, key(to)?);
        let (Some((fdir, fname)), Some((tdir, tname))) = (split(&fk), split(&tk)) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot rename the root"));
        };
        let ino = match self.current.get(&fk) {
            None => return Err(not_found(from)),
            Some(Entry::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{}: the simulated file system does not rename directories", from.display()),
                ))
            }
            Some(Entry::File(ino)) => *ino,
        };
        self.check_parent(tdir, to)?;
        let replaced = match self.current.get(&tk) {
            Some(Entry::Dir) => return Err(is_a_dir(to)),
            Some(Entry::File(old)) => Some(*old),
            None => None,
        };
        self.gate(OpKind::Rename, &[from, to])?;
        if replaced == Some(ino) {
            // Two names of one file (or one name twice): POSIX does nothing.
            return Ok(());
        }
        self.current.remove(&fk);
        self.current.insert(tk.clone(), Entry::File(ino));
        if fdir == tdir {
            self.record(fdir, DirOp::Rename { from: fname.to_os_string(), to: tname.to_os_string(), ino });
        } else {
            self.record(fdir, DirOp::Remove { name: fname.to_os_string(), ino });
            self.record(tdir, DirOp::LinkIn { name: tname.to_os_string(), ino });
        }
        if let Some(old) = replaced {
            self.maybe_free(old);
        }
        Ok(())
    }

    /// `rename`, refused with `AlreadyExists` when `to` exists.
    pub(super) fn rename_noreplace(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_up()?;
        if self.current.contains_key(&key(to)?) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: file exists", to.display())));
        }
        self.rename(from, to)
    }

    /// What `path` is in the current view.
    pub(super) fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.check_up()?;
        match self.current.get(&key(path)?) {
            None => Err(not_found(path)),
            Some(Entry::Dir) => Ok(Stat { is_dir: true, len: 0, modified: None }),
            Some(Entry::File(ino)) => {
                let len = self.inodes.get(ino).map_or(0, |i| i.current.len() as u64);
                Ok(Stat { is_dir: false, len, modified: None })
            }
        }
    }

    pub(super) fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.check_up()?;
        let key = key(path)?;
        let Some((dir, name)) = split(&key) else {
            return Err(is_a_dir(path));
        };
        let ino = match self.current.get(&key) {
            None => return Err(not_found(path)),
            Some(Entry::Dir) => return Err(is_a_dir(path)),
            Some(Entry::File(ino)) => *ino,
        };
        self.gate(OpKind::Remove, &[path])?;
        self.current.remove(&key);
        self.record(dir, DirOp::Remove { name: name.to_os_string(), ino });
        self.maybe_free(ino);
        Ok(())
    }

    pub(super) fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        self.check_up()?;
        let key = key(path)?;
        let mut missing = Vec::new();
        let mut prefix = PathBuf::new();
        for part in key.iter() {
            prefix.push(part);
            match self.current.get(&prefix) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) if prefix == key => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: a file is in the way", path.display()),
                    ))
                }
                Some(Entry::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{}: a parent is a file", path.display()),
                    ))
                }
                None => missing.push(prefix.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.gate(OpKind::CreateDir, &[path])?;
        for dir_key in missing {
            if let Some((parent, name)) = split(&dir_key) {
                self.record(parent, DirOp::Mkdir { name: name.to_os_string() });
            }
            self.current.insert(dir_key, Entry::Dir);
        }
        Ok(())
    }

    /// Checks that `key` is a directory of the current view.
    fn check_dir(&self, key: &Path, shown: &Path) -> io::Result<()> {
        if self.is_dir(key) {
            return Ok(());
        }
        match self.current.get(key) {
            Some(Entry::File(_)) => {
                Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{}: not a directory", shown.display())))
            }
            _ => Err(not_found(shown)),
        }
    }

    pub(super) fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.check_up()?;
        let key = key(dir)?;
        self.check_dir(&key, dir)?;
        self.gate(OpKind::SyncDir, &[dir])?;
        if let Some(ops) = self.dir_pending.remove(&key) {
            for op in &ops {
                op.apply(&key, &mut self.durable);
            }
            // Removes made durable leave inodes nothing refers to.
            self.collect_garbage();
        }
        Ok(())
    }

    pub(super) fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check_up()?;
        let key = key(dir)?;
        self.check_dir(&key, dir)?;
        let names = self
            .current
            .keys()
            .filter(|k| k.parent() == Some(key.as_path()))
            // Names that are not UTF-8 are not cairn's, as with `StdFs`.
            .filter_map(|k| k.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    /// Takes the lock on `path` (creating the file if missing); returns the
    /// key and the id the guard must show to release it.
    pub(super) fn try_lock(&mut self, path: &Path) -> io::Result<(PathBuf, u64)> {
        self.check_up()?;
        let key = key(path)?;
        if self.locks.contains_key(&key) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another user", path.display()),
            ));
        }
        match self.current.get(&key) {
            Some(Entry::File(_)) => {}
            Some(Entry::Dir) => return Err(is_a_dir(path)),
            None => {
                self.create(&key, path)?;
            }
        }
        let id = self.next_lock;
        self.next_lock = self.next_lock.saturating_add(1);
        self.locks.insert(key.clone(), id);
        Ok((key, id))
    }

    /// Releases the lock on `key` if guard `id` still holds it: a guard
    /// from before a crash must not release a lock taken after it.
    pub(super) fn unlock(&mut self, key: &Path, id: u64) {
        if self.locks.get(key) == Some(&id) {
            self.locks.remove(key);
        }
    }
}
