//! Point reads and writes: `Get` and (conditional) `Write`.
//!
//! Owns the coordinator's read of live values and its write path: fresh HLC versions, deletes
//! as tombstones, and compare-and-set on the version checked and applied under the keys'
//! stripe locks. Must never hold a lock across an `.await` (these functions are synchronous)
//! and never write part of a request: a request's writes go to the engine as one atomic batch.

use std::collections::HashMap;

use bytes::Bytes;
use ringkv_lsm::Record;

use crate::api::{Condition, Response, StoredValue, Version, Write};
use crate::coordinator::Inner;
use crate::error::ClusterError;
use crate::slot::key_slot;
use crate::storage::{SlotRecord, Storage};

impl<S: Storage> Inner<S> {
    /// The live values of `keys`, in order.
    pub(crate) fn get(&self, keys: &[Bytes]) -> Result<Response, ClusterError> {
        let now = self.clock.now_ms();
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let record = self.storage.get(key_slot(key), key)?;
            values.push(record.filter(|r| r.is_live(now)).and_then(|r| {
                Some(StoredValue {
                    value: r.value?,
                    expire_at_ms: r.expire_at_ms,
                    version: r.version,
                })
            }));
        }
        Ok(Response::Values(values))
    }

    /// Applies `writes` in order: each condition is checked against the key's live version
    /// (including earlier writes of this request), each write that holds gets a fresh version,
    /// and all of them reach the engine in one atomic batch while the keys' locks are held.
    pub(crate) fn write(&self, writes: Vec<Write>) -> Result<Response, ClusterError> {
        let _guards = self.locks.lock(writes.iter().map(|w| w.key.as_ref()));
        let now = self.clock.now_ms();
        let mut applied: Vec<SlotRecord> = Vec::with_capacity(writes.len());
        let mut flags = Vec::with_capacity(writes.len());
        // Where each key's latest write of this request is in `applied`, for later conditions
        // on the same key (a map, so a large MSETNX stays linear).
        let mut latest: HashMap<Bytes, usize> = HashMap::new();
        // A lone write has no earlier write to see; it skips the map's allocation.
        let several = writes.len() > 1;
        for w in writes {
            let slot = key_slot(&w.key);
            if let Condition::IfVersion(expected) = w.condition {
                let current = match latest.get(&w.key).map(|&i| &applied[i]) {
                    Some(earlier) => live_version(&earlier.record, now),
                    None => self
                        .storage
                        .get(slot, &w.key)?
                        .and_then(|r| live_version(&r, now)),
                };
                if current != expected {
                    flags.push(false);
                    continue;
                }
            }
            let version = self.hlc.next_version();
            let record = match w.value {
                Some(value) => Record::expiring(version, value, w.expire_at_ms),
                None => Record::tombstone(version),
            };
            if several {
                latest.insert(w.key.clone(), applied.len());
            }
            applied.push(SlotRecord {
                slot,
                key: w.key,
                record,
            });
            flags.push(true);
        }
        if !applied.is_empty() {
            self.storage.write(applied)?;
        }
        Ok(Response::Written(flags))
    }
}

/// The version of `record` if it is a live value at `now_ms`.
fn live_version(record: &Record, now_ms: u64) -> Option<Version> {
    record.is_live(now_ms).then_some(record.version)
}
