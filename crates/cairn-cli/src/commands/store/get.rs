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
    let Some((info, bytes)) =
        store.read(&Key::new(&a.key), &how).with_context(|| format!("reading key {:?}", a.key))?
    else {
        return Err(anyhow!(
            "key {:?} has no entry{}",
            a.key,
            if let Select::Id(id) = &how { format!(" {id}") } else { String::new() }
        ));
    };
    let temp = TempFile::create_in(StdFs::shared(), &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(f) = temp.file() {
        f.write_at(&bytes, 0).with_context(|| format!("writing {}", a.out.display()))?;
    }
    temp.publish().with_context(|| format!("publishing {}", a.out.display()))?;
    eprintln!("{} ({} bytes) -> {}", info.id, bytes.len(), a.out.display());
    Ok(())
}
