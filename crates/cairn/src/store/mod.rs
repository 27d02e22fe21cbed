//! The keyed checkpoint store's building blocks: fingerprints of
//! configurations and of the hardware, and keys made from them or from any
//! string, stable across platforms and releases and never used raw in a
//! path; entry descriptions and the rules that select the best or latest.

mod fingerprint;
mod hardware;
mod key;
mod select;

pub use fingerprint::{Fingerprint, FingerprintBuilder, FINGERPRINT_CONTEXT};
pub use hardware::{Gpu, Hardware};
pub use key::Key;
pub use select::{rank, select, Direction, EntryInfo, EntryKind, Select};
