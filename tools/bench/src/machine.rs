//! The machine the numbers come from, and this process's memory (Linux /proc).

use std::fs;

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn proc_field(file: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

pub fn mem_total_kib() -> Option<u64> {
    proc_field("/proc/meminfo", "MemTotal:")
}

pub fn cpu_model() -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Peak resident set of this process since start or the last [`reset_peak_rss`], in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:")
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so a measurement's peak is its own.
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn describe() -> String {
    let mem = mem_total_kib().map_or_else(
        || "unknown".to_string(),
        |kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0),
    );
    format!(
        "{} cores (nproc), {} memory (MemTotal), CPU: {}",
        cores(),
        mem,
        cpu_model().unwrap_or_else(|| "unknown".into())
    )
}
