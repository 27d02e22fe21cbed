//! An entry's manifest: its checkpoint file described as pieces (inline
//! bytes of the manifest object, shared frame objects, XORs against a
//! frame object) that, concatenated, give the file's exact bytes
//! (docs/STORE.md, "Shared frames"). Written front to back, like a checkpoint:
//!
//! ```text
//! manifest := inline bytes | piece table | tail (64 bytes)
//! piece    := kind u8 | reserved (7) | length u64 | offset u64 | payload length u64 | hash (32)
//! tail     := table offset u64 | piece count u64 | file length u64 | xxh3-64 of the table u64
//!           | generation u64 | xxh3-64 of the inline bytes u64 | xxh3-64 of tail bytes 0..48 u64 | "CAIRNMFE"
//! ```
//! The inline bytes are the object's bytes before the table, so the
//! object checks itself whole, and `verify` checks an entry by its
//! manifest and the frame objects it names, each read once.
//! The generation counts the saves of the key since one whose frames
//! were all stored whole: 0 for an entry without XOR pieces, else one
//! more than the entry its XORs were taken against (`full_every`).
//! Inline pieces use `offset` (into the manifest object); XOR pieces use
//! `offset` and `payload length` for their lz4 block and `hash` for their
//! base frame; frame pieces use `hash`. A manifest is told from a
//! checkpoint by its last eight bytes (`CAIRNMFE`, where a checkpoint ends
//! with `CAIRNEND`), so a save can stream a checkpoint's first bytes as
//! they come and turn the object into a manifest only once a frame is
//! shared; a save that shares nothing stores a plain checkpoint.

use crate::error::{Error, Result};

/// Last bytes of a manifest object.
pub(crate) const END_MAGIC: [u8; 8] = *b"CAIRNMFE";
/// Bytes of the tail.
pub(crate) const TAIL_LEN: usize = 64;
/// Bytes of one piece record.
const PIECE_LEN: usize = 64;
/// The longest piece: the largest frame size.
const MAX_PIECE: u64 = 64 << 20;

/// Where a piece's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// In the manifest object, from this offset.
    Inline { offset: u64 },
    /// The whole of frame object `hash`.
    Frame { hash: [u8; 32] },
    /// Frame object `base` XOR the lz4 block at `offset..offset + len` of
    /// the manifest object.
    Xor { base: [u8; 32], offset: u64, len: u64 },
}

/// One piece of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Its length in the file.
    pub len: u64,
    pub source: Source,
}

/// A decoded manifest: the pieces, with where each starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub pieces: Vec<Piece>,
    /// Saves since the key's last entry without XOR pieces (0 for one).
    pub generation: u64,
    /// Where the inline bytes end (the table's offset), and their xxh3-64.
    pub inline_len: u64,
    pub inline_sum: u64,
    /// File offset of each piece, ascending, then the file length.
    starts: Vec<u64>,
}

/// Whether an object ending with `last` (its last eight bytes) is a
/// manifest.
pub(crate) fn is_manifest(last: &[u8]) -> bool {
    last == END_MAGIC
}

/// The piece table and tail of a manifest whose inline bytes end at
/// `table_offset`.
/// `generation` is the entry's and `inline_sum` the xxh3-64 of the
/// object's bytes before the table (see the module's text).
pub(crate) fn encode_table(pieces: &[Piece], table_offset: u64, generation: u64, inline_sum: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(pieces.len() * PIECE_LEN + TAIL_LEN);
    for p in pieces {
        let (kind, offset, plen, hash) = match p.source {
            Source::Inline { offset } => (0u8, offset, 0, [0u8; 32]),
            Source::Frame { hash } => (1, 0, 0, hash),
            Source::Xor { base, offset, len } => (2, offset, len, base),
        };
        out.push(kind);
        out.extend_from_slice(&[0u8; 7]);
        out.extend_from_slice(&p.len.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&plen.to_le_bytes());
        out.extend_from_slice(&hash);
    }
    let table_sum = xxhash_rust::xxh3::xxh3_64(&out);
    let file_len: u64 = pieces.iter().map(|p| p.len).sum();
    let mut tail = Vec::with_capacity(TAIL_LEN);
    tail.extend_from_slice(&table_offset.to_le_bytes());
    tail.extend_from_slice(&(pieces.len() as u64).to_le_bytes());
    tail.extend_from_slice(&file_len.to_le_bytes());
    tail.extend_from_slice(&table_sum.to_le_bytes());
    tail.extend_from_slice(&generation.to_le_bytes());
    tail.extend_from_slice(&inline_sum.to_le_bytes());
    let tail_sum = xxhash_rust::xxh3::xxh3_64(&tail);
    tail.extend_from_slice(&tail_sum.to_le_bytes());
    tail.extend_from_slice(&END_MAGIC);
    out.extend_from_slice(&tail);
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

impl Manifest {
    /// Decodes the manifest of an object of `obj_len` bytes, reading its
    /// parts through `read(offset, len)`. Every length and offset is
    /// checked against the object before anything sized by it is read.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `file` and the part; `read`'s errors.
    pub(crate) fn decode(obj_len: u64, file: &str, read: impl Fn(u64, usize) -> Result<Vec<u8>>) -> Result<Self> {
        let bad = |what: &str, offset: u64, detail: String| Error::Corrupt {
            file: file.to_string(),
            what: format!("manifest {what}"),
            offset,
            detail,
        };
        let min = TAIL_LEN as u64;
        if obj_len < min {
            return Err(bad("", 0, format!("{obj_len} bytes is shorter than the {min}-byte minimum")));
        }
        let tail_at = obj_len - TAIL_LEN as u64;
        let tail = read(tail_at, TAIL_LEN)?;
        if tail.get(56..64) != Some(&END_MAGIC[..])
            || xxhash_rust::xxh3::xxh3_64(tail.get(..48).unwrap_or_default()) != u64_at(&tail, 48)
        {
            return Err(bad("tail", tail_at, "end magic or checksum mismatch (truncated?)".into()));
        }
        let (table_at, count, file_len, table_sum, generation, inline_sum) = (
            u64_at(&tail, 0),
            u64_at(&tail, 8),
            u64_at(&tail, 16),
            u64_at(&tail, 24),
            u64_at(&tail, 32),
            u64_at(&tail, 40),
        );
        let table_len = count.checked_mul(PIECE_LEN as u64);
        if table_len.and_then(|l| table_at.checked_add(l)) != Some(tail_at) {
            return Err(bad("tail", tail_at, format!("{count} pieces at offset {table_at} do not end at the tail")));
        }
        let table = read(
            table_at,
            usize::try_from(tail_at - table_at).map_err(|_| bad("table", table_at, "too large".into()))?,
        )?;
        if xxhash_rust::xxh3::xxh3_64(&table) != table_sum {
            return Err(bad("table", table_at, "checksum mismatch".into()));
        }
        let mut pieces = Vec::with_capacity(table.len() / PIECE_LEN);
        let mut starts = Vec::with_capacity(table.len() / PIECE_LEN + 1);
        let mut pos = 0u64;
        for (i, rec) in table.chunks_exact(PIECE_LEN).enumerate() {
            let at = table_at + (i * PIECE_LEN) as u64;
            let (len, offset, plen) = (u64_at(rec, 8), u64_at(rec, 16), u64_at(rec, 24));
            let mut hash = [0u8; 32];
            hash.copy_from_slice(rec.get(32..64).unwrap_or(&[0u8; 32]));
            let inline_ok = |o: u64, l: u64| o.checked_add(l).is_some_and(|e| e <= table_at);
            let source = match rec.first() {
                Some(0) if inline_ok(offset, len) => Source::Inline { offset },
                Some(1) => Source::Frame { hash },
                Some(2) if plen > 0 && inline_ok(offset, plen) => Source::Xor { base: hash, offset, len: plen },
                _ => {
                    return Err(bad(
                        "piece",
                        at,
                        format!(
                            "piece {i}: kind {:?} with offset {offset} and lengths {len}, {plen} is invalid",
                            rec.first()
                        ),
                    ))
                }
            };
            if len == 0 || len > MAX_PIECE {
                return Err(bad("piece", at, format!("piece {i}: length {len} is out of bounds")));
            }
            starts.push(pos);
            pos = pos.checked_add(len).ok_or_else(|| bad("piece", at, "lengths overflow".into()))?;
            pieces.push(Piece { len, source });
        }
        if pos != file_len {
            return Err(bad("tail", tail_at, format!("pieces add up to {pos} bytes, the tail says {file_len}")));
        }
        starts.push(pos);
        Ok(Manifest { pieces, generation, inline_len: table_at, inline_sum, starts })
    }

    /// The file's length.
    pub(crate) fn file_len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// The index of the piece holding file offset `offset`.
    pub(crate) fn piece_at(&self, offset: u64) -> Option<usize> {
        let i = self.starts.partition_point(|s| *s <= offset).checked_sub(1)?;
        (i < self.pieces.len()).then_some(i)
    }

    /// Where piece `i` starts in the file.
    pub(crate) fn start(&self, i: usize) -> u64 {
        self.starts.get(i).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn object(pieces: &[Piece], inline: &[u8]) -> Vec<u8> {
        let mut obj = inline.to_vec();
        let t = obj.len() as u64;
        obj.extend(encode_table(pieces, t, 5, xxhash_rust::xxh3::xxh3_64(&obj)));
        obj
    }

    fn decode(obj: &[u8]) -> Result<Manifest> {
        Manifest::decode(obj.len() as u64, "m", |o, l| Ok(obj[o as usize..o as usize + l].to_vec()))
    }

    #[test]
    fn a_manifest_round_trips_and_locates_pieces() {
        let pieces = vec![
            Piece { len: 64, source: Source::Inline { offset: 0 } },
            Piece { len: 4096, source: Source::Frame { hash: [7; 32] } },
            Piece { len: 4096, source: Source::Xor { base: [9; 32], offset: 64, len: 30 } },
            Piece { len: 100, source: Source::Inline { offset: 94 } },
        ];
        let obj = object(&pieces, &[1u8; 194]);
        assert!(is_manifest(&obj[obj.len() - 8..]));
        let m = decode(&obj).unwrap();
        assert_eq!(m.pieces, pieces);
        assert_eq!(m.generation, 5);
        assert_eq!(m.file_len(), 64 + 4096 + 4096 + 100);
        assert_eq!(
            (m.piece_at(0), m.piece_at(63), m.piece_at(64), m.piece_at(8256), m.piece_at(8356)),
            (Some(0), Some(0), Some(1), Some(3), None)
        );
    }

    #[test]
    fn damaged_manifests_are_refused() {
        let pieces = vec![Piece { len: 10, source: Source::Inline { offset: 0 } }];
        let good = object(&pieces, &[0; 10]);
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 1;
            // The inline bytes are the checkpoint's business.
            if at < 10 {
                continue;
            }
            assert!(decode(&bad).is_err(), "byte {at}");
        }
        assert!(decode(&good[..good.len() - 1]).is_err());
        // An inline piece reaching into the table.
        let obj = object(&[Piece { len: 11, source: Source::Inline { offset: 0 } }], &[0; 10]);
        assert!(decode(&obj).is_err());
        // A huge piece count does not allocate: it fails the bounds first.
        let mut obj = good.clone();
        let t = obj.len() - TAIL_LEN;
        obj[t + 8..t + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&obj[t..t + 48]);
        obj[t + 48..t + 56].copy_from_slice(&sum.to_le_bytes());
        assert!(decode(&obj).is_err());
    }
}
