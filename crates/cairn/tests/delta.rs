//! Delta files: a checkpoint written against a base stores unchanged frames
//! as references and slightly changed ones as XORs, reads back exactly with
//! its base, refuses to read without it (naming it) or with another one,
//! and reports a damaged base frame as corruption.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use cairn::{Checkpoint, CheckpointWriter, ChunkSpec, Compression, Error, WriterOptions};

const FRAME: u32 = 64 << 10;

fn opts() -> WriterOptions {
    WriterOptions::default().frame_size(FRAME)
}

/// Pseudo-random f32 weights (a tiny LCG: no dependency on a generator).
fn weights(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

struct State {
    frozen: Vec<f32>,
    embedding: Vec<f32>,
    head: Vec<f32>,
    notes: Vec<u8>,
}

const N: usize = 256 << 10; // 1 MiB of f32 per tensor: 16 frames

fn base_state() -> State {
    State { frozen: weights(N, 1), embedding: weights(N, 2), head: weights(N, 3), notes: vec![7; 200_000] }
}

/// The next state: `frozen` and `notes` unchanged, a few rows of
/// `embedding` changed (rows of 128 f32), `head` changed throughout.
fn next_state(s: &State) -> State {
    let mut embedding = s.embedding.clone();
    for row in [5usize, 900, 1501] {
        for v in &mut embedding[row * 128..row * 128 + 128] {
            *v += 1.0;
        }
    }
    State { frozen: s.frozen.clone(), embedding, head: weights(N, 4), notes: s.notes.clone() }
}

fn write(path: &Path, s: &State, base: Option<Arc<Checkpoint>>, extra: bool) {
    let mut w = CheckpointWriter::create(path, opts()).unwrap();
    if let Some(b) = base {
        w.set_base(b).unwrap();
    }
    w.add_tensor("frozen", &[N as u64], &s.frozen).unwrap();
    w.add_tensor("embedding", &[(N / 128) as u64, 128], &s.embedding).unwrap();
    w.add_tensor("head", &[N as u64], &s.head).unwrap();
    let lz4 = ChunkSpec::bytes().compression(Compression::Lz4);
    w.add_chunk("notes", &lz4, &s.notes).unwrap();
    if extra {
        w.add_bytes("new", b"a chunk the base does not have").unwrap();
    }
    w.set_step(2);
    w.finish().unwrap();
}

fn check(ck: &Checkpoint, s: &State) {
    assert_eq!(ck.read_tensor::<f32>("frozen").unwrap(), s.frozen);
    assert_eq!(ck.read_tensor::<f32>("embedding").unwrap(), s.embedding);
    assert_eq!(ck.read_tensor::<f32>("head").unwrap(), s.head);
    assert_eq!(ck.read("notes").unwrap(), s.notes);
}

#[test]
fn a_delta_file_holds_only_what_changed_and_reads_back_with_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let (base_path, delta_path, full_path) =
        (dir.path().join("base.cairn"), dir.path().join("delta.cairn"), dir.path().join("full.cairn"));
    let s0 = base_state();
    let s1 = next_state(&s0);
    write(&base_path, &s0, None, false);
    let base = Arc::new(Checkpoint::open(&base_path).unwrap());
    write(&delta_path, &s1, Some(base.clone()), true);
    write(&full_path, &s1, None, true);

    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    // `head` changed throughout and is stored whole; everything else costs
    // references and three rows.
    let head_bytes = (N * 4) as u64;
    let (delta, full) = (size(&delta_path), size(&full_path));
    assert!(delta < head_bytes + 64 * 1024, "delta file {delta} bytes, full {full}");
    assert!(full > 3 * head_bytes);

    // Without its base: the chunks are listed, the base is named, and a
    // frame that needs the base says so.
    let alone = Checkpoint::open(&delta_path).unwrap();
    assert_eq!(alone.base_digest(), Some(base.digest()));
    assert_eq!(alone.chunks().len(), 5);
    assert_eq!(alone.read_tensor::<f32>("head").unwrap(), s1.head, "a whole frame needs no base");
    match alone.read_tensor::<f32>("frozen") {
        Err(Error::BaseNeeded { digest, .. }) => {
            assert_eq!(digest, blake3::Hash::from(base.digest()).to_hex().to_string())
        }
        other => panic!("expected BaseNeeded, got {other:?}"),
    }
    assert!(alone.tensor::<f32>("frozen").is_err(), "a delta chunk is not viewable in place");
    assert!(matches!(alone.verify(), Err(Error::BaseNeeded { .. })), "verify cannot check frames it cannot read");

    let ck = Checkpoint::open_with_base(&delta_path, base.clone()).unwrap();
    check(&ck, &s1);
    assert_eq!(ck.read("new").unwrap(), b"a chunk the base does not have");
    let report = ck.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Same content as the full file: the same file digest.
    assert_eq!(ck.digest(), Checkpoint::open(&full_path).unwrap().digest());
    let mut streamed = Vec::new();
    ck.read_to("embedding", &mut streamed).unwrap();
    assert_eq!(streamed, bytemuck::cast_slice::<f32, u8>(&s1.embedding));
}

#[test]
fn a_file_with_nothing_in_common_with_its_base_is_a_full_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s0 = base_state();
    let other = State { frozen: weights(N, 9), embedding: weights(N, 10), head: weights(N, 11), notes: vec![1; 10] };
    write(&dir.path().join("base.cairn"), &s0, None, false);
    let base = Arc::new(Checkpoint::open(dir.path().join("base.cairn")).unwrap());
    write(&dir.path().join("d.cairn"), &other, Some(base), false);
    let ck = Checkpoint::open(dir.path().join("d.cairn")).unwrap();
    assert_eq!(ck.base_digest(), None);
    check(&ck, &other);
}

#[test]
fn another_base_is_refused_and_a_damaged_base_frame_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (b, d) = (dir.path().join("base.cairn"), dir.path().join("delta.cairn"));
    let s0 = base_state();
    write(&b, &s0, None, false);
    write(&d, &next_state(&s0), Some(Arc::new(Checkpoint::open(&b).unwrap())), false);

    // Other content under the same names.
    let other_path = dir.path().join("other.cairn");
    write(&other_path, &next_state(&next_state(&s0)), None, false);
    let other = Arc::new(Checkpoint::open(&other_path).unwrap());
    let err = Checkpoint::open_with_base(&d, other).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    // The same content in other frames (compressed) is another base too.
    let recompressed = dir.path().join("recompressed.cairn");
    let mut w = CheckpointWriter::create(&recompressed, opts().compression(Compression::Zstd(1))).unwrap();
    w.add_tensor("frozen", &[N as u64], &s0.frozen).unwrap();
    w.add_tensor("embedding", &[(N / 128) as u64, 128], &s0.embedding).unwrap();
    w.add_tensor("head", &[N as u64], &s0.head).unwrap();
    w.add_chunk("notes", &ChunkSpec::bytes().compression(Compression::Lz4), &s0.notes).unwrap();
    w.finish().unwrap();
    let err = Checkpoint::open_with_base(&d, Arc::new(Checkpoint::open(&recompressed).unwrap())).unwrap_err();
    assert!(err.is_corruption(), "{err}");

    // A delta file is no base, nor is a file of another frame size.
    let delta = Arc::new(Checkpoint::open(&d).unwrap());
    let mut w = CheckpointWriter::in_memory(opts()).unwrap();
    assert!(matches!(w.set_base(delta), Err(Error::InvalidArgument(_))));
    let mut w = CheckpointWriter::in_memory(WriterOptions::default().frame_size(FRAME * 2)).unwrap();
    assert!(matches!(w.set_base(Arc::new(Checkpoint::open(&b).unwrap())), Err(Error::InvalidArgument(_))));

    // One flipped byte in the base's first frame of `frozen`, which the
    // delta file refers to: reading it is corruption, and verify says so.
    let base_ck = Checkpoint::open(&b).unwrap();
    let at = base_ck.chunk("frozen").unwrap().data_offset + 100;
    drop(base_ck);
    let mut bytes = std::fs::read(&b).unwrap();
    bytes[at as usize] ^= 0x40;
    std::fs::write(&b, &bytes).unwrap();
    let ck = Checkpoint::open_with_base(&d, Arc::new(Checkpoint::open(&b).unwrap())).unwrap();
    let err = ck.read_tensor::<f32>("frozen").unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(ck.read_tensor::<f32>("embedding").is_ok(), "other chunks still read");
    let report = ck.verify().unwrap();
    let named = report.problems.iter().any(|p| p.chunk.as_deref() == Some("frozen") && p.detail.contains("base"));
    assert!(named, "{:?}", report.problems);
}

/// Every single flipped byte of a small delta file, read with its base, is
/// refused as corruption or changes nothing that is read; nothing panics.
#[test]
fn every_flipped_byte_of_a_delta_file_is_detected_or_harmless() {
    let small = WriterOptions::default().frame_size(4096);
    let base_content: Vec<u8> = (0..3 * 4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut w = CheckpointWriter::in_memory(small.clone()).unwrap();
    w.add_bytes("a", &base_content).unwrap();
    w.add_bytes("b", &base_content[..5000]).unwrap();
    let base = Arc::new(Checkpoint::from_bytes(w.finish().unwrap()).unwrap());
    let mut changed = base_content.clone();
    changed[4096 + 17] ^= 1; // frame 1 of `a`: an XOR
    let mut w = CheckpointWriter::in_memory(small).unwrap();
    w.set_base(base.clone()).unwrap();
    w.add_bytes("a", &changed).unwrap();
    w.add_bytes("b", &base_content[..5000]).unwrap();
    let file = w.finish().unwrap();
    let want = [("a", changed.clone()), ("b", base_content[..5000].to_vec())];
    assert!(file.len() < 4096 + 1024, "the delta file holds one whole frame: {} bytes", file.len());
    let mut detected = 0;
    for at in 0..file.len() {
        let mut bad = file.clone();
        bad[at] ^= 0x10;
        let opened = Checkpoint::from_bytes(bad).and_then(|ck| ck.with_base(base.clone()));
        let ck = match opened {
            Ok(ck) => ck,
            Err(e) => {
                assert!(e.is_corruption() || matches!(e, Error::Unsupported { .. }), "byte {at}: {e}");
                detected += 1;
                continue;
            }
        };
        for (name, content) in &want {
            match ck.read(name) {
                Ok(got) => assert_eq!(&got, content, "byte {at}: {name} reads wrong"),
                Err(e) => {
                    assert!(e.is_corruption(), "byte {at}: {name}: {e}");
                    detected += 1;
                }
            }
        }
    }
    assert!(detected > file.len() / 2, "{detected} of {} flips detected", file.len());
}

/// `Checkpointable`'s incremental save: by default a full save into a
/// writer set against the base, so frozen state costs references.
#[test]
fn checkpointable_types_save_incrementally() {
    use cairn::{Checkpointable, Result, Sink};
    #[derive(Debug, PartialEq)]
    struct Model {
        frozen: Vec<f32>,
        head: Vec<f32>,
        step: u64,
    }
    impl Checkpointable for Model {
        fn save<S: Sink>(&self, w: &mut CheckpointWriter<S>) -> Result<()> {
            w.add_tensor("frozen", &[self.frozen.len() as u64], &self.frozen)?;
            w.add_tensor("head", &[self.head.len() as u64], &self.head)?;
            w.add_serde("step", &self.step)
        }
        fn restore(c: &Checkpoint) -> Result<Self> {
            Ok(Model { frozen: c.read_tensor("frozen")?, head: c.read_tensor("head")?, step: c.read_serde("step")? })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (b, d) = (dir.path().join("b.cairn"), dir.path().join("d.cairn"));
    let m0 = Model { frozen: weights(N, 1), head: weights(1000, 2), step: 1 };
    cairn::save(&b, &m0, WriterOptions::default()).unwrap();
    let m1 = Model { frozen: m0.frozen.clone(), head: weights(1000, 3), step: 2 };
    let base = Arc::new(Checkpoint::open(&b).unwrap());
    cairn::save_incremental(&d, &m1, base.clone(), WriterOptions::default()).unwrap();
    assert!(std::fs::metadata(&d).unwrap().len() < 16 << 10, "the frozen megabyte costs references");
    assert_eq!(cairn::load_with_base::<Model>(&d, base).unwrap(), m1);
    assert!(matches!(cairn::load::<Model>(&d), Err(Error::BaseNeeded { .. })));
}
