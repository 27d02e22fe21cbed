//! Which entries of a key a retention policy removes, and which entries
//! of the whole store an eviction pass removes.

use std::collections::{HashMap, HashSet};

use super::entry::EntryInfo;
use super::options::Retention;
use super::select::{candidates, Direction, Select};

/// The ids of `entries` (one key's) that `policy` removes at time `now`
/// (ns). Pinned entries are never among them.
pub(crate) fn victims(entries: &[EntryInfo], policy: &Retention, dir: Direction, now: u64) -> Vec<String> {
    if policy.is_keep_all() {
        return Vec::new();
    }
    let too_old = |e: &EntryInfo| {
        policy
            .max_age
            .is_some_and(|age| now.saturating_sub(e.created_at) > u64::try_from(age.as_nanos()).unwrap_or(u64::MAX))
    };
    let young: Vec<EntryInfo> = entries.iter().filter(|e| !too_old(e)).cloned().collect();
    let counted = policy.keep_last.is_some() || policy.keep_best.is_some() || policy.keep_every.is_some();
    let mut keep: HashSet<&str> = HashSet::new();
    if counted {
        if let Some(n) = policy.keep_last {
            keep.extend(candidates(&young, &Select::Latest, dir).into_iter().take(n).map(|e| e.id.as_str()));
        }
        if let Some(k) = policy.keep_best {
            keep.extend(candidates(&young, &Select::Best, dir).into_iter().take(k).map(|e| e.id.as_str()));
        }
        if let Some(steps) = policy.keep_every.filter(|s| *s > 0) {
            keep.extend(young.iter().filter(|e| e.iteration.is_some_and(|i| i % steps == 0)).map(|e| e.id.as_str()));
        }
    } else {
        keep.extend(young.iter().map(|e| e.id.as_str()));
    }
    entries.iter().filter(|e| !e.pinned && !keep.contains(e.id.as_str())).map(|e| e.id.clone()).collect()
}

/// An entry of the whole store, for eviction.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub hp: String,
    pub id: String,
    /// Bytes of its own object.
    pub bytes: u64,
    /// The shared frames it names.
    pub frames: Vec<[u8; 32]>,
    pub last_used: u64,
}

/// How many entries name each shared frame, and its bytes.
pub(crate) type FrameRefs = HashMap<[u8; 32], (usize, u64)>;

/// Which of `all` (every unpinned, unleased entry of the store) to evict so
/// that the store's `total` stored bytes fit `max_bytes` and nothing unused
/// for `ttl_ns` stays: the expired ones, then the least recently used. An
/// eviction frees its entry's object, and each shared frame no entry left
/// names (`refs` counts every entry of the store, evictable or not).
pub(crate) fn evictions(
    mut all: Vec<Candidate>,
    total: u64,
    mut refs: FrameRefs,
    max_bytes: Option<u64>,
    ttl_ns: Option<u64>,
    now: u64,
) -> Vec<Candidate> {
    all.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.id.cmp(&b.id)));
    let mut left = total;
    let mut out = Vec::new();
    for c in all {
        let expired = ttl_ns.is_some_and(|ttl| now.saturating_sub(c.last_used) > ttl);
        let over = max_bytes.is_some_and(|max| left > max);
        if !(expired || over) {
            // Sorted by last use: once neither holds, later ones are newer
            // still, and the budget is met.
            break;
        }
        left = left.saturating_sub(c.bytes);
        for h in &c.frames {
            if let Some(r) = refs.get_mut(h) {
                r.0 = r.0.saturating_sub(1);
                if r.0 == 0 {
                    left = left.saturating_sub(r.1);
                }
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::store::EntryKind;

    const S: u64 = 1_000_000_000;

    fn e(id: &str, objective: Option<f64>, iteration: u64, created_s: u64) -> EntryInfo {
        EntryInfo {
            id: id.into(),
            objective,
            iteration: Some(iteration),
            kind: EntryKind::Checkpoint,
            created_at: created_s * S,
            bytes: 10,
            added_bytes: 10,
            pinned: false,
            metadata: BTreeMap::new(),
            digest: String::new(),
            last_used: created_s * S,
        }
    }

    fn run(entries: &[EntryInfo], p: Retention, now_s: u64) -> Vec<String> {
        let mut v = victims(entries, &p, Direction::Minimize, now_s * S);
        v.sort();
        v
    }

    fn five() -> Vec<EntryInfo> {
        vec![
            e("a", Some(0.9), 100, 1),
            e("b", Some(0.1), 200, 2),
            e("c", Some(0.5), 300, 3),
            e("d", Some(0.7), 400, 4),
            e("e", Some(0.8), 500, 5),
        ]
    }

    #[test]
    fn keep_all_removes_nothing() {
        assert!(run(&five(), Retention::keep_all(), 100).is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        assert_eq!(run(&five(), Retention::default().keep_last(2), 10), ["a", "b", "c"]);
    }

    #[test]
    fn keep_best_keeps_the_best() {
        assert_eq!(run(&five(), Retention::default().keep_best(2), 10), ["a", "d", "e"]);
    }

    #[test]
    fn keep_every_keeps_multiples() {
        assert_eq!(run(&five(), Retention::default().keep_every(200), 10), ["a", "c", "e"]);
    }

    #[test]
    fn rules_compose_as_a_union() {
        let p = Retention::default().keep_last(1).keep_best(1).keep_every(400);
        assert_eq!(run(&five(), p, 10), ["a", "c"]);
    }

    #[test]
    fn max_age_alone_removes_old_entries_and_bounds_the_others() {
        assert_eq!(run(&five(), Retention::default().max_age(Duration::from_secs(3)), 6), ["a", "b"]);
        // b is the best but too old.
        let p = Retention::default().keep_best(1).max_age(Duration::from_secs(3));
        assert_eq!(run(&five(), p, 6), ["a", "b", "d", "e"]);
    }

    #[test]
    fn pinned_entries_always_stay() {
        let mut v = five();
        for x in &mut v {
            x.pinned = x.id == "a";
        }
        assert_eq!(
            run(&v, Retention::default().keep_last(1).max_age(Duration::from_secs(1)), 100),
            ["b", "c", "d", "e"]
        );
    }

    fn c(id: &str, bytes: u64, used_s: u64) -> Candidate {
        Candidate { hp: "h".into(), id: id.into(), bytes, frames: Vec::new(), last_used: used_s * S }
    }

    #[test]
    fn eviction_takes_least_recently_used_until_the_budget_holds() {
        let all = vec![c("x", 40, 3), c("y", 40, 1), c("z", 40, 2)];
        let ids = |v: Vec<Candidate>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        let none = FrameRefs::new;
        assert_eq!(ids(evictions(all.clone(), 120, none(), Some(80), None, 10)), ["y"]);
        assert_eq!(ids(evictions(all.clone(), 120, none(), Some(40), None, 10)), ["y", "z"]);
        assert!(evictions(all.clone(), 120, none(), Some(200), None, 10).is_empty());
        // TTL: unused for more than 8 s at t = 10.
        assert_eq!(ids(evictions(all.clone(), 120, none(), None, Some(8 * S), 10 * S)), ["y"]);
        assert_eq!(ids(evictions(all, 120, none(), Some(80), Some(7 * S), 10 * S)), ["y", "z"]);
    }

    #[test]
    fn a_shared_frame_is_freed_by_the_eviction_of_the_last_entry_naming_it() {
        // Objects of 10 bytes; frame A (100 bytes) named by x and y, B (50) by z.
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let with = |id: &str, used: u64, f: &[[u8; 32]]| Candidate { frames: f.to_vec(), ..c(id, 10, used) };
        let all = vec![with("x", 1, &[a]), with("y", 2, &[a]), with("z", 3, &[b])];
        let refs: FrameRefs = [(a, (2, 100)), (b, (1, 50))].into_iter().collect();
        let total = 30 + 150;
        let ids = |v: Vec<Candidate>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        // Evicting x frees its 10 bytes only: y still names A.
        assert_eq!(ids(evictions(all.clone(), total, refs.clone(), Some(171), None, 10)), ["x"]);
        assert_eq!(ids(evictions(all.clone(), total, refs.clone(), Some(169), None, 10)), ["x", "y"]);
        assert_eq!(ids(evictions(all, total, refs, Some(60), None, 10)), ["x", "y"]);
    }
}
