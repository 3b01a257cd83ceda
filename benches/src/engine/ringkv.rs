//! The ringkv adapter: `ringkv_lsm::Db` through its public API only.
//!
//! Owns [`RingkvEngine`]. Maps the shared settings onto [`Options`]: block cache and memtable
//! sizes, `FsyncMode::Periodic` or `FsyncMode::Always`, everything else at the engine's
//! defaults. Versions come from a per-process counter seeded with the wall clock, so a later
//! process's overwrite always carries a higher version than the fill it overwrites, as
//! HLC timestamps would. Must never reach into engine internals: the benchmark measures what
//! a user of the crate gets.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ringkv_lsm::{Db, FsyncMode, Options, Record, Version};

use super::{Compaction, Durability, Engine, EngineConfig, EngineKind};
use crate::BoxError;

/// Node id written into every version (one writer, so it never breaks a tie).
const NODE_ID: u32 = 1;

/// ringkv opened for a benchmark.
pub struct RingkvEngine {
    db: Db,
    /// Next HLC value: milliseconds at open in the high 48 bits, then a counter.
    next_hlc: AtomicU64,
}

impl RingkvEngine {
    /// Opens (creating if needed) ringkv in `dir`.
    ///
    /// # Errors
    /// The engine refused the settings or could not open or recover the directory.
    pub fn open(dir: &Path, config: &EngineConfig) -> Result<Self, BoxError> {
        let fsync = match config.durability {
            Durability::Periodic { interval_ms } => FsyncMode::Periodic { interval_ms },
            Durability::EveryWrite => FsyncMode::Always,
        };
        let mut opts = Options::default()
            .with_fsync(fsync)
            .with_memtable_bytes(usize::try_from(config.memtable_bytes)?);
        opts.block_cache_bytes = usize::try_from(config.cache_bytes)?;
        if let Some(grace) = config.gc_grace_ms {
            opts = opts.with_gc_grace_ms(grace);
        }
        let db = Db::open(dir, opts)?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(Self {
            db,
            next_hlc: AtomicU64::new(now_ms << 16),
        })
    }

    fn next_version(&self) -> Version {
        Version::new(self.next_hlc.fetch_add(1, Ordering::Relaxed), NODE_ID)
    }
}

impl Engine for RingkvEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Ringkv
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError> {
        let record = Record::value(self.next_version(), Bytes::copy_from_slice(value));
        self.db.put(key, record)?;
        Ok(())
    }

    fn put_expiring(&self, key: &[u8], value: &[u8], expire_at_ms: u64) -> Result<(), BoxError> {
        let record = Record::expiring(
            self.next_version(),
            Bytes::copy_from_slice(value),
            expire_at_ms,
        );
        self.db.put(key, record)?;
        Ok(())
    }

    fn supports_ttl(&self) -> bool {
        true
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError> {
        Ok(self
            .db
            .get(key)?
            .and_then(|record| record.value.map(|v| v.len())))
    }

    fn scan(&self, start: &[u8], limit: usize) -> Result<usize, BoxError> {
        let mut read = 0;
        for item in self
            .db
            .range(Bound::Included(start), Bound::Unbounded)?
            .take(limit)
        {
            let (key, record) = item?;
            std::hint::black_box((&key, &record));
            read += 1;
        }
        Ok(read)
    }

    fn flush(&self) -> Result<(), BoxError> {
        self.db.flush()?;
        Ok(())
    }

    fn compact(&self) -> Result<Compaction, BoxError> {
        self.db.compact()?;
        Ok(Compaction::Full)
    }

    fn engine_notes(&self) -> Vec<String> {
        let stats = self.db.stats();
        let tables: usize = stats.levels.iter().map(|l| l.tables).sum();
        vec![
            format!(
                "ringkv: {tables} tables, {} B in tables, own write amp {:.2} (this process), \
                 {} compactions, {} expired tables dropped, {} write stalls ({} ms), \
                 {} WAL fsyncs for {} writes",
                stats.table_bytes(),
                stats.write_amplification(),
                stats.compactions,
                stats.expired_tables_dropped,
                stats.write_stalls,
                stats.write_stall_micros / 1000,
                stats.wal_syncs,
                stats.writes
            ),
            format!(
                "ringkv: {:.2} tables probed per get, block cache hit rate {:.3}, bloom negatives {}, \
                 false positives {}",
                stats.read_amplification(),
                stats.block_cache_hit_rate(),
                stats.bloom_negatives,
                stats.bloom_false_positives
            ),
        ]
    }

    fn close(self: Box<Self>) -> Result<(), BoxError> {
        self.db.close()?;
        Ok(())
    }
}
