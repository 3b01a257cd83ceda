//! The write path: validation, backpressure, group commit, WAL append, memtable insert,
//! memtable switch.
//!
//! Writers queue their batches; the first one to find no leader becomes the leader, takes
//! every queued batch, writes them to the WAL as one frame with one `write(2)`, inserts them
//! into the memtable, fsyncs once (with `FsyncMode::Always`) and wakes its group. Writers that
//! arrive meanwhile queue in memory for the next leader rather than each paying for an fsync,
//! which is what lets 32 writers share one. (Handing leadership on before the fsync, a
//! two-stage pipeline, was measured worse: the next leader starts with a small group while
//! the big one still waits for its fsync.) Must never acknowledge a write that is not in the
//! WAL (and, with `Always`, not fsynced).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::db::state::SuperVersion;
use crate::db::{DbInner, WriteBatch};
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::options::FsyncMode;
use crate::record::{Entry, InternalKey, Record};
use crate::stats::Counters;
use crate::wal::writer::Lsn;
use crate::wal::WalBatch;

/// Largest group a leader commits at once, so one leader's latency stays bounded.
const MAX_GROUP_BYTES: usize = 4 << 20;

/// Longest a leader waits for the previous group's writers to come back before it fsyncs
/// (`FsyncMode::Always` only), like PostgreSQL's `commit_delay`.
const GATHER_WAIT: Duration = Duration::from_micros(500);

/// The queue of writers waiting to be committed by a leader.
#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
    /// Signalled when a writer joins the queue while a leader is gathering.
    arrived: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Writes waiting for a leader, in arrival order.
    pending: Vec<PendingWrite>,
    /// Whether some writer is the leader now (committing, or about to be handed the lead).
    leading: bool,
    /// Writers in the last group: with fsync per write, a leader waits (briefly) for about
    /// that many to queue, because they are the writers that will be back in a moment.
    last_group_writers: usize,
    /// Whether a leader is waiting for writers to join.
    gathering: bool,
}

/// One queued write.
struct PendingWrite {
    records: Vec<(Bytes, Record)>,
    bytes: usize,
    /// Whether the writer accepts its WAL frame staying in the WAL's buffer (see
    /// [`crate::Db::write_buffered`]).
    buffered: bool,
    /// Where the writer waits. Each writer has its own, so a leader wakes its group in
    /// parallel instead of every follower queueing on one mutex to find out.
    slot: Arc<Slot>,
}

/// A waiting writer's mailbox.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    wake: Condvar,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Waiting,
    /// Committed (`None`) or failed (`Some(reason)`).
    Done(Option<String>),
    /// The previous leader handed over: commit the queue.
    Lead,
}

impl Slot {
    fn set(&self, state: SlotState) {
        *self.state.lock() = state;
        self.wake.notify_one();
    }
}

impl DbInner {
    /// Writes a batch; see [`crate::Db::write`] (`buffered` false) and
    /// [`crate::Db::write_buffered`] (true).
    pub(crate) fn write(&self, batch: WriteBatch, buffered: bool) -> Result<()> {
        self.check_open()?;
        self.check_limits(&batch)?;
        if batch.records.is_empty() {
            return Ok(());
        }
        self.check_poison()?;
        self.wait_for_room()?;

        let bytes: usize = batch
            .records
            .iter()
            .map(|(k, r)| k.len() + r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        let slot = Arc::new(Slot::default());
        let mut queue = self.write_queue.state.lock();
        queue.pending.push(PendingWrite {
            records: batch.records,
            bytes,
            buffered,
            slot: Arc::clone(&slot),
        });
        if queue.gathering {
            self.write_queue.arrived.notify_one();
        }
        let lead = !queue.leading;
        queue.leading = true;
        drop(queue);
        if !lead {
            let mut state = slot.state.lock();
            loop {
                match std::mem::take(&mut *state) {
                    SlotState::Waiting => slot.wake.wait(&mut state),
                    SlotState::Done(None) => return Ok(()),
                    SlotState::Done(Some(reason)) => return Err(Error::Poisoned { reason }),
                    SlotState::Lead => break,
                }
            }
        }
        self.lead_group(&slot)
    }

    /// Commits a group as its leader: gathers, appends, fsyncs, wakes the group, and hands
    /// the lead to the next waiting writer. The leader's own write is in the group (it is at
    /// the front of the queue).
    fn lead_group(&self, own: &Arc<Slot>) -> Result<()> {
        let mut queue = self.write_queue.state.lock();
        if self.opts.fsync == FsyncMode::Always {
            // One fsync costs as much for one write as for thirty: give the writers of the
            // last group a moment to come back and share it.
            let deadline = Instant::now() + GATHER_WAIT;
            queue.gathering = true;
            while queue.pending.len() < queue.last_group_writers
                && !self
                    .write_queue
                    .arrived
                    .wait_until(&mut queue, deadline)
                    .timed_out()
            {}
            queue.gathering = false;
        }
        let group = take_group(&mut queue.pending);
        queue.last_group_writers = group.len();
        drop(queue);

        // The guard owns the group, so waking it allocates nothing on the common path.
        let mut handover = Handover {
            db: self,
            own,
            group,
            outcome: Outcome::Panicked,
        };
        let records: Vec<(Bytes, Record)> = match handover.group.as_mut_slice() {
            [single] => std::mem::take(&mut single.records),
            group => group
                .iter_mut()
                .flat_map(|w| std::mem::take(&mut w.records))
                .collect(),
        };
        let user_bytes: usize = handover.group.iter().map(|w| w.bytes).sum();
        // Every acknowledged write is fsynced with `Always`, buffered or not; otherwise a group
        // with a plain write in it is handed to the OS before it becomes visible.
        let always = self.opts.fsync == FsyncMode::Always;
        let write_now = always || handover.group.iter().any(|w| !w.buffered);
        let result = self
            .append_group(records, user_bytes, write_now)
            .and_then(|lsn| {
                if always {
                    self.wal.sync_to(lsn)
                } else {
                    Ok(())
                }
            });
        handover.outcome = match &result {
            Ok(()) => Outcome::Committed,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        drop(handover);
        result
    }

    /// Appends a group of batches to the WAL's buffer as one frame, hands the buffer to the
    /// operating system when `write_now` (before any reader can see the records, so a failed
    /// `write(2)` leaves nothing visible), and inserts the group into the memtable; returns the
    /// WAL position to fsync to. Called by the leader only.
    fn append_group(
        &self,
        records: Vec<(Bytes, Record)>,
        user_bytes: usize,
        write_now: bool,
    ) -> Result<Lsn> {
        let count = records.len() as u64;
        let lsn = {
            let _writers = self.write_lock.lock();
            let first_seqno = self.visible_seqno.load(Ordering::Acquire) + 1;
            let wal_batch = WalBatch {
                first_seqno,
                records,
            };
            let lsn = self.wal.append_buffered(&wal_batch)?;
            if write_now {
                self.wal.write_pending()?;
            }
            let view = self.view();
            for (i, (key, record)) in wal_batch.records.into_iter().enumerate() {
                view.active.insert(
                    InternalKey::new(key, record.version),
                    Entry {
                        seqno: first_seqno + i as u64,
                        expire_at_ms: record.expire_at_ms,
                        value: record.value,
                    },
                );
            }
            self.visible_seqno
                .store(first_seqno + count - 1, Ordering::Release);
            if view.active.approximate_bytes() >= self.opts.memtable_bytes {
                self.switch_memtable(&view)?;
            }
            lsn
        };
        Counters::add(&self.counters.writes, count);
        Counters::add(&self.counters.user_bytes_written, user_bytes as u64);
        Ok(lsn)
    }

    fn check_limits(&self, batch: &WriteBatch) -> Result<()> {
        for (key, record) in &batch.records {
            if key.len() > self.opts.max_key_bytes {
                return Err(Error::KeyTooLarge {
                    len: key.len(),
                    max: self.opts.max_key_bytes,
                });
            }
            if let Some(value) = &record.value {
                if value.len() > self.opts.max_value_bytes {
                    return Err(Error::ValueTooLarge {
                        len: value.len(),
                        max: self.opts.max_value_bytes,
                    });
                }
            }
        }
        Ok(())
    }

    /// Backpressure: while too many memtables wait for flush or L0 has too many tables, the
    /// writer waits (counted as a stall). Without background threads the writer does the
    /// flush itself, so memory stays bounded either way.
    fn wait_for_room(&self) -> Result<()> {
        let mut stalled_since: Option<Instant> = None;
        loop {
            let view = self.view();
            let too_many_memtables = view.immutables.len() >= self.opts.max_immutable_memtables;
            let too_many_l0 =
                view.tables.levels.first().map_or(0, Vec::len) >= self.opts.l0_stall_trigger;
            if !too_many_memtables && !too_many_l0 {
                break;
            }
            if !self.opts.background_work {
                if too_many_memtables {
                    self.flush_oldest()?;
                }
                break;
            }
            self.check_poison()?;
            self.check_open()?;
            if stalled_since.is_none() {
                stalled_since = Some(Instant::now());
                Counters::incr(&self.counters.write_stalls);
                self.notify();
            }
            let mut guard = self.signal_lock.lock();
            self.signal.wait_for(&mut guard, Duration::from_millis(50));
        }
        if let Some(since) = stalled_since {
            Counters::add(
                &self.counters.write_stall_micros,
                since.elapsed().as_micros() as u64,
            );
        }
        Ok(())
    }

    /// Freezes the active memtable if it holds anything; see `switch_memtable`.
    pub(crate) fn switch_memtable_if_not_empty(&self) -> Result<()> {
        let _writers = self.write_lock.lock();
        let view = self.view();
        if !view.active.is_empty() {
            self.switch_memtable(&view)?;
        }
        Ok(())
    }

    /// Freezes the active memtable and starts a new one with a new WAL segment. Called with
    /// `write_lock` held.
    fn switch_memtable(&self, view: &Arc<SuperVersion>) -> Result<()> {
        let segment = self.new_file_id();
        if let Err(e) = self.wal.rotate(segment) {
            self.set_poison(format!("WAL rotation failed: {e}"));
            return Err(e);
        }
        let frozen = Arc::clone(&view.active);
        self.update_view(|current| {
            let mut immutables = Vec::with_capacity(current.immutables.len() + 1);
            immutables.push(frozen);
            immutables.extend(current.immutables.iter().cloned());
            SuperVersion {
                active: Arc::new(Memtable::new(segment)),
                immutables,
                tables: Arc::clone(&current.tables),
                tables_epoch: current.tables_epoch,
            }
        });
        Ok(())
    }
}

/// Finishes a leader's turn when dropped: tells the group its outcome and hands the lead to
/// the next queued writer. Being a drop guard, it also runs if the leader panics, so followers
/// get an error instead of waiting forever.
struct Handover<'a> {
    db: &'a DbInner,
    /// The leader's own slot: it learns the outcome from the return value instead.
    own: &'a Arc<Slot>,
    /// The writes being committed (their records are taken out; the slots stay).
    group: Vec<PendingWrite>,
    outcome: Outcome,
}

/// How a leader's turn ended.
enum Outcome {
    /// Not reported yet: if the guard drops like this, the leader panicked.
    Panicked,
    /// The group is in the WAL (and fsynced, with `FsyncMode::Always`) and the memtable.
    Committed,
    /// The group failed, with this reason.
    Failed(String),
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        for w in self
            .group
            .iter()
            .filter(|w| !Arc::ptr_eq(&w.slot, self.own))
        {
            w.slot.set(SlotState::Done(match &self.outcome {
                Outcome::Committed => None,
                Outcome::Failed(reason) => Some(reason.clone()),
                Outcome::Panicked => {
                    Some("the write leader panicked before committing".to_string())
                }
            }));
        }
        let mut queue = self.db.write_queue.state.lock();
        match queue.pending.first() {
            Some(next) => next.slot.set(SlotState::Lead),
            None => queue.leading = false,
        }
    }
}

/// Takes writes from the front of the queue up to [`MAX_GROUP_BYTES`] (at least one).
fn take_group(pending: &mut Vec<PendingWrite>) -> Vec<PendingWrite> {
    let mut bytes = 0;
    let mut n = 0;
    for w in pending.iter() {
        if n > 0 && bytes + w.bytes > MAX_GROUP_BYTES {
            break;
        }
        bytes += w.bytes;
        n += 1;
    }
    pending.drain(..n).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{Db, Error, FsyncMode, Options, Record, Version, WriteBatch};

    fn open(dir: &std::path::Path, fsync: FsyncMode) -> Db {
        Db::open(dir, Options::default().with_fsync(fsync)).expect("open")
    }

    #[test]
    fn concurrent_writers_share_fsyncs_and_every_write_lands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(open(dir.path(), FsyncMode::Always));
        let threads: Vec<_> = (0..16u32)
            .map(|t| {
                let db = Arc::clone(&db);
                std::thread::spawn(move || {
                    for i in 0..40u64 {
                        let key = format!("t{t}-{i}");
                        db.put(
                            key.as_bytes(),
                            Record::value(Version::new(i + 1, t), key.clone()),
                        )
                        .expect("put");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        let stats = db.stats();
        assert_eq!(stats.writes, 16 * 40);
        assert!(
            stats.wal_syncs < stats.writes,
            "group commit: {} fsyncs for {} writes",
            stats.wal_syncs,
            stats.writes
        );
        for t in 0..16u32 {
            for i in 0..40u64 {
                let key = format!("t{t}-{i}");
                let got = db.get(key.as_bytes()).expect("get").and_then(|r| r.value);
                assert_eq!(got.as_deref(), Some(key.as_bytes()));
            }
        }
    }

    /// Bytes of the WAL segments in `dir`, as the operating system has them.
    fn wal_bytes(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir.join("wal"))
            .expect("wal dir")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum()
    }

    /// What a process crash would leave: a copy of the data directory's files as they are.
    fn crash_copy(from: &std::path::Path, to: &std::path::Path) {
        for entry in walkdir(from) {
            let rel = entry.strip_prefix(from).expect("under the data dir");
            let target = to.join(rel);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&entry, &target).expect("copy");
        }
    }

    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                files.extend(walkdir(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    fn value_of(db: &Db, key: &str) -> Option<bytes::Bytes> {
        db.get(key.as_bytes()).expect("get").and_then(|r| r.value)
    }

    #[test]
    fn buffered_writes_reach_the_os_only_when_flushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(
            dir.path(),
            FsyncMode::Periodic {
                interval_ms: 60_000,
            },
        );
        let before = wal_bytes(dir.path());
        let mut batch = WriteBatch::new();
        batch.put("a", Record::value(Version::new(1, 0), "1"));
        db.write_buffered(batch).expect("buffered write");
        // Readers see it at once; the file does not have it yet.
        assert_eq!(value_of(&db, "a").as_deref(), Some(&b"1"[..]));
        assert_eq!(wal_bytes(dir.path()), before);
        let unflushed = tempfile::tempdir().expect("tempdir");
        crash_copy(dir.path(), unflushed.path());

        db.flush_wal().expect("flush");
        let flushed_len = wal_bytes(dir.path());
        assert!(flushed_len > before);
        let flushed = tempfile::tempdir().expect("tempdir");
        crash_copy(dir.path(), flushed.path());

        // A plain write hands the buffered frames over with its own, in order.
        let mut batch = WriteBatch::new();
        batch.put("b", Record::value(Version::new(2, 0), "2"));
        db.write_buffered(batch).expect("buffered write");
        db.put(b"c", Record::value(Version::new(3, 0), "3"))
            .expect("put");
        assert!(wal_bytes(dir.path()) > flushed_len);
        let written = tempfile::tempdir().expect("tempdir");
        crash_copy(dir.path(), written.path());

        let crashed = open(
            unflushed.path(),
            FsyncMode::Periodic {
                interval_ms: 60_000,
            },
        );
        assert_eq!(value_of(&crashed, "a"), None);
        let crashed = open(
            flushed.path(),
            FsyncMode::Periodic {
                interval_ms: 60_000,
            },
        );
        assert_eq!(value_of(&crashed, "a").as_deref(), Some(&b"1"[..]));
        assert_eq!(value_of(&crashed, "b"), None);
        let crashed = open(
            written.path(),
            FsyncMode::Periodic {
                interval_ms: 60_000,
            },
        );
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert_eq!(value_of(&crashed, k).as_deref(), Some(v.as_bytes()));
        }
    }

    #[test]
    fn buffered_writes_are_fsynced_with_fsync_always_and_kept_by_a_clean_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), FsyncMode::Always);
        let before = wal_bytes(dir.path());
        let mut batch = WriteBatch::new();
        batch.put("a", Record::value(Version::new(1, 0), "1"));
        db.write_buffered(batch).expect("buffered write");
        assert!(wal_bytes(dir.path()) > before);
        drop(db);

        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(
            dir.path(),
            FsyncMode::Periodic {
                interval_ms: 60_000,
            },
        );
        let mut batch = WriteBatch::new();
        batch.put("z", Record::value(Version::new(1, 0), "26"));
        db.write_buffered(batch).expect("buffered write");
        drop(db);
        let reopened = open(
            dir.path(),
            FsyncMode::Periodic {
                interval_ms: 60_000,
            },
        );
        assert_eq!(value_of(&reopened, "z").as_deref(), Some(&b"26"[..]));
    }

    #[test]
    fn an_oversized_record_rejects_the_whole_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), FsyncMode::Periodic { interval_ms: 1000 });
        let mut batch = WriteBatch::new();
        batch.put("small", Record::value(Version::new(1, 0), "v"));
        batch.put(
            "big",
            Record::value(Version::new(1, 0), vec![0u8; (10 << 20) + 1]),
        );
        assert!(matches!(db.write(batch), Err(Error::ValueTooLarge { .. })));
        assert!(db.get(b"small").expect("get").is_none());
    }
}
