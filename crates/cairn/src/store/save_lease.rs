//! A save's lease, taken when the save first needs it: at once where the
//! orphan grace is short (so that a collection never takes the data of a
//! save in progress for an orphan), else before the save's first look at
//! a shared frame (so that a collection empties no trashed frame the save
//! may name, docs/STORE.md, "Shared frames"). A small save that shares nothing
//! takes none, and pays for no lease object.

use std::sync::Mutex;

use super::lease::Lease;
use super::store::Store;
use crate::backend::Durability;
use crate::error::Result;

/// The lease of one save, held from its first need until the save is
/// committed or given up (a lease dropped is released).
pub(crate) struct SaveLease {
    store: Store,
    hp: String,
    id: String,
    lease: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for SaveLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveLease").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SaveLease {
    /// The lease of the save of entry `id` of the key at `hp`, not yet
    /// taken.
    pub(crate) fn new(store: &Store, hp: &str, id: &str) -> Self {
        SaveLease { store: store.background_handle(), hp: hp.to_string(), id: id.to_string(), lease: Mutex::new(None) }
    }

    /// Takes the lease unless it is held.
    ///
    /// # Errors
    /// The backend's, writing the lease object.
    pub(crate) fn ensure(&self) -> Result<()> {
        let mut held = crate::util::lock(&self.lease);
        if held.is_none() {
            *held = Some(self.store.take_lease(&self.hp, &self.id, Durability::Volatile)?);
        }
        Ok(())
    }

    /// Whether the lease is held.
    pub(crate) fn is_held(&self) -> bool {
        crate::util::lock(&self.lease).is_some()
    }

    /// Renews the lease where it is held.
    ///
    /// # Errors
    /// The backend's.
    pub(crate) fn renew(&self) -> Result<()> {
        match crate::util::lock(&self.lease).as_ref() {
            Some(l) => l.renew(),
            None => Ok(()),
        }
    }

    /// Releases the lease where it is held.
    ///
    /// # Errors
    /// The backend's, deleting the lease object.
    pub(crate) fn release(&self) -> Result<()> {
        match crate::util::lock(&self.lease).take() {
            Some(l) => l.release(),
            None => Ok(()),
        }
    }
}
