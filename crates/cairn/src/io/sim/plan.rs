//! What a power loss keeps: the choices a crash test makes.

use super::rng::Rng;

/// Which pending (written or changed but not yet synced) items survive a
/// power loss. Applies per file to data changes and per directory to
/// directory operations; survivors are always applied in their original
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Nothing pending survives: the disk holds exactly what was synced.
    #[default]
    None,
    /// Everything pending survives, as if it had been synced.
    All,
    /// Per file / per directory, the first `k` pending items survive, with
    /// `k` drawn from the seed (0 and "all" included). Models a disk that
    /// writes back in order.
    Prefix,
    /// Each pending item survives on its own with probability 1/2. Models a
    /// disk that reorders writes freely.
    Random,
}

/// How the last surviving pending write of each file may be torn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tear {
    /// Surviving writes survive whole.
    #[default]
    None,
    /// The last surviving write of each file keeps only its first `k` sectors
    /// (`k` drawn from the seed, 0 and "all" included), sectors being aligned
    /// to multiples of the size in the file. What does not survive is simply
    /// not applied: if the write made the file longer, the file ends where
    /// the surviving part ends (or at its earlier length, if that is longer).
    /// Usual sizes are 512 and 4096; any positive size works, 0 counts as 1.
    Sectors(usize),
    /// Like [`Tear::Sectors`], but the sectors that do not survive hold
    /// pseudo-random bytes, and the file keeps the write's full length:
    /// what a disk that lost power mid-sector may return.
    Garbage(usize),
}

/// How [`SimFs::crash`](super::SimFs::crash) builds the post-power-loss
/// disk from the synced state and what was still pending.
///
/// The same plan (seed included) over the same history gives the same disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashPlan {
    /// Which pending data changes (`write_at`, `set_len`) of each file
    /// survive. Default = [`Keep::None`].
    pub writes: Keep,
    /// How the last surviving write of each file is torn.
    /// Default = [`Tear::None`].
    pub tear: Tear,
    /// Which pending directory operations (create, rename, remove, mkdir)
    /// of each directory survive. Default = [`Keep::None`].
    pub dir_ops: Keep,
    /// Seed for every random choice above. Default = 0.
    pub seed: u64,
}

impl CrashPlan {
    /// Only what was synced survives: the harshest legal outcome and the
    /// usual first thing to test.
    pub fn drop_all() -> Self {
        CrashPlan { writes: Keep::None, tear: Tear::None, dir_ops: Keep::None, seed: 0 }
    }

    /// Everything pending survives whole: as if every file and directory had
    /// been synced just before the power went.
    pub fn keep_all() -> Self {
        CrashPlan { writes: Keep::All, tear: Tear::None, dir_ops: Keep::All, seed: 0 }
    }

    /// A plan whose every choice (what to keep of writes and of directory
    /// operations, and how to tear) is drawn from `seed`.
    pub fn seeded(seed: u64) -> Self {
        const KEEPS: [Keep; 4] = [Keep::None, Keep::All, Keep::Prefix, Keep::Random];
        const TEARS: [Tear; 5] = [Tear::None, Tear::None, Tear::Sectors(512), Tear::Sectors(4096), Tear::Garbage(512)];
        let mut rng = Rng::for_item(seed, 0x504C_414E, 0);
        let mut pick_keep = || KEEPS.get(rng.up_to(3) as usize).copied().unwrap_or_default();
        let writes = pick_keep();
        let dir_ops = pick_keep();
        let tear = TEARS.get(rng.up_to(4) as usize).copied().unwrap_or_default();
        CrashPlan { writes, tear, dir_ops, seed }
    }

    /// A fixed, small list of plans for a crash test to run after each
    /// crash point, all using `seed` for their random choices:
    ///
    /// | # | writes | tear | dir ops | what it checks |
    /// | - | ------ | ---- | ------- | -------------- |
    /// | 0 | None | None | None | only synced state survives |
    /// | 1 | All | None | All | everything survives |
    /// | 2 | Prefix | None | Prefix | in-order write-back stopped midway |
    /// | 3 | Random | None | Random | reordered write-back |
    /// | 4 | All | Sectors(512) | All | last write torn at 512-byte sectors |
    /// | 5 | All | Sectors(4096) | All | last write torn at 4 KiB sectors |
    /// | 6 | All | Garbage(512) | All | last write's lost sectors hold garbage |
    /// | 7 | All | None | Random | data kept, directory operations reordered |
    /// | 8 | None | None | All | names kept, unsynced data lost (a rename published before its file was synced) |
    ///
    /// The list may grow; tests should not depend on its length.
    pub fn variants(seed: u64) -> Vec<CrashPlan> {
        let plan = |writes, tear, dir_ops| CrashPlan { writes, tear, dir_ops, seed };
        vec![
            plan(Keep::None, Tear::None, Keep::None),
            plan(Keep::All, Tear::None, Keep::All),
            plan(Keep::Prefix, Tear::None, Keep::Prefix),
            plan(Keep::Random, Tear::None, Keep::Random),
            plan(Keep::All, Tear::Sectors(512), Keep::All),
            plan(Keep::All, Tear::Sectors(4096), Keep::All),
            plan(Keep::All, Tear::Garbage(512), Keep::All),
            plan(Keep::All, Tear::None, Keep::Random),
            plan(Keep::None, Tear::None, Keep::All),
        ]
    }

    /// This plan with another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// This plan with another choice for pending data changes.
    #[must_use]
    pub fn with_writes(mut self, writes: Keep) -> Self {
        self.writes = writes;
        self
    }

    /// This plan with another way of tearing the last write.
    #[must_use]
    pub fn with_tear(mut self, tear: Tear) -> Self {
        self.tear = tear;
        self
    }

    /// This plan with another choice for pending directory operations.
    #[must_use]
    pub fn with_dir_ops(mut self, dir_ops: Keep) -> Self {
        self.dir_ops = dir_ops;
        self
    }
}

impl Keep {
    /// Which of `n` pending items survive, in order.
    pub(super) fn choose(self, n: usize, rng: &mut Rng) -> Vec<bool> {
        match self {
            Keep::None => vec![false; n],
            Keep::All => vec![true; n],
            Keep::Prefix => {
                let k = rng.up_to(n as u64);
                (0..n as u64).map(|i| i < k).collect()
            }
            Keep::Random => (0..n).map(|_| rng.coin()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_distinct_and_seeded() {
        let v = CrashPlan::variants(9);
        assert!(v.len() >= 8);
        assert!(v.iter().all(|p| p.seed == 9));
        assert_eq!(v.first(), Some(&CrashPlan::drop_all().with_seed(9)));
        assert_eq!(v.get(1), Some(&CrashPlan::keep_all().with_seed(9)));
        for (i, a) in v.iter().enumerate() {
            for b in v.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn seeded_is_deterministic_and_varied() {
        assert_eq!(CrashPlan::seeded(5), CrashPlan::seeded(5));
        let plans: Vec<CrashPlan> = (0..64).map(CrashPlan::seeded).collect();
        assert!(plans.iter().any(|p| p.writes == Keep::Prefix));
        assert!(plans.iter().any(|p| p.dir_ops == Keep::Random));
        assert!(plans.iter().any(|p| matches!(p.tear, Tear::Garbage(_))));
        assert!(plans.iter().any(|p| matches!(p.tear, Tear::Sectors(4096))));
    }

    #[test]
    fn choose_shapes() {
        let mut rng = Rng::for_item(1, 1, 1);
        assert_eq!(Keep::None.choose(3, &mut rng), vec![false; 3]);
        assert_eq!(Keep::All.choose(3, &mut rng), vec![true; 3]);
        for _ in 0..50 {
            let p = Keep::Prefix.choose(5, &mut rng);
            let k = p.iter().take_while(|&&b| b).count();
            assert!(p.iter().skip(k).all(|&b| !b), "not a prefix: {p:?}");
        }
        let lens: Vec<usize> =
            (0..50).map(|_| Keep::Random.choose(6, &mut rng).iter().filter(|&&b| b).count()).collect();
        assert!(lens.iter().any(|&n| n > 0 && n < 6));
    }
}
