//! The db_bench-style workloads, each run in one process against one engine.
//!
//! Owns [`Workload`] (names, which directory each uses, whether it needs a prior fill),
//! [`BenchParams`] (sizes and counts shared by every workload) and [`run`], which opens the
//! engine, times the operations, flushes, measures write amplification, peak RSS and (after
//! a full compaction) space amplification, and returns a [`WorkloadResult`]. Must never
//! depend on which engine it drives beyond [`Engine`]: both engines get the same keys, the
//! same values, in the same order, measured the same way.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::engine::{self, Compaction, Durability, Engine, EngineConfig, EngineKind};
use crate::keygen::{mix64, KeySpace, Permutation, SplitMix64, ValueSource};
use crate::measure::{dir_bytes_on_disk, peak_rss_bytes, Latencies, ProcIo};
use crate::report::WorkloadResult;
use crate::BoxError;

/// One workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// `num` puts in key order into an empty engine.
    FillSeq,
    /// `num` puts of every key once, in random order, into an empty engine. Leaves the data
    /// that the read and overwrite workloads use.
    FillRandom,
    /// `num` puts of random existing keys (with repeats) over the fill.
    Overwrite,
    /// `num` gets of random existing keys.
    ReadRandom,
    /// `num` gets of random keys that were never written but sort among those that were.
    ReadMissing,
    /// `seeks` times: position at a random existing key and read the next `seek_nexts` entries.
    SeekRandom,
    /// `sync_ops` puts into an empty engine, each fsynced before it returns, from `threads`
    /// writer threads at once.
    FillSync {
        /// Concurrent writer threads.
        threads: usize,
    },
    /// `num` puts in random order, about 90% of them expiring `ttl_ms` after they are
    /// written; then wait past the last expiry, compact fully and measure what is left.
    Ttl,
}

impl Workload {
    /// The workloads `--workloads` accepts by default, in the order they run (`fillsync`
    /// expands to one workload per `--sync-threads` entry).
    pub const DEFAULT_LIST: &'static str =
        "fillseq,fillrandom,overwrite,readrandom,readmissing,seekrandom,fillsync,ttl";

    /// Whether it reads or overwrites the data [`Workload::FillRandom`] leaves.
    pub fn needs_fill(self) -> bool {
        matches!(
            self,
            Workload::Overwrite
                | Workload::ReadRandom
                | Workload::ReadMissing
                | Workload::SeekRandom
        )
    }

    /// Whether it writes (and so has write and space amplification figures).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Workload::ReadRandom | Workload::ReadMissing | Workload::SeekRandom
        )
    }

    /// Whether it starts from an empty directory.
    pub fn starts_empty(self) -> bool {
        self.writes() && !self.needs_fill()
    }

    /// The directory, under one engine's data directory, that it uses.
    pub fn dir_name(self) -> String {
        match self {
            Workload::FillSeq => "fillseq".into(),
            Workload::FillSync { threads } => format!("fillsync-{threads}t"),
            Workload::Ttl => "ttl".into(),
            // The fill every read and overwrite workload shares.
            _ => "main".into(),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::FillSeq => f.write_str("fillseq"),
            Workload::FillRandom => f.write_str("fillrandom"),
            Workload::Overwrite => f.write_str("overwrite"),
            Workload::ReadRandom => f.write_str("readrandom"),
            Workload::ReadMissing => f.write_str("readmissing"),
            Workload::SeekRandom => f.write_str("seekrandom"),
            Workload::FillSync { threads } => write!(f, "fillsync-{threads}t"),
            Workload::Ttl => f.write_str("ttl"),
        }
    }
}

impl FromStr for Workload {
    type Err = String;

    /// Parses one workload name as [`Display`](fmt::Display) writes it (`fillsync-32t`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "fillseq" => Workload::FillSeq,
            "fillrandom" => Workload::FillRandom,
            "overwrite" => Workload::Overwrite,
            "readrandom" => Workload::ReadRandom,
            "readmissing" => Workload::ReadMissing,
            "seekrandom" => Workload::SeekRandom,
            "ttl" => Workload::Ttl,
            other => {
                let threads = other
                    .strip_prefix("fillsync-")
                    .and_then(|t| t.strip_suffix('t'))
                    .and_then(|t| t.parse::<usize>().ok())
                    .filter(|&t| t > 0)
                    .ok_or_else(|| format!("unknown workload {other:?}"))?;
                Workload::FillSync { threads }
            }
        })
    }
}

/// Expands a `--workloads` list: `fillsync` becomes one workload per entry of `sync_threads`.
///
/// # Errors
/// An unknown workload name.
pub fn expand_list(list: &str, sync_threads: &[usize]) -> Result<Vec<Workload>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "fillsync" {
            out.extend(
                sync_threads
                    .iter()
                    .map(|&threads| Workload::FillSync { threads }),
            );
        } else {
            out.push(name.parse()?);
        }
    }
    Ok(out)
}

/// Sizes and counts shared by every workload and both engines.
#[derive(Clone, Debug)]
pub struct BenchParams {
    /// Keys in a fill, and operations in the other `num`-sized workloads.
    pub num: u64,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Seed for keys, key orders and values.
    pub seed: u64,
    /// Operations in each fsync-per-write workload (all threads together).
    pub sync_ops: u64,
    /// Seeks in `seekrandom`.
    pub seeks: u64,
    /// Entries read after each seek.
    pub seek_nexts: usize,
    /// Lifetime of the expiring records in `ttl`, in milliseconds.
    pub ttl_ms: u64,
    /// Percentage of `ttl` records written without expiry.
    pub ttl_permanent_percent: u64,
    /// Block cache bytes for both engines.
    pub cache_bytes: u64,
    /// Memtable bytes for both engines.
    pub memtable_bytes: u64,
    /// Background fsync interval of the non-sync workloads.
    pub sync_interval_ms: u64,
    /// Give fjall a periodic fsync timer matching ringkv's (see [`EngineConfig::fjall_timer_sync`]).
    pub fjall_timer_sync: bool,
}

impl BenchParams {
    fn engine_config(&self, workload: Workload) -> EngineConfig {
        EngineConfig {
            cache_bytes: self.cache_bytes,
            memtable_bytes: self.memtable_bytes,
            durability: match workload {
                Workload::FillSync { .. } => Durability::EveryWrite,
                _ => Durability::Periodic {
                    interval_ms: self.sync_interval_ms,
                },
            },
            gc_grace_ms: (workload == Workload::Ttl).then_some(0),
            fjall_timer_sync: self.fjall_timer_sync,
        }
    }

    fn record_bytes(&self) -> u64 {
        (self.key_size + self.value_size) as u64
    }

    /// Whether record `index` of the `ttl` workload is written without expiry.
    fn ttl_permanent(&self, index: u64) -> bool {
        mix64(self.seed ^ 0x5454_4C00 ^ index) % 100 < self.ttl_permanent_percent
    }
}

/// What the timed loop of a workload produced.
#[derive(Default)]
struct Timed {
    ops: u64,
    elapsed: Duration,
    latencies: Latencies,
    user_bytes: u64,
    live_bytes: Option<u64>,
    /// The latest expiry written (unix ms), 0 if none.
    last_expire_at_ms: u64,
    notes: Vec<String>,
}

/// Runs `workload` against `kind` in `engine_dir/<workload dir>` and measures it.
///
/// # Errors
/// The engine failed, the directory is not as the workload needs it, or a measurement
/// could not be read.
pub fn run(
    kind: EngineKind,
    workload: Workload,
    engine_dir: &Path,
    params: &BenchParams,
) -> Result<WorkloadResult, BoxError> {
    let dir = engine_dir.join(workload.dir_name());
    prepare_dir(&dir, workload)?;
    let keys = KeySpace::new(params.num.max(params.sync_ops), params.key_size)?;
    let engine = engine::open(kind, &dir, &params.engine_config(workload))?;

    let io_before = ProcIo::read()?;
    let mut timed = match workload {
        Workload::FillSeq => fill(&*engine, &keys, params, None)?,
        Workload::FillRandom => fill(
            &*engine,
            &keys,
            params,
            Some(Permutation::new(params.num, params.seed)),
        )?,
        Workload::Overwrite => overwrite(&*engine, &keys, params)?,
        Workload::ReadRandom => read(&*engine, &keys, params, true)?,
        Workload::ReadMissing => read(&*engine, &keys, params, false)?,
        Workload::SeekRandom => seek(&*engine, &keys, params)?,
        Workload::FillSync { threads } => fill_sync(&*engine, &keys, params, threads)?,
        Workload::Ttl => ttl_fill(&*engine, &keys, params)?,
    };
    if workload.writes() {
        // The memtable's contents reach a table inside the write-amplification window, so
        // an engine cannot look better by leaving more of the fill in memory.
        engine.flush()?;
    }
    let io = ProcIo::read()?.since(&io_before);
    let peak_rss = peak_rss_bytes()?;

    let mut result = WorkloadResult::new(kind, workload.to_string());
    result.ops = timed.ops;
    result.elapsed_secs = timed.elapsed.as_secs_f64();
    result.p50_us = timed.latencies.quantile_us(0.50);
    result.p99_us = timed.latencies.quantile_us(0.99);
    result.p999_us = timed.latencies.quantile_us(0.999);
    result.max_us = timed.latencies.max_us();
    result.user_bytes_written = timed.user_bytes;
    result.disk_bytes_written = io.write_bytes;
    result.cancelled_write_bytes = io.cancelled_write_bytes;
    result.peak_rss_bytes = peak_rss;

    if workload.writes() {
        if workload == Workload::Ttl && engine.supports_ttl() {
            wait_until_expired(timed.last_expire_at_ms);
        }
        result.dir_bytes_before_compaction = Some(dir_bytes_on_disk(&dir)?);
        let started = Instant::now();
        let compaction = engine.compact()?;
        result.compact_secs = Some(started.elapsed().as_secs_f64());
        result.full_compaction = Some(compaction == Compaction::Full);
        result.dir_bytes_after_compaction = Some(dir_bytes_on_disk(&dir)?);
        result.live_bytes = timed.live_bytes;
        if workload == Workload::Ttl {
            timed.notes.push(ttl_check(&*engine, &keys, params)?);
        }
    }
    result.ttl_supported = (workload == Workload::Ttl).then(|| engine.supports_ttl());
    result.notes = timed.notes;
    result.notes.extend(engine.engine_notes());
    engine.close()?;
    // The size that counts is the one after close: an engine may delete files made
    // obsolete by the compaction lazily (fjall does), and both engines have then finished
    // whatever they do at shutdown.
    result.dir_bytes = Some(dir_bytes_on_disk(&dir)?);
    Ok(result)
}

fn prepare_dir(dir: &Path, workload: Workload) -> Result<(), BoxError> {
    if workload.starts_empty() {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot clear {}: {e}", dir.display()).into()),
        }
        fs::create_dir_all(dir)?;
    } else if !dir.is_dir() {
        return Err(format!(
            "{workload} needs the data fillrandom leaves in {}, which does not exist",
            dir.display()
        )
        .into());
    }
    Ok(())
}

/// Times one operation into `latencies`.
fn timed_op<T>(
    latencies: &mut Latencies,
    op: impl FnOnce() -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    let started = Instant::now();
    let out = op()?;
    latencies.record(started.elapsed());
    Ok(out)
}

fn fill(
    engine: &dyn Engine,
    keys: &KeySpace,
    params: &BenchParams,
    order: Option<Permutation>,
) -> Result<Timed, BoxError> {
    let mut values = ValueSource::new(params.value_size, params.seed);
    let mut key = Vec::with_capacity(keys.key_size());
    let mut t = Timed::default();
    let started = Instant::now();
    for i in 0..params.num {
        let index = order.as_ref().map_or(i, |p| p.apply(i));
        keys.existing(index, &mut key);
        let value = values.next_value();
        timed_op(&mut t.latencies, || engine.put(&key, value))?;
    }
    t.elapsed = started.elapsed();
    t.ops = params.num;
    t.user_bytes = params.num * params.record_bytes();
    t.live_bytes = Some(t.user_bytes);
    Ok(t)
}

fn overwrite(
    engine: &dyn Engine,
    keys: &KeySpace,
    params: &BenchParams,
) -> Result<Timed, BoxError> {
    // A different value stream from the fill's, so overwrites really change the data.
    let mut values = ValueSource::new(params.value_size, params.seed.wrapping_add(1));
    let mut rng = SplitMix64::new(params.seed ^ 0x4F56_4552);
    let mut key = Vec::with_capacity(keys.key_size());
    let mut t = Timed::default();
    let started = Instant::now();
    for _ in 0..params.num {
        keys.existing(rng.below(params.num), &mut key);
        let value = values.next_value();
        timed_op(&mut t.latencies, || engine.put(&key, value))?;
    }
    t.elapsed = started.elapsed();
    t.ops = params.num;
    t.user_bytes = params.num * params.record_bytes();
    // Every key already existed, so the live data is still one value per key.
    t.live_bytes = Some(params.num * params.record_bytes());
    Ok(t)
}

fn read(
    engine: &dyn Engine,
    keys: &KeySpace,
    params: &BenchParams,
    existing: bool,
) -> Result<Timed, BoxError> {
    let mut rng = SplitMix64::new(params.seed ^ if existing { 0x5245_4144 } else { 0x4D49_5353 });
    let mut key = Vec::with_capacity(keys.key_size());
    let mut t = Timed::default();
    let mut wrong = 0u64;
    let started = Instant::now();
    for _ in 0..params.num {
        let index = rng.below(params.num);
        if existing {
            keys.existing(index, &mut key);
        } else {
            keys.missing(index, &mut key);
        }
        let found = timed_op(&mut t.latencies, || engine.get(&key))?;
        let as_expected = match found {
            Some(len) => existing && len == params.value_size,
            None => !existing,
        };
        wrong += u64::from(!as_expected);
    }
    t.elapsed = started.elapsed();
    t.ops = params.num;
    if wrong > 0 {
        t.notes.push(format!(
            "CHECK FAILED: {wrong} of {} gets did not return what was written",
            params.num
        ));
    }
    Ok(t)
}

fn seek(engine: &dyn Engine, keys: &KeySpace, params: &BenchParams) -> Result<Timed, BoxError> {
    let mut rng = SplitMix64::new(params.seed ^ 0x5345_454B);
    let mut key = Vec::with_capacity(keys.key_size());
    let mut t = Timed::default();
    let (mut entries, mut expected) = (0u64, 0u64);
    let started = Instant::now();
    for _ in 0..params.seeks {
        let index = rng.below(params.num);
        keys.existing(index, &mut key);
        entries += timed_op(&mut t.latencies, || engine.scan(&key, params.seek_nexts))? as u64;
        expected += (params.num - index).min(params.seek_nexts as u64);
    }
    t.elapsed = started.elapsed();
    t.ops = params.seeks;
    t.notes.push(format!(
        "{entries} entries read in {} seeks ({:.0} entries/s)",
        params.seeks,
        entries as f64 / t.elapsed.as_secs_f64().max(1e-9)
    ));
    if entries != expected {
        t.notes.push(format!(
            "CHECK FAILED: expected {expected} entries, read {entries}"
        ));
    }
    Ok(t)
}

fn fill_sync(
    engine: &dyn Engine,
    keys: &KeySpace,
    params: &BenchParams,
    threads: usize,
) -> Result<Timed, BoxError> {
    let ops = params.sync_ops;
    let order = Permutation::new(ops, params.seed ^ 0x5359_4E43);
    let started = Instant::now();
    let per_thread: Vec<Result<Latencies, BoxError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|thread| {
                let order = &order;
                scope.spawn(move || -> Result<Latencies, BoxError> {
                    let mut values =
                        ValueSource::new(params.value_size, params.seed.wrapping_add(thread));
                    let mut key = Vec::with_capacity(keys.key_size());
                    let mut latencies = Latencies::new();
                    let mut i = thread;
                    while i < ops {
                        keys.existing(order.apply(i), &mut key);
                        let value = values.next_value();
                        timed_op(&mut latencies, || engine.put(&key, value))?;
                        i += threads as u64;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a writer thread panicked".into()))
            })
            .collect()
    });
    let mut t = Timed {
        elapsed: started.elapsed(),
        ops,
        ..Timed::default()
    };
    for latencies in per_thread {
        t.latencies.merge(&latencies?);
    }
    t.user_bytes = ops * params.record_bytes();
    t.live_bytes = Some(t.user_bytes);
    Ok(t)
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ttl_fill(engine: &dyn Engine, keys: &KeySpace, params: &BenchParams) -> Result<Timed, BoxError> {
    let order = Permutation::new(params.num, params.seed ^ 0x5454_4C31);
    let mut values = ValueSource::new(params.value_size, params.seed);
    let mut key = Vec::with_capacity(keys.key_size());
    let mut t = Timed::default();
    let mut permanent = 0u64;
    let started = Instant::now();
    for i in 0..params.num {
        let index = order.apply(i);
        keys.existing(index, &mut key);
        let value = values.next_value();
        if params.ttl_permanent(index) {
            permanent += 1;
            timed_op(&mut t.latencies, || engine.put(&key, value))?;
        } else {
            let expire_at_ms = unix_now_ms() + params.ttl_ms;
            t.last_expire_at_ms = t.last_expire_at_ms.max(expire_at_ms);
            timed_op(&mut t.latencies, || {
                engine.put_expiring(&key, value, expire_at_ms)
            })?;
        }
    }
    t.elapsed = started.elapsed();
    t.ops = params.num;
    t.user_bytes = params.num * params.record_bytes();
    t.live_bytes = Some(if engine.supports_ttl() {
        permanent * params.record_bytes()
    } else {
        // Without expiry every record stays live.
        t.user_bytes
    });
    t.notes.push(format!(
        "{} of {} records written with a {} ms expiry",
        params.num - permanent,
        params.num,
        params.ttl_ms
    ));
    Ok(t)
}

/// Sleeps until the wall clock is past `expire_at_ms`, plus a margin for clock granularity,
/// so that every expiring record of the `ttl` fill reads as expired.
fn wait_until_expired(expire_at_ms: u64) {
    let deadline_ms = expire_at_ms + 100;
    let now_ms = unix_now_ms();
    if deadline_ms > now_ms {
        std::thread::sleep(Duration::from_millis(deadline_ms - now_ms));
    }
}

/// Reads a sample of `ttl` keys back after the compaction: permanent ones must be there,
/// expiring ones gone (or, for an engine without expiry, there).
fn ttl_check(
    engine: &dyn Engine,
    keys: &KeySpace,
    params: &BenchParams,
) -> Result<String, BoxError> {
    let sample = params.num.min(1000);
    let mut rng = SplitMix64::new(params.seed ^ 0x4348_4543);
    let mut key = Vec::with_capacity(keys.key_size());
    let (mut live, mut wrong) = (0u64, 0u64);
    for _ in 0..sample {
        let index = rng.below(params.num);
        keys.existing(index, &mut key);
        let found = engine.get(&key)?.is_some();
        live += u64::from(found);
        let expected = params.ttl_permanent(index) || !engine.supports_ttl();
        wrong += u64::from(found != expected);
    }
    Ok(if wrong == 0 {
        format!("checked {sample} sampled keys after compaction: {live} live, as expected")
    } else {
        format!(
            "CHECK FAILED: {wrong} of {sample} sampled keys after compaction were not as written"
        )
    })
}

/// The per-engine data directory under the benchmark's `--dir`.
pub fn engine_dir(base: &Path, kind: EngineKind) -> PathBuf {
    base.join(kind.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(num: u64) -> BenchParams {
        BenchParams {
            num,
            key_size: 16,
            value_size: 100,
            seed: 1,
            sync_ops: 40,
            seeks: 20,
            seek_nexts: 10,
            ttl_ms: 200,
            ttl_permanent_percent: 10,
            cache_bytes: 8 << 20,
            memtable_bytes: 1 << 20,
            sync_interval_ms: 1000,
            fjall_timer_sync: true,
        }
    }

    #[test]
    fn workload_names_round_trip_and_fillsync_expands() -> Result<(), BoxError> {
        let list = expand_list(Workload::DEFAULT_LIST, &[1, 32])?;
        assert_eq!(list.len(), 9);
        for w in &list {
            assert_eq!(&w.to_string().parse::<Workload>()?, w);
        }
        assert!(list.contains(&Workload::FillSync { threads: 32 }));
        assert!(expand_list("fillrandom,bogus", &[1]).is_err());
        assert!("fillsync-0t".parse::<Workload>().is_err());
        Ok(())
    }

    #[test]
    fn read_workloads_need_the_fill() {
        assert!(Workload::ReadRandom.needs_fill() && !Workload::ReadRandom.writes());
        assert!(Workload::Overwrite.needs_fill() && Workload::Overwrite.writes());
        assert!(Workload::Ttl.starts_empty() && !Workload::Overwrite.starts_empty());
        assert_eq!(
            Workload::SeekRandom.dir_name(),
            Workload::FillRandom.dir_name()
        );
    }

    #[test]
    fn a_read_without_a_fill_is_refused() -> Result<(), BoxError> {
        let base = tempfile::tempdir()?;
        let err = run(
            EngineKind::Fjall,
            Workload::ReadRandom,
            base.path(),
            &params(100),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("fillrandom"), "{err}");
        Ok(())
    }

    /// Every workload against fjall on tiny data: results are filled in and the built-in
    /// checks (gets return what was written, seeks read what they should) pass.
    #[test]
    fn every_workload_runs_on_fjall() -> Result<(), BoxError> {
        let base = tempfile::tempdir()?;
        let p = params(2000);
        for w in expand_list(Workload::DEFAULT_LIST, &[1, 4])? {
            let r = run(EngineKind::Fjall, w, base.path(), &p)?;
            assert!(r.ops > 0, "{w}");
            assert!(
                r.notes.iter().all(|n| !n.contains("CHECK FAILED")),
                "{w}: {:?}",
                r.notes
            );
            if w.writes() {
                assert!(r.write_amp().is_some(), "{w}");
                assert!(r.space_amp().is_some(), "{w}");
            }
        }
        Ok(())
    }

    /// The same against ringkv, including that expired records are gone after compaction.
    #[test]
    fn every_workload_runs_on_ringkv() -> Result<(), BoxError> {
        let base = tempfile::tempdir()?;
        let p = params(2000);
        for w in expand_list(Workload::DEFAULT_LIST, &[1, 4])? {
            let r = run(EngineKind::Ringkv, w, base.path(), &p)?;
            assert!(r.ops > 0, "{w}");
            assert!(
                r.notes.iter().all(|n| !n.contains("CHECK FAILED")),
                "{w}: {:?}",
                r.notes
            );
            if w == Workload::Ttl {
                assert_eq!(r.ttl_supported, Some(true));
                let live = r.live_bytes.ok_or("ttl measures live bytes")?;
                assert!(
                    live < p.num * 116 / 5,
                    "about 10% should stay live, got {live}"
                );
            }
        }
        Ok(())
    }
}
