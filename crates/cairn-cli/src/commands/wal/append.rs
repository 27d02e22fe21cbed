//! `cairn wal append`: each line of stdin becomes one log record,
//! acknowledged on stdout as `ok LSN` once it is durable under the chosen
//! sync policy.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn::io::StdFs;
use cairn::wal::{SyncPolicy, Wal, WalOptions, MAX_PAYLOAD};

use crate::exit::usage;

/// Bytes of stdin read at a time. Complete lines already read this way are
/// appended together, as one write and one sync.
const STDIN_BUFFER: usize = 64 << 10;

/// Sync interval when `--sync interval` comes without `--interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);

/// The `--sync` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SyncArg {
    /// fsync before every acknowledgement.
    Always,
    /// fsync in the background every `--interval`.
    Interval,
    /// fsync only when a segment fills up and on close.
    Never,
}

/// Arguments of `cairn wal append`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Each line (without its \\n or \\r\\n; bytes need not be UTF-8) becomes one record. \
`ok LSN` is printed and flushed once the record is written and, under --sync always, on disk. \
Acknowledged records survive a killed process under every policy; a power loss can lose up to one \
interval of them under `interval`, and anything not yet synced under `never`. \
At the end of stdin the log is synced and closed.")]
pub struct Args {
    /// The log directory; created if missing.
    dir: PathBuf,
    /// When records are made durable.
    #[arg(long, value_enum, default_value_t = SyncArg::Always)]
    sync: SyncArg,
    /// How often `--sync interval` syncs, e.g. 10ms or 1s [default: 10ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    interval: Option<Duration>,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (expected a duration such as 10ms or 1s)"))?;
    if d.is_zero() {
        return Err("the interval must be longer than zero".into());
    }
    Ok(d)
}

impl Args {
    fn sync(&self) -> anyhow::Result<SyncPolicy> {
        match (self.sync, self.interval) {
            (SyncArg::Interval, every) => Ok(SyncPolicy::Interval(every.unwrap_or(DEFAULT_INTERVAL))),
            (_, Some(_)) => Err(usage("--interval only applies with --sync interval")),
            (SyncArg::Always, None) => Ok(SyncPolicy::Always),
            (SyncArg::Never, None) => Ok(SyncPolicy::Never),
        }
    }
}

/// Lines read from stdin for one append: their bytes back to back, and
/// where each ends.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, b)| self.data.get(a..*b).unwrap_or_default())
    }

    /// Reads one line into the batch, without its `\n` or `\r\n`. Returns
    /// false at the end of input. `number` (from 1) is for messages.
    fn read_line(&mut self, input: &mut impl BufRead, number: u64) -> anyhow::Result<bool> {
        let start = self.data.len();
        // Reading stops just past the longest line a record can hold, so a
        // line without an end cannot take all memory.
        let limit = MAX_PAYLOAD as u64 + 2;
        let n = Read::take(&mut *input, limit).read_until(b'\n', &mut self.data).context("reading stdin")?;
        if n == 0 {
            return Ok(false);
        }
        if self.data.last() == Some(&b'\n') {
            self.data.pop();
            if self.data.len() > start && self.data.last() == Some(&b'\r') {
                self.data.pop();
            }
        }
        if self.data.len() - start > MAX_PAYLOAD {
            anyhow::bail!("line {number} of stdin is longer than a log record may be ({MAX_PAYLOAD} bytes)");
        }
        self.ends.push(self.data.len());
        Ok(true)
    }
}

/// Runs `cairn wal append`.
///
/// # Errors
/// Usage errors (exit 2); a log another process holds, I/O errors, a line
/// over the record size limit (exit 1); damage found at open (exit 3). A
/// closed stdout ends the command quietly.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sync = args.sync()?;
    let dir = args.dir.display().to_string();
    let wal = Wal::open_with(StdFs::shared(), &args.dir, WalOptions::default().sync(sync))
        .with_context(|| format!("opening log {dir}"))?;
    let cut = wal.recovery().truncated_bytes;
    if cut > 0 {
        // Nothing can be done if stderr is gone.
        let _ = writeln!(
            std::io::stderr().lock(),
            "cairn: {dir}: cut {cut} bytes of a torn tail (an interrupted write) off the end of the log"
        );
    }

    let mut input = BufReader::with_capacity(STDIN_BUFFER, std::io::stdin());
    let mut out = std::io::stdout().lock();
    let mut batch = Batch::default();
    let mut acks = String::new();
    let mut lines = 0u64;
    loop {
        batch.clear();
        // The first line may wait for input; lines already buffered after
        // it are complete, so reading them never blocks.
        if !batch.read_line(&mut input, lines + 1)? {
            break;
        }
        while input.buffer().contains(&b'\n') {
            batch.read_line(&mut input, lines + batch.ends.len() as u64 + 1)?;
        }
        let first = lines + 1;
        lines += batch.ends.len() as u64;
        let lsns = wal
            .append_batch(batch.payloads())
            .with_context(|| format!("appending lines {first}..={lines} of stdin to {dir}"))?;
        acks.clear();
        for lsn in lsns.into_iter().flatten() {
            let _ = writeln!(acks, "ok {lsn}");
        }
        out.write_all(acks.as_bytes()).context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    wal.close().with_context(|| format!("closing log {dir}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut batch = Batch::default();
        let mut reader = input;
        let mut n = 0;
        while batch.read_line(&mut reader, n + 1).unwrap() {
            n += 1;
        }
        batch.payloads().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn line_ends_are_cut_and_nothing_else() {
        let v = |items: &[&[u8]]| items.iter().map(|i| i.to_vec()).collect::<Vec<_>>();
        assert_eq!(lines(b""), v(&[]));
        assert_eq!(lines(b"\n"), v(&[b""]));
        assert_eq!(lines(b"\r\n"), v(&[b""]));
        assert_eq!(lines(b"a\r\r\n\n"), v(&[b"a\r", b""]));
        assert_eq!(lines(b"a\r\n\r\nb"), v(&[b"a", b"", b"b"]));
        // A lone \r is data, also at the end of input.
        assert_eq!(lines(b"a\rb\nc\r"), v(&[b"a\rb", b"c\r"]));
        assert_eq!(lines(b"\xff\x00\n"), v(&[b"\xff\x00"]));
    }

    #[test]
    fn interval_needs_interval_sync() {
        let args = |sync, interval| Args { dir: PathBuf::new(), sync, interval };
        let ms = Duration::from_millis;
        assert_eq!(args(SyncArg::Interval, None).sync().unwrap(), SyncPolicy::Interval(DEFAULT_INTERVAL));
        assert_eq!(args(SyncArg::Interval, Some(ms(3))).sync().unwrap(), SyncPolicy::Interval(ms(3)));
        assert_eq!(args(SyncArg::Always, None).sync().unwrap(), SyncPolicy::Always);
        assert_eq!(args(SyncArg::Never, None).sync().unwrap(), SyncPolicy::Never);
        assert!(args(SyncArg::Never, Some(ms(3))).sync().is_err());
        assert_eq!(parse_interval("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_interval("0s").is_err() && parse_interval("soon").is_err());
    }
}
