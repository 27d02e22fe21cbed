//! File access that must survive a crash: temp files beside their target,
//! syncs, renames made durable by syncing the directory, and the sweep that
//! removes temp files orphaned by dead processes.

mod publish;

pub use publish::sync_dir;
pub use publish::{sweep_orphans, TempFile, TEMP_SUFFIX};
