//! Power loss: what a disk could hold afterwards, and the restart.
//!
//! The namespace is the durable one plus the directory operations the plan
//! keeps; a file's content is its durable content plus the changes the plan
//! keeps, the last kept write perhaps torn. Every choice comes from a
//! generator seeded by the plan's seed and the item (inode number, directory
//! path), so a file's fate does not depend on which other files exist.

use std::collections::BTreeSet;
use std::mem;

use super::plan::{CrashPlan, Tear};
use super::rng::{hash_bytes, Rng};
use super::state::{apply_change, Change, Entry, Inode, Namespace, State};

/// Separates the generators of files and of directories that happen to
/// share a number.
const FILE_DOMAIN: u64 = 0x4649_4C45;
const DIR_DOMAIN: u64 = 0x4449_5253;

impl State {
    /// Cuts the power and restarts: see [`SimFs::crash`](super::SimFs::crash).
    pub(super) fn power_loss(&mut self, plan: &CrashPlan) {
        let mut ns = mem::take(&mut self.durable);
        for (dir, ops) in mem::take(&mut self.dir_pending) {
            let mut rng = Rng::for_item(plan.seed, DIR_DOMAIN, hash_bytes(dir.as_os_str().as_encoded_bytes()));
            let keep = plan.dir_ops.choose(ops.len(), &mut rng);
            for (op, kept) in ops.iter().zip(keep) {
                if kept {
                    op.apply(&dir, &mut ns);
                }
            }
        }
        let ns = sweep_orphans(ns);

        let reachable: BTreeSet<u64> = ns
            .values()
            .filter_map(|e| match e {
                Entry::File(ino) => Some(*ino),
                Entry::Dir => None,
            })
            .collect();
        for (ino, inode) in mem::take(&mut self.inodes) {
            if reachable.contains(&ino) {
                let content = surviving_content(inode, plan, Rng::for_item(plan.seed, FILE_DOMAIN, ino));
                self.inodes.insert(ino, Inode::with_content(content));
            }
        }

        self.durable = ns.clone();
        self.current = ns;
        self.down = false;
        self.crash_at = None;
        self.epoch = self.epoch.wrapping_add(1);
        self.locks.clear();
    }
}

/// Drops every entry whose directory did not survive: a directory whose
/// creation was lost takes everything in it along.
fn sweep_orphans(ns: Namespace) -> Namespace {
    let mut out = Namespace::new();
    // Keys order a directory before everything in it, so a parent's fate is
    // known when its children come.
    for (key, entry) in ns {
        let parent_alive = match key.parent() {
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => out.get(p) == Some(&Entry::Dir),
            None => false,
        };
        if parent_alive {
            out.insert(key, entry);
        }
    }
    out
}

/// A file's content after power loss.
fn surviving_content(inode: Inode, plan: &CrashPlan, mut rng: Rng) -> Vec<u8> {
    let Inode { mut durable, pending, .. } = inode;
    let keep = plan.writes.choose(pending.len(), &mut rng);
    let torn = match plan.tear {
        Tear::None => None,
        Tear::Sectors(s) => Some((s, false)),
        Tear::Garbage(s) => Some((s, true)),
    };
    let last_write = pending
        .iter()
        .zip(&keep)
        .rposition(|(c, &kept)| kept && matches!(c, Change::Write { data, .. } if !data.is_empty()));
    for (i, (change, kept)) in pending.iter().zip(keep).enumerate() {
        if !kept {
            continue;
        }
        match (torn, change) {
            (Some((sector, garbage)), Change::Write { offset, data }) if Some(i) == last_write => {
                let torn = tear_write(*offset, data, sector, garbage, &mut rng);
                apply_change(&mut durable, &torn);
            }
            _ => apply_change(&mut durable, change),
        }
    }
    durable
}

/// What survives of a write cut after a random number of whole sectors:
/// the first part, alone or followed by garbage up to the write's length.
fn tear_write(offset: u64, data: &[u8], sector: usize, garbage: bool, rng: &mut Rng) -> Change {
    let s = (sector.max(1)) as u64;
    let len = data.len() as u64;
    let first = offset / s;
    let last = offset.saturating_add(len.saturating_sub(1)) / s;
    let sectors = last.saturating_sub(first).saturating_add(1);
    let k = rng.up_to(sectors);
    let kept =
        if k >= sectors { len } else { first.saturating_add(k).saturating_mul(s).saturating_sub(offset).min(len) };
    let kept = usize::try_from(kept).unwrap_or(data.len()).min(data.len());
    let (head, tail) = data.split_at(kept);
    if garbage {
        let mut noise = vec![0u8; tail.len()];
        rng.fill(&mut noise);
        let mut torn = head.to_vec();
        torn.extend_from_slice(&noise);
        Change::Write { offset, data: torn }
    } else {
        Change::Write { offset, data: head.to_vec() }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn write_parts(c: &Change) -> (u64, &[u8]) {
        match c {
            Change::Write { offset, data } => (*offset, data.as_slice()),
            Change::SetLen(_) => (u64::MAX, &[]),
        }
    }

    #[test]
    fn tears_only_at_sector_boundaries() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut cuts = BTreeSet::new();
        for seed in 0..400 {
            let mut rng = Rng::for_item(seed, 0, 0);
            let torn = tear_write(300, &data, 512, false, &mut rng);
            let (offset, head) = write_parts(&torn);
            assert_eq!(offset, 300);
            assert!(data.starts_with(head));
            let end = 300 + head.len() as u64;
            assert!(head.is_empty() || head.len() == data.len() || end.is_multiple_of(512), "cut at {end}");
            cuts.insert(head.len());
        }
        // 300..2300 touches sectors 0..=4: five cut points plus "all".
        assert_eq!(cuts.into_iter().collect::<Vec<_>>(), vec![0, 212, 724, 1236, 1748, 2000]);
    }

    #[test]
    fn garbage_keeps_the_length_and_the_head() {
        let data = vec![7u8; 1500];
        let mut saw_noise = false;
        for seed in 0..50 {
            let mut rng = Rng::for_item(seed, 0, 0);
            let torn = tear_write(0, &data, 512, true, &mut rng);
            let (offset, out) = write_parts(&torn);
            assert_eq!(offset, 0);
            assert_eq!(out.len(), 1500);
            // Some sector boundary splits the original bytes from the noise.
            let split_ok = [0usize, 512, 1024, 1500]
                .iter()
                .any(|&b| out[..b] == data[..b] && out[b..].iter().filter(|&&x| x == 7).count() <= (1500 - b) / 16);
            assert!(split_ok, "seed {seed}");
            saw_noise |= out != data.as_slice();
        }
        assert!(saw_noise);
    }

    #[test]
    fn orphans_go_with_their_directory() {
        let mut ns = Namespace::new();
        ns.insert(PathBuf::from("a/b/c"), Entry::File(1));
        ns.insert(PathBuf::from("a/b"), Entry::Dir);
        ns.insert(PathBuf::from("x/y"), Entry::File(2));
        ns.insert(PathBuf::from("f"), Entry::File(3));
        ns.insert(PathBuf::from("f/g"), Entry::File(4));
        let out = sweep_orphans(ns);
        assert_eq!(out.keys().map(PathBuf::as_path).collect::<Vec<_>>(), vec![Path::new("f")]);
    }
}
