//! Process-kill test: a real `cairn wal append --sync always` child, fed
//! numbered lines continuously, is killed with SIGKILL at a random moment,
//! round after round on the same log directory. After each kill the log
//! must hold every acknowledged line at the LSN it was acknowledged with,
//! with no gaps and nothing the parent never wrote; the next round's child
//! recovers the log (cutting any torn tail) and goes on.
//!
//! Every few rounds the parent also appends random bytes to the log before
//! starting the child, as a write torn by a power loss would leave them:
//! the child must cut them and go on.
//!
//! Even rounds kill at a random time after the start, which also lands in
//! start-up and recovery (scaled to how long a first acknowledgement has
//! taken on this machine, so that a slow machine does not make them test
//! start-up alone); odd rounds kill at a random time after the first
//! acknowledgement, so they always land among appends however slow the
//! machine is. A child killed before it made the log's directory appended
//! nothing.
//!
//! `CAIRN_KILL_ROUNDS` sets the number of rounds (default 200),
//! `CAIRN_KILL_SEED` the seed of the kill delays (printed on every run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn::wal::WalReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The signal `Child::kill` sends on unix.
const SIGKILL: i32 = 9;
/// Rounds run unless `CAIRN_KILL_ROUNDS` says otherwise; also the fewest
/// that must fit in the time budget.
const DEFAULT_ROUNDS: usize = 200;
/// No round starts after this much time.
const BUDGET: Duration = Duration::from_secs(60);
/// Even rounds: the kill comes between this many milliseconds and
/// [`DELAY_SPREAD`] times the median time to a first acknowledgement seen so
/// far (at least 40 ms) after the child is started: start-up, recovery and
/// the first appends, on a fast machine or a slow one alike.
const MIN_DELAY_MS: u64 = 2;
const DELAY_SPREAD: u32 = 3;
/// Odd rounds: the kill comes this many milliseconds after the first
/// acknowledgement.
const AFTER_ACK_MS: std::ops::RangeInclusive<u64> = 0..=20;
/// Every this many rounds, a torn write is left at the end of the log first.
const TEAR_EVERY: usize = 5;
/// How long an odd round waits for its first acknowledgement.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines handed to the pipe in one write, and the pause after each write.
/// Unpaced, the child takes some 8000 lines per sync; opening the log
/// scans all of it (about 1 µs a record in a debug build), so within a
/// few rounds start-up alone would outlast the kill delays. Paced, the log
/// stays small enough for 200 rounds of appends while each sync still
/// covers several lines.
const LINES_PER_WRITE: u64 = 2;
const PAUSE: Duration = Duration::from_micros(500);

/// Line `i` of round `round`.
fn line(round: usize, i: u64) -> String {
    format!("r{round}-{i}")
}

/// Writes lines `r<round>-0`, `r<round>-1`, ... to the child until the pipe
/// breaks (the child is dead), at the pace set above. Returns how many lines were handed to the
/// pipe, counting those of the write that failed: no line past that count
/// was ever written, even in part.
fn feed(mut stdin: ChildStdin, round: usize) -> u64 {
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        for i in sent..sent + LINES_PER_WRITE {
            chunk.extend_from_slice(line(round, i).as_bytes());
            chunk.push(b'\n');
        }
        sent += LINES_PER_WRITE;
        if stdin.write_all(&chunk).is_err() {
            return sent;
        }
        thread::sleep(PAUSE);
    }
}

/// Collects the LSNs of complete `ok LSN` lines until the pipe closes; a
/// last line cut short by the kill is not an acknowledgement. Signals
/// `first` at the first one.
fn collect_acks(stdout: ChildStdout, first: mpsc::Sender<()>) -> Result<Vec<u64>, String> {
    let mut acks = Vec::new();
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(|e| e.to_string())? == 0 {
            return Ok(acks);
        }
        let Some(text) = buf.strip_suffix(b"\n") else { return Ok(acks) };
        let text = String::from_utf8_lossy(text);
        let lsn = text.strip_prefix("ok ").and_then(|n| n.parse().ok());
        match lsn {
            Some(lsn) => {
                acks.push(lsn);
                if acks.len() == 1 {
                    // The receiver is gone once the kill has been sent.
                    let _ = first.send(());
                }
            }
            None => return Err(format!("not an ack: {text:?}")),
        }
    }
}

/// What one round saw.
struct Round {
    /// The LSN the round's first record gets.
    start: u64,
    /// Records of this round in the log after the kill.
    kept: u64,
    acked: u64,
    /// The child cut a torn tail left by the previous round.
    cut_tail: bool,
    kill: Kill,
    /// How long after the start its first acknowledgement came, when the
    /// round waited for one.
    first_ack: Option<Duration>,
}

/// When a round's kill comes.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after the child was started.
    AfterStart(Duration),
    /// This long after its first acknowledgement.
    AfterFirstAck(Duration),
}

/// Leaves `tear` (if any) at the end of the log as a torn write, starts a
/// child on `dir`, kills it as `kill` says, and checks the log against what
/// was written and acknowledged. `start` is the LSN the round's first
/// record must get.
fn round(dir: &Path, round: usize, start: u64, kill: Kill, tear: Option<&[u8]>) -> Round {
    if let Some(garbage) = tear.filter(|_| dir.exists()) {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        segments.sort();
        let last = segments.last().unwrap();
        std::fs::OpenOptions::new().append(true).open(last).unwrap().write_all(garbage).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["wal", "append", dir.to_str().unwrap(), "--sync", "always"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let spawned = Instant::now();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let writer = thread::spawn(move || feed(stdin, round));
    let (first_tx, first_rx) = mpsc::channel();
    let reader = thread::spawn(move || collect_acks(stdout, first_tx));
    let errors = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut first_ack = None;
    match kill {
        Kill::AfterStart(delay) => thread::sleep(delay),
        Kill::AfterFirstAck(delay) => {
            // An error means the child ended without one; the exit status
            // check below reports why.
            if first_rx.recv_timeout(FIRST_ACK_TIMEOUT).is_ok() {
                first_ack = Some(spawned.elapsed());
                thread::sleep(delay);
            }
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let sent = writer.join().unwrap();
    let acks = reader.join().unwrap();
    let stderr = errors.join().unwrap();
    assert_eq!(status.signal(), Some(SIGKILL), "round {round}: the child ended before the kill ({status}): {stderr}");
    let acks = acks.unwrap_or_else(|e| panic!("round {round}: {e}; stderr: {stderr}"));

    // Acknowledged LSNs follow on from the records already in the log.
    for (j, lsn) in acks.iter().enumerate() {
        assert_eq!(*lsn, start + j as u64, "round {round}: ack {j} of {acks:?}");
    }

    // Killed before it made the log's directory: it appended nothing.
    if !dir.exists() {
        assert!(acks.is_empty(), "round {round}: {} acks, yet no log", acks.len());
        return Round { start, kept: 0, acked: 0, cut_tail: false, kill, first_ack };
    }
    let log = WalReader::open(dir).unwrap_or_else(|e| panic!("round {round}: reading the log after the kill: {e}"));
    let report = log.report();
    assert!(!report.is_corrupt(), "round {round}: {report:?}");
    let last = report.last_lsn.unwrap_or(0);
    assert!(last + 1 >= start, "round {round}: the log ends at LSN {last}, earlier rounds left {}", start - 1);
    if last > 0 {
        assert_eq!(report.first_lsn, Some(1), "round {round}");
        assert_eq!(report.records, last, "round {round}");
    }

    // This round's records: consecutive LSNs, each the next line written.
    let mut kept = 0u64;
    for record in log.iter_from(start) {
        let record = record.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(record.lsn, start + kept, "round {round}: LSNs have a gap");
        assert!(kept < sent, "round {round}: LSN {} holds more lines than the {sent} written", record.lsn);
        let expected = line(round, kept);
        assert_eq!(
            String::from_utf8_lossy(&record.payload),
            expected,
            "round {round}: LSN {} holds a line that was not written there",
            record.lsn
        );
        kept += 1;
    }
    assert_eq!(start + kept, last + 1, "round {round}: records past the end of the scan");
    // Every acknowledged line is there (their LSNs and contents were
    // checked above).
    assert!(
        acks.len() as u64 <= kept,
        "round {round}: {} lines acknowledged, {kept} in the log; stderr: {stderr}",
        acks.len()
    );
    if matches!(kill, Kill::AfterFirstAck(_)) {
        assert!(!acks.is_empty(), "round {round}: killed after its first ack, yet none was read");
    }
    let cut_tail = stderr.contains("torn tail");
    if tear.is_some() && !acks.is_empty() {
        assert!(cut_tail, "round {round}: appended after a torn write without cutting it; stderr: {stderr}");
    }
    Round { start, kept, acked: acks.len() as u64, cut_tail, kill, first_ack }
}

/// Every record of the log, through `cairn wal dump`, against the rounds.
fn check_whole_log(dir: &Path, rounds: &[Round]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["wal", "dump", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = out.stdout.split(|b| *b == b'\n');
    for (r, round) in rounds.iter().enumerate() {
        for k in 0..round.kept {
            let got = lines.next().unwrap_or_else(|| panic!("dump ends before LSN {}", round.start + k));
            let want = format!("{}\t{}", round.start + k, line(r, k));
            assert_eq!(String::from_utf8_lossy(got), want);
        }
    }
    assert_eq!(lines.next(), Some(&b""[..]), "dump has records no round wrote");
    assert_eq!(lines.next(), None);

    let verify = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["wal", "verify", "--json", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let total: u64 = rounds.iter().map(|r| r.kept).sum();
    assert_eq!(v["records"], total);
    assert_eq!(v["ok"], true);
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")))
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let wanted = env_number("CAIRN_KILL_ROUNDS").map_or(DEFAULT_ROUNDS, |n| n as usize);
    let seed = env_number("CAIRN_KILL_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("CAIRN_KILL_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");

    let started = Instant::now();
    let mut rounds: Vec<Round> = Vec::new();
    let mut next = 1u64;
    while rounds.len() < wanted && started.elapsed() < BUDGET {
        let kill = if rounds.len().is_multiple_of(2) {
            let mut seen: Vec<Duration> = rounds.iter().filter_map(|r| r.first_ack).collect();
            seen.sort();
            let median = seen.get(seen.len() / 2).copied().unwrap_or(Duration::ZERO);
            let hi = (median * DELAY_SPREAD).max(Duration::from_millis(40));
            Kill::AfterStart(Duration::from_millis(rng.gen_range(MIN_DELAY_MS..=hi.as_millis() as u64)))
        } else {
            Kill::AfterFirstAck(Duration::from_millis(rng.gen_range(AFTER_ACK_MS)))
        };
        // A torn write starts with a non-zero byte: zeros would be the
        // clean end of the log.
        let tear: Option<Vec<u8>> = (rounds.len() % TEAR_EVERY == TEAR_EVERY - 1).then(|| {
            let len = rng.gen_range(1..=64);
            (0..len).map(|i| if i == 0 { rng.gen_range(1..=255) } else { rng.gen() }).collect()
        });
        let r = round(&log, rounds.len(), next, kill, tear.as_deref());
        next = r.start + r.kept;
        rounds.push(r);
    }
    let elapsed = started.elapsed();
    check_whole_log(&log, &rounds);

    let acked: u64 = rounds.iter().map(|r| r.acked).sum();
    let kept: u64 = rounds.iter().map(|r| r.kept).sum();
    let early: Vec<&Round> = rounds.iter().filter(|r| matches!(r.kill, Kill::AfterStart(_))).collect();
    let early_acked = early.iter().filter(|r| r.acked > 0).count();
    let early_empty = early.iter().filter(|r| r.kept == 0).count();
    let cut = rounds.iter().filter(|r| r.cut_tail).count();
    assert!(cut > 0 || rounds.len() < TEAR_EVERY * 4, "no child ever cut a torn tail");
    println!(
        "{} rounds in {:.1} s: {acked} records acknowledged, {kept} kept; of {} rounds killed after start, \
         {early_acked} had acks and {early_empty} appended nothing; {cut} torn tails cut",
        rounds.len(),
        elapsed.as_secs_f64(),
        early.len(),
    );
    let required = wanted.min(DEFAULT_ROUNDS);
    assert!(rounds.len() >= required, "only {} of {required} rounds ran in {BUDGET:?}", rounds.len());
    assert!(acked >= 1000.min(5 * rounds.len() as u64), "only {acked} records acknowledged in {} rounds", rounds.len());
    // Kills timed from the start must also land among appends, not only in
    // start-up: a log grown so large that opening it outlasts the delays
    // would make them test start-up alone.
    assert!(
        early_acked * 5 >= early.len(),
        "only {early_acked} of {} rounds killed after start got an ack before the kill",
        early.len()
    );
}
