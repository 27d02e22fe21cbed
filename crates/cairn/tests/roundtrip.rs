//! Round trips through files and memory, over random chunk sets, sizes,
//! codecs and shuffle.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use cairn::{Checkpoint, CheckpointWriter, ChunkSpec, Compression, DType, ReadOptions, WriterOptions};
use proptest::prelude::*;

const FRAME: u32 = 4096;

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        (-3i32..6).prop_map(Compression::Zstd),
        Just(Compression::Auto)
    ]
}

/// Content that is sometimes compressible, sometimes not.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3 * FRAME as usize + 7),
        (0usize..3 * FRAME as usize + 7).prop_map(|n| (0..n).map(|i| (i / 7 % 5) as u8).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_chunk_sets_round_trip(
        chunks in proptest::collection::vec((content(), compression(), any::<bool>()), 0..6),
        writer_comp in compression(),
        shuffle in any::<bool>(),
    ) {
        let mut w = CheckpointWriter::in_memory(
            WriterOptions::default().frame_size(FRAME).compression(writer_comp).shuffle(shuffle),
        ).unwrap();
        for (i, (data, comp, typed)) in chunks.iter().enumerate() {
            let name = format!("chunk/{i}");
            let spec = if *typed && data.len() % 4 == 0 {
                ChunkSpec::tensor(DType::F32, &[(data.len() / 4) as u64])
            } else {
                ChunkSpec::bytes()
            };
            let spec = spec.compression(*comp);
            if i % 2 == 0 {
                w.add_chunk(&name, &spec, data).unwrap();
            } else {
                w.add_reader(&name, &spec, &data[..]).unwrap();
            }
        }
        let bytes = w.finish().unwrap();
        let ck = Checkpoint::from_bytes(bytes).unwrap();
        prop_assert!(ck.verify().unwrap().is_ok());
        prop_assert_eq!(ck.chunks().len(), chunks.len());
        for (i, (data, _, _)) in chunks.iter().enumerate() {
            let name = format!("chunk/{i}");
            prop_assert_eq!(&ck.read(&name).unwrap(), data);
            prop_assert_eq!(ck.chunk(&name).unwrap().digest, *blake3::hash(data).as_bytes());
            let mut streamed = Vec::new();
            ck.read_to(&name, &mut streamed).unwrap();
            prop_assert_eq!(&streamed, data);
        }
    }
}

#[test]
fn file_round_trip_with_metadata_and_zero_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.cairn");
    let weights: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.5).collect();
    let mut w = CheckpointWriter::create(&path, WriterOptions::default().frame_size(FRAME)).unwrap();
    w.set_step(42);
    w.set_metadata("loss", serde_json::json!(0.125));
    w.add_bytes("odd", b"abc").unwrap();
    w.add_tensor("w", &[100, 100], &weights).unwrap();
    w.add_serde("state", &(7u32, "x".to_string())).unwrap();
    w.add_json("cfg", &serde_json::json!({"lr": 0.1})).unwrap();
    w.finish().unwrap();

    for mmap in [true, false] {
        let ck = Checkpoint::open_with(&path, &ReadOptions::default().mmap(mmap)).unwrap();
        assert_eq!(ck.step(), Some(42));
        assert_eq!(ck.metadata()["loss"], serde_json::json!(0.125));
        assert!(ck.producer().starts_with("cairn "));
        assert_eq!(ck.read_tensor::<f32>("w").unwrap(), weights);
        assert_eq!(ck.read_serde::<(u32, String)>("state").unwrap(), (7, "x".to_string()));
        assert_eq!(ck.read_json::<serde_json::Value>("cfg").unwrap()["lr"], 0.1);
        if mmap {
            let view = ck.tensor::<f32>("w").unwrap();
            assert_eq!(view, &weights[..]);
            assert_eq!(view.as_ptr() as usize % 64, 0);
        } else {
            assert!(matches!(ck.tensor::<f32>("w"), Err(cairn::Error::Mismatch { .. })));
        }
        assert!(matches!(ck.tensor::<f64>("w"), Err(cairn::Error::Mismatch { .. })));
        assert!(matches!(ck.read("missing"), Err(cairn::Error::ChunkNotFound { .. })));
        let report = ck.verify().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.chunks, 4);
        let stats = ck.stats();
        assert!(stats.bytes_read > 0 && stats.bytes_decompressed > 0);
    }
    // Only the published file is left: no temp files.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn digest_is_independent_of_codec_and_frame_size() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let mut digests = Vec::new();
    for (comp, frame) in [(Compression::None, 4096), (Compression::Zstd(3), 8192), (Compression::Lz4, 65536)] {
        let mut w = CheckpointWriter::in_memory(WriterOptions::default().compression(comp).frame_size(frame)).unwrap();
        w.add_bytes("x", &data).unwrap();
        let ck = Checkpoint::from_bytes(w.finish().unwrap()).unwrap();
        digests.push(ck.digest());
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn compressed_tensors_shrink_and_shuffle_helps() {
    let values: Vec<f32> = (0..200_000).map(|i| ((i as f32) * 0.001).sin()).collect();
    let mut sizes = Vec::new();
    for shuffle in [false, true] {
        let mut w =
            CheckpointWriter::in_memory(WriterOptions::default().compression(Compression::Zstd(3)).shuffle(shuffle))
                .unwrap();
        w.add_tensor("t", &[values.len() as u64], &values).unwrap();
        let ck = Checkpoint::from_bytes(w.finish().unwrap()).unwrap();
        assert_eq!(ck.chunk("t").unwrap().shuffle, shuffle);
        assert_eq!(ck.read_tensor::<f32>("t").unwrap(), values);
        sizes.push(ck.chunk("t").unwrap().stored_len);
    }
    assert!(sizes[1] < sizes[0], "shuffle should help: {sizes:?}");
}

#[test]
fn bad_arguments_are_refused() {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    w.add_bytes("a", b"1").unwrap();
    assert!(matches!(w.add_bytes("a", b"2"), Err(cairn::Error::InvalidArgument(_))));
    assert!(matches!(w.add_bytes("", b"2"), Err(cairn::Error::InvalidArgument(_))));
    assert!(matches!(
        w.add_chunk("t", &ChunkSpec::tensor(DType::F32, &[3]), &[0u8; 8]),
        Err(cairn::Error::InvalidArgument(_))
    ));
    assert!(matches!(
        CheckpointWriter::in_memory(WriterOptions::default().frame_size(1000)),
        Err(cairn::Error::InvalidArgument(_))
    ));
}

#[test]
fn empty_checkpoint_round_trips() {
    let w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    let ck = Checkpoint::from_bytes(w.finish().unwrap()).unwrap();
    assert!(ck.chunks().is_empty());
    assert!(ck.verify().unwrap().is_ok());
}

#[test]
fn chunks_read_in_many_batches_come_back_whole() {
    // 4 KiB frames and 40 MiB plus a partial frame: `read` grows its result
    // through several batches of different sizes, the last one short, and
    // must still return exactly what was written (whole reads, typed reads
    // and reads into a buffer agree).
    let n = (40 << 20) / 4 + 3;
    let words: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761) >> (i % 13)).collect();
    for comp in [Compression::None, Compression::Lz4] {
        let mut w = CheckpointWriter::in_memory(WriterOptions::default().frame_size(FRAME).compression(comp)).unwrap();
        w.add_tensor("w", &[n as u64], &words).unwrap();
        let ck = Checkpoint::from_bytes(w.finish().unwrap()).unwrap();
        let bytes = ck.read("w").unwrap();
        assert!(bytes == bytemuck_bytes(&words), "{comp}: read differs");
        assert!(ck.read_tensor::<u32>("w").unwrap() == words, "{comp}: read_tensor differs");
        let mut into = vec![0u8; bytes.len()];
        ck.read_into("w", &mut into).unwrap();
        assert!(into == bytes, "{comp}: read_into differs");
    }
}

fn bytemuck_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A writer that a chunk poisoned says so, and by what, on every later call.
#[test]
fn a_poisoned_writer_names_what_poisoned_it() {
    let mut w = CheckpointWriter::in_memory(WriterOptions::default()).unwrap();
    // Six bytes for a tensor of two f32: frames are written before the
    // length is known to be wrong.
    let spec = cairn::ChunkSpec::tensor(cairn::DType::F32, &[2]);
    assert!(matches!(w.add_reader("t", &spec, &[0u8; 6][..]), Err(cairn::Error::InvalidArgument(_))));
    let err = w.add_bytes("next", b"x").unwrap_err();
    let cairn::Error::Poisoned { what, cause } = &err else { unreachable!("{err}") };
    assert!(what.contains("checkpoint writer"), "{err}");
    assert!(cause.contains("\"t\""), "the cause does not name the chunk: {err}");
    assert!(matches!(w.finish(), Err(cairn::Error::Poisoned { .. })));
}
