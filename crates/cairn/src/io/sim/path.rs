//! Paths as keys of the simulated namespace.
//!
//! The simulation has one root and no working directory, so `/a/b`, `a/b`
//! and `./a/b` all name the same entry. A key is the path's normal
//! components only; the root is the empty key.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The key of `path`.
///
/// # Errors
/// `InvalidInput` for `..` or a Windows prefix: resolving them would need a
/// working directory and symlink rules the simulation does not model.
pub(super) fn key(path: &Path) -> io::Result<PathBuf> {
    let mut key = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => key.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: the simulated file system takes no `..` or prefixes", path.display()),
                ))
            }
        }
    }
    Ok(key)
}

/// The directory holding a non-root key, and the entry's name in it.
pub(super) fn split(key: &Path) -> Option<(&Path, &OsStr)> {
    Some((key.parent()?, key.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_share_a_key() {
        let k = key(Path::new("/a/./b")).ok();
        assert_eq!(k, key(Path::new("a/b")).ok());
        assert_eq!(k, Some(PathBuf::from("a/b")));
        assert_eq!(key(Path::new("/")).ok(), Some(PathBuf::new()));
        assert_eq!(key(Path::new(".")).ok(), Some(PathBuf::new()));
        assert!(matches!(key(Path::new("a/../b")), Err(e) if e.kind() == io::ErrorKind::InvalidInput));
    }

    #[test]
    fn split_gives_dir_and_name() {
        assert_eq!(split(Path::new("a/b")), Some((Path::new("a"), OsStr::new("b"))));
        assert_eq!(split(Path::new("b")), Some((Path::new(""), OsStr::new("b"))));
        assert_eq!(split(Path::new("")), None);
    }
}
