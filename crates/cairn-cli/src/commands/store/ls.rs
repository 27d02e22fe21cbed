//! `cairn store ls [KEY] [--json]`.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use cairn::store::{EntryInfo, EntryKind, Key, Store};
use serde::Serialize;

use crate::output;

/// Arguments of `cairn store ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this key's entries.
    key: Option<String>,
    /// One JSON array of entries (key, id, objective, iteration, kind,
    /// bytes, created_at, pinned).
    #[arg(long)]
    json: bool,
}

/// One line of `ls --json`.
#[derive(Debug, Serialize)]
struct Row<'a> {
    key: &'a str,
    id: &'a str,
    objective: Option<f64>,
    iteration: Option<u64>,
    kind: EntryKind,
    /// The checkpoint's size.
    bytes: u64,
    /// What its save added to the store (less than `bytes` when it shares
    /// frames with other entries).
    added_bytes: u64,
    /// RFC 3339, microseconds.
    created_at: Option<String>,
    pinned: bool,
}

fn created(e: &EntryInfo) -> Option<String> {
    output::rfc3339(UNIX_EPOCH + Duration::from_nanos(e.created_at))
}

pub fn run(store: &Store, a: Args) -> anyhow::Result<()> {
    let all: Vec<(String, Vec<EntryInfo>)> = match &a.key {
        Some(k) => vec![(k.clone(), store.entries(&Key::new(k))?)],
        None => store.list()?,
    };
    let rows: Vec<Row<'_>> = all
        .iter()
        .flat_map(|(k, es)| {
            es.iter().map(move |e| Row {
                key: k,
                id: &e.id,
                objective: e.objective,
                iteration: e.iteration,
                kind: e.kind,
                bytes: e.bytes,
                added_bytes: e.added_bytes,
                created_at: created(e),
                pinned: e.pinned,
            })
        })
        .collect();
    if a.json {
        return output::print_json(&rows);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                output::safe(r.key),
                r.id.to_string(),
                r.objective.map_or_else(|| "-".into(), |o| format!("{o}")),
                r.iteration.map_or_else(|| "-".into(), |i| i.to_string()),
                match r.kind {
                    EntryKind::Final => "final".into(),
                    _ => "checkpoint".into(),
                },
                output::bytes(r.bytes),
                r.created_at.clone().unwrap_or_default(),
                if r.pinned { "pinned".into() } else { String::new() },
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    output::table(&mut out, &["KEY", "ID", "OBJECTIVE", "ITER", "KIND", "SIZE", "CREATED", "PIN"], &cells, &[2, 3, 5])?;
    out.flush()?;
    Ok(())
}
