//! `cairn unpack`: write every chunk to a file named after it.
//!
//! Chunk names come from the file, so they are untrusted: only names made of
//! plain path components (no absolute paths, `..`, `.`, empty components or
//! NUL) are written, and a name that would escape the target directory stops
//! the command before any chunk is written (exit 1: the file's content is at
//! fault, not the arguments). Existing symlinks are never followed below the
//! target directory. Each chunk is streamed to a library temp file beside
//! its target and published durably (sync, rename, directory sync), so a
//! chunk found damaged half way leaves no partial file behind, and a killed
//! unpack leaves only temp files the orphan sweep removes.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, Context};
use cairn::io::{create_dir_durable, dir_of, sync_dir, StdFs, TempFile};
use cairn::Checkpoint;
use indicatif::ProgressBar;

use crate::output;
use crate::progress;

/// Arguments of `cairn unpack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to read: a path, or a URL (`s3://bucket/key`,
    /// `gs://…`, `az://…`, `file:///path`).
    file: String,
    #[command(flatten)]
    base: crate::target::BaseArg,
    /// Directory to write into; created if missing.
    dir: PathBuf,
}

/// The relative path a chunk name maps to, or why it is refused.
pub fn relative_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.contains('\0') {
        return Err("contains a NUL byte");
    }
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    let mut out = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" => return Err("has an empty path component"),
            "." | ".." => return Err("has a `.` or `..` path component"),
            _ => {}
        }
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) => out.push(c),
            _ => return Err("has a path component that is not a plain name"),
        }
    }
    Ok(out)
}

/// Creates `rel`'s parent directories under `root`, refusing to pass through
/// anything that is not a real directory (a symlink could lead outside).
fn make_parents(root: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut dir = root.to_path_buf();
    let parents: Vec<_> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
    for c in parents {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(anyhow!("{} exists and is not a directory", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
                // The files published inside are durable only if their
                // directory's own entry is.
                sync_dir(dir_of(&dir))?;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("checking {}", dir.display()))),
        }
    }
    Ok(())
}

/// Streams one chunk into a temp file beside `target` and publishes it
/// durably (sync, rename, directory sync). On any error the temp file is
/// removed and nothing is at `target` that was not there before; a process
/// killed half way leaves a temp file that the library's orphan sweep knows.
fn write_chunk(ck: &Checkpoint, name: &str, target: &Path, bar: &ProgressBar) -> anyhow::Result<()> {
    let mut temp =
        TempFile::create(target).with_context(|| format!("creating a temp file for {}", target.display()))?;
    ck.read_to(name, &mut bar.wrap_write(&mut temp))?;
    temp.publish().with_context(|| format!("publishing {}", target.display()))?;
    Ok(())
}

/// Runs `cairn unpack`.
///
/// # Errors
/// A refused chunk name; I/O errors; a corrupt chunk (named in the error).
pub fn run(args: Args) -> anyhow::Result<()> {
    let ck = crate::target::open_with_base(&args.file, &args.base)?;
    let mut plan = Vec::with_capacity(ck.chunks().len());
    for c in ck.chunks() {
        let rel = relative_path(&c.name).map_err(|why| {
            anyhow!(
                "refusing to unpack chunk {:?}: its name {why}; only relative names of plain components are \
                 written inside {}",
                c.name,
                args.dir.display()
            )
        })?;
        plan.push((c.name.as_str(), rel));
    }
    create_dir_durable(&StdFs, &args.dir).with_context(|| format!("creating {}", args.dir.display()))?;

    let total = ck.chunks().iter().map(|c| c.raw_len).sum();
    let bar = progress::bytes_bar(total, "unpacking");
    for (name, rel) in &plan {
        make_parents(&args.dir, rel).with_context(|| format!("unpacking chunk {:?}", name))?;
        let target = args.dir.join(rel);
        write_chunk(&ck, name, &target, &bar)
            .with_context(|| format!("unpacking chunk {:?} to {}", name, target.display()))?;
    }
    drop(bar);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "unpacked {} chunks ({}) from {} into {}",
        plan.len(),
        output::bytes(total),
        args.file,
        args.dir.display()
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_map_to_relative_paths() {
        assert_eq!(relative_path("w").unwrap(), PathBuf::from("w"));
        assert_eq!(relative_path("layer0/w.bin").unwrap(), PathBuf::from("layer0/w.bin"));
        assert_eq!(relative_path("..x").unwrap(), PathBuf::from("..x"));
    }

    #[test]
    fn escaping_names_are_refused() {
        for bad in ["", "/abs", "../x", "a/../../x", "a/..", ".", "./a", "a//b", "a/", "/", "a\0b"] {
            assert!(relative_path(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(relative_path("/abs").unwrap_err(), "is an absolute path");
    }
}
