//! Runs the real `cairn wal` commands: acknowledgements under every sync
//! policy, dump round trips (plain and JSON), verify on clean, torn and
//! damaged logs, a log held by another process, exit codes and closed pipes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cairn::wal::{Wal, WalOptions, WalReader};
use serde_json::{json, Value};

mod common;

use common::{cairn, cairn_with};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ok a\nok a+1\n...ok b\n`.
fn acks(lsns: std::ops::RangeInclusive<u64>) -> String {
    lsns.map(|l| format!("ok {l}\n")).collect()
}

/// The only segment file of a log that has not rolled over.
fn segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// Input with an empty line, a CRLF line, a tab, UTF-8 and invalid UTF-8,
/// and a last line without a newline; and the payloads it must give.
fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
    let input = b"first\n\nwindows line\r\ntab\there\ncaf\xc3\xa9\nbad \xff\xfe bytes\n\r\nlast, no newline".to_vec();
    let payloads: Vec<Vec<u8>> = vec![
        b"first".to_vec(),
        b"".to_vec(),
        b"windows line".to_vec(),
        b"tab\there".to_vec(),
        "café".as_bytes().to_vec(),
        b"bad \xff\xfe bytes".to_vec(),
        b"".to_vec(),
        b"last, no newline".to_vec(),
    ];
    (input, payloads)
}

/// What `dump` must print for these payloads from LSN 1.
fn plain_dump(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        out.extend_from_slice(format!("{}\t", i + 1).as_bytes());
        out.extend_from_slice(p);
        out.push(b'\n');
    }
    out
}

/// Checks `dump --json` line by line against the payloads from LSN 1.
#[track_caller]
fn check_json_dump(stdout: &[u8], payloads: &[Vec<u8>]) {
    let text = std::str::from_utf8(stdout).expect("JSON output is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), payloads.len(), "{text}");
    for (i, (line, p)) in lines.iter().zip(payloads).enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i} is not JSON ({e}): {line}"));
        assert_eq!(v["lsn"], json!(i + 1), "{line}");
        match std::str::from_utf8(p) {
            Ok(utf8) => {
                assert_eq!(v["payload"], json!(utf8), "{line}");
                assert!(v.get("payload_hex").is_none(), "{line}");
                assert_eq!(v.as_object().unwrap().len(), 2, "{line}");
            }
            Err(_) => {
                assert_eq!(v["payload"], json!(String::from_utf8_lossy(p)), "{line}");
                let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(v["payload_hex"], json!(hex), "{line}");
            }
        }
    }
}

#[test]
fn append_acks_every_line_under_each_sync_policy() {
    let policies: [&[&str]; 5] = [
        &[],
        &["--sync", "always"],
        &["--sync", "interval"],
        &["--sync", "interval", "--interval", "1ms"],
        &["--sync", "never"],
    ];
    for policy in policies {
        let dir = tempfile::tempdir().unwrap();
        // The directory and its parent are created.
        let log = dir.path().join("nested").join("log");
        let (input, payloads) = sample();
        let n = payloads.len() as u64;
        let mut args = vec!["wal", "append", s(&log)];
        args.extend_from_slice(policy);

        let run = cairn_with(&args, &input);
        run.expect(0);
        assert_eq!(run.out(), acks(1..=n), "{policy:?}");
        assert!(run.stderr.is_empty(), "{policy:?}: {}", run.stderr);

        // A second run continues the LSNs.
        let run = cairn_with(&args, b"again\n");
        assert_eq!(run.expect(0).out(), acks(n + 1..=n + 1), "{policy:?}");
        let mut all = payloads.clone();
        all.push(b"again".to_vec());

        // Empty input appends nothing.
        assert!(cairn_with(&args, b"").expect(0).stdout.is_empty());

        assert_eq!(cairn(["wal", "dump", s(&log)]).expect(0).stdout, plain_dump(&all), "{policy:?}");
        check_json_dump(&cairn(["wal", "dump", "--json", s(&log)]).expect(0).stdout, &all);

        // The library reads the same records.
        let reader = WalReader::open(&log).unwrap();
        let records: Vec<Vec<u8>> = reader.iter_from(1).map(|r| r.unwrap().payload).collect();
        assert_eq!(records, all, "{policy:?}");
        assert!(reader.report().problems.is_empty());
    }
}

#[test]
fn interval_sync_ends_at_the_end_of_input_whatever_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    for round in 0..10 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["wal", "append", s(&log), "--sync", "interval", "--interval", "1h"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"a\nb\n").unwrap();
        // An hour's interval: only a hang reaches the limit.
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("round {round}: `wal append --sync interval --interval 1h` did not exit at the end of input");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "round {round}: {status}");
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, acks(2 * round + 1..=2 * round + 2), "round {round}");
    }
    // The close synced them: a reader finds every record, marked durable.
    let report = cairn(["wal", "verify", "--json", s(&log)]).expect(0).json();
    assert_eq!((report["records"].as_u64(), report["durable_lsn"].as_u64()), (Some(20), Some(20)));
}

#[test]
fn each_ack_is_flushed_before_more_input_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    for policy in ["always", "interval", "never"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["wal", "append", s(&log), "--sync", policy])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in stdout.lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let base = match policy {
            "always" => 0,
            "interval" => 3,
            _ => 6,
        };
        // stdin stays open: the ack must come without waiting for more input.
        for i in 1..=3u64 {
            stdin.write_all(format!("{policy} {i}\n").as_bytes()).unwrap();
            stdin.flush().unwrap();
            let ack = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|e| panic!("no ack for line {i}: {e}"));
            assert_eq!(ack, format!("ok {}", base + i));
        }
        drop(stdin);
        let status = child.wait().unwrap();
        reader.join().unwrap();
        assert!(status.success(), "{status}");
        assert!(rx.try_recv().is_err(), "nothing after the last ack");
    }
    let dump = cairn(["wal", "dump", s(&log)]).expect(0).out();
    assert_eq!(dump.lines().count(), 9);
    assert!(dump.starts_with("1\talways 1\n") && dump.ends_with("9\tnever 3\n"), "{dump}");
}

#[test]
fn many_lines_are_acked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let n = 20_000u64;
    let input: String = (1..=n).map(|i| format!("line {i}\n")).collect();
    for policy in ["always", "never"] {
        let run = cairn_with(["wal", "append", s(&log), "--sync", policy], input.as_bytes());
        let base = if policy == "always" { 0 } else { n };
        assert_eq!(run.expect(0).out(), acks(base + 1..=base + n), "{policy}");
    }
    let report = cairn(["wal", "verify", "--json", s(&log)]).expect(0).json();
    assert_eq!((report["records"].as_u64(), report["last_lsn"].as_u64()), (Some(2 * n), Some(2 * n)));
    let dump = cairn(["wal", "dump", s(&log)]).expect(0).out();
    for (i, line) in dump.lines().enumerate() {
        let i = i as u64 + 1;
        assert_eq!(line, format!("{i}\tline {}", (i - 1) % n + 1));
    }
}

#[test]
fn verify_reports_a_clean_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (input, payloads) = sample();
    cairn_with(["wal", "append", s(&log)], &input).expect(0);
    let n = payloads.len() as u64;

    let run = cairn(["wal", "verify", s(&log)]);
    assert_eq!(run.expect(0).out(), format!("ok: {n} records, LSN 1..{n}, 1 segment\n"));
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    let v = cairn(["wal", "verify", s(&log), "--json"]).expect(0).json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], n);
    assert_eq!(v["first_lsn"], 1);
    assert_eq!(v["last_lsn"], n);
    assert_eq!(v["segments"], 1);
    assert_eq!(v["torn_tail"], false);
    assert_eq!(v["problems"], json!([]));
    // A closed log ends with a durable mark for its last record.
    assert_eq!(v["durable_lsn"], n);
    assert_eq!(v["dir"], s(&log));
    assert!(v["elapsed_ms"].is_number());

    // A log with no records yet.
    let empty = dir.path().join("empty");
    cairn(["wal", "append", s(&empty)]).expect(0);
    assert_eq!(cairn(["wal", "verify", s(&empty)]).expect(0).out(), "ok: 0 records, 1 segment\n");
    let v = cairn(["wal", "verify", "--json", s(&empty)]).expect(0).json();
    assert!(v["first_lsn"].is_null() && v["last_lsn"].is_null(), "{v}");
    assert!(cairn(["wal", "dump", s(&empty)]).expect(0).stdout.is_empty());
}

#[test]
fn verify_and_dump_cover_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let wal = Wal::open_with(cairn::io::StdFs::shared(), &log, WalOptions::default().segment_size(4096)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..500).map(|i| format!("{i:04} {}", "x".repeat(i % 50)).into_bytes()).collect();
    for p in &payloads {
        wal.append(p).unwrap();
    }
    wal.close().unwrap();
    let segments =
        std::fs::read_dir(&log).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some()).count();
    assert!(segments > 3, "{segments}");

    let out = cairn(["wal", "verify", s(&log)]).expect(0).out();
    assert_eq!(out, format!("ok: 500 records, LSN 1..500, {segments} segments\n"));
    assert_eq!(cairn(["wal", "dump", s(&log)]).expect(0).stdout, plain_dump(&payloads));
    check_json_dump(&cairn(["wal", "dump", "--json", s(&log)]).expect(0).stdout, &payloads);
}

#[test]
fn a_torn_tail_is_reported_and_cut_on_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (input, payloads) = sample();
    let n = payloads.len() as u64;
    cairn_with(["wal", "append", s(&log)], &input).expect(0);
    let seg = segment(&log);
    // The writer keeps zeros ahead of its records; a torn write leaves its
    // bytes right after the last frame, a durable mark whose last nonzero
    // byte (its type) is 8 bytes before its end.
    let mut bytes = std::fs::read(&seg).unwrap();
    let file_len = bytes.len() as u64;
    let clean_len = bytes.iter().rposition(|b| *b != 0).unwrap() as u64 + 8;
    let garbage = b"\x2a\x00\x00\x00garbage from a write cut short by a crash";
    bytes[clean_len as usize..clean_len as usize + garbage.len()].copy_from_slice(garbage);
    std::fs::write(&seg, &bytes).unwrap();
    let torn = file_len - clean_len;

    let run = cairn(["wal", "verify", s(&log)]);
    let out = run.expect(0).out();
    assert!(out.starts_with(&format!("ok: {n} records, LSN 1..{n}, 1 segment; torn tail of ")), "{out}");
    assert!(out.contains(&format!("{torn} bytes at {} offset {clean_len} (LSN {})", s(&seg), n + 1)), "{out}");
    assert!(out.contains("would be cut on open"), "{out}");

    let v = cairn(["wal", "verify", "--json", s(&log)]).expect(0).json();
    assert_eq!((v["ok"].as_bool(), v["torn_tail"].as_bool(), v["records"].as_u64()), (Some(true), Some(true), Some(n)));
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    let p = &problems[0];
    assert_eq!(p["kind"], "torn_tail");
    assert_eq!(p["segment"], s(&seg));
    assert_eq!(p["offset"], clean_len);
    assert_eq!(p["bytes"], torn);
    assert_eq!(p["lsn"], n + 1);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));

    // Readers leave the torn tail out and change nothing.
    assert_eq!(cairn(["wal", "dump", s(&log)]).expect(0).stdout, plain_dump(&payloads));
    check_json_dump(&cairn(["wal", "dump", "--json", s(&log)]).expect(0).stdout, &payloads);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), file_len);

    // The next writer cuts it, says so on stderr, and goes on at LSN n+1.
    let run = cairn_with(["wal", "append", s(&log)], b"after\n");
    assert_eq!(run.expect(0).out(), acks(n + 1..=n + 1));
    assert!(run.stderr.contains(&format!("cut {torn} bytes")), "{}", run.stderr);
    let v = cairn(["wal", "verify", "--json", s(&log)]).expect(0).json();
    assert_eq!((v["torn_tail"].as_bool(), v["records"].as_u64()), (Some(false), Some(n + 1)));
    assert_eq!(v["problems"], json!([]));
}

/// Flips one byte of a file in place.
fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// Where `needle` starts in the file, past the segment header.
fn find(path: &Path, needle: &[u8]) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    assert!(at >= 32, "records start after the 32-byte segment header");
    at
}

#[test]
fn a_damaged_early_record_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let input: String = (0..10).map(|i| format!("record number {i:02}\n")).collect();
    cairn_with(["wal", "append", s(&log)], input.as_bytes()).expect(0);
    // Records carry the highest LSN durable when they were framed. The ten
    // lines above went in one batch, so only records appended later say
    // that batch was durable; without them, damage in it would look like
    // a torn write.
    cairn_with(["wal", "append", s(&log)], b"a later record\n").expect(0);
    let seg = segment(&log);
    // LSN 3 holds "record number 02".
    let payload = find(&seg, b"record number 02");
    flip(&seg, payload + 7);

    let run = cairn(["wal", "verify", s(&log)]);
    run.expect(3);
    assert!(run.stdout.is_empty(), "{}", run.out());
    assert!(run.stderr.contains(s(&seg)) && run.stderr.contains("LSN 3"), "{}", run.stderr);
    assert!(run.stderr.contains("checksum"), "{}", run.stderr);
    assert!(run.stderr.lines().last().unwrap().contains("damaged"), "{}", run.stderr);

    let v = cairn(["wal", "verify", "--json", s(&log)]);
    let v = v.expect(3).json();
    assert_eq!(v["ok"], false);
    let corrupt: Vec<&Value> = v["problems"].as_array().unwrap().iter().filter(|p| p["kind"] == "corrupt").collect();
    assert_eq!(corrupt.len(), 1, "{v}");
    let p = corrupt[0];
    assert_eq!(p["lsn"], 3);
    assert_eq!(p["segment"], s(&seg));
    let offset = p["offset"].as_u64().unwrap() as usize;
    assert!(offset >= 32 && offset < payload, "the record's frame starts before its payload: {p}");
    assert!(p["bytes"].as_u64().unwrap() > 0 && p["detail"].is_string());
    // Salvage finds the other ten records.
    assert_eq!(v["records"], 10);

    for args in [vec!["wal", "dump", s(&log)], vec!["wal", "dump", "--json", s(&log)]] {
        let run = cairn(&args);
        run.expect(3);
        assert!(run.stderr.contains("LSN 3") && run.stderr.contains(s(&seg)), "{args:?}: {}", run.stderr);
    }
    // A writer refuses to open it rather than cut durable records.
    let run = cairn_with(["wal", "append", s(&log)], b"more\n");
    run.expect(3);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("LSN 3"), "{}", run.stderr);
}

#[test]
fn records_missing_from_the_middle_of_a_segment_exit_3_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Six records of 64 bytes (88-byte frames) in one batch, then the
    // close's durable mark for LSN 6.
    let input: String = (1..=6).map(|i| format!("{:<64}\n", format!("record {i}"))).collect();
    cairn_with(["wal", "append", "--sync", "never", s(&log)], input.as_bytes()).expect(0);
    let seg = segment(&log);
    let mut bytes = std::fs::read(&seg).unwrap();
    let frame = 88;
    let lsn_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap());
    assert_eq!((lsn_at(&bytes, 32 + 2 * frame), lsn_at(&bytes, 32 + 6 * frame)), (3, 6));
    // Records 3 and 4 taken out whole: every CRC stays valid.
    bytes.drain(32 + 2 * frame..32 + 4 * frame);
    std::fs::write(&seg, &bytes).unwrap();

    let v = cairn(["wal", "verify", "--json", s(&log)]);
    let v = v.expect(3).json();
    assert_eq!(v["ok"], false, "{v}");
    let p = &v["problems"][0];
    assert_eq!(
        (p["kind"].as_str(), p["lsn"].as_u64(), p["offset"].as_u64()),
        (Some("corrupt"), Some(3), Some(32 + 2 * 88))
    );
    assert!(p["detail"].as_str().unwrap().contains("missing"), "{p}");
    let run = cairn(["wal", "verify", s(&log)]);
    run.expect(3);
    assert!(run.stderr.contains("LSN 3"), "{}", run.stderr);
    for run in [cairn(["wal", "dump", s(&log)]), cairn_with(["wal", "append", s(&log)], b"more\n")] {
        run.expect(3);
        assert!(run.stderr.contains("LSN 3") && run.stderr.contains("missing"), "{}", run.stderr);
    }
}

#[test]
fn a_missing_log_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-log");
    for args in [
        vec!["wal", "dump", s(&missing)],
        vec!["wal", "dump", "--json", s(&missing)],
        vec!["wal", "verify", s(&missing)],
        vec!["wal", "verify", "--json", s(&missing)],
    ] {
        let run = cairn(&args);
        run.expect(1);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.out());
        assert!(run.stderr.starts_with("cairn: ") && run.stderr.contains("no-such-log"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("not found"), "{args:?}: {}", run.stderr);
    }
    assert!(!missing.exists(), "readers create nothing");

    // A file where the log directory should be.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a log").unwrap();
    let run = cairn_with(["wal", "append", s(&file)], b"x\n");
    run.expect(1);
    assert!(run.stderr.contains("plain-file") && run.stdout.is_empty(), "{}", run.stderr);
    let run = cairn_with(["wal", "append", s(&file.join("log"))], b"x\n");
    run.expect(1);
}

#[test]
fn a_log_held_by_another_process_can_be_read_but_not_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let wal = Wal::open(&log).unwrap();
    for i in 0..5 {
        wal.append(format!("held {i}").as_bytes()).unwrap();
    }

    let run = cairn_with(["wal", "append", s(&log)], b"intruder\n");
    run.expect(1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("in use by another process") && run.stderr.contains("LOCK"), "{}", run.stderr);

    // Readers take no lock and see what the writer has written.
    let dump = cairn(["wal", "dump", s(&log)]).expect(0).out();
    assert_eq!(dump, "1\theld 0\n2\theld 1\n3\theld 2\n4\theld 3\n5\theld 4\n");
    assert_eq!(cairn(["wal", "verify", s(&log)]).expect(0).out(), "ok: 5 records, LSN 1..5, 1 segment\n");
    wal.append(b"held 5").unwrap();
    assert!(cairn(["wal", "dump", s(&log)]).expect(0).out().ends_with("6\theld 5\n"));

    wal.close().unwrap();
    assert_eq!(cairn_with(["wal", "append", s(&log)], b"next\n").expect(0).out(), "ok 7\n");
}

#[test]
fn a_line_over_the_record_limit_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let input = dir.path().join("input");
    let mut big = b"short\n".to_vec();
    big.resize(big.len() + cairn::wal::MAX_PAYLOAD + 1, b'y');
    big.push(b'\n');
    std::fs::write(&input, &big).unwrap();
    drop(big);
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["wal", "append", s(&log)])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(out.stdout, b"ok 1\n", "the line before it is appended");
    assert!(stderr.contains("line 2 of stdin is longer"), "{stderr}");
    assert_eq!(cairn(["wal", "dump", s(&log)]).expect(0).out(), "1\tshort\n");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = s(&log);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["wal"], "Usage"),
        (vec!["wal", "frobnicate", l], "unrecognized subcommand"),
        (vec!["wal", "append"], "DIR"),
        (vec!["wal", "dump"], "DIR"),
        (vec!["wal", "verify"], "DIR"),
        (vec!["wal", "append", l, "--sync", "sometimes"], "sometimes"),
        (vec!["wal", "append", l, "--sync"], "--sync"),
        (vec!["wal", "append", l, "--sync", "interval", "--interval", "soon"], "--interval"),
        (vec!["wal", "append", l, "--sync", "interval", "--interval", "0ms"], "longer than zero"),
        (vec!["wal", "append", l, "--interval", "5ms"], "--sync interval"),
        (vec!["wal", "append", l, "--sync", "never", "--interval", "5ms"], "--sync interval"),
        (vec!["wal", "dump", l, "--bogus"], "--bogus"),
        (vec!["wal", "verify", l, "extra"], "extra"),
    ];
    for (args, needle) in cases {
        let run = cairn_with(&args, b"line\n");
        run.expect(2);
        assert!(run.stderr.contains(needle), "{args:?}: {needle:?} not in {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(!log.exists(), "{args:?} created the log");
    }
}

#[test]
fn help_describes_the_commands() {
    let top = cairn(["--help"]).expect(0).out();
    assert!(top.lines().any(|l| l.trim_start().starts_with("wal ")), "{top}");
    let help = cairn(["wal", "--help"]).expect(0).out();
    for (cmd, words) in [("append", "stdin"), ("dump", "LSN order"), ("verify", "Check every record")] {
        let line = help.lines().find(|l| l.trim_start().starts_with(cmd)).unwrap_or_else(|| panic!("{cmd}: {help}"));
        assert!(line.contains(words), "{line}");
    }
    let append = cairn(["wal", "append", "--help"]).expect(0).out();
    for needle in ["--sync", "always", "interval", "never", "--interval", "10ms", "ok LSN"] {
        assert!(append.contains(needle), "{needle} not in {append}");
    }
    for cmd in ["dump", "verify"] {
        assert!(cairn(["wal", cmd, "--help"]).expect(0).out().contains("--json"), "{cmd}");
    }
}

#[test]
fn dump_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let input: String = (0..200_000).map(|i| format!("a fairly ordinary line of text, number {i}\n")).collect();
    cairn_with(["wal", "append", s(&log), "--sync", "never"], input.as_bytes()).expect(0);
    for json in [false, true] {
        let mut args = vec!["wal", "dump", s(&log)];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut head = [0u8; 16];
        stdout.read_exact(&mut head).unwrap();
        let expected: &[u8] = if json { b"{\"lsn\":1,\"payloa" } else { b"1\ta fairly ordin" };
        assert_eq!(&head, expected);
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "json {json}: {stderr}");
        assert!(stderr.is_empty(), "json {json}: {stderr}");
    }
}
