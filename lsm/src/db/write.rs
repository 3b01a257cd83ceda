//! The write path: validation, backpressure, WAL append, memtable insert, memtable switch.
//!
//! Writers are serialised by `write_lock` only for the WAL append and memtable insert; the
//! fsync of `FsyncMode::Always` happens after the lock is released, so concurrent writers
//! share one fsync (group commit, in the WAL). Must never acknowledge a write that is not in
//! the WAL.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::state::SuperVersion;
use crate::db::{DbInner, WriteBatch};
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::options::FsyncMode;
use crate::record::{Entry, InternalKey};
use crate::stats::Counters;
use crate::wal::WalBatch;

impl DbInner {
    /// Writes a batch; see [`crate::Db::write`].
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        self.check_open()?;
        self.check_limits(&batch)?;
        if batch.records.is_empty() {
            return Ok(());
        }
        self.check_poison()?;
        self.wait_for_room()?;

        let user_bytes: usize = batch
            .records
            .iter()
            .map(|(k, r)| k.len() + r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        let count = batch.records.len() as u64;
        let lsn = {
            let _writers = self.write_lock.lock();
            let first_seqno = self.visible_seqno.load(Ordering::Acquire) + 1;
            let wal_batch = WalBatch {
                first_seqno,
                records: batch.records,
            };
            let lsn = self.wal.append(&wal_batch)?;
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
        if self.opts.fsync == FsyncMode::Always {
            self.wal.sync_to(lsn)?;
        }
        Counters::add(&self.counters.writes, count);
        Counters::add(&self.counters.user_bytes_written, user_bytes as u64);
        Ok(())
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
            let too_many_l0 = view.tables.levels.first().map_or(0, Vec::len) >= self.opts.l0_stall_trigger;
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
            }
        });
        Ok(())
    }
}
