//! Whole-keyspace requests: `DBSIZE`, `CLUSTER COUNTKEYSINSLOT`, `RANDOMKEY`, `FLUSHALL`.
//!
//! Owns the coordinator's key counting, random key choice and flush, each stated with its
//! cost. Counts ask one live replica per slot range (this node's own where it is one) to
//! count its ranges' slots; a cluster of one counts its engine directly with a budget. A
//! flush needs every node up (as Cassandra's `TRUNCATE`): each writes tombstones at one
//! version over what it stores. Must never read the system prefixes (replicas stop at the
//! end of the user keyspace).
//!
//! Each of these asks a node to go over all it stores, which a point request's timeout does
//! not allow for on a large node (a `FLUSHALL` of 632k keys on three nodes takes about 3.3 s;
//! at 2 s the client was told it failed while the nodes went on flushing). They wait longer, as
//! Cassandra's range and truncate timeouts do (10 s and 60 s against its 2 s write timeout):
//! [`RANGE_TIMEOUT_FACTOR`] and [`TRUNCATE_TIMEOUT_FACTOR`] times the request timeout.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_lsm::ReadMode;

use crate::api::{Level, Response};
use crate::coordinator::level::Operation;
use crate::coordinator::plan::Plan;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::walk::read_failed;
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::rpc::{PeerRequest, PeerResponse};
use crate::slot::SLOTS;
use crate::storage::{key, SlotKey, Storage};
use crate::transport::Transport;

/// Keys counted exactly before a cluster of one extrapolates from the slots walked so far.
pub const EXACT_COUNT_BUDGET: u64 = 100_000;
/// Keys of one slot a random pick chooses among.
const RANDOM_PICK_WINDOW: usize = 64;
/// Request timeouts a count or a random pick waits for its node (10 s at the default 2 s).
pub const RANGE_TIMEOUT_FACTOR: u32 = 5;
/// Request timeouts a `FLUSHALL` waits for every node (60 s at the default 2 s).
pub const TRUNCATE_TIMEOUT_FACTOR: u32 = 30;

impl<S: Storage, T: Transport> Shared<S, T> {
    /// Live keys in the cluster (`DBSIZE`).
    pub(crate) async fn count_keys(
        self: &Arc<Self>,
        level: Level,
    ) -> Result<Response, ClusterError> {
        let state = self.ring_state();
        if state.view.members.len() == 1 && !state.topology.ranges.is_empty() {
            first_target(&state, 0, state.ring.replicas(0), level)?;
            let inner = Arc::clone(&self.inner);
            return run_blocking(move || local_count_with_budget(&inner.storage)).await;
        }
        let mut by_node: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
        for range in &state.topology.ranges {
            let node = first_target(&state, range.start, &range.replicas, level)?;
            by_node
                .entry(node)
                .or_default()
                .extend(range.start..=range.end);
        }
        let mut total = 0u64;
        for (node, slots) in by_node {
            total += self.count_on(&state, node, slots, level).await?;
        }
        Ok(Response::Count(total))
    }

    /// Live keys in one slot, counted on one live replica.
    pub(crate) async fn count_keys_in_slot(
        self: &Arc<Self>,
        slot: u16,
        level: Level,
    ) -> Result<Response, ClusterError> {
        if slot >= SLOTS {
            return Ok(Response::Count(0));
        }
        let state = self.ring_state();
        let node = first_target(&state, slot, state.ring.replicas(slot), level)?;
        let n = self.count_on(&state, node, vec![slot], level).await?;
        Ok(Response::Count(n))
    }

    async fn count_on(
        &self,
        state: &RingState,
        node: usize,
        slots: Vec<u16>,
        level: Level,
    ) -> Result<u64, ClusterError> {
        let id = &state.member(node).node_id;
        let request = PeerRequest::CountSlots { slots };
        let timeout = self.timeout.saturating_mul(RANGE_TIMEOUT_FACTOR);
        match self.call_one_within(state, node, request, timeout).await {
            Ok(PeerResponse::Counts(counts)) => Ok(counts.iter().sum()),
            Ok(PeerResponse::Failed(f)) => Err(read_failed(level, id, &f.message)),
            Ok(_) => Err(read_failed(level, id, "unexpected answer")),
            Err(reason) => Err(read_failed(level, id, &reason)),
        }
    }

    /// A random live key: the first non-empty slot at or after a random slot (wrapping), and
    /// a random key among that slot's first keys, read from one live replica per slot range.
    /// Uniform over slots when most slots hold keys. Cost: one page per slot range until a key
    /// is found (every range when the cluster is empty).
    pub(crate) async fn random_key(
        self: &Arc<Self>,
        level: Level,
    ) -> Result<Response, ClusterError> {
        let state = self.ring_state();
        let ranges = &state.topology.ranges;
        if ranges.is_empty() {
            return Ok(Response::Key(None));
        }
        let first = self.inner.rng.below(u64::from(SLOTS)) as u16;
        let start_index = ranges.partition_point(|r| r.end < first);
        for step in 0..=ranges.len() {
            let range = &ranges[(start_index + step) % ranges.len()];
            // The first visit starts at the random slot; the last wraps back to its range's start.
            let from = if step == 0 {
                first.max(range.start)
            } else {
                range.start
            };
            let to = if step == ranges.len() {
                first
            } else {
                range.end.saturating_add(1)
            };
            if step == ranges.len() && from >= to {
                break;
            }
            let node = first_target(&state, range.start, &range.replicas, level)?;
            let end = if to >= SLOTS {
                Bound::Unbounded
            } else {
                Bound::Excluded((to, Bytes::new()))
            };
            let request = PeerRequest::Range {
                start: Bound::Included((from, Bytes::new())),
                end,
                live_only: true,
                limit: RANDOM_PICK_WINDOW,
            };
            let id = &state.member(node).node_id;
            let timeout = self.timeout.saturating_mul(RANGE_TIMEOUT_FACTOR);
            let records = match self.call_one_within(&state, node, request, timeout).await {
                Ok(PeerResponse::Range(records)) => records,
                Ok(PeerResponse::Failed(f)) => return Err(read_failed(level, id, &f.message)),
                Ok(_) => return Err(read_failed(level, id, "unexpected answer")),
                Err(reason) => return Err(read_failed(level, id, &reason)),
            };
            let Some(slot) = records.first().map(|r| r.slot) else {
                continue;
            };
            let candidates: Vec<Bytes> = records
                .into_iter()
                .take_while(|r| r.slot == slot)
                .map(|r| r.key)
                .collect();
            let pick = self.inner.rng.below(candidates.len() as u64) as usize;
            return Ok(Response::Key(candidates.into_iter().nth(pick)));
        }
        Ok(Response::Key(None))
    }

    /// Deletes every key: all nodes must be up; each writes tombstones at one version over
    /// every key it stores older than it. A write versioned after the flush survives. Cost: a
    /// full read of every node's keyspace plus a tombstone per key.
    pub(crate) async fn flush_all(self: &Arc<Self>) -> Result<Response, ClusterError> {
        let state = self.ring_state();
        let members = &state.view.members;
        let alive = members.iter().filter(|m| m.alive).count();
        if alive < members.len() {
            return Err(ClusterError::Unavailable {
                level: Level::All,
                required: members.len(),
                alive,
            });
        }
        let version = self.inner.hlc.next_version();
        let mut tasks = tokio::task::JoinSet::new();
        for node in 0..members.len() {
            let shared = Arc::clone(self);
            let state = Arc::clone(&state);
            tasks.spawn(async move {
                let request = PeerRequest::Truncate {
                    hlc: version.hlc,
                    node: version.node,
                };
                let id = state.member(node).node_id.clone();
                let timeout = shared.timeout.saturating_mul(TRUNCATE_TIMEOUT_FACTOR);
                (
                    id,
                    shared.call_one_within(&state, node, request, timeout).await,
                )
            });
        }
        let mut errors = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(PeerResponse::Done))) => {}
                Ok((id, Ok(PeerResponse::Failed(f)))) => {
                    errors.push(format!("{id}: {}", f.message))
                }
                Ok((id, Ok(_))) => errors.push(format!("{id}: unexpected answer")),
                Ok((id, Err(reason))) => errors.push(format!("{id}: {reason}")),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => errors.push("cancelled".into()),
            }
        }
        if errors.is_empty() {
            Ok(Response::Done)
        } else {
            Err(ClusterError::QuorumFailed {
                level: Level::All,
                required: members.len(),
                answered: members.len() - errors.len(),
                errors,
            })
        }
    }
}

/// The replica a one-node walk asks for `slot` (this node first), after checking `level`.
fn first_target(
    state: &RingState,
    slot: u16,
    replicas: &[usize],
    level: Level,
) -> Result<usize, ClusterError> {
    let plan = Plan::new(state, slot, replicas, level, Operation::Read)?;
    plan.targets
        .first()
        .copied()
        .ok_or(ClusterError::NoReplicas { slot })
}

/// Live keys of one engine: exact up to [`EXACT_COUNT_BUDGET`] keys; beyond that, the count
/// of the slots walked so far scaled to all slots (slots hash uniformly unless hash tags pile
/// keys into a few). Cost: at most the budget's worth of keys read.
fn local_count_with_budget<S: Storage>(storage: &S) -> Result<Response, ClusterError> {
    let iter = storage.range(
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

/// Runs `f` off the runtime's threads when there is a runtime.
async fn run_blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ClusterError> + Send + 'static,
) -> Result<R, ClusterError> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    match runtime.spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ClusterError::ShuttingDown),
    }
}
