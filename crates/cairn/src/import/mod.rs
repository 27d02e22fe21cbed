//! Moving data in from the formats programs hand-roll or exchange, and out
//! to safetensors: each importer reads its format the way the program that
//! wrote it did, checks what that program checked, and writes a cairn
//! checkpoint that keeps everything the source held. Sources are read
//! under the project's decoding rules: lengths are checked against the
//! source before anything is allocated for them, and an error names the
//! part and offset.

mod anomalyzer;
mod apr2;
mod ringkernel;
mod safetensors;
mod sniff;

pub use self::anomalyzer::{from_anomalyzer, DATA_CHUNK, LOG_FILE, SNAPSHOT_FILE};
#[cfg(feature = "testing")]
pub use self::apr2::from_apr2_bytes;
pub use self::apr2::{from_apr2, SAMPLES_CHUNK};
pub use self::ringkernel::from_ringkernel;
#[cfg(feature = "testing")]
pub use self::ringkernel::from_ringkernel_bytes;
#[cfg(feature = "testing")]
pub use self::safetensors::from_safetensors_bytes;
pub use self::safetensors::{from_safetensors, to_safetensors, ExportReport, ImportReport};
pub use self::sniff::{sniff, Format};
