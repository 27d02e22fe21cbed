//! `cairn demo`, the training job on the keyed store: checkpoints, a final
//! result, resuming a finished or killed run, and bit-for-bit equality
//! with an uninterrupted run. Runs use a small model (the hidden `--size`)
//! so the debug build stays fast.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cairn, Run};
use rand::Rng;

/// The model size the tests train: 64×64 weights.
const SIZE: &str = "64";

fn demo(root: &Path, steps: u64, every: u64, size: &str) -> Run {
    let r = cairn([
        "demo",
        "--steps",
        &steps.to_string(),
        "--every",
        &every.to_string(),
        "--size",
        size,
        "--root",
        root.to_str().unwrap(),
    ]);
    r.expect(0);
    r
}

/// The entries of the store at `root`, as `store ls --json` lists them.
fn ls(root: &Path) -> Vec<serde_json::Value> {
    let r = cairn(["store", "ls", "--json", "--root", root.to_str().unwrap()]);
    r.expect(0);
    r.json().as_array().unwrap().clone()
}

/// The value after `prefix` on the first stdout line that starts with it.
fn line_value(r: &Run, prefix: &str) -> String {
    let out = r.out();
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
        .to_string()
}

/// The final loss printed as `final step N: loss X, …`, exactly as printed
/// (Rust prints the shortest text that reads back as the same f64).
fn final_loss(r: &Run) -> String {
    let rest = line_value(r, "final step ");
    let loss = rest.split("loss ").nth(1).unwrap();
    loss.split(',').next().unwrap().to_string()
}

fn final_entry(root: &Path) -> serde_json::Value {
    let finals: Vec<_> = ls(root).into_iter().filter(|e| e["kind"] == "final").collect();
    assert!(!finals.is_empty(), "no final entry in {}", root.display());
    finals.last().unwrap().clone()
}

/// The weights of the key's latest entry, fetched with `store get`.
fn latest_weights(root: &Path, key: &str, out: &Path) -> Vec<u32> {
    cairn(["store", "get", key, out.to_str().unwrap(), "--latest", "--root", root.to_str().unwrap()]).expect(0);
    let ck = cairn::Checkpoint::open(out).unwrap();
    ck.read_tensor::<f32>("weights").unwrap().iter().map(|x| x.to_bits()).collect()
}

/// What a printed save line says it stored: `(added, full)` from
/// `… entry ID, 9.91 MiB stored of 13.28 MiB (75 %), …`, in the units printed.
fn stored_of(line: &str) -> (f64, f64) {
    let (before, after) = line.split_once(" stored of ").unwrap_or_else(|| panic!("no stored size in {line:?}"));
    let added = before.rsplit(", ").next().unwrap();
    let full = after.split(" (").next().unwrap();
    let value = |s: &str| -> f64 {
        let (n, unit) = s.split_once(' ').unwrap();
        let scale = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            other => panic!("unit {other:?} in {line:?}"),
        };
        n.parse::<f64>().unwrap() * scale
    };
    (value(added), value(full))
}

/// Every save after the first stores about what training changed: the
/// frozen base (a quarter of the state) is shared, and the demo says so.
#[test]
fn saves_after_the_first_store_only_what_training_changed() {
    let dir = tempfile::tempdir().unwrap();
    // 256×256 tensors are 256 KiB, above the size from which frames are
    // shared; the 64×64 ones of the other tests are kept inline.
    let r = demo(&dir.path().join("store"), 60, 20, "256");
    let out = r.out();
    let lines: Vec<&str> =
        out.lines().filter(|l| l.starts_with("checkpoint step ") || l.starts_with("final step ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    let (added, full) = stored_of(lines[0]);
    // The first save shares nothing; its manifest's piece table is a
    // little more than the checkpoint it describes.
    assert!(added >= full && added < 1.01 * full, "{}", lines[0]);
    for line in &lines[1..] {
        let (added, full) = stored_of(line);
        assert!(added < 0.8 * full && added > 0.6 * full, "the frozen base was stored again: {line}");
    }
    let summary = line_value(&r, "incremental saves: 3 saves stored ");
    assert!(summary.contains("the frozen base"), "{summary}");
    let entries = ls(&dir.path().join("store"));
    for e in &entries[1..] {
        let (bytes, added) = (e["bytes"].as_u64().unwrap(), e["added_bytes"].as_u64().unwrap());
        assert!(added < bytes, "{e}");
    }
}

#[test]
fn checkpoints_then_a_final_result_then_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let r = demo(&root, 60, 20, SIZE);
    let out = r.out();
    assert!(out.contains("starting fresh"), "{out}");
    assert!(out.contains("keeps this key's last 3 entries and its best"), "{out}");
    assert!(out.contains("checkpoint step 20:") && out.contains("checkpoint step 40:"), "{out}");
    assert!(!out.contains("checkpoint step 60:"), "the last step is saved as the final result only:\n{out}");
    assert!(out.contains("metrics log") && out.contains(": 60 steps, first loss"), "{out}");
    let key = line_value(&r, "key: ");
    assert_eq!(key.len(), 64);

    let entries = ls(&root);
    let got: Vec<(String, u64)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap().to_string(), e["iteration"].as_u64().unwrap())).collect();
    assert_eq!(got, [("checkpoint".to_string(), 20), ("checkpoint".to_string(), 40), ("final".to_string(), 60)]);
    for e in &entries {
        assert_eq!(e["key"], key.as_str());
        assert!(e["objective"].as_f64().unwrap() > 0.0);
        assert!(e["bytes"].as_u64().unwrap() > 0);
    }
    // The loss falls: the final objective is below the first checkpoint's.
    assert!(entries[2]["objective"].as_f64().unwrap() < entries[0]["objective"].as_f64().unwrap());
    let best = line_value(&r, "best entry: ");
    assert!(best.starts_with(entries[2]["id"].as_str().unwrap()), "{best}");

    let again = demo(&root, 60, 20, SIZE);
    let out = again.out();
    assert!(out.contains("run complete"), "{out}");
    assert!(out.contains(entries[2]["id"].as_str().unwrap()), "{out}");
    assert!(!out.contains("checkpoint step") && !out.contains("final step"), "{out}");
    assert_eq!(ls(&root), entries, "a finished run saves nothing new");
    cairn(["store", "verify", "--root", root.to_str().unwrap()]).expect(0);
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = demo(&a, 40, 20, SIZE);
    let key = line_value(&first, "key: ");
    let resumed = demo(&a, 80, 20, SIZE);
    let out = resumed.out();
    assert!(out.contains("resuming from step 40 (final entry"), "{out}");
    assert!(out.contains("resume load:"), "{out}");
    assert!(out.contains("checkpoint step 60:") && !out.contains("checkpoint step 40:"), "{out}");
    let straight = demo(&b, 80, 20, SIZE);
    assert_eq!(line_value(&straight, "key: "), key, "same configuration and machine, same key");

    assert_eq!(final_loss(&resumed), final_loss(&straight));
    let (fa, fb) = (final_entry(&a), final_entry(&b));
    assert_eq!(fa["iteration"], 80);
    assert_eq!(fa["objective"].as_f64().unwrap().to_bits(), fb["objective"].as_f64().unwrap().to_bits());
    let wa = latest_weights(&a, &key, &dir.path().join("a.cairn"));
    let wb = latest_weights(&b, &key, &dir.path().join("b.cairn"));
    assert_eq!(wa.len(), 64 * 64);
    assert!(wa == wb, "the weights differ");
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (killed, straight) = (dir.path().join("killed"), dir.path().join("straight"));
    // A bigger model, so the run lasts long enough to be killed midway.
    let size = "128";
    let reference = {
        let straight = straight.clone();
        std::thread::spawn(move || demo(&straight, 400, 25, size))
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["demo", "--steps", "400", "--every", "25", "--size", size, "--root", killed.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no two checkpoints within 60 s");
        if killed.join("index").exists() && ls(&killed).len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A little later still, so the kill lands anywhere: in a step, in a
    // save, in retention.
    std::thread::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..150)));
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let left = ls(&killed);
    assert!(left.iter().all(|e| e["kind"] == "checkpoint"), "{left:?}");

    let r = demo(&killed, 400, 25, size);
    let out = r.out();
    let from = left.iter().map(|e| e["iteration"].as_u64().unwrap()).max().unwrap();
    eprintln!("killed after the checkpoint of step {from} of 400");
    assert!(out.contains(&format!("resuming from step {from} (checkpoint entry")), "{out}");
    assert!(out.contains(": 400 steps, first loss"), "the metrics log holds every step:\n{out}");
    cairn(["store", "verify", "--root", killed.to_str().unwrap()]).expect(0);

    let reference = reference.join().unwrap();
    assert_eq!(final_loss(&r), final_loss(&reference));
    let (fk, fs) = (final_entry(&killed), final_entry(&straight));
    assert_eq!(fk["iteration"], 400);
    assert_eq!(fk["objective"].as_f64().unwrap().to_bits(), fs["objective"].as_f64().unwrap().to_bits());
}

#[test]
fn bad_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let r = cairn(["demo", "--every", "0", "--size", SIZE, "--root", root]);
    r.expect(2);
    assert!(r.stderr.contains("--every"), "{}", r.stderr);
    cairn(["demo", "--steps", "0", "--size", SIZE, "--root", root]).expect(2);
    cairn(["demo", "--root", root, "--url", "s3://bucket/x"]).expect(2);
    assert!(ls(dir.path()).is_empty());
}

/// With `--async` checkpoints are saved in the background: the same run,
/// bit for bit, as with blocking saves, and the time the loop was blocked
/// is printed against the time the saves took.
#[test]
fn async_checkpoints_give_the_same_run_and_say_what_they_cost() {
    let tmp = tempfile::tempdir().unwrap();
    let blocking = demo(&tmp.path().join("a"), 60, 10, SIZE);
    let root = tmp.path().join("b");
    let r =
        cairn(["demo", "--steps", "60", "--every", "10", "--size", SIZE, "--async", "--root", root.to_str().unwrap()]);
    r.expect(0);
    assert_eq!(final_loss(&r), final_loss(&blocking));
    let line = line_value(&r, "async saves: ");
    assert!(line.starts_with("5 checkpoints, training blocked "), "{line}");
    let checkpoints = ls(&root).into_iter().filter(|e| e["kind"] == "checkpoint").count();
    assert!(checkpoints >= 1, "the async checkpoints are not in the store");
    // And it resumes from them like any other run.
    let again = demo(&root, 80, 10, SIZE);
    assert!(again.out().contains("resum"), "{}", again.out());
}
