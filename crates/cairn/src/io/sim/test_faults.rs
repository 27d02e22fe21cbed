//! Tests of operation counting, crash points and injected faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::ErrorKind;
use std::path::Path;

use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn is_power_loss(e: &io::Error) -> bool {
    e.kind() == ErrorKind::Other && e.to_string() == "simulated power loss"
}

#[test]
fn each_mutating_operation_counts_once() {
    let fs = SimFs::new();
    let step = |what: &str, want: u64| assert_eq!(fs.op_count(), want, "after {what}");
    fs.create_dir_all(p("a/b/c")).unwrap();
    step("create_dir_all making three", 1);
    fs.create_dir_all(p("a/b")).unwrap();
    step("create_dir_all making nothing", 1);
    let f = fs.open(p("a/f"), OpenMode::Create).unwrap();
    step("create", 2);
    let _again = fs.open(p("a/f"), OpenMode::Create).unwrap();
    let _read = fs.open(p("a/f"), OpenMode::Read).unwrap();
    step("opening an existing file", 2);
    f.write_at(b"x", 0).unwrap();
    f.write_at(b"", 9).unwrap();
    step("two writes", 4);
    f.set_len(3).unwrap();
    f.sync_data().unwrap();
    f.sync_all().unwrap();
    step("set_len and syncs", 7);
    f.start_writeback(0, 3).unwrap();
    let mut buf = [0u8; 3];
    f.read_at(&mut buf, 0).unwrap();
    f.len().unwrap();
    fs.list_dir(p("a")).unwrap();
    let _ = fs.read(p("a/f")).unwrap();
    step("reads and hints", 7);
    fs.rename(p("a/f"), p("a/g")).unwrap();
    fs.remove_file(p("a/g")).unwrap();
    fs.sync_dir(p("a")).unwrap();
    step("rename, remove, sync_dir", 10);
    assert!(fs.remove_file(p("a/g")).is_err());
    assert!(fs.open(p("zz/f"), OpenMode::Create).is_err());
    step("calls failing their own checks", 10);
    fs.crash(&CrashPlan::drop_all());
    step("a crash keeps the count", 10);
}

#[test]
fn crash_after_n_fails_op_n_plus_one_and_everything_after() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    let start = fs.op_count();
    fs.crash_after(3);
    for i in 0..3u8 {
        f.write_at(&[i], u64::from(i)).unwrap();
        assert!(!fs.is_down());
    }
    let before = fs.read(p("f")).unwrap();
    assert!(is_power_loss(&f.sync_all().unwrap_err()));
    assert!(fs.is_down());
    assert_eq!(fs.op_count(), start + 3, "the refused operation is not counted");
    // Everything fails now, reads and non-counted calls included.
    let mut buf = [0u8; 1];
    assert!(is_power_loss(&f.read_at(&mut buf, 0).unwrap_err()));
    assert!(is_power_loss(&f.len().unwrap_err()));
    assert!(is_power_loss(&f.start_writeback(0, 1).unwrap_err()));
    assert!(is_power_loss(&fs.list_dir(p("/")).unwrap_err()));
    assert!(is_power_loss(&fs.open(p("f"), OpenMode::Read).unwrap_err()));
    assert!(is_power_loss(&fs.open(p("missing"), OpenMode::Read).unwrap_err()));
    assert!(is_power_loss(&fs.create_dir_all(p("/")).unwrap_err()));
    assert!(is_power_loss(&fs.try_lock(p("L")).unwrap_err()));
    assert!(is_power_loss(&fs.sync_dir(p("/")).unwrap_err()));
    assert_eq!(fs.op_count(), start + 3);
    // Helpers still look at the disk as the power went.
    assert_eq!(fs.read(p("f")).unwrap(), before);
    assert_eq!(before, [0, 1, 2]);
    fs.crash(&CrashPlan::keep_all());
    assert!(!fs.is_down());
    assert_eq!(fs.read(p("f")).unwrap(), [0, 1, 2]);
    // The point is cleared: operations go on.
    let g = fs.open(p("f"), OpenMode::Write).unwrap();
    for _ in 0..10 {
        g.sync_data().unwrap();
    }
}

#[test]
fn crash_after_zero_fails_the_next_mutation_only() {
    let fs = SimFs::new();
    fs.put_durable(p("f"), b"x").unwrap();
    fs.crash_after(0);
    let f = fs.open(p("f"), OpenMode::Read).unwrap();
    assert_eq!(f.read_all().unwrap(), b"x", "reads before the point work");
    assert!(!fs.is_down());
    assert!(is_power_loss(&fs.open(p("g"), OpenMode::Create).unwrap_err()));
    assert!(fs.is_down());
    assert!(!fs.exists(p("g")));
    assert_eq!(fs.op_count(), 0);
}

#[test]
fn a_sweep_of_crash_points_counts_exactly() {
    fn run(fs: &SimFs) -> io::Result<()> {
        fs.create_dir_all(p("d"))?;
        let f = fs.open(p("d/f"), OpenMode::CreateNew)?;
        f.write_at(b"abc", 0)?;
        f.sync_all()?;
        fs.rename(p("d/f"), p("d/g"))?;
        fs.sync_dir(p("d"))
    }
    let total = {
        let fs = SimFs::new();
        run(&fs).unwrap();
        fs.op_count()
    };
    assert_eq!(total, 6);
    for n in 0..total {
        let fs = SimFs::new();
        fs.crash_after(n);
        assert!(is_power_loss(&run(&fs).unwrap_err()), "point {n}");
        assert_eq!(fs.op_count(), n);
        fs.crash(&CrashPlan::drop_all());
        assert!(!fs.exists(p("d/g")), "nothing is durable without the parent's sync");
    }
    let fs = SimFs::new();
    fs.crash_after(total);
    run(&fs).unwrap();
    assert!(!fs.is_down());
}

#[test]
fn fault_rule_skips_then_fails_times_then_is_spent() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    fs.inject(FaultRule::on(OpKind::Write).skip_first(1).fail_times(2));
    let results: Vec<Option<i32>> =
        (0..5u8).map(|i| f.write_at(&[i], u64::from(i)).err().and_then(|e| e.raw_os_error())).collect();
    assert_eq!(results, [None, Some(libc::EIO), Some(libc::EIO), None, None]);
    // Failed writes wrote nothing but were counted.
    assert_eq!(fs.read(p("f")).unwrap(), [0, 0, 0, 3, 4]);
    assert_eq!(fs.op_count(), 1 + 5);
    f.sync_all().unwrap();
}

#[test]
fn fault_rule_filters_by_kind_and_path() {
    let fs = SimFs::new();
    fs.create_dir_all(p("wal")).unwrap();
    fs.inject(FaultRule::on(OpKind::SyncAll).on_path("wal/").with_fault(Fault::Enospc));
    let log = fs.open(p("wal/seg-1"), OpenMode::Create).unwrap();
    let other = fs.open(p("ckpt"), OpenMode::Create).unwrap();
    log.write_at(b"r", 0).unwrap();
    log.sync_data().unwrap();
    other.sync_all().unwrap();
    for _ in 0..3 {
        let e = log.sync_all().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(e.kind(), ErrorKind::StorageFull);
    }
    // Rules survive a crash; clear_faults drops them.
    fs.sync_dir(p("wal")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.crash(&CrashPlan::drop_all());
    let log = fs.open(p("wal/seg-1"), OpenMode::Write).unwrap();
    assert!(log.sync_all().is_err());
    fs.clear_faults();
    log.sync_all().unwrap();
}

#[test]
fn failed_operations_change_nothing() {
    let fs = SimFs::new();
    fs.put_durable(p("d/t"), b"old").unwrap();
    fs.put_durable(p("d/tmp"), b"new").unwrap();
    fs.inject(FaultRule::any());
    let f = fs.open(p("d/t"), OpenMode::Write).unwrap();
    assert!(f.write_at(b"x", 0).is_err());
    assert!(f.set_len(0).is_err());
    assert!(fs.rename(p("d/tmp"), p("d/t")).is_err());
    assert!(fs.remove_file(p("d/t")).is_err());
    assert!(fs.create_dir_all(p("d/e")).is_err());
    assert!(fs.open(p("d/n"), OpenMode::Create).is_err());
    assert!(fs.try_lock(p("d/L")).is_err());
    assert_eq!(fs.list_all().len(), 3);
    assert_eq!(fs.read(p("d/t")).unwrap(), b"old");
    fs.clear_faults();
    // A failed sync leaves what was pending pending.
    f.write_at(b"X", 0).unwrap();
    fs.inject(FaultRule::on(OpKind::SyncData).fail_times(1));
    assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
    fs.rename(p("d/tmp"), p("d/t2")).unwrap();
    fs.inject(FaultRule::on(OpKind::SyncDir).fail_times(1));
    assert!(fs.sync_dir(p("d")).is_err());
    assert_eq!(fs.pending_counts(), (1, 1));
    fs.crash(&CrashPlan::drop_all());
    assert_eq!(fs.read(p("d/t")).unwrap(), b"old");
    assert!(fs.exists(p("d/tmp")) && !fs.exists(p("d/t2")));
}

#[test]
fn every_rule_counts_its_own_matches() {
    let fs = SimFs::new();
    let f = fs.open(p("f"), OpenMode::Create).unwrap();
    fs.inject(FaultRule::on(OpKind::Write).skip_first(1).fail_times(1));
    fs.inject(FaultRule::on(OpKind::Write).skip_first(2).fail_times(1).with_fault(Fault::Enospc));
    let codes: Vec<Option<i32>> = (0..4).map(|i| f.write_at(b"w", i).err().and_then(|e| e.raw_os_error())).collect();
    assert_eq!(codes, [None, Some(libc::EIO), Some(libc::ENOSPC), None]);
}
