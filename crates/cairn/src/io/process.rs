//! Whether the process that left something behind (a temp file, a lease)
//! still runs on this host. One rule for every caller, so that a temp-file
//! sweep and a lease collection never disagree about the same pid.

/// Whether `pid`, as another process of this host recorded it, names a
/// running process. A pid that is not a decimal integer, is 0 or negative,
/// or does not fit a `pid_t` is never a live owner: `kill` would address a
/// process group (0, -1, -n) or nothing at all, not the writer.
/// `kill(pid, 0)` succeeding, or failing with `EPERM` (it runs under
/// another user), means alive; only `ESRCH` proves it gone, so an
/// unexpected error keeps what the process owns rather than taking it.
pub(crate) fn process_alive(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<i64>() else { return false };
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; kill only checks that the process
    // exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Lowers the calling thread's scheduling priority to niceness `nice`
/// unless it already runs at that or lower; a refusal changes nothing.
/// Linux only, where `setpriority(PRIO_PROCESS, 0, …)` addresses the
/// calling thread (threads it starts later inherit it); elsewhere it would
/// address the whole process, so it does nothing.
pub(crate) fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority and setpriority take plain integers and only
        // read or change the calling thread's niceness.
        unsafe {
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            if nice > now {
                let _ = libc::setpriority(libc::PRIO_PROCESS, 0, nice);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn lowering_a_threads_priority_leaves_the_others_alone() {
        // SAFETY: reads the calling thread's niceness.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let lowered = std::thread::spawn(move || {
            lower_thread_priority((before + 3).min(19));
            let after = nice();
            // Never raised again by a smaller value.
            lower_thread_priority(before + 1);
            (after, nice())
        })
        .join()
        .unwrap_or((before, before));
        let want = (before + 3).min(19);
        assert_eq!(lowered, (want, want));
        assert_eq!(nice(), before, "the calling thread was lowered too");
    }

    #[test]
    fn pids_that_address_groups_or_nothing_are_not_alive() {
        for pid in ["0", "-1", "-42", "", "abc", "12x", " 1", "1.5", "99999999999999999999"] {
            assert!(!process_alive(pid), "{pid:?} counted as a live process");
        }
        let above = (i64::from(libc::pid_t::MAX) + 1).to_string();
        assert!(!process_alive(&above), "{above} is not a pid_t");
    }

    #[test]
    fn running_processes_are_alive_and_unused_pids_are_not() {
        assert!(process_alive(&std::process::id().to_string()));
        // init runs on every host: alive whether kill succeeds (root) or
        // fails with EPERM (anyone else).
        assert!(process_alive("1"));
        // Far above any default pid_max: no such process.
        assert!(!process_alive("2147483000"));
    }
}
