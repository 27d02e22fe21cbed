//! Saving in the background: [`Store::save_async`] runs the caller's closure
//! against a staging writer (what it adds is copied into reusable buffers,
//! in parallel, before the call returns), and a background thread encodes,
//! writes and commits the entry by the same protocol as
//! [`Store::save_with`]. Failures come back through the [`SaveHandle`], or,
//! if it was dropped, through the next save or [`Store::flush`].

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::entry::EntryInfo;
use super::key::Key;
use super::save::SaveInfo;
use super::sink::EntrySink;
use super::store::Store;
use crate::error::{Error, Result};
use crate::format::stage::Stager;
use crate::format::{CheckpointWriter, WriterOptions};
use crate::util::lock;

/// The store's background saves: how many run, and the failures of those
/// whose handles were dropped.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    state: Mutex<FlightState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct FlightState {
    running: usize,
    failed: Vec<Error>,
}

impl InFlight {
    /// Waits for fewer than `max` saves to run, then counts one more.
    fn enter(&self, max: usize) -> Duration {
        let t = Instant::now();
        let mut st = lock(&self.state);
        while st.running >= max {
            st = self.changed.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        st.running += 1;
        t.elapsed()
    }

    fn leave(&self, failure: Option<Error>) {
        let mut st = lock(&self.state);
        st.running = st.running.saturating_sub(1);
        st.failed.extend(failure);
        drop(st);
        self.changed.notify_all();
    }

    fn fail(&self, e: Error) {
        lock(&self.state).failed.push(e);
    }

    fn running(&self) -> usize {
        lock(&self.state).running
    }

    /// Waits until no save runs.
    pub(crate) fn wait_idle(&self) {
        let mut st = lock(&self.state);
        while st.running > 0 {
            st = self.changed.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// The first failure nobody collected, if any (the others are logged).
    pub(crate) fn take_failure(&self) -> Result<()> {
        let mut st = lock(&self.state);
        if st.failed.is_empty() {
            return Ok(());
        }
        let mut all = std::mem::take(&mut st.failed).into_iter();
        let first = all.next();
        for more in all {
            log::error!("another background save failed too: {more}");
        }
        first.map_or(Ok(()), Err)
    }
}

/// What a background save reports to its handle.
#[derive(Debug, Default)]
struct Outcome {
    result: Option<Result<EntryInfo>>,
    /// The handle was dropped: a failure goes to the store instead.
    abandoned: bool,
    background: Option<Duration>,
}

#[derive(Debug, Default)]
struct Shared {
    outcome: Mutex<Outcome>,
    done: Condvar,
}

/// What a background save cost, from [`SaveHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaveStats {
    /// How long [`Store::save_async`] kept the caller: waiting for a slot,
    /// running the closure, staging.
    pub blocked: Duration,
    /// Of that, how long it waited for a slot (`max_saves_in_flight`).
    pub waited_for_slot: Duration,
    /// Of that, how long it waited for staging memory (`stage_bytes`).
    pub waited_for_memory: Duration,
    /// Bytes staged (the chunks' content).
    pub staged_bytes: u64,
    /// How long the background part took (encoding, writing, committing),
    /// once it has finished.
    pub background: Option<Duration>,
}

/// A save running in the background, from [`Store::save_async`].
///
/// [`wait`](Self::wait) returns the entry or the save's error. A handle
/// dropped without waiting does not lose a failure: the store's next save
/// or [`Store::flush`] returns it.
#[derive(Debug)]
pub struct SaveHandle {
    shared: Arc<Shared>,
    flight: Arc<InFlight>,
    thread: Option<JoinHandle<()>>,
    stats: SaveStats,
}

impl SaveHandle {
    /// Waits for the save and returns the new entry.
    ///
    /// # Errors
    /// Whatever the save failed with (backend errors, `ENOSPC`, a failed
    /// sync); nothing of the entry is then visible.
    pub fn wait(self) -> Result<EntryInfo> {
        self.wait_with_stats().map(|(e, _)| e)
    }

    /// As [`wait`](Self::wait), with what the save cost, the background
    /// part included.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_with_stats(mut self) -> Result<(EntryInfo, SaveStats)> {
        let mut o = lock(&self.shared.outcome);
        while o.result.is_none() {
            o = self.shared.done.wait(o).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let r = o.result.take().unwrap_or_else(|| Err(Error::Internal("a save's result vanished".into())));
        let stats = SaveStats { background: o.background, ..self.stats };
        drop(o);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        r.map(|e| (e, stats))
    }

    /// Whether the background part has finished.
    pub fn is_finished(&self) -> bool {
        lock(&self.shared.outcome).result.is_some()
    }

    /// What the save cost so far.
    pub fn stats(&self) -> SaveStats {
        SaveStats { background: lock(&self.shared.outcome).background, ..self.stats }
    }
}

impl Drop for SaveHandle {
    fn drop(&mut self) {
        let mut o = lock(&self.shared.outcome);
        o.abandoned = true;
        if let Some(Err(e)) = o.result.take() {
            self.flight.fail(e);
        }
    }
}

impl Store {
    /// Saves a checkpoint written by `write` as a new entry of `key`, in the
    /// background: `write` is the closure [`save_with`](Self::save_with)
    /// takes, but what it adds is copied into staging buffers (reusable,
    /// filled in parallel) before this returns, so the caller may change its
    /// tensors at once; encoding, writing and committing go on in a
    /// background thread, by the same protocol as `save_with`, and the
    /// returned handle's [`wait`](SaveHandle::wait) gives the entry.
    ///
    /// At most [`StoreOptions::max_saves_in_flight`] saves run at once (1 by
    /// default): this waits for a slot first. Staging uses at most
    /// [`StoreOptions::stage_bytes`]; a state larger than that is staged as
    /// far as it fits and this waits for the writer to free buffers for the
    /// rest. A crash during the save leaves the previous entry as the
    /// latest and no partial entry; a failure is returned by the handle,
    /// or, if it was dropped, by the next save or [`flush`](Self::flush).
    ///
    /// [`StoreOptions::max_saves_in_flight`]: super::StoreOptions::max_saves_in_flight
    /// [`StoreOptions::stage_bytes`]: super::StoreOptions::stage_bytes
    ///
    /// # Errors
    /// The failure of an earlier background save nobody collected;
    /// `write`'s errors (nothing is then published); a background failure
    /// that stopped staging; [`Error::InvalidArgument`] for a NaN objective.
    pub fn save_async(
        &self,
        key: &Key,
        info: SaveInfo,
        opts: WriterOptions,
        write: impl FnOnce(&mut CheckpointWriter<EntrySink>) -> Result<()>,
    ) -> Result<SaveHandle> {
        let start = Instant::now();
        self.saves.take_failure()?;
        super::save::check_info(&info)?;
        let waited_for_slot = self.saves.enter(self.opts.max_saves_in_flight);
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread = {
            let (bg, key, shared, flight) = (self.background_handle(), key.clone(), shared.clone(), self.saves.clone());
            let opts = opts.clone();
            let nice = self.opts.background_nice;
            std::thread::Builder::new().name("cairn-save".into()).spawn(move || {
                // Before the writer starts its encoding threads, which
                // inherit it.
                crate::io::lower_thread_priority(nice);
                let t = Instant::now();
                let r = bg.save_staged(&key, info, opts, rx);
                let mut o = lock(&shared.outcome);
                o.background = Some(t.elapsed());
                let failure = match r {
                    Err(e) if o.abandoned => Some(e),
                    r => {
                        o.result = Some(r);
                        None
                    }
                };
                drop(o);
                shared.done.notify_all();
                // After the outcome: a flush that sees no save running sees
                // its failure.
                flight.leave(failure);
            })
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                self.saves.leave(None);
                return Err(Error::Internal(format!("starting a background save: {e}")));
            }
        };
        // A writer keeps a window of frames in flight before it writes (and
        // frees) the first: staging must hold that window for every save
        // that may run at once, or two could wait for each other.
        let threads = opts.threads.unwrap_or_else(rayon::current_num_threads).max(1);
        let window = (2 * threads + 3).saturating_mul(opts.frame_size as usize);
        self.stage.at_least(window.saturating_mul(self.opts.max_saves_in_flight));
        let mut w = CheckpointWriter::staged(Stager::new(tx, Arc::clone(&self.stage), opts.frame_size));
        let staged = write(&mut w).and_then(|()| w.stager().map_or(Ok(()), Stager::finish));
        let (waited_for_memory, staged_bytes) = w.stager().map_or((Duration::ZERO, 0), |s| (s.waited, s.bytes));
        // Dropping the writer closes the channel: after a failure the
        // background save ends with nothing published.
        drop(w);
        let handle = SaveHandle {
            shared,
            flight: self.saves.clone(),
            thread: Some(thread),
            stats: SaveStats {
                blocked: start.elapsed(),
                waited_for_slot,
                waited_for_memory,
                staged_bytes,
                background: None,
            },
        };
        match staged {
            Ok(()) => Ok(handle),
            Err(e) => match handle.wait() {
                // The background's own failure is the cause.
                Err(bg) if !matches!(bg, Error::Refused { .. }) => Err(bg),
                _ => Err(e),
            },
        }
    }

    /// How many background saves of this store are running now.
    pub fn saves_in_flight(&self) -> usize {
        self.saves.running()
    }

    /// Waits for every background save of this store to finish.
    ///
    /// # Errors
    /// The failure of a background save whose handle was dropped.
    pub fn flush(&self) -> Result<()> {
        self.saves.wait_idle();
        self.saves.take_failure()
    }
}
