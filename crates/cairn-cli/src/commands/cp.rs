//! `cairn cp SRC DST`: copies a checkpoint between any two places (paths,
//! `file://`, `s3://`, `gs://`, `az://`), then opens the copy and verifies
//! every frame and the digest against the source's. When that check fails
//! because another writer replaced the destination in the meantime (a
//! different file there, a different version tag on the object), the copy
//! lost a race: exit 1, not damage.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use cairn::backend::{parse_url, resolve, BackendExt, Location, PutMode, Target};
use cairn::io::TempFile;

use crate::exit::{self, usage_if_invalid, Integrity};
use crate::{output, progress, target};

/// Arguments of `cairn cp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint to copy: a path or a URL.
    src: String,
    /// Where to put the copy (replaced atomically if it exists): a path or
    /// a URL.
    dst: String,
    /// To copy a delta file: its base, against which the copy is verified.
    #[command(flatten)]
    base: target::BaseArg,
}

/// One end of a copy.
enum End {
    Path(PathBuf),
    Object(Location),
}

fn end(target: &str) -> anyhow::Result<End> {
    if let Target::Path(path) = parse_url(target).map_err(usage_if_invalid)? {
        return Ok(End::Path(PathBuf::from(path)));
    }
    Ok(End::Object(resolve(target).map_err(usage_if_invalid).with_context(|| format!("opening {target}"))?))
}

/// Bytes read at a time, from files and objects alike.
const BLOCK: usize = 8 << 20;

/// Reads an object front to back in ranged gets of [`BLOCK`] bytes.
struct ObjectReader {
    loc: Location,
    pos: u64,
    len: u64,
    buf: bytes::Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.len {
                return Ok(0);
            }
            let end = (self.pos + BLOCK as u64).min(self.len);
            self.buf = self.loc.backend.get_range(&self.loc.key, self.pos..end).map_err(std::io::Error::other)?;
            if self.buf.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the object ended early"));
            }
            self.pos += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len());
        let chunk = self.buf.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&chunk);
        }
        Ok(n)
    }
}

/// What a copy put at its destination, so that a check that fails there
/// can tell the copy's own damage from another writer's replacement.
enum Published {
    /// The file renamed into place, kept open: while it is, its inode
    /// number cannot be reused by a file that replaces it.
    File(File),
    /// The version tag the put returned, where the backend gave one.
    Object(Option<String>),
}

/// Copies the `len` bytes at `src` to `dst`, atomically at the
/// destination, with a progress bar labelled `label`. Returns what was
/// published.
fn copy_bytes(src: &str, dst: &str, len: u64, label: &str) -> anyhow::Result<Published> {
    let reader: Box<dyn Read> = match end(src)? {
        End::Path(p) => Box::new(File::open(&p).with_context(|| format!("opening {}", p.display()))?),
        End::Object(loc) => Box::new(ObjectReader { loc, pos: 0, len, buf: bytes::Bytes::new() }),
    };
    let bar = progress::bytes_bar(len, label);
    let mut reader = bar.wrap_read(reader);
    match end(dst)? {
        End::Path(p) => {
            let temp = TempFile::create(&p).with_context(|| format!("creating {}", p.display()))?;
            let file = temp.file().context("the temp file is closed")?;
            let mut buf = vec![0u8; BLOCK];
            let mut at = 0u64;
            loop {
                let n = reader.read(&mut buf).with_context(|| format!("reading {src}"))?;
                let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else { break };
                file.write_at(data, at).with_context(|| format!("writing {}", p.display()))?;
                at += n as u64;
            }
            let ours =
                File::open(temp.temp_path()).with_context(|| format!("opening {}", temp.temp_path().display()))?;
            temp.publish().with_context(|| format!("publishing {}", p.display()))?;
            Ok(Published::File(ours))
        }
        End::Object(loc) => {
            let (_, put) = loc
                .backend
                .put_from(&loc.key, &mut reader, PutMode::Overwrite)
                .with_context(|| format!("uploading to {dst}"))?;
            Ok(Published::Object(put.etag))
        }
    }
}

/// Whether `dst` holds something other than what this copy published
/// there: another writer replaced (or removed) it. `false` when it is
/// still the copy, or when that cannot be told (a backend without version
/// tags, an error asking), so that damage is never explained away.
fn replaced(published: &Published, dst: &str) -> bool {
    match (published, end(dst)) {
        (Published::File(ours), Ok(End::Path(p))) => {
            let Ok(ours) = ours.metadata() else { return false };
            // The entry itself: a rename replaces a symlink, never follows it.
            match std::fs::symlink_metadata(&p) {
                Ok(now) => (now.dev(), now.ino()) != (ours.dev(), ours.ino()),
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            }
        }
        (Published::Object(Some(ours)), Ok(End::Object(loc))) => match loc.backend.head(&loc.key) {
            Ok(meta) => meta.etag.is_some_and(|now| now != *ours),
            Err(e) => matches!(e, cairn::Error::NotFound { .. }),
        },
        _ => false,
    }
}

/// Opens the copy at `dst` and checks it is the checkpoint at `src`:
/// length and digest, then every frame.
fn check_copy(src: &str, dst: &str, len: u64, digest: [u8; 32], base: &target::BaseArg) -> anyhow::Result<()> {
    let copy = target::open_with_base(dst, base)?;
    if copy.file_len() != len || copy.digest() != digest {
        return Err(anyhow::Error::new(Integrity(format!(
            "the copy at {dst} is not the checkpoint at {src}: {} bytes, digest {}, expected {len} bytes, digest {}",
            copy.file_len(),
            output::hex(&copy.digest()),
            output::hex(&digest)
        ))));
    }
    let report = copy.verify().with_context(|| format!("verifying {dst}"))?;
    if !report.is_ok() {
        return Err(anyhow::Error::new(Integrity(format!("the copy at {dst} fails verification: {report:?}"))));
    }
    Ok(())
}

/// Copies the checkpoint at `src` to `dst` and verifies the copy: every
/// frame, and the digest against the source's. Returns the bytes copied
/// and the digest.
///
/// # Errors
/// Errors opening, reading or writing either end; [`Integrity`] (exit 3)
/// if the copy does not verify; a runtime error (exit 1) if another writer
/// replaced the destination before the copy could be checked there, which
/// is a lost race, not damage.
/// A delta file is verified against `base`, and without one is refused
/// before anything is copied (its frames could not be checked).
pub fn copy_verified(src: &str, dst: &str, base: &target::BaseArg) -> anyhow::Result<(u64, [u8; 32])> {
    let source = target::open_with_base(src, base)?;
    let (len, digest) = (source.file_len(), source.digest());
    if let (Some(needed), None) = (source.base_digest(), &base.base) {
        return Err(anyhow::Error::new(cairn::Error::BaseNeeded {
            file: src.to_string(),
            digest: output::hex(&needed),
        })
        .context(format!("copying {src}: the copy could not be verified")));
    }
    drop(source);
    let published = copy_bytes(src, dst, len, "copying")?;
    match check_copy(src, dst, len, digest, base) {
        Ok(()) => Ok((len, digest)),
        // Whatever the check read belongs to another writer: its failure
        // says nothing about this copy, so it is not reported as damage.
        Err(e) if replaced(&published, dst) => Err(anyhow!(
            "{dst} was replaced during the copy by another writer, so the copy could not be checked there (the \
             check read: {})",
            exit::message(&e)
        )),
        Err(e) => Err(e),
    }
}

/// Runs `cairn cp`.
///
/// # Errors
/// As [`copy_verified`].
pub fn run(args: Args) -> anyhow::Result<()> {
    let (len, digest) = copy_verified(&args.src, &args.dst, &args.base)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "copied {} to {}: {len} bytes, verified, digest {}", args.src, args.dst, output::hex(&digest))?;
    Ok(())
}
