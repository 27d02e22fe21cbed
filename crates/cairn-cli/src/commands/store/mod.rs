//! `cairn store …`: the keyed checkpoint store from the command line. Every
//! subcommand works on `--root DIR`, `--url URL` or, by default, the
//! default store (`$CAIRN_HOME`, else `cairn/` in the user cache directory).

mod gc;
mod get;
mod ls;
mod put;
mod verify;

use std::path::PathBuf;

use anyhow::Context;
use cairn::store::{Key, Store, StoreOptions};

/// Arguments of `cairn store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store's directory. Default = the default store.
    #[arg(long, value_name = "DIR", global = true, conflicts_with = "url")]
    root: Option<PathBuf>,
    /// The store's URL (`s3://bucket/prefix`, `file:///path`).
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Save a checkpoint file as a new entry of KEY; prints the entry id.
    Put(put::Args),
    /// Write the selected entry of KEY (the best by default) to OUT.
    Get(get::Args),
    /// List the entries of one key or of every key.
    Ls(ls::Args),
    /// Remove one entry, or every unpinned entry of a key.
    Rm(RmArgs),
    /// Pin an entry: retention and eviction never remove it.
    Pin(PinArgs),
    /// Collect: retention, eviction by size and age, clean-up after crashes.
    Gc(gc::Args),
    /// Read and check every entry; exit 3 if anything is damaged.
    Verify(verify::Args),
    /// Rebuild every index from the entries, and quarantine damaged entries.
    Repair,
}

/// Arguments of `cairn store rm`.
#[derive(Debug, clap::Args)]
struct RmArgs {
    /// The key.
    key: String,
    /// The entry to remove. Default = every unpinned entry of the key.
    id: Option<String>,
}

/// Arguments of `cairn store pin`.
#[derive(Debug, clap::Args)]
struct PinArgs {
    /// The key.
    key: String,
    /// The entry.
    id: String,
    /// Unpin instead.
    #[arg(long)]
    off: bool,
}

/// Opens the store the arguments name; a store directory is created only
/// when `create` (by the commands that save), so that the others, run on a
/// store that is not there, say so and leave nothing behind.
fn open(root: &Option<PathBuf>, url: &Option<String>, create: bool) -> anyhow::Result<Store> {
    let opts = StoreOptions::default().create_if_missing(create);
    let store = match (root, url) {
        (Some(dir), _) => Store::open_url(&dir.display().to_string(), opts),
        (None, Some(url)) => Store::open_url(url, opts),
        (None, None) => Store::open_default(opts),
    };
    store.context("opening the store")
}

/// Runs `cairn store`.
///
/// # Errors
/// As each subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let store = open(&args.root, &args.url, matches!(args.command, Command::Put(_)))?;
    match args.command {
        Command::Put(a) => put::run(&store, a),
        Command::Get(a) => get::run(&store, a),
        Command::Ls(a) => ls::run(&store, a),
        Command::Rm(a) => {
            let removed = store.remove(&Key::new(&a.key), a.id.as_deref()).map_err(crate::exit::usage_if_invalid)?;
            for e in &removed {
                println!("removed {}", e.id);
            }
            Ok(())
        }
        Command::Pin(a) => {
            let e = store.pin(&Key::new(&a.key), &a.id, !a.off)?;
            println!("{} {}", if e.pinned { "pinned" } else { "unpinned" }, e.id);
            Ok(())
        }
        Command::Gc(a) => gc::run(&store, a),
        Command::Verify(a) => verify::run(&store, a),
        Command::Repair => {
            let r = store.repair().context("repairing the store")?;
            println!(
                "rebuilt {} indexes ({} entries); recovered {} entries' info; restored {} from quarantine; \
                 quarantined {} damaged entries and {} damaged shared frames",
                r.indexes_rebuilt,
                r.entries,
                r.recovered.len(),
                r.restored.len(),
                r.quarantined.len(),
                r.frames_quarantined.len()
            );
            for (label, list) in
                [("recovered", &r.recovered), ("restored", &r.restored), ("quarantined", &r.quarantined)]
            {
                for p in list {
                    println!("  {label}: {} {}: {}", crate::output::safe(&p.key), p.id, crate::output::safe(&p.detail));
                }
            }
            for k in &r.frames_quarantined {
                println!("  quarantined frame: {}", crate::output::safe(k));
            }
            Ok(())
        }
    }
}
