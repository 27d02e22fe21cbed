//! Where a command reads or writes a checkpoint: a plain path, or a URL
//! (`s3://bucket/key`, `gs://…`, `az://…`, `file:///path`).

use anyhow::Context;
use cairn::Checkpoint;

use crate::exit::usage_if_invalid;

/// Opens the checkpoint at `target` (path or URL); objects are read with
/// ranged gets, so only what a command needs is transferred.
///
/// # Errors
/// The library's, with `opening TARGET` as context; a URL the library
/// refuses (unknown scheme, no key) is a usage error.
pub fn open(target: &str) -> anyhow::Result<Checkpoint> {
    Checkpoint::open_url(target).map_err(usage_if_invalid).with_context(|| format!("opening {target}"))
}
