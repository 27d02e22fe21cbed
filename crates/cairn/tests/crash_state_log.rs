//! Crash enumeration of StateLog and of checkpoint publishing on the
//! simulated file system, and random sequences of apply / snapshot / crash /
//! restart checked against an in-memory model.
//!
//! After any crash a StateLog must recover exactly the state after some
//! prefix of the applied ops that includes every acknowledged one; a
//! checkpoint path must hold the previous file or the complete new one.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::Path;

use cairn::io::{CrashPlan, FsRef, OpenMode, SimFs};
use cairn::wal::{LoggedState, StateLog, StateLogOptions, SyncPolicy, WalOptions};
use cairn::{Checkpoint, CheckpointWriter, WriterOptions};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const DIR: &str = "/state";

/// The state is the list of ops applied, so any divergence shows.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Seen {
    ops: Vec<u64>,
    sum: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Op {
    n: u64,
    /// Makes ops big enough that 4 KiB log segments hold only a few.
    pad: String,
}

impl LoggedState for Seen {
    type Op = Op;
    fn apply(&mut self, op: &Op) {
        self.ops.push(op.n);
        self.sum += op.n;
    }
}

fn op(n: u64) -> Op {
    Op { n, pad: "p".repeat(300 + (n as usize * 53) % 400) }
}

fn after(k: u64) -> Seen {
    Seen { ops: (1..=k).collect(), sum: (1..=k).sum() }
}

fn opts(every: u64) -> StateLogOptions {
    StateLogOptions::default()
        .snapshot_every_ops(Some(every))
        .wal(WalOptions::default().sync(SyncPolicy::Always).segment_size(4096))
}

fn open(fs: FsRef, every: u64) -> cairn::Result<StateLog<Seen>> {
    StateLog::open_with(fs, DIR, opts(every), Seen::default)
}

/// Applies ops `from..=to` until one fails; returns how many were
/// acknowledged and how many were attempted.
fn run(log: &mut StateLog<Seen>, from: u64, to: u64) -> (u64, u64) {
    for n in from..=to {
        if let Err(_e) = log.apply(op(n)) {
            return (n - from, n - from + 1);
        }
    }
    (to + 1 - from, to + 1 - from)
}

/// Checks the recovered state is the state after `k` ops with
/// `acked <= k <= attempted`; returns `k`.
fn check(sim: &SimFs, acked: u64, attempted: u64, every: u64, context: &str) -> u64 {
    let log =
        open(sim.shared(), every).unwrap_or_else(|e| panic!("{context}: recovery failed: {e}\n{:?}", sim.list_all()));
    let k = log.state().ops.len() as u64;
    assert_eq!(*log.state(), after(k), "{context}: not the state after a prefix of the ops");
    assert!(k >= acked, "{context}: {acked} ops acknowledged, {k} recovered");
    assert!(k <= attempted, "{context}: {k} ops recovered, only {attempted} applied");
    k
}

const OPS: u64 = 10;
const EVERY: u64 = 3;

#[test]
fn state_log_crash_at_every_operation() {
    let total = {
        let sim = SimFs::new();
        let mut log = open(sim.shared(), EVERY).unwrap();
        assert_eq!(run(&mut log, 1, OPS), (OPS, OPS));
        log.close().unwrap();
        sim.op_count()
    };
    let mut runs = 0;
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            sim.crash_after(n);
            let (acked, attempted) = match open(sim.shared(), EVERY) {
                Ok(mut log) => run(&mut log, 1, OPS),
                Err(_) => (0, 0),
            };
            sim.crash(&plan);
            let context = format!("crash after op {n}, plan {v} {plan:?}");
            let k = check(&sim, acked, attempted, EVERY, &context);
            // It goes on from there, and that survives a clean restart.
            let mut log = open(sim.shared(), EVERY).unwrap();
            assert_eq!(run(&mut log, k + 1, k + 2), (2, 2), "{context}");
            drop(log);
            assert_eq!(check(&sim, k + 2, k + 2, EVERY, &context), k + 2);
            runs += 1;
        }
    }
    assert!(runs > 400, "only {runs} crash runs");
}

fn generation(g: u64) -> Vec<u8> {
    (0..20_000u64).map(|i| (i.wrapping_mul(17) ^ g.wrapping_mul(101)) as u8).collect()
}

fn publish(fs: &FsRef, g: u64) -> cairn::Result<()> {
    let mut w =
        CheckpointWriter::create_in(fs.clone(), "/ckpt/model.cairn", WriterOptions::default().frame_size(4096))?;
    w.set_step(g);
    w.add_bytes("data", &generation(g))?;
    w.finish().map(|_| ())
}

/// The generation at the checkpoint path, checked whole, or `None`.
fn published(sim: &SimFs) -> Option<u64> {
    let path = Path::new("/ckpt/model.cairn");
    let file = cairn::io::Fs::open(sim, path, OpenMode::Read).ok()?;
    let ckpt = Checkpoint::from_bytes(file.read_all().unwrap()).expect("a partial checkpoint was published");
    assert!(ckpt.verify().unwrap().is_ok());
    let g = ckpt.step().unwrap();
    assert_eq!(ckpt.read("data").unwrap(), generation(g));
    Some(g)
}

#[test]
fn checkpoint_publish_crash_at_every_operation() {
    let setup = |sim: &SimFs| {
        cairn::io::create_dir_durable(sim, Path::new("/ckpt")).unwrap();
        publish(&sim.shared(), 1).unwrap();
    };
    let total = {
        let sim = SimFs::new();
        setup(&sim);
        let before = sim.op_count();
        publish(&sim.shared(), 2).unwrap();
        sim.op_count() - before
    };
    for n in 0..=total {
        for (v, plan) in CrashPlan::variants(n).into_iter().enumerate() {
            let sim = SimFs::new();
            setup(&sim);
            sim.crash_after(n);
            let done = publish(&sim.shared(), 2).is_ok();
            sim.crash(&plan);
            let g = published(&sim);
            let context = format!("crash after op {n}, plan {v} {plan:?}");
            if done {
                assert_eq!(g, Some(2), "{context}: a published checkpoint was lost");
            } else {
                assert!(matches!(g, Some(1 | 2)), "{context}: holds {g:?}");
            }
        }
    }
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Apply(u8),
    Snapshot,
    Restart,
    /// Power loss after this many more operations, under plan variant `v`.
    Crash {
        after: u8,
        v: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u8..4).prop_map(Step::Apply),
        1 => Just(Step::Snapshot),
        1 => Just(Step::Restart),
        2 => (0u8..12, 0u8..9).prop_map(|(after, v)| Step::Crash { after, v }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_match_the_model(steps in prop::collection::vec(step(), 1..25), every in 2u64..6) {
        let sim = SimFs::new();
        let mut log = Some(open(sim.shared(), every).unwrap());
        // The model: ops acknowledged, and ops applied (acked or not) that a
        // crash may keep or lose.
        let (mut acked, mut attempted) = (0u64, 0u64);
        for (i, s) in steps.iter().enumerate() {
            let context = format!("step {i} {s:?} of {steps:?}");
            match s {
                Step::Apply(n) => {
                    let l = log.as_mut().unwrap();
                    let (a, t) = run(l, attempted + 1, attempted + u64::from(*n));
                    prop_assert_eq!((a, t), (u64::from(*n), u64::from(*n)), "{}", context);
                    acked += a;
                    attempted += t;
                    prop_assert_eq!(l.state().ops.len() as u64, attempted);
                }
                Step::Snapshot => {
                    log.as_mut().unwrap().snapshot().unwrap();
                }
                Step::Restart => {
                    drop(log.take());
                    let k = check(&sim, acked, attempted, every, &context);
                    prop_assert_eq!(k, attempted, "{}: a clean restart loses nothing", context);
                    log = Some(open(sim.shared(), every).unwrap());
                }
                Step::Crash { after, v } => {
                    let mut l = log.take().unwrap();
                    sim.crash_after(u64::from(*after));
                    let (a, t) = run(&mut l, attempted + 1, attempted + 4);
                    acked += a;
                    attempted += t;
                    drop(l);
                    let plan = CrashPlan::variants(i as u64).swap_remove(usize::from(*v));
                    sim.crash(&plan);
                    let k = check(&sim, acked, attempted, every, &context);
                    // What survived is the new history.
                    acked = k;
                    attempted = k;
                    log = Some(open(sim.shared(), every).unwrap());
                }
            }
        }
    }
}
