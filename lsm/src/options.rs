//! Engine options: every tunable with its unit, default and allowed range.
//!
//! Owns [`Options`], [`FsyncMode`] and [`Compression`]. Validation returns
//! [`Error::Config`](crate::Error::Config) rather than panicking: users write these values.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// When the WAL is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncMode {
    /// Every write is fsynced before it is acknowledged; concurrent writers share one fsync.
    Always,
    /// A background thread fsyncs every `interval_ms`; a write is in the OS before it is
    /// acknowledged, so it survives a process crash but may be lost with the machine.
    Periodic {
        /// Milliseconds between fsyncs.
        interval_ms: u64,
    },
}

/// Block compression in SSTables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Blocks stored as they are.
    None,
    /// LZ4 (block format, `lz4_flex`); a block that does not shrink is stored raw.
    Lz4,
}

/// Source of "now" in unix milliseconds, for expiry and tombstone GC. Injected so tests own time.
pub type NowMs = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`NowMs`].
pub fn system_now_ms() -> NowMs {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    })
}

/// Engine options. Build with [`Options::default`] and the `with_*` methods, then
/// [`Db::open`](crate::Db::open) validates them.
#[derive(Clone)]
pub struct Options {
    /// WAL fsync policy. Default: `Periodic { interval_ms: 1000 }`.
    pub fsync: FsyncMode,
    /// Memtable size that triggers a switch to a new memtable and a flush. Default 64 MiB.
    pub memtable_bytes: usize,
    /// Immutable memtables allowed to wait for flush before writers stall. Default 2.
    pub max_immutable_memtables: usize,
    /// Target uncompressed size of an SSTable data block. Default 4 KiB.
    pub block_bytes: usize,
    /// Entries between restart points in a data block. Default 16.
    pub block_restart_interval: usize,
    /// Block compression. Default LZ4.
    pub compression: Compression,
    /// Bloom filter bits per key (10 gives about 1% false positives). 0 disables filters. Default 10.
    pub bloom_bits_per_key: usize,
    /// Block cache budget in bytes. Default 256 MiB.
    pub block_cache_bytes: usize,
    /// Row cache budget in bytes: per key, the winning record the tables hold (or that none
    /// does), so repeated point reads skip the tables. 0 disables it. Default 160 MiB
    /// (DESIGN.md, "Row cache").
    pub row_cache_bytes: usize,
    /// SSTables kept open at once (file handle, index and filter). Default 512.
    pub max_open_tables: usize,
    /// Target size of one SSTable written by compaction. Default 64 MiB.
    pub table_target_bytes: u64,
    /// Number of L0 tables that triggers an L0 -> L1 compaction. Default 4.
    pub l0_compaction_trigger: usize,
    /// Number of L0 tables at which writers stall until compaction catches up. Default 20.
    pub l0_stall_trigger: usize,
    /// Target total size of L1. Default 256 MiB.
    pub l1_target_bytes: u64,
    /// Each level's target is this many times the previous one's. Default 10.
    pub level_size_ratio: u64,
    /// Number of levels, L0 included. Default 7.
    pub num_levels: usize,
    /// How long a tombstone (or expired value) is kept before compaction may drop it, so that
    /// repair cannot resurrect what it deleted. Default 10 days, as Cassandra's `gc_grace_seconds`.
    pub gc_grace_ms: u64,
    /// Longest key accepted. Default 64 KiB.
    pub max_key_bytes: usize,
    /// Longest value accepted. Default 10 MiB.
    pub max_value_bytes: usize,
    /// Whether background threads flush and compact. Tests turn it off to drive them by hand.
    pub background_work: bool,
    /// The clock used for expiry and tombstone GC.
    pub now_ms: NowMs,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fsync: FsyncMode::Periodic { interval_ms: 1000 },
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 2,
            block_bytes: 4 << 10,
            block_restart_interval: 16,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
            block_cache_bytes: 256 << 20,
            row_cache_bytes: 160 << 20,
            max_open_tables: 512,
            table_target_bytes: 64 << 20,
            l0_compaction_trigger: 4,
            l0_stall_trigger: 20,
            l1_target_bytes: 256 << 20,
            level_size_ratio: 10,
            num_levels: 7,
            gc_grace_ms: 10 * 24 * 3600 * 1000,
            max_key_bytes: 64 << 10,
            max_value_bytes: 10 << 20,
            background_work: true,
            now_ms: system_now_ms(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("fsync", &self.fsync)
            .field("memtable_bytes", &self.memtable_bytes)
            .field("compression", &self.compression)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("row_cache_bytes", &self.row_cache_bytes)
            .field("table_target_bytes", &self.table_target_bytes)
            .field("l1_target_bytes", &self.l1_target_bytes)
            .field("level_size_ratio", &self.level_size_ratio)
            .field("num_levels", &self.num_levels)
            .field("gc_grace_ms", &self.gc_grace_ms)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Sets the fsync policy.
    pub fn with_fsync(mut self, fsync: FsyncMode) -> Self {
        self.fsync = fsync;
        self
    }

    /// Sets the memtable size in bytes.
    pub fn with_memtable_bytes(mut self, bytes: usize) -> Self {
        self.memtable_bytes = bytes;
        self
    }

    /// Sets the row cache budget in bytes (0 disables the row cache).
    pub fn with_row_cache_bytes(mut self, bytes: usize) -> Self {
        self.row_cache_bytes = bytes;
        self
    }

    /// Sets the clock used for expiry and GC.
    pub fn with_now_ms(mut self, now_ms: NowMs) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Sets the tombstone grace period in milliseconds.
    pub fn with_gc_grace_ms(mut self, ms: u64) -> Self {
        self.gc_grace_ms = ms;
        self
    }

    /// Turns background flush and compaction on or off.
    pub fn with_background_work(mut self, on: bool) -> Self {
        self.background_work = on;
        self
    }

    /// Target size of a level in bytes (`level >= 1`).
    pub fn level_target_bytes(&self, level: usize) -> u64 {
        let mut target = self.l1_target_bytes;
        for _ in 1..level {
            target = target.saturating_mul(self.level_size_ratio);
        }
        target
    }

    /// Checks every option's range.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first option out of range.
    pub fn validate(&self) -> Result<()> {
        fn bad(option: &'static str, reason: &str) -> Result<()> {
            Err(Error::Config {
                option,
                reason: reason.to_string(),
            })
        }
        if let FsyncMode::Periodic { interval_ms: 0 } = self.fsync {
            return bad("fsync_interval_ms", "must be at least 1");
        }
        if self.memtable_bytes < 64 << 10 {
            return bad("memtable_bytes", "must be at least 64 KiB");
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables", "must be at least 1");
        }
        if !(256..=1 << 20).contains(&self.block_bytes) {
            return bad("block_bytes", "must be between 256 B and 1 MiB");
        }
        if !(1..=1024).contains(&self.block_restart_interval) {
            return bad("block_restart_interval", "must be between 1 and 1024");
        }
        if self.bloom_bits_per_key > 64 {
            return bad("bloom_bits_per_key", "must be at most 64");
        }
        if self.max_open_tables < 8 {
            return bad("max_open_tables", "must be at least 8");
        }
        if self.table_target_bytes < 64 << 10 {
            return bad("table_target_bytes", "must be at least 64 KiB");
        }
        if self.l0_compaction_trigger < 1 || self.l0_stall_trigger <= self.l0_compaction_trigger {
            return bad(
                "l0_stall_trigger",
                "must exceed l0_compaction_trigger, which must be at least 1",
            );
        }
        if self.level_size_ratio < 2 {
            return bad("level_size_ratio", "must be at least 2");
        }
        if !(2..=16).contains(&self.num_levels) {
            return bad("num_levels", "must be between 2 and 16");
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > u32::MAX as usize {
            return bad("max_key_bytes", "must be between 1 and 4 GiB");
        }
        if self.max_value_bytes > u32::MAX as usize / 2 {
            return bad("max_value_bytes", "must be below 2 GiB");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Options::default().validate().is_ok());
    }

    #[test]
    fn out_of_range_options_are_named() {
        let opts = Options {
            level_size_ratio: 1,
            ..Options::default()
        };
        match opts.validate() {
            Err(Error::Config { option, .. }) => assert_eq!(option, "level_size_ratio"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn level_targets_grow_by_the_ratio() {
        let opts = Options::default();
        assert_eq!(opts.level_target_bytes(2), opts.l1_target_bytes * 10);
    }
}
