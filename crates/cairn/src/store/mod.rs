//! The keyed checkpoint store: many checkpoints per key (a configuration,
//! a machine, a run), the best, the latest or a given one found through
//! one index read, on any backend, by many threads and processes at once.
//!
//! - Keys are any string or a [`Fingerprint`] of a configuration and of the
//!   [`Hardware`]; they are hashed, never used raw in a path.
//! - [`Store::save_with`], [`save_bytes`](Store::save_bytes) and
//!   [`save_file`](Store::save_file) add an entry with its objective,
//!   iteration, kind and metadata; [`Store::lookup`] finds one by
//!   [`Select`], verified, falling back past damaged entries, which are
//!   quarantined.
//! - Retention ([`Retention`]) runs after each save; eviction (a byte
//!   budget, least recently used first, and a TTL) runs when due, from the
//!   indexes alone; [`Store::gc`] also cleans up what crashes left.
//! - Every index update is a compare-and-swap put (file locks on local
//!   disk, ETag conditions on object storage), so concurrent writers never
//!   lose an entry; the layout and the protocol are in `layout.rs` and
//!   docs/STORE.md.

mod cache;
mod copy_in;
mod data;
mod delta_base;
mod entry;
mod facts;
mod fingerprint;
mod frame_gc;
mod frame_put;
mod gc;
mod hardware;
mod holdings;
mod index;
mod index_docs;
mod key;
mod layout;
mod lease;
mod lookup;
mod manifest;
mod options;
mod pieced;
mod records;
mod remove;
mod repair;
mod retention;
mod save;
mod save_async;
mod save_lease;
mod select;
mod sink;
// The store itself, as docs/STORE.md names it.
#[allow(clippy::module_inception)]
mod store;
mod verify;
mod verify_frames;
mod view;

pub use cache::CacheStats;
pub use entry::{EntryInfo, EntryKind};
pub use fingerprint::{Fingerprint, FingerprintBuilder, FINGERPRINT_CONTEXT};
pub use gc::{GcOptions, GcReport, Removed};
pub use hardware::{Gpu, Hardware};
pub use key::Key;
pub use lease::Lease;
pub use options::{Retention, StoreOptions};
pub use repair::RepairReport;
pub use save::{SaveInfo, ENTRY_FACTS_KEY};
pub use save_async::{SaveHandle, SaveStats};
pub use select::{candidates, rank, select, Direction, Select};
pub use sink::{EntrySink, Stored};
pub use store::{default_location, Found, Store};
pub use verify::{EntryProblem, StoreReport};
