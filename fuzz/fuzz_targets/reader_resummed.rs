//! Fuzzes the reader behind its checksums: the header, trailer and index
//! checksums are recomputed after mutation, so arbitrary index contents reach
//! the index decoder and everything after it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = data.to_vec();
    cairn_fuzz::fix_checksums(&mut file);
    cairn_fuzz::exercise(file);
});
