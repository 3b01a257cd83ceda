//! The engine: opening and recovering a directory, and the public [`Db`] handle.
//!
//! Owns [`Db`], [`WriteBatch`] and [`Snapshot`] and the shared `DbInner` state. The write path
//! is in `db/write.rs`, reads in `db/read.rs`, flushes in `db/flush.rs`, the compaction executor
//! in `db/compact.rs` and the background threads in `db/worker.rs`. Decisions about what to
//! compact are not made here but in [`crate::compaction`]; this module only carries them out.

mod compact;
mod flush;
mod max_hlc;
mod read;
#[cfg(test)]
mod row_cache_tests;
mod state;
mod worker;
mod write;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use tracing::{info, warn};

use crate::cache::{BlockCache, TableCache};
use crate::dir::{self, DirLock};
use crate::error::{Error, Result};
use crate::iter::user::{DbIter, ReadMode};
use crate::manifest::Manifest;
use crate::memtable::Memtable;
use crate::options::Options;
use crate::record::{Entry, InternalKey, Record};
use crate::row_cache::RowCache;
use crate::stats::{Counters, LevelStats, Stats};
use crate::wal::{self, Wal};

use self::state::{SuperVersion, TableHandle, TableSet};
use self::worker::Workers;

/// An open engine. Cheap to clone; every clone is the same engine, usable from many threads.
///
/// ```
/// use ringkv_lsm::{Db, Options, Record, Version};
/// # fn main() -> ringkv_lsm::Result<()> {
/// let dir = tempfile::tempdir().map_err(|e| ringkv_lsm::Error::io("create", "tempdir", e))?;
/// let db = Db::open(dir.path(), Options::default())?;
/// db.put(b"greeting", Record::value(Version::new(2 << 16, 1), "hello"))?;
/// // A late, older write of the same key loses to the newer version.
/// db.put(b"greeting", Record::value(Version::new(1 << 16, 1), "stale"))?;
/// let got = db.get(b"greeting")?.and_then(|r| r.value);
/// assert_eq!(got.as_deref(), Some(&b"hello"[..]));
/// db.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
    /// Stops and joins the background threads when the last handle goes.
    workers: Arc<Workers>,
}

/// State shared by the handles, the background threads, snapshots and iterators.
pub(crate) struct DbInner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) counters: Arc<Counters>,
    pub(crate) table_cache: Arc<TableCache>,
    pub(crate) block_cache: Arc<BlockCache>,
    /// The tables' answers of recent point reads; every table-set change keeps it right.
    pub(crate) row_cache: RowCache,
    pub(crate) wal: Wal,
    /// Writers waiting for a group-commit leader.
    pub(crate) write_queue: write::WriteQueue,
    /// Held by the group-commit leader while it assigns sequence numbers, appends to the WAL and
    /// inserts into the memtable, and by memtable switches and snapshots, which must not see
    /// half a group.
    pub(crate) write_lock: Mutex<()>,
    /// The current view; replaced, never mutated.
    pub(crate) current: RwLock<Arc<SuperVersion>>,
    /// The manifest; held while a flush or compaction commits, so their edits never interleave.
    pub(crate) manifest: Mutex<Manifest>,
    /// The highest sequence number whose write is in the memtable; reads see up to here.
    pub(crate) visible_seqno: AtomicU64,
    /// Next file number for tables and WAL segments.
    pub(crate) next_file_id: AtomicU64,
    /// Serialises flushes (the background thread and `Db::flush` callers).
    pub(crate) flush_lock: Mutex<()>,
    /// Serialises compactions.
    pub(crate) compaction_lock: Mutex<()>,
    /// Signalled when memtables are flushed or tables compacted (wakes stalled writers and
    /// `flush` waiters) and when there is work (wakes the workers).
    pub(crate) signal: Condvar,
    pub(crate) signal_lock: Mutex<()>,
    /// Set by a background failure; writes are refused from then on.
    pub(crate) poison: Mutex<Option<String>>,
    pub(crate) closed: AtomicBool,
    /// Held for the engine's lifetime so no second engine opens the directory.
    _lock: DirLock,
}

impl Db {
    /// Opens the engine in `dir`, creating it if needed, and recovers from the WAL.
    ///
    /// # Errors
    /// [`Error::Config`] for options out of range, [`Error::Locked`] if another engine holds
    /// the directory, [`Error::MissingFile`] or a corruption error if the directory is damaged,
    /// and I/O errors.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        dir::create_layout(&dir)?;
        let (mut manifest, state) = Manifest::open(&dir, opts.num_levels)?;
        let counters = Arc::new(Counters::default());
        let block_cache = Arc::new(BlockCache::new(
            opts.block_cache_bytes,
            Arc::clone(&counters),
        ));
        let table_cache = Arc::new(TableCache::new(
            &dir,
            opts.max_open_tables,
            Arc::clone(&block_cache),
            Arc::clone(&counters),
        ));

        let mut tables = TableSet::default();
        let mut last_seqno = state.last_seqno;
        let mut next_file_id = state.next_file_id.max(1);
        for (level, metas) in state.levels.iter().enumerate() {
            for meta in metas.iter().rev() {
                let path = dir::table_path(&dir, meta.id);
                if !path.exists() {
                    return Err(Error::MissingFile { path });
                }
                last_seqno = last_seqno.max(meta.max_seqno);
                next_file_id = next_file_id.max(meta.id + 1);
                tables.add(
                    level,
                    TableHandle::new(meta.clone(), path, Arc::clone(&table_cache)),
                );
            }
        }
        while tables.levels.len() < opts.num_levels {
            tables.levels.push(Vec::new());
        }
        remove_orphan_tables(&dir, &tables)?;

        // Replay the WAL into one memtable; it is flushed before new writes are taken, so the
        // segments it came from can go and the next crash replays only new writes.
        let recovered = Arc::new(Memtable::new(state.log_number));
        let report = wal::replay(&dir, state.log_number, |segment, batch| {
            next_file_id = next_file_id.max(segment + 1);
            for (i, (key, record)) in batch.records.into_iter().enumerate() {
                let seqno = batch.first_seqno + i as u64;
                recovered.insert(
                    InternalKey::new(key, record.version),
                    Entry {
                        seqno,
                        expire_at_ms: record.expire_at_ms,
                        value: record.value,
                    },
                );
            }
            Ok(())
        })?;
        last_seqno = last_seqno.max(report.max_seqno);
        for segment in &report.segments {
            next_file_id = next_file_id.max(segment + 1);
        }
        if report.torn_tail_bytes > 0 {
            warn!(
                bytes = report.torn_tail_bytes,
                "WAL ended in a torn write; the incomplete tail was discarded"
            );
        }

        let segment = next_file_id;
        next_file_id += 1;
        let wal = Wal::create(&dir, segment, opts.fsync, Arc::clone(&counters))?;
        let active = Arc::new(Memtable::new(segment));
        let immutables = if recovered.is_empty() {
            Vec::new()
        } else {
            vec![recovered]
        };
        manifest.apply(&[
            crate::manifest::VersionEdit::NextFileId(next_file_id),
            crate::manifest::VersionEdit::LastSeqno(last_seqno),
        ])?;

        info!(
            dir = %dir.display(),
            wal_batches = report.batches,
            wal_records = report.records,
            last_seqno,
            "engine opened"
        );

        let row_cache = RowCache::new(opts.row_cache_bytes, Arc::clone(&counters));
        let inner = Arc::new(DbInner {
            dir,
            row_cache,
            counters,
            table_cache,
            block_cache,
            wal,
            write_queue: write::WriteQueue::default(),
            write_lock: Mutex::new(()),
            current: RwLock::new(Arc::new(SuperVersion {
                active,
                immutables,
                tables: Arc::new(tables),
                tables_epoch: 0,
            })),
            manifest: Mutex::new(manifest),
            visible_seqno: AtomicU64::new(last_seqno),
            next_file_id: AtomicU64::new(next_file_id),
            flush_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            signal: Condvar::new(),
            signal_lock: Mutex::new(()),
            poison: Mutex::new(None),
            closed: AtomicBool::new(false),
            opts,
            _lock: lock,
        });
        // Recovered writes go to a table before anything else, so their WAL segments can go.
        while inner.flush_oldest()? {}
        let workers = Arc::new(Workers::start(&inner));
        Ok(Db { inner, workers })
    }

    /// Writes one record (a value or a tombstone) under `key`.
    ///
    /// When it returns, the write is in the WAL (and fsynced, with [`FsyncMode::Always`](crate::FsyncMode::Always)).
    /// Whatever order writes arrive in, the highest [`Version`](crate::Version) of a key wins.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`] / [`Error::ValueTooLarge`] before anything is written; I/O errors;
    /// [`Error::Poisoned`] after a background failure.
    pub fn put(&self, key: &[u8], record: Record) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(Bytes::copy_from_slice(key), record);
        self.inner.write(batch, false)
    }

    /// Writes a batch atomically: after a crash, all of it or none of it is there.
    ///
    /// # Errors
    /// As [`Db::put`]; a single oversized record rejects the whole batch.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(batch, false)
    }

    /// Writes a batch atomically, as [`Db::write`], except that with
    /// [`crate::FsyncMode::Periodic`] its WAL frame may stay in the engine's buffer when this
    /// returns: it is handed to the operating system by the next [`Db::flush_wal`], by any
    /// [`Db::write`], by the periodic fsync, or once the buffer holds 1 MiB. Until then a
    /// process crash loses it, and other readers already see it (as redis's clients see a
    /// write before its AOF buffer is written). Callers that acknowledge a write must call
    /// [`Db::flush_wal`] first; many writes then share one `write(2)`. If that flush fails,
    /// the WAL is poisoned and the write is not acknowledged, but readers may already have
    /// seen it and a memtable flush may still store it: like a timed-out write, its outcome is
    /// unknown, not undone. With
    /// [`crate::FsyncMode::Always`] this is [`Db::write`].
    ///
    /// # Errors
    /// As [`Db::write`].
    pub fn write_buffered(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(batch, true)
    }

    /// Hands every WAL frame buffered by [`Db::write_buffered`] to the operating system, in
    /// one `write(2)`: from then on they survive the process being killed.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the write fails or an earlier write or fsync failed.
    pub fn flush_wal(&self) -> Result<()> {
        self.inner.wal.write_pending()
    }

    /// The live value of `key`: `None` if absent, deleted or expired.
    ///
    /// # Errors
    /// I/O and corruption errors from the tables read.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>> {
        let now = (self.inner.opts.now_ms)();
        Ok(self.get_record(key)?.filter(|r| r.is_live(now)))
    }

    /// The winning record of `key` even when it is a tombstone or has expired (what replicas
    /// compare to resolve versions). Compaction may have removed old tombstones and expired
    /// values, so those can also read as `None`.
    ///
    /// # Errors
    /// I/O and corruption errors from the tables read.
    pub fn get_record(&self, key: &[u8]) -> Result<Option<Record>> {
        self.inner.check_open()?;
        let before = self.inner.visible_seqno.load(Ordering::Acquire);
        let view = self.inner.view();
        let seqno = self.inner.visible_seqno.load(Ordering::Acquire);
        self.inner.get_at(&view, key, seqno, Some(before))
    }

    /// The winning record of each of `keys`, in order: [`Db::get_record`] for every key, but
    /// all of them read from one view at one sequence number, so a multi-key read takes the
    /// view lock once and sees one consistent state (a write racing it is seen for every key
    /// or for none).
    ///
    /// # Errors
    /// [`Error::Closed`]; I/O and corruption errors from the tables read (the first one stops
    /// the read).
    pub fn get_records(&self, keys: &[&[u8]]) -> Result<Vec<Option<Record>>> {
        self.inner.check_open()?;
        let before = self.inner.visible_seqno.load(Ordering::Acquire);
        let view = self.inner.view();
        let seqno = self.inner.visible_seqno.load(Ordering::Acquire);
        keys.iter()
            .map(|key| self.inner.get_at(&view, key, seqno, Some(before)))
            .collect()
    }

    /// Live records with keys in `(start, end)`, in key order.
    ///
    /// # Errors
    /// I/O and corruption errors opening the tables; later ones come from the iterator.
    pub fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<DbIter> {
        self.range_with(start, end, ReadMode::Live)
    }

    /// Records with keys in `(start, end)`, in key order, as `mode` asks.
    ///
    /// # Errors
    /// As [`Db::range`].
    pub fn range_with(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        mode: ReadMode,
    ) -> Result<DbIter> {
        self.inner.check_open()?;
        let view = self.inner.view();
        let seqno = self.inner.visible_seqno.load(Ordering::Acquire);
        self.inner.range_at(view, seqno, start, end, mode)
    }

    /// A consistent view: later writes, flushes and compactions do not change what it reads.
    /// It keeps the tables it references on disk until it is dropped.
    pub fn snapshot(&self) -> Snapshot {
        // Taking the view and the sequence number under the write lock pairs them: every
        // write up to `seqno` is in one of the view's memtables.
        let _writers = self.inner.write_lock.lock();
        let view = self.inner.view();
        let seqno = self.inner.visible_seqno.load(Ordering::Acquire);
        Snapshot {
            inner: Arc::clone(&self.inner),
            view,
            seqno,
        }
    }

    /// Flushes the memtable to an L0 table and waits until every frozen memtable is on disk.
    ///
    /// # Errors
    /// I/O errors writing the table or the manifest.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.switch_memtable_if_not_empty()?;
        while self.inner.flush_oldest()? {}
        Ok(())
    }

    /// A full compaction: flushes, then merges every table into the bottom level, keeping one
    /// version per key and dropping expired values and tombstones past `gc_grace`.
    ///
    /// # Errors
    /// I/O and corruption errors.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        self.inner.compact_full()
    }

    /// The engine's figures now.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::from_counters(&self.inner.counters);
        let view = self.inner.view();
        stats.levels = view
            .tables
            .levels
            .iter()
            .map(|l| LevelStats {
                tables: l.len(),
                bytes: l.iter().map(|t| t.meta.file_bytes).sum(),
                records: l.iter().map(|t| t.meta.records).sum(),
            })
            .collect();
        stats.memtable_bytes = view.memtables().map(|m| m.approximate_bytes() as u64).sum();
        stats.immutable_memtables = view.immutables.len();
        stats.wal_bytes_on_disk = self.inner.wal.bytes_on_disk();
        stats.block_cache_bytes = self.inner.block_cache.used_bytes();
        stats.row_cache_bytes = self.inner.row_cache.used_bytes();
        stats
    }

    /// Syncs the WAL, stops the background threads and releases the directory once the last
    /// handle, snapshot and iterator are gone. Other clones see [`Error::Closed`] afterwards.
    ///
    /// # Errors
    /// The WAL's final fsync failing.
    pub fn close(self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        self.workers.stop();
        self.inner.wal.sync_all()
    }
}

impl DbInner {
    /// The current view.
    pub(crate) fn view(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.current.read())
    }

    /// Fails if the engine was closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Fails if a background failure stopped the engine.
    pub(crate) fn check_poison(&self) -> Result<()> {
        match self.poison.lock().as_ref() {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a background failure; writes are refused from now on.
    pub(crate) fn set_poison(&self, reason: String) {
        tracing::error!(%reason, "storage engine stopped accepting writes");
        let mut poison = self.poison.lock();
        if poison.is_none() {
            *poison = Some(reason);
        }
        drop(poison);
        self.notify();
    }

    /// Wakes everyone waiting on the engine's condition variable.
    pub(crate) fn notify(&self) {
        let _guard = self.signal_lock.lock();
        self.signal.notify_all();
    }

    /// Allocates a file number.
    pub(crate) fn new_file_id(&self) -> u64 {
        self.next_file_id.fetch_add(1, Ordering::AcqRel)
    }

    /// Replaces the current view with `change(current)`, atomically with respect to every
    /// other change (a memtable switch and a flush may race; neither may undo the other).
    pub(crate) fn update_view(&self, change: impl FnOnce(&SuperVersion) -> SuperVersion) {
        {
            let mut current = self.current.write();
            let next = change(&current);
            *current = Arc::new(next);
        }
        self.notify();
    }
}

/// Deletes table files the manifest does not list: leftovers of a flush or compaction that
/// crashed before committing.
fn remove_orphan_tables(dir: &Path, tables: &TableSet) -> Result<()> {
    let live: std::collections::HashSet<u64> =
        tables.levels.iter().flatten().map(|t| t.meta.id).collect();
    for id in dir::list_table_ids(dir)? {
        if !live.contains(&id) {
            let path = dir::table_path(dir, id);
            info!(path = %path.display(), "removing orphan table left by an interrupted flush or compaction");
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// Records written together: after a crash, all of them are there or none.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) records: Vec<(Bytes, Record)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `records` records.
    pub fn with_capacity(records: usize) -> Self {
        WriteBatch {
            records: Vec::with_capacity(records),
        }
    }

    /// Adds a record under `key`.
    pub fn put(&mut self, key: impl Into<Bytes>, record: Record) {
        self.records.push((key.into(), record));
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A point-in-time view of the engine.
///
/// It pins the memtables and tables that were current when it was taken (compaction replaces
/// tables but cannot delete the files a snapshot still references), and filters the memtable it
/// shares with later writers by sequence number.
pub struct Snapshot {
    inner: Arc<DbInner>,
    view: Arc<SuperVersion>,
    seqno: u64,
}

impl Snapshot {
    /// The live value of `key` as of the snapshot.
    ///
    /// # Errors
    /// I/O and corruption errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>> {
        let now = (self.inner.opts.now_ms)();
        Ok(self.get_record(key)?.filter(|r| r.is_live(now)))
    }

    /// The winning record of `key` as of the snapshot, tombstones and expired values included.
    ///
    /// # Errors
    /// I/O and corruption errors.
    pub fn get_record(&self, key: &[u8]) -> Result<Option<Record>> {
        // Not through the row cache: it may hold records newer than the snapshot.
        self.inner.get_at(&self.view, key, self.seqno, None)
    }

    /// Live records in `(start, end)` as of the snapshot.
    ///
    /// # Errors
    /// I/O and corruption errors.
    pub fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<DbIter> {
        self.range_with(start, end, ReadMode::Live)
    }

    /// Records in `(start, end)` as of the snapshot, as `mode` asks.
    ///
    /// # Errors
    /// I/O and corruption errors.
    pub fn range_with(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        mode: ReadMode,
    ) -> Result<DbIter> {
        self.inner
            .range_at(Arc::clone(&self.view), self.seqno, start, end, mode)
    }

    /// The snapshot's sequence number.
    pub fn seqno(&self) -> u64 {
        self.seqno
    }
}
