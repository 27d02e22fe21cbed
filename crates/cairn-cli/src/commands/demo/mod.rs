//! `cairn demo`: a small but real training job on the keyed store. It fits
//! a linear regression with Adam (see `model.rs`), saves a checkpoint every
//! K steps and a final result at the end under a key fingerprinting the
//! configuration and the machine, resumes from the latest entry after a
//! crash or to extend a finished run, and logs every step's loss to a
//! write-ahead-logged metrics state.

mod entry;
mod metrics;
mod model;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn::store::{EntryKind, Fingerprint, Hardware, Key, Retention, Select, Store, StoreOptions};
use cairn::wal::StateLog;

use self::entry::Progress;
use self::metrics::{Metrics, StepMetric};
use self::model::{Config, Train, Workload};
use crate::commands::inspect;
use crate::exit::usage;
use crate::{output, progress};

/// Arguments of `cairn demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Train until this step; a finished run given a larger N goes on.
    #[arg(long, value_name = "N", default_value_t = 300)]
    steps: u64,
    /// Save a checkpoint every K steps.
    #[arg(long, value_name = "K", default_value_t = 50)]
    every: u64,
    /// The store's directory. Default = the default store ($CAIRN_HOME,
    /// else `cairn/` in the user cache directory).
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    root: Option<PathBuf>,
    /// The store's URL (`s3://bucket/prefix`, `file:///path`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Inputs and outputs of the model: a SIZE × SIZE weight matrix. Small
    /// sizes keep tests fast in debug builds.
    #[arg(long, value_name = "SIZE", default_value_t = 1024, hide = true)]
    size: usize,
    /// Save checkpoints in the background (`Store::save_async`): training
    /// waits only while the state is copied into staging buffers. Prints
    /// the time blocked against the time the saves took in the background.
    #[arg(long = "async")]
    background: bool,
}

/// Largest `--size`: 4096² weights are 64 MiB per tensor.
const MAX_SIZE: usize = 4096;

/// Runs `cairn demo`.
///
/// # Errors
/// Usage errors for bad values; store, metrics log and I/O errors; an
/// entry of the key that does not hold this configuration's state.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.every == 0 {
        return Err(usage("--every must be at least 1"));
    }
    if args.steps == 0 {
        return Err(usage("--steps must be at least 1"));
    }
    if !(1..=MAX_SIZE).contains(&args.size) {
        return Err(usage(format!("--size must be from 1 to {MAX_SIZE}")));
    }
    let cfg = Config::new(args.size);
    let hw = Hardware::detect();
    let fp = cfg.fingerprint(Fingerprint::builder()).fingerprint("hardware", &hw.fingerprint()).finish();
    let key = Key::from_fingerprint(&fp);
    let (store, local) = open_store(&args)?;
    let mut out = std::io::stdout().lock();

    writeln!(out, "store: {}", store.url())?;
    writeln!(out, "retention: each save keeps this key's last 3 entries and its best one, and removes the rest")?;
    writeln!(out, "key: {fp}")?;
    let weights_bytes = cfg.params() as u64 * 4;
    writeln!(
        out,
        "  model: linear regression fine-tuned over a frozen base: {}x{} f32 base, weights ({} each) and Adam's m and v; batch {}, lr {}, seed {:#x}",
        cfg.inputs,
        cfg.outputs,
        output::bytes(weights_bytes),
        cfg.batch,
        cfg.lr,
        cfg.seed
    )?;
    writeln!(out, "  hardware: {} {}, {}, {} cores", hw.arch, hw.os, hw.cpu_model, hw.cores)?;

    let metrics_dir = metrics::dir(local.as_deref(), &fp)?;
    let mut log = metrics::open(&metrics_dir)?;
    let work = Workload::new(&cfg);
    let state = (&cfg, work.base());
    let t0 = Instant::now();
    let latest = store.lookup(&key, &Select::Latest).context("looking up the latest entry")?;
    let lookup_time = t0.elapsed();
    let (mut train, mut last) = match &latest {
        None => {
            writeln!(out, "starting fresh: step 0 of {}", args.steps)?;
            (Train::fresh(&cfg), None)
        }
        Some(found) => {
            let (t, p) = entry::load(found, state)?;
            if found.info.kind == EntryKind::Final && t.step >= args.steps {
                writeln!(
                    out,
                    "run complete: final entry {} at step {} has loss {}; nothing to train (a larger --steps goes on)",
                    found.info.id, t.step, p.eval_loss
                )?;
                print_best(&store, &key, &mut out)?;
                print_metrics(&log, &metrics_dir, &mut out)?;
                log.close().context("closing the metrics log")?;
                return Ok(());
            }
            writeln!(out, "resuming from step {} ({} entry {})", t.step, kind_name(found.info.kind), found.info.id)?;
            let st = found.checkpoint.stats();
            writeln!(
                out,
                "  resume load: lookup {:.1} ms (open, BLAKE3 check of every byte); tensors {} read, {} decompressed (ratio {:.2}) in {:.1} ms (decompress {:.1} ms, checks {:.1} ms)",
                output::millis(lookup_time),
                output::bytes(st.bytes_read),
                output::bytes(st.bytes_decompressed),
                st.compression_ratio(),
                output::millis(st.wall_time),
                output::millis(st.decompress_time),
                output::millis(st.verify_time)
            )?;
            if t.step >= args.steps {
                writeln!(
                    out,
                    "  step {} is already at or past --steps {}: saving it as the final result",
                    t.step, args.steps
                )?;
            }
            (t, Some(p))
        }
    };
    writeln!(out, "metrics log: {} ({} steps logged before)", metrics_dir.display(), log.state().steps.len())?;

    let first_step = train.step;
    let bar = progress::steps_bar(train.step, args.steps.max(train.step));
    let mut in_flight: Option<(cairn::store::SaveHandle, Progress)> = None;
    let mut timing = Timing::default();
    let mut stored = Stored::default();
    let started = Instant::now();
    while train.step < args.steps {
        let t0 = Instant::now();
        let loss = work.step(&mut train);
        let millis = t0.elapsed().as_secs_f32() * 1000.0;
        log.apply((train.step, StepMetric { loss: loss as f32, millis }))
            .with_context(|| format!("logging step {}", train.step))?;
        bar.set_position(train.step);
        bar.set_message(format!("loss {loss:.4}"));
        let p = Progress { step: train.step, train_loss: loss, eval_loss: f64::NAN };
        last = Some(p);
        if in_flight.as_ref().is_some_and(|(h, _)| !h.is_finished()) {
            timing.during_save.add(t0.elapsed());
        } else {
            timing.idle.add(t0.elapsed());
        }
        if train.step % args.every == 0 && train.step < args.steps {
            let p = Progress { eval_loss: work.eval_loss(&train), ..p };
            if args.background {
                if let Some(done) = in_flight.take() {
                    report_async(done, (&mut timing, &mut stored), &bar, &mut out)?;
                }
                metrics::sync(&log)?;
                let h = entry::save_async(&store, &key, EntryKind::Checkpoint, state, &train, p)?;
                in_flight = Some((h, p));
            } else {
                let (e, took) = save(&store, &key, EntryKind::Checkpoint, state, &train, p, &log)?;
                bar.suspend(|| checkpoint_line(&mut out, &e, p, took))?;
                stored.add(&e);
            }
        }
    }
    if let Some(done) = in_flight.take() {
        report_async(done, (&mut timing, &mut stored), &bar, &mut out)?;
    }
    let trained = train.step - first_step;
    let elapsed = started.elapsed();
    let p = Progress {
        step: train.step,
        train_loss: last.map_or(f64::NAN, |p| p.train_loss),
        eval_loss: work.eval_loss(&train),
    };
    let (e, took) = save(&store, &key, EntryKind::Final, state, &train, p, &log)?;
    drop(bar);
    stored.add(&e);
    writeln!(
        out,
        "final step {}: loss {}, entry {}, {}, {:.1} ms",
        train.step,
        p.eval_loss,
        e.id,
        stored_of(&e),
        output::millis(took)
    )?;
    stored.print(&mut out)?;
    if trained > 0 {
        writeln!(
            out,
            "trained steps {}..={} in {:.2} s ({:.2} ms per step, checkpoints included)",
            first_step + 1,
            train.step,
            elapsed.as_secs_f64(),
            output::millis(elapsed) / trained as f64
        )?;
    }
    if args.background {
        timing.print(&mut out)?;
    }
    print_best(&store, &key, &mut out)?;
    let c = store.cache_stats();
    writeln!(
        out,
        "store cache: {} hits, {} misses, {} checkpoints ({}) held",
        c.hits,
        c.misses,
        c.entries,
        output::bytes(c.bytes)
    )?;
    print_metrics(&log, &metrics_dir, &mut out)?;
    log.close().context("closing the metrics log")?;
    out.flush()?;
    Ok(())
}

/// What this run's saves stored against their full size.
#[derive(Debug, Default)]
struct Stored {
    saves: u64,
    added: u64,
    full: u64,
}

impl Stored {
    fn add(&mut self, e: &cairn::store::EntryInfo) {
        self.saves += 1;
        self.added += e.added_bytes;
        self.full += e.bytes;
    }

    fn print(&self, out: &mut impl Write) -> anyhow::Result<()> {
        writeln!(
            out,
            "incremental saves: {} saves stored {} of {} ({:.0} %): each shares the frames an earlier entry holds (the frozen base)",
            self.saves,
            output::bytes(self.added),
            output::bytes(self.full),
            percent(self.added, self.full)
        )?;
        Ok(())
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `9.1 MiB stored of 12.1 MiB (75 %)`: what a save added to the store
/// against the entry's full size.
fn stored_of(e: &cairn::store::EntryInfo) -> String {
    format!(
        "{} stored of {} ({:.0} %)",
        output::bytes(e.added_bytes),
        output::bytes(e.bytes),
        percent(e.added_bytes, e.bytes)
    )
}

/// A running mean of durations.
#[derive(Debug, Default, Clone, Copy)]
struct Mean {
    n: u64,
    total: Duration,
}

impl Mean {
    fn add(&mut self, d: Duration) {
        self.n += 1;
        self.total += d;
    }

    fn millis(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            output::millis(self.total) / self.n as f64
        }
    }
}

/// What background saves cost the training loop.
#[derive(Debug, Default)]
struct Timing {
    /// Time `save_async` kept the loop, per save.
    blocked: Mean,
    /// Time the saves took in the background, per save.
    background: Mean,
    /// Training steps while a save ran in the background, and the others.
    during_save: Mean,
    idle: Mean,
}

impl Timing {
    fn print(&self, out: &mut impl Write) -> anyhow::Result<()> {
        if self.blocked.n == 0 {
            return Ok(());
        }
        writeln!(
            out,
            "async saves: {} checkpoints, training blocked {:.1} ms per save, saves took {:.1} ms each in the background",
            self.blocked.n,
            self.blocked.millis(),
            self.background.millis()
        )?;
        writeln!(
            out,
            "steps: {:.2} ms while a save ran in the background ({} steps), {:.2} ms otherwise ({} steps)",
            self.during_save.millis(),
            self.during_save.n,
            self.idle.millis(),
            self.idle.n
        )?;
        Ok(())
    }
}

/// Waits for a background save and prints its checkpoint line.
fn report_async(
    (h, p): (cairn::store::SaveHandle, Progress),
    (timing, stored): (&mut Timing, &mut Stored),
    bar: &progress::Bar,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (e, stats) = h.wait_with_stats().with_context(|| format!("saving step {} in the background", p.step))?;
    stored.add(&e);
    timing.blocked.add(stats.blocked);
    let took = stats.background.unwrap_or_default();
    timing.background.add(took);
    bar.suspend(|| checkpoint_line(out, &e, p, took))
}

fn checkpoint_line(
    out: &mut impl Write,
    e: &cairn::store::EntryInfo,
    p: Progress,
    took: Duration,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "checkpoint step {}: loss {:.6} (batch {:.6}), entry {}, {}, {:.1} ms",
        p.step,
        p.eval_loss,
        p.train_loss,
        e.id,
        stored_of(e),
        output::millis(took)
    )?;
    Ok(())
}

/// Opens the store the arguments name, with the demo's retention, and
/// says where it is on local disk if it is a directory.
fn open_store(args: &Args) -> anyhow::Result<(Store, Option<PathBuf>)> {
    // Background saves (--async) yield the CPU to training when they
    // contend for it: the loop's steps are what the demo keeps fast.
    let opts = StoreOptions::default().retention(Retention::default().keep_last(3).keep_best(1)).background_nice(10);
    let location = match (&args.root, &args.url) {
        (Some(dir), _) => dir.display().to_string(),
        (None, Some(url)) => url.clone(),
        (None, None) => cairn::store::default_location().context("finding the default store")?,
    };
    let local = match &args.root {
        Some(dir) => Some(dir.clone()),
        None => match cairn::backend::parse_url(&location)? {
            cairn::backend::Target::Path(p) => Some(PathBuf::from(p)),
            _ => None,
        },
    };
    let store = Store::open_url(&location, opts).with_context(|| format!("opening the store {location}"))?;
    Ok((store, local))
}

/// Syncs the metrics log, then saves an entry, so the log is durable at
/// least as far as every checkpoint. Returns the entry and the save's time.
fn save(
    store: &Store,
    key: &Key,
    kind: EntryKind,
    state: (&Config, &[f32]),
    train: &Train,
    p: Progress,
    log: &StateLog<Metrics>,
) -> anyhow::Result<(cairn::store::EntryInfo, Duration)> {
    metrics::sync(log)?;
    let t0 = Instant::now();
    let e = entry::save(store, key, kind, state, train, p)?;
    Ok((e, t0.elapsed()))
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Final => "final",
        _ => "checkpoint",
    }
}

/// Prints the key's best entry as the store selects it.
fn print_best(store: &Store, key: &Key, out: &mut impl Write) -> anyhow::Result<()> {
    match store.lookup(key, &Select::Best).context("looking up the best entry")? {
        Some(b) => {
            let raw = inspect::summary(&b.checkpoint).raw_bytes();
            writeln!(
                out,
                "best entry: {} ({}, iteration {}, objective {}; {} of content in {}, ratio {:.2})",
                b.info.id,
                kind_name(b.info.kind),
                b.info.iteration.map_or_else(|| "-".into(), |i| i.to_string()),
                b.info.objective.map_or_else(|| "-".into(), |o| o.to_string()),
                output::bytes(raw),
                output::bytes(b.checkpoint.file_len()),
                output::ratio(raw, b.checkpoint.file_len())
            )?;
        }
        None => writeln!(out, "best entry: none")?,
    }
    Ok(())
}

/// Prints what the metrics log holds.
fn print_metrics(log: &StateLog<Metrics>, dir: &std::path::Path, out: &mut impl Write) -> anyhow::Result<()> {
    let steps = &log.state().steps;
    match (steps.first_key_value(), steps.last_key_value()) {
        (Some((s0, m0)), Some((s1, m1))) => writeln!(
            out,
            "metrics log {}: {} steps, first loss {:.6} (step {s0}), last loss {:.6} (step {s1})",
            dir.display(),
            steps.len(),
            m0.loss,
            m1.loss
        )?,
        _ => writeln!(out, "metrics log {}: empty", dir.display())?,
    }
    Ok(())
}
