//! What a key may be: a relative `/`-separated path that means the same on
//! every backend and is safe to turn into a local file path.

use crate::error::{Error, Result};

/// The longest key, in bytes (S3 allows 1,024; leave room for a prefix).
pub const MAX_KEY_LEN: usize = 512;

/// Checks that `key` is usable on every backend: 1 to [`MAX_KEY_LEN`]
/// bytes of segments separated by single `/`; each segment made of ASCII
/// letters, digits, `-`, `_`, `.`, `=` and `+`, and not starting with `.`
/// (so no `.`/`..` and no name a temp file could take).
///
/// # Errors
/// [`Error::InvalidArgument`] saying what is wrong.
pub fn check_key(key: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("invalid object key {key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("longer than 512 bytes");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty segment (leading, trailing or double '/')");
        }
        if segment.starts_with('.') {
            return bad("a segment starts with '.'");
        }
        if let Some(c) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.=+".contains(*c))) {
            return bad(&format!("character {c:?} is not allowed"));
        }
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a key-like string that may end in `/`
/// or in a partial segment.
///
/// # Errors
/// [`Error::InvalidArgument`] as for [`check_key`].
pub fn check_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/') {
        _ if prefix.is_empty() => Ok(()),
        Some(dir) => check_key(dir),
        None => check_key(prefix),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_pass() {
        for k in ["a", "runs/7/step-000100.cairn", "x=1+y_2-z", "a.b.c/d"] {
            check_key(k).unwrap();
        }
    }

    #[test]
    fn unsafe_keys_are_refused() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for k in [
            "",
            "/abs",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "./a",
            ".hidden",
            "a/.x.cairn-tmp",
            "a\\b",
            "a b",
            "é",
            "a\0",
            &long,
        ] {
            assert!(check_key(k).is_err(), "{k:?} was accepted");
        }
    }

    #[test]
    fn prefixes_may_end_in_a_slash() {
        for p in ["", "runs/", "runs/7", "runs/7/step-"] {
            check_prefix(p).unwrap();
        }
        assert!(check_prefix("/").is_err());
        assert!(check_prefix("../").is_err());
    }
}
