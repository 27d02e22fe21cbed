//! The `cairn` command-line tool: pack files into a checkpoint, unpack,
//! print or inspect one, verify it end to end, copy it between local disk
//! and object storage, run a demo, append to, dump or verify a
//! write-ahead log, save, find, list, collect and verify checkpoints in
//! a keyed store, and import files other programs wrote (safetensors) or
//! export tensors to safetensors. Every command that takes a checkpoint FILE also takes a
//! URL (`s3://bucket/key`, `gs://…`, `az://…`, `file:///path`).
//!
//! Exit codes, the same for every command:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (also: stdout closed early, e.g. `cairn cat f x \| head`) |
//! | 1 | runtime error: missing file, chunk or log, I/O failure, a chunk name `unpack` refuses to write, a log another process holds, a change the data refuses (`store rm` of a pinned entry), an internal failure |
//! | 2 | usage error: bad arguments, `NAME=PATH` specs, dtypes, shapes that do not match their file |
//! | 3 | integrity failure: stored data is damaged; the message names the damaged chunk, part, log record or store entry |

mod commands;
mod exit;
mod logger;
mod output;
mod progress;
mod spec;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use commands::{cat, cp, demo, export, import, inspect, pack, store, unpack, verify, wal};

/// Durable, verified checkpoint files.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 runtime error, 2 usage error, 3 integrity failure (damaged data).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Pack files into a new checkpoint, published atomically and durably.
    Pack(pack::Args),
    /// Write every chunk of a checkpoint to a file in a directory.
    Unpack(unpack::Args),
    /// Write one chunk's bytes to stdout.
    Cat(cat::Args),
    /// Show a checkpoint's metadata and chunk table.
    Inspect(inspect::Args),
    /// Check every checksum and digest in a checkpoint.
    Verify(verify::Args),
    /// Copy a checkpoint between paths and object storage URLs, verifying the copy.
    Cp(cp::Args),
    /// Train a small model, checkpointing into a keyed store; resumes where it stopped.
    Demo(demo::Args),
    /// Append to, dump or verify a write-ahead log directory.
    Wal(wal::Args),
    /// Save, find, list, collect and verify checkpoints in a keyed store.
    Store(store::Args),
    /// Turn what another program wrote (safetensors, APR2, RKCKPT01, anomalyzer state) into a checkpoint.
    Import(import::Args),
    /// Write a checkpoint's tensors as a safetensors file.
    Export(export::Args),
}

fn main() -> ExitCode {
    logger::install();
    // Parsing through `ArgMatches` keeps the positions of repeated options,
    // which `pack` needs to store chunks in command-line order.
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Pack(args) => pack::run(args, matches.subcommand_matches("pack")),
        Command::Unpack(args) => unpack::run(args),
        Command::Cat(args) => cat::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Cp(args) => cp::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Wal(args) => wal::run(args),
        Command::Store(args) => store::run(args),
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
