//! The one parser of the places cairn reads and writes: plain paths,
//! `file://` URLs, `memory://`, and object storage URLs
//! (`s3://bucket/key`, `gs://…`, `az://…`). Checkpoints, stores, copies and
//! the object-storage backend all read their URLs through it.

use crate::error::{Error, Result};

/// Where a path or URL points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A path on the local file system: a plain path, or what follows
    /// `file://`.
    Path(&'a str),
    /// `memory://`: a store of this process only.
    Memory,
    /// An object storage URL: `scheme://bucket/key`. The key is everything
    /// after the bucket and its `/` (an object's key, or a prefix), empty
    /// for a whole bucket.
    Object {
        /// `s3`, `gs`, `az`, …
        scheme: &'a str,
        /// The bucket or container.
        bucket: &'a str,
        /// The key or prefix in it, without leading `/`.
        key: &'a str,
    },
}

/// Whether `target` is a URL (`scheme://…`) rather than a plain path.
pub fn is_url(target: &str) -> bool {
    target.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Parses a path or URL. Schemes other than `file` and `memory` are taken
/// for object storage; whether this build speaks them is decided when a
/// backend is opened.
///
/// # Errors
/// [`Error::InvalidArgument`] for an object storage URL without a bucket.
pub fn parse_url(target: &str) -> Result<Target<'_>> {
    let Some((scheme, rest)) = target.split_once("://").filter(|_| is_url(target)) else {
        return Ok(Target::Path(target));
    };
    match scheme {
        "file" => Ok(Target::Path(rest)),
        "memory" => Ok(Target::Memory),
        _ => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::InvalidArgument(format!("{target:?}: no bucket")));
            }
            Ok(Target::Object { scheme, bucket, key: key.trim_start_matches('/') })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_files_memory_and_objects() {
        assert_eq!(parse_url("ckpt/a.cairn").unwrap(), Target::Path("ckpt/a.cairn"));
        assert_eq!(parse_url("/abs/a b").unwrap(), Target::Path("/abs/a b"));
        assert_eq!(parse_url("file:///srv/x").unwrap(), Target::Path("/srv/x"));
        assert_eq!(parse_url("memory://").unwrap(), Target::Memory);
        assert_eq!(parse_url("s3://b/k/x").unwrap(), Target::Object { scheme: "s3", bucket: "b", key: "k/x" });
        assert_eq!(parse_url("gs://b").unwrap(), Target::Object { scheme: "gs", bucket: "b", key: "" });
        assert_eq!(parse_url("az://c/").unwrap(), Target::Object { scheme: "az", bucket: "c", key: "" });
        assert!(parse_url("s3://").is_err() && parse_url("s3:///k").is_err());
        // Not a scheme: a path that happens to hold "://".
        assert_eq!(parse_url("a b://c").unwrap(), Target::Path("a b://c"));
        assert!(!is_url("://x") && is_url("s3+x.y-z://b"));
    }
}
