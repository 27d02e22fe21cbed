//! `cairn store put KEY FILE`.

use std::path::PathBuf;

use anyhow::Context;
use cairn::store::{Key, SaveInfo, Store};

use crate::exit::usage;

/// Arguments of `cairn store put`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key: any string.
    key: String,
    /// A checkpoint file; verified before it is stored.
    file: PathBuf,
    /// The score the checkpoint reached (lower is better).
    #[arg(long, allow_negative_numbers = true)]
    objective: Option<f64>,
    /// The step or iteration it was saved at.
    #[arg(long)]
    iteration: Option<u64>,
    /// A final result rather than an intermediate checkpoint.
    #[arg(long = "final")]
    is_final: bool,
    /// User metadata, repeatable.
    #[arg(long = "meta", value_name = "K=V")]
    meta: Vec<String>,
}

pub fn run(store: &Store, a: Args) -> anyhow::Result<()> {
    let mut info = if a.is_final { SaveInfo::final_result() } else { SaveInfo::checkpoint() };
    if let Some(x) = a.objective {
        if x.is_nan() {
            return Err(usage("--objective must be a number"));
        }
        info = info.objective(x);
    }
    if let Some(n) = a.iteration {
        info = info.iteration(n);
    }
    for kv in &a.meta {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(usage(format!("--meta {kv:?} is not K=V")));
        };
        info = info.meta(k, v);
    }
    let e =
        store.save_file(&Key::new(&a.key), &a.file, info).with_context(|| format!("saving {}", a.file.display()))?;
    println!("{}", e.id);
    Ok(())
}
