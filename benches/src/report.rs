//! Results: what one workload run measured, how a child process hands it to its parent, and
//! how the parent prints it.
//!
//! Owns [`WorkloadResult`] (with the derived figures: ops/s, write and space amplification),
//! its line encoding ([`WorkloadResult::to_lines`] / [`WorkloadResult::parse_lines`]: one
//! `@field value` per line, so no serialisation crate is needed and stray output cannot be
//! mistaken for a result) and the printed forms: one block per result and the side-by-side
//! table. Must never measure anything: it only carries and formats numbers.

use std::fmt::Write as _;

use crate::engine::EngineKind;

/// Everything one (engine, workload) run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadResult {
    /// The engine.
    pub engine: EngineKind,
    /// The workload's name (`fillsync-32t`, ...).
    pub workload: String,
    /// Operations timed.
    pub ops: u64,
    /// Wall-clock seconds of the timed loop.
    pub elapsed_secs: f64,
    /// Median latency per operation, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Slowest operation, µs.
    pub max_us: f64,
    /// Key + value bytes the workload wrote.
    pub user_bytes_written: u64,
    /// `/proc/self/io` `write_bytes` over the timed loop and the flush after it.
    pub disk_bytes_written: u64,
    /// `/proc/self/io` `cancelled_write_bytes` over the same window.
    pub cancelled_write_bytes: u64,
    /// Key + value bytes of the data that should be live after the workload.
    pub live_bytes: Option<u64>,
    /// Directory size on disk after the workload and its flush, before the compaction.
    pub dir_bytes_before_compaction: Option<u64>,
    /// Directory size on disk right after the full compaction, the engine still open.
    pub dir_bytes_after_compaction: Option<u64>,
    /// Directory size on disk after the engine was closed (after the full compaction for
    /// writing workloads): the figure space amplification uses.
    pub dir_bytes: Option<u64>,
    /// Whether the engine ran a real full compaction (`None`: none was attempted).
    pub full_compaction: Option<bool>,
    /// Seconds the full compaction took.
    pub compact_secs: Option<f64>,
    /// Peak resident memory of the process up to the end of the workload (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// For `ttl`: whether the engine expires records (`None` for other workloads).
    pub ttl_supported: Option<bool>,
    /// Free-form observations: checks, engine-reported figures.
    pub notes: Vec<String>,
}

impl WorkloadResult {
    /// An empty result for `workload` on `engine`.
    pub fn new(engine: EngineKind, workload: String) -> Self {
        Self {
            engine,
            workload,
            ops: 0,
            elapsed_secs: 0.0,
            p50_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
            user_bytes_written: 0,
            disk_bytes_written: 0,
            cancelled_write_bytes: 0,
            live_bytes: None,
            dir_bytes_before_compaction: None,
            dir_bytes_after_compaction: None,
            dir_bytes: None,
            full_compaction: None,
            compact_secs: None,
            peak_rss_bytes: 0,
            ttl_supported: None,
            notes: Vec::new(),
        }
    }

    /// Operations per second of the timed loop.
    pub fn ops_per_sec(&self) -> f64 {
        if self.elapsed_secs > 0.0 {
            self.ops as f64 / self.elapsed_secs
        } else {
            0.0
        }
    }

    /// Bytes written to disk per user byte written; `None` for workloads that write nothing.
    pub fn write_amp(&self) -> Option<f64> {
        (self.user_bytes_written > 0)
            .then(|| self.disk_bytes_written as f64 / self.user_bytes_written as f64)
    }

    /// Directory size per live user byte, after the compaction; `None` when not measured.
    pub fn space_amp(&self) -> Option<f64> {
        match (self.dir_bytes, self.live_bytes, self.full_compaction) {
            (Some(dir), Some(live), Some(_)) if live > 0 => Some(dir as f64 / live as f64),
            _ => None,
        }
    }

    /// The encoding a child process prints on stdout for its parent.
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        let mut field = |name: &str, value: String| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "@{name} {value}");
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        field("engine", self.engine.name().to_string());
        field("workload", self.workload.clone());
        field("ops", self.ops.to_string());
        field("elapsed_secs", self.elapsed_secs.to_string());
        field("p50_us", self.p50_us.to_string());
        field("p99_us", self.p99_us.to_string());
        field("p999_us", self.p999_us.to_string());
        field("max_us", self.max_us.to_string());
        field("user_bytes_written", self.user_bytes_written.to_string());
        field("disk_bytes_written", self.disk_bytes_written.to_string());
        field(
            "cancelled_write_bytes",
            self.cancelled_write_bytes.to_string(),
        );
        field("live_bytes", opt(self.live_bytes.map(|v| v.to_string())));
        field(
            "dir_bytes_before_compaction",
            opt(self.dir_bytes_before_compaction.map(|v| v.to_string())),
        );
        field(
            "dir_bytes_after_compaction",
            opt(self.dir_bytes_after_compaction.map(|v| v.to_string())),
        );
        field("dir_bytes", opt(self.dir_bytes.map(|v| v.to_string())));
        field(
            "full_compaction",
            opt(self.full_compaction.map(|v| v.to_string())),
        );
        field(
            "compact_secs",
            opt(self.compact_secs.map(|v| v.to_string())),
        );
        field("peak_rss_bytes", self.peak_rss_bytes.to_string());
        field(
            "ttl_supported",
            opt(self.ttl_supported.map(|v| v.to_string())),
        );
        for note in &self.notes {
            field("note", note.replace('\n', " "));
        }
        out
    }

    /// Decodes [`WorkloadResult::to_lines`], ignoring lines that do not start with `@`.
    ///
    /// # Errors
    /// A field is missing, unknown or does not parse.
    pub fn parse_lines(text: &str) -> Result<Self, String> {
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("field {name} has a bad value {v:?}"))
        }
        fn opt<T: std::str::FromStr>(name: &str, v: &str) -> Result<Option<T>, String> {
            if v == "-" {
                Ok(None)
            } else {
                num(name, v).map(Some)
            }
        }
        let mut engine = None;
        let mut r = WorkloadResult::new(EngineKind::Ringkv, String::new());
        for line in text.lines() {
            let Some(rest) = line.strip_prefix('@') else {
                continue;
            };
            let (name, v) = rest.split_once(' ').unwrap_or((rest, ""));
            match name {
                "engine" => engine = Some(v.parse::<EngineKind>()?),
                "workload" => r.workload = v.to_string(),
                "ops" => r.ops = num(name, v)?,
                "elapsed_secs" => r.elapsed_secs = num(name, v)?,
                "p50_us" => r.p50_us = num(name, v)?,
                "p99_us" => r.p99_us = num(name, v)?,
                "p999_us" => r.p999_us = num(name, v)?,
                "max_us" => r.max_us = num(name, v)?,
                "user_bytes_written" => r.user_bytes_written = num(name, v)?,
                "disk_bytes_written" => r.disk_bytes_written = num(name, v)?,
                "cancelled_write_bytes" => r.cancelled_write_bytes = num(name, v)?,
                "live_bytes" => r.live_bytes = opt(name, v)?,
                "dir_bytes_before_compaction" => r.dir_bytes_before_compaction = opt(name, v)?,
                "dir_bytes_after_compaction" => r.dir_bytes_after_compaction = opt(name, v)?,
                "dir_bytes" => r.dir_bytes = opt(name, v)?,
                "full_compaction" => r.full_compaction = opt(name, v)?,
                "compact_secs" => r.compact_secs = opt(name, v)?,
                "peak_rss_bytes" => r.peak_rss_bytes = num(name, v)?,
                "ttl_supported" => r.ttl_supported = opt(name, v)?,
                "note" => r.notes.push(v.to_string()),
                other => return Err(format!("unknown result field {other:?}")),
            }
        }
        r.engine = engine.ok_or("the child printed no result")?;
        if r.workload.is_empty() {
            return Err("the child's result names no workload".into());
        }
        Ok(r)
    }

    /// A human-readable block: every figure of this run, then its notes.
    pub fn render_block(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<7} {:<13} {:>12.0} ops/s  ({} ops in {:.2} s)",
            self.engine.name(),
            self.workload,
            self.ops_per_sec(),
            self.ops,
            self.elapsed_secs
        );
        let _ = writeln!(
            out,
            "        latency µs: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            self.p50_us, self.p99_us, self.p999_us, self.max_us
        );
        if let Some(wa) = self.write_amp() {
            let _ = writeln!(
                out,
                "        write amp {wa:.2}  ({} written to disk for {} of keys+values; {} of it cancelled before writeback)",
                mib(self.disk_bytes_written),
                mib(self.user_bytes_written),
                mib(self.cancelled_write_bytes)
            );
        }
        match (
            self.dir_bytes_before_compaction,
            self.dir_bytes_after_compaction,
            self.dir_bytes,
            self.full_compaction,
        ) {
            (Some(before), Some(compacted), Some(closed), Some(full)) => {
                let how = if full {
                    "full compaction"
                } else {
                    "the no-op compaction"
                };
                let _ = writeln!(
                    out,
                    "        dir {} after the workload, {} right after {how} ({:.2} s), {} after close",
                    mib(before),
                    mib(compacted),
                    self.compact_secs.unwrap_or(0.0),
                    mib(closed)
                );
                let _ = writeln!(
                    out,
                    "        live data {}; space amp {}",
                    self.live_bytes.map_or_else(|| "-".into(), mib),
                    fmt_opt(self.space_amp(), 2)
                );
            }
            (_, _, Some(dir), _) => {
                let _ = writeln!(out, "        dir {}", mib(dir));
            }
            _ => {}
        }
        let _ = writeln!(out, "        peak RSS {}", mib(self.peak_rss_bytes));
        if self.ttl_supported == Some(false) {
            let _ = writeln!(
                out,
                "        TTL: n/a ({} has no per-record expiry; the same data was written without it)",
                self.engine.name()
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "        - {note}");
        }
        out
    }
}

/// Bytes as MiB with two decimals.
fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The side-by-side markdown table: one row per workload, ringkv and fjall next to each
/// other, and the ratio of their throughputs (ringkv / fjall, above 1 means ringkv is faster).
pub fn render_table(results: &[WorkloadResult]) -> String {
    let mut workloads: Vec<&str> = Vec::new();
    for r in results {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    let find = |engine: EngineKind, workload: &str| {
        results
            .iter()
            .find(|r| r.engine == engine && r.workload == workload)
    };
    let pair = |a: Option<&WorkloadResult>,
                b: Option<&WorkloadResult>,
                f: &dyn Fn(&WorkloadResult) -> String| {
        format!(
            "{} / {}",
            a.map_or_else(|| "-".to_string(), f),
            b.map_or_else(|| "-".to_string(), f)
        )
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | ringkv ops/s | fjall ops/s | ratio | p50 µs (r / f) | p99 µs (r / f) | p99.9 µs (r / f) | write amp (r / f) | space amp (r / f) | peak RSS MiB (r / f) |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for w in workloads {
        let r = find(EngineKind::Ringkv, w);
        let f = find(EngineKind::Fjall, w);
        let ratio = match (r, f) {
            (Some(r), Some(f)) if f.ops_per_sec() > 0.0 => {
                format!("{:.2}", r.ops_per_sec() / f.ops_per_sec())
            }
            _ => "-".to_string(),
        };
        let ops = |x: Option<&WorkloadResult>| {
            x.map_or_else(|| "-".to_string(), |x| format!("{:.0}", x.ops_per_sec()))
        };
        let space = |x: &WorkloadResult| {
            if x.ttl_supported == Some(false) {
                // fjall's ttl figure counts every record as live: it is not comparable.
                format!("{} (no TTL)", fmt_opt(x.space_amp(), 2))
            } else {
                fmt_opt(x.space_amp(), 2)
            }
        };
        let _ = writeln!(
            out,
            "| {w} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {} |",
            ops(r),
            ops(f),
            pair(r, f, &|x| format!("{:.1}", x.p50_us)),
            pair(r, f, &|x| format!("{:.1}", x.p99_us)),
            pair(r, f, &|x| format!("{:.1}", x.p999_us)),
            pair(r, f, &|x| fmt_opt(x.write_amp(), 2)),
            pair(r, f, &space),
            pair(r, f, &|x| format!(
                "{:.0}",
                x.peak_rss_bytes as f64 / (1024.0 * 1024.0)
            )),
        );
    }
    if let Some(ttl) = render_ttl_summary(results) {
        out.push('\n');
        out.push_str(&ttl);
    }
    out
}

/// One line per engine on what the `ttl` workload left on disk.
fn render_ttl_summary(results: &[WorkloadResult]) -> Option<String> {
    let mut out = String::new();
    for r in results.iter().filter(|r| r.ttl_supported.is_some()) {
        let (Some(before), Some(after)) = (r.dir_bytes_before_compaction, r.dir_bytes) else {
            continue;
        };
        if r.ttl_supported == Some(true) {
            let _ = writeln!(
                out,
                "ttl, {}: {} on disk after the fill, {} after expiry, full compaction and close ({:.0}% reclaimed); live data {}",
                r.engine.name(),
                mib(before),
                mib(after),
                100.0 * (1.0 - after as f64 / before.max(1) as f64),
                r.live_bytes.map_or_else(|| "-".into(), mib)
            );
        } else {
            let _ = writeln!(
                out,
                "ttl, {}: n/a (no per-record expiry); the same data written plainly: {} after the fill, {} after full compaction and close",
                r.engine.name(),
                mib(before),
                mib(after)
            );
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;

    fn sample(engine: EngineKind, workload: &str, ops_per_sec: f64) -> WorkloadResult {
        let mut r = WorkloadResult::new(engine, workload.to_string());
        r.ops = 1000;
        r.elapsed_secs = 1000.0 / ops_per_sec;
        r.p50_us = 1.5;
        r.p99_us = 20.25;
        r.p999_us = 300.0;
        r.max_us = 4000.0;
        r.user_bytes_written = 1_000_000;
        r.disk_bytes_written = 2_500_000;
        r.live_bytes = Some(1_000_000);
        r.dir_bytes_before_compaction = Some(1_500_000);
        r.dir_bytes_after_compaction = Some(1_200_000);
        r.dir_bytes = Some(800_000);
        r.full_compaction = Some(true);
        r.compact_secs = Some(0.25);
        r.peak_rss_bytes = 50 << 20;
        r.notes = vec!["first note".into(), "second: with = signs".into()];
        r
    }

    #[test]
    fn results_round_trip_through_lines() -> Result<(), BoxError> {
        let mut r = sample(EngineKind::Fjall, "fillsync-32t", 1234.5);
        r.ttl_supported = Some(false);
        let text = format!("noise before\n{}noise after\n", r.to_lines());
        assert_eq!(WorkloadResult::parse_lines(&text)?, r);

        let mut bare = WorkloadResult::new(EngineKind::Ringkv, "readrandom".into());
        bare.dir_bytes = Some(10);
        assert_eq!(WorkloadResult::parse_lines(&bare.to_lines())?, bare);
        Ok(())
    }

    #[test]
    fn bad_child_output_is_an_error() {
        assert!(WorkloadResult::parse_lines("nothing here").is_err());
        assert!(WorkloadResult::parse_lines("@engine ringkv\n@workload x\n@ops many\n").is_err());
        assert!(WorkloadResult::parse_lines("@engine ringkv\n@workload x\n@bogus 1\n").is_err());
    }

    #[test]
    fn derived_figures() {
        let r = sample(EngineKind::Ringkv, "fillrandom", 1000.0);
        assert!((r.ops_per_sec() - 1000.0).abs() < 1e-6);
        assert_eq!(r.write_amp(), Some(2.5));
        assert_eq!(r.space_amp(), Some(0.8));
        let reads = WorkloadResult::new(EngineKind::Ringkv, "readrandom".into());
        assert_eq!(reads.write_amp(), None);
        assert_eq!(reads.space_amp(), None);
    }

    #[test]
    fn table_puts_engines_side_by_side() -> Result<(), BoxError> {
        let mut ttl_r = sample(EngineKind::Ringkv, "ttl", 100.0);
        ttl_r.ttl_supported = Some(true);
        let mut ttl_f = sample(EngineKind::Fjall, "ttl", 100.0);
        ttl_f.ttl_supported = Some(false);
        let results = vec![
            sample(EngineKind::Ringkv, "fillrandom", 2000.0),
            sample(EngineKind::Fjall, "fillrandom", 1000.0),
            sample(EngineKind::Ringkv, "readrandom", 500.0),
            ttl_r,
            ttl_f,
        ];
        let table = render_table(&results);
        let row = table
            .lines()
            .find(|l| l.starts_with("| fillrandom"))
            .ok_or("no fillrandom row")?;
        assert!(row.contains("| 2000 | 1000 | 2.00 |"), "{row}");
        assert!(row.contains("1.5 / 1.5"), "{row}");
        let only_ringkv = table
            .lines()
            .find(|l| l.starts_with("| readrandom"))
            .ok_or("no readrandom row")?;
        assert!(only_ringkv.contains("| 500 | - | - |"), "{only_ringkv}");
        assert!(table.contains("(no TTL)"));
        assert!(table.contains("ttl, fjall: n/a"));
        assert!(table.contains("ttl, ringkv:"));
        assert!(sample(EngineKind::Fjall, "x", 1.0)
            .render_block()
            .contains("space amp 0.80"));
        Ok(())
    }
}
