//! The frame codecs on their own, for fuzz targets (feature `testing`):
//! decoding stored bytes that no checksum vouched for, and round trips.

use super::codec::{self, Compression};

/// Decodes `stored` as a frame of `codec` in a chunk shuffled by
/// `shuffle_elem`, whose raw length is `raw_len`.
pub fn decode_frame(stored: &[u8], codec: u8, shuffle_elem: usize, raw_len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; raw_len];
    codec::decode(stored, codec, shuffle_elem, &mut out)?;
    Ok(out)
}

/// Encodes `raw` as the writer would: the frame codec and, unless the frame
/// is stored raw, its stored bytes.
pub fn encode_frame(
    raw: &[u8],
    compression: Compression,
    shuffle_elem: usize,
) -> std::io::Result<(u8, Option<Vec<u8>>)> {
    codec::encode(raw, compression, shuffle_elem)
}
