//! Peak memory of this process, for the run summary.

/// Peak resident set size in bytes (Linux `VmHWM`), if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `12.3 MB` style, decimal units as `/usr/bin/time` readers expect.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_at_least_what_we_hold() {
        let v = std::hint::black_box(vec![1u8; 50_000_000]);
        assert_eq!(
            std::hint::black_box(&v)
                .iter()
                .map(|&b| b as u64)
                .sum::<u64>(),
            50_000_000
        );
        let peak = peak_rss_bytes().unwrap();
        assert!(peak >= 50_000_000, "{peak}");
        drop(v);
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
    }
}
