//! The WAL appender: one active segment, appends under a short lock, group-committed fsync,
//! rotation, and the optional background fsync thread.
//!
//! In periodic mode the background thread also syncs as soon as [`SYNC_AHEAD_BYTES`] have
//! been appended since the last fsync (the appender pokes it), so the fsync a rotation does
//! under the engine's write lock never has more than that to write back.
//!
//! Owns [`Wal`]. Must never hold the append lock across an fsync on the append path (appends
//! would queue behind the disk), and never retry a failed write or fsync: the first failure
//! poisons the WAL, and every later call returns [`Error::Poisoned`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use tracing::{error, warn};

use super::batch::WalBatch;
use super::frame::{encode_frame_with, FRAME_HEADER_LEN};
use super::MAX_BATCH_BYTES;
use crate::dir::{list_wal_segment_ids, sync_dir, wal_dir, wal_segment_path};
use crate::error::{Error, Result};
use crate::options::FsyncMode;
use crate::stats::Counters;

/// A position in the WAL: the number of bytes appended through this [`Wal`] when a frame was
/// complete. Opaque to callers, who only hand it back to [`Wal::sync_to`]; it grows across
/// segments, so "synced up to" is one number.
pub(crate) type Lsn = u64;

/// The write-ahead log's appender. `Send + Sync`; every method takes `&self`.
pub(crate) struct Wal {
    shared: Arc<Shared>,
    /// The periodic fsync thread, if the mode is [`FsyncMode::Periodic`].
    flusher: Option<Flusher>,
}

/// Buffered frames past this size are written at once, so the buffer stays small however
/// long its writers take to ask for it.
pub(crate) const MAX_PENDING_BYTES: usize = 1 << 20;

/// In periodic mode, appended but unsynced bytes past which the fsync thread syncs at once
/// instead of waiting for its interval. *Why:* a memtable switch rotates the WAL under the
/// engine's write lock, and the rotation's fsync of the old segment wrote back everything
/// since the last periodic sync (up to a second of writes), stalling every writer meanwhile
/// (docs/DESIGN.md, "Durability": the rotation's fsync went from a median of about 80 ms to
/// about 20 ms).
pub(crate) const SYNC_AHEAD_BYTES: u64 = 8 << 20;

/// A buffer that grew past this for one large batch is dropped after it is written (it is
/// otherwise kept: a 1 KiB value's frame is past the allocator's small-size caches, so a fresh
/// buffer per append cost a slow-path malloc and free, profiled). Twice the most a flush group
/// buffers: groups of 10-key MSETs reach ~280 KiB, and at 256 KiB every such group dropped its
/// buffer and regrew one by doubling (~16k instructions per MSET, callgrind).
const KEEP_PENDING_BYTES: usize = 2 * MAX_PENDING_BYTES;

/// State shared with the periodic fsync thread.
struct Shared {
    /// The data directory.
    dir: PathBuf,
    /// `<dir>/wal`.
    wal_dir: PathBuf,
    /// The segment appends go to. Held only for a `write(2)`, and for rotation.
    active: Mutex<ActiveSegment>,
    /// Serialises fsyncs: the holder syncs on behalf of everyone queued behind it.
    sync_lock: Mutex<()>,
    /// Lsn of the last complete append (buffered or written). Written under `active`.
    appended_lsn: AtomicU64,
    /// Every append up to this lsn is on disk.
    synced_lsn: AtomicU64,
    /// Bytes of all segment files in the directory.
    bytes_on_disk: AtomicU64,
    /// Why the WAL stopped, once a write or fsync has failed.
    poison: OnceLock<String>,
    counters: Arc<Counters>,
    /// The periodic fsync thread's wake-up (`None` in always mode, where every write syncs).
    flusher_signal: Option<Arc<FlusherSignal>>,
    /// Set when an appender has asked for a sync-ahead that has not finished yet, so the
    /// appends meanwhile do not each take the signal's lock.
    sync_ahead_asked: AtomicBool,
}

/// The segment currently appended to.
struct ActiveSegment {
    /// Shared so that an fsync can run on it without holding the append lock; `write` and
    /// `sync_data` both work through `&File`.
    file: Arc<File>,
    id: u64,
    path: PathBuf,
    /// Whole frames appended but not yet written to `file` (they follow everything in it).
    pending: Vec<u8>,
}

/// The periodic fsync thread and its wake-up signal.
struct Flusher {
    signal: Arc<FlusherSignal>,
    handle: JoinHandle<()>,
}

/// Wakes the periodic fsync thread: to stop, or to sync ahead of its interval.
#[derive(Default)]
struct FlusherSignal {
    state: Mutex<FlusherState>,
    wake: Condvar,
}

#[derive(Default)]
struct FlusherState {
    stopped: bool,
    sync_ahead: bool,
}

impl Wal {
    /// Creates `<dir>/wal/` if needed and starts a new, empty segment `segment_id` for appends.
    ///
    /// Segments already in the directory are left alone (they count towards
    /// [`Wal::bytes_on_disk`] until [`Wal::remove_segments_before`] deletes them).
    ///
    /// # Errors
    /// [`Error::Corruption`] if a segment with this id or a higher one exists (it may hold
    /// unflushed writes, and replay goes in id order); [`Error::Io`] if the directory or the
    /// segment cannot be created, or the fsync thread not spawned.
    pub(crate) fn create(
        dir: &Path,
        segment_id: u64,
        fsync: FsyncMode,
        counters: Arc<Counters>,
    ) -> Result<Wal> {
        let wal_dir = wal_dir(dir);
        fs::create_dir_all(&wal_dir).map_err(|e| Error::io("create directory", &wal_dir, e))?;
        let mut existing_bytes = 0;
        for id in list_wal_segment_ids(dir)? {
            let path = wal_segment_path(dir, id);
            if id >= segment_id {
                // Replay goes in id order: appends here would replay before older writes.
                let reason = format!("new WAL segment {segment_id} is not above this segment");
                return Err(Error::corruption(path, 0, reason));
            }
            existing_bytes += fs::metadata(&path)
                .map_err(|e| Error::io("stat", &path, e))?
                .len();
        }
        let active = ActiveSegment::create(dir, segment_id)?;
        sync_dir(&wal_dir)?;
        let flusher_signal = match fsync {
            FsyncMode::Always => None,
            FsyncMode::Periodic { .. } => Some(Arc::new(FlusherSignal::default())),
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            wal_dir,
            active: Mutex::new(active),
            sync_lock: Mutex::new(()),
            appended_lsn: AtomicU64::new(0),
            synced_lsn: AtomicU64::new(0),
            bytes_on_disk: AtomicU64::new(existing_bytes),
            poison: OnceLock::new(),
            counters,
            flusher_signal: flusher_signal.clone(),
            sync_ahead_asked: AtomicBool::new(false),
        });
        let flusher = match (fsync, flusher_signal) {
            (FsyncMode::Periodic { interval_ms }, Some(signal)) => Some(Flusher::spawn(
                Arc::clone(&shared),
                signal,
                Duration::from_millis(interval_ms.max(1)),
            )?),
            _ => None,
        };
        Ok(Wal { shared, flusher })
    }

    /// Appends `batch` as one frame to the segment's buffer without handing it to the
    /// operating system: a process crash loses it until [`Wal::write_pending`] (or an fsync,
    /// a rotation, or more than [`MAX_PENDING_BYTES`] of buffered frames) writes it. This is
    /// how writers arriving together share one `write(2)`, as redis writes its AOF buffer
    /// once per event-loop turn.
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub(crate) fn append_buffered(&self, batch: &WalBatch) -> Result<Lsn> {
        let mut active = self.shared.active.lock();
        let lsn = self.buffer_frame(&mut active, batch)?;
        if active.pending.len() >= MAX_PENDING_BYTES {
            active.write_pending(&self.shared)?;
        }
        drop(active);
        self.shared.maybe_sync_ahead(lsn);
        Ok(lsn)
    }

    /// Hands every buffered frame to the operating system in one `write(2)`.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the write fails or an earlier write or fsync failed.
    pub(crate) fn write_pending(&self) -> Result<()> {
        self.shared.active.lock().write_pending(&self.shared)
    }

    /// Encodes `batch` as a frame at the end of the segment's buffer; returns its lsn.
    fn buffer_frame(&self, active: &mut ActiveSegment, batch: &WalBatch) -> Result<Lsn> {
        self.shared.check()?;
        let before = active.pending.len();
        active
            .pending
            .reserve(FRAME_HEADER_LEN + batch.encoded_len());
        encode_frame_with(&mut active.pending, MAX_BATCH_BYTES, |out| {
            batch.encode(out)
        })
        .map_err(|e| Error::BatchTooLarge {
            len: e.len,
            max: e.max,
        })?;
        let len = (active.pending.len() - before) as u64;
        // Updated under the segment lock, so lsn order is file order.
        Ok(self.shared.appended_lsn.fetch_add(len, Ordering::AcqRel) + len)
    }

    /// Blocks until every append up to `lsn` is on disk (`fdatasync`).
    ///
    /// Group commit: one caller fsyncs while the others wait for the sync lock; the fsync
    /// covers every append completed before it started, so the callers queued behind it
    /// usually find their appends already durable and return without an fsync of their own.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the fsync fails or the WAL was poisoned before.
    pub(crate) fn sync_to(&self, lsn: Lsn) -> Result<()> {
        self.shared.sync_to(lsn)
    }

    /// Blocks until every append so far is on disk.
    ///
    /// # Errors
    /// As [`Wal::sync_to`].
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.shared.sync_all()
    }

    /// Fsyncs and closes the current segment and starts the new, empty segment `new_id`
    /// (fsyncing the WAL directory so the new file survives a crash).
    ///
    /// # Errors
    /// [`Error::Corruption`] if `new_id` does not follow the current segment (replay order is
    /// id order); [`Error::Io`] if the new segment cannot be created (appends continue in the
    /// current one); [`Error::Poisoned`] if an fsync fails.
    pub(crate) fn rotate(&self, new_id: u64) -> Result<()> {
        self.shared.check()?;
        let mut active = self.shared.active.lock();
        self.shared.check()?;
        if new_id <= active.id {
            return Err(Error::corruption(
                &self.shared.wal_dir,
                0,
                format!(
                    "new WAL segment {new_id} does not follow the current segment {}",
                    active.id
                ),
            ));
        }
        // Appends are blocked by the lock, so this fsync covers everything appended so far.
        active.write_pending(&self.shared)?;
        let covered = self.shared.appended_lsn.load(Ordering::Acquire);
        if let Err(e) = active.file.sync_data() {
            return Err(self
                .shared
                .poison(format!("fsync of {} failed: {e}", active.path.display())));
        }
        Counters::incr(&self.shared.counters.wal_syncs);
        self.shared.synced_lsn.fetch_max(covered, Ordering::AcqRel);
        let next = ActiveSegment::create(&self.shared.dir, new_id)?;
        if let Err(e) = sync_dir(&self.shared.wal_dir) {
            // Appends to a segment whose directory entry may vanish would be lost on replay.
            return Err(self.shared.poison(e.to_string()));
        }
        *active = next;
        Ok(())
    }

    /// Id of the segment appends go to.
    pub(crate) fn current_segment(&self) -> u64 {
        self.shared.active.lock().id
    }

    /// Deletes the segment files with an id below `id` (never the current segment).
    ///
    /// The deletions are not fsynced: a segment that reappears after a crash lies below the
    /// manifest's log number, and replay skips it.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be listed or a file cannot be removed.
    pub(crate) fn remove_segments_before(&self, id: u64) -> Result<()> {
        let current = self.current_segment();
        for seg in list_wal_segment_ids(&self.shared.dir)? {
            if seg >= id || seg == current {
                continue;
            }
            let path = wal_segment_path(&self.shared.dir, seg);
            let size = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path, e)),
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("remove", &path, e)),
            }
            // Saturating: a file that grew or shrank outside our accounting must not wrap.
            let _ =
                self.shared
                    .bytes_on_disk
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some(b.saturating_sub(size))
                    });
        }
        Ok(())
    }

    /// Bytes of all WAL segment files on disk.
    pub(crate) fn bytes_on_disk(&self) -> u64 {
        self.shared.bytes_on_disk.load(Ordering::Relaxed)
    }
}

impl Drop for Wal {
    /// Stops the periodic fsync thread, then fsyncs what was appended since the last fsync,
    /// so a clean shutdown in periodic mode loses nothing.
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        if self.shared.poison.get().is_none() {
            if let Err(e) = self.shared.sync_all() {
                warn!(error = %e, "final WAL fsync at close failed");
            }
        }
    }
}

impl Shared {
    /// `Err(Poisoned)` once a write or fsync has failed.
    fn check(&self) -> Result<()> {
        match self.poison.get() {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first failure and returns the error every caller from now on gets.
    fn poison(&self, reason: String) -> Error {
        let reason = self.poison.get_or_init(|| reason).clone();
        error!(reason = %reason, "WAL poisoned");
        Error::Poisoned { reason }
    }

    fn sync_all(&self) -> Result<()> {
        self.sync_to(self.appended_lsn.load(Ordering::Acquire))
    }

    /// Wakes the periodic fsync thread if appends up to `lsn` put more than
    /// [`SYNC_AHEAD_BYTES`] beyond the last fsync and no sync-ahead is under way already.
    fn maybe_sync_ahead(&self, lsn: Lsn) {
        let Some(signal) = &self.flusher_signal else {
            return;
        };
        if lsn.saturating_sub(self.synced_lsn.load(Ordering::Acquire)) < SYNC_AHEAD_BYTES
            || self.sync_ahead_asked.swap(true, Ordering::AcqRel)
        {
            return;
        }
        signal.state.lock().sync_ahead = true;
        signal.wake.notify_one();
    }

    fn sync_to(&self, lsn: Lsn) -> Result<()> {
        self.check()?;
        if self.synced_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let _sync = self.sync_lock.lock();
        self.check()?;
        // The previous holder's fsync may have covered us while we waited.
        if self.synced_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let (file, path, covered) = {
            let mut active = self.active.lock();
            active.write_pending(self)?;
            (
                Arc::clone(&active.file),
                active.path.clone(),
                self.appended_lsn.load(Ordering::Acquire),
            )
        };
        // Appends go on while this runs; they are covered by the next fsync. A rotation in
        // the meantime fsyncs this segment itself and moves `synced_lsn` on.
        if let Err(e) = file.sync_data() {
            return Err(self.poison(format!("fsync of {} failed: {e}", path.display())));
        }
        Counters::incr(&self.counters.wal_syncs);
        self.synced_lsn.fetch_max(covered, Ordering::AcqRel);
        Ok(())
    }
}

impl ActiveSegment {
    /// Creates the empty segment file `id`; it must not exist.
    fn create(dir: &Path, id: u64) -> Result<ActiveSegment> {
        let path = wal_segment_path(dir, id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        Ok(ActiveSegment {
            file: Arc::new(file),
            id,
            path,
            pending: Vec::new(),
        })
    }

    /// Writes the buffered frames to the file in one `write(2)`; a failure poisons the WAL.
    fn write_pending(&mut self, shared: &Shared) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        shared.check()?;
        if let Err(e) = (&*self.file).write_all(&self.pending) {
            // A partial frame may now sit at the end of the segment; nothing may follow it.
            return Err(shared.poison(format!("write to {} failed: {e}", self.path.display())));
        }
        let len = self.pending.len() as u64;
        if self.pending.capacity() > KEEP_PENDING_BYTES {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
        shared.bytes_on_disk.fetch_add(len, Ordering::Relaxed);
        Counters::add(&shared.counters.wal_bytes_written, len);
        Counters::incr(&shared.counters.wal_writes);
        Ok(())
    }
}

impl Flusher {
    fn spawn(
        shared: Arc<Shared>,
        signal: Arc<FlusherSignal>,
        interval: Duration,
    ) -> Result<Flusher> {
        let thread_signal = Arc::clone(&signal);
        let wal_dir = shared.wal_dir.clone();
        let handle = std::thread::Builder::new()
            .name("ringkv-wal-fsync".into())
            .spawn(move || Self::run(&shared, &thread_signal, interval))
            .map_err(|e| Error::io("spawn the fsync thread for", wal_dir, e))?;
        Ok(Flusher { signal, handle })
    }

    /// Fsyncs every `interval`, and whenever an appender asks for a sync-ahead, until told
    /// to stop; a failure poisons the WAL and ends it.
    fn run(shared: &Shared, signal: &FlusherSignal, interval: Duration) {
        let mut state = signal.state.lock();
        let mut next = Instant::now() + interval;
        while !state.stopped {
            if !state.sync_ahead && !signal.wake.wait_until(&mut state, next).timed_out() {
                // Woken to stop, to sync ahead, or spuriously: recheck, same deadline.
                continue;
            }
            state.sync_ahead = false;
            // Release the signal's lock while syncing, so a drop is never stuck behind the
            // disk for longer than one fsync, and appenders can ask again meanwhile.
            let result = MutexGuard::unlocked(&mut state, || {
                let result = shared.sync_all();
                // After the sync: appends during it that crossed the bound ask again.
                shared.sync_ahead_asked.store(false, Ordering::Release);
                result
            });
            if let Err(e) = result {
                error!(error = %e, "periodic WAL fsync failed; stopping the fsync thread");
                return;
            }
            // The interval bounds how old an unsynced write gets, so it counts from any sync.
            next = Instant::now() + interval;
            // Appends that crossed the bound while the sync ran found it under way and did not
            // ask; if they are past the bound again, go round at once.
            let unsynced = shared
                .appended_lsn
                .load(Ordering::Acquire)
                .saturating_sub(shared.synced_lsn.load(Ordering::Acquire));
            if unsynced >= SYNC_AHEAD_BYTES && !shared.sync_ahead_asked.swap(true, Ordering::AcqRel)
            {
                state.sync_ahead = true;
            }
        }
    }

    fn stop(self) {
        self.signal.state.lock().stopped = true;
        self.signal.wake.notify_all();
        if self.handle.join().is_err() {
            warn!("the WAL fsync thread panicked");
        }
    }
}
