//! `cairn store verify [--json]`: exit 3 when anything is damaged.

use anyhow::Context;
use cairn::store::Store;

use crate::exit::Integrity;
use crate::output;

/// Arguments of `cairn store verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object: counts and every finding.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, a: Args) -> anyhow::Result<()> {
    let r = store.verify().context("verifying the store")?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("ok".into(), serde_json::Value::Bool(r.is_clean()));
        }
        output::print_json(&v)?;
    } else {
        println!("{} entries in {} keys ({}) checked", r.entries, r.keys, output::bytes(r.bytes));
        for (label, list) in [
            ("corrupt", &r.corrupt),
            ("missing", &r.missing),
            ("damaged info", &r.damaged_infos),
            ("unindexed", &r.unindexed),
            ("quarantined", &r.quarantined),
        ] {
            for p in list {
                println!("{label}: {} {}: {}", output::safe(&p.key), p.id, output::safe(&p.detail));
            }
        }
        for hp in &r.damaged_indexes {
            println!("damaged index: {hp}");
        }
        for hp in &r.missing_indexes {
            println!("missing index: {hp} (a key with entries and no index)");
        }
        for hp in &r.stale_indexes {
            println!("stale index: {hp} (left by a crash; rebuilt from its entries' infos when next read)");
        }
        for k in &r.damaged_frames {
            println!("damaged shared frame: {} (every entry that names it is listed as corrupt)", output::safe(k));
        }
        if r.orphans > 0 {
            println!("{} orphan data objects of unfinished saves (gc removes them)", r.orphans);
        }
    }
    if !r.is_clean() {
        return Err(anyhow::Error::new(Integrity(format!(
            "{} corrupt entries, {} missing, {} damaged or lost infos, {} damaged indexes, {} missing indexes, {} \
             damaged shared frames (`cairn store repair` recovers what it can and names the rest)",
            r.corrupt.len(),
            r.missing.len(),
            r.damaged_infos.len(),
            r.damaged_indexes.len(),
            r.missing_indexes.len(),
            r.damaged_frames.len()
        ))));
    }
    if !a.json {
        println!("store OK");
    }
    Ok(())
}
