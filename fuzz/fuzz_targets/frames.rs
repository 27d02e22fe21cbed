//! Fuzzes the frame decoders behind the checksums a file would give them:
//! arbitrary stored bytes decoded as each codec (the plane codec's records,
//! four-bit codes and exceptions included) must fail or fill exactly the
//! frame's length, never panic; and the writer's encoding of the same bytes
//! must decode back to them.
#![no_main]

use cairn::format::frame_probe::{decode_frame, encode_frame};
use cairn::Compression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [codec, elem, l0, l1, rest @ ..] = data else { return };
    let elem = usize::from(*elem % 10);
    let raw_len = usize::from(u16::from_le_bytes([*l0, *l1]));
    if let Ok(out) = decode_frame(rest, *codec % 8, elem, raw_len) {
        assert_eq!(out.len(), raw_len);
    }
    for compression in [Compression::Lz4, Compression::Zstd(1)] {
        let (codec, stored) = encode_frame(rest, compression, elem).expect("encoding never fails");
        let stored = stored.as_deref().unwrap_or(rest);
        let shuffle = if codec == cairn::format::layout::codec::NONE { 1 } else { elem };
        let back = decode_frame(stored, codec, shuffle, rest.len()).expect("an encoded frame decodes");
        assert_eq!(back, rest, "round trip of codec {codec}");
    }
});
