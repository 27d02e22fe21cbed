//! Fuzzes the checkpoint reader with arbitrary bytes: opening, reading every
//! chunk (streamed and whole) and verifying must never panic, hang or
//! allocate without bound, and the read paths must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cairn_fuzz::exercise(data.to_vec());
});
