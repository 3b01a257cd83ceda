//! What the benchmark measures outside the engines, the same way for each of them.
//!
//! Owns reading `/proc/self/io` (bytes this process made the kernel write to storage),
//! `/proc/self/status` (`VmHWM`, peak resident memory), directory size on disk, and the
//! per-operation latency histogram. Must never ask an engine for these figures: an engine's
//! own accounting is exactly what a fair comparison cannot trust.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

/// This process's storage write counters from `/proc/self/io` (summed over all its threads,
/// background flush and compaction threads included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcIo {
    /// Bytes whose writing to storage this process caused (counted when pages are dirtied).
    pub write_bytes: u64,
    /// Of those, bytes that never reached storage because their file was truncated or
    /// deleted first (e.g. a WAL segment removed before writeback).
    pub cancelled_write_bytes: u64,
}

impl ProcIo {
    /// Reads the current counters.
    ///
    /// # Errors
    /// The file cannot be read or lacks the counters (a kernel without task IO accounting).
    pub fn read() -> io::Result<Self> {
        Self::parse(&fs::read_to_string("/proc/self/io")?)
    }

    fn parse(text: &str) -> io::Result<Self> {
        let field = |name: &str| -> io::Result<u64> {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("/proc/self/io has no {name}"),
                    )
                })
        };
        Ok(Self {
            write_bytes: field("write_bytes")?,
            cancelled_write_bytes: field("cancelled_write_bytes")?,
        })
    }

    /// Counters accumulated since `earlier`.
    pub fn since(&self, earlier: &ProcIo) -> ProcIo {
        ProcIo {
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(earlier.cancelled_write_bytes),
        }
    }
}

/// Peak resident set size of this process so far (`VmHWM`), in bytes.
///
/// # Errors
/// `/proc/self/status` cannot be read or has no `VmHWM` line.
pub fn peak_rss_bytes() -> io::Result<u64> {
    parse_vm_hwm(&fs::read_to_string("/proc/self/status")?)
}

fn parse_vm_hwm(status: &str) -> io::Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/self/status has no VmHWM"))
}

/// Bytes allocated on disk (`st_blocks`, what `du` reports) by every file under `dir`.
/// Allocated rather than apparent size, so preallocated or sparse files count as they cost.
///
/// # Errors
/// A directory or file cannot be listed or inspected.
pub fn dir_bytes_on_disk(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // An engine may delete an obsolete file while we walk; it no longer counts.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}

/// Per-operation latencies, recorded in nanoseconds (a memtable insert takes about a
/// microsecond, so microsecond buckets would flatten the interesting part).
#[derive(Clone, Debug)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram with 3 significant digits that grows to any value.
    pub fn new() -> Self {
        // 3 significant figures is always a valid precision: construction cannot fail.
        let hist = Histogram::new(3).expect("3 significant figures is a valid precision");
        Self { hist }
    }

    /// Records one operation's duration.
    pub fn record(&mut self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        // `record` grows the auto-resizing histogram as needed (`saturating_record` would
        // clamp to its current, tiny range instead). It fails only past `i64::MAX / 2` ns;
        // such a sample goes into the top bucket rather than being lost.
        if self.hist.record(nanos).is_err() {
            self.hist.saturating_record(nanos);
        }
    }

    /// Adds another thread's samples.
    pub fn merge(&mut self, other: &Latencies) {
        // Both histograms auto-resize, so adding cannot run out of range.
        let _ = self.hist.add(&other.hist);
    }

    /// Operations recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at `quantile` (0..=1) in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The largest latency recorded, in microseconds.
    pub fn max_us(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;

    #[test]
    fn proc_io_parses_and_subtracts() -> Result<(), BoxError> {
        let text = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 4096\ncancelled_write_bytes: 512\n";
        let io = ProcIo::parse(text)?;
        assert_eq!(io.write_bytes, 4096);
        assert_eq!(io.cancelled_write_bytes, 512);
        let later = ProcIo {
            write_bytes: 10_000,
            cancelled_write_bytes: 512,
        };
        assert_eq!(later.since(&io).write_bytes, 10_000 - 4096);
        assert!(ProcIo::parse("rchar: 1\n").is_err());
        Ok(())
    }

    #[test]
    fn live_counters_are_readable() -> Result<(), BoxError> {
        ProcIo::read()?;
        assert!(peak_rss_bytes()? > 0);
        Ok(())
    }

    #[test]
    fn vm_hwm_is_in_kib() -> Result<(), BoxError> {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\n";
        assert_eq!(parse_vm_hwm(status)?, 2048 * 1024);
        assert!(parse_vm_hwm("Name: x\n").is_err());
        Ok(())
    }

    #[test]
    fn dir_size_counts_nested_files() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("sub"))?;
        fs::write(dir.path().join("a"), vec![1u8; 10_000])?;
        fs::write(dir.path().join("sub/b"), vec![1u8; 10_000])?;
        let bytes = dir_bytes_on_disk(dir.path())?;
        assert!(bytes >= 20_000, "{bytes}");
        Ok(())
    }

    #[test]
    fn latencies_report_quantiles_in_micros() {
        let mut a = Latencies::new();
        for us in 1..=1000u64 {
            a.record(Duration::from_micros(us));
        }
        let mut b = Latencies::new();
        b.record(Duration::from_millis(50));
        a.merge(&b);
        assert_eq!(a.count(), 1001);
        let p50 = a.quantile_us(0.5);
        assert!((495.0..=505.0).contains(&p50), "{p50}");
        assert!(a.max_us() >= 49_900.0);
    }
}
