//! [`Store`]: checkpoints kept by key on any backend, many entries per key,
//! with the best, the latest or a given entry found through one index read.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::docs::{decode, encode, InfoDoc, UsageDoc, DOC_VERSION, MAX_SMALL_DOC_BYTES};
use super::key::Key;
use super::layout::{self, now_ns};
use super::options::StoreOptions;
use super::select::{EntryInfo, EntryKind};
use crate::backend::{self, Backend, BackendExt, LocalBackend, PutMode};
use crate::error::{Error, Result};
use crate::format::{Checkpoint, CheckpointWriter, ReadOptions, StreamCheck, WriterOptions};

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

/// What this handle knows of the store's size between collections.
#[derive(Debug, Default)]
pub(crate) struct UsageState {
    /// Bytes the last collection counted, if known.
    pub base: Option<u64>,
    /// Bytes saved less bytes removed through this handle since.
    pub net: i64,
    pub saves_since_pass: u64,
    pub last_pass: u64,
}

/// A keyed checkpoint store over a [`Backend`].
///
/// ```
/// use cairn::store::{Key, SaveInfo, Select, Store, StoreOptions};
/// # fn main() -> Result<(), cairn::Error> {
/// let store = Store::open(std::sync::Arc::new(cairn::backend::MemoryBackend::new()), "", StoreOptions::default())?;
/// let key = Key::new("resnet50/lr=0.1");
/// for (step, loss) in [(100, 0.9), (200, 0.4), (300, 0.6)] {
///     store.save_with(&key, SaveInfo::checkpoint().iteration(step).objective(loss), Default::default(), |w| {
///         w.add_tensor("w", &[2], &[loss as f32, 1.0])
///     })?;
/// }
/// let best = store.lookup(&key, &Select::Best)?.expect("an entry");
/// assert_eq!(best.info.iteration, Some(200));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Store {
    pub(crate) backend: Arc<dyn Backend>,
    /// Prepended to every key: `""` or `"some/prefix/"`.
    pub(crate) prefix: String,
    pub(crate) opts: StoreOptions,
    pub(crate) usage: Mutex<UsageState>,
    pub(crate) cache: super::cache::EntryCache,
    /// Hash paths of keys this handle knows to have an index.
    pub(crate) indexed_keys: Mutex<std::collections::HashSet<String>>,
}

/// A found entry: its info and the opened, verified checkpoint.
#[derive(Debug, Clone)]
pub struct Found {
    /// The entry's info.
    pub info: EntryInfo,
    /// The checkpoint, read whole and checked against the digest recorded
    /// when it was saved.
    pub checkpoint: Arc<Checkpoint>,
}

impl Store {
    /// Opens the store under `prefix` (`""` for the backend's root) of
    /// `backend`. Nothing is created until the first save.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a prefix that is not a valid key
    /// prefix; errors reading the usage summary.
    pub fn open(backend: Arc<dyn Backend>, prefix: &str, opts: StoreOptions) -> Result<Self> {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        backend::check_prefix(&prefix)?;
        let cache = super::cache::EntryCache::new(opts.cache_bytes, opts.cache_ttl);
        let store = Store {
            backend,
            prefix,
            opts,
            usage: Mutex::new(UsageState::default()),
            cache,
            indexed_keys: Mutex::new(std::collections::HashSet::new()),
        };
        let base = store.read_usage()?.map(|u| u.bytes);
        store.usage_state().base = base;
        Ok(store)
    }

    /// Opens a store at a directory or a URL: `s3://bucket/prefix` (or a
    /// whole bucket, `s3://bucket`), `gs://…`, `az://…`, `file:///srv/store`.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`Error::InvalidArgument`] for bad URLs and
    /// for `memory://`, which nothing else could see (use [`open`](Self::open)
    /// with a [`MemoryBackend`](crate::backend::MemoryBackend)); errors
    /// creating the directory, or [`Error::NotFound`] for a missing one when
    /// the options say not to create it
    /// ([`StoreOptions::create_if_missing`]).
    pub fn open_url(url: &str, opts: StoreOptions) -> Result<Self> {
        match backend::parse_url(url)? {
            backend::Target::Path(path) => {
                let b = if opts.create { LocalBackend::open(path) } else { LocalBackend::open_existing(path) };
                Self::open(Arc::new(b.map_err(|e| no_store(e, url))?), "", opts)
            }
            backend::Target::Memory => Err(Error::InvalidArgument(format!(
                "{url:?}: a memory store is private to one handle; open it with Store::open and a MemoryBackend"
            ))),
            backend::Target::Object { scheme, bucket, key: prefix } => {
                Self::open(backend::bucket_backend(scheme, bucket, url)?, prefix, opts)
            }
        }
    }

    /// Opens the default store: `$CAIRN_HOME` (a directory or URL) if set,
    /// else `cairn/` in the user's cache directory (`~/.cache/cairn` on
    /// Linux).
    ///
    /// # Errors
    /// As [`open_url`](Self::open_url); [`Error::InvalidArgument`] when
    /// there is neither `$CAIRN_HOME` nor a cache directory.
    pub fn open_default(opts: StoreOptions) -> Result<Self> {
        Self::open_url(&default_location()?, opts)
    }

    /// The backend and prefix, as a URL for messages.
    pub fn url(&self) -> String {
        format!("{}/{}", self.backend.url().trim_end_matches('/'), self.prefix)
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// The backend key of a store key.
    pub(crate) fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(crate) fn usage_state(&self) -> std::sync::MutexGuard<'_, UsageState> {
        crate::util::lock(&self.usage)
    }

    fn read_usage(&self) -> Result<Option<UsageDoc>> {
        let k = self.k(layout::USAGE);
        match self.backend.get(&k) {
            Ok(b) => Ok(decode::<UsageDoc>(&b, MAX_SMALL_DOC_BYTES, &k).ok()),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn write_usage(&self, entries: u64, bytes: u64) -> Result<()> {
        let doc = UsageDoc { version: DOC_VERSION, entries, bytes, at: now_ns() };
        self.backend.put(&self.k(layout::USAGE), encode(&doc)?, PutMode::Overwrite)?;
        let mut u = self.usage_state();
        u.base = Some(bytes);
        u.net = 0;
        Ok(())
    }

    /// Saves a checkpoint held in memory (its complete bytes) as a new
    /// entry of `key`; returns the entry.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a NaN objective; [`Error::Corrupt`]
    /// if `data` is not a readable checkpoint; backend errors.
    pub fn save_bytes(&self, key: &Key, data: impl Into<Bytes>, info: SaveInfo) -> Result<EntryInfo> {
        let data: Bytes = data.into();
        check_info(&info)?;
        // A structural check (header, index, trailer) before anything is stored.
        Checkpoint::open_ranged(Box::new(BytesSource(data.clone())), "the checkpoint to save")?;
        let digest = blake3::hash(&data).to_hex().to_string();
        let len = data.len() as u64;
        self.commit_entry(key, info, Pending::new(), len, digest, |data_key| {
            self.backend.put(data_key, data, PutMode::Create).map(|_| ())
        })
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
        let path = path.as_ref();
        check_info(&info)?;
        // One open file for both: a file renamed over the path after this
        // is not what gets stored. Positional reads, not a map: a file
        // truncated under a map would kill the process with SIGBUS.
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let for_check = file.try_clone().map_err(|e| Error::io("opening", path, e))?;
        let ck = Checkpoint::from_file(for_check, path.display().to_string(), &ReadOptions::default().mmap(false))?;
        let report = ck.verify()?;
        if let Some(p) = report.problems.first() {
            return Err(Error::Corrupt {
                file: path.display().to_string(),
                what: p.what.clone(),
                offset: p.offset,
                detail: format!("{} ({} problems in all)", p.detail, report.problems.len()),
            });
        }
        let mut stream =
            VerifiedStream { file: &file, check: StreamCheck::new(&ck), hasher: blake3::Hasher::new(), failure: None };
        self.commit_entry_streamed(key, info, Pending::new(), |data_key| {
            match self.backend.put_from(data_key, &mut stream, PutMode::Create) {
                Ok(_) => Ok((stream.check.len(), stream.hasher.finalize().to_hex().to_string())),
                // The file's own error, rather than the upload it broke.
                Err(e) => Err(stream.failure.take().unwrap_or(e)),
            }
        })
    }

    /// Saves a checkpoint written by `write` (into memory, then stored) as
    /// a new entry of `key`. The checkpoint's metadata gets the entry's
    /// facts under [`ENTRY_FACTS_KEY`] (key, id, objective, iteration, kind,
    /// creation time, metadata), so that the entry can be recovered from its
    /// data alone should its info and its index both be lost.
    ///
    /// # Errors
    /// `write`'s errors; as [`save_bytes`](Self::save_bytes).
    pub fn save_with(
        &self,
        key: &Key,
        info: SaveInfo,
        opts: WriterOptions,
        write: impl FnOnce(&mut CheckpointWriter<Vec<u8>>) -> Result<()>,
    ) -> Result<EntryInfo> {
        check_info(&info)?;
        let pending = Pending::new();
        let mut w = CheckpointWriter::in_memory(opts)?;
        if let Some(step) = info.iteration {
            w.set_step(step);
        }
        write(&mut w)?;
        let facts = super::facts::EntryFacts::new(key.name(), &pending.id, pending.created_at, &info);
        w.set_metadata(
            ENTRY_FACTS_KEY,
            serde_json::to_value(&facts).map_err(|e| Error::Internal(format!("encoding an entry's facts: {e}")))?,
        );
        let data: Bytes = w.finish()?.into();
        Checkpoint::open_ranged(Box::new(BytesSource(data.clone())), "the checkpoint to save")?;
        let digest = blake3::hash(&data).to_hex().to_string();
        let len = data.len() as u64;
        self.commit_entry(key, info, pending, len, digest, |data_key| {
            self.backend.put(data_key, data, PutMode::Create).map(|_| ())
        })
    }

    /// Stores data through `put_data` and commits it as an entry whose
    /// length and digest are known up front.
    fn commit_entry(
        &self,
        key: &Key,
        info: SaveInfo,
        pending: Pending,
        len: u64,
        digest: String,
        put_data: impl FnOnce(&str) -> Result<()>,
    ) -> Result<EntryInfo> {
        self.commit_entry_streamed(key, info, pending, |k| put_data(k).map(|()| (len, digest)))
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
        put_data: impl FnOnce(&str) -> Result<(u64, String)>,
    ) -> Result<EntryInfo> {
        let hp = key.hash_path();
        self.ensure_index(&hp, key.name())?;
        let Pending { id, created_at } = pending;
        // Held until the index names the entry; released on every path.
        let lease = self.take_lease(&hp, &id)?;
        let (bytes, digest) = self.renewing(&lease, || put_data(&self.k(&layout::data_key(&hp, &id))))?;
        let entry = EntryInfo {
            id: id.clone(),
            objective: info.objective,
            iteration: info.iteration,
            kind: info.kind,
            created_at,
            bytes,
            pinned: info.pinned,
            metadata: info.metadata,
            digest,
            last_used: created_at,
        };
        let doc =
            InfoDoc { version: DOC_VERSION, key: key.name().to_string(), entry: entry.clone(), quarantined: None };
        self.backend.put(&self.k(&layout::info_key(&hp, &id)), encode(&doc)?, PutMode::Create)?;
        let index = self.update_index(&hp, key.name(), |ix| {
            if ix.entries.iter().any(|e| e.id == id) {
                return false;
            }
            ix.entries.push(entry.clone());
            true
        })?;
        lease.release()?;
        {
            let mut u = self.usage_state();
            u.net = u.net.saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
            u.saves_since_pass += 1;
        }
        self.apply_retention(&hp, &index.entries)?;
        self.evict_if_due()?;
        Ok(entry)
    }

    /// Makes sure the key at `hp` has an index, creating an empty one if
    /// not; remembered per key, so a handle asks once.
    fn ensure_index(&self, hp: &str, key_name: &str) -> Result<()> {
        let known = |s: &Self| crate::util::lock(&s.indexed_keys).contains(hp);
        if known(self) {
            return Ok(());
        }
        let k = self.k(&layout::index_key(hp));
        match self.backend.put(&k, encode(&super::docs::IndexDoc::new(key_name))?, PutMode::Create) {
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
    fn renewing<T>(&self, lease: &super::Lease, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let every = self.opts.lease_ttl / 3;
        if every.is_zero() {
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

    /// The entries of `key`, in the order they were saved.
    ///
    /// # Errors
    /// Backend errors.
    pub fn entries(&self, key: &Key) -> Result<Vec<EntryInfo>> {
        let mut v = self.read_index(&key.hash_path())?.map(|(ix, _)| ix.entries).unwrap_or_default();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Every key with at least one entry, with its entries (in the order
    /// saved), sorted by key.
    ///
    /// # Errors
    /// Backend errors.
    pub fn list(&self) -> Result<Vec<(String, Vec<EntryInfo>)>> {
        let mut out = Vec::new();
        for hp in self.index_paths()? {
            if let Some((mut ix, _)) = self.read_index(&hp)? {
                if ix.entries.is_empty() {
                    continue;
                }
                ix.entries.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
                out.push((ix.key, ix.entries));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The hash paths of every key that has an index.
    pub(crate) fn index_paths(&self) -> Result<Vec<String>> {
        let root = self.k(layout::INDEX);
        Ok(self
            .backend
            .list(&root)?
            .into_iter()
            .filter_map(|m| m.key.strip_prefix(&self.prefix).and_then(layout::split_index_key))
            .collect())
    }

    /// Pins or unpins an entry: pinned entries are never removed by
    /// retention, eviction or `rm`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the key has no such entry; backend errors.
    pub fn pin(&self, key: &Key, id: &str, pinned: bool) -> Result<EntryInfo> {
        let hp = key.hash_path();
        let mut found = None;
        self.update_index(&hp, key.name(), |ix| {
            found = ix.entries.iter_mut().find(|e| e.id == id).map(|e| {
                e.pinned = pinned;
                e.clone()
            });
            found.is_some()
        })?;
        let Some(entry) = found else {
            return Err(Error::NotFound { what: format!("{}: entry {id} of key {key:?}", self.url()), source: None });
        };
        // The info object follows, so that a rebuilt index keeps the pin.
        let doc =
            InfoDoc { version: DOC_VERSION, key: key.name().to_string(), entry: entry.clone(), quarantined: None };
        self.backend.put(&self.k(&layout::info_key(&hp, id)), encode(&doc)?, PutMode::Overwrite)?;
        Ok(entry)
    }

    /// Removes entry `id` of `key`, or every entry of `key` when `id` is
    /// `None`; pinned entries stay. Returns the entries removed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an id the key does not have; backend errors.
    pub fn remove(&self, key: &Key, id: Option<&str>) -> Result<Vec<EntryInfo>> {
        let hp = key.hash_path();
        let entries = self.read_index(&hp)?.map(|(ix, _)| ix.entries).unwrap_or_default();
        let ids: Vec<String> = match id {
            Some(id) => {
                let Some(e) = entries.iter().find(|e| e.id == id) else {
                    return Err(Error::NotFound {
                        what: format!("{}: entry {id} of key {key:?}", self.url()),
                        source: None,
                    });
                };
                if e.pinned {
                    return Err(Error::Refused {
                        what: format!("removing entry {id} of key {key:?}"),
                        reason: "it is pinned; unpin it first".into(),
                    });
                }
                vec![e.id.clone()]
            }
            None => entries.iter().filter(|e| !e.pinned).map(|e| e.id.clone()).collect(),
        };
        self.remove_entries(&hp, &ids, "removed")
    }
}

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

/// Says that a missing store directory is a missing store.
fn no_store(e: Error, url: &str) -> Error {
    match e {
        Error::NotFound { source, .. } => Error::NotFound { what: format!("no store at {url}"), source },
        other => other,
    }
}

fn check_info(info: &SaveInfo) -> Result<()> {
    if info.objective.is_some_and(f64::is_nan) {
        return Err(Error::InvalidArgument("an entry's objective must not be NaN".into()));
    }
    Ok(())
}

/// Where the default store lives: `$CAIRN_HOME`, else `<cache dir>/cairn`.
///
/// # Errors
/// [`Error::InvalidArgument`] when neither is known.
pub fn default_location() -> Result<String> {
    if let Some(home) = std::env::var_os("CAIRN_HOME").filter(|h| !h.is_empty()) {
        return home.into_string().map_err(|h| {
            Error::InvalidArgument(format!("CAIRN_HOME is not valid UTF-8: {}", PathBuf::from(h).display()))
        });
    }
    let Some(cache) = dirs::cache_dir() else {
        return Err(Error::InvalidArgument("no cache directory is known here; set CAIRN_HOME".into()));
    };
    Ok(cache.join("cairn").display().to_string())
}

/// A checkpoint held in memory, read by range.
#[derive(Debug)]
pub(crate) struct BytesSource(pub Bytes);

impl crate::format::RangeRead for BytesSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        self.0
            .get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end"))
    }
}

/// Streams the open file a save verified, from offset 0, checking each
/// byte against what verification proved and hashing it. A difference ends
/// the stream with an error before its last byte is handed over, so the
/// upload is abandoned and nothing is committed.
struct VerifiedStream<'a> {
    file: &'a File,
    check: StreamCheck<'a>,
    hasher: blake3::Hasher,
    /// Why the stream failed, kept for the caller.
    failure: Option<Error>,
}

impl VerifiedStream<'_> {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        self.failure.get_or_insert(e);
        io
    }
}

impl std::io::Read for VerifiedStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failure.is_some() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the file changed"));
        }
        let n = self.file.read_at(buf, self.check.len())?;
        if n == 0 {
            return match self.check.finish() {
                Ok(()) => Ok(0),
                Err(e) => Err(self.fail(e)),
            };
        }
        let got = buf.get(..n).unwrap_or_default();
        if let Err(e) = self.check.update(got) {
            return Err(self.fail(e));
        }
        self.hasher.update(got);
        Ok(n)
    }
}
