//! Threads for work that must not delay requests (password hashing, the
//! job workers): they run at a lower scheduling priority.

/// Nice 10 for the calling thread (Linux schedules threads one by one);
/// elsewhere the thread keeps its priority. `what` names the thread in the
/// warning when the system refuses.
pub fn lower_priority(what: &str) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::warn!("could not lower the priority of a {what} thread");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = what;
}
