//! Decoded key indexes, remembered by their version tag, so that a handle
//! that reads the same index again (every save reads its key's index) does
//! not decode it again. An index changes only by a put that gives it a new
//! tag, so a remembered copy under the tag just read is the index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::records::IndexDoc;

/// Keys whose decoded index a handle keeps; past it, it forgets them all.
const MAX_KEYS: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct IndexDocs(Mutex<HashMap<String, (String, Arc<IndexDoc>)>>);

impl IndexDocs {
    /// The index of the key at `hp` whose version tag is `etag`, if
    /// remembered.
    pub(crate) fn get(&self, hp: &str, etag: &str) -> Option<IndexDoc> {
        let map = crate::util::lock(&self.0);
        let (tag, doc) = map.get(hp)?;
        (tag == etag).then(|| IndexDoc::clone(doc))
    }

    /// Remembers `doc` as the index of `hp` under version tag `etag`.
    pub(crate) fn put(&self, hp: &str, etag: &str, doc: &IndexDoc) {
        let mut map = crate::util::lock(&self.0);
        if map.len() >= MAX_KEYS && !map.contains_key(hp) {
            map.clear();
        }
        map.insert(hp.to_string(), (etag.to_string(), Arc::new(doc.clone())));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_doc_is_returned_only_under_the_tag_it_was_stored_with() {
        let docs = IndexDocs::default();
        docs.put("a", "t1", &IndexDoc::new("key a"));
        assert_eq!(docs.get("a", "t1").unwrap().key, "key a");
        assert!(docs.get("a", "t2").is_none());
        assert!(docs.get("b", "t1").is_none());
        docs.put("a", "t2", &IndexDoc::new("key a2"));
        assert!(docs.get("a", "t1").is_none());
        assert_eq!(docs.get("a", "t2").unwrap().key, "key a2");
    }

    #[test]
    fn it_forgets_everything_past_its_bound() {
        let docs = IndexDocs::default();
        for i in 0..=MAX_KEYS {
            docs.put(&i.to_string(), "t", &IndexDoc::new(""));
        }
        assert!(docs.get("0", "t").is_none());
        assert!(docs.get(&MAX_KEYS.to_string(), "t").is_some());
    }
}
