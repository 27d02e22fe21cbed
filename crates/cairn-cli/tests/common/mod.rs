//! What the CLI tests share: running the binary, deterministic data.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

/// A finished run of the `cairn` binary.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.out()))
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "stdout: {}\nstderr: {}", self.out(), self.stderr);
        self
    }
}

/// Runs `cairn` with `args` and no input.
pub fn cairn<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> Run {
    cairn_with(args, b"")
}

/// Runs `cairn` with `stdin` as its input.
pub fn cairn_with<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I, stdin: &[u8]) -> Run {
    cairn_env(args, stdin, &[])
}

/// Runs `cairn` with `stdin` as its input and `env` added to its
/// environment.
pub fn cairn_env<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I, stdin: &[u8], env: &[(&str, &OsStr)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    // A separate thread, so a child that stops reading (an error) cannot
    // block the test; its write error is then expected.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A fresh prefix under `CAIRN_TEST_S3_URL` for one test, or `None` when
/// it is not set (a failure under CI, which must run the S3 tests).
pub fn s3_prefix(name: &str) -> Option<String> {
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but CAIRN_TEST_S3_URL is not: the S3 tests must run");
        eprintln!("CAIRN_TEST_S3_URL is not set: skipping the S3 part");
        return None;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    Some(format!("{}/{name}-{}-{nanos:x}", base.trim_end_matches('/'), std::process::id()))
}

/// Deterministic bytes that do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
