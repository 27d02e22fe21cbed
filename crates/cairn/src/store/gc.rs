//! Collection: retention over every key, TTL and byte-budget eviction of
//! the least recently used entries, and clean-up of what crashed or dead
//! processes left (unindexed entries, half-removed entries, orphan data,
//! stale leases, temp files). Eviction alone also runs after saves, when
//! the budget is exceeded or a TTL pass is due, reading only the indexes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::entry::EntryInfo;
use super::holdings::stored_total;
use super::layout::{self, now_ns, split_entry_key};
use super::options::Retention;
use super::records::IndexDoc;
use super::retention::{evictions, victims, Candidate};
use super::store::Store;
use crate::backend::BackendExt;
use crate::error::Result;

/// What a collection applies beyond clean-up; unset fields take the
/// store's options.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    pub(crate) retention: Option<Retention>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) now: Option<u64>,
}

impl GcOptions {
    /// Retention for every key. Default = the store's.
    #[must_use]
    pub fn retention(mut self, r: Retention) -> Self {
        self.retention = Some(r);
        self
    }

    /// A byte budget for the store. Default = the store's.
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Evicts entries unused for `ttl`. Default = the store's.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Collects as if the time were `now_ns` (nanoseconds since the Unix
    /// epoch), to test ages and TTLs (feature `testing`). Default = now.
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn at(mut self, now_ns: u64) -> Self {
        self.now = Some(now_ns);
        self
    }
}

/// One removed entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Removed {
    /// Its key.
    pub key: String,
    /// Its id.
    pub id: String,
    /// Its bytes.
    pub bytes: u64,
    /// `retention`, `ttl` or `budget`.
    pub reason: &'static str,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct GcReport {
    /// Keys with entries left.
    pub keys: usize,
    /// Entries left.
    pub entries: u64,
    /// The bytes they take in the store: their objects, and each shared
    /// frame they name once.
    pub bytes: u64,
    /// Entries removed by retention or eviction.
    pub removed: Vec<Removed>,
    /// Committed entries a crash had left out of their index, now indexed.
    pub adopted: usize,
    /// Index entries whose removal a crash had interrupted, now finished.
    pub finished_removals: usize,
    /// Data of saves that never committed, removed.
    pub orphans: usize,
    /// Leases that had expired or whose holder died, removed.
    pub stale_leases: usize,
    /// Temp files of dead processes, removed (local disk).
    pub temp_files: usize,
    /// Indexed entries whose info is missing though no removal holds them:
    /// damage, left in place for `repair` (see [`Store::verify`]).
    pub damaged: usize,
    /// Shared frames no manifest named, moved to the trash.
    pub frames_trashed: usize,
    /// Trashed frames deleted for good.
    pub frames_deleted: usize,
    /// Trashed frames a manifest named after all, put back.
    pub frames_restored: usize,
}

/// What the listing of `entries/` found for one entry.
#[derive(Debug, Default)]
struct Seen {
    data: Option<std::time::SystemTime>,
    info: bool,
}

impl Store {
    /// Runs a full collection: clean-up, then retention for every key,
    /// then TTL and budget eviction; records the usage it finds.
    ///
    /// # Errors
    /// Backend errors; what was done before one stays done.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let now = opts.now.unwrap_or_else(now_ns);
        let mut report = GcReport { temp_files: self.backend.sweep_temp_files()?, ..GcReport::default() };
        // Before the lease sweep: a stale lease on uncommitted data marks
        // a save whose process died.
        self.reconcile(now, &mut report)?;
        let sweep = self.sweep_leases(now)?;
        report.stale_leases = sweep.stale;
        report.orphans += sweep.orphans;
        let leased = sweep.live;
        let retention = opts.retention.as_ref().unwrap_or(&self.opts.retention);
        let max_bytes = opts.max_bytes.or(self.opts.max_bytes);
        let ttl = opts.ttl.or(self.opts.ttl);
        self.evict(now, retention, max_bytes, ttl, &leased, &mut report)?;
        self.collect_frames(now, &mut report)?;
        Ok(report)
    }

    /// Runs an eviction pass if the budget looks exceeded or a TTL pass is
    /// due; called after saves.
    pub(crate) fn evict_if_due(&self) -> Result<()> {
        let now = now_ns();
        let due = {
            let u = self.usage_state();
            let estimate = u.base.map(|b| i128::from(b) + i128::from(u.net));
            let over = self.opts.max_bytes.is_some_and(|max| estimate.is_none_or(|e| e > i128::from(max)));
            let ttl_due = self.opts.ttl.is_some_and(|ttl| {
                let tenth = u64::try_from(ttl.as_nanos() / 10).unwrap_or(u64::MAX);
                now.saturating_sub(u.last_pass) > tenth || u.saves_since_pass >= self.opts.eviction_interval
            });
            over || ttl_due
        };
        if !due {
            return Ok(());
        }
        let leased = self.sweep_leases(now)?.live;
        let mut report = GcReport::default();
        // Down to a low watermark, so that the saves after a pass do not
        // each find the store over its budget and start another.
        let target = self.opts.max_bytes.map(low_watermark);
        self.evict(now, &Retention::keep_all(), target, self.opts.ttl, &leased, &mut report)
    }

    /// Retention per key, then TTL and budget over the store, from the
    /// indexes alone; records the usage left.
    fn evict(
        &self,
        now: u64,
        retention: &Retention,
        max_bytes: Option<u64>,
        ttl: Option<Duration>,
        leased: &HashSet<(String, String)>,
        report: &mut GcReport,
    ) -> Result<()> {
        let mut indexes: Vec<(String, IndexDoc)> = Vec::new();
        for hp in self.index_paths()? {
            let Some((mut ix, _)) = self.read_index(&hp)? else { continue };
            let ids = victims(&ix.entries, retention, self.opts.direction, now);
            let ids: Vec<String> = ids.into_iter().filter(|id| !leased.contains(&(hp.clone(), id.clone()))).collect();
            let removed = if ids.is_empty() { Vec::new() } else { self.remove_entries(&hp, &ids, "retention")? };
            let gone: HashSet<&str> = removed.iter().map(|e| e.id.as_str()).collect();
            ix.entries.retain(|e| !gone.contains(e.id.as_str()));
            report.removed.extend(removed.iter().map(|e| Removed {
                key: ix.key.clone(),
                id: e.id.clone(),
                bytes: e.bytes,
                reason: "retention",
            }));
            indexes.push((hp, ix));
        }
        // Stored bytes: each entry's object, and each shared frame once.
        let listed: Vec<(&str, &EntryInfo)> =
            indexes.iter().flat_map(|(hp, ix)| ix.entries.iter().map(move |e| (hp.as_str(), e))).collect();
        let holdings = self.holdings(&listed);
        let (total, refs) = stored_total(&holdings);
        let all: Vec<Candidate> = listed
            .iter()
            .zip(&holdings)
            .filter(|((hp, e), _)| !e.pinned && !leased.contains(&((*hp).to_string(), e.id.clone())))
            .map(|((hp, e), h)| Candidate {
                hp: (*hp).to_string(),
                id: e.id.clone(),
                bytes: h.own,
                frames: h.frames.iter().map(|(f, _)| *f).collect(),
                last_used: e.last_used.max(e.created_at),
            })
            .collect();
        let ttl_ns = ttl.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        let chosen = evictions(all, total, refs, max_bytes, ttl_ns, now);
        let mut by_key: HashMap<&str, Vec<String>> = HashMap::new();
        for c in &chosen {
            by_key.entry(c.hp.as_str()).or_default().push(c.id.clone());
        }
        let names: HashMap<&str, &str> = indexes.iter().map(|(hp, ix)| (hp.as_str(), ix.key.as_str())).collect();
        let expired: HashSet<&str> = chosen
            .iter()
            .filter(|c| ttl_ns.is_some_and(|t| now.saturating_sub(c.last_used) > t))
            .map(|c| c.id.as_str())
            .collect();
        let mut gone: HashSet<(String, String)> = HashSet::new();
        for (hp, ids) in by_key {
            for e in self.remove_entries(hp, &ids, "eviction")? {
                let reason = if expired.contains(e.id.as_str()) { "ttl" } else { "budget" };
                let key = names.get(hp).copied().unwrap_or_default().to_string();
                gone.insert((hp.to_string(), e.id.clone()));
                report.removed.push(Removed { key, id: e.id, bytes: e.bytes, reason });
            }
        }
        let left =
            listed.iter().zip(&holdings).filter(|((hp, e), _)| !gone.contains(&((*hp).to_string(), e.id.clone())));
        report.entries = (listed.len() - gone.len()) as u64;
        report.bytes = stored_total(left.map(|(_, h)| h)).0;
        report.keys = indexes.iter().filter(|(_, ix)| !ix.entries.is_empty()).count();
        self.write_usage(report.entries, report.bytes)?;
        let mut u = self.usage_state();
        u.saves_since_pass = 0;
        u.last_pass = now;
        Ok(())
    }

    /// Brings indexes and entries into agreement after crashes: indexes
    /// committed entries that are missing from their index, finishes
    /// removals whose info is gone, and removes uncommitted data that no
    /// live save holds: its saver's lease is stale (the process died or
    /// the lease expired), or it has none and is older than the orphan
    /// grace period.
    fn reconcile(&self, now: u64, report: &mut GcReport) -> Result<()> {
        let root = self.object_key(layout::ENTRIES);
        let mut seen: HashMap<(String, String), Seen> = HashMap::new();
        for m in self.backend.list(&root)? {
            let Some((hp, id, part)) = split_entry_key(&m.key, &root) else { continue };
            let s = seen.entry((hp, id.to_string())).or_default();
            match part {
                "data" => s.data = Some(m.modified.unwrap_or(std::time::UNIX_EPOCH)),
                "info" => s.info = true,
                _ => {}
            }
        }
        let mut indexed: HashSet<(String, String)> = HashSet::new();
        for hp in self.index_paths()? {
            let Some((ix, _)) = self.read_stored_index(&hp)? else { continue };
            let half_removed: Vec<String> = ix
                .entries
                .iter()
                .filter(|e| !seen.get(&(hp.clone(), e.id.clone())).is_some_and(|s| s.info))
                .map(|e| e.id.clone())
                .collect();
            // Saved since the listing, or really half-removed: ask again. A
            // removal holds a lease on what it removes, so an indexed entry
            // without its info and without any lease lost its info to
            // damage: its data stays (`repair` recovers the info from the
            // index).
            let mut really = Vec::new();
            for id in half_removed {
                if self.backend.exists(&self.object_key(&layout::info_key(&hp, &id)))? {
                    continue;
                }
                if self.backend.list(&self.object_key(&layout::lease_prefix(&hp, &id)))?.is_empty() {
                    log::warn!(
                        "{}: entry {id} of key {:?} is indexed but its info is missing (damage, not a removal): \
                         kept; `cairn store repair` restores the info",
                        self.url(),
                        ix.key
                    );
                    report.damaged += 1;
                    continue;
                }
                really.push(id);
            }
            let half_removed = really;
            if !half_removed.is_empty() {
                report.finished_removals += self.remove_entries(&hp, &half_removed, "unfinished removal")?.len();
            }
            indexed.extend(ix.entries.iter().map(|e| (hp.clone(), e.id.clone())));
        }
        let grace = u64::try_from(self.opts.orphan_grace.as_nanos()).unwrap_or(u64::MAX);
        // Committed entries missing from their stored index, by key.
        let mut to_adopt: HashMap<String, HashSet<String>> = HashMap::new();
        for ((hp, id), s) in &seen {
            let key = (hp.clone(), id.clone());
            if s.info && !indexed.contains(&key) {
                to_adopt.entry(hp.clone()).or_default().insert(id.clone());
            } else if !s.info && !indexed.contains(&key) {
                let age = s.data.map_or(u64::MAX, |t| {
                    let t =
                        t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0));
                    now.saturating_sub(t)
                });
                // Asked after the listing: a save leases its id before it
                // writes data, so a save in progress shows here.
                let (live, stale) = self.lease_states(hp, id, now)?;
                // A save that finished since the listing released its
                // lease after committing: its info is there now.
                let committed = || self.backend.exists(&self.object_key(&layout::info_key(hp, id)));
                // A save without a lease names its process in its id.
                let dead = stale || layout::saver_died(id);
                if live == 0 && (dead || age > grace) && !committed()? {
                    self.backend.delete(&self.object_key(&layout::data_key(hp, id)))?;
                    report.orphans += 1;
                }
            }
        }
        for (hp, ids) in to_adopt {
            self.rebuild_index(&hp, None, "adopting committed entries")?;
            // Counted by id: an index update of this collection (finishing
            // a removal) may have folded some in already.
            let now_indexed = self.read_stored_index(&hp)?.map(|(ix, _)| ix.entries).unwrap_or_default();
            report.adopted += now_indexed.iter().filter(|e| ids.contains(&e.id)).count();
        }
        Ok(())
    }
}

/// What an automatic pass evicts down to: 90 % of the budget.
fn low_watermark(max_bytes: u64) -> u64 {
    max_bytes / 10 * 9
}
