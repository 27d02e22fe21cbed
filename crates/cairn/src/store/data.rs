//! Opening an entry's data lazily: mapped from its file on local disk (so
//! raw tensors are views of the file), ranged reads on object storage, and
//! the check against what its save recorded (length, then BLAKE3 of every
//! byte, streamed) before anything of it is trusted.

use super::entry::EntryInfo;
use super::manifest;
use super::pieced::PiecedRead;
use super::store::Store;
use crate::backend::open_checkpoint;
use crate::error::{Error, Result};
use crate::format::{Checkpoint, ReadOptions};

impl Store {
    /// The checkpoint stored under backend key `k`, opened: its header,
    /// trailer and index read and checked, its frames read on demand.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such object; [`Error::Corrupt`]
    /// for a damaged header, trailer or index; backend errors.
    pub(crate) fn open_data(&self, k: &str) -> Result<Checkpoint> {
        match self.backend.open_file(k)? {
            Some(file) => {
                let len = file.metadata().map_err(|e| Error::io("reading metadata of", self.locator(k), e))?.len();
                let mut last = [0u8; 8];
                let is_manifest = len >= 8
                    && std::os::unix::fs::FileExt::read_exact_at(&file, &mut last, len - 8).is_ok()
                    && manifest::is_manifest(&last);
                if is_manifest {
                    return self.open_pieced(k, len);
                }
                Checkpoint::from_file(file, self.locator(k), &ReadOptions::default())
            }
            None => {
                let len = self.backend.head(k)?.size;
                let last = if len >= 8 { self.backend.get_range(k, len - 8..len)? } else { bytes::Bytes::new() };
                if manifest::is_manifest(&last) {
                    return self.open_pieced(k, len);
                }
                open_checkpoint(self.backend.clone(), k)
            }
        }
    }

    /// An entry stored as a manifest: its checkpoint read through its
    /// pieces (docs/STORE.md, "Shared frames").
    fn open_pieced(&self, k: &str, len: u64) -> Result<Checkpoint> {
        let locator = self.locator(k);
        let source = PiecedRead::open(self.backend.clone(), k, len, &self.prefix, &locator)?;
        Checkpoint::open_ranged(Box::new(source), locator)
    }

    /// Checks an opened entry's data (from `k`) against the length and
    /// digest recorded at save: every byte is hashed, as the reader sees it.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the entry when either differs; read errors.
    pub(crate) fn check_opened(&self, k: &str, ck: &Checkpoint, e: &EntryInfo) -> Result<()> {
        if ck.file_len() != e.bytes {
            return Err(self.entry_corrupt(k, format!("{} bytes stored, {} saved", ck.file_len(), e.bytes)));
        }
        let digest = ck.file_blake3()?;
        if digest.to_hex().as_str() != e.digest {
            return Err(self.entry_corrupt(
                k,
                format!("BLAKE3 {} does not match the {} recorded at save", digest.to_hex(), e.digest),
            ));
        }
        Ok(())
    }

    /// The entry `e` of the key at `hp`, opened and checked against its
    /// record.
    ///
    /// # Errors
    /// As [`open_data`](Self::open_data) and [`check_opened`](Self::check_opened).
    pub(crate) fn open_verified(&self, hp: &str, e: &EntryInfo) -> Result<Checkpoint> {
        let k = self.object_key(&super::layout::data_key(hp, &e.id));
        let ck = self.open_data(&k)?;
        self.check_opened(&k, &ck, e)?;
        Ok(ck)
    }

    pub(crate) fn entry_corrupt(&self, k: &str, detail: String) -> Error {
        Error::Corrupt { file: self.locator(k), what: "store entry".into(), offset: 0, detail }
    }
}
