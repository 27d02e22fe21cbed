//! Fuzzes the safetensors importer: arbitrary bytes must be refused with an
//! error or import into a checkpoint that reads back; never a panic, a
//! hang, or an allocation beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = cairn::import::from_safetensors_bytes(data) {
        cairn_fuzz::exercise(bytes);
    }
});
