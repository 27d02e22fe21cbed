//! A simulated, in-memory file system that can lose power.
//!
//! Crash tests run a workload on [`SimFs`], cut the power after any
//! operation, let the simulation compute what a real disk could hold
//! afterwards, and check recovery against that.
//!
//! The model is described on [`SimFs`]; the files here split it into the
//! public API (this file), the state (`state.rs`), namespace operations
//! (`ops.rs`), open files and locks (`file.rs`), power loss (`crash.rs`),
//! plans (`plan.rs`), faults (`fault.rs`), test helpers (`inspect.rs`) and
//! the seeded generator (`rng.rs`).

mod crash;
mod fault;
mod file;
mod inspect;
mod ops;
mod path;
mod plan;
mod rng;
mod state;

#[cfg(test)]
mod test_crash;
#[cfg(test)]
mod test_faults;
#[cfg(test)]
mod test_ops;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use fault::{Fault, FaultRule, OpKind};
pub use plan::{CrashPlan, Keep, Tear};

use super::vfs::{Fs, FsFile, FsLock, FsRef, OpenMode, Stat};
use file::{lock, LockHold, SimFile};
use state::State;

/// The simulated file system. Clones share one disk; it may be used from
/// many threads at once.
///
/// # Model
/// - A file is an inode with *durable* content (what survives power loss
///   for sure) and an ordered list of *pending* changes (`write_at`,
///   `set_len`) since its last `sync_data`/`sync_all`. Reads see durable
///   content with every pending change applied. Both syncs make all pending
///   changes durable.
/// - The namespace has a durable and a current view. Creating a file,
///   `rename`, `remove_file` and each directory made by `create_dir_all`
///   are pending operations of the directory holding the entry;
///   `sync_dir` makes that directory's pending operations durable. A synced
///   file whose name was never made durable is lost on power loss (strict
///   POSIX, on purpose), and a directory whose parent was not synced is lost
///   with everything in it.
/// - A rename within one directory is one operation; across directories it
///   is a removal in one and an arrival in the other, each durable with its
///   own directory, so a crash may keep either half.
/// - Paths have one root and no working directory: `/a/b`, `a/b` and
///   `./a/b` are the same; `..` is refused. Directories cannot be renamed.
/// - Handles belong to the "process" that opened them: after a crash they
///   fail every call. A removed file stays usable through open handles.
/// - Locks are in memory, per path, and released by a crash.
///
/// # Counting, crash points and faults
/// Mutating operations are counted ([`SimFs::op_count`]): a create (by
/// `open` or `try_lock`), `write_at`, `set_len`, `sync_data`, `sync_all`,
/// `rename`, `remove_file`, a `create_dir_all` that creates anything, and
/// `sync_dir`. Reads, `len`, `list_dir`, opening an existing file and
/// `start_writeback` are not. A call that fails its own checks (`NotFound`,
/// `AlreadyExists`, …) changes nothing and is not counted.
/// [`SimFs::crash_after`] sets the point where the power goes;
/// [`SimFs::inject`] makes chosen operations fail with `EIO` or `ENOSPC`.
///
/// ```
/// use std::path::Path;
/// use cairn::io::{CrashPlan, Fs, OpenMode, SimFs};
///
/// let fs = SimFs::new();
/// let f = fs.open(Path::new("data"), OpenMode::Create).unwrap();
/// f.write_at(b"hello", 0).unwrap();
/// f.sync_all().unwrap();
/// fs.crash(&CrashPlan::drop_all());
/// // The file's data was synced but its directory entry was not.
/// assert!(!fs.exists(Path::new("data")));
///
/// let f = fs.open(Path::new("data"), OpenMode::Create).unwrap();
/// f.write_at(b"hello", 0).unwrap();
/// f.sync_all().unwrap();
/// fs.sync_dir(Path::new("/")).unwrap();
/// fs.crash(&CrashPlan::drop_all());
/// assert_eq!(fs.read(Path::new("data")).unwrap(), b"hello");
/// ```
///
/// The test helpers ([`read`](SimFs::read), [`exists`](SimFs::exists),
/// [`corrupt`](SimFs::corrupt), [`put_durable`](SimFs::put_durable), …)
/// are not operations: they are not counted and work while the machine is
/// down.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A summary: the content can be megabytes. `try_lock`, so that
        // formatting can never deadlock against a holder of the state.
        let mut d = f.debug_struct("SimFs");
        match self.state.try_lock() {
            Ok(st) => d
                .field("entries", &st.current.len())
                .field("inodes", &st.inodes.len())
                .field("ops", &st.ops)
                .field("down", &st.down)
                .field("epoch", &st.epoch),
            Err(_) => d.field("state", &"<busy>"),
        };
        d.finish_non_exhaustive()
    }
}

impl SimFs {
    /// An empty file system: only the root directory, durable.
    pub fn new() -> Self {
        SimFs::default()
    }

    /// A shared handle to this file system, for APIs that take an
    /// [`FsRef`]. It shares the disk with `self`.
    pub fn shared(&self) -> FsRef {
        Arc::new(self.clone())
    }

    /// How many mutating operations have been counted since the file system
    /// was made, failed (injected) ones included, across crashes. An
    /// operation refused because the power is gone is not counted.
    pub fn op_count(&self) -> u64 {
        lock(&self.state).ops
    }

    /// How many of the counted operations were of the fsync family
    /// (`sync_data`, `sync_all`, `sync_dir`): what durability costs.
    pub fn sync_count(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// Lets `n` more mutating operations happen, then cuts the power: the
    /// next mutating operation and every call after it (reads included)
    /// fail with an [`io::ErrorKind::Other`] "simulated power loss" error
    /// and change nothing, until [`crash`](SimFs::crash). `crash_after(0)`
    /// fails the very next mutating operation. A later call replaces the
    /// point.
    pub fn crash_after(&self, n: u64) {
        let mut st = lock(&self.state);
        st.crash_at = Some(st.ops.saturating_add(n));
    }

    /// Whether the machine is down: an operation reached the crash point
    /// and was refused. Until then (even right after the `n`-th operation
    /// of [`crash_after`](SimFs::crash_after)) it is up, so a workload that
    /// ends within its `n` operations leaves it `false`.
    pub fn is_down(&self) -> bool {
        lock(&self.state).down
    }

    /// Adds a fault rule; rules are checked in the order they were added,
    /// and each one counts the operations it matches. When several fire on
    /// one operation, the first one's error is returned. Rules survive
    /// crashes.
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.state).rules.push(fault::ActiveRule::new(rule));
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.state).rules.clear();
    }

    /// Loses power (now, or again if the crash point was reached) and
    /// restarts: the namespace becomes the durable one plus the pending
    /// directory operations `plan` keeps, every file its durable content plus
    /// the pending changes `plan` keeps (in their order, the last kept write
    /// maybe torn), files no name refers to are gone, and the result is the
    /// new durable state with nothing pending. The crash point is cleared,
    /// the machine is up, every open handle is stale and every lock is
    /// released. Fault rules and the operation count are kept.
    pub fn crash(&self, plan: &CrashPlan) {
        lock(&self.state).power_loss(plan);
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut st = lock(&self.state);
        let ino = st.open(path, mode)?;
        Ok(Box::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            epoch: st.epoch,
            path: path.to_path_buf(),
            writable: mode.writes(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        lock(&self.state).rename(from, to)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        lock(&self.state).rename_noreplace(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        lock(&self.state).remove_file(path)
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        lock(&self.state).stat(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        lock(&self.state).create_dir_all(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        lock(&self.state).sync_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        lock(&self.state).list_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<FsLock> {
        let (key, id) = lock(&self.state).try_lock(path)?;
        Ok(FsLock::new(Box::new(LockHold { state: Arc::clone(&self.state), key, id })))
    }
}
