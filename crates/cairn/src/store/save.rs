//! Saving an entry: the protocol that makes a key's index before its first
//! data, writes the data and then the info (the commit point), names the
//! entry in the index, and runs retention and eviction; the ways data comes
//! in (bytes, a file streamed and checked as it streams, a writer closure).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::entry::{EntryInfo, EntryKind};
use super::key::Key;
use super::layout::{self, now_ns};
use super::records::{encode, IndexDoc, InfoDoc, DOC_VERSION};
use super::save_lease::SaveLease;
use super::sink::EntrySink;
use super::store::{BytesSource, Store};
use crate::backend::{Durability, PutMode};
use crate::error::{Error, Result};
use crate::format::{Checkpoint, CheckpointWriter, ReadOptions, Sink, WriterOptions};

/// What a save records about the new entry besides its data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveInfo {
    pub(crate) objective: Option<f64>,
    pub(crate) iteration: Option<u64>,
    pub(crate) kind: EntryKind,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) pinned: bool,
}

impl SaveInfo {
    /// An intermediate checkpoint.
    pub fn checkpoint() -> Self {
        Self::default()
    }

    /// A final result.
    pub fn final_result() -> Self {
        SaveInfo { kind: EntryKind::Final, ..Self::default() }
    }

    /// The score reached (a loss, an accuracy); must not be NaN.
    #[must_use]
    pub fn objective(mut self, x: f64) -> Self {
        self.objective = Some(x);
        self
    }

    /// The step or iteration saved at.
    #[must_use]
    pub fn iteration(mut self, n: u64) -> Self {
        self.iteration = Some(n);
        self
    }

    /// Checkpoint or final result. Default = checkpoint.
    #[must_use]
    pub fn kind(mut self, kind: EntryKind) -> Self {
        self.kind = kind;
        self
    }

    /// A user metadata pair.
    #[must_use]
    pub fn meta(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }

    /// Saves the entry pinned: never removed by retention or eviction.
    #[must_use]
    pub fn pinned(mut self, on: bool) -> Self {
        self.pinned = on;
        self
    }
}

impl Store {
    /// Saves a checkpoint held in memory (its complete bytes) as a new
    /// entry of `key`; returns the entry.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a NaN objective; [`Error::Corrupt`]
    /// if `data` is not a readable checkpoint; backend errors.
    pub fn save_bytes(&self, key: &Key, data: impl Into<Bytes>, info: SaveInfo) -> Result<EntryInfo> {
        self.saves.take_failure()?;
        let data: Bytes = data.into();
        check_info(&info)?;
        // A full check before anything is stored; then the bytes are copied
        // in as verified, frames shared with the entries that hold them.
        let ck = Checkpoint::open_ranged(Box::new(BytesSource(data.clone())), "the checkpoint to save")?;
        let report = ck.verify()?;
        refuse_problems(&report, "the checkpoint to save")?;
        let read_at = |offset: u64, buf: &mut [u8]| {
            let from = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
            let part = data.get(from..).unwrap_or_default();
            let n = part.len().min(buf.len());
            buf.get_mut(..n).unwrap_or_default().copy_from_slice(part.get(..n).unwrap_or_default());
            Ok(n)
        };
        self.copy_in(key, info, &ck, "the checkpoint to save", read_at)
    }

    /// Saves a checkpoint file as a new entry of `key`, after verifying it
    /// completely; the file is streamed, not held in memory. What is stored
    /// is exactly what was verified: the file is opened once, and every
    /// byte streamed is checked against what verification proved (each
    /// part's checksum, the length), so a file replaced or changed after
    /// verification is refused, not stored.
    ///
    /// # Errors
    /// As [`save_bytes`](Self::save_bytes); [`Error::Corrupt`] when the
    /// file fails verification or changes before it is stored; I/O errors
    /// reading it.
    pub fn save_file(&self, key: &Key, path: impl AsRef<Path>, info: SaveInfo) -> Result<EntryInfo> {
        self.saves.take_failure()?;
        let path = path.as_ref();
        check_info(&info)?;
        // One open file for both: a file renamed over the path after this
        // is not what gets stored. Positional reads, not a map: a file
        // truncated under a map would kill the process with SIGBUS.
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let for_check = file.try_clone().map_err(|e| Error::io("opening", path, e))?;
        let ck = Checkpoint::from_file(for_check, path.display().to_string(), &ReadOptions::default().mmap(false))?;
        let report = ck.verify()?;
        let origin = path.display().to_string();
        refuse_problems(&report, &origin)?;
        self.copy_in(key, info, &ck, &origin, |offset, buf| file.read_at(buf, offset))
    }

    /// Copies a verified checkpoint in as a new entry of `key`
    /// (`copy_in.rs`), its frames shared as a save's are.
    fn copy_in(
        &self,
        key: &Key,
        info: SaveInfo,
        ck: &Checkpoint,
        origin: &str,
        read_at: impl FnMut(u64, &mut [u8]) -> std::io::Result<usize>,
    ) -> Result<EntryInfo> {
        self.commit_entry_streamed(key, info, Pending::new(), |data_key, lease| {
            let mut sink = self.entry_sink(key, data_key, lease, true)?;
            super::copy_in::copy_verified(ck, origin, read_at, &mut sink)?;
            let stored = sink.commit()?;
            Ok((stored.len, stored.digest, stored.added))
        })
    }

    /// The sink a save of `key` streams its checkpoint into, at backend key
    /// `data_key`: sharing frames when the store does, under the save's
    /// `lease`, taken before its first look at a shared frame.
    fn entry_sink(&self, key: &Key, data_key: &str, lease: &Arc<SaveLease>, parallel: bool) -> Result<EntrySink> {
        // A fresh id names the object, so no other writer can race for it:
        // a plain put, which streams on every backend.
        let mut sink =
            EntrySink::new(self.backend.writer(data_key, PutMode::Overwrite)?, self.locator(data_key), parallel);
        if self.opts.share_frames {
            let (store, hp) = (self.background_handle(), key.hash_path());
            let find = move || {
                store.delta_bases(&hp).unwrap_or_else(|e| {
                    log::warn!("{}: the key's latest entry offers no frames to XOR against: {e}", store.url());
                    super::delta_base::Bases::new()
                })
            };
            sink = sink.sharing(self.backend.clone(), &self.prefix, Box::new(find), Arc::clone(lease));
        }
        Ok(sink)
    }

    /// Saves a checkpoint written by `write` as a new entry of `key`. The
    /// checkpoint streams into the backend as `write` adds chunks (a temp
    /// file beside the entry on local disk, a multipart upload on object
    /// storage), so memory stays at a few frames per thread whatever its
    /// size; it is hashed as it streams, and nothing is visible until the
    /// entry is committed after `write` returns. The checkpoint's metadata
    /// gets the entry's facts under [`ENTRY_FACTS_KEY`] (key, id, objective,
    /// iteration, kind, creation time, metadata), so that the entry can be
    /// recovered from its data alone should its info and its index both be
    /// lost.
    ///
    /// # Errors
    /// `write`'s errors, after which nothing is published; as
    /// [`save_bytes`](Self::save_bytes).
    pub fn save_with(
        &self,
        key: &Key,
        info: SaveInfo,
        opts: WriterOptions,
        write: impl FnOnce(&mut CheckpointWriter<EntrySink>) -> Result<()>,
    ) -> Result<EntryInfo> {
        self.saves.take_failure()?;
        check_info(&info)?;
        self.save_streamed(key, info, opts, write)
    }

    /// A background save's side of [`save_async`](Self::save_async): the
    /// `save_with` protocol, its chunks taken from what the caller staged.
    pub(crate) fn save_staged(
        &self,
        key: &Key,
        info: SaveInfo,
        opts: WriterOptions,
        staged: std::sync::mpsc::Receiver<crate::format::stage::Op>,
    ) -> Result<EntryInfo> {
        self.save_streamed(key, info, opts, |w| match w.core_mut() {
            Some(core) => crate::format::stage::drive(core, &staged),
            None => Err(Error::Internal("a background save was given a staging writer".into())),
        })
    }

    fn save_streamed(
        &self,
        key: &Key,
        info: SaveInfo,
        opts: WriterOptions,
        write: impl FnOnce(&mut CheckpointWriter<EntrySink>) -> Result<()>,
    ) -> Result<EntryInfo> {
        let pending = Pending::new();
        let facts = super::facts::EntryFacts::new(key.name(), &pending.id, pending.created_at, &info);
        let facts =
            serde_json::to_value(&facts).map_err(|e| Error::Internal(format!("encoding an entry's facts: {e}")))?;
        let step = info.iteration;
        self.commit_entry_streamed(key, info, pending, |data_key, lease| {
            // One encoding thread asked for: hashing keeps to it too.
            let sink = self.entry_sink(key, data_key, lease, opts.threads != Some(1))?;
            let mut w = CheckpointWriter::with_sink(sink, opts)?;
            if let Some(step) = step {
                w.set_step(step);
            }
            write(&mut w)?;
            w.set_metadata(ENTRY_FACTS_KEY, facts);
            let stored = w.finish()?;
            Ok((stored.len, stored.digest, stored.added))
        })
    }

    /// The save protocol: the key's index exists (created empty, once per
    /// key, before any of its data), then data (create-only, under a fresh
    /// id), then the info object (create-only: from here the entry exists),
    /// then the key's index names it, then retention and, when due,
    /// eviction. Since a key's index is made before its first entry, a key
    /// with entries and no index is damage, not a crash state.
    fn commit_entry_streamed(
        &self,
        key: &Key,
        info: SaveInfo,
        pending: Pending,
        put_data: impl FnOnce(&str, &Arc<SaveLease>) -> Result<(u64, String, u64)>,
    ) -> Result<EntryInfo> {
        let hp = key.hash_path();
        self.ensure_index(&hp, key.name())?;
        let Pending { id, created_at } = pending;
        // Held until the index names the entry; released on every path.
        // Data becomes visible only complete (a renamed temp file, a
        // finished upload), its info right after; so a collection can take
        // it for an orphan only within that moment, which the orphan grace
        // covers unless it is short. Only then does the save pay for a
        // lease (two more files on local disk).
        // A save that may name shared frames holds a lease until it is
        // committed: a collection empties no trashed frame while a lease
        // older than the trashing is live (docs/STORE.md, "Shared frames").
        let lease = Arc::new(SaveLease::new(self, &hp, &id));
        if self.opts.orphan_grace < SAVE_LEASE_BELOW_GRACE {
            lease.ensure()?;
        }
        let may_lease = lease.is_held() || self.opts.share_frames;
        let data_key = self.object_key(&layout::data_key(&hp, &id));
        let (bytes, digest, added_bytes) = self.renewing(&lease, may_lease, || put_data(&data_key, &lease))?;
        let entry = EntryInfo {
            id: id.clone(),
            objective: info.objective,
            iteration: info.iteration,
            kind: info.kind,
            created_at,
            bytes,
            added_bytes,
            pinned: info.pinned,
            metadata: info.metadata,
            digest,
            last_used: created_at,
        };
        let doc =
            InfoDoc { version: DOC_VERSION, key: key.name().to_string(), entry: entry.clone(), quarantined: None };
        self.backend.put(&self.object_key(&layout::info_key(&hp, &id)), encode(&doc)?, PutMode::Create)?;
        let index = self.note_in_index(&hp, key.name(), &entry)?;
        lease.release()?;
        {
            let mut u = self.usage_state();
            // What the store grew by: a save that shares frames adds less
            // than its checkpoint's size.
            u.net = u.net.saturating_add(i64::try_from(added_bytes).unwrap_or(i64::MAX));
            u.saves_since_pass += 1;
        }
        if let Some(index) = index {
            self.apply_retention(&hp, &index.entries)?;
        }
        self.evict_if_due()?;
        Ok(entry)
    }

    /// Names a committed entry in its key's index; returns the index as
    /// it now stands, or `None` when this save left the index as it was
    /// and nothing after it needs the key's entries. Where index writes are
    /// volatile (local disk) every read of an index merges the infos it
    /// lags, so the index is written only once it lags [`INDEX_BATCH`]
    /// entries: most saves then create no file besides their data and
    /// info. A handle counts the lag once per key and then counts its own
    /// saves, so that a save without retention reads neither the index nor
    /// the key's folder (docs/STORE.md).
    fn note_in_index(&self, hp: &str, key_name: &str, entry: &EntryInfo) -> Result<Option<IndexDoc>> {
        if self.backend.volatile_is_weaker() {
            if self.opts.retention.is_keep_all() && self.count_unindexed(hp) {
                return Ok(None);
            }
            if let Some((stored, _)) = self.read_stored_index(hp)? {
                let known = stored.entries.len();
                let merged = self.with_unindexed(hp, stored)?;
                let named = merged.entries.iter().any(|e| e.id == entry.id);
                let lag = merged.entries.len().saturating_sub(known);
                if named && lag < INDEX_BATCH {
                    self.set_index_lag(hp, lag);
                    return Ok(Some(merged));
                }
            }
        }
        let index = self.update_index(hp, key_name, |ix| {
            if ix.entries.iter().any(|e| e.id == entry.id) {
                return false;
            }
            ix.entries.push(entry.clone());
            true
        })?;
        self.set_index_lag(hp, 0);
        Ok(Some(index))
    }

    /// Counts one more entry the index of `hp` lags, if this handle knows
    /// the lag and it stays under [`INDEX_BATCH`]; `false` when the index
    /// must be read (and perhaps written) instead.
    fn count_unindexed(&self, hp: &str) -> bool {
        let mut lags = crate::util::lock(&self.index_lag);
        match lags.get_mut(hp) {
            Some(n) if *n + 1 < INDEX_BATCH => {
                *n += 1;
                true
            }
            _ => false,
        }
    }

    fn set_index_lag(&self, hp: &str, lag: usize) {
        let mut lags = crate::util::lock(&self.index_lag);
        // A bound on what a long-lived handle remembers.
        if lags.len() >= 100_000 && !lags.contains_key(hp) {
            lags.clear();
        }
        lags.insert(hp.to_string(), lag);
    }

    /// Makes sure the key at `hp` has an index, creating an empty one if
    /// not; remembered per key, so a handle asks once.
    fn ensure_index(&self, hp: &str, key_name: &str) -> Result<()> {
        let known = |s: &Self| crate::util::lock(&s.indexed_keys).contains(hp);
        if known(self) {
            return Ok(());
        }
        let k = self.object_key(&layout::index_key(hp));
        let empty = encode(&super::records::IndexDoc::new(key_name))?;
        match self.backend.put_with(&k, empty, PutMode::Create, Durability::Volatile) {
            Ok(_) | Err(Error::AlreadyExists { .. } | Error::Precondition { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut set = crate::util::lock(&self.indexed_keys);
        // A bound on what a long-lived handle remembers.
        if set.len() >= 100_000 {
            set.clear();
        }
        set.insert(hp.to_string());
        Ok(())
    }

    /// Runs `work` (an upload that may outlast the lease TTL) while a
    /// thread renews `lease` every third of the TTL, so that a collection
    /// never takes the data of a long save for an orphan.
    fn renewing<T>(&self, lease: &SaveLease, may_lease: bool, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let every = self.opts.lease_ttl / 3;
        if !may_lease || every.is_zero() {
            return work();
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let renewer = s.spawn(|| loop {
                std::thread::park_timeout(every);
                if done.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                if let Err(e) = lease.renew() {
                    log::warn!("{}: renewing a save's lease: {e}", self.url());
                }
            });
            let result = work();
            done.store(true, std::sync::atomic::Ordering::Release);
            renewer.thread().unpark();
            result
        })
    }
}

/// How many committed entries an index may lag, where index writes are
/// volatile, before a save writes it.
const INDEX_BATCH: usize = 8;

/// A save takes a lease on its new id only when the store's orphan grace
/// is shorter than this: with a longer grace nothing fresh is taken for an
/// orphan anyway.
const SAVE_LEASE_BELOW_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// The checkpoint metadata key under which [`Store::save_with`] records an
/// entry's facts.
pub const ENTRY_FACTS_KEY: &str = "cairn.store.entry";

/// The id and time of an entry about to be saved, chosen before its data is
/// written (so that the data can name them).
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: String,
    pub created_at: u64,
}

impl Pending {
    pub fn new() -> Self {
        let created_at = now_ns();
        Pending { id: layout::new_id(created_at), created_at }
    }
}

pub(crate) fn check_info(info: &SaveInfo) -> Result<()> {
    if info.objective.is_some_and(f64::is_nan) {
        return Err(Error::InvalidArgument("an entry's objective must not be NaN".into()));
    }
    Ok(())
}

/// Refuses a checkpoint to store whose verification found problems,
/// naming the first.
fn refuse_problems(report: &crate::format::VerifyReport, origin: &str) -> Result<()> {
    match report.problems.first() {
        None => Ok(()),
        Some(p) => Err(Error::Corrupt {
            file: origin.to_string(),
            what: p.what.clone(),
            offset: p.offset,
            detail: format!("{} ({} problems in all)", p.detail, report.problems.len()),
        }),
    }
}
