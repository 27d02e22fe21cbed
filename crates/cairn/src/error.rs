//! The library's error type.

use std::io;
use std::path::PathBuf;

/// What went wrong, with enough context (file, part, offset) to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed. The OS error is the `source`, not part of
    /// the message, so error chains print it once.
    #[error("{op} {path}")]
    Io {
        /// What cairn was doing, e.g. "opening", "syncing directory of".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file, directory or stored object does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// The missing path, or the object as `<backend URL>/<key>`.
        what: String,
        /// What reported it: the operating system's error for files, the
        /// object store's for objects; none when cairn itself found nothing.
        #[source]
        source: Option<BoxError>,
    },
    /// A create-only put found an object already stored under its key.
    #[error("already exists: {what}")]
    AlreadyExists {
        /// The object, as `<backend URL>/<key>`.
        what: String,
        /// What reported it, where something else than cairn did.
        #[source]
        source: Option<BoxError>,
    },
    /// A conditional operation found the object not in the state it asked
    /// for (another writer changed it).
    #[error("precondition failed for {what}: {detail}")]
    Precondition {
        /// The object, as `<backend URL>/<key>`.
        what: String,
        /// What did not hold.
        detail: String,
        /// What reported it, where something else than cairn did.
        #[source]
        source: Option<BoxError>,
    },
    /// A storage backend failed for another reason (network, service,
    /// permissions, I/O).
    #[error("{op} {what}")]
    Backend {
        /// What cairn was doing, e.g. "uploading", "listing".
        op: &'static str,
        /// The object or prefix, as `<backend URL>/<key>`.
        what: String,
        /// The backend's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored bytes failed a checksum or a structural check.
    #[error("corrupt {what} at offset {offset} in {file}: {detail}")]
    Corrupt {
        /// The file (or "memory") the bytes came from.
        file: String,
        /// The damaged part: "header", "trailer", "index", `chunk "w" frame 3`, ...
        what: String,
        /// Byte offset of the damaged part in the file.
        offset: u64,
        /// What check failed.
        detail: String,
    },
    /// The file needs a feature this version of cairn does not know.
    #[error("unsupported {feature} in {file}")]
    Unsupported {
        /// The file that needs it.
        file: String,
        /// The feature, e.g. "format version 7" or "required feature bit 12".
        feature: String,
    },
    /// No chunk has this name.
    #[error("no chunk named {name:?} in {file}")]
    ChunkNotFound {
        /// The file searched.
        file: String,
        /// The name asked for.
        name: String,
    },
    /// The caller asked for something the data cannot give, e.g. a zero-copy
    /// view of a compressed chunk or a tensor of the wrong dtype.
    #[error("chunk {name:?}: {detail}")]
    Mismatch {
        /// The chunk involved.
        name: String,
        /// What does not match.
        detail: String,
    },
    /// The caller's argument was invalid (duplicate chunk name, bad shape,
    /// bad option, a URL cairn cannot use), and nothing else.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A change the state of the data does not allow, e.g. removing a
    /// pinned entry. Nothing was changed.
    #[error("refused: {what}: {reason}")]
    Refused {
        /// What was to be changed.
        what: String,
        /// Why it was refused, and what would allow it.
        reason: String,
    },
    /// An invariant of cairn's own failed: a bug, not the caller's doing or
    /// the data's.
    #[error("internal error (please report it): {0}")]
    Internal(String),
    /// A chunk could not be encoded or decoded as the requested serde type.
    #[error("chunk {name:?}: serde: {detail}")]
    Serde {
        /// The chunk involved.
        name: String,
        /// The serializer's message.
        detail: String,
    },
    /// A writer (a checkpoint writer, a log) failed earlier and accepts
    /// nothing more: what reached its file is unknown. A new checkpoint
    /// writer starts again; a log recovers what is on disk when reopened.
    #[error("{what} accepts nothing more after an earlier failure: {cause}")]
    Poisoned {
        /// What was poisoned: `checkpoint writer for <path>`, `log <dir>`.
        what: String,
        /// The failure that poisoned it.
        cause: String,
    },
    /// A delta file was read without the checkpoint it was written against.
    #[error("{file} is a delta file and needs its base checkpoint (file digest {digest}); open it with that base (`--base BASE` on the command line)")]
    BaseNeeded {
        /// The delta file.
        file: String,
        /// The base's file digest, hex.
        digest: String,
    },
    /// Another process (or another open handle) holds this log or store.
    #[error("{path} is in use by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// An error and its sources as one line, `outer: inner: innermost`; a
/// source whose text the line already ends with (context that repeats its
/// cause) is not written again.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// A source error of any kind (an I/O error, the object store's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with cairn's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error, turning `NotFound` into [`Error::NotFound`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        // Damage found below an I/O interface (a store entry's pieces) stays
        // damage.
        let corrupt =
            source.get_ref().is_some_and(|e| matches!(e.downcast_ref::<Error>(), Some(Error::Corrupt { .. })));
        if corrupt {
            if let Some(Ok(inner)) = source.into_inner().map(|b| b.downcast::<Error>()) {
                return *inner;
            }
            return Error::Internal("a decoding error was lost".into());
        }
        if source.kind() == io::ErrorKind::NotFound {
            Error::NotFound { what: path.display().to_string(), source: Some(Box::new(source)) }
        } else {
            Error::Io { op, path, source }
        }
    }

    /// A copy of a decoding error, for results that are computed once and
    /// handed out many times. Other kinds (never cached) become an
    /// [`Error::Internal`] holding their message.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Error::Corrupt { file, what, offset, detail } => {
                Error::Corrupt { file: file.clone(), what: what.clone(), offset: *offset, detail: detail.clone() }
            }
            Error::Unsupported { file, feature } => Error::Unsupported { file: file.clone(), feature: feature.clone() },
            Error::BaseNeeded { file, digest } => Error::BaseNeeded { file: file.clone(), digest: digest.clone() },
            other => Error::Internal(other.to_string()),
        }
    }

    /// Whether this error means stored data is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}
