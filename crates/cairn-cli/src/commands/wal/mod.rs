//! `cairn wal`: append to, dump and verify a write-ahead log directory.

pub mod append;
pub mod dump;
pub mod verify;

/// Arguments of `cairn wal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The `wal` subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Append each line of stdin as one record; print `ok LSN` once it is durable.
    Append(append::Args),
    /// Print every record in LSN order, as `LSN<TAB>payload` lines or JSON lines.
    Dump(dump::Args),
    /// Check every record of a log; exit 3 if records before the durable point are damaged.
    Verify(verify::Args),
}

/// Runs `cairn wal`.
///
/// # Errors
/// Those of the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Append(a) => append::run(a),
        Command::Dump(a) => dump::run(a),
        Command::Verify(a) => verify::run(a),
    }
}
