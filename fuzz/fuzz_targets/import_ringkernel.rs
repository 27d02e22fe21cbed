//! Fuzzes the RKCKPT01 importer: arbitrary bytes (with the CRC after the
//! header fixed up, so that mutations reach the metadata and chunk
//! parsers) must be refused with an error or import into a checkpoint that
//! reads back; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = data.to_vec();
    if let (Some(tail), true) = (file.get(64..), file.len() >= 64) {
        let crc = crc32fast::hash(tail);
        file[32..36].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(bytes) = cairn::import::from_ringkernel_bytes(&file) {
        cairn_fuzz::exercise(bytes);
    }
});
