//! Process-kill tests of the store, its frames shared (docs/STORE.md, "Shared frames").
//!
//! `cairn store put` and `cairn store gc` children run at once on one store
//! directory and are killed with SIGKILL at random moments, round after
//! round. After every kill the store must verify clean (leftovers of
//! unfinished saves are not damage); at the end one collection clears
//! every leftover, every listed entry reads back as the file put, and
//! every acknowledged save that retention did not remove is there.
//!
//! The CLI keeps the default orphan grace (an hour), so its collections
//! trash no frame this young. The second test kills children of this
//! test binary that save and collect through the library under a zero
//! grace: collections trash, delete and put back frames while saves want
//! them, and are killed in the middle of that.
//!
//! `CAIRN_KILL_ROUNDS` sets the rounds (default 40 and 30),
//! `CAIRN_KILL_SEED` the seed of the kill delays (printed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

#[path = "../../cairn/tests/shared/values.rs"]
mod values;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use values::values;

use cairn::store::{GcOptions, Key, Retention, SaveInfo, Select, Store, StoreOptions};
use cairn::WriterOptions;
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

fn rounds(default: usize) -> usize {
    std::env::var("CAIRN_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn seed() -> u64 {
    let seed = std::env::var("CAIRN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("CAIRN_KILL_SEED={seed}");
    seed
}

/// Packs the checkpoints the CLI test puts, in frames of 1 MiB: two
/// frames every one holds, and a head of one frame, for half of them the
/// same with a few bytes changed (an XOR piece against the key's latest
/// entry, where that holds one of those), for the others their own.
fn variants(dir: &Path) -> Vec<String> {
    let frozen = dir.join("frozen.bin");
    std::fs::write(&frozen, noise(2 << 20, 7)).unwrap();
    (0..6u64)
        .map(|v| {
            let mut head = noise(1 << 20, if v < 3 { 8 } else { 20 + v });
            if v < 3 {
                for j in 0..3 {
                    head[(v as usize * 7919 + j * 300_007) % (1 << 20)] ^= 0x5a;
                }
            }
            let head_path = dir.join(format!("head{v}.bin"));
            std::fs::write(&head_path, head).unwrap();
            let out = dir.join(format!("x{v}.cairn"));
            cairn([
                "pack".to_string(),
                out.display().to_string(),
                "--chunk".into(),
                format!("frozen={}", frozen.display()),
                "--chunk".into(),
                format!("head={}", head_path.display()),
            ])
            .expect(0);
            out.display().to_string()
        })
        .collect()
}

#[test]
fn sigkill_during_saves_and_gc_leaves_a_store_that_verifies_clean() {
    let rounds = rounds(DEFAULT_ROUNDS);
    let mut rng = StdRng::seed_from_u64(seed());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    // A few MB, so that a save takes long enough to be killed inside.
    let files = variants(tmp.path());

    let started = Instant::now();
    let mut acked: Vec<(String, String)> = Vec::new();
    // The file each round put, by its iteration.
    let mut round_file: Vec<usize> = Vec::new();
    let mut done = 0;
    for round in 0..rounds {
        if started.elapsed() > BUDGET && round >= 10 {
            break;
        }
        let key = format!("k{}", round % 3);
        let file = rng.gen_range(0..files.len());
        round_file.push(file);
        let put = spawn(&root, &["put", &key, &files[file], "--iteration", &round.to_string()]);
        let gc = spawn(&root, &["gc", "--keep-last", "2"]);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=100)));
        if let Some(id) = kill_or_collect(put) {
            acked.push((key, id));
        }
        kill_or_collect(gc);
        // A put killed before it made the store leaves none to verify.
        if root.exists() {
            cairn(["store", "--root", root.to_str().unwrap(), "verify", "--json"]).expect(0);
        }
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
    let rows = ls.as_array().unwrap();
    let listed: Vec<(String, String)> =
        rows.iter().map(|r| (r["key"].as_str().unwrap().to_string(), r["id"].as_str().unwrap().to_string())).collect();
    for r in rows {
        let (key, id) = (r["key"].as_str().unwrap(), r["id"].as_str().unwrap());
        let file = &files[round_file[r["iteration"].as_u64().unwrap() as usize]];
        let out = tmp.path().join("got.cairn");
        cairn(["store", "--root", root.to_str().unwrap(), "get", key, out.to_str().unwrap(), "--id", id]).expect(0);
        assert!(std::fs::read(&out).unwrap() == std::fs::read(file).unwrap(), "{id}: not the bytes put");
    }
    // The frozen frames are stored once, shared by every entry.
    let logical: u64 = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    let added: u64 = rows.iter().map(|r| r["added_bytes"].as_u64().unwrap()).sum();
    assert!(rows.len() < 2 || added < logical * 3 / 4, "entries added {added} bytes of {logical}");
    assert!(std::fs::read_dir(root.join("frames")).unwrap().count() > 0, "no frame objects");
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

/// Frames of 64 KiB, the smallest the store shares.
const FRAME: u32 = 64 << 10;
const PER_FRAME: usize = FRAME as usize / 4;
/// Which part a child of [`shared_kill_child`] plays, and where.
const CHILD_ENV: &str = "CAIRN_KILL_CHILD";
const ROOT_ENV: &str = "CAIRN_KILL_ROOT";
/// Where a child appends what it did, a line per save or collection.
const LOG_ENV: &str = "CAIRN_KILL_LOG";
/// The first step a saving child saves.
const BASE_ENV: &str = "CAIRN_KILL_BASE";
const KEYS: usize = 3;

/// The store as every process of the second test opens it: no orphan
/// grace, so that collections trash and delete frames at once (a dead
/// child's lease is stale at once too: its pid is gone).
fn open_zero_grace(root: &Path) -> Store {
    Store::open_url(root.to_str().unwrap(), StoreOptions::default().orphan_grace(Duration::ZERO)).unwrap()
}

/// The tensors of `step`: eight frames every step holds; a head of one
/// frame a few values of which depend on the step (an XOR piece against
/// the key's latest entry); one frame that cycles through three contents
/// per key (a frame retention left unreferenced is wanted again later);
/// and a small tensor of its own.
fn tensors(step: u64) -> Vec<(&'static str, Vec<f32>)> {
    let key = step as usize % KEYS;
    let mut head = values(100 + key as u32, PER_FRAME);
    for j in 0..4 {
        head[(step as usize * 7919 + j * 104_729) % PER_FRAME] += step as f32 + 1.0;
    }
    vec![
        ("frozen", values(1, 8 * PER_FRAME)),
        ("head", head),
        ("cycle", values(200 + 10 * key as u32 + (step % 3) as u32, PER_FRAME)),
        ("own", vec![step as f32; 16]),
    ]
}

fn key_of(step: u64) -> Key {
    Key::new(&format!("k{}", step as usize % KEYS))
}

/// Every sixteenth step is pinned: retention never removes it, so each
/// of those acknowledged must be there at the end.
fn pinned(step: u64) -> bool {
    step.is_multiple_of(16)
}

/// Appends one line to the log at `path` in one write, so a kill leaves
/// whole lines only.
fn log_line(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The child side of
/// `sigkill_during_shared_saves_and_frame_collections_loses_no_acknowledged_entry`:
/// saves steps from its base on (logging `id step` once each returns), or
/// collects with retention (logging what each pass did to frames), until
/// killed or a deadline passes. Does nothing in a normal run.
#[test]
#[ignore = "run as a child process by sigkill_during_shared_saves_and_frame_collections_loses_no_acknowledged_entry"]
fn shared_kill_child() {
    let Ok(part) = std::env::var(CHILD_ENV) else { return };
    let root = std::path::PathBuf::from(std::env::var(ROOT_ENV).unwrap());
    let log = std::path::PathBuf::from(std::env::var(LOG_ENV).unwrap());
    let store = open_zero_grace(&root);
    let deadline = Instant::now() + Duration::from_secs(30);
    if part == "save" {
        let base: u64 = std::env::var(BASE_ENV).unwrap().parse().unwrap();
        for step in base.. {
            if Instant::now() > deadline {
                break;
            }
            let info = SaveInfo::checkpoint().iteration(step).pinned(pinned(step));
            let t = tensors(step);
            let e = store
                .save_with(&key_of(step), info, WriterOptions::default().frame_size(FRAME), |w| {
                    for (name, v) in &t {
                        w.add_tensor(name, &[v.len() as u64], v)?;
                    }
                    Ok(())
                })
                .unwrap();
            log_line(&log, &format!("{} {step}", e.id));
            // Paced, so that a release build does not fill the store with
            // pinned entries faster than collections can read them.
            std::thread::sleep(Duration::from_millis(10));
        }
    } else {
        let opts = GcOptions::default().retention(Retention::default().keep_last(2));
        while Instant::now() < deadline {
            let r = store.gc(&opts).unwrap();
            log_line(&log, &format!("{} {} {}", r.frames_trashed, r.frames_deleted, r.frames_restored));
        }
    }
}

fn spawn_child(part: &str, root: &Path, log: &Path, base: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shared_kill_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, part)
        .env(ROOT_ENV, root)
        .env(LOG_ENV, log)
        .env(BASE_ENV, base.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills `child`; its stderr, if it failed on its own (a panic: the
/// store refused something it should have taken).
fn kill(mut child: Child) -> Option<String> {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9);
    (!killed && !out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Whether entry `id` holds the tensors of `step`.
fn check_entry(store: &Store, id: &str, step: u64) {
    let found = store.lookup(&key_of(step), &Select::Id(id.to_string())).unwrap();
    let found = found.unwrap_or_else(|| panic!("acknowledged {id} (step {step}) is gone"));
    for (name, v) in tensors(step) {
        assert!(found.checkpoint.read_tensor::<f32>(name).unwrap() == v, "{id} (step {step}): {name} differs");
    }
}

/// Two saving children and a collecting one (retention: each key's two
/// newest, besides pinned entries) on one store under a zero orphan grace,
/// all killed with SIGKILL at a random moment, round after round. After
/// every round the store verifies clean; at the end two collections clear
/// every leftover (the trash too), every acknowledged pinned entry and
/// every listed entry reads whole, and each key's newest acknowledged
/// entry is there unless two newer ones pushed it out.
#[test]
fn sigkill_during_shared_saves_and_frame_collections_loses_no_acknowledged_entry() {
    let rounds = rounds(30);
    let mut rng = StdRng::seed_from_u64(seed());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    let started = Instant::now();
    let mut acked: Vec<(String, u64)> = Vec::new();
    let (mut trashed, mut deleted, mut restored, mut passes) = (0, 0, 0, 0);
    let mut done = 0;
    for round in 0..rounds as u64 {
        if started.elapsed() > BUDGET && round >= 10 {
            break;
        }
        let logs: Vec<_> = (0..3).map(|c| tmp.path().join(format!("log-{round}-{c}"))).collect();
        let children = [
            spawn_child("save", &root, &logs[0], round * 1000),
            spawn_child("save", &root, &logs[1], round * 1000 + 500),
            spawn_child("gc", &root, &logs[2], 0),
        ];
        // Long enough for a few saves and passes, from start-up on.
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..=400)));
        for c in children {
            if let Some(err) = kill(c) {
                panic!("round {round}: a child failed: {err}");
            }
        }
        for log in &logs[..2] {
            for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
                let (id, step) = line.split_once(' ').unwrap();
                acked.push((id.to_string(), step.parse().unwrap()));
            }
        }
        for line in std::fs::read_to_string(&logs[2]).unwrap_or_default().lines() {
            let n: Vec<usize> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            (trashed, deleted, restored, passes) = (trashed + n[0], deleted + n[1], restored + n[2], passes + 1);
        }
        let report = open_zero_grace(&root).verify().unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
        done += 1;
    }
    eprintln!(
        "{done} rounds: {} saves acknowledged; {passes} collections trashed {trashed} frames, deleted \
         {deleted}, put back {restored}",
        acked.len()
    );
    assert!(done >= 10 && acked.len() >= 10, "too little happened");
    assert!(trashed > 0, "no collection trashed a frame");

    let store = Arc::new(open_zero_grace(&root));
    store.gc(&GcOptions::default()).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean() && report.orphans == 0 && report.unindexed.is_empty(), "{report:?}");
    assert!(!root.join("trash/frames").exists() || walk(&root.join("trash")) == 0, "the trash was not emptied");
    let listed: HashMap<String, u64> = store
        .list()
        .unwrap()
        .into_iter()
        .flat_map(|(_, v)| v.into_iter().map(|e| (e.id, e.iteration.unwrap())))
        .collect();
    for (id, step) in &listed {
        check_entry(&store, id, *step);
    }
    for (id, step) in &acked {
        if pinned(*step) {
            assert!(listed.contains_key(id), "acknowledged pinned {id} (step {step}) is gone");
        }
    }
    for k in 0..KEYS as u64 {
        let of_key = |s: u64| s % KEYS as u64 == k && !pinned(s);
        if let Some((newest, _)) = acked.iter().filter(|(_, s)| of_key(*s)).max() {
            let newer = listed.iter().filter(|(id, s)| of_key(**s) && *id > newest).count();
            assert!(newer >= 2 || listed.contains_key(newest), "acknowledged {newest} of k{k} is gone");
        }
    }
    // Sharing happened: the eight frozen frames are stored once.
    let logical: u64 = store.list().unwrap().iter().flat_map(|(_, v)| v.iter().map(|e| e.bytes)).sum();
    let frames = walk(&root.join("frames"));
    assert!(frames >= 8 && frames * u64::from(FRAME) < logical, "{frames} frame objects for {logical} bytes");
}

/// Files below `dir`.
fn walk(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.map(|e| {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(&e.path())
        } else {
            1
        }
    })
    .sum()
}
