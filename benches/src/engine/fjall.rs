//! The fjall 3 adapter: one `Database` with one keyspace, sized like the ringkv run.
//!
//! Owns [`FjallEngine`]. Maps the shared settings onto fjall: `cache_size` = the block cache
//! budget, `max_memtable_size` = the memtable size, the rest left at fjall's defaults (4 KiB
//! blocks, bloom filters, LZ4 on the deeper levels, leveled compaction). Durability: fjall's
//! default journal (flushed to the OS on every write) plus a timer thread calling
//! `persist(SyncData)` at the periodic interval, or `persist(SyncData)` after every insert.
//! `SyncData` is `fdatasync(2)`, the call ringkv's WAL makes, so both pay for the same sync.
//! Must never use fjall features ringkv lacks in the compared paths (no key-value separation,
//! no transactions), so the numbers compare like with like.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Compaction, Durability, Engine, EngineConfig, EngineKind};
use crate::BoxError;

/// Name of the single keyspace the benchmark writes.
const KEYSPACE: &str = "bench";

/// fjall opened for a benchmark.
pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
    sync_every_write: bool,
    /// The periodic-sync timer thread and its stop flag, when one runs.
    timer: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl FjallEngine {
    /// Opens (creating if needed) fjall in `dir`.
    ///
    /// # Errors
    /// fjall could not open or recover the database.
    pub fn open(dir: &Path, config: &EngineConfig) -> Result<Self, BoxError> {
        let db = Database::builder(dir)
            .cache_size(config.cache_bytes)
            .open()?;
        let memtable_bytes = config.memtable_bytes;
        let keyspace = db.keyspace(KEYSPACE, || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes)
        })?;
        let (sync_every_write, timer) = match config.durability {
            Durability::EveryWrite => (true, None),
            Durability::Periodic { interval_ms } if config.fjall_timer_sync => {
                (false, Some(spawn_sync_timer(db.clone(), interval_ms)?))
            }
            Durability::Periodic { .. } => (false, None),
        };
        Ok(Self {
            db,
            keyspace,
            sync_every_write,
            timer,
        })
    }

    fn stop_timer(&mut self) {
        if let Some((stop, handle)) = self.timer.take() {
            stop.store(true, Ordering::Relaxed);
            handle.thread().unpark();
            // The timer only persists; a panic there has nothing left for us to clean up.
            let _ = handle.join();
        }
    }
}

/// Starts the thread that gives fjall ringkv's periodic fsync (fjall 3 has none of its own). It parks between syncs so
/// closing wakes it at once rather than waiting out the interval.
fn spawn_sync_timer(
    db: Database,
    interval_ms: u64,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let handle = std::thread::Builder::new()
        .name("fjall-periodic-sync".into())
        .spawn(move || {
            let interval = Duration::from_millis(interval_ms.max(1));
            while !stop_flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(interval);
                if stop_flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = db.persist(PersistMode::SyncData) {
                    // A failed fsync poisons fjall; the next write reports it to the workload.
                    eprintln!("fjall periodic sync failed: {e}");
                    break;
                }
            }
        })?;
    Ok((stop, handle))
}

impl Engine for FjallEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Fjall
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError> {
        self.keyspace.insert(key, value)?;
        if self.sync_every_write {
            // SyncData is fdatasync(2), the call ringkv's WAL makes in FsyncMode::Always.
            // fjall has no group commit: concurrent writers each sync in turn.
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn put_expiring(&self, key: &[u8], value: &[u8], _expire_at_ms: u64) -> Result<(), BoxError> {
        // fjall has no per-record expiry: the record is written as a plain value.
        self.put(key, value)
    }

    fn supports_ttl(&self) -> bool {
        false
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError> {
        Ok(self.keyspace.get(key)?.map(|v| v.len()))
    }

    fn scan(&self, start: &[u8], limit: usize) -> Result<usize, BoxError> {
        let range = (Bound::Included(start), Bound::Unbounded);
        let mut read = 0;
        for guard in self.keyspace.range::<&[u8], _>(range).take(limit) {
            let (key, value) = guard.into_inner()?;
            std::hint::black_box((&key, &value));
            read += 1;
        }
        Ok(read)
    }

    fn flush(&self) -> Result<(), BoxError> {
        // `rotate_memtable_and_wait` is public but #[doc(hidden)] in fjall 3.1; it is the
        // only way to force a flush and wait for it.
        self.keyspace.rotate_memtable_and_wait()?;
        Ok(())
    }

    fn compact(&self) -> Result<Compaction, BoxError> {
        // `Keyspace::major_compact` (public, #[doc(hidden)] in fjall 3.1) merges every
        // table into the last level, dropping versions no snapshot can see.
        self.keyspace.major_compact()?;
        Ok(Compaction::Full)
    }

    fn engine_notes(&self) -> Vec<String> {
        vec![format!(
            "fjall: {} tables, {} journals, disk_space {} B",
            self.keyspace.table_count(),
            self.db.journal_count(),
            self.keyspace.disk_space()
        )]
    }

    fn close(mut self: Box<Self>) -> Result<(), BoxError> {
        self.stop_timer();
        self.db.persist(PersistMode::SyncAll)?;
        // Dropping the last handles stops fjall's workers; the explicit persist above is
        // what makes a failure visible (drop only logs it).
        Ok(())
    }
}

impl Drop for FjallEngine {
    fn drop(&mut self) {
        self.stop_timer();
    }
}
