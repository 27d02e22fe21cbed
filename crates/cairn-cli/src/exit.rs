//! Error kinds the CLI reports, and the one place that maps them to exit
//! codes and prints them.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// Exit code for runtime errors (missing file, I/O failure).
pub const RUNTIME: u8 = 1;
/// Exit code for usage errors (bad arguments).
pub const USAGE: u8 = 2;
/// Exit code for integrity failures (damaged data).
pub const INTEGRITY: u8 = 3;

/// The user asked for something invalid; exits with [`USAGE`].
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Stored data failed a check found outside a [`cairn::Error::Corrupt`],
/// e.g. problems listed by a verify report; exits with [`INTEGRITY`].
#[derive(Debug)]
pub struct Integrity(pub String);

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Integrity {}

/// Returns a usage error with this message.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// Turns a library error into a usage error when the library refused an
/// argument the user gave (bad frame size, duplicate or over-long name).
pub fn usage_if_invalid(e: cairn::Error) -> anyhow::Error {
    match e {
        cairn::Error::InvalidArgument(msg) => usage(msg),
        other => anyhow::Error::new(other),
    }
}

/// The exit code for an error, looking at every cause in its chain.
/// Damage wins over everything else: a corrupt file is what matters most.
pub fn code(err: &anyhow::Error) -> u8 {
    let corrupt = err
        .chain()
        .any(|e| e.is::<Integrity>() || e.downcast_ref::<cairn::Error>().is_some_and(cairn::Error::is_corruption));
    if corrupt {
        INTEGRITY
    } else if err.chain().any(|e| e.is::<Usage>()) {
        USAGE
    } else {
        RUNTIME
    }
}

/// Whether the error comes from writing to a closed pipe (`cairn cat | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The message with its causes, `outer: inner: innermost`, as the library
/// writes error chains ([`cairn::error_chain`]): a cause whose text its
/// parent already ends with (context that repeats its cause) is printed
/// once.
pub fn message(err: &anyhow::Error) -> String {
    cairn::error_chain(err.as_ref())
}

/// Prints `cairn: <message>` to stderr and returns the exit code; a broken
/// pipe on stdout ends the program quietly with success.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    // Nothing more can be done if stderr is gone too.
    let _ = writeln!(std::io::stderr().lock(), "cairn: {}", message(err));
    ExitCode::from(code(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt() -> cairn::Error {
        cairn::Error::Corrupt { file: "f".into(), what: "chunk \"w\" frame 0".into(), offset: 64, detail: "bad".into() }
    }

    #[test]
    fn codes_follow_the_chain() {
        assert_eq!(code(&anyhow::anyhow!("plain")), RUNTIME);
        assert_eq!(code(&usage("bad").context("packing")), USAGE);
        assert_eq!(code(&anyhow::Error::new(corrupt()).context("reading")), INTEGRITY);
        assert_eq!(code(&anyhow::Error::new(Integrity("2 problems".into()))), INTEGRITY);
        assert_eq!(code(&usage_if_invalid(cairn::Error::InvalidArgument("x".into()))), USAGE);
        let poisoned = cairn::Error::Poisoned { what: "log x".into(), cause: "disk full".into() };
        assert_eq!(code(&usage_if_invalid(poisoned)), RUNTIME);
        // A refused change and an internal failure are not the user's usage.
        let refused = cairn::Error::Refused { what: "removing entry 1".into(), reason: "it is pinned".into() };
        assert_eq!(code(&usage_if_invalid(refused)), RUNTIME);
        assert_eq!(code(&usage_if_invalid(cairn::Error::Internal("bug".into()))), RUNTIME);
    }

    #[test]
    fn broken_pipe_is_found_under_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        assert!(is_broken_pipe(&anyhow::Error::new(io).context("writing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        let io = std::io::Error::other("disk full");
        let err = anyhow::Error::new(io).context("writing x: disk full").context("packing");
        assert_eq!(message(&err), "packing: writing x: disk full");
    }
}
