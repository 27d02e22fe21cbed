//! Committing a checkpoint made of several objects on any backend: the
//! data objects go first under names no one else uses, then a small
//! manifest naming them, with their sizes and BLAKE3 digests, is published
//! last with a create-only put. Readers trust only what a manifest names,
//! and check each object against it. See docs/DURABILITY.md.
//!
//! Layout under the checkpoint's name `N`:
//!
//! | key | what |
//! |---|---|
//! | `N/MANIFEST` | the manifest (JSON), written once |
//! | `N/data/<nonce>/<part>` | the parts of the commit with that nonce |

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::api::{Backend, BackendExt, PutMode};
use super::{check_key, locator};
use crate::error::{Error, Result};

/// What a manifest's `format` field holds.
pub const MANIFEST_FORMAT: &str = "cairn-manifest";
/// The manifest version this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// The largest manifest read back: far more than thousands of parts need.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Publish attempts when the outcome of a put is unknown (a timeout after
/// the request may have landed).
const PUBLISH_ATTEMPTS: u32 = 3;

/// One object a manifest names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPart {
    /// The part's name within the checkpoint.
    pub name: String,
    /// The object's key.
    pub key: String,
    /// Its length in bytes.
    pub size: u64,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
}

/// The published record of a multi-object checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The checkpoint's name (the key prefix).
    pub name: String,
    /// Unique to the commit that wrote it; tells a retried publish its own
    /// manifest from someone else's.
    pub nonce: String,
    /// Seconds since the Unix epoch when it was published.
    pub created_at: u64,
    /// The parts, in the order they were added.
    pub parts: Vec<ManifestPart>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// The part called `name`.
    pub fn part(&self, name: &str) -> Option<&ManifestPart> {
        self.parts.iter().find(|p| p.name == name)
    }
}

fn manifest_key(name: &str) -> String {
    format!("{name}/MANIFEST")
}

/// A commit in progress: add parts, then [`publish`](Commit::publish).
/// Dropped unpublished, its parts stay invisible (no manifest names them);
/// [`remove_unpublished`] deletes them.
#[derive(Debug)]
pub struct Commit {
    backend: Arc<dyn Backend>,
    name: String,
    nonce: String,
    parts: Vec<ManifestPart>,
    metadata: serde_json::Map<String, serde_json::Value>,
}

impl Commit {
    /// Starts a commit of the checkpoint called `name` (a key prefix).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that is not a valid key.
    pub fn begin(backend: Arc<dyn Backend>, name: &str) -> Result<Self> {
        check_key(name)?;
        Ok(Commit {
            backend,
            name: name.to_string(),
            nonce: crate::util::nonce(),
            parts: Vec::new(),
            metadata: serde_json::Map::new(),
        })
    }

    /// This commit's nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Sets a metadata field of the manifest.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: serde_json::Value) {
        self.metadata.insert(key.into(), value);
    }

    /// Uploads one part.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a part name that is not a key segment
    /// or is used twice; put errors.
    pub fn put_part(&mut self, part: &str, data: Bytes) -> Result<()> {
        check_key(part)?;
        if part.contains('/') || self.parts.iter().any(|p| p.name == part) {
            return Err(Error::InvalidArgument(format!("part name {part:?} has a '/' or is used twice")));
        }
        let key = format!("{}/data/{}/{part}", self.name, self.nonce);
        let blake3 = blake3::hash(&data).to_hex().to_string();
        let size = data.len() as u64;
        self.backend.put(&key, data, PutMode::Overwrite)?;
        self.parts.push(ManifestPart { name: part.to_string(), key, size, blake3 });
        Ok(())
    }

    /// Publishes the manifest, create-only. If a put fails without saying
    /// whether it landed, it is retried; finding a manifest with this
    /// commit's nonce counts as success.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if another commit published this name
    /// first; backend errors after the retries.
    pub fn publish(self) -> Result<Manifest> {
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_string(),
            version: MANIFEST_VERSION,
            name: self.name.clone(),
            nonce: self.nonce.clone(),
            created_at,
            parts: self.parts,
            metadata: self.metadata,
        };
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::Internal(format!("encoding the manifest of {}: {e}", self.name)))?;
        let key = manifest_key(&self.name);
        let mut last = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            match self.backend.put(&key, Bytes::from(body.clone()), PutMode::Create) {
                Ok(_) => return Ok(manifest),
                Err(e @ (Error::AlreadyExists { .. } | Error::Backend { .. })) => {
                    // Ours, from an attempt whose reply was lost? Or theirs?
                    match read_manifest(&*self.backend, &self.name) {
                        Ok(found) if found.nonce == manifest.nonce => return Ok(manifest),
                        Ok(_) => {
                            return Err(Error::AlreadyExists { what: locator(self.backend.url(), &key), source: None })
                        }
                        Err(_) if matches!(e, Error::AlreadyExists { .. }) => return Err(e),
                        Err(_) => last = Some(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Internal("publish was never attempted".into())))
    }
}

/// Reads and checks the manifest of the checkpoint called `name`.
///
/// # Errors
/// [`Error::NotFound`] if none is published; [`Error::Corrupt`] if it does
/// not parse or names objects outside its checkpoint.
pub fn read_manifest(backend: &dyn Backend, name: &str) -> Result<Manifest> {
    check_key(name)?;
    let key = manifest_key(name);
    let what = locator(backend.url(), &key);
    let corrupt = |detail: String| Error::Corrupt { file: what.clone(), what: "manifest".into(), offset: 0, detail };
    let size = backend.head(&key)?.size;
    if size > MAX_MANIFEST_BYTES {
        return Err(corrupt(format!("{size} bytes is over the {MAX_MANIFEST_BYTES}-byte limit")));
    }
    let body = backend.get(&key)?;
    let m: Manifest = serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
    if m.format != MANIFEST_FORMAT || m.version != MANIFEST_VERSION || m.name != name {
        return Err(corrupt(format!("format {:?} version {} name {:?}", m.format, m.version, m.name)));
    }
    let own = format!("{name}/data/{}/", m.nonce);
    if let Some(p) = m.parts.iter().find(|p| !p.key.starts_with(&own) || check_key(&p.key).is_err()) {
        return Err(corrupt(format!("part {:?} is stored outside the commit: {:?}", p.name, p.key)));
    }
    Ok(m)
}

/// Reads a part the manifest names and checks its size and digest.
///
/// # Errors
/// [`Error::InvalidArgument`] for a part the manifest does not name;
/// [`Error::NotFound`] if its object is gone; [`Error::Corrupt`] if it does
/// not match the manifest.
pub fn read_part(backend: &dyn Backend, manifest: &Manifest, part: &str) -> Result<Bytes> {
    let p =
        manifest.part(part).ok_or_else(|| Error::InvalidArgument(format!("{} has no part {part:?}", manifest.name)))?;
    let data = backend.get(&p.key)?;
    let what = locator(backend.url(), &p.key);
    if data.len() as u64 != p.size {
        let detail = format!("{} bytes, the manifest says {}", data.len(), p.size);
        return Err(Error::Corrupt { file: what, what: format!("part {part:?}"), offset: 0, detail });
    }
    if blake3::hash(&data).to_hex().as_str() != p.blake3 {
        let detail = "BLAKE3 digest differs from the manifest's".to_string();
        return Err(Error::Corrupt { file: what, what: format!("part {part:?}"), offset: 0, detail });
    }
    Ok(data)
}

/// Deletes data objects of the checkpoint called `name` that its published
/// manifest does not name (left by commits that lost a race or died).
/// Does nothing while no manifest is published, since a commit may still be
/// uploading. Returns how many objects went.
///
/// # Errors
/// Backend errors.
pub fn remove_unpublished(backend: &dyn Backend, name: &str) -> Result<usize> {
    let manifest = match read_manifest(backend, name) {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    let keep = format!("{name}/data/{}/", manifest.nonce);
    let mut removed = 0;
    for m in backend.list(&format!("{name}/data/"))? {
        if !m.key.starts_with(&keep) {
            backend.delete(&m.key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether a checkpoint called `name` is published.
///
/// # Errors
/// Backend errors other than the manifest being missing.
pub fn is_published(backend: &dyn Backend, name: &str) -> Result<bool> {
    backend.exists(&manifest_key(name))
}
