//! Writes: unconditional ones from any coordinator, conditional ones on the slot's leader.
//!
//! Owns [`Shared::write`], [`Shared::lead`] and [`Shared::apply_records`]. Every write gets a
//! fresh HLC version on its coordinator and goes to every live replica of its slot; the
//! coordinator answers once the level's replicas have stored it. A conditional write
//! (compare-and-set on the version: `SET NX`, `INCR`, `RENAME`, ...) runs on its slot's
//! leader, the first live replica in ring order, which reads the keys at the read level,
//! checks, versions and writes at the write level while holding the keys' locks; any other
//! node forwards it there, so two clients `INCR`ing through different nodes still serialise.
//! A conditional request spanning several slots of a multi-node ring is refused with
//! `CrossSlot`, as Redis Cluster refuses it. Must never write part of a slot group's
//! records: one replica set's records reach each replica as one atomic batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use ringkv_lsm::Record;

use crate::api::{Condition, Consistency, Level, Response, Version, Write};
use crate::coordinator::call::Fanout;
use crate::coordinator::level::Operation;
use crate::coordinator::locks::KeyGuards;
use crate::coordinator::plan::Plan;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::rpc::{PeerRequest, PeerResponse, RemoteFailureKind};
use crate::slot::key_slot;
use crate::storage::{SlotRecord, Storage};
use crate::transport::Transport;

impl<S: Storage, T: Transport> Shared<S, T> {
    /// Applies `writes` in order at the connection's levels; one flag per write (false: its
    /// condition did not hold).
    pub(crate) async fn write(
        self: &Arc<Self>,
        writes: Vec<Write>,
        consistency: Consistency,
    ) -> Result<Response, ClusterError> {
        let conditional = writes
            .iter()
            .any(|w| matches!(w.condition, Condition::IfVersion(_)));
        if conditional {
            return self
                .conditional(writes, consistency)
                .await
                .map(Response::Written);
        }
        let state = self.ring_state();
        let n = writes.len();
        // Each key's slot is hashed once, here; locking, grouping and the engine key reuse it.
        // The versions are filled in under the locks.
        let mut records: Vec<SlotRecord> = writes
            .into_iter()
            .map(|w| SlotRecord {
                slot: key_slot(&w.key),
                key: w.key,
                record: unversioned(w.value, w.expire_at_ms),
            })
            .collect();
        // Held so a conditional write led here is wholly before or after this one. Only keys
        // whose slot this node leads: others' conditional writes run on their leaders, which
        // these locks do not reach, so locking them would only serialise unrelated writes
        // across a replication round trip.
        let led_here = records
            .iter()
            .filter(|r| leads(&state, r.slot))
            .map(|r| r.key.as_ref());
        let _guards = self.lock_keys(led_here).await?;
        self.version_in_order(&mut records);
        self.apply_records(&state, records, consistency.write)
            .await?;
        Ok(Response::Written(vec![true; n]))
    }

    /// Runs conditional `writes` here if this node leads their slot, else forwards them.
    async fn conditional(
        self: &Arc<Self>,
        writes: Vec<Write>,
        consistency: Consistency,
    ) -> Result<Vec<bool>, ClusterError> {
        let state = self.ring_state();
        let Some(first) = writes.first() else {
            return Ok(Vec::new());
        };
        let slot = key_slot(&first.key);
        if state.view.members.len() > 1 && writes.iter().any(|w| key_slot(&w.key) != slot) {
            return Err(ClusterError::CrossSlot);
        }
        let replicas = state.ring.replicas(slot);
        let Some(leader) = leader(&state, slot) else {
            // Nobody alive to lead: the plan names the level and the counts.
            Plan::new(&state, slot, replicas, consistency.write, Operation::Write)?;
            return Err(ClusterError::NoReplicas { slot });
        };
        if state.is_local(leader) {
            return self.lead(writes, consistency).await;
        }
        let n = writes.len();
        let leader_id = state.member(leader).node_id.clone();
        match self
            .call_one_within(
                &state,
                leader,
                PeerRequest::Coordinate {
                    writes,
                    consistency,
                },
                forward_timeout(self.timeout),
            )
            .await
        {
            Ok(PeerResponse::Written(flags)) if flags.len() == n => Ok(flags),
            // The leader did not take the request: as a leader that did not answer.
            Ok(PeerResponse::Failed(failure)) if failure.kind == RemoteFailureKind::Overloaded => {
                Err(quorum_failed(
                    consistency.write,
                    format!("leader {leader_id}: {}", failure.message),
                ))
            }
            // The leader's own error, as if the client had asked it directly.
            Ok(PeerResponse::Failed(failure)) => Err(failure.into_error()),
            Ok(_) => Err(quorum_failed(
                consistency.write,
                format!("leader {leader_id}: unexpected answer"),
            )),
            Err(reason) => Err(quorum_failed(
                consistency.write,
                format!("leader {leader_id}: {reason}"),
            )),
        }
    }

    /// Runs conditional `writes` as their slot's leader: under the keys' locks, reads the
    /// current versions at the read level, checks each condition (seeing earlier writes of
    /// the request), and writes those that hold at the write level.
    pub(crate) async fn lead(
        self: &Arc<Self>,
        writes: Vec<Write>,
        consistency: Consistency,
    ) -> Result<Vec<bool>, ClusterError> {
        let state = self.ring_state();
        let _guards = self
            .lock_keys(writes.iter().map(|w| w.key.as_ref()))
            .await?;
        let mut checked: Vec<Bytes> = writes
            .iter()
            .filter(|w| matches!(w.condition, Condition::IfVersion(_)))
            .map(|w| w.key.clone())
            .collect();
        checked.sort_unstable();
        checked.dedup();
        let records = self
            .read_records(&state, checked.clone(), consistency.read)
            .await?;
        let now = self.inner.clock.now_ms();
        // Each key's live version as the request goes along (a map, so a large MSETNX stays
        // linear).
        let mut current: HashMap<Bytes, Option<Version>> = checked
            .into_iter()
            .zip(records)
            .map(|(k, r)| (k, r.and_then(|r| live_version(&r, now))))
            .collect();
        let mut applied = Vec::with_capacity(writes.len());
        let mut flags = Vec::with_capacity(writes.len());
        for w in writes {
            if let Condition::IfVersion(expected) = w.condition {
                if current.get(&w.key).copied().flatten() != expected {
                    flags.push(false);
                    continue;
                }
            }
            let record = self.versioned(key_slot(&w.key), w.key, w.value, w.expire_at_ms);
            if current.contains_key(&record.key) {
                current.insert(record.key.clone(), live_version(&record.record, now));
            }
            applied.push(record);
            flags.push(true);
        }
        if !applied.is_empty() {
            self.apply_records(&state, applied, consistency.write)
                .await?;
        }
        Ok(flags)
    }

    /// The locks of `keys` (those led here), or [`ClusterError::KeyBusy`] once they have been
    /// busy for [`lock_wait`]: the write is then not applied, as a write past Cassandra's write
    /// timeout.
    async fn lock_keys<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<KeyGuards<'_>, ClusterError> {
        let mut locking = std::pin::pin!(self.locks.lock(keys));
        // Free locks (nearly every write) are taken without arming a timer.
        if let Some(guards) = locking.as_mut().now_or_never() {
            return Ok(guards);
        }
        let wait = lock_wait(self.timeout);
        tokio::time::timeout(wait, locking)
            .await
            .map_err(|_| ClusterError::KeyBusy {
                waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            })
    }

    /// Gives `records` fresh versions, increasing in their order, from one clock read.
    fn version_in_order(&self, records: &mut [SlotRecord]) {
        let hlc = &self.inner.hlc;
        let first = hlc.reserve(records.len() as u64);
        let mut ts = first;
        for r in records {
            r.record.version = Version::new(ts, hlc.node());
            ts = ts.saturating_add(1);
        }
    }

    /// A record of `key` with a fresh version: the value, or a tombstone for `None`.
    fn versioned(
        &self,
        slot: u16,
        key: Bytes,
        value: Option<Bytes>,
        expire_at_ms: u64,
    ) -> SlotRecord {
        let version = self.inner.hlc.next_version();
        let record = match value {
            Some(value) => Record::expiring(version, value, expire_at_ms),
            None => Record::tombstone(version),
        };
        SlotRecord { slot, key, record }
    }

    /// Stores `records` on every live replica of their slots, waiting for `level` in each
    /// replica set (the sets concurrently).
    pub(crate) async fn apply_records(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        records: Vec<SlotRecord>,
        level: Level,
    ) -> Result<(), ClusterError> {
        let records = match self.apply_local(state, records, level).await {
            Ok(applied) => return applied,
            Err(records) => records,
        };
        // A linear search, as reads group their keys (few groups per request).
        let mut keyed: Vec<(&[usize], u16, Vec<SlotRecord>)> = Vec::new();
        for record in records {
            let replicas = state.ring.replicas(record.slot);
            match keyed.iter_mut().find(|(r, _, _)| *r == replicas) {
                Some((_, _, group)) => group.push(record),
                None => keyed.push((replicas, record.slot, vec![record])),
            }
        }
        let mut groups: Vec<(u16, Vec<SlotRecord>)> =
            keyed.into_iter().map(|(_, slot, g)| (slot, g)).collect();
        if groups.len() <= 1 {
            let Some((slot, records)) = groups.pop() else {
                return Ok(());
            };
            return self.apply_group(state, slot, records, level).await;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (slot, records) in groups {
            let shared = Arc::clone(self);
            let state = Arc::clone(state);
            tasks.spawn(async move { shared.apply_group(&state, slot, records, level).await });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {
                    first_error.get_or_insert(ClusterError::ShuttingDown);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn apply_group(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        slot: u16,
        records: Vec<SlotRecord>,
        level: Level,
    ) -> Result<(), ClusterError> {
        let plan = Plan::new(
            state,
            slot,
            state.ring.replicas(slot),
            level,
            Operation::Write,
        )?;
        self.gather(
            state,
            plan,
            PeerRequest::Apply { records },
            Fanout::All,
            &|r| matches!(r, PeerResponse::Applied),
        )
        .await
        .map(|_| ())
    }
}

/// The record of a write before it has a version: the value, or a tombstone for `None`.
fn unversioned(value: Option<Bytes>, expire_at_ms: u64) -> Record {
    let version = Version::new(0, 0);
    match value {
        Some(value) => Record::expiring(version, value, expire_at_ms),
        None => Record::tombstone(version),
    }
}

/// The leader of `slot`: its first live replica in ring order.
fn leader(state: &RingState, slot: u16) -> Option<usize> {
    state
        .ring
        .replicas(slot)
        .iter()
        .copied()
        .find(|&i| state.member(i).alive)
}

/// Whether this node leads `slot`.
fn leads(state: &RingState, slot: u16) -> bool {
    leader(state, slot).is_some_and(|i| state.is_local(i))
}

/// The version of `record` if it is a live value at `now_ms`.
fn live_version(record: &Record, now_ms: u64) -> Option<Version> {
    record.is_live(now_ms).then_some(record.version)
}

/// How long a forwarding node waits for the leader: the leader runs a read round and a write
/// round, each waiting up to `timeout` for its replicas, plus slack for the hops. Waiting only
/// `timeout` would give up on a leader that is about to report its own failure (a replica that
/// did not answer it in time), and the client would hear "no response from the leader" where
/// asking the leader directly names the level and counts. A leader queued behind other writes
/// to the same keys waits for their locks at most [`lock_wait`], within the slack.
fn forward_timeout(timeout: Duration) -> Duration {
    timeout.saturating_mul(2).saturating_add(timeout / 2)
}

/// How long a write waits for its keys' locks: a quarter of a request timeout. *Why:* a
/// forwarded write's leader then normally ends (lock wait, a read round and a write round,
/// each round up to `timeout`) before its forwarder stops waiting ([`forward_timeout`]), so a
/// write the forwarder reported failed is not applied after it (a local apply stuck on the disk
/// or hops slower than the remaining quarter timeout can still outlast it); and a key whose
/// holders each wait out a silent replica fails its queue in bounded time instead of holding
/// clients for minutes.
fn lock_wait(timeout: Duration) -> Duration {
    timeout / 4
}

fn quorum_failed(level: Level, error: String) -> ClusterError {
    ClusterError::QuorumFailed {
        level,
        required: 1,
        answered: 0,
        errors: vec![error],
    }
}
