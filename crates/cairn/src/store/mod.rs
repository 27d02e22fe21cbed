//! The keyed checkpoint store's building blocks: fingerprints of
//! configurations and of the hardware, and keys made from them or from any
//! string, stable across platforms and releases and never used raw in a
//! path.

mod fingerprint;
mod hardware;
mod key;

pub use fingerprint::{Fingerprint, FingerprintBuilder, FINGERPRINT_CONTEXT};
pub use hardware::{Gpu, Hardware};
pub use key::Key;
