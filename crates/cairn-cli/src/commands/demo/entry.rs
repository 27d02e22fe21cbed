//! The training state as a store entry: the frozen base, the weights and
//! Adam's moments as tensors, the step, the configuration and the losses
//! as JSON. The base is the same in every entry, so the store shares its
//! frames: each save after the first stores only what training changed.

use anyhow::{anyhow, Context};
use cairn::store::{EntryInfo, EntryKind, EntrySink, Found, Key, SaveHandle, SaveInfo, Store};
use cairn::{CheckpointWriter, Compression, WriterOptions};
use serde::{Deserialize, Serialize};

use super::model::{Config, Train};

/// Chunk names.
const BASE: &str = "base";
const WEIGHTS: &str = "weights";
const M: &str = "m";
const V: &str = "v";
const CONFIG: &str = "config";
const PROGRESS: &str = "progress";

/// Where training stood when an entry was saved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    /// The last mini-batch loss.
    pub train_loss: f64,
    /// The held-out loss: the entry's objective.
    pub eval_loss: f64,
}

/// What an entry of step `t` records: its kind, its step as the iteration,
/// and the held-out loss as its objective.
fn entry_info(kind: EntryKind, t: &Train, p: Progress) -> SaveInfo {
    SaveInfo::checkpoint().kind(kind).iteration(t.step).objective(p.eval_loss)
}

/// Saves `t` as a new entry of `key`, a checkpoint or a final result, with
/// the held-out loss as its objective.
pub fn save(
    store: &Store,
    key: &Key,
    kind: EntryKind,
    (cfg, base): (&Config, &[f32]),
    t: &Train,
    p: Progress,
) -> anyhow::Result<EntryInfo> {
    let info = entry_info(kind, t, p);
    store
        .save_with(key, info, writer_options(), |w| add_state(w, (cfg, base), t, p))
        .with_context(|| format!("saving step {} to {}", t.step, store.url()))
}

/// As [`save`], in the background: returns once the state is staged.
pub fn save_async(
    store: &Store,
    key: &Key,
    kind: EntryKind,
    (cfg, base): (&Config, &[f32]),
    t: &Train,
    p: Progress,
) -> anyhow::Result<SaveHandle> {
    let info = entry_info(kind, t, p);
    // One encoding thread: training runs on one core, and a background save
    // that took every core would slow it down.
    let opts = writer_options().threads(Some(1));
    store
        .save_async(key, info, opts, |w| add_state(w, (cfg, base), t, p))
        .with_context(|| format!("staging step {} for {}", t.step, store.url()))
}

/// The training state's chunks, for [`save`] and [`save_async`] alike.
fn add_state(
    w: &mut CheckpointWriter<EntrySink>,
    (cfg, base): (&Config, &[f32]),
    t: &Train,
    p: Progress,
) -> cairn::Result<()> {
    let shape = cfg.shape();
    w.add_tensor(BASE, &shape, base)?;
    w.add_tensor(WEIGHTS, &shape, &t.weights)?;
    w.add_tensor(M, &shape, &t.m)?;
    w.add_tensor(V, &shape, &t.v)?;
    w.add_json(CONFIG, cfg)?;
    w.add_json(PROGRESS, &p)
}

/// Zstd at its fastest level: float noise barely compresses, so higher
/// levels would only cost time; the shuffle groups exponent bytes, which is
/// what does compress.
fn writer_options() -> WriterOptions {
    WriterOptions::default().compression(Compression::Zstd(1)).shuffle(true)
}

/// The training state of a found entry, checked against `cfg` and the
/// frozen `base`.
pub fn load(found: &Found, (cfg, base): (&Config, &[f32])) -> anyhow::Result<(Train, Progress)> {
    let ck = &found.checkpoint;
    let id = &found.info.id;
    let saved: Config = ck.read_json(CONFIG).with_context(|| format!("reading the configuration of entry {id}"))?;
    if saved != *cfg {
        return Err(anyhow!("entry {id} was saved by another configuration: {saved:?}"));
    }
    let progress: Progress = ck.read_json(PROGRESS).with_context(|| format!("reading the progress of entry {id}"))?;
    let read = |name: &str| -> anyhow::Result<Vec<f32>> {
        let v: Vec<f32> = ck.read_tensor(name).with_context(|| format!("reading {name:?} of entry {id}"))?;
        if v.len() != cfg.params() {
            return Err(anyhow!("entry {id}: {name:?} holds {} values, not {}", v.len(), cfg.params()));
        }
        Ok(v)
    };
    let step = ck.step().unwrap_or(progress.step);
    if step != progress.step {
        return Err(anyhow!("entry {id}: saved at step {step} but its progress says {}", progress.step));
    }
    if read(BASE)? != base {
        return Err(anyhow!("entry {id} holds another frozen base than this configuration's"));
    }
    Ok((Train { step, weights: read(WEIGHTS)?, m: read(M)?, v: read(V)? }, progress))
}
