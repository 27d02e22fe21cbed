//! The frame objects a save creates, put from a few threads at once, so
//! that one frame's upload or fsync overlaps the next frame's encoding
//! and the other puts (each frame is its own object: a round trip on
//! object storage, a synced file and directory on local disk). Memory in
//! flight is bounded: a frame per worker, and the caller blocks on the
//! next while every worker is busy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::backend::{Backend, BackendExt, PutMode};
use crate::error::{Error, Result};

/// Bytes of frames in flight at most, across workers.
const IN_FLIGHT: usize = 8 << 20;

/// Workers at most.
const MAX_WORKERS: usize = 8;

/// What the workers report back.
#[derive(Default)]
struct Outcome {
    /// Bytes of frame objects created (a frame found present, or put by a
    /// racing save first, adds nothing).
    added: AtomicU64,
    /// The first error; later puts are skipped once one is set.
    error: Mutex<Option<Error>>,
}

impl Outcome {
    fn failed(&self) -> bool {
        crate::util::lock(&self.error).is_some()
    }
}

/// Puts frame objects create-only from worker threads started with the
/// first frame.
pub(crate) struct FramePuts {
    backend: Arc<dyn Backend>,
    tx: Option<SyncSender<(String, Bytes)>>,
    workers: Vec<JoinHandle<()>>,
    outcome: Arc<Outcome>,
    /// Whether a put's error was already handed to the caller: the save
    /// is failed, and `finish` must not pass it.
    failed: bool,
}

impl std::fmt::Debug for FramePuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePuts").field("workers", &self.workers.len()).finish_non_exhaustive()
    }
}

/// Creates the frame object `key` unless it exists; the bytes it added.
fn put_frame(backend: &dyn Backend, key: &str, bytes: Bytes) -> Result<u64> {
    if backend.exists(key)? {
        return Ok(0);
    }
    let len = bytes.len() as u64;
    match backend.put(key, bytes, PutMode::Create) {
        Ok(_) => Ok(len),
        // An identical frame won the race: it is there.
        Err(Error::AlreadyExists { .. } | Error::Precondition { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

fn work(backend: &dyn Backend, rx: &Mutex<Receiver<(String, Bytes)>>, outcome: &Outcome) {
    loop {
        let job = crate::util::lock(rx).recv();
        let Ok((key, bytes)) = job else { return };
        if outcome.failed() {
            continue; // drain: the save is failing anyway
        }
        match put_frame(backend, &key, bytes) {
            Ok(n) => {
                outcome.added.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                let mut first = crate::util::lock(&outcome.error);
                if first.is_none() {
                    *first = Some(e);
                }
            }
        }
    }
}

impl FramePuts {
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        FramePuts { backend, tx: None, workers: Vec::new(), outcome: Arc::default(), failed: false }
    }

    /// The first error a put met, taken; once one was, every later call
    /// fails too.
    fn take_error(&mut self) -> Result<()> {
        match crate::util::lock(&self.outcome.error).take() {
            Some(e) => {
                self.failed = true;
                Err(e)
            }
            None if self.failed => Err(Error::Internal("a frame put of this save failed".into())),
            None => Ok(()),
        }
    }

    /// Queues the frame object `key` for a create-only put; blocks while
    /// every worker is busy.
    ///
    /// # Errors
    /// The first error of an earlier put; a worker that could not start.
    pub(crate) fn submit(&mut self, key: String, bytes: Bytes) -> Result<()> {
        self.take_error()?;
        if self.tx.is_none() {
            self.start(bytes.len())?;
        }
        let sent = self.tx.as_ref().map(|tx| tx.send((key, bytes)));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Internal("the frame put workers are gone".into())),
        }
    }

    /// Starts as many workers as frames of `frame_len` fit in
    /// [`IN_FLIGHT`] (at least one, at most [`MAX_WORKERS`]).
    fn start(&mut self, frame_len: usize) -> Result<()> {
        let n = (IN_FLIGHT / frame_len.max(1)).clamp(1, MAX_WORKERS);
        // A rendezvous channel: a frame is handed over only to an idle
        // worker, so no more than `n` are in flight.
        let (tx, rx) = sync_channel::<(String, Bytes)>(0);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let (backend, rx, outcome) = (self.backend.clone(), rx.clone(), self.outcome.clone());
            let handle = std::thread::Builder::new()
                .name(format!("cairn-frame-put-{i}"))
                .spawn(move || work(backend.as_ref(), &rx, &outcome))
                .map_err(|e| Error::Internal(format!("starting a frame put worker: {e}")))?;
            self.workers.push(handle);
        }
        self.tx = Some(tx);
        Ok(())
    }

    /// Waits for every queued put; the bytes the frame objects created
    /// added.
    ///
    /// # Errors
    /// The first error a put met.
    pub(crate) fn finish(&mut self) -> Result<u64> {
        self.join();
        self.take_error()?;
        Ok(self.outcome.added.load(Ordering::Relaxed))
    }

    fn join(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            // A worker that panicked put nothing more; its frames are
            // then missing, which the entry's commit must not pass over.
            if w.join().is_err() {
                let mut first = crate::util::lock(&self.outcome.error);
                if first.is_none() {
                    *first = Some(Error::Internal("a frame put worker panicked".into()));
                }
            }
        }
    }
}

impl Drop for FramePuts {
    /// Waits for the puts in flight, so none outlives the save.
    fn drop(&mut self) {
        self.join();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::backend::{FaultBackend, MemoryBackend};

    #[test]
    fn puts_land_and_count_what_they_added() {
        let mem: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let mut puts = FramePuts::new(mem.clone());
        for i in 0..20u8 {
            puts.submit(format!("frames/{i}"), Bytes::from(vec![i; 1000])).unwrap();
        }
        // A frame already there adds nothing.
        puts.submit("frames/3".into(), Bytes::from(vec![3; 1000])).unwrap();
        assert_eq!(puts.finish().unwrap(), 20_000);
        assert_eq!(mem.list("frames/").unwrap().len(), 20);
    }

    #[test]
    fn an_error_fails_every_later_call() {
        let fault = Arc::new(FaultBackend::new(Arc::new(MemoryBackend::new())));
        fault.fail_puts_after(10);
        let mut puts = FramePuts::new(fault.clone());
        puts.submit("frames/a".into(), Bytes::from(vec![0; 100])).unwrap();
        // The error comes back from a later submit or from finish, and
        // every call after it fails as well.
        let mut seen = None;
        for i in 0..50 {
            if let Err(e) = puts.submit(format!("frames/{i}"), Bytes::from(vec![1; 100])) {
                seen = Some(e);
                break;
            }
        }
        let finished = puts.finish();
        assert!(finished.is_err(), "finish passed a failed save");
        let first = seen.map_or_else(|| finished.unwrap_err().to_string(), |e| e.to_string());
        assert!(first.contains("frames/a"), "not the failed put's error: {first}");
        assert!(puts.finish().is_err(), "finish passed a failed save");
    }
}
