//! A builder that writes every field of a checkpoint exactly as told, with
//! valid checksums, so a test can make one field hostile at a time.
#![allow(dead_code)]

use cairn::format::layout::{
    self, features, header as h_off, trailer as t_off, END_MAGIC, HEADER_LEN, MAGIC, TRAILER_LEN,
};
use xxhash_rust::xxh3::xxh3_64;
pub(crate) const FRAME: u32 = 4096;
pub(crate) const NONE: u8 = layout::codec::NONE;
pub(crate) const LZ4: u8 = layout::codec::LZ4;
pub(crate) const ZSTD: u8 = layout::codec::ZSTD;
pub(crate) const PLANES: u8 = layout::codec::PLANES;
pub(crate) const REQ_LZ4: u64 = features::REQUIRED_LZ4;
pub(crate) const REQ_ZSTD: u64 = features::REQUIRED_ZSTD;
pub(crate) const REQ_SHUFFLE: u64 = features::REQUIRED_SHUFFLE;
pub(crate) const REQ_PLANES: u64 = features::REQUIRED_PLANES;
pub(crate) const CREATED_US: i64 = 1_700_000_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) codec: u8,
    pub(crate) stored_len: u32,
    pub(crate) checksum: u64,
}

/// One chunk record, field by field; `None` overrides mean "consistent".
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub(crate) name: Vec<u8>,
    pub(crate) name_len: Option<u16>,
    pub(crate) kind: u8,
    pub(crate) dtype: u8,
    pub(crate) ndim: Option<u8>,
    pub(crate) dims: Vec<u64>,
    pub(crate) comp: u8,
    pub(crate) level: i8,
    pub(crate) shuffle: u8,
    pub(crate) raw_len: u64,
    pub(crate) data_offset: u64,
    /// The record's stored length; `None` = the frames' stored lengths summed.
    pub(crate) stored_len: Option<u64>,
    pub(crate) digest: [u8; 32],
    pub(crate) frames: Vec<Frame>,
}

impl Rec {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.name_len.unwrap_or(self.name.len() as u16).to_le_bytes());
        out.extend(&self.name);
        out.extend([self.kind, self.dtype, self.ndim.unwrap_or(self.dims.len() as u8)]);
        for d in &self.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend([self.comp, self.level as u8, self.shuffle]);
        out.extend(self.raw_len.to_le_bytes());
        out.extend(self.data_offset.to_le_bytes());
        let stored: u64 = self.frames.iter().map(|f| u64::from(f.stored_len)).sum();
        out.extend(self.stored_len.unwrap_or(stored).to_le_bytes());
        out.extend(self.digest);
        for f in &self.frames {
            out.push(f.codec);
            out.extend(f.stored_len.to_le_bytes());
            out.extend(f.checksum.to_le_bytes());
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) version: u16,
    pub(crate) header_len: u16,
    pub(crate) frame_size: u32,
    pub(crate) required: u64,
    pub(crate) optional: u64,
    /// Required feature bits in the trailer (format version 2).
    pub(crate) trailer_required: u64,
    /// Bytes between the header and the index.
    pub(crate) data: Vec<u8>,
    pub(crate) count: Option<u32>,
    pub(crate) step: Option<u64>,
    pub(crate) created_us: i64,
    pub(crate) producer: Vec<u8>,
    pub(crate) producer_len: Option<u16>,
    pub(crate) meta: Vec<u8>,
    pub(crate) meta_len: Option<u32>,
    pub(crate) recs: Vec<Rec>,
    /// Bytes after the last chunk record.
    pub(crate) tail: Vec<u8>,
    pub(crate) index_offset: Option<u64>,
    pub(crate) index_len: Option<u64>,
    pub(crate) file_len: Option<u64>,
}

impl Spec {
    pub(crate) fn new() -> Self {
        Spec {
            version: layout::FORMAT_VERSION,
            header_len: HEADER_LEN as u16,
            frame_size: FRAME,
            required: 0,
            optional: features::OPTIONAL_ALIGNED_64,
            trailer_required: 0,
            data: Vec::new(),
            count: None,
            step: None,
            created_us: CREATED_US,
            producer: format!("cairn {}", env!("CARGO_PKG_VERSION")).into_bytes(),
            producer_len: None,
            meta: b"{}".to_vec(),
            meta_len: None,
            recs: Vec::new(),
            tail: Vec::new(),
            index_offset: None,
            index_len: None,
            file_len: None,
        }
    }

    /// A valid file: a two-frame raw chunk and a small tensor.
    pub(crate) fn valid() -> Self {
        let mut s = Spec::new();
        s.add_raw("a", &(0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let t: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let r = s.add_raw("t", &t);
        r.kind = 1;
        r.dtype = 12; // f32
        r.dims = vec![2, 3];
        s
    }

    pub(crate) fn data_end(&self) -> u64 {
        HEADER_LEN as u64 + self.data.len() as u64
    }

    pub(crate) fn align(&mut self) {
        while !self.data_end().is_multiple_of(layout::DATA_ALIGN) {
            self.data.push(0);
        }
    }

    /// Adds a chunk whose frames are the given stored bytes, each with a
    /// correct checksum. The digest is zero: set it if verify must pass.
    pub(crate) fn add(&mut self, name: &str, raw_len: u64, frames: &[(u8, &[u8])]) -> &mut Rec {
        self.align();
        let data_offset = self.data_end();
        let mut table = Vec::new();
        for (codec, stored) in frames {
            self.data.extend_from_slice(stored);
            table.push(Frame { codec: *codec, stored_len: stored.len() as u32, checksum: xxh3_64(stored) });
        }
        self.recs.push(Rec {
            name: name.as_bytes().to_vec(),
            name_len: None,
            kind: 0,
            dtype: 0,
            ndim: None,
            dims: Vec::new(),
            comp: frames.iter().map(|f| f.0).max().unwrap_or(NONE),
            level: 0,
            shuffle: 1,
            raw_len,
            data_offset,
            stored_len: None,
            digest: [0; 32],
            frames: table,
        });
        self.recs.last_mut().unwrap()
    }

    /// Adds a chunk stored raw, with its real digest.
    pub(crate) fn add_raw(&mut self, name: &str, content: &[u8]) -> &mut Rec {
        let frames: Vec<(u8, &[u8])> = content.chunks(self.frame_size as usize).map(|f| (NONE, f)).collect();
        let r = self.add(name, content.len() as u64, &frames);
        r.digest = *blake3::hash(content).as_bytes();
        r
    }

    /// The file digest over the chunk records, as the format defines it.
    pub(crate) fn file_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&(self.recs.len() as u64).to_le_bytes());
        for r in &self.recs {
            h.update(&(r.name.len() as u64).to_le_bytes());
            h.update(&r.name);
            h.update(&[r.kind, r.dtype]);
            h.update(&(r.dims.len() as u64).to_le_bytes());
            for d in &r.dims {
                h.update(&d.to_le_bytes());
            }
            h.update(&r.raw_len.to_le_bytes());
            h.update(&r.digest);
        }
        *h.finalize().as_bytes()
    }

    pub(crate) fn index(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(self.count.unwrap_or(self.recs.len() as u32).to_le_bytes());
        out.extend(u32::from(self.step.is_some()).to_le_bytes());
        out.extend(self.created_us.to_le_bytes());
        out.extend(self.step.unwrap_or(0).to_le_bytes());
        out.extend(self.file_digest());
        out.extend(self.producer_len.unwrap_or(self.producer.len() as u16).to_le_bytes());
        out.extend(&self.producer);
        out.extend(self.meta_len.unwrap_or(self.meta.len() as u32).to_le_bytes());
        out.extend(&self.meta);
        for r in &self.recs {
            r.encode(&mut out);
        }
        out.extend(&self.tail);
        out
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut file = header(self.version, self.header_len, self.frame_size, self.required, self.optional).to_vec();
        file.extend(&self.data);
        let index = self.index();
        let index_offset = self.index_offset.unwrap_or(file.len() as u64);
        let index_len = self.index_len.unwrap_or(index.len() as u64);
        let file_len = self.file_len.unwrap_or((file.len() + index.len() + TRAILER_LEN) as u64);
        let checksum = xxh3_64(&index);
        file.extend(&index);
        file.extend(trailer(index_offset, index_len, checksum, file_len, self.trailer_required));
        file
    }
}

/// A header with any field as given (the layout's own encoder fixes the
/// version and the header length), its checksum right.
pub(crate) fn header(version: u16, header_len: u16, frame_size: u32, required: u64, optional: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(h_off::MAGIC, &MAGIC);
    put(h_off::VERSION, &version.to_le_bytes());
    put(h_off::HEADER_LEN, &header_len.to_le_bytes());
    put(h_off::FRAME_SIZE, &frame_size.to_le_bytes());
    put(h_off::REQUIRED, &required.to_le_bytes());
    put(h_off::OPTIONAL, &optional.to_le_bytes());
    let sum = xxh3_64(&h[..h_off::CHECKSUM]);
    h[h_off::CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
    h
}

/// A trailer with any field as given, its checksum right.
pub(crate) fn trailer(
    index_offset: u64,
    index_len: u64,
    index_checksum: u64,
    file_len: u64,
    required: u64,
) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    let mut put = |at: usize, b: &[u8]| t[at..at + b.len()].copy_from_slice(b);
    put(t_off::INDEX_OFFSET, &index_offset.to_le_bytes());
    put(t_off::INDEX_LEN, &index_len.to_le_bytes());
    put(t_off::INDEX_CHECKSUM, &index_checksum.to_le_bytes());
    put(t_off::FILE_LEN, &file_len.to_le_bytes());
    put(t_off::REQUIRED, &required.to_le_bytes());
    put(t_off::END_MAGIC, &END_MAGIC);
    let sum = xxh3_64(&t[..t_off::CHECKSUM]);
    t[t_off::CHECKSUM..t_off::CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
    t
}

/// A change to a chunk record.
pub(crate) type Edit = fn(&mut Rec);

/// A spec with one chunk record to attack, and nothing after it.
pub(crate) fn one_chunk(edit: impl FnOnce(&mut Rec)) -> Vec<u8> {
    let mut s = Spec::new();
    edit(s.add_raw("x", &[7u8; 100]));
    s.build()
}

// ---------------------------------------------------------------------------
// The builder is right: it reproduces the writer's bytes, so a refusal below
// is caused by the attack and nothing else.
