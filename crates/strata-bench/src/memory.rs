//! Resident memory of this process, read from `/proc/self/status` (Linux).

/// Resident set size now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_bytes: u64,
    /// `VmHWM`: the high-water mark of resident memory since the process started.
    pub peak_rss_bytes: u64,
}

/// Reads this process's memory figures; zeros where `/proc` is not available.
pub fn current() -> Memory {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| parse_status(&s))
        .unwrap_or_default()
}

/// Parses the `VmRSS` and `VmHWM` lines (in kB) of a `/proc/<pid>/status` text.
pub fn parse_status(status: &str) -> Memory {
    let mut m = Memory::default();
    for line in status.lines() {
        let field = |prefix: &str| -> Option<u64> {
            let rest = line.strip_prefix(prefix)?;
            let kb = rest.trim().trim_end_matches("kB").trim();
            kb.parse::<u64>().ok().map(|k| k * 1024)
        };
        if let Some(v) = field("VmRSS:") {
            m.rss_bytes = v;
        } else if let Some(v) = field("VmHWM:") {
            m.peak_rss_bytes = v;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_lines() {
        let text = "Name:\tstrata\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        let m = parse_status(text);
        assert_eq!(m.rss_bytes, 1024 * 1024);
        assert_eq!(m.peak_rss_bytes, 2048 * 1024);
    }

    #[test]
    fn reads_this_process() {
        let m = current();
        assert!(m.rss_bytes > 0 && m.peak_rss_bytes >= m.rss_bytes);
    }
}
