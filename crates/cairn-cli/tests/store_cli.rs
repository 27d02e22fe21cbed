//! `cairn store …` end to end on a store directory: put, get, ls (human and
//! JSON), pin, rm, gc, verify (exit 3 on damage), repair; and 8 processes
//! saving 100 entries each to overlapping keys, sharing frames, while a
//! collector loops, after which every entry is listed, valid and whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

mod common;

use std::path::Path;

use common::{cairn, cairn_env, noise};

/// Packs a small checkpoint of `seed`'s bytes at `path`.
fn checkpoint(dir: &Path, name: &str, seed: u64) -> String {
    let data = dir.join(format!("{name}.bin"));
    std::fs::write(&data, noise(4096, seed)).unwrap();
    let out = dir.join(format!("{name}.cairn"));
    cairn(["pack".as_ref(), out.as_os_str(), "--chunk".as_ref(), format!("x={}", data.display()).as_ref()]).expect(0);
    out.display().to_string()
}

fn store(root: &Path, args: &[&str]) -> common::Run {
    let mut all = vec!["store".to_string(), "--root".into(), root.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    cairn(all)
}

#[test]
fn put_get_ls_pin_rm_gc_verify_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let a = checkpoint(tmp.path(), "a", 1);
    let b = checkpoint(tmp.path(), "b", 2);
    let id_a = store(&root, &["put", "run/1", &a, "--objective", "0.5", "--iteration", "10", "--meta", "lr=0.1"])
        .expect(0)
        .out();
    let id_b =
        store(&root, &["put", "run/1", &b, "--objective", "0.2", "--iteration", "20", "--final"]).expect(0).out();
    let (id_a, id_b) = (id_a.trim().to_string(), id_b.trim().to_string());
    assert_ne!(id_a, id_b);

    // ls --json: the contract's fields.
    let ls = store(&root, &["ls", "--json"]).expect(0).json();
    let rows = ls.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for field in ["key", "id", "objective", "iteration", "kind", "bytes", "created_at", "pinned"] {
        assert!(rows.iter().all(|r| r.get(field).is_some()), "ls --json lacks {field}: {ls}");
    }
    let b_row = rows.iter().find(|r| r["id"] == id_b.as_str()).unwrap();
    assert_eq!(
        (b_row["key"].as_str(), b_row["kind"].as_str(), b_row["iteration"].as_u64()),
        (Some("run/1"), Some("final"), Some(20))
    );
    assert_eq!(b_row["objective"].as_f64(), Some(0.2));
    assert_eq!(b_row["bytes"].as_u64(), Some(std::fs::metadata(&b).unwrap().len()));
    let human = store(&root, &["ls", "run/1"]).expect(0).out();
    assert!(human.contains(&id_a) && human.contains("final"), "{human}");

    // get: best by default, --latest, --id; the bytes are the file saved.
    let out = tmp.path().join("out.cairn");
    store(&root, &["get", "run/1", out.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&b).unwrap());
    store(&root, &["get", "run/1", out.to_str().unwrap(), "--id", &id_a]).expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&a).unwrap());
    store(&root, &["get", "run/1", out.to_str().unwrap(), "--latest"]).expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&b).unwrap());
    store(&root, &["get", "nope", out.to_str().unwrap()]).expect(1);

    // pin, then rm of the whole key keeps the pinned entry.
    store(&root, &["pin", "run/1", &id_a]).expect(0);
    assert!(store(&root, &["ls", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id_a.as_str() && r["pinned"] == true));
    // A refused change, not a usage error: exit 1, saying why.
    let refused = store(&root, &["rm", "run/1", &id_a]);
    refused.expect(1);
    assert!(refused.stderr.contains("pinned"), "{}", refused.stderr);
    let rm = store(&root, &["rm", "run/1"]).expect(0).out();
    assert!(rm.contains(&id_b) && !rm.contains(&id_a), "{rm}");
    store(&root, &["pin", "run/1", &id_a, "--off"]).expect(0);

    // gc with flags; bad sizes are usage errors.
    let c = checkpoint(tmp.path(), "c", 3);
    for _ in 0..3 {
        store(&root, &["put", "run/2", &c]).expect(0);
    }
    let gc = store(&root, &["gc", "--keep-last", "1", "--json"]).expect(0).json();
    assert_eq!(gc["removed"].as_array().unwrap().len(), 2, "{gc}");
    assert_eq!(gc["entries"].as_u64(), Some(2));
    store(&root, &["gc", "--max-bytes", "lots"]).expect(2);
    store(&root, &["gc", "--max-bytes", "1KiB", "--ttl", "1h"]).expect(0);
    assert_eq!(store(&root, &["ls", "--json"]).json().as_array().unwrap().len(), 0);

    // verify: clean, then damaged (exit 3), then repaired.
    let d = checkpoint(tmp.path(), "d", 4);
    let id_d = store(&root, &["put", "k", &d]).expect(0).out().trim().to_string();
    let v = store(&root, &["verify", "--json"]).expect(0).json();
    assert_eq!((v["ok"].as_bool(), v["entries"].as_u64()), (Some(true), Some(1)));
    let hp = cairn::store::Key::new("k").hash_path();
    let data = root.join("entries").join(&hp).join(format!("{id_d}.data"));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&data, &bytes).unwrap();
    let v = store(&root, &["verify", "--json"]).expect(3).json();
    assert_eq!(v["corrupt"][0]["id"].as_str(), Some(id_d.as_str()));
    store(&root, &["verify"]).expect(3);
    // A lookup refuses the damaged entry, quarantines it, and warns.
    let get = store(&root, &["get", "k", out.to_str().unwrap()]);
    get.expect(1);
    assert!(get.stderr.contains("warning") && get.stderr.contains("moved"), "{}", get.stderr);
    let v = store(&root, &["verify", "--json"]).expect(0).json();
    assert_eq!(v["quarantined"][0]["id"].as_str(), Some(id_d.as_str()));
    // A lost index: on local disk, where index writes are not synced, a
    // state a crash can leave, which verify names without failing; the
    // key stays listed (its index is rebuilt from the infos), and repair
    // brings it back too.
    store(&root, &["put", "k", &d]).expect(0);
    std::fs::remove_file(root.join("index").join(&hp)).unwrap();
    let v = store(&root, &["verify", "--json"]).expect(0).json();
    assert_eq!(v["stale_indexes"][0].as_str(), Some(hp.as_str()), "{v}");
    assert_eq!(store(&root, &["ls", "--json"]).json().as_array().unwrap().len(), 1);
    std::fs::remove_file(root.join("index").join(&hp)).unwrap();
    store(&root, &["repair"]).expect(0);
    assert_eq!(store(&root, &["ls", "--json"]).json().as_array().unwrap().len(), 1);
    store(&root, &["verify"]).expect(0);
}

#[test]
fn a_damaged_truncated_or_deleted_info_fails_verify_and_repair_brings_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let a = checkpoint(tmp.path(), "a", 1);
    let hp = cairn::store::Key::new("run").hash_path();
    let mut ids = Vec::new();
    for i in 0..3 {
        let obj = format!("0.{i}");
        ids.push(store(&root, &["put", "run", &a, "--objective", &obj]).expect(0).out().trim().to_string());
    }
    // On local disk an index names its newest entries only every few saves
    // (docs/STORE.md); repair recovers an info from the index that names
    // it, so these are indexed first.
    store(&root, &["gc"]).expect(0);
    let info = |id: &str| root.join("entries").join(&hp).join(format!("{id}.info"));
    let mut bytes = std::fs::read(info(&ids[0])).unwrap();
    bytes[40] ^= 1;
    std::fs::write(info(&ids[0]), &bytes).unwrap();
    let bytes = std::fs::read(info(&ids[1])).unwrap();
    std::fs::write(info(&ids[1]), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(info(&ids[2])).unwrap();

    let run = store(&root, &["verify"]);
    run.expect(3);
    for id in &ids {
        assert!(run.out().contains(id), "{id} not named: {}", run.out());
    }
    assert!(!run.out().contains("store OK"), "{}", run.out());
    let v = store(&root, &["verify", "--json"]).expect(3).json();
    assert_eq!((v["ok"].as_bool(), v["damaged_infos"].as_array().map(Vec::len)), (Some(false), Some(3)), "{v}");

    let rep = store(&root, &["repair"]).expect(0).out();
    assert!(rep.contains("recovered 3"), "{rep}");
    let ls = store(&root, &["ls", "--json"]).expect(0).json();
    assert_eq!(ls.as_array().unwrap().len(), 3, "an entry vanished: {ls}");
    store(&root, &["verify"]).expect(0);
    let out = tmp.path().join("best.cairn");
    store(&root, &["get", "run", out.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&a).unwrap());

    // Without the whole entries folder, every entry is named.
    std::fs::remove_dir_all(root.join("entries")).unwrap();
    let v = store(&root, &["verify", "--json"]).expect(3).json();
    assert_eq!(v["missing"].as_array().map(Vec::len), Some(3), "{v}");
}

#[test]
fn commands_that_only_read_a_missing_store_exit_1_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-store");
    let out = tmp.path().join("out.cairn");
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 8] = [
        &["ls"],
        &["ls", "--json"],
        &["get", "k", out],
        &["verify"],
        &["verify", "--json"],
        &["rm", "k"],
        &["gc"],
        &["repair"],
    ];
    for args in commands {
        let run = store(&missing, args);
        run.expect(1);
        assert!(run.stderr.contains("no store at") && run.stderr.contains("no-store"), "{args:?}: {}", run.stderr);
        assert!(!missing.exists(), "{args:?} created the store");
        // The default store too.
        let run = cairn_env(["store"].iter().chain(args.iter()).copied(), b"", &[("CAIRN_HOME", missing.as_os_str())]);
        run.expect(1);
        assert!(!missing.exists(), "{args:?} created the default store");
    }
    store(&missing, &["pin", "k", "id"]).expect(1);
    assert!(!missing.exists());
    // A save creates it.
    let a = checkpoint(tmp.path(), "a", 1);
    store(&missing, &["put", "k", &a]).expect(0);
    store(&missing, &["verify"]).expect(0);
}

/// Packs a checkpoint that shares most of its frames (of 64 KiB, the
/// smallest the store shares) with every other one this makes: a frozen
/// part of four frames, the same everywhere; a head of one frame a few
/// bytes of which depend on `seed` (an XOR piece against the key's latest
/// entry); and 4 KiB of `seed`'s own (inline).
fn shared_checkpoint(dir: &Path, name: &str, seed: u64) -> String {
    let frozen = dir.join("frozen.bin");
    if !frozen.exists() {
        std::fs::write(&frozen, noise(256 << 10, 1)).unwrap();
    }
    let mut head = noise(64 << 10, 2);
    for j in 0..4 {
        head[(seed as usize * 7919 + j * 10_007) % (64 << 10)] ^= 0x5a;
    }
    let head_path = dir.join(format!("{name}.head.bin"));
    std::fs::write(&head_path, head).unwrap();
    let own = dir.join(format!("{name}.own.bin"));
    std::fs::write(&own, noise(4096, 100 + seed)).unwrap();
    let out = dir.join(format!("{name}.cairn"));
    let chunk = |n: &str, p: &Path| format!("{n}={}", p.display());
    cairn([
        "pack".to_string(),
        out.display().to_string(),
        "--frame-size".into(),
        "65536".into(),
        "--chunk".into(),
        chunk("frozen", &frozen),
        "--chunk".into(),
        chunk("head", &head_path),
        "--chunk".into(),
        chunk("own", &own),
    ])
    .expect(0);
    out.display().to_string()
}

/// Eight `cairn store put` processes save 100 checkpoints each to five
/// overlapping keys, their frames shared across saves and keys, while
/// `cairn store gc` runs in a loop (with the default orphan grace, which
/// the CLI does not change: it collects, indexes and marks frames, and
/// trashes none that young). Every entry is listed, verifies, and `cairn
/// store get` gives back the very bytes that were put.
#[test]
fn eight_processes_saving_to_overlapping_keys_lose_nothing() {
    const PROCS: usize = 8;
    const SAVES: usize = 100;
    const MAX_COLLECTIONS: usize = 500;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let files: Vec<String> = (0..4).map(|i| shared_checkpoint(tmp.path(), &format!("f{i}"), i)).collect();
    let saving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let collector = {
        let (root, saving) = (root.clone(), saving.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while saving.load(std::sync::atomic::Ordering::Relaxed) && passes < MAX_COLLECTIONS {
                // Before the first save there is no store to collect.
                if root.join("index").is_dir() {
                    store(&root, &["gc", "--json"]).expect(0);
                    passes += 1;
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            passes
        })
    };
    let workers: Vec<_> = (0..PROCS)
        .map(|p| {
            let root = root.clone();
            let files = files.clone();
            std::thread::spawn(move || {
                (0..SAVES)
                    .map(|i| {
                        let key = format!("key-{}", (p + i) % 5);
                        let run = store(&root, &["put", &key, &files[i % 4], "--iteration", &i.to_string()]);
                        run.expect(0);
                        (run.out().trim().to_string(), i % 4)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut saved: Vec<(String, usize)> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    saving.store(false, std::sync::atomic::Ordering::Relaxed);
    let passes = collector.join().unwrap();
    assert!(passes > 0, "no collection ran while saving");
    saved.sort();
    let ls = store(&root, &["ls", "--json"]).expect(0).json();
    let rows = ls.as_array().unwrap();
    let mut listed: Vec<String> = rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    listed.sort();
    assert_eq!(listed.len(), PROCS * SAVES);
    assert_eq!(listed, saved.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
    let v = store(&root, &["verify", "--json"]).expect(0).json();
    assert_eq!(v["entries"].as_u64(), Some((PROCS * SAVES) as u64));
    assert_eq!(v["unindexed"].as_array().unwrap().len(), 0);
    // Sharing happened: the store holds frame objects, and its saves
    // added a fraction of what they put.
    let logical: u64 = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    let added: u64 = rows.iter().map(|r| r["added_bytes"].as_u64().unwrap()).sum();
    eprintln!("{passes} collections while saving; saves added {added} bytes of {logical}");
    assert!(added < logical / 10, "saves added {added} bytes of {logical}");
    assert!(std::fs::read_dir(root.join("frames")).unwrap().count() > 0, "no frame objects");
    // Every entry gives back the bytes that were put (four at a time).
    let keys: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["key"].as_str().unwrap().to_string())).collect();
    let saved = std::sync::Arc::new(saved);
    let keys = std::sync::Arc::new(keys);
    let getters: Vec<_> = (0..4)
        .map(|g| {
            let (root, files, saved, keys) = (root.clone(), files.clone(), saved.clone(), keys.clone());
            let out = tmp.path().join(format!("got{g}.cairn"));
            std::thread::spawn(move || {
                let want: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
                for (id, file) in saved.iter().skip(g).step_by(4) {
                    store(&root, &["get", &keys[id], out.to_str().unwrap(), "--id", id]).expect(0);
                    assert!(std::fs::read(&out).unwrap() == want[*file], "{id}: the bytes differ from what was put");
                }
            })
        })
        .collect();
    for g in getters {
        g.join().unwrap();
    }
}

#[test]
fn store_commands_and_demo_on_s3() {
    let Some(url) = common::s3_prefix("store") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let a = checkpoint(tmp.path(), "a", 1);
    let b = checkpoint(tmp.path(), "b", 2);
    let s3 = |args: &[&str]| {
        let mut all = vec!["store".to_string(), "--url".into(), url.clone()];
        all.extend(args.iter().map(|s| s.to_string()));
        cairn(all)
    };
    s3(&["put", "k", &a, "--objective", "2"]).expect(0);
    let id_b = s3(&["put", "k", &b, "--objective", "1"]).expect(0).out().trim().to_string();
    assert_eq!(s3(&["ls", "--json"]).expect(0).json().as_array().unwrap().len(), 2);
    let out = tmp.path().join("best.cairn");
    s3(&["get", "k", out.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&b).unwrap());
    s3(&["verify"]).expect(0);
    let gc = s3(&["gc", "--keep-last", "1", "--json"]).expect(0).json();
    assert_eq!(gc["entries"].as_u64(), Some(1));
    assert_eq!(s3(&["ls", "--json"]).json()[0]["id"].as_str(), Some(id_b.as_str()));
    s3(&["rm", "k"]).expect(0);
    // The demo on object storage: its metrics log goes to the (here
    // temporary) user cache directory, its checkpoints to the bucket.
    let cache = tmp.path().join("cache");
    let env: [(&str, &std::ffi::OsStr); 1] = [("XDG_CACHE_HOME", cache.as_os_str())];
    let demo = url.clone() + "/demo";
    let args = ["demo", "--url", demo.as_str(), "--steps", "20", "--every", "10", "--size", "32"];
    let first = cairn_env(args, b"", &env);
    first.expect(0);
    assert!(first.out().contains("starting fresh"), "{}", first.out());
    let again = cairn_env(args, b"", &env);
    again.expect(0);
    assert!(again.out().contains("run complete"), "{}", again.out());
    assert!(cache.join("cairn-demo-metrics").is_dir());
    let v = cairn(["store", "--url", demo.as_str(), "verify", "--json"]).expect(0).json();
    assert_eq!(v["entries"].as_u64(), Some(2), "{v}");
}
