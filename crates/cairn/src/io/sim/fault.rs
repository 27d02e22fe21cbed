//! Injected I/O errors: which operations fail, and how.

use std::io;
use std::path::Path;

/// The kinds of mutating operation [`SimFs`](super::SimFs) counts, and that
/// a [`FaultRule`] can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// An open or `try_lock` that creates a missing file.
    Create,
    /// `write_at` (and so `append`).
    Write,
    /// `set_len`.
    SetLen,
    /// `sync_data`.
    SyncData,
    /// `sync_all`.
    SyncAll,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
    /// A `create_dir_all` that creates at least one directory.
    CreateDir,
    /// `sync_dir`.
    SyncDir,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// `EIO`: the device failed.
    #[default]
    Eio,
    /// `ENOSPC`: the device is full.
    Enospc,
}

impl Fault {
    /// The `io::Error` this fault returns: the raw OS error, so callers see
    /// the same kind as from a real disk.
    pub fn to_io_error(self) -> io::Error {
        match self {
            Fault::Eio => io::Error::from_raw_os_error(libc::EIO),
            Fault::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
        }
    }
}

/// Makes matching operations fail without any effect.
///
/// A rule looks at every mutating operation (in the order they happen);
/// those that match `op` and `path_contains` are counted by the rule: the
/// first `skip` succeed, the next `times` fail (for ever if `times` is 0),
/// after which the rule is spent. A failed operation changes nothing but
/// still counts in [`SimFs::op_count`](super::SimFs::op_count).
///
/// ```
/// use cairn::io::{Fault, FaultRule, OpKind};
/// // The second sync_all of any file whose path contains "wal" fails with ENOSPC, once.
/// let rule = FaultRule::on(OpKind::SyncAll).on_path("wal").skip_first(1).fail_times(1).with_fault(Fault::Enospc);
/// assert_eq!(rule.skip, 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultRule {
    /// The kind of operation to fail. Default = `None`: any mutating one.
    pub op: Option<OpKind>,
    /// Only operations on a path whose display string contains this (either
    /// path, for a rename; the path the file was opened with, for an
    /// operation on an open file). Default = `None`: any path.
    pub path_contains: Option<String>,
    /// How many matching operations succeed before the first failure.
    /// Default = 0.
    pub skip: u64,
    /// How many matching operations fail; 0 means all of them.
    /// Default = 0.
    pub times: u64,
    /// The error to return. Default = `None`: [`Fault::Eio`].
    pub fault: Option<Fault>,
}

impl FaultRule {
    /// A rule failing every mutating operation with `EIO`; narrow it with the
    /// setters.
    pub fn any() -> Self {
        FaultRule::default()
    }

    /// A rule failing every operation of kind `op` with `EIO`.
    pub fn on(op: OpKind) -> Self {
        FaultRule { op: Some(op), ..FaultRule::default() }
    }

    /// Only operations on paths containing `part`.
    #[must_use]
    pub fn on_path(mut self, part: impl Into<String>) -> Self {
        self.path_contains = Some(part.into());
        self
    }

    /// Let the first `n` matching operations succeed.
    #[must_use]
    pub fn skip_first(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// Fail `n` matching operations (0 = all), then stop.
    #[must_use]
    pub fn fail_times(mut self, n: u64) -> Self {
        self.times = n;
        self
    }

    /// Fail with `fault` instead of `EIO`.
    #[must_use]
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    fn matches(&self, kind: OpKind, paths: &[&Path]) -> bool {
        if self.op.is_some_and(|op| op != kind) {
            return false;
        }
        match &self.path_contains {
            None => true,
            Some(part) => paths.iter().any(|p| p.display().to_string().contains(part.as_str())),
        }
    }
}

/// A rule and how many operations it has matched so far.
#[derive(Debug, Clone)]
pub(super) struct ActiveRule {
    rule: FaultRule,
    matched: u64,
}

impl ActiveRule {
    pub(super) fn new(rule: FaultRule) -> Self {
        ActiveRule { rule, matched: 0 }
    }

    /// Counts the operation if it matches and says whether it must fail.
    pub(super) fn observe(&mut self, kind: OpKind, paths: &[&Path]) -> Option<Fault> {
        if !self.rule.matches(kind, paths) {
            return None;
        }
        let index = self.matched;
        self.matched = self.matched.saturating_add(1);
        let failing = index.checked_sub(self.rule.skip)?;
        if self.rule.times == 0 || failing < self.rule.times {
            Some(self.rule.fault.unwrap_or_default())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_then_times_then_spent() {
        let mut r = ActiveRule::new(FaultRule::on(OpKind::Write).skip_first(2).fail_times(2));
        let p = Path::new("a");
        let got: Vec<bool> = (0..6).map(|_| r.observe(OpKind::Write, &[p]).is_some()).collect();
        assert_eq!(got, [false, false, true, true, false, false]);
        assert_eq!(r.observe(OpKind::SyncAll, &[p]), None);
    }

    #[test]
    fn times_zero_is_forever_and_path_filters() {
        let mut r = ActiveRule::new(FaultRule::any().on_path("wal").with_fault(Fault::Enospc));
        assert_eq!(r.observe(OpKind::Rename, &[Path::new("x"), Path::new("d/wal-1")]), Some(Fault::Enospc));
        assert_eq!(r.observe(OpKind::Write, &[Path::new("ckpt")]), None);
        for _ in 0..100 {
            assert_eq!(r.observe(OpKind::SyncDir, &[Path::new("wal")]), Some(Fault::Enospc));
        }
    }

    #[test]
    fn faults_are_raw_os_errors() {
        assert_eq!(Fault::Eio.to_io_error().raw_os_error(), Some(libc::EIO));
        assert_eq!(Fault::Enospc.to_io_error().kind(), io::ErrorKind::StorageFull);
    }
}
