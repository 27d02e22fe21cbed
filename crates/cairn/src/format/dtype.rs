//! Chunk kinds, tensor element types, and the Rust types that map to them.

use std::fmt;
use std::str::FromStr;

/// What a chunk holds. Stored as one byte; readers keep unknown values as
/// [`ChunkKind::Other`] rather than failing, since the kind is a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// Opaque bytes.
    Bytes,
    /// A tensor: see the chunk's dtype and shape.
    Tensor,
    /// A serde value encoded as JSON.
    Json,
    /// A serde value encoded with postcard.
    Postcard,
    /// A kind written by a newer version.
    Other(u8),
}

impl ChunkKind {
    /// The stored tag.
    pub fn tag(self) -> u8 {
        match self {
            ChunkKind::Bytes => 0,
            ChunkKind::Tensor => 1,
            ChunkKind::Json => 2,
            ChunkKind::Postcard => 3,
            ChunkKind::Other(t) => t,
        }
    }

    /// The kind for a stored tag.
    pub fn from_tag(tag: u8) -> Self {
        match tag {
            0 => ChunkKind::Bytes,
            1 => ChunkKind::Tensor,
            2 => ChunkKind::Json,
            3 => ChunkKind::Postcard,
            t => ChunkKind::Other(t),
        }
    }
}

impl fmt::Display for ChunkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkKind::Bytes => f.write_str("bytes"),
            ChunkKind::Tensor => f.write_str("tensor"),
            ChunkKind::Json => f.write_str("json"),
            ChunkKind::Postcard => f.write_str("postcard"),
            ChunkKind::Other(t) => write!(f, "other({t})"),
        }
    }
}

/// A tensor element type: the dtypes safetensors knows, by the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    BF16,
    F32,
    F64,
}

const ALL: [DType; 13] = [
    DType::Bool,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::U32,
    DType::I32,
    DType::U64,
    DType::I64,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
];

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// The stored tag; 0 means "no dtype".
    pub fn tag(self) -> u8 {
        match self {
            DType::Bool => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::U32 => 6,
            DType::I32 => 7,
            DType::U64 => 8,
            DType::I64 => 9,
            DType::F16 => 10,
            DType::BF16 => 11,
            DType::F32 => 12,
            DType::F64 => 13,
        }
    }

    /// The dtype for a stored tag, if known.
    pub fn from_tag(tag: u8) -> Option<Self> {
        ALL.into_iter().find(|d| d.tag() == tag)
    }

    /// The lower-case name, e.g. `"f32"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::U16 => "u16",
            DType::I16 => "i16",
            DType::U32 => "u32",
            DType::I32 => "i32",
            DType::U64 => "u64",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = String;

    /// Parses a dtype name, case-insensitively (`f32`, `F32`, `bf16`, `BOOL`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        ALL.into_iter().find(|d| d.name() == lower).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|d| d.name()).collect();
            format!("unknown dtype {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// A Rust type that can be stored as, and viewed from, a tensor chunk.
///
/// # Contract
/// `DTYPE.size()` equals `size_of::<Self>()` and every bit pattern of that
/// size is a valid value (the `Pod` bound).
pub trait Element: bytemuck::Pod {
    /// The dtype this type is stored as.
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {
        $(impl Element for $t { const DTYPE: DType = DType::$d; })*
    };
}

element!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    u64 => U64, i64 => I64, f32 => F32, f64 => F64,
    half::f16 => F16, half::bf16 => BF16,
);
