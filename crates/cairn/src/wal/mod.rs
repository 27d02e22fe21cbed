//! A durable write-ahead log and [`StateLog`], state kept as a snapshot
//! plus the operations logged since.
//!
//! The log is a directory of segment files; records are framed with their
//! length, a CRC32C, an LSN and a type (the record layout is in
//! `docs/WAL.md`). Appends from many threads share writes and syncs (group
//! commit); the sync policy is chosen at open ([`SyncPolicy`]); opening recovers
//! what is on disk under a [`RecoveryMode`]. A failed write or sync poisons
//! the log until it is reopened.

mod commit;
mod log;
mod options;
mod reader;
mod record;
mod report;
mod scan;
mod segment;
mod snapshot;
mod state_log;
mod window;

pub use log::{Wal, LOCK_FILE};
pub use options::{RecoveryMode, SyncPolicy, WalOptions};
pub use reader::{verify, verify_with, Record, WalIter, WalReader};
pub use record::{MAX_LSN, MAX_PAYLOAD};
pub use report::RecoveryReport;
pub use scan::{LogProblem, LogProblemKind, OmittedProblems, Oversized, MAX_PROBLEMS};
pub use state_log::{LoggedState, ReplayProgress, StateLog, StateLogOptions, StateRecovery};
