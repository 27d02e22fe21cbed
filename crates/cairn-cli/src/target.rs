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

/// `--base BASE`: the checkpoint a delta file was written against.
#[derive(Debug, Default, clap::Args)]
pub struct BaseArg {
    /// The full checkpoint a delta file was written against (a path or a
    /// URL); needed to read a delta file's unchanged and XOR frames.
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
}

/// Opens `target` and, when `base` names one, gives it that base: a base
/// that is not the one the file was written against is damage (exit 3).
///
/// # Errors
/// As [`open`]; the base's open errors; [`cairn::Error::Corrupt`] for
/// another base.
pub fn open_with_base(target: &str, base: &BaseArg) -> anyhow::Result<Checkpoint> {
    let ck = open(target)?;
    let Some(base_target) = base.base.as_deref() else { return Ok(ck) };
    let b = std::sync::Arc::new(open(base_target)?);
    ck.with_base(b)
        .map_err(usage_if_invalid)
        .with_context(|| format!("reading {target} against the base {base_target}"))
}
