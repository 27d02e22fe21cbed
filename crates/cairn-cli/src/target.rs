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
    Checkpoint::open_url(target).map_err(|e| foreign_or(target, e)).with_context(|| format!("opening {target}"))
}

/// A local file cairn refused as damaged that is in fact another program's
/// format: says so (exit 1, not 3). Other errors as [`usage_if_invalid`].
fn foreign_or(target: &str, e: cairn::Error) -> anyhow::Error {
    foreign(target, &e).unwrap_or_else(|| usage_if_invalid(e))
}

/// If `e` refused `target` as damaged and `target` is a local file in a
/// format cairn imports, the error to give instead: "not a cairn
/// checkpoint (looks like FORMAT: try `cairn import`)", exit 1.
pub fn foreign(target: &str, e: &cairn::Error) -> Option<anyhow::Error> {
    if !matches!(e, cairn::Error::Corrupt { .. }) {
        return None;
    }
    let path = target.strip_prefix("file://").unwrap_or(target);
    if path.contains("://") {
        return None;
    }
    let format = cairn::import::sniff(path).ok().flatten()?;
    Some(anyhow::anyhow!("{target} is not a cairn checkpoint (looks like {format}: try `cairn import`)"))
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
