//! Where the store keeps things on its backend, below the store's root:
//!
//! | key | what |
//! |---|---|
//! | `index/<h2>/<h62>` | one key's index: the user key and every entry's info (JSON), updated by compare-and-swap |
//! | `entries/<h2>/<h62>/<id>.data` | an entry's checkpoint, written create-only |
//! | `entries/<h2>/<h62>/<id>.info` | the entry's info (JSON), written create-only after the data: the entry exists once this does |
//! | `quarantine/<h2>/<h62>/<id>.{data,info}` | a damaged entry moved aside, with the reason in its info |
//! | `leases/<h2>/<h62>/<id>.<nonce>` | a reader's or a saver's claim on an entry, with its expiry (JSON) |
//! | `frames/<h2>/<h62>` | a frame shared by entries, named by the BLAKE3 of its bytes (docs/STORE.md, "Shared frames") |
//! | `trash/frames/<h2>/<h62>` | a shared frame a collection found unreferenced, until it is emptied |
//! | `USAGE` | the entry count and bytes the last collection found (JSON) |
//!
//! `<h2>/<h62>` is the hex of the key's hash split after two digits, so no
//! user text reaches a path and no directory grows huge on local disk. An
//! entry's objects sit side by side in its key's folder rather than in a
//! folder of their own, so removing entries leaves no empty folders behind.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const INDEX: &str = "index/";
pub(crate) const ENTRIES: &str = "entries/";
pub(crate) const QUARANTINE: &str = "quarantine/";
pub(crate) const LEASES: &str = "leases/";
pub(crate) const USAGE: &str = "USAGE";
pub(crate) const FRAMES: &str = "frames/";
pub(crate) const TRASH_FRAMES: &str = "trash/frames/";

/// The hex of a frame hash split after two digits.
fn hash_path(hash: &[u8; 32]) -> String {
    let hex = blake3::Hash::from(*hash).to_hex();
    format!("{}/{}", hex.get(..2).unwrap_or_default(), hex.get(2..).unwrap_or_default())
}

pub(crate) fn frame_key(hash: &[u8; 32]) -> String {
    format!("{FRAMES}{}", hash_path(hash))
}

pub(crate) fn trash_frame_key(hash: &[u8; 32]) -> String {
    format!("{TRASH_FRAMES}{}", hash_path(hash))
}

/// Where `repair` moves a damaged frame object: below the quarantine, out
/// of reach of saves (which would share it) and collections.
pub(crate) const QUARANTINE_FRAMES: &str = "quarantine/frames/";

pub(crate) fn index_key(hp: &str) -> String {
    format!("{INDEX}{hp}")
}

pub(crate) fn entry_prefix(hp: &str) -> String {
    format!("{ENTRIES}{hp}/")
}

pub(crate) fn data_key(hp: &str, id: &str) -> String {
    format!("{ENTRIES}{hp}/{id}.data")
}

pub(crate) fn info_key(hp: &str, id: &str) -> String {
    format!("{ENTRIES}{hp}/{id}.info")
}

pub(crate) fn quarantine_key(hp: &str, id: &str, part: &str) -> String {
    format!("{QUARANTINE}{hp}/{id}.{part}")
}

pub(crate) fn lease_prefix(hp: &str, id: &str) -> String {
    format!("{LEASES}{hp}/{id}.")
}

/// Splits `<root><h2>/<h62>/<id>.<part>` (below one of the prefixes)
/// into its hash path, id and part.
pub(crate) fn split_entry_key<'a>(key: &'a str, root: &str) -> Option<(String, &'a str, &'a str)> {
    let rest = key.strip_prefix(root)?;
    let mut it = rest.splitn(3, '/');
    let (h2, h62, name) = (it.next()?, it.next()?, it.next()?);
    let (id, part) = name.split_once('.')?;
    let ok = h2.len() == 2 && h62.len() == 62 && !id.is_empty() && !part.is_empty() && !part.contains('/');
    ok.then(|| (format!("{h2}/{h62}"), id, part))
}

/// Splits `index/<h2>/<h62>` into its hash path.
pub(crate) fn split_index_key(key: &str) -> Option<String> {
    let rest = key.strip_prefix(INDEX)?;
    let (h2, h62) = rest.split_once('/')?;
    (h2.len() == 2 && h62.len() == 62 && !h62.contains('/')).then(|| rest.to_string())
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// A new entry id: the time in hex, so ids sort in the order entries were
/// made (across processes, as far as their clocks agree), then a nonce,
/// then who made it: a hash of the host name and the process id, so that a
/// collection on the same host can tell the data of a save whose process
/// died from one in progress without a lease (see [`saver_died`]).
pub(crate) fn new_id(created_at: u64) -> String {
    let nonce = crate::util::nonce();
    format!(
        "{created_at:016x}-{}-{:08x}p{}",
        nonce.get(..12).unwrap_or_default(),
        host_tag(super::hardware::host_name()),
        std::process::id()
    )
}

fn host_tag(host: &str) -> u32 {
    let h = xxhash_rust::xxh3::xxh3_64(host.as_bytes());
    (h >> 32) as u32
}

/// Whether `id` names its saver (ids made before they did, do not) as a
/// process of this host that no longer runs. `false` whenever unsure.
pub(crate) fn saver_died(id: &str) -> bool {
    let Some((_, who)) = id.rsplit_once('-') else { return false };
    let Some((host, pid)) = who.split_once('p') else { return false };
    let ours = format!("{:08x}", host_tag(super::hardware::host_name()));
    host == ours && pid.parse::<u32>().is_ok() && !crate::io::process_alive(pid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::check_key;
    use crate::store::Key;

    #[test]
    fn keys_round_trip_and_are_valid_backend_keys() {
        let key = Key::new("../../etc/passwd");
        let hp = key.hash_path();
        let id = new_id(now_ns());
        for k in [index_key(&hp), data_key(&hp, &id), info_key(&hp, &id), quarantine_key(&hp, &id, "data")] {
            check_key(&k).unwrap();
        }
        assert_eq!(split_index_key(&index_key(&hp)), Some(hp.clone()));
        let dk = data_key(&hp, &id);
        let (h, i, p) = split_entry_key(&dk, ENTRIES).unwrap();
        assert_eq!((h.as_str(), i, p), (hp.as_str(), id.as_str(), "data"));
        assert_eq!(split_entry_key("entries/zz/short/x.data", ENTRIES), None);
        assert_eq!(split_entry_key(&format!("entries/{hp}/nodot"), ENTRIES), None);
    }

    #[test]
    fn ids_name_their_saver() {
        let id = new_id(now_ns());
        assert!(!saver_died(&id), "{id}: this process is alive");
        let (head, _) = id.rsplit_once('p').unwrap();
        // No pid can be this large on Linux (the maximum is 2^22).
        assert!(saver_died(&format!("{head}p4294967294")));
        // Ids of older versions, and of other hosts, say nothing.
        assert!(!saver_died("18ed3a6741279ccc-c49aa7812550"));
        assert!(!saver_died(&format!("{}-00000000p4294967294", &id[..29])));
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = new_id(1_000);
        let b = new_id(2_000);
        assert!(a < b);
        assert_ne!(new_id(5), new_id(5));
    }
}
