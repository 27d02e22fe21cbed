//! File access that must survive a crash.
//!
//! Everything durable in cairn goes through the [`Fs`] trait: the real file
//! system ([`StdFs`]) in production, and, with the `testing` feature, a
//! simulated one (`SimFs`) that keeps durable and pending state apart so
//! tests can cut the power after any operation. On top of it sit temp files published by sync, rename and
//! directory sync, and the sweep that removes temp files orphaned by dead
//! processes.

mod process;
mod publish;
#[cfg(any(test, feature = "testing"))]
mod sim;
mod std_fs;
mod vfs;

pub(crate) use process::{lower_thread_priority, process_alive};
pub(crate) use publish::Steps;
pub use publish::{sweep_orphans, sweep_orphans_in, sync_dir, TempFile, TEMP_SUFFIX};
#[cfg(any(test, feature = "testing"))]
pub use sim::{CrashPlan, Fault, FaultRule, Keep, OpKind, SimFs, Tear};
pub use std_fs::{StdFile, StdFs};
pub use vfs::{create_dir_durable, dir_of, Fs, FsFile, FsLock, FsRef, OpenMode, Stat};
