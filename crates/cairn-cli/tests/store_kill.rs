//! Process-kill test of the store: `cairn store put` and `cairn store gc`
//! children run at once on one store directory and are killed with SIGKILL
//! at random moments, round after round. After every kill the store must
//! verify clean (leftovers of unfinished saves are not damage); at the end
//! one collection clears every leftover, every listed entry reads back, and
//! every acknowledged save that retention did not remove is there.
//!
//! `CAIRN_KILL_ROUNDS` sets the rounds (default 40), `CAIRN_KILL_SEED` the
//! seed of the kill delays (printed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{cairn, noise};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_ROUNDS: usize = 40;
const BUDGET: Duration = Duration::from_secs(60);

fn spawn(root: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("store")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills `child` unless it already finished; returns its stdout if it
/// finished successfully.
fn kill_or_collect(mut child: Child) -> Option<String> {
    let done = child.try_wait().unwrap();
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    (done.is_some() && out.status.success()).then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn sigkill_during_saves_and_gc_leaves_a_store_that_verifies_clean() {
    let rounds = std::env::var("CAIRN_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_ROUNDS);
    let seed = std::env::var("CAIRN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("CAIRN_KILL_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    // A few MB, so that a save takes long enough to be killed inside.
    let data = tmp.path().join("x.bin");
    std::fs::write(&data, noise(3 << 20, 7)).unwrap();
    let file = tmp.path().join("x.cairn");
    cairn(["pack".as_ref(), file.as_os_str(), "--chunk".as_ref(), format!("x={}", data.display()).as_ref()]).expect(0);
    let file = file.display().to_string();

    let started = Instant::now();
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut done = 0;
    for round in 0..rounds {
        if started.elapsed() > BUDGET && round >= 10 {
            break;
        }
        let key = format!("k{}", round % 3);
        let put = spawn(&root, &["put", &key, &file, "--iteration", &round.to_string()]);
        let gc = spawn(&root, &["gc", "--keep-last", "2"]);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=60)));
        if let Some(id) = kill_or_collect(put) {
            acked.push((key, id));
        }
        kill_or_collect(gc);
        let v = cairn(["store", "--root", root.to_str().unwrap(), "verify", "--json"]);
        v.expect(0);
        done += 1;
    }
    eprintln!("{done} rounds, {} saves acknowledged", acked.len());
    assert!(done >= 10);
    let gc = cairn(["store", "--root", root.to_str().unwrap(), "gc", "--json"]);
    gc.expect(0);
    let v = cairn(["store", "--root", root.to_str().unwrap(), "verify", "--json"]).expect(0).json();
    assert_eq!(v["orphans"].as_u64(), Some(0), "{v}");
    assert_eq!(v["unindexed"].as_array().unwrap().len(), 0, "{v}");
    let ls = cairn(["store", "--root", root.to_str().unwrap(), "ls", "--json"]).expect(0).json();
    let listed: Vec<(String, String)> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["id"].as_str().unwrap().to_string()))
        .collect();
    for (key, id) in &listed {
        let out = tmp.path().join("got.cairn");
        cairn(["store", "--root", root.to_str().unwrap(), "get", key, out.to_str().unwrap(), "--id", id]).expect(0);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());
    }
    // Retention keeps each key's two newest: the newest acknowledged save
    // of each key is there, unless two newer saves (committed, then killed
    // before they could say so) pushed it out.
    for k in ["k0", "k1", "k2"] {
        if let Some((_, newest)) = acked.iter().filter(|(key, _)| key == k).max_by(|a, b| a.1.cmp(&b.1)) {
            let newer = listed.iter().filter(|(key, id)| key == k && id > newest).count();
            assert!(
                newer >= 2 || listed.iter().any(|(_, id)| id == newest),
                "acknowledged {newest} of {k} is gone; listed {listed:?}"
            );
        }
    }
}
