//! Hand-crafted hostile files: every checksum is valid, but lengths, counts,
//! offsets and feature bits are hostile. Each attack must be refused with an
//! error naming the part, never a panic, and opening must never ask for an
//! allocation much larger than the file. A counting global allocator records
//! the largest single request and the peak of live bytes; tests run one at a
//! time under a lock so that the process-wide counters measure only them.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, UNIX_EPOCH};

use cairn::{Checkpoint, CheckpointWriter, Error, WriterOptions};
use xxhash_rust::xxh3::xxh3_64;

// ---------------------------------------------------------------------------
// Allocation accounting.

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn note_request(size: usize) {
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

fn note_live(delta: isize) {
    let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_request(layout.size());
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_live(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_request(layout.size());
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_live(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        note_live(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_request(new_size);
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note_live(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());
static WARM: Once = Once::new();

/// Runs tests one at a time, so the counters see one test's allocations.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Start rayon's pool and the codecs' thread-local state outside any
    // measurement.
    WARM.call_once(|| {
        let ck = Checkpoint::from_bytes(Spec::valid().build()).unwrap();
        assert!(ck.verify().unwrap().is_ok());
    });
    guard
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    largest: usize,
    peak: usize,
}

/// Runs `f` and reports the largest allocation request and the peak of live
/// bytes above what was live before. Call with `serial()` held.
fn measured<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LARGEST.store(0, Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    (r, Usage { largest: LARGEST.load(Ordering::Relaxed), peak: peak.max(0) as usize })
}

/// The most a reader may ask for to open a file of `len` bytes.
fn open_budget(len: usize) -> usize {
    (4 * len).max(64 << 10)
}

/// Opens `bytes` under measurement and checks the allocation budget.
fn open(bytes: Vec<u8>) -> cairn::Result<Checkpoint> {
    let len = bytes.len();
    let (r, u) = measured(|| Checkpoint::from_bytes(bytes));
    let budget = open_budget(len);
    assert!(u.largest <= budget, "opening a {len}-byte file asked for {} bytes at once", u.largest);
    assert!(u.peak <= budget, "opening a {len}-byte file held {} bytes", u.peak);
    r
}

/// Opens a file that must be refused.
fn refused(bytes: Vec<u8>) -> Error {
    match open(bytes) {
        Ok(_) => panic!("hostile file opened"),
        Err(e) => e,
    }
}

/// Asserts `e` is `Corrupt` in `part`, its detail mentions `says`, and its
/// message names the part and an offset within the file.
fn assert_corrupt(e: &Error, part: &str, says: &str, file_len: usize) {
    let msg = e.to_string();
    match e {
        Error::Corrupt { what, detail, offset, .. } => {
            assert_eq!(what, part, "{msg}");
            assert!(detail.contains(says), "expected {says:?} in: {msg}");
            assert!(*offset <= file_len as u64, "offset past the file: {msg}");
            assert!(msg.contains(part) && msg.contains(&format!("offset {offset}")), "{msg}");
        }
        other => panic!("expected corrupt {part}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A file builder that writes every field as told and every checksum right.

const FRAME: u32 = 4096;
const NONE: u8 = 0;
const LZ4: u8 = 1;
const ZSTD: u8 = 2;
const REQ_LZ4: u64 = 1;
const REQ_ZSTD: u64 = 2;
const REQ_SHUFFLE: u64 = 4;
const CREATED_US: i64 = 1_700_000_000_000_000;

#[derive(Debug, Clone)]
struct Frame {
    codec: u8,
    stored_len: u32,
    checksum: u64,
}

/// One chunk record, field by field; `None` overrides mean "consistent".
#[derive(Debug, Clone)]
struct Rec {
    name: Vec<u8>,
    name_len: Option<u16>,
    kind: u8,
    dtype: u8,
    ndim: Option<u8>,
    dims: Vec<u64>,
    comp: u8,
    level: i8,
    shuffle: u8,
    raw_len: u64,
    data_offset: u64,
    digest: [u8; 32],
    frames: Vec<Frame>,
}

impl Rec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.name_len.unwrap_or(self.name.len() as u16).to_le_bytes());
        out.extend(&self.name);
        out.extend([self.kind, self.dtype, self.ndim.unwrap_or(self.dims.len() as u8)]);
        for d in &self.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend([self.comp, self.level as u8, self.shuffle]);
        out.extend(self.raw_len.to_le_bytes());
        out.extend(self.data_offset.to_le_bytes());
        out.extend(self.digest);
        for f in &self.frames {
            out.push(f.codec);
            out.extend(f.stored_len.to_le_bytes());
            out.extend(f.checksum.to_le_bytes());
        }
    }
}

#[derive(Debug, Clone)]
struct Spec {
    version: u16,
    header_len: u16,
    frame_size: u32,
    required: u64,
    optional: u64,
    /// Bytes between the header and the index.
    data: Vec<u8>,
    count: Option<u32>,
    step: Option<u64>,
    created_us: i64,
    producer: Vec<u8>,
    producer_len: Option<u16>,
    meta: Vec<u8>,
    meta_len: Option<u32>,
    recs: Vec<Rec>,
    /// Bytes after the last chunk record.
    tail: Vec<u8>,
    index_offset: Option<u64>,
    index_len: Option<u64>,
    file_len: Option<u64>,
}

impl Spec {
    fn new() -> Self {
        Spec {
            version: 1,
            header_len: 64,
            frame_size: FRAME,
            required: 0,
            optional: 1,
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
    fn valid() -> Self {
        let mut s = Spec::new();
        s.add_raw("a", &(0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let t: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let r = s.add_raw("t", &t);
        r.kind = 1;
        r.dtype = 12; // f32
        r.dims = vec![2, 3];
        s
    }

    fn data_end(&self) -> u64 {
        64 + self.data.len() as u64
    }

    fn align(&mut self) {
        while self.data_end() % 64 != 0 {
            self.data.push(0);
        }
    }

    /// Adds a chunk whose frames are the given stored bytes, each with a
    /// correct checksum. The digest is zero: set it if verify must pass.
    fn add(&mut self, name: &str, raw_len: u64, frames: &[(u8, &[u8])]) -> &mut Rec {
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
            digest: [0; 32],
            frames: table,
        });
        self.recs.last_mut().unwrap()
    }

    /// Adds a chunk stored raw, with its real digest.
    fn add_raw(&mut self, name: &str, content: &[u8]) -> &mut Rec {
        let frames: Vec<(u8, &[u8])> = content.chunks(self.frame_size as usize).map(|f| (NONE, f)).collect();
        let r = self.add(name, content.len() as u64, &frames);
        r.digest = *blake3::hash(content).as_bytes();
        r
    }

    /// The file digest over the chunk records, as the format defines it.
    fn file_digest(&self) -> [u8; 32] {
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

    fn index(&self) -> Vec<u8> {
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

    fn build(&self) -> Vec<u8> {
        let mut file = header(self.version, self.header_len, self.frame_size, self.required, self.optional).to_vec();
        file.extend(&self.data);
        let index = self.index();
        let index_offset = self.index_offset.unwrap_or(file.len() as u64);
        let index_len = self.index_len.unwrap_or(index.len() as u64);
        let file_len = self.file_len.unwrap_or((file.len() + index.len() + 64) as u64);
        let checksum = xxh3_64(&index);
        file.extend(&index);
        file.extend(trailer(index_offset, index_len, checksum, file_len));
        file
    }
}

fn header(version: u16, header_len: u16, frame_size: u32, required: u64, optional: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[..8].copy_from_slice(&[0x89, b'C', b'A', b'I', b'R', b'N', 0x0D, 0x0A]);
    h[8..10].copy_from_slice(&version.to_le_bytes());
    h[10..12].copy_from_slice(&header_len.to_le_bytes());
    h[12..16].copy_from_slice(&frame_size.to_le_bytes());
    h[16..24].copy_from_slice(&required.to_le_bytes());
    h[24..32].copy_from_slice(&optional.to_le_bytes());
    let sum = xxh3_64(&h[..56]);
    h[56..].copy_from_slice(&sum.to_le_bytes());
    h
}

fn trailer(index_offset: u64, index_len: u64, index_checksum: u64, file_len: u64) -> [u8; 64] {
    let mut t = [0u8; 64];
    t[..8].copy_from_slice(&index_offset.to_le_bytes());
    t[8..16].copy_from_slice(&index_len.to_le_bytes());
    t[16..24].copy_from_slice(&index_checksum.to_le_bytes());
    t[24..32].copy_from_slice(&file_len.to_le_bytes());
    let sum = xxh3_64(&t[..48]);
    t[48..56].copy_from_slice(&sum.to_le_bytes());
    t[56..].copy_from_slice(b"CAIRNEND");
    t
}

/// A change to a chunk record.
type Edit = fn(&mut Rec);

/// A spec with one chunk record to attack, and nothing after it.
fn one_chunk(edit: impl FnOnce(&mut Rec)) -> Vec<u8> {
    let mut s = Spec::new();
    edit(s.add_raw("x", &[7u8; 100]));
    s.build()
}

// ---------------------------------------------------------------------------
// The builder is right: it reproduces the writer's bytes, so a refusal below
// is caused by the attack and nothing else.

#[test]
fn builder_reproduces_the_writer() {
    let _g = serial();
    let opts =
        WriterOptions::default().frame_size(FRAME).created_at(UNIX_EPOCH + Duration::from_micros(CREATED_US as u64));
    let mut w = CheckpointWriter::in_memory(opts).unwrap();
    w.add_bytes("a", &(0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    w.add_tensor("t", &[2, 3], &[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let written = w.finish().unwrap();
    assert_eq!(Spec::valid().build(), written);

    let ck = open(written).unwrap();
    assert!(ck.verify().unwrap().is_ok());
    assert_eq!(ck.read_tensor::<f32>("t").unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

// ---------------------------------------------------------------------------
// Trailer attacks.

#[test]
fn index_length_near_u64_max() {
    let _g = serial();
    let mut s = Spec::valid();
    s.index_len = Some(u64::MAX - 7);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "exceeds the limit", len);
}

#[test]
fn index_range_overflowing_u64() {
    let _g = serial();
    let mut s = Spec::valid();
    s.index_offset = Some(u64::MAX - 100);
    s.index_len = Some(1000);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "does not end at the trailer", len);
}

#[test]
fn index_length_past_the_file() {
    let _g = serial();
    let mut s = Spec::valid();
    s.index_len = Some(1 << 20);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "does not end at the trailer", len);
}

#[test]
fn index_offset_inside_the_header() {
    let _g = serial();
    let mut s = Spec::valid();
    let real = s.build();
    let index_end = real.len() as u64 - 64;
    s.index_offset = Some(8);
    s.index_len = Some(index_end - 8);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "trailer", "does not end at the trailer", len);
}

#[test]
fn file_length_lies() {
    let _g = serial();
    for lie in [0, 1 << 40, u64::MAX] {
        let mut s = Spec::valid();
        s.file_len = Some(lie);
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "trailer", "but the trailer says", len);
    }
}

// ---------------------------------------------------------------------------
// Header attacks and versioning.

/// Re-encodes a valid file's header with new fields and a valid checksum.
fn with_header(version: u16, header_len: u16, frame_size: u32, required: u64, optional: u64) -> Vec<u8> {
    let mut bytes = Spec::valid().build();
    bytes[..64].copy_from_slice(&header(version, header_len, frame_size, required, optional));
    bytes
}

#[test]
fn unknown_required_feature_bit_is_refused_by_name() {
    let _g = serial();
    for bit in [3u32, 12, 63] {
        let e = refused(with_header(1, 64, FRAME, 1 << bit, 1));
        let msg = e.to_string();
        let Error::Unsupported { feature, .. } = &e else { panic!("bit {bit}: {e:?}") };
        assert_eq!(feature, &format!("required feature bit {bit}"), "{msg}");
        assert!(msg.contains(&format!("required feature bit {bit}")) && msg.contains("<memory>"), "{msg}");
    }
}

#[test]
fn unknown_optional_feature_bits_are_ignored() {
    let _g = serial();
    let ck = open(with_header(1, 64, FRAME, 0, u64::MAX)).unwrap();
    let report = ck.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(ck.read("a").unwrap(), (0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
}

#[test]
fn other_format_versions_are_unsupported() {
    let _g = serial();
    for version in [0u16, 2, u16::MAX] {
        let e = refused(with_header(version, 64, FRAME, 0, 1));
        let Error::Unsupported { feature, .. } = &e else { panic!("version {version}: {e:?}") };
        assert!(feature.starts_with(&format!("format version {version} ")), "{e}");
    }
}

#[test]
fn bad_header_length() {
    let _g = serial();
    for header_len in [0u16, 63, 65, u16::MAX] {
        let bytes = with_header(1, header_len, FRAME, 0, 1);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "header", "header length", len);
    }
}

#[test]
fn bad_frame_sizes() {
    let _g = serial();
    for frame_size in [0u32, 1, 1000, 2048, 4097, 128 << 20, 1 << 31, u32::MAX] {
        let bytes = with_header(1, 64, frame_size, 0, 1);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "header", "frame size", len);
    }
}

// ---------------------------------------------------------------------------
// Index header attacks.

#[test]
fn chunk_count_u32_max() {
    let _g = serial();
    let mut s = Spec::valid();
    s.count = Some(u32::MAX);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "chunk count", len);
}

#[test]
fn chunk_count_at_the_limit_with_a_large_empty_index() {
    let _g = serial();
    // The count passes its limit; the index has room for many records of
    // zeros, so only the allocation budget stands between the count and a
    // large reservation.
    let mut s = Spec::new();
    s.count = Some(1 << 20);
    s.tail = vec![0; 200 << 10];
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "chunk name length 0", len);
}

#[test]
fn chunk_count_larger_than_the_records() {
    let _g = serial();
    let mut s = Spec::valid();
    s.count = Some(3);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "more bytes", len);
}

#[test]
fn trailing_bytes_after_the_last_record() {
    let _g = serial();
    let mut s = Spec::valid();
    s.tail = vec![0; 5];
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "unexpected bytes", len);
}

#[test]
fn producer_length_huge() {
    let _g = serial();
    let mut s = Spec::valid();
    s.producer_len = Some(u16::MAX);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "producer length", len);
}

#[test]
fn metadata_length_huge() {
    let _g = serial();
    for meta_len in [u32::MAX, (16 << 20) + 1] {
        let mut s = Spec::valid();
        s.meta_len = Some(meta_len);
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", "metadata length", len);
    }
}

#[test]
fn metadata_length_within_the_limit_but_past_the_index() {
    let _g = serial();
    let mut s = Spec::valid();
    s.meta_len = Some(16 << 20);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "more bytes", len);
}

#[test]
fn metadata_not_a_json_object() {
    let _g = serial();
    for meta in [&b"[1,2]"[..], b"{\"a\":", b"\xff\xfe", b""] {
        let mut s = Spec::valid();
        s.meta = meta.to_vec();
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index metadata", "", len);
    }
}

#[test]
fn metadata_deeply_nested_json() {
    let _g = serial();
    let mut s = Spec::valid();
    let depth = 100_000;
    s.meta = [b"{\"a\":".to_vec(), vec![b'['; depth], vec![b']'; depth], b"}".to_vec()].concat();
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index metadata", "recursion limit", len);
}

// ---------------------------------------------------------------------------
// Chunk record attacks.

#[test]
fn name_length_huge() {
    let _g = serial();
    let bytes = one_chunk(|r| r.name_len = Some(u16::MAX));
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "chunk name length 65535", len);
}

#[test]
fn name_length_within_the_limit_but_past_the_index() {
    let _g = serial();
    let bytes = one_chunk(|r| r.name_len = Some(1024));
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "more bytes", len);
}

#[test]
fn name_not_utf8() {
    let _g = serial();
    let bytes = one_chunk(|r| r.name = vec![0xC3, 0x28]);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "not UTF-8", len);
}

#[test]
fn duplicate_chunk_names() {
    let _g = serial();
    let mut s = Spec::new();
    s.add_raw("x", &[1; 10]);
    s.add_raw("x", &[2; 10]);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "duplicate chunk name", len);
}

#[test]
fn ndim_huge() {
    let _g = serial();
    let bytes = one_chunk(|r| {
        r.dtype = 2; // u8
        r.ndim = Some(u8::MAX);
    });
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "bad dimension count 255", len);
}

#[test]
fn dims_without_a_dtype() {
    let _g = serial();
    let bytes = one_chunk(|r| r.dims = vec![100]);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "bad dimension count 1", len);
}

#[test]
fn dims_whose_product_overflows() {
    let _g = serial();
    let bytes = one_chunk(|r| {
        r.dtype = 12; // f32
        r.dims = vec![u64::MAX; 32];
    });
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "does not match", len);
}

#[test]
fn unknown_tags() {
    let _g = serial();
    let cases: [(&str, Edit); 3] = [
        ("unknown dtype tag 200", |r| r.dtype = 200),
        ("unknown compression tag 9", |r| r.comp = 9),
        ("unknown codec 7", |r| r.frames[0].codec = 7),
    ];
    for (says, edit) in cases {
        let bytes = one_chunk(edit);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", says, len);
    }
    // An unknown kind is a label: it opens.
    let ck = open(one_chunk(|r| r.kind = 250)).unwrap();
    assert_eq!(ck.chunk("x").unwrap().kind, cairn::ChunkKind::Other(250));
}

#[test]
fn raw_length_u64_max() {
    let _g = serial();
    let bytes = one_chunk(|r| r.raw_len = u64::MAX);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "frames do not fit in the index", len);
}

#[test]
fn raw_length_with_a_huge_frame_count() {
    let _g = serial();
    // 2^28 frames of 4 KiB: a frame table of 3.4 GB that the file lacks.
    let bytes = one_chunk(|r| r.raw_len = 1 << 40);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "frames do not fit in the index", len);
}

#[test]
fn raw_length_disagreeing_with_the_frame_table() {
    let _g = serial();
    // Two frames' worth of content, one frame record.
    let bytes = one_chunk(|r| r.raw_len = u64::from(FRAME) + 1);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "frames do not fit in the index", len);
    // A raw frame of 100 stored bytes for 99 content bytes.
    let bytes = one_chunk(|r| r.raw_len = 99);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "invalid", len);
}

#[test]
fn stored_length_larger_than_raw() {
    let _g = serial();
    let cases: [Edit; 3] = [
        |r| r.frames[0].stored_len = 101,
        |r| r.frames[0].stored_len = u32::MAX,
        |r| r.frames[0].codec = LZ4, // a compressed frame no smaller than raw
    ];
    for edit in cases {
        let mut s = Spec::new();
        s.required = REQ_LZ4;
        edit(s.add_raw("x", &[7u8; 100]));
        let bytes = s.build();
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", "invalid", len);
    }
}

#[test]
fn compressed_frame_without_its_feature_bit() {
    let _g = serial();
    let stored = lz4_flex::block::compress(&[0u8; 1000]);
    let mut s = Spec::new();
    s.add("x", 1000, &[(LZ4, &stored)]);
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "invalid", len);
}

#[test]
fn shuffle_without_its_feature_bit() {
    let _g = serial();
    let stored = zstd::bulk::compress(&[0u8; 1000], 3).unwrap();
    let mut s = Spec::new();
    s.required = REQ_ZSTD;
    s.add("x", 1000, &[(ZSTD, &stored)]).shuffle = 4;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "shuffle", len);
}

#[test]
fn data_offset_misaligned() {
    let _g = serial();
    let bytes = one_chunk(|r| r.data_offset += 1);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "misaligned", len);
}

#[test]
fn data_offset_inside_the_header() {
    let _g = serial();
    let bytes = one_chunk(|r| r.data_offset = 0);
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "overlaps", len);
}

#[test]
fn data_offsets_overlapping() {
    let _g = serial();
    let mut s = Spec::new();
    s.add_raw("a", &[1; 200]);
    s.add_raw("b", &[2; 200]).data_offset = 128;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "overlaps", len);
}

#[test]
fn data_running_past_the_index() {
    let _g = serial();
    let mut s = Spec::new();
    s.add_raw("a", &[1; 200]);
    // Aligned and after the header, but its 200 bytes end past the index at 264.
    s.recs[0].data_offset = 128;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "past the index", len);
}

#[test]
fn data_offset_near_u64_max() {
    let _g = serial();
    for (offset, says) in [(u64::MAX - 63, "overflows"), (1 << 62, "past the index")] {
        let bytes = one_chunk(|r| r.data_offset = offset);
        let len = bytes.len();
        assert_corrupt(&refused(bytes), "index", says, len);
    }
    // An empty chunk far past the index is refused too.
    let mut s = Spec::new();
    s.add_raw("e", &[]).data_offset = 1 << 62;
    let bytes = s.build();
    let len = bytes.len();
    assert_corrupt(&refused(bytes), "index", "past the index", len);
}

// ---------------------------------------------------------------------------
// Frames with valid checksums but hostile contents: they open (the index is
// consistent) and fail when read or verified, naming the frame.

/// Opens `bytes`, then checks that reading `name` fails naming frame `frame`,
/// that verify reports it, and that neither exceeds the budget.
fn read_fails(bytes: Vec<u8>, name: &str, frame: usize, says: &str) {
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    let budget = open_budget(len) + ck.frame_size() as usize * 2;
    let (r, u) = measured(|| ck.read(name));
    let e = r.expect_err("hostile frame read as data");
    assert_corrupt(&e, &format!("chunk {name:?} frame {frame}"), says, len);
    assert!(u.largest <= budget && u.peak <= budget, "read: {u:?}");
    let (r, u) = measured(|| ck.read_to(name, &mut std::io::sink()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert!(u.largest <= budget && u.peak <= budget, "read_to: {u:?}");
    let (report, u) = measured(|| ck.verify().unwrap());
    assert!(report.problems.iter().any(|p| p.what == format!("chunk {name:?} frame {frame}")), "{report:?}");
    assert!(u.largest <= budget && u.peak <= budget, "verify: {u:?}");
}

#[test]
fn garbage_lz4_frame_with_a_valid_checksum() {
    let _g = serial();
    let garbage: Vec<u8> = (0..500u32).map(|i| (i * 7919 % 256) as u8).collect();
    let mut s = Spec::new();
    s.required = REQ_LZ4;
    s.add("x", 4096, &[(LZ4, &garbage)]);
    read_fails(s.build(), "x", 0, "lz4");
}

#[test]
fn garbage_zstd_frame_with_a_valid_checksum() {
    let _g = serial();
    let mut s = Spec::new();
    s.required = REQ_ZSTD;
    let garbage = [0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3];
    s.add("x", 4096, &[(ZSTD, &garbage)]);
    read_fails(s.build(), "x", 0, "zstd");
}

#[test]
fn compressed_frames_of_the_wrong_length() {
    let _g = serial();
    let short = zstd::bulk::compress(&[5u8; 3000], 3).unwrap();
    let long = zstd::bulk::compress(&[5u8; 4096 + 500], 3).unwrap();
    let lz4_short = lz4_flex::block::compress(&[5u8; 3000]);
    for (codec, stored, says) in [(ZSTD, &short, "decoded to 3000"), (ZSTD, &long, "zstd"), (LZ4, &lz4_short, "")] {
        let mut s = Spec::new();
        s.required = REQ_LZ4 | REQ_ZSTD;
        s.add("x", 4096, &[(codec, stored)]);
        read_fails(s.build(), "x", 0, says);
    }
}

#[test]
fn shuffled_frame_with_an_odd_element_size() {
    let _g = serial();
    // Any element size must unshuffle without panicking; the digest is
    // wrong, so verify reports the chunk.
    let stored = zstd::bulk::compress(&[9u8; 4096], 3).unwrap();
    for elem in [2u8, 3, 7, 255] {
        let mut s = Spec::new();
        s.required = REQ_ZSTD | REQ_SHUFFLE;
        s.add("x", 4096, &[(ZSTD, &stored)]).shuffle = elem;
        let ck = open(s.build()).unwrap();
        assert_eq!(ck.read("x").unwrap(), vec![9u8; 4096]);
        let report = ck.verify().unwrap();
        assert!(report.problems.iter().any(|p| p.detail.contains("BLAKE3")), "{report:?}");
    }
}

#[test]
fn many_empty_compressed_frames() {
    let _g = serial();
    // Frames that take no data bytes: the index alone pays for them, 13 bytes
    // each. Opening stays within the budget; reading fails on the first.
    let n = 3000u64;
    let mut s = Spec::new();
    s.required = REQ_LZ4;
    let frames: Vec<(u8, &[u8])> = (0..n).map(|_| (LZ4, &[][..])).collect();
    s.add("x", n * u64::from(FRAME), &frames);
    let bytes = s.build();
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    assert_eq!(ck.chunk("x").unwrap().frame_count(), n as usize);
    let (r, u) = measured(|| ck.read_to("x", &mut std::io::sink()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert!(u.largest <= open_budget(len), "read_to: {u:?}");
    let (report, u) = measured(|| ck.verify().unwrap());
    // The first 64 damaged frames are listed, the rest counted in one line.
    assert_eq!(report.problems.len(), 65, "{:?}", report.problems.last());
    assert!(report.problems.iter().any(|p| p.detail.contains(&format!("{} more damaged frames", n - 64))));
    eprintln!("verify of {n} empty frames in a {len}-byte file: {u:?}");
    // verify keeps one small slot per frame (the index pays 13 bytes a
    // frame), so its memory stays within a few times the file.
    assert!(u.largest <= 4 * len && u.peak <= 8 * len, "verify: {u:?}");
}

#[test]
fn largest_frame_size_with_a_one_byte_frame() {
    let _g = serial();
    // A 64 MiB frame declared by a file of a few hundred bytes. Opening costs
    // nothing; reading needs a buffer of the declared frame length before it
    // can decode (a decompression bomb is bounded by the frame size limit).
    let frame_size = 64u32 << 20;
    let mut s = Spec::new();
    s.frame_size = frame_size;
    s.required = REQ_LZ4;
    s.add("x", u64::from(frame_size), &[(LZ4, &[0x00][..])]);
    let bytes = s.build();
    let len = bytes.len();
    let ck = open(bytes).unwrap();
    let (r, u) = measured(|| ck.read_to("x", &mut std::io::sink()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert!(u.largest <= frame_size as usize + open_budget(len), "read_to: {u:?}");
    eprintln!("read_to of a 64 MiB frame stored in 1 byte, {len}-byte file: {u:?}");
}

#[test]
fn the_counter_sees_allocations() {
    let _g = serial();
    let (v, u) = measured(|| vec![1u8; 3 << 20]);
    assert!(u.largest >= 3 << 20 && u.peak >= 3 << 20, "{u:?}");
    drop(v);
}
