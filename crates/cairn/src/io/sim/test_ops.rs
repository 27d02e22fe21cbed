//! Tests of the running file system: what reads see, argument checks,
//! handles, locks, threads and the test helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::file::lock;
use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn kind<T: fmt::Debug>(r: io::Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

#[test]
fn writes_are_read_back_at_once() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    f.write_at(b"hello", 0).unwrap();
    assert_eq!(f.append(b" world").unwrap(), 5);
    f.write_at(b"!", 20).unwrap();
    assert_eq!(f.len().unwrap(), 21);
    let mut want = b"hello world".to_vec();
    want.resize(20, 0);
    want.push(b'!');
    assert_eq!(f.read_all().unwrap(), want);
    assert_eq!(fs.read(p("f")).unwrap(), want);
    let mut buf = [0u8; 4];
    assert_eq!(f.read_at(&mut buf, 19).unwrap(), 2);
    assert_eq!(&buf[..2], b"\0!");
    assert_eq!(f.read_at(&mut buf, 21).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
    assert_eq!(kind(f.read_exact_at(&mut buf, 19)), ErrorKind::UnexpectedEof);
}

#[test]
fn set_len_truncates_and_extends_with_zeros() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    f.write_at(b"abcdef", 0).unwrap();
    f.set_len(3).unwrap();
    assert_eq!(fs.read(p("f")).unwrap(), b"abc");
    f.set_len(5).unwrap();
    assert_eq!(fs.read(p("f")).unwrap(), b"abc\0\0");
    assert_eq!(kind(f.set_len(u64::MAX)), ErrorKind::FileTooLarge);
    assert_eq!(kind(f.write_at(b"x", u64::MAX)), ErrorKind::FileTooLarge);
}

#[test]
fn open_modes_follow_the_contract() {
    let fs = SimFs::new();
    assert_eq!(kind(fs.open(p("f"), OpenMode::Read)), ErrorKind::NotFound);
    assert_eq!(kind(fs.open(p("f"), OpenMode::Write)), ErrorKind::NotFound);
    let f = fs.open(p("f"), OpenMode::CreateNew).unwrap();
    f.write_at(b"keep", 0).unwrap();
    assert_eq!(kind(fs.open(p("f"), OpenMode::CreateNew)), ErrorKind::AlreadyExists);
    // Create never truncates.
    let g = fs.open(p("f"), OpenMode::Create).unwrap();
    assert_eq!(g.read_all().unwrap(), b"keep");
    let r = fs.open(p("f"), OpenMode::Read).unwrap();
    assert_eq!(kind(r.write_at(b"x", 0)), ErrorKind::PermissionDenied);
    assert_eq!(kind(r.set_len(0)), ErrorKind::PermissionDenied);
    assert_eq!(r.read_all().unwrap(), b"keep");
    r.sync_data().unwrap();
    assert_eq!(kind(fs.open(p("missing/f"), OpenMode::Create)), ErrorKind::NotFound);
    assert_eq!(kind(fs.open(p("f/g"), OpenMode::Create)), ErrorKind::NotADirectory);
    fs.create_dir_all(p("d")).unwrap();
    assert_eq!(kind(fs.open(p("d"), OpenMode::Read)), ErrorKind::IsADirectory);
    assert_eq!(kind(fs.open(p("/"), OpenMode::Create)), ErrorKind::IsADirectory);
}

#[test]
fn spellings_of_a_path_are_one_entry() {
    let fs = SimFs::new();
    fs.create_dir_all(p("/a/b")).unwrap();
    fs.open(p("/a/b/f"), OpenMode::Create).unwrap().write_at(b"x", 0).unwrap();
    assert_eq!(fs.read(p("a/b/f")).unwrap(), b"x");
    assert_eq!(fs.read(p("./a/./b/f")).unwrap(), b"x");
    assert_eq!(kind(fs.open(p("a/../a/b/f"), OpenMode::Read)), ErrorKind::InvalidInput);
    assert!(fs.exists(p("/")));
    assert!(fs.exists(p("a")));
}

#[test]
fn rename_moves_and_replaces() {
    let fs = SimFs::new();
    fs.put_durable(p("d/target"), b"old").unwrap();
    let f = fs.open(p("d/tmp"), OpenMode::CreateNew).unwrap();
    f.write_at(b"new", 0).unwrap();
    fs.rename(p("d/tmp"), p("d/target")).unwrap();
    assert!(!fs.exists(p("d/tmp")));
    assert_eq!(fs.read(p("d/target")).unwrap(), b"new");
    // The handle follows the inode, not the name.
    f.write_at(b"N", 0).unwrap();
    assert_eq!(fs.read(p("d/target")).unwrap(), b"New");
    assert_eq!(kind(fs.rename(p("d/tmp"), p("d/x"))), ErrorKind::NotFound);
    assert_eq!(kind(fs.rename(p("d"), p("e"))), ErrorKind::Unsupported);
    assert_eq!(kind(fs.rename(p("d/target"), p("nodir/x"))), ErrorKind::NotFound);
    assert_eq!(kind(fs.rename(p("d/target"), p("d"))), ErrorKind::IsADirectory);
    fs.rename(p("d/target"), p("d/target")).unwrap();
    assert_eq!(fs.read(p("d/target")).unwrap(), b"New");
    fs.create_dir_all(p("e")).unwrap();
    fs.rename(p("d/target"), p("e/moved")).unwrap();
    assert_eq!(fs.read(p("e/moved")).unwrap(), b"New");
    assert_eq!(fs.list_dir(p("d")).unwrap(), Vec::<String>::new());
}

#[test]
fn remove_keeps_open_handles_working() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    f.write_at(b"abc", 0).unwrap();
    fs.remove_file(p("f")).unwrap();
    assert!(!fs.exists(p("f")));
    assert_eq!(kind(fs.read(p("f"))), ErrorKind::NotFound);
    f.write_at(b"d", 3).unwrap();
    f.sync_all().unwrap();
    assert_eq!(f.read_all().unwrap(), b"abcd");
    assert_eq!(kind(fs.remove_file(p("f"))), ErrorKind::NotFound);
    fs.create_dir_all(p("d")).unwrap();
    assert_eq!(kind(fs.remove_file(p("d"))), ErrorKind::IsADirectory);
    // A new file under the old name is a different file.
    let g = fs.open(p("f"), OpenMode::CreateNew).unwrap();
    assert_eq!(g.len().unwrap(), 0);
    assert_eq!(f.len().unwrap(), 4);
}

#[test]
fn unreachable_inodes_are_freed() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    f.write_at(&[1u8; 1000], 0).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.remove_file(p("f")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    assert_eq!(lock(&fs.state).inodes.len(), 1, "an open handle keeps it");
    drop(f);
    assert_eq!(lock(&fs.state).inodes.len(), 0);
    // Removed but not yet durably: a crash could bring it back, so it stays.
    fs.put_durable(p("g"), b"g").unwrap();
    fs.remove_file(p("g")).unwrap();
    assert_eq!(lock(&fs.state).inodes.len(), 1);
    fs.sync_dir(p("")).unwrap();
    assert_eq!(lock(&fs.state).inodes.len(), 0);
}

#[test]
fn directories_are_made_and_listed() {
    let fs = SimFs::new();
    fs.create_dir_all(p("a/b/c")).unwrap();
    fs.create_dir_all(p("a/b")).unwrap();
    fs.open(p("a/f1"), OpenMode::Create).unwrap();
    fs.open(p("a/f2"), OpenMode::Create).unwrap();
    let mut names = fs.list_dir(p("a")).unwrap();
    names.sort();
    assert_eq!(names, ["b", "f1", "f2"]);
    assert_eq!(fs.list_dir(p("/")).unwrap(), ["a"]);
    assert_eq!(fs.list_dir(p("a/b/c")).unwrap(), Vec::<String>::new());
    assert_eq!(kind(fs.list_dir(p("nope"))), ErrorKind::NotFound);
    assert_eq!(kind(fs.list_dir(p("a/f1"))), ErrorKind::NotADirectory);
    assert_eq!(kind(fs.create_dir_all(p("a/f1"))), ErrorKind::AlreadyExists);
    assert_eq!(kind(fs.create_dir_all(p("a/f1/x"))), ErrorKind::NotADirectory);
    assert_eq!(kind(fs.sync_dir(p("nope"))), ErrorKind::NotFound);
    assert_eq!(kind(fs.sync_dir(p("a/f1"))), ErrorKind::NotADirectory);
    let all: Vec<PathBuf> = fs.list_all().into_iter().map(|(k, _)| k).collect();
    assert_eq!(all, ["a", "a/b", "a/b/c", "a/f1", "a/f2"].map(PathBuf::from));
}

#[test]
fn locks_block_and_release_on_drop() {
    let fs = SimFs::new();
    let ops = fs.op_count();
    let guard = fs.try_lock(p("LOCK")).unwrap();
    assert_eq!(fs.op_count(), ops + 1, "creating the lock file is an operation");
    assert!(fs.exists(p("LOCK")));
    assert_eq!(kind(fs.try_lock(p("LOCK"))), ErrorKind::WouldBlock);
    assert_eq!(kind(fs.try_lock(p("/LOCK"))), ErrorKind::WouldBlock);
    let other = fs.try_lock(p("OTHER")).unwrap();
    drop(guard);
    let again = fs.try_lock(p("LOCK")).unwrap();
    assert_eq!(fs.op_count(), ops + 2, "an existing lock file is not created again");
    drop((again, other));
    fs.create_dir_all(p("d")).unwrap();
    assert_eq!(kind(fs.try_lock(p("d"))), ErrorKind::IsADirectory);
    assert_eq!(kind(fs.try_lock(p("nodir/LOCK"))), ErrorKind::NotFound);
}

#[test]
fn clones_and_shared_handles_see_one_disk() {
    let fs = SimFs::new();
    let shared: FsRef = fs.shared();
    shared.open(p("f"), OpenMode::Create).unwrap().write_at(b"x", 0).unwrap();
    assert_eq!(fs.clone().read(p("f")).unwrap(), b"x");
    let dbg = format!("{fs:?}");
    assert!(dbg.contains("SimFs") && dbg.contains("ops"), "{dbg}");
    let f = fs.open(p("f"), OpenMode::Read).unwrap();
    assert!(format!("{f:?}").contains("SimFile"));
}

#[test]
fn many_threads_append_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SimFs>();
    let fs = SimFs::new();
    let log = fs.open(p("log"), OpenMode::Create).unwrap();
    let log: std::sync::Arc<dyn FsFile> = std::sync::Arc::from(log);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let (fs, log) = (fs.clone(), std::sync::Arc::clone(&log));
            s.spawn(move || {
                let own = fs.open(Path::new(&format!("t{t}")), OpenMode::Create).unwrap();
                for i in 0..50u64 {
                    log.write_at(&[t], u64::from(t) * 50 + i).unwrap();
                    own.append(&[t]).unwrap();
                    if i % 10 == 0 {
                        log.sync_data().unwrap();
                    }
                }
                own.sync_all().unwrap();
            });
        }
    });
    let content = fs.read(p("log")).unwrap();
    assert_eq!(content.len(), 200);
    for t in 0..4u8 {
        assert!(content[usize::from(t) * 50..][..50].iter().all(|&b| b == t));
        assert_eq!(fs.read(Path::new(&format!("t{t}"))).unwrap(), vec![t; 50]);
    }
    // 4 creates + 4 × (50 writes + 50 appends + 5 syncs + 1 sync) + the log's create.
    assert_eq!(fs.op_count(), 1 + 4 * (1 + 50 + 50 + 5 + 1));
}

#[test]
fn helpers_set_up_and_damage_files() {
    let fs = SimFs::new();
    fs.put_durable(p("a/b/f"), b"0123456789").unwrap();
    assert_eq!(fs.op_count(), 0, "helpers are not operations");
    assert!(fs.durable_exists(p("a/b/f")) && fs.durable_exists(p("a")));
    assert_eq!(fs.durable_read(p("a/b/f")).unwrap(), b"0123456789");
    fs.corrupt(p("a/b/f"), 8, b"XYZ").unwrap();
    assert_eq!(fs.read(p("a/b/f")).unwrap(), b"01234567XYZ");
    assert_eq!(fs.durable_read(p("a/b/f")).unwrap(), b"01234567XYZ");
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("a/b/f")).unwrap(), b"01234567XYZ");
    assert_eq!(kind(fs.corrupt(p("nope"), 0, b"x")), ErrorKind::NotFound);
    assert_eq!(kind(fs.read(p("a"))), ErrorKind::IsADirectory);
    assert_eq!(kind(fs.put_durable(p("a/b/f/g"), b"")), ErrorKind::NotADirectory);
    assert_eq!(kind(fs.put_durable(p("a/b"), b"")), ErrorKind::IsADirectory);
    assert_eq!(kind(fs.put_durable(p("/"), b"")), ErrorKind::InvalidInput);
    // Replacing keeps the inode for open handles.
    let f = fs.open(p("a/b/f"), OpenMode::Write).unwrap();
    f.write_at(b"pending", 0).unwrap();
    fs.put_durable(p("a/b/f"), b"fresh").unwrap();
    assert_eq!(f.read_all().unwrap(), b"fresh");
    assert_eq!(fs.pending_counts(), (0, 0));
    assert_eq!(fs.list_all().last(), Some(&(PathBuf::from("a/b/f"), Some(5))));
}
