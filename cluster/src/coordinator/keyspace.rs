//! Whole-keyspace requests: `DBSIZE`, `RANDOMKEY`, `FLUSHALL`.
//!
//! Owns the coordinator's key counting, random key choice and flush. Each is a walk of the
//! slot-ordered user keyspace, so each states its cost. Must never read the system prefixes
//! (everything stops at [`key::user_keyspace_end`]).

use std::ops::Bound;

use bytes::Bytes;
use ringkv_lsm::{ReadMode, Record};

use crate::api::Response;
use crate::coordinator::Inner;
use crate::error::ClusterError;
use crate::slot::SLOTS;
use crate::storage::{key, SlotKey, SlotRecord, Storage};

/// Keys counted exactly before `CountKeys` extrapolates from the slots walked so far.
pub const EXACT_COUNT_BUDGET: u64 = 100_000;
/// Keys of one slot a random pick chooses among.
const RANDOM_PICK_WINDOW: usize = 64;
/// Keys deleted per atomic batch by `FlushAll`.
const FLUSH_BATCH: usize = 1024;

impl<S: Storage> Inner<S> {
    /// Live keys: exact up to [`EXACT_COUNT_BUDGET`] keys; beyond that, the count of the slots
    /// walked so far scaled to all slots (slots hash uniformly unless hash tags pile keys into
    /// a few). Cost: at most the budget's worth of keys read.
    pub(crate) fn count_keys(&self) -> Result<Response, ClusterError> {
        let iter = self.storage.range(
            Bound::Included(SlotKey::slot_start(0)),
            key::user_keyspace_end(),
            ReadMode::Live,
        )?;
        let mut n = 0u64;
        for item in iter {
            let r = item?;
            n += 1;
            if n >= EXACT_COUNT_BUDGET {
                // Slots 0..=r.slot are (nearly) all counted.
                let walked = u64::from(r.slot) + 1;
                return Ok(Response::Count(n * u64::from(SLOTS) / walked));
            }
        }
        Ok(Response::Count(n))
    }

    /// A random live key: the first non-empty slot at or after a random slot (wrapping), and a
    /// random key among that slot's first keys. Uniform over slots when most slots hold keys;
    /// with sparse data, slots after long empty runs are picked more often. Cost: one or two
    /// seeks and at most a window of keys.
    pub(crate) fn random_key(&self) -> Result<Response, ClusterError> {
        let first = self.rng.below(u64::from(SLOTS)) as u16;
        let after = self.pick_in_first_slot(
            Bound::Included(SlotKey::slot_start(first)),
            key::user_keyspace_end(),
        )?;
        if after.is_some() {
            return Ok(Response::Key(after));
        }
        let before = self.pick_in_first_slot(
            Bound::Included(SlotKey::slot_start(0)),
            Bound::Excluded(SlotKey::slot_start(first)),
        )?;
        Ok(Response::Key(before))
    }

    /// A random key of the first slot with a live key in the range, if any.
    fn pick_in_first_slot(
        &self,
        start: Bound<SlotKey<'_>>,
        end: Bound<SlotKey<'_>>,
    ) -> Result<Option<Bytes>, ClusterError> {
        let mut chosen = None;
        let mut slot = None;
        for (seen, item) in self
            .storage
            .range(start, end, ReadMode::Live)?
            .take(RANDOM_PICK_WINDOW)
            .enumerate()
        {
            let r = item?;
            if *slot.get_or_insert(r.slot) != r.slot {
                break;
            }
            // Reservoir sampling: the n-th key replaces the choice with probability 1/n.
            if self.rng.below(seen as u64 + 1) == 0 {
                chosen = Some(r.key);
            }
        }
        Ok(chosen)
    }

    /// Deletes every live key by writing tombstones over a walk of the keyspace, in atomic
    /// batches under the keys' locks (so a conditional write is wholly before or after the
    /// delete of its key). A write that lands after the walk passed its key survives. Cost: a
    /// full read of the keyspace plus a tombstone per key; the space comes back at compaction.
    pub(crate) fn flush_all(&self) -> Result<Response, ClusterError> {
        let iter = self.storage.range(
            Bound::Included(SlotKey::slot_start(0)),
            key::user_keyspace_end(),
            ReadMode::Live,
        )?;
        let mut batch: Vec<(u16, Bytes)> = Vec::with_capacity(FLUSH_BATCH);
        for item in iter {
            let r = item?;
            batch.push((r.slot, r.key));
            if batch.len() == FLUSH_BATCH {
                self.delete_batch(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.delete_batch(batch)?;
        }
        Ok(Response::Done)
    }

    fn delete_batch(&self, keys: Vec<(u16, Bytes)>) -> Result<(), ClusterError> {
        let _guards = self.locks.lock(keys.iter().map(|(_, k)| k.as_ref()));
        let records = keys
            .into_iter()
            .map(|(slot, key)| SlotRecord {
                slot,
                key,
                record: Record::tombstone(self.hlc.next_version()),
            })
            .collect();
        self.storage.write(records)
    }
}
