//! Unique worker names (lane, host, pid, random suffix): apalis-redb treats a same-named
//! worker as the same worker, so every run and every restart needs a fresh name.

use super::job::Lane;

pub(crate) fn unique_worker_name(lane: Lane) -> String {
    format!(
        "franchise-{lane}-{}-{}-{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The machine's name, for telling workers of different machines apart in a shared backend.
pub(crate) fn host_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}
