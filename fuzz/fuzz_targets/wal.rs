//! Fuzzes log recovery with arbitrary segment bytes: the input is split into
//! up to two segment files, which are scanned, verified, opened under every
//! recovery mode and read back. Nothing may panic, verify must call corrupt
//! exactly what opening refuses, and whatever a mode accepts must read back
//! with increasing LSNs.
#![no_main]

use std::path::Path;

use cairn::io::SimFs;
use cairn::wal::{RecoveryMode, Wal, WalOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sim = SimFs::new();
    // The first byte picks the segment boundaries, so inputs from one clean
    // log (the seed corpus) can reach multi-segment layouts.
    let (split, rest) = data.split_first().map_or((0, data), |(s, r)| (*s as usize, r));
    let cut = (split * rest.len() / 256).min(rest.len());
    let (a, b) = rest.split_at(cut);
    // The second segment is named by the first LSN its header claims.
    let claimed = b.get(16..24).and_then(|x| x.try_into().ok()).map_or(2, u64::from_le_bytes);
    for (first, bytes) in [(1u64, a), (claimed, b)] {
        if !bytes.is_empty() {
            let name = format!("/log/{first:020}.wal");
            sim.put_durable(Path::new(&name), bytes).unwrap();
        }
    }
    let verified = cairn::wal::verify(&sim, Path::new("/log"));
    for mode in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail, RecoveryMode::Salvage] {
        let opened = Wal::open_with(sim.shared(), "/log", WalOptions::default().recovery(mode));
        // One scanner, one set of rules: what opening refuses as damage,
        // verify reports as damage, and the other way round. (Strict opens
        // before and changes nothing unless the log is clean.)
        if let (RecoveryMode::TolerateTornTail, Ok(report)) = (mode, &verified) {
            match &opened {
                Ok(_) => assert!(!report.is_corrupt(), "open accepted what verify calls corrupt"),
                Err(cairn::Error::Corrupt { .. }) => assert!(report.is_corrupt(), "open refused what verify accepts"),
                Err(_) => {}
            }
        }
        let Ok(wal) = opened else { continue };
        let mut prev = 0;
        for r in wal.iter_from(0) {
            let Ok(r) = r else { break };
            assert!(r.lsn > prev, "LSNs went backwards");
            prev = r.lsn;
        }
    }
});
