//! Process-kill test of background saves: `cairn demo --async` is killed
//! with SIGKILL at random moments, round after round, each round resuming
//! from the store. After every kill the store verifies clean (a killed
//! background save leaves no partial entry, only leftovers a collection
//! takes), and the next run resumes from the newest checkpoint the killed
//! run acknowledged or from a newer one. At the end the run finishes with
//! the final loss of a run never killed, bit for bit: so every background
//! save held the state of its own step, although training changed the
//! tensors as soon as `save_async` returned.
//!
//! It runs on a store on local disk and on S3 (the test server
//! `./scripts/test` starts; skipped without `CAIRN_TEST_S3_URL`, except
//! under CI). `CAIRN_KILL_ROUNDS` sets the rounds (default 20),
//! `CAIRN_KILL_SEED` the seed of the kill delays (printed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{cairn_env, Run};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_ROUNDS: usize = 20;
const BUDGET: Duration = Duration::from_secs(60);
const STEPS: u64 = 2000;
const EVERY: &str = "20";
const SIZE: &str = "64";

/// Where the store is, and where a run keeps its metrics log (the demo
/// puts it beside a local store, else in the user cache directory, which
/// the test points into its own temp directory).
struct Place {
    args: [String; 2],
    cache: PathBuf,
}

impl Place {
    fn local(root: &Path, cache: &Path) -> Self {
        Place { args: ["--root".into(), root.display().to_string()], cache: cache.to_path_buf() }
    }

    fn url(url: &str, cache: &Path) -> Self {
        Place { args: ["--url".into(), url.to_string()], cache: cache.to_path_buf() }
    }

    fn demo_args(&self) -> Vec<String> {
        ["demo", "--async", "--steps", &STEPS.to_string(), "--every", EVERY, "--size", SIZE]
            .iter()
            .map(|s| s.to_string())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// `cairn store --root|--url … ARGS`.
    fn store(&self, args: &[&str]) -> Run {
        let all: Vec<String> = ["store".to_string()]
            .into_iter()
            .chain(self.args.iter().cloned())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        cairn_env(all, b"", &[("XDG_CACHE_HOME", self.cache.as_os_str())])
    }
}

/// A `checkpoint step N: …, entry ID, …` line: (N, ID).
fn checkpoint(line: &str) -> Option<(u64, String)> {
    let rest = line.strip_prefix("checkpoint step ")?;
    let step = rest.split(':').next()?.parse().ok()?;
    let id = rest.split("entry ").nth(1)?.split(',').next()?.to_string();
    Some((step, id))
}

/// A `resuming from step N (KIND entry ID)` line: (N, ID).
fn resumed(line: &str) -> Option<(u64, String)> {
    let rest = line.strip_prefix("resuming from step ")?;
    let step = rest.split(' ').next()?.parse().ok()?;
    let id = rest.split("entry ").nth(1)?.trim_end_matches(')').to_string();
    Some((step, id))
}

/// The final loss, exactly as printed on `final step N: loss X, …`.
fn final_loss(out: &str) -> Option<String> {
    let rest = out.lines().find_map(|l| l.strip_prefix("final step "))?;
    Some(rest.split("loss ").nth(1)?.split(',').next()?.to_string())
}

/// One run of the demo, killed after `kill_after` unless it finished
/// first; returns its stdout lines and whether it finished (exit 0).
fn run_demo(place: &Place, kill_after: Duration) -> (Vec<String>, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(place.demo_args())
        .env("XDG_CACHE_HOME", OsString::from(&place.cache))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Lines are read as they come (stdout is line-buffered), so what the
    // run printed before the kill is what it acknowledged.
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
    let until = Instant::now() + kill_after;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let finished = match status {
        Some(s) => s.success(),
        None => {
            let _ = child.kill();
            child.wait().unwrap();
            false
        }
    };
    (reader.join().unwrap(), finished)
}

#[test]
fn sigkill_during_background_saves_on_local_disk_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    kill_rounds(&Place::local(&tmp.path().join("whole"), &cache), &Place::local(&tmp.path().join("killed"), &cache));
}

#[test]
fn sigkill_during_background_saves_on_s3_loses_nothing_acknowledged() {
    let Some(url) = common::s3_prefix("demo-kill") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    kill_rounds(&Place::url(&format!("{url}/whole"), &cache), &Place::url(&format!("{url}/killed"), &cache));
}

/// Runs the demo unbroken at `whole`, then killed round after round at
/// `killed`, checking the store after every kill and the final loss at
/// the end.
fn kill_rounds(whole: &Place, killed: &Place) {
    let rounds = std::env::var("CAIRN_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_ROUNDS);
    let seed = std::env::var("CAIRN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("CAIRN_KILL_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // The run never killed, for the final loss.
    let unbroken = Instant::now();
    let (lines, finished) = run_demo(whole, Duration::from_secs(300));
    // Kills land within the first twelfth of an unbroken run's time, so that
    // a run killed makes little headway and there are kills enough before
    // the demo finishes, however fast this machine runs it.
    let whole_ms = (unbroken.elapsed().as_millis() as u64).max(50);
    assert!(finished, "the unbroken run failed: {lines:?}");
    let expected = final_loss(&lines.join("\n")).expect("the unbroken run printed no final loss");
    let saves = lines.iter().filter(|l| checkpoint(l).is_some()).count();
    assert!(saves >= 10, "the unbroken run acknowledged {saves} background saves");

    let started = Instant::now();
    // The newest checkpoint acknowledged so far: (step, id).
    let mut newest: Option<(u64, String)> = None;
    let (mut kills, mut acked) = (0, 0);
    let mut finished: Option<Vec<String>> = None;
    for round in 0..rounds {
        if started.elapsed() > BUDGET && round >= 5 {
            break;
        }
        let (lines, done) = run_demo(killed, Duration::from_millis(rng.gen_range(whole_ms / 60..=whole_ms / 12)));
        if let Some(from) = lines.iter().find_map(|l| resumed(l)) {
            if let Some((step, id)) = &newest {
                assert!(
                    from.0 >= *step,
                    "round {round} resumed from step {} ({}), but step {step} ({id}) was acknowledged",
                    from.0,
                    from.1
                );
            }
        } else if lines.iter().any(|l| l.starts_with("starting fresh")) {
            assert!(newest.is_none(), "round {round} started afresh after checkpoints were acknowledged: {lines:?}");
        }
        // (Killed before it looked the key up: it said neither.)
        for c in lines.iter().filter_map(|l| checkpoint(l)) {
            acked += 1;
            if newest.as_ref().is_none_or(|(s, _)| c.0 > *s) {
                newest = Some(c);
            }
        }
        // Leftovers of the killed save are not damage; a partial entry would be.
        killed.store(&["verify", "--json"]).expect(0);
        if done {
            finished = Some(lines);
            break;
        }
        kills += 1;
    }
    eprintln!("{kills} kills, {acked} background saves acknowledged");
    assert!(kills >= 5, "only {kills} runs were killed before the demo finished");
    let lines = match finished {
        Some(lines) => lines,
        None => {
            let (lines, done) = run_demo(killed, Duration::from_secs(300));
            assert!(done, "the last run failed: {lines:?}");
            lines
        }
    };
    let got = final_loss(&lines.join("\n")).expect("the last run printed no final loss");
    assert_eq!(got, expected, "the killed and resumed run ended elsewhere than the unbroken one");
    let ls = killed.store(&["ls", "--json"]).expect(0).json();
    let finals = ls.as_array().unwrap().iter().filter(|e| e["kind"] == "final").count();
    assert_eq!(finals, 1, "{ls}");
    killed.store(&["gc"]).expect(0);
    let v = killed.store(&["verify", "--json"]).expect(0).json();
    assert_eq!(v["orphans"].as_u64(), Some(0), "{v}");
}
