//! Tests of power loss: what survives under each plan.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;

use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A durable file `f` holding `content`, and a write handle to it.
fn durable_file(content: &[u8]) -> (SimFs, Box<dyn FsFile>) {
    let fs = SimFs::new();
    fs.put_durable(p("f"), content).unwrap();
    let f = fs.open(p("f"), OpenMode::Write).unwrap();
    (fs, f)
}

#[test]
fn unsynced_write_is_lost_on_drop_all() {
    let (fs, f) = durable_file(b"old");
    f.write_at(b"NEW!", 0).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("f")).unwrap(), b"old");
}

#[test]
fn synced_write_is_kept() {
    let (fs, f) = durable_file(b"old");
    f.write_at(b"NEW!", 0).unwrap();
    f.sync_data().unwrap();
    f.write_at(b"more", 4).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("f")).unwrap(), b"NEW!");
}

#[test]
fn set_len_is_pending_until_synced() {
    let (fs, f) = durable_file(b"0123456789");
    f.set_len(4).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("f")).unwrap(), b"0123456789");
    let f = fs.open(p("f"), OpenMode::Write).unwrap();
    f.set_len(4).unwrap();
    f.sync_all().unwrap();
    f.set_len(12).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("f")).unwrap(), b"0123");
}

#[test]
fn create_without_dir_sync_is_lost_even_if_file_synced() {
    let fs = SimFs::new();
    let f = fs.open(p("new"), OpenMode::CreateNew).unwrap();
    f.write_at(b"data", 0).unwrap();
    f.sync_all().unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert!(!fs.exists(p("new")));
    assert_eq!(fs.list_dir(p("/")).unwrap(), Vec::<String>::new());
}

#[test]
fn create_with_dir_sync_keeps_the_name_and_synced_data_only() {
    let fs = SimFs::new();
    let f = fs.open(p("new"), OpenMode::CreateNew).unwrap();
    f.write_at(b"data", 0).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("new")).unwrap(), b"", "the name survives, the unsynced data not");
}

/// `t` durable with "old"; `tmp` durable (created, synced, dir synced) with
/// "new"; then `tmp` renamed over `t`.
fn renamed_over() -> SimFs {
    let fs = SimFs::new();
    fs.put_durable(p("d/t"), b"old").unwrap();
    let f = fs.open(p("d/tmp"), OpenMode::CreateNew).unwrap();
    f.write_at(b"new", 0).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(p("d")).unwrap();
    fs.rename(p("d/tmp"), p("d/t")).unwrap();
    fs
}

#[test]
fn rename_without_dir_sync_reverts() {
    let fs = renamed_over();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("d/tmp")).unwrap(), b"new");
    assert_eq!(fs.read(p("d/t")).unwrap(), b"old");
}

#[test]
fn rename_with_dir_sync_is_durable() {
    let fs = renamed_over();
    fs.sync_dir(p("d")).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert!(!fs.exists(p("d/tmp")));
    assert_eq!(fs.read(p("d/t")).unwrap(), b"new");
}

#[test]
fn rename_within_a_directory_is_never_half_kept() {
    for seed in 0..64 {
        let fs = renamed_over();
        fs.crash(&CrashPlan::seeded(seed).with_dir_ops(Keep::Random));
        let tmp = fs.exists(p("d/tmp"));
        let t = fs.read(p("d/t")).unwrap();
        assert!((tmp && t == b"old") || (!tmp && t == b"new"), "seed {seed}: tmp {tmp}, t {t:?}");
    }
}

#[test]
fn cross_directory_rename_halves_follow_their_directories() {
    let fs = SimFs::new();
    fs.create_dir_all(p("a")).unwrap();
    fs.create_dir_all(p("b")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    let f = fs.open(p("a/x"), OpenMode::CreateNew).unwrap();
    f.write_at(b"x", 0).unwrap();
    f.sync_all().unwrap();
    fs.rename(p("a/x"), p("b/y")).unwrap();
    fs.sync_dir(p("b")).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("b/y")).unwrap(), b"x");
    assert!(!fs.exists(p("a/x")));
}

#[test]
fn remove_without_dir_sync_reappears() {
    let (fs, f) = durable_file(b"still here");
    drop(f);
    fs.remove_file(p("f")).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("f")).unwrap(), b"still here");
    fs.remove_file(p("f")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert!(!fs.exists(p("f")));
}

#[test]
fn directory_without_parent_sync_loses_its_files() {
    let fs = SimFs::new();
    fs.create_dir_all(p("d/e")).unwrap();
    let f = fs.open(p("d/e/f"), OpenMode::CreateNew).unwrap();
    f.write_at(b"x", 0).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(p("d/e")).unwrap();
    fs.sync_dir(p("d")).unwrap();
    assert!(!fs.durable_exists(p("d/e/f")), "its directory is not durable");
    assert_eq!(fs.durable_read(p("d/e/f")).unwrap_err().kind(), ErrorKind::NotFound);
    fs.crash(&CrashPlan::drop_all());
    assert!(!fs.exists(p("d")));
    assert!(!fs.exists(p("d/e/f")));
    // Once every level is synced, the file survives.
    fs.create_dir_all(p("d/e")).unwrap();
    fs.open(p("d/e/f"), OpenMode::CreateNew).unwrap().sync_all().unwrap();
    for dir in ["d/e", "d", "/"] {
        fs.sync_dir(p(dir)).unwrap();
    }
    assert!(fs.durable_exists(p("d/e/f")));
    fs.crash(&CrashPlan::drop_all());
    assert!(fs.exists(p("d/e/f")));
}

#[test]
fn keep_all_keeps_everything() {
    let fs = SimFs::new();
    fs.put_durable(p("gone"), b"g").unwrap();
    fs.put_durable(p("from"), b"r").unwrap();
    fs.create_dir_all(p("d")).unwrap();
    let f = fs.open(p("d/f"), OpenMode::Create).unwrap();
    f.write_at(b"abcdef", 0).unwrap();
    f.set_len(4).unwrap();
    fs.remove_file(p("gone")).unwrap();
    fs.rename(p("from"), p("d/to")).unwrap();
    let before = fs.list_all();
    fs.crash(&CrashPlan::keep_all());
    assert_eq!(fs.list_all(), before);
    assert_eq!(fs.read(p("d/f")).unwrap(), b"abcd");
    assert_eq!(fs.read(p("d/to")).unwrap(), b"r");
    assert_eq!(fs.pending_counts(), (0, 0), "what survived is now durable");
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.list_all(), before);
}

/// The content after a torn write of 2000 bytes of 0xAB at offset 300 over
/// a durable 1000 bytes of 0x11.
fn torn(tear: Tear, seed: u64) -> Vec<u8> {
    let (fs, f) = durable_file(&[0x11; 1000]);
    f.write_at(&[0xAB; 2000], 300).unwrap();
    fs.crash(&CrashPlan::keep_all().with_tear(tear).with_seed(seed));
    fs.read(p("f")).unwrap()
}

#[test]
fn tear_at_512_keeps_whole_sectors_of_a_prefix() {
    let mut ends = BTreeSet::new();
    for seed in 0..200 {
        let c = torn(Tear::Sectors(512), seed);
        // The write's surviving part is a prefix, cut at a sector boundary.
        let kept = c.iter().skip(300).take_while(|&&b| b == 0xAB).count();
        let end = 300 + kept;
        assert!(kept == 0 || kept == 2000 || end.is_multiple_of(512), "seed {seed}: cut at {end}");
        assert!(c[..300].iter().all(|&b| b == 0x11));
        // Past the surviving part: the old content, and the old length at least.
        assert!(c[end..].iter().all(|&b| b == 0x11), "seed {seed}");
        assert_eq!(c.len(), end.max(1000), "seed {seed}");
        ends.insert(end);
    }
    assert_eq!(ends.into_iter().collect::<Vec<_>>(), vec![300, 512, 1024, 1536, 2048, 2300]);
}

#[test]
fn tear_at_4096_can_drop_a_small_write_whole() {
    let outcomes: BTreeSet<Vec<u8>> = (0..64).map(|s| torn(Tear::Sectors(4096), s)).collect();
    let mut whole = vec![0x11; 300];
    whole.extend([0xAB; 2000]);
    assert_eq!(outcomes, BTreeSet::from([vec![0x11; 1000], whole]));
}

#[test]
fn garbage_keeps_the_full_length() {
    let mut saw_garbage = false;
    for seed in 0..100 {
        let c = torn(Tear::Garbage(512), seed);
        assert_eq!(c.len(), 2300);
        assert!(c[..300].iter().all(|&b| b == 0x11));
        saw_garbage |= c[300..].iter().any(|&b| b != 0xAB);
    }
    assert!(saw_garbage);
}

#[test]
fn only_the_last_kept_write_is_torn() {
    for seed in 0..50 {
        let (fs, f) = durable_file(b"");
        f.write_at(&[1; 1024], 0).unwrap();
        f.write_at(&[2; 1024], 1024).unwrap();
        fs.crash(&CrashPlan::keep_all().with_tear(Tear::Sectors(512)).with_seed(seed));
        let c = fs.read(p("f")).unwrap();
        assert!(c.len() >= 1024 && c[..1024].iter().all(|&b| b == 1), "seed {seed}");
        assert!(c[1024..].iter().all(|&b| b == 2) && c.len().is_multiple_of(512));
    }
}

/// Four appends of 10 bytes each (byte value = append number) to an empty
/// durable file, then a crash with `writes`.
fn appended(writes: Keep, seed: u64) -> Vec<u8> {
    let (fs, f) = durable_file(b"");
    for i in 1..=4u8 {
        f.write_at(&[i; 10], u64::from(i - 1) * 10).unwrap();
    }
    fs.crash(&CrashPlan::drop_all().with_writes(writes).with_seed(seed));
    fs.read(p("f")).unwrap()
}

#[test]
fn prefix_keeps_a_prefix_of_each_file() {
    let mut lens = BTreeSet::new();
    for seed in 0..100 {
        let c = appended(Keep::Prefix, seed);
        let want: Vec<u8> = (1..=4u8).flat_map(|i| [i; 10]).take(c.len()).collect();
        assert_eq!(c, want, "seed {seed}");
        lens.insert(c.len());
    }
    assert_eq!(lens.into_iter().collect::<Vec<_>>(), vec![0, 10, 20, 30, 40]);
}

#[test]
fn random_keeps_any_subset() {
    let mut holes = false;
    for seed in 0..100 {
        let c = appended(Keep::Random, seed);
        for (i, chunk) in c.chunks(10).enumerate() {
            let n = i as u8 + 1;
            assert!(chunk.iter().all(|&b| b == n) || chunk.iter().all(|&b| b == 0), "seed {seed}");
        }
        holes |= c.chunks(10).any(|ch| ch.iter().all(|&b| b == 0));
    }
    assert!(holes, "some seed keeps a later write without an earlier one");
}

/// A small workload with something pending of every kind.
fn workload(fs: &SimFs) {
    fs.put_durable(p("d/a"), &[1; 700]).unwrap();
    fs.put_durable(p("d/b"), b"b").unwrap();
    fs.create_dir_all(p("d/sub")).unwrap();
    let a = fs.open(p("d/a"), OpenMode::Write).unwrap();
    a.write_at(&[2; 900], 100).unwrap();
    a.set_len(600).unwrap();
    a.write_at(&[3; 300], 1000).unwrap();
    let c = fs.open(p("d/sub/c"), OpenMode::Create).unwrap();
    c.write_at(&[4; 5000], 0).unwrap();
    fs.rename(p("d/b"), p("d/b2")).unwrap();
    fs.remove_file(p("d/a")).unwrap();
    fs.open(p("d/e"), OpenMode::Create).unwrap().write_at(b"e", 0).unwrap();
}

#[test]
fn same_seed_same_disk() {
    for plan in (0..40).map(CrashPlan::seeded).chain(CrashPlan::variants(11)) {
        let run = || {
            let fs = SimFs::new();
            workload(&fs);
            fs.crash(&plan);
            fs.list_all().into_iter().map(|(k, _)| (fs.read(&k).ok(), k)).collect::<Vec<_>>()
        };
        assert_eq!(run(), run(), "{plan:?}");
    }
    let outcomes: BTreeSet<_> = (0..40)
        .map(|s| {
            let fs = SimFs::new();
            workload(&fs);
            fs.crash(&CrashPlan::seeded(s));
            fs.list_all()
        })
        .collect();
    assert!(outcomes.len() > 3, "seeds should lead to different disks");
}

#[test]
fn every_variant_keeps_what_was_made_durable() {
    for plan in CrashPlan::variants(3) {
        let fs = SimFs::new();
        fs.create_dir_all(p("d")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        let f = fs.open(p("d/safe"), OpenMode::CreateNew).unwrap();
        f.write_at(b"safe", 0).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(p("d")).unwrap();
        workload(&fs);
        f.write_at(b"more", 4).unwrap();
        fs.crash(&plan);
        let c = fs.read(p("d/safe")).unwrap();
        assert!(c.starts_with(b"safe") && c.len() <= 8, "{plan:?}: {c:?}");
        assert!(fs.exists(p("d")) && fs.pending_counts() == (0, 0), "{plan:?}");
    }
}

#[test]
fn handles_and_locks_die_with_the_machine() {
    let (fs, f) = durable_file(b"x");
    let guard = fs.try_lock(p("LOCK")).unwrap();
    fs.crash(&CrashPlan::keep_all());
    for r in [f.write_at(b"y", 0), f.sync_all(), f.set_len(0), f.start_writeback(0, 1), f.len().map(drop)] {
        assert!(r.unwrap_err().to_string().contains("stale"));
    }
    let mut buf = [0u8; 1];
    assert_eq!(f.read_at(&mut buf, 0).unwrap_err().kind(), ErrorKind::Other);
    // The crash released the lock; a guard from before it must not release
    // the lock taken after it.
    let new_guard = fs.try_lock(p("LOCK")).unwrap();
    drop(guard);
    assert_eq!(fs.try_lock(p("LOCK")).unwrap_err().kind(), ErrorKind::WouldBlock);
    drop(new_guard);
    drop(fs.try_lock(p("LOCK")).unwrap());
    // Dropping a stale handle leaves the new epoch's files alone.
    let g = fs.open(p("f"), OpenMode::Read).unwrap();
    drop(f);
    assert_eq!(g.read_all().unwrap(), b"x");
}

#[test]
fn files_no_name_reaches_are_gone() {
    let fs = SimFs::new();
    let f = fs.open(p("tmp"), OpenMode::Create).unwrap();
    f.write_at(&[9; 100], 0).unwrap();
    f.sync_all().unwrap();
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(super::file::lock(&fs.state).inodes.len(), 0);
}
