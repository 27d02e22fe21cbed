//! The in-process cache of opened checkpoints, on `moka`: a memory budget
//! weighed in checkpoint bytes, TinyLFU admission with LRU eviction, an
//! optional idle TTL, and hit and miss counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::format::Checkpoint;

/// What the cache has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the backend.
    pub misses: u64,
    /// Checkpoints cached now.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl CacheStats {
    /// Hits over all lookups, 0 before any.
    pub fn hit_rate(&self) -> f64 {
        let all = self.hits + self.misses;
        if all == 0 {
            0.0
        } else {
            self.hits as f64 / all as f64
        }
    }
}

#[derive(Debug)]
pub(crate) struct EntryCache {
    inner: Option<moka::sync::Cache<(String, String), Arc<Checkpoint>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl EntryCache {
    pub fn new(budget: u64, ttl: Option<std::time::Duration>) -> Self {
        let inner = (budget > 0).then(|| {
            let b = moka::sync::Cache::builder()
                .max_capacity(budget)
                .weigher(|_: &(String, String), c: &Arc<Checkpoint>| u32::try_from(c.file_len()).unwrap_or(u32::MAX));
            match ttl {
                Some(t) => b.time_to_idle(t).build(),
                None => b.build(),
            }
        });
        EntryCache { inner, hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    pub fn get(&self, hp: &str, id: &str) -> Option<Arc<Checkpoint>> {
        let inner = self.inner.as_ref()?;
        let hit = inner.get(&(hp.to_string(), id.to_string()));
        let counter = if hit.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    pub fn insert(&self, hp: &str, id: &str, c: Arc<Checkpoint>) {
        if let Some(inner) = &self.inner {
            inner.insert((hp.to_string(), id.to_string()), c);
        }
    }

    pub fn forget(&self, hp: &str, id: &str) {
        if let Some(inner) = &self.inner {
            inner.invalidate(&(hp.to_string(), id.to_string()));
        }
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = self.inner.as_ref().map_or((0, 0), |c| {
            c.run_pending_tasks();
            (c.entry_count(), c.weighted_size())
        });
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            bytes,
        }
    }
}

impl super::Store {
    /// What the cache of opened checkpoints has done so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
}
