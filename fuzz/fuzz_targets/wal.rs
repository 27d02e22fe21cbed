//! Fuzzes log recovery with arbitrary segment bytes: the input is split into
//! up to two segment files, which are scanned, verified, opened under every
//! recovery mode and read back. Nothing may panic, and whatever a mode
//! accepts must read back with increasing LSNs.
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
    let _ = cairn::wal::verify(&sim, Path::new("/log"));
    for mode in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail, RecoveryMode::Salvage] {
        let Ok(wal) = Wal::open_with(sim.shared(), "/log", WalOptions::default().recovery(mode)) else { continue };
        let mut prev = 0;
        for r in wal.iter_from(0) {
            let Ok(r) = r else { break };
            assert!(r.lsn > prev, "LSNs went backwards");
            prev = r.lsn;
        }
    }
});
