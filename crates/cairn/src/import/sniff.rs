//! Recognising a foreign source by its first bytes (or a directory by what
//! it holds), so that `cairn import` needs no `--from` and a checkpoint
//! command given a foreign file can say what it looks like.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A source format cairn imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A safetensors file: u64 LE header length, a JSON header, tensor data.
    Safetensors,
    /// trueno's tuner samples: `"APR2"`, u32 LE length, JSON, CRC32.
    Apr2,
    /// ringkernel's checkpoints: the `RKCKPT01` header, metadata, chunks.
    Ringkernel,
    /// anomalyzer's state directory: `anomalyzer.snap` and `anomalyzer.wal`.
    Anomalyzer,
}

impl Format {
    /// Every format, in the order `cairn import --help` lists them.
    pub const ALL: &'static [Format] = &[Format::Safetensors, Format::Apr2, Format::Ringkernel, Format::Anomalyzer];

    /// The name `--from` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Apr2 => "apr2",
            Format::Ringkernel => "ringkernel",
            Format::Anomalyzer => "anomalyzer",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Format::ALL.iter().copied().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format {s:?}; cairn imports {}", names.join(", "))
        })
    }
}

/// Bytes read to recognise a file.
const HEAD: usize = 16;

/// The format `path` looks like, from its first bytes (a directory from
/// the files it holds), or `None` if it looks like none cairn imports (a
/// cairn checkpoint included).
///
/// # Errors
/// [`Error::Io`] or [`Error::NotFound`] if `path` cannot be read.
pub fn sniff(path: impl AsRef<Path>) -> Result<Option<Format>> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
    if meta.is_dir() {
        return Ok(super::anomalyzer::is_state_dir(path).then_some(Format::Anomalyzer));
    }
    let mut head = Vec::with_capacity(HEAD);
    std::fs::File::open(path)
        .and_then(|f| f.take(HEAD as u64).read_to_end(&mut head))
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(sniff_bytes(&head, meta.len()))
}

/// The format a file of `len` bytes starting with `head` looks like.
pub(crate) fn sniff_bytes(head: &[u8], len: u64) -> Option<Format> {
    if head.starts_with(super::apr2::MAGIC) {
        return Some(Format::Apr2);
    }
    if head.starts_with(&super::ringkernel::MAGIC.to_le_bytes()) {
        return Some(Format::Ringkernel);
    }
    // safetensors: a header length that fits in the file, then a JSON object.
    if let (Some(n), Some(b'{')) = (head.get(..8), head.get(8)) {
        let mut n8 = [0u8; 8];
        n8.copy_from_slice(n);
        let n = u64::from_le_bytes(n8);
        if n >= 2 && n.checked_add(8).is_some_and(|end| end <= len) {
            return Some(Format::Safetensors);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_is_recognised_by_its_header_length_and_brace() {
        let mut f = 12u64.to_le_bytes().to_vec();
        f.extend_from_slice(b"{\"a\":\"b\"}   ");
        assert_eq!(sniff_bytes(&f, f.len() as u64), Some(Format::Safetensors));
        // A length past the end, or no JSON object: not safetensors.
        assert_eq!(sniff_bytes(&f, 10), None);
        f[8] = b'[';
        assert_eq!(sniff_bytes(&f, f.len() as u64), None);
        assert_eq!(sniff_bytes(b"\x89CAIRN\r\n", 64), None);
        assert_eq!(sniff_bytes(b"APR2\x02\0\0\0[]", 14), Some(Format::Apr2));
    }

    #[test]
    fn names_parse_and_unknown_ones_list_the_formats() {
        assert_eq!("safetensors".parse::<Format>(), Ok(Format::Safetensors));
        let e = "pickle".parse::<Format>().unwrap_err();
        assert!(e.contains("safetensors"), "{e}");
    }
}
