//! Parsers for the `NAME=PATH`, `NAME=PATH:DTYPE:DIMS` and `KEY=VALUE`
//! arguments of `pack`. Used as clap value parsers, so a bad spec is a
//! usage error (exit 2) reported by clap.

use std::path::PathBuf;
use std::str::FromStr;

use cairn::DType;

/// `--chunk NAME=PATH`: a file stored as opaque bytes.
#[derive(Debug, Clone)]
pub struct ChunkArg {
    /// Chunk name.
    pub name: String,
    /// File to read.
    pub path: PathBuf,
}

/// `--tensor NAME=PATH:DTYPE:D0,D1,...`: a file of raw little-endian
/// elements stored as a tensor. An empty dimension list is a scalar.
#[derive(Debug, Clone)]
pub struct TensorArg {
    /// Chunk name.
    pub name: String,
    /// File to read.
    pub path: PathBuf,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, row-major.
    pub shape: Vec<u64>,
}

/// `--meta KEY=VALUE`: VALUE as JSON if it parses, else as a JSON string.
#[derive(Debug, Clone)]
pub struct MetaArg {
    /// Metadata key.
    pub key: String,
    /// Metadata value.
    pub value: serde_json::Value,
}

/// Splits at the first `=`; names cannot contain `=`, paths and values can.
fn split_name(s: &str, what: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, rest)) if !name.is_empty() && !rest.is_empty() => Ok((name.to_string(), rest.to_string())),
        _ => Err(format!("expected {what}, got {s:?}")),
    }
}

impl FromStr for ChunkArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, path) = split_name(s, "NAME=PATH")?;
        Ok(ChunkArg { name, path: PathBuf::from(path) })
    }
}

impl FromStr for TensorArg {
    type Err = String;

    /// Splits from the right, so the path may itself contain `:`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "NAME=PATH:DTYPE:D0,D1,...";
        let (name, rest) = split_name(s, FORM)?;
        let mut parts = rest.rsplitn(3, ':');
        let (Some(dims), Some(dtype), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("expected {FORM}, got {s:?}"));
        };
        if path.is_empty() {
            return Err(format!("expected {FORM}, got {s:?} (empty path)"));
        }
        let dtype = DType::from_str(dtype)?;
        let shape = if dims.trim().is_empty() {
            Vec::new()
        } else {
            dims.split(',')
                .map(|d| d.trim().parse::<u64>().map_err(|_| format!("dimension {d:?} in {s:?} is not a whole number")))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(TensorArg { name, path: PathBuf::from(path), dtype, shape })
    }
}

impl FromStr for MetaArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((key, raw)) = s.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("expected KEY=VALUE, got {s:?}"));
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
        Ok(MetaArg { key: key.to_string(), value })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunk_specs() {
        let c: ChunkArg = "w=dir/a=b.bin".parse().unwrap();
        assert_eq!((c.name.as_str(), c.path.to_str().unwrap()), ("w", "dir/a=b.bin"));
        assert!("w".parse::<ChunkArg>().is_err());
        assert!("=p".parse::<ChunkArg>().is_err());
        assert!("w=".parse::<ChunkArg>().is_err());
    }

    #[test]
    fn tensor_specs() {
        let t: TensorArg = "w=c:/x.bin:F32:2, 3".parse().unwrap();
        assert_eq!((t.name.as_str(), t.path.to_str().unwrap()), ("w", "c:/x.bin"));
        assert_eq!((t.dtype, t.shape), (DType::F32, vec![2, 3]));
        assert_eq!("s=x:f64:".parse::<TensorArg>().unwrap().shape, Vec::<u64>::new());
        assert!("w=x.bin:f33:2".parse::<TensorArg>().unwrap_err().contains("unknown dtype"));
        assert!("w=x.bin:f32:2,x".parse::<TensorArg>().is_err());
        assert!("w=x.bin:f32".parse::<TensorArg>().is_err());
        assert!("w=:f32:2".parse::<TensorArg>().is_err());
    }

    #[test]
    fn meta_values() {
        let v = |s: &str| s.parse::<MetaArg>().unwrap().value;
        assert_eq!(v("lr=0.5"), json!(0.5));
        assert_eq!(v("tags=[\"a\",1]"), json!(["a", 1]));
        assert_eq!(v("note=hello world"), json!("hello world"));
        assert_eq!(v("empty="), json!(""));
        assert_eq!(v("eq=a=b"), json!("a=b"));
        assert!("=1".parse::<MetaArg>().is_err());
        assert!("novalue".parse::<MetaArg>().is_err());
    }
}
