//! Point reads: `Get` over the replica sets of the keys' slots.
//!
//! Owns [`Shared::get`] and [`Shared::read_records`]: keys are grouped by replica set, each
//! group is read at the level from as many replicas as it needs (groups concurrently), and
//! each key's answers are resolved by version (the highest wins, tombstones included, so a
//! delete seen by one replica beats an older value on another). Must never return a value
//! that is expired at the coordinator's clock, and never read repair (that comes with the
//! repair capability).

use std::sync::Arc;

use bytes::Bytes;
use ringkv_lsm::Record;

use crate::api::{Level, Response, StoredValue};
use crate::coordinator::call::Fanout;
use crate::coordinator::level::Operation;
use crate::coordinator::plan::Plan;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::rpc::{PeerRequest, PeerResponse};
use crate::slot::key_slot;
use crate::storage::Storage;
use crate::transport::Transport;

/// Keys of one replica set: their positions in the request, slots and keys.
struct Group {
    slot: u16,
    indices: Vec<usize>,
    keys: Vec<(u16, Bytes)>,
}

impl<S: Storage, T: Transport> Shared<S, T> {
    /// The live values of `keys`, in order, read at `level`.
    pub(crate) async fn get(
        self: &Arc<Self>,
        keys: Vec<Bytes>,
        level: Level,
    ) -> Result<Response, ClusterError> {
        let state = self.ring_state();
        let records = self.read_records(&state, keys, level).await?;
        let now = self.inner.clock.now_ms();
        let values = records
            .into_iter()
            .map(|record| {
                let record = record.filter(|r| r.is_live(now))?;
                Some(StoredValue {
                    value: record.value?,
                    expire_at_ms: record.expire_at_ms,
                    version: record.version,
                })
            })
            .collect();
        Ok(Response::Values(values))
    }

    /// The winning record of each key (tombstones and expired values included), in order.
    pub(crate) async fn read_records(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        keys: Vec<Bytes>,
        level: Level,
    ) -> Result<Vec<Option<Record>>, ClusterError> {
        if let Some(read) = self.read_local(state, &keys, level) {
            return read;
        }
        let mut groups = group_by_replicas(state, keys.into_iter().map(|k| (key_slot(&k), k)));
        let n: usize = groups.iter().map(|g| g.indices.len()).sum();
        let mut out: Vec<Option<Record>> = vec![None; n];
        if groups.len() <= 1 {
            // One replica set (always, on one node): no task to spawn.
            let Some(group) = groups.pop() else {
                return Ok(out);
            };
            let indices = group.indices.clone();
            let records = self.read_group(state, group, level).await?;
            for (i, r) in indices.into_iter().zip(records) {
                out[i] = r;
            }
            return Ok(out);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for group in groups {
            let shared = Arc::clone(self);
            let state = Arc::clone(state);
            tasks.spawn(async move {
                let indices = group.indices.clone();
                shared
                    .read_group(&state, group, level)
                    .await
                    .map(|records| (indices, records))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (indices, records) = match joined {
                Ok(result) => result?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(ClusterError::ShuttingDown),
            };
            for (i, r) in indices.into_iter().zip(records) {
                out[i] = r;
            }
        }
        Ok(out)
    }

    /// Reads one group's keys from its replicas and resolves each by version.
    async fn read_group(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        group: Group,
        level: Level,
    ) -> Result<Vec<Option<Record>>, ClusterError> {
        let replicas = state.ring.replicas(group.slot);
        let plan = Plan::new(state, group.slot, replicas, level, Operation::Read)?;
        let wanted = group.keys.len();
        let answers = self
            .gather(
                state,
                plan,
                PeerRequest::Read { keys: group.keys },
                Fanout::Needed,
                // A reply with another number of records than keys asked is not an answer.
                &|r| matches!(r, PeerResponse::Records(records) if records.len() == wanted),
            )
            .await?;
        let mut resolved: Vec<Option<Record>> = vec![None; wanted];
        for (_, answer) in answers {
            let PeerResponse::Records(records) = answer else {
                continue;
            };
            for (slot, record) in resolved.iter_mut().zip(records) {
                *slot = newest(slot.take(), record);
            }
        }
        Ok(resolved)
    }
}

/// The record with the higher version.
pub(crate) fn newest(a: Option<Record>, b: Option<Record>) -> Option<Record> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.version > a.version { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Groups `(slot, key)` pairs by the replica set of their slot, remembering each key's
/// position. A linear search of the groups: requests have few keys and rings few distinct
/// replica lists per request, and on one node it is one comparison per key, no hashing.
fn group_by_replicas(state: &RingState, keys: impl Iterator<Item = (u16, Bytes)>) -> Vec<Group> {
    let mut groups: Vec<(&[usize], Group)> = Vec::new();
    for (i, (slot, key)) in keys.enumerate() {
        let replicas = state.ring.replicas(slot);
        let g = match groups.iter().position(|(r, _)| *r == replicas) {
            Some(g) => g,
            None => {
                groups.push((
                    replicas,
                    Group {
                        slot,
                        indices: Vec::new(),
                        keys: Vec::new(),
                    },
                ));
                groups.len() - 1
            }
        };
        groups[g].1.indices.push(i);
        groups[g].1.keys.push((slot, key));
    }
    groups.into_iter().map(|(_, g)| g).collect()
}
