//! Fuzzes the APR2 importer: arbitrary bytes must be refused with an error
//! or import into a checkpoint that reads back; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = cairn::import::from_apr2_bytes(data) {
        cairn_fuzz::exercise(bytes);
    }
});
