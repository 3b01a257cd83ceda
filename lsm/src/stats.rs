//! Engine statistics: live counters updated by every component, and the [`Stats`] snapshot
//! users read.
//!
//! Owns [`Counters`] (relaxed atomics, cheap enough for every read and write) and [`Stats`].
//! Must never take a lock on the read or write path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the engine's components. All relaxed: they are figures, not
/// synchronisation.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Key + value bytes of user writes.
    pub user_bytes_written: AtomicU64,
    /// Bytes appended to the WAL.
    pub wal_bytes_written: AtomicU64,
    /// WAL fsyncs performed.
    pub wal_syncs: AtomicU64,
    /// `write(2)` calls that handed WAL frames to the operating system.
    pub wal_writes: AtomicU64,
    /// Writes (records) accepted.
    pub writes: AtomicU64,
    /// Bytes written by memtable flushes.
    pub flush_bytes_written: AtomicU64,
    /// Memtable flushes completed.
    pub flushes: AtomicU64,
    /// Bytes read by compactions.
    pub compaction_bytes_in: AtomicU64,
    /// Bytes written by compactions.
    pub compaction_bytes_out: AtomicU64,
    /// Compactions completed (merges and moves).
    pub compactions: AtomicU64,
    /// Tables dropped whole because every record in them had expired.
    pub expired_tables_dropped: AtomicU64,
    /// Point reads served.
    pub gets: AtomicU64,
    /// SSTables consulted by point reads (after key-range and version pruning).
    pub get_tables_probed: AtomicU64,
    /// Bloom filter checks that said "definitely absent".
    pub bloom_negatives: AtomicU64,
    /// Bloom filter checks that said "maybe present".
    pub bloom_positives: AtomicU64,
    /// Bloom "maybe present" answers for keys that were not in the table.
    pub bloom_false_positives: AtomicU64,
    /// Block cache hits.
    pub block_cache_hits: AtomicU64,
    /// Block cache misses (a block read from disk).
    pub block_cache_misses: AtomicU64,
    /// Row cache hits (point reads answered without the tables).
    pub row_cache_hits: AtomicU64,
    /// Row cache misses (point reads that asked the tables).
    pub row_cache_misses: AtomicU64,
    /// Times a writer had to wait for a flush or compaction.
    pub write_stalls: AtomicU64,
    /// Total microseconds writers spent stalled.
    pub write_stall_micros: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds 1 to a counter.
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Size of one level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Tables in the level.
    pub tables: usize,
    /// Bytes of those tables on disk.
    pub bytes: u64,
    /// Records in those tables (all versions, tombstones included).
    pub records: u64,
}

/// A point-in-time copy of the engine's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// Bytes in the active and immutable memtables.
    pub memtable_bytes: u64,
    /// Immutable memtables waiting for flush.
    pub immutable_memtables: usize,
    /// Bytes of WAL segments on disk.
    pub wal_bytes_on_disk: u64,
    /// Key + value bytes users wrote.
    pub user_bytes_written: u64,
    /// Bytes appended to the WAL.
    pub wal_bytes_written: u64,
    /// WAL fsyncs.
    pub wal_syncs: u64,
    /// `write(2)` calls that handed WAL frames to the operating system (buffered writes
    /// share them).
    pub wal_writes: u64,
    /// Records written.
    pub writes: u64,
    /// Bytes written by flushes.
    pub flush_bytes_written: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// Bytes read by compactions.
    pub compaction_bytes_in: u64,
    /// Bytes written by compactions.
    pub compaction_bytes_out: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Tables dropped whole because everything in them expired.
    pub expired_tables_dropped: u64,
    /// Point reads.
    pub gets: u64,
    /// SSTables consulted by point reads.
    pub get_tables_probed: u64,
    /// Bloom checks answering "absent".
    pub bloom_negatives: u64,
    /// Bloom checks answering "maybe".
    pub bloom_positives: u64,
    /// Bloom "maybe" answers that were wrong.
    pub bloom_false_positives: u64,
    /// Block cache hits.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Bytes of decoded blocks held by the block cache.
    pub block_cache_bytes: u64,
    /// Row cache hits.
    pub row_cache_hits: u64,
    /// Row cache misses.
    pub row_cache_misses: u64,
    /// Bytes held by the row cache (keys, values and per-entry overhead).
    pub row_cache_bytes: u64,
    /// Writer stalls.
    pub write_stalls: u64,
    /// Microseconds writers spent stalled.
    pub write_stall_micros: u64,
}

impl Stats {
    pub(crate) fn from_counters(c: &Counters) -> Self {
        Self {
            user_bytes_written: load(&c.user_bytes_written),
            wal_bytes_written: load(&c.wal_bytes_written),
            wal_syncs: load(&c.wal_syncs),
            wal_writes: load(&c.wal_writes),
            writes: load(&c.writes),
            flush_bytes_written: load(&c.flush_bytes_written),
            flushes: load(&c.flushes),
            compaction_bytes_in: load(&c.compaction_bytes_in),
            compaction_bytes_out: load(&c.compaction_bytes_out),
            compactions: load(&c.compactions),
            expired_tables_dropped: load(&c.expired_tables_dropped),
            gets: load(&c.gets),
            get_tables_probed: load(&c.get_tables_probed),
            bloom_negatives: load(&c.bloom_negatives),
            bloom_positives: load(&c.bloom_positives),
            bloom_false_positives: load(&c.bloom_false_positives),
            block_cache_hits: load(&c.block_cache_hits),
            block_cache_misses: load(&c.block_cache_misses),
            row_cache_hits: load(&c.row_cache_hits),
            row_cache_misses: load(&c.row_cache_misses),
            write_stalls: load(&c.write_stalls),
            write_stall_micros: load(&c.write_stall_micros),
            ..Self::default()
        }
    }

    /// Bytes of SSTables on disk, all levels.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }

    /// Bytes the engine wrote to disk (WAL, flushes, compactions) per byte users wrote.
    pub fn write_amplification(&self) -> f64 {
        let disk = self.wal_bytes_written + self.flush_bytes_written + self.compaction_bytes_out;
        ratio(disk, self.user_bytes_written)
    }

    /// Bytes on disk per byte of the bottom level, the best estimate of live data the engine
    /// has without reading it (after a full compaction the bottom level is the live data).
    pub fn space_amplification(&self) -> f64 {
        let bottom = self
            .levels
            .iter()
            .rev()
            .find(|l| l.tables > 0)
            .map_or(0, |l| l.bytes);
        ratio(self.table_bytes() + self.wal_bytes_on_disk, bottom)
    }

    /// SSTables consulted per point read.
    pub fn read_amplification(&self) -> f64 {
        ratio(self.get_tables_probed, self.gets)
    }

    /// Block cache hit rate in `[0, 1]`.
    pub fn block_cache_hit_rate(&self) -> f64 {
        ratio(
            self.block_cache_hits,
            self.block_cache_hits + self.block_cache_misses,
        )
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}
