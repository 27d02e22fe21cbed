//! How a store behaves: the objective's direction, the retention policy
//! applied on every save, the eviction budget and TTL, and the timings of
//! leases and use tracking.

use std::time::Duration;

use super::select::Direction;

/// Which entries of a key to keep. Rules compose: an entry older than
/// `max_age` goes; of the rest, when any of `keep_last`, `keep_best` and
/// `keep_every` is set, an entry stays if at least one of them keeps it.
/// Pinned entries always stay. The default keeps everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    pub(crate) keep_last: Option<usize>,
    pub(crate) keep_best: Option<usize>,
    pub(crate) keep_every: Option<u64>,
    pub(crate) max_age: Option<Duration>,
}

impl Retention {
    /// Keeps everything (the default).
    pub fn keep_all() -> Self {
        Self::default()
    }

    /// Keeps the `n` newest entries.
    #[must_use]
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Keeps the `k` best entries (by the rules of [`Select::Best`](super::Select::Best)).
    #[must_use]
    pub fn keep_best(mut self, k: usize) -> Self {
        self.keep_best = Some(k);
        self
    }

    /// Keeps entries whose iteration is a multiple of `steps` (0 keeps none
    /// by this rule).
    #[must_use]
    pub fn keep_every(mut self, steps: u64) -> Self {
        self.keep_every = Some(steps);
        self
    }

    /// Removes entries saved longer than `age` ago.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Whether the policy keeps everything.
    pub fn is_keep_all(&self) -> bool {
        *self == Self::default()
    }
}

/// Options of [`Store::open`](super::Store::open).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub(crate) direction: Direction,
    pub(crate) retention: Retention,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) touch_interval: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) orphan_grace: Duration,
    pub(crate) eviction_interval: u64,
    pub(crate) cache_bytes: u64,
    pub(crate) cache_ttl: Option<Duration>,
    pub(crate) create: bool,
    pub(crate) max_saves_in_flight: usize,
    pub(crate) stage_bytes: usize,
    pub(crate) background_nice: i32,
    pub(crate) share_frames: bool,
    pub(crate) full_every: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            direction: Direction::Minimize,
            retention: Retention::default(),
            max_bytes: None,
            ttl: None,
            touch_interval: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(600),
            orphan_grace: Duration::from_secs(3600),
            eviction_interval: 1000,
            cache_bytes: 256 << 20,
            cache_ttl: None,
            create: true,
            max_saves_in_flight: 1,
            stage_bytes: 1 << 30,
            background_nice: 0,
            share_frames: true,
            full_every: 8,
        }
    }
}

impl StoreOptions {
    /// Whether saves (`save_with`, `save_async`, `save_file`, `save_bytes`)
    /// store frames of 64 KiB and more once, shared by every entry that
    /// holds the same bytes, and a raw frame that changed a little since
    /// the key's latest entry as its XOR with that entry's frame
    /// (docs/STORE.md, "Shared frames"): an entry's object is then a
    /// manifest of its checkpoint, and reading it reads the frames it
    /// names. Collections reclaim the frames no entry names. Off, every
    /// entry's object is its whole checkpoint. Default = on.
    #[must_use]
    pub fn share_frames(mut self, on: bool) -> Self {
        self.share_frames = on;
        self
    }

    /// How often a key's frames are stored whole again: of `n` saves of a
    /// key in a row, at most `n - 1` store frames as XORs, each against a
    /// frame stored whole by an earlier save of those `n`, so reading a
    /// frame needs at most one other and no base is older than `n`
    /// entries. (A frame identical to one the store holds is still shared:
    /// it is whole already.) At least 1; 1 stores no XORs. Default = 8.
    #[must_use]
    pub fn full_every(mut self, n: u64) -> Self {
        self.full_every = n.max(1);
        self
    }

    /// How many [`save_async`](super::Store::save_async) saves may run at
    /// once; the next one waits for a slot. At least 1. Default = 1.
    #[must_use]
    pub fn max_saves_in_flight(mut self, n: usize) -> Self {
        self.max_saves_in_flight = n.max(1);
        self
    }

    /// The scheduling niceness (0–19) that the threads of a
    /// [`save_async`](super::Store::save_async) save run at, on Linux: its
    /// writer thread and the encoding threads it starts
    /// ([`WriterOptions::threads`](crate::WriterOptions::threads) `Some(n)`;
    /// rayon's global pool, used otherwise, keeps its priority). A training
    /// loop that keeps the CPU busy then wins the cores when they contend,
    /// and a save takes longer when they do. Never raises a thread's
    /// priority; elsewhere than Linux, where niceness is per process, it
    /// does nothing. Default = 0: as the caller.
    #[must_use]
    pub fn background_nice(mut self, nice: i32) -> Self {
        self.background_nice = nice.clamp(0, 19);
        self
    }

    /// The memory one [`save_async`](super::Store::save_async) may stage the
    /// caller's data in. A state larger than this is staged as far as it
    /// fits, and the call waits for the background writer to free staging
    /// buffers for the rest (the handle's stats say how long). Staging
    /// always holds at least the writer's window of frames (two per thread
    /// and three more). The budget is the store's, shared by its saves in
    /// flight, and the buffers are kept for the next save (so a training
    /// loop's saves reuse them instead of faulting in fresh memory).
    /// Default = 1 GiB.
    #[must_use]
    pub fn stage_bytes(mut self, bytes: usize) -> Self {
        self.stage_bytes = bytes;
        self
    }

    /// Whether lower or higher objectives are better. Default = minimise.
    #[must_use]
    pub fn direction(mut self, d: Direction) -> Self {
        self.direction = d;
        self
    }

    /// The retention policy applied to a key after each save to it.
    /// Default = keep everything.
    #[must_use]
    pub fn retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }

    /// A budget for the bytes the entries take in the store (their objects,
    /// and each shared frame once, however many entries name it): past it,
    /// the least recently used unpinned entries are evicted, down to 90 %
    /// of it. Evicting an entry frees the frames no other entry names
    /// (reclaimed by the collections after the orphan grace). Checked after
    /// saves from what the last pass counted plus what this handle saved
    /// since, so it costs no scan per save, and a pass runs once per tenth
    /// of the budget saved; other processes' saves count from the next
    /// pass. Default = none.
    #[must_use]
    pub fn max_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Evicts unpinned entries not used (saved or read) for `ttl`, in an
    /// eviction pass that runs at most every tenth of `ttl` or every
    /// [`eviction_interval`](Self::eviction_interval) saves. Default = none.
    #[must_use]
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// How stale an entry's last-use time may get before a read records
    /// it again (each record is an index update). Default = 60 s.
    #[must_use]
    pub fn touch_interval(mut self, d: Duration) -> Self {
        self.touch_interval = d;
        self
    }

    /// How long a lease holds an entry against removal unless released or
    /// renewed. Default = 10 min.
    #[must_use]
    pub fn lease_ttl(mut self, d: Duration) -> Self {
        self.lease_ttl = d;
        self
    }

    /// How old data of an unfinished save must be before a collection
    /// removes it (younger data may belong to a save in progress).
    /// Default = 1 h.
    #[must_use]
    pub fn orphan_grace(mut self, d: Duration) -> Self {
        self.orphan_grace = d;
        self
    }

    /// Saves between eviction passes when a TTL is set. Default = 1000.
    #[must_use]
    pub fn eviction_interval(mut self, saves: u64) -> Self {
        self.eviction_interval = saves.max(1);
        self
    }

    /// The memory budget of the cache of opened checkpoints
    /// ([`Store::lookup`](super::Store::lookup)); 0 turns it off. Default = 256 MiB.
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Drops a cached checkpoint this long after it was last used, whatever
    /// the budget. Default = none (only the budget evicts).
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Whether opening a store on local disk creates its directory when it
    /// is missing; with `false`, [`Store::open_url`](super::Store::open_url)
    /// fails with [`Error::NotFound`](crate::Error::NotFound) instead, for
    /// callers that only read and must not create what they read. (On
    /// object storage a store is a prefix, and there is nothing to create.)
    /// Default = `true`.
    #[must_use]
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create = on;
        self
    }
}
