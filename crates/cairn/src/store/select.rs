//! The rules that pick one entry of a key: the best, the latest, or a
//! given id.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::entry::{EntryInfo, EntryKind};

/// Which objective values are better: a store setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Lower is better (a loss, a time).
    #[default]
    Minimize,
    /// Higher is better (an accuracy, a throughput).
    Maximize,
}

/// Which entry of a key to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The best objective (see [`select`]).
    Best,
    /// The most recently saved.
    Latest,
    /// The entry with this id.
    Id(String),
}

/// Newer first: by time saved, then by id (which sorts by creation).
fn newer(a: &EntryInfo, b: &EntryInfo) -> Ordering {
    a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id))
}

/// The objective as a comparable number, better is greater; NaN (which
/// saving refuses) counts as none.
fn score(e: &EntryInfo, dir: Direction) -> Option<f64> {
    let o = e.objective.filter(|o| !o.is_nan())?;
    Some(match dir {
        Direction::Minimize => -o,
        Direction::Maximize => o,
    })
}

/// How `a` ranks against `b` for [`Select::Best`], greater is better:
/// entries with an objective above those without; then the better
/// objective; among equal objectives a final result above a checkpoint;
/// then the newer.
pub fn rank(a: &EntryInfo, b: &EntryInfo, dir: Direction) -> Ordering {
    let by_score = match (score(a, dir), score(b, dir)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    };
    let final_first = |e: &EntryInfo| u8::from(e.kind == EntryKind::Final);
    by_score.then_with(|| final_first(a).cmp(&final_first(b))).then_with(|| newer(a, b))
}

/// The entry `how` picks among `entries` (one key's), or `None` if there
/// is none. When no entry has an objective, `Best` is `Latest`.
pub fn select<'a>(entries: &'a [EntryInfo], how: &Select, dir: Direction) -> Option<&'a EntryInfo> {
    match how {
        Select::Id(id) => entries.iter().find(|e| &e.id == id),
        Select::Latest => entries.iter().max_by(|a, b| newer(a, b)),
        Select::Best => {
            if entries.iter().all(|e| score(e, dir).is_none()) {
                return select(entries, &Select::Latest, dir);
            }
            entries.iter().max_by(|a, b| rank(a, b, dir))
        }
    }
}

/// Every entry `how` can pick, the one [`select`] picks first and then the
/// ones to fall back to in order: for `Best` the next best, for `Latest`
/// the next newest, for an id none.
pub fn candidates<'a>(entries: &'a [EntryInfo], how: &Select, dir: Direction) -> Vec<&'a EntryInfo> {
    let mut out: Vec<&EntryInfo> = match how {
        Select::Id(_) => return select(entries, how, dir).into_iter().collect(),
        _ => entries.iter().collect(),
    };
    let by_rank = *how == Select::Best && entries.iter().any(|e| score(e, dir).is_some());
    if by_rank {
        out.sort_by(|a, b| rank(b, a, dir));
    } else {
        out.sort_by(|a, b| newer(b, a));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn e(id: &str, objective: Option<f64>, kind: EntryKind, created_at: u64) -> EntryInfo {
        EntryInfo {
            id: id.into(),
            objective,
            iteration: None,
            kind,
            created_at,
            bytes: 0,
            added_bytes: 0,
            pinned: false,
            metadata: BTreeMap::new(),
            digest: String::new(),
            last_used: created_at,
        }
    }

    use EntryKind::{Checkpoint as C, Final as F};

    fn best(v: &[EntryInfo], dir: Direction) -> &str {
        &select(v, &Select::Best, dir).unwrap().id
    }

    #[test]
    fn best_is_the_lowest_objective_or_the_highest_when_maximising() {
        let v = [e("a", Some(0.5), C, 1), e("b", Some(0.2), C, 2), e("c", Some(0.9), C, 3)];
        assert_eq!(best(&v, Direction::Minimize), "b");
        assert_eq!(best(&v, Direction::Maximize), "c");
    }

    #[test]
    fn on_equal_objectives_final_beats_checkpoint_then_newer_wins() {
        let v = [e("old-final", Some(0.2), F, 1), e("new-ckpt", Some(0.2), C, 5)];
        assert_eq!(best(&v, Direction::Minimize), "old-final");
        let v = [e("old", Some(0.2), F, 1), e("new", Some(0.2), F, 5)];
        assert_eq!(best(&v, Direction::Minimize), "new");
        let v = [e("old", Some(0.2), C, 1), e("new", Some(0.2), C, 5)];
        assert_eq!(best(&v, Direction::Minimize), "new");
        // Same time: the id (creation order) decides.
        let v = [e("0002", Some(0.2), C, 7), e("0001", Some(0.2), C, 7)];
        assert_eq!(best(&v, Direction::Minimize), "0002");
    }

    #[test]
    fn a_better_objective_beats_a_final_result() {
        let v = [e("final", Some(0.3), F, 9), e("ckpt", Some(0.1), C, 1)];
        assert_eq!(best(&v, Direction::Minimize), "ckpt");
    }

    #[test]
    fn entries_with_an_objective_rank_above_those_without() {
        let v = [e("none-final-new", None, F, 9), e("worst", Some(100.0), C, 1)];
        assert_eq!(best(&v, Direction::Minimize), "worst");
        assert_eq!(best(&v, Direction::Maximize), "worst");
        let v = [e("nan", Some(f64::NAN), C, 9), e("one", Some(1.0), C, 1)];
        assert_eq!(best(&v, Direction::Minimize), "one");
    }

    #[test]
    fn without_any_objective_best_is_latest() {
        let v = [e("a", None, F, 1), e("b", None, C, 3), e("c", None, C, 2)];
        assert_eq!(best(&v, Direction::Minimize), "b");
        assert_eq!(select(&v, &Select::Latest, Direction::Minimize).unwrap().id, "b");
    }

    #[test]
    fn latest_and_id_and_empty() {
        let v = [e("a", Some(0.1), F, 1), e("b", Some(0.9), C, 2)];
        assert_eq!(select(&v, &Select::Latest, Direction::Minimize).unwrap().id, "b");
        assert_eq!(select(&v, &Select::Id("a".into()), Direction::Minimize).unwrap().id, "a");
        assert!(select(&v, &Select::Id("z".into()), Direction::Minimize).is_none());
        assert!(select(&[], &Select::Best, Direction::Minimize).is_none());
        assert!(select(&[], &Select::Latest, Direction::Minimize).is_none());
    }

    #[test]
    fn ranking_is_a_total_order_on_random_entries() {
        // Every pair compares consistently both ways, so max_by is well defined.
        let mut v = Vec::new();
        for i in 0..40u64 {
            let objective = match i % 5 {
                0 => None,
                1 => Some(f64::NAN),
                _ => Some((i % 7) as f64 * 0.5),
            };
            v.push(e(&format!("{i:04}"), objective, if i % 3 == 0 { F } else { C }, i % 11));
        }
        for a in &v {
            for b in &v {
                assert_eq!(rank(a, b, Direction::Minimize), rank(b, a, Direction::Minimize).reverse());
            }
        }
    }

    #[test]
    fn candidates_start_with_the_selected_entry_and_fall_back_in_rank_order() {
        let v = [e("a", Some(0.5), C, 1), e("b", Some(0.2), C, 2), e("c", None, F, 3), e("d", Some(0.2), F, 0)];
        let ids =
            |how: &Select| candidates(&v, how, Direction::Minimize).iter().map(|x| x.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&Select::Best), ["d", "b", "a", "c"]);
        assert_eq!(ids(&Select::Latest), ["c", "b", "a", "d"]);
        assert_eq!(ids(&Select::Id("a".into())), ["a"]);
        assert!(ids(&Select::Id("zz".into())).is_empty());
        for how in [Select::Best, Select::Latest] {
            assert_eq!(
                candidates(&v, &how, Direction::Minimize).first().map(|x| &x.id),
                select(&v, &how, Direction::Minimize).map(|x| &x.id)
            );
        }
    }
}
