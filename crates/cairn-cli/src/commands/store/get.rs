//! `cairn store get KEY OUT`.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use cairn::io::{StdFs, TempFile};
use cairn::store::{Key, Select, Store};

/// Arguments of `cairn store get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key.
    key: String,
    /// Where to write the checkpoint (published atomically).
    out: PathBuf,
    /// The latest entry instead of the best.
    #[arg(long, conflicts_with = "id")]
    latest: bool,
    /// This entry.
    #[arg(long)]
    id: Option<String>,
}

pub fn run(store: &Store, a: Args) -> anyhow::Result<()> {
    let how = match (a.latest, a.id) {
        (_, Some(id)) => Select::Id(id),
        (true, None) => Select::Latest,
        (false, None) => Select::Best,
    };
    // Opened lazily and checked against its recorded digest (streamed),
    // then copied a piece at a time: memory stays small whatever its size.
    let Some(found) = store.lookup(&Key::new(&a.key), &how).with_context(|| format!("reading key {:?}", a.key))? else {
        return Err(anyhow!(
            "key {:?} has no entry{}",
            a.key,
            if let Select::Id(id) = &how { format!(" {id}") } else { String::new() }
        ));
    };
    let out = a.out.display().to_string();
    let mut temp = TempFile::create_in(StdFs::shared(), &a.out).with_context(|| format!("writing {out}"))?;
    let n = found.checkpoint.copy_to(&mut temp, &out).with_context(|| format!("writing {out}"))?;
    if n != found.info.bytes {
        return Err(anyhow!(
            "entry {} changed while it was copied ({n} bytes, {} recorded)",
            found.info.id,
            found.info.bytes
        ));
    }
    temp.publish().with_context(|| format!("publishing {out}"))?;
    eprintln!("{} ({n} bytes) -> {out}", found.info.id);
    Ok(())
}
