//! `cairn store gc`.

use anyhow::Context;
use cairn::store::{GcOptions, Retention, Store};

use crate::exit::usage;
use crate::output;

/// Arguments of `cairn store gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Evict least recently used entries until the store fits: bytes, or
    /// with a unit (`500MiB`, `2GB`).
    #[arg(long, value_name = "N")]
    max_bytes: Option<String>,
    /// Evict entries unused for this long (`7d`, `12h`).
    #[arg(long, value_name = "DURATION")]
    ttl: Option<humantime::Duration>,
    /// Keep the N newest entries of each key.
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Keep the N best entries of each key.
    #[arg(long, value_name = "N")]
    keep_best: Option<usize>,
    /// One JSON object describing what was done.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, a: Args) -> anyhow::Result<()> {
    let mut opts = GcOptions::default();
    if let Some(s) = &a.max_bytes {
        let n: bytesize::ByteSize = s.parse().map_err(|e| usage(format!("--max-bytes {s:?}: {e}")))?;
        opts = opts.max_bytes(n.as_u64());
    }
    if let Some(t) = a.ttl {
        opts = opts.ttl(t.into());
    }
    if a.keep_last.is_some() || a.keep_best.is_some() {
        let mut r = Retention::default();
        if let Some(n) = a.keep_last {
            r = r.keep_last(n);
        }
        if let Some(n) = a.keep_best {
            r = r.keep_best(n);
        }
        opts = opts.retention(r);
    }
    let r = store.gc(&opts).context("collecting the store")?;
    if a.json {
        let removed: Vec<serde_json::Value> = r
            .removed
            .iter()
            .map(|x| serde_json::json!({"key": x.key, "id": x.id, "bytes": x.bytes, "reason": x.reason}))
            .collect();
        return output::print_json(&serde_json::json!({
            "keys": r.keys, "entries": r.entries, "bytes": r.bytes, "removed": removed,
            "adopted": r.adopted, "finished_removals": r.finished_removals, "orphans": r.orphans,
            "stale_leases": r.stale_leases, "temp_files": r.temp_files,
        }));
    }
    let freed: u64 = r.removed.iter().map(|x| x.bytes).sum();
    println!(
        "removed {} entries ({}); {} entries in {} keys left ({})",
        r.removed.len(),
        output::bytes(freed),
        r.entries,
        r.keys,
        output::bytes(r.bytes)
    );
    for x in &r.removed {
        println!("  {} {} ({}, {})", output::safe(&x.key), x.id, x.reason, output::bytes(x.bytes));
    }
    println!(
        "clean-up: {} entries indexed, {} removals finished, {} orphans, {} stale leases, {} temp files",
        r.adopted, r.finished_removals, r.orphans, r.stale_leases, r.temp_files
    );
    Ok(())
}
