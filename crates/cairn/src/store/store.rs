//! [`Store`]: checkpoints kept by key on any backend, many entries per key,
//! with the best, the latest or a given entry found through one index read.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::entry::EntryInfo;
use super::key::Key;
use super::layout::{self, now_ns};
use super::options::StoreOptions;
use super::records::{decode, encode, InfoDoc, UsageDoc, DOC_VERSION, MAX_SMALL_DOC_BYTES};
use crate::backend::{self, Backend, LocalBackend, PutMode};
use crate::error::{Error, Result};
use crate::format::Checkpoint;

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
///
/// Saves in flight ([`save_async`](Self::save_async)) belong to the store:
/// dropping it waits for them (their failures are then logged, since
/// nobody is left to return them to).
#[derive(Debug)]
pub struct Store {
    shared: Arc<StoreShared>,
    /// Whether this is a background save's handle, which does not wait for
    /// saves when dropped (it is one of them).
    background: bool,
}

impl std::ops::Deref for Store {
    type Target = StoreShared;

    fn deref(&self) -> &StoreShared {
        &self.shared
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.background {
            return;
        }
        self.saves.wait_idle();
        if let Err(e) = self.saves.take_failure() {
            log::error!("{}: a background save failed and nobody waited for it: {e}", self.url());
        }
    }
}

/// What every handle of one opened store shares: the user's [`Store`] and
/// the handles its background saves hold. Reached only through [`Store`].
#[derive(Debug)]
pub struct StoreShared {
    pub(crate) backend: Arc<dyn Backend>,
    /// Prepended to every key: `""` or `"some/prefix/"`.
    pub(crate) prefix: String,
    pub(crate) opts: StoreOptions,
    pub(crate) usage: Mutex<UsageState>,
    pub(crate) cache: super::cache::EntryCache,
    /// Hash paths of keys this handle knows to have an index.
    pub(crate) indexed_keys: Mutex<std::collections::HashSet<String>>,
    /// Where index writes are volatile: how many committed entries each
    /// key's index lags, as far as this handle knows (counted when it first
    /// saves to the key, then one more per save it leaves out).
    pub(crate) index_lag: Mutex<std::collections::HashMap<String, usize>>,
    /// Indexes this handle decoded, by version tag.
    pub(crate) index_docs: super::index_docs::IndexDocs,
    /// Background saves in flight and the failures nobody collected.
    pub(crate) saves: Arc<super::save_async::InFlight>,
    /// Staging memory of background saves, kept from one save to the next.
    pub(crate) stage: Arc<crate::format::stage::Budget>,
}

/// A found entry: its info and the opened, verified checkpoint.
#[derive(Debug, Clone)]
pub struct Found {
    /// The entry's info.
    pub info: EntryInfo,
    /// The checkpoint, opened lazily (mapped from the entry's file on local
    /// disk, ranged reads on object storage) after every byte was hashed and
    /// checked against the digest recorded when it was saved; its frames
    /// are checked again as they are read.
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
        let opts_stage = opts.stage_bytes;
        let shared = StoreShared {
            backend,
            prefix,
            opts,
            usage: Mutex::new(UsageState::default()),
            cache,
            indexed_keys: Mutex::new(std::collections::HashSet::new()),
            index_lag: Mutex::new(std::collections::HashMap::new()),
            index_docs: super::index_docs::IndexDocs::default(),
            saves: Arc::default(),
            stage: crate::format::stage::Budget::new(opts_stage),
        };
        let store = Store { shared: Arc::new(shared), background: false };
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

    /// A handle on the same store for a background save.
    pub(crate) fn background_handle(&self) -> Store {
        Store { shared: Arc::clone(&self.shared), background: true }
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
    pub(crate) fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A backend key as a URL, for messages.
    pub(crate) fn locator(&self, backend_key: &str) -> String {
        crate::backend::locator(self.backend.url(), backend_key)
    }

    pub(crate) fn usage_state(&self) -> std::sync::MutexGuard<'_, UsageState> {
        crate::util::lock(&self.usage)
    }

    fn read_usage(&self) -> Result<Option<UsageDoc>> {
        let k = self.object_key(layout::USAGE);
        match self.backend.get(&k) {
            Ok(b) => Ok(decode::<UsageDoc>(&b, MAX_SMALL_DOC_BYTES, &k).ok()),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn write_usage(&self, entries: u64, bytes: u64) -> Result<()> {
        let doc = UsageDoc { version: DOC_VERSION, entries, bytes, at: now_ns() };
        self.backend.put(&self.object_key(layout::USAGE), encode(&doc)?, PutMode::Overwrite)?;
        let mut u = self.usage_state();
        u.base = Some(bytes);
        u.net = 0;
        Ok(())
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
        let mut paths = self.index_paths()?;
        if self.backend.volatile_is_weaker() {
            // A crash may have lost a new key's index (index writes are not
            // synced there): its committed entries still make it a key.
            let root = self.object_key(layout::ENTRIES);
            let known: std::collections::HashSet<String> = paths.iter().cloned().collect();
            let mut lost: Vec<String> = self
                .backend
                .list_keys(&root)?
                .into_iter()
                .filter_map(|k| match layout::split_entry_key(&k, &root) {
                    Some((hp, _, "info")) if !known.contains(&hp) => Some(hp),
                    _ => None,
                })
                .collect();
            lost.dedup();
            paths.extend(lost);
        }
        for hp in paths {
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
        let root = self.object_key(layout::INDEX);
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
        // Durable: a pin the index forgot would not be seen by retention.
        self.update_index_with(&hp, key.name(), crate::backend::Durability::Durable, |ix| {
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
        self.backend.put(&self.object_key(&layout::info_key(&hp, id)), encode(&doc)?, PutMode::Overwrite)?;
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

/// Says that a missing store directory is a missing store.
fn no_store(e: Error, url: &str) -> Error {
    match e {
        Error::NotFound { source, .. } => Error::NotFound { what: format!("no store at {url}"), source },
        other => other,
    }
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
