//! The per-step metrics log: one op per step (step, loss, wall time) in a
//! [`StateLog`] on local disk. Applying an op overwrites its step, so the
//! steps a resumed run repeats replace what the killed run logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use cairn::store::Fingerprint;
use cairn::wal::{LoggedState, StateLog, StateLogOptions, SyncPolicy, WalOptions};
use serde::{Deserialize, Serialize};

/// What was measured at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepMetric {
    /// The mini-batch loss before the step's update.
    pub loss: f32,
    /// The step's wall time in milliseconds.
    pub millis: f32,
}

/// Every step logged so far.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Step → what was measured.
    pub steps: BTreeMap<u64, StepMetric>,
}

impl LoggedState for Metrics {
    type Op = (u64, StepMetric);

    fn apply(&mut self, (step, m): &Self::Op) {
        self.steps.insert(*step, *m);
    }
}

/// Where the log of `key` goes: `<dir>/demo-metrics/<key>` when the store
/// is a directory (`local`), else `cairn-demo-metrics/<key>` in the user
/// cache directory. A log needs a local disk; the store may not be one.
pub fn dir(local: Option<&Path>, key: &Fingerprint) -> anyhow::Result<PathBuf> {
    let short = key.short(16);
    match local {
        Some(root) => Ok(root.join("demo-metrics").join(short)),
        None => {
            let cache = dirs::cache_dir().ok_or_else(|| anyhow!("no cache directory is known for the metrics log"))?;
            Ok(cache.join("cairn-demo-metrics").join(short))
        }
    }
}

/// Opens (or creates) the log in `dir`. Ops are written to the operating
/// system at once, which survives a killed process; [`sync`] makes them
/// durable, which the demo does before each checkpoint rather than at every
/// step.
pub fn open(dir: &Path) -> anyhow::Result<StateLog<Metrics>> {
    let opts = StateLogOptions::default().wal(WalOptions::default().sync(SyncPolicy::Never));
    StateLog::open_with(cairn::io::StdFs::shared(), dir, opts, Metrics::default)
        .with_context(|| format!("opening the metrics log {}", dir.display()))
}

/// Makes every logged op durable.
pub fn sync(log: &StateLog<Metrics>) -> anyhow::Result<()> {
    log.wal().sync().context("syncing the metrics log")
}
