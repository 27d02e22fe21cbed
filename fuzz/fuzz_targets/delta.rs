//! Fuzzes delta files read against a base: the input becomes a delta file
//! of a fixed base (its `DELTA` bit, the base's identity and every checksum
//! but the frames' made right), so that mangled base references, XOR
//! payloads and frame tables reach the delta decoder. Reading must never
//! panic, hang or allocate without bound, and the read paths must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cairn_fuzz::exercise_delta(data.to_vec());
});
