//! Fuzzes the anomalyzer importer: the input, split at its first byte, is a
//! snapshot and a log written to a directory of this process's own (under
//! `target/` of the directory the fuzzer runs in); the
//! import must fail with an error or write a checkpoint that reads back,
//! never panic or allocate beyond the files' sizes.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from("target").join(format!("cairn-fuzz-anomalyzer-{}", std::process::id()));
        std::fs::create_dir_all(d.join("state")).expect("fuzz state directory");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (usize::from(split) * rest.len() / 255).min(rest.len());
    let (snap, wal) = rest.split_at(at);
    let state = dir().join("state");
    std::fs::write(state.join(cairn::import::SNAPSHOT_FILE), snap).expect("write snapshot");
    std::fs::write(state.join(cairn::import::LOG_FILE), wal).expect("write log");
    let out = dir().join("out.cairn");
    if cairn::import::from_anomalyzer(&state, &out, cairn::WriterOptions::default()).is_ok() {
        let bytes = std::fs::read(&out).expect("read the import");
        cairn_fuzz::exercise(bytes);
    }
});
