//! Collecting shared frames (docs/STORE.md, "Collecting frames"):
//! empty what an earlier collection trashed once the grace has passed and
//! no lease older than the trashing is live, putting back what a manifest
//! names; then mark every frame the manifests name and trash the others
//! that are older than the grace.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::gc::GcReport;
use super::layout;
use super::manifest::Source;
use super::store::Store;
use crate::backend::{BackendExt, ObjectMeta, PutMode};
use crate::error::{Error, Result};

/// How much later than a trashed frame's time a lease may have been taken
/// and still count as taken before the trashing: object stores give
/// modification times in whole seconds (S3), so the trash time may read up
/// to a second early, and a saver's clock may differ from the store's by a
/// few seconds. Holding the trash longer only delays its deletion.
const TRASH_TIME_SLACK_NS: u64 = 10_000_000_000;

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// The hash a frame object's key names, below `root`.
fn hash_of(key: &str, root: &str) -> Option<[u8; 32]> {
    let rest = key.strip_prefix(root)?;
    let (h2, h62) = rest.split_once('/')?;
    (h2.len() == 2 && h62.len() == 62).then_some(())?;
    blake3::Hash::from_hex(format!("{h2}{h62}")).ok().map(|h| *h.as_bytes())
}

impl Store {
    /// Runs the frame collection; counts what it did in `report`.
    ///
    /// # Errors
    /// Backend errors; what was done before one stays done.
    pub(crate) fn collect_frames(&self, now: u64, report: &mut GcReport) -> Result<()> {
        let grace = u64::try_from(self.opts.orphan_grace.as_nanos()).unwrap_or(u64::MAX);
        let past_grace = |m: &ObjectMeta| m.modified.is_some_and(|t| now.saturating_sub(ns(t)) > grace);

        // One read of the manifests serves both steps: it comes after the
        // lease check (so a save whose lease is gone has its manifest in
        // it) and after the listing of `frames/` (so a frame written after
        // the listing is not looked at).
        let trash_root = self.object_key(layout::TRASH_FRAMES);
        let trashed: Vec<ObjectMeta> = self.backend.list(&trash_root)?.into_iter().filter(past_grace).collect();
        let oldest_lease = if trashed.is_empty() { None } else { self.oldest_live_lease(now)? };
        let frames_root = self.object_key(layout::FRAMES);
        let listed: Vec<ObjectMeta> = self.backend.list(&frames_root)?.into_iter().filter(past_grace).collect();
        if trashed.is_empty() && listed.is_empty() {
            return Ok(());
        }
        let Some(referenced) = self.referenced_frames()? else { return Ok(()) };

        // Empty the trash.
        for m in trashed {
            let Some(hash) = hash_of(&m.key, &trash_root) else { continue };
            let trashed_at = m.modified.map_or(0, ns);
            if oldest_lease.is_some_and(|t| t <= trashed_at.saturating_add(TRASH_TIME_SLACK_NS)) {
                continue; // a lease taken before the trashing (or too near it to tell) is live
            }
            if referenced.contains(&hash) {
                let home = self.object_key(&layout::frame_key(&hash));
                if !self.backend.exists(&home)? {
                    self.backend.copy(&m.key, &home)?;
                }
                self.backend.delete(&m.key)?;
                report.frames_restored += 1;
            } else {
                self.backend.delete(&m.key)?;
                report.frames_deleted += 1;
            }
        }

        // Trash what no manifest names.
        for m in listed {
            let Some(hash) = hash_of(&m.key, &frames_root) else { continue };
            if referenced.contains(&hash) {
                continue;
            }
            let trash = self.object_key(&layout::trash_frame_key(&hash));
            self.backend.copy(&m.key, &trash)?;
            self.backend.delete(&m.key)?;
            // A save that found `frames/x` between the copy and the delete
            // took its lease after the copy was written: written again, the
            // copy's time (the trash time the emptying compares leases
            // with) follows the delete.
            match self.backend.get(&trash) {
                Ok(bytes) => {
                    self.backend.put(&trash, bytes, PutMode::Overwrite)?;
                }
                Err(Error::NotFound { .. }) => {} // emptied since by another collection
                Err(e) => return Err(e),
            }
            report.frames_trashed += 1;
        }
        Ok(())
    }

    /// Every frame hash a manifest under `entries/` or `quarantine/` names
    /// (committed or not); `None` if some manifest cannot be read, since
    /// what it names is then unknown and nothing may be taken.
    fn referenced_frames(&self) -> Result<Option<HashSet<[u8; 32]>>> {
        let mut out = HashSet::new();
        for root in [layout::ENTRIES, layout::QUARANTINE] {
            for m in self.backend.list(&self.object_key(root))? {
                if !m.key.ends_with(".data") {
                    continue;
                }
                match self.read_manifest(&m.key, m.size) {
                    Ok(Some(manifest)) => out.extend(manifest.pieces.iter().filter_map(|p| match p.source {
                        Source::Frame { hash } | Source::Xor { base: hash, .. } => Some(hash),
                        Source::Inline { .. } => None,
                    })),
                    Ok(None) => {}
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => {
                        let locator = self.locator(&m.key);
                        log::warn!("{locator}: unreadable manifest, so no shared frame is collected: {e}");
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some(out))
    }
}
