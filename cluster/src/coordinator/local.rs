//! The short path for requests this node alone serves: slots whose only replica is here (every
//! slot on a ring of one; RF 1 slots on larger rings).
//!
//! Owns [`Shared::read_local`] and [`Shared::apply_local`]. The general path (group by replica
//! set, plan, gather, resolve) costs a dozen allocations and more instructions than the engine
//! lookup itself, for an answer that can only come from our own storage; this path calls the
//! engine directly. Must give exactly the answers and errors the general path gives for the
//! same request: the level is checked as `Plan::new` checks it over a replica set of one, and
//! storage failures become the same `QuorumFailed`.

use bytes::Bytes;
use ringkv_lsm::Record;

use crate::api::Level;
use crate::coordinator::level::{check_available, Operation};
use crate::coordinator::replica::MAX_INLINE_READ_KEYS;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::slot::key_slot;
use crate::storage::{SlotRecord, Storage};
use crate::transport::Transport;

impl<S: Storage, T: Transport> Shared<S, T> {
    /// The winning record of each key, read here, when every key's slot has this node as its
    /// only replica; `None` when some key needs another replica (or the read is large).
    pub(crate) fn read_local(
        &self,
        state: &RingState,
        keys: &[Bytes],
        level: Level,
    ) -> Option<Result<Vec<Option<Record>>, ClusterError>> {
        // Larger reads take the general path, which moves them off the runtime's threads.
        if keys.len() > MAX_INLINE_READ_KEYS || !local_alive(state) {
            return None;
        }
        let read = match keys {
            [key] => {
                let slot = key_slot(key);
                if !only_here(state, slot) {
                    return None;
                }
                self.checked(state, level, Operation::Read, || {
                    self.inner.storage.get(slot, key).map(|r| vec![r])
                })
            }
            _ => {
                let mut slotted = Vec::with_capacity(keys.len());
                for key in keys {
                    let slot = key_slot(key);
                    if !only_here(state, slot) {
                        return None;
                    }
                    slotted.push((slot, key.clone()));
                }
                self.checked(state, level, Operation::Read, || {
                    self.inner.storage.get_many(&slotted)
                })
            }
        };
        Some(read)
    }

    /// Stores `records` here when every record's slot has this node as its only replica and
    /// the write cannot block on an fsync; gives the records back otherwise.
    pub(crate) async fn apply_local(
        &self,
        state: &RingState,
        records: Vec<SlotRecord>,
        level: Level,
    ) -> Result<Result<(), ClusterError>, Vec<SlotRecord>> {
        let inline = local_alive(state)
            && records.iter().all(|r| only_here(state, r.slot))
            // An fsync must not stall the runtime: such writes take the general path.
            && !self.inner.writes_may_block;
        if !inline {
            return Err(records);
        }
        let required = match check_available(level, Operation::Write, 1, 1) {
            Ok(required) => required,
            Err(e) => return Ok(Err(e)),
        };
        // Our own fresh versions: nothing for the clock to observe, unlike a peer's apply.
        let storage = &self.inner.storage;
        let applied = match storage.write_buffered(records) {
            Ok(()) => self.inner.flushes.flush(storage).await,
            Err(e) => Err(e),
        };
        Ok(applied.map_err(|e| local_failure(state, level, required, e)))
    }

    /// Runs `serve` if `level` can be met by this node alone, with the general path's errors.
    fn checked<R>(
        &self,
        state: &RingState,
        level: Level,
        op: Operation,
        serve: impl FnOnce() -> Result<R, ClusterError>,
    ) -> Result<R, ClusterError> {
        let required = check_available(level, op, 1, 1)?;
        serve().map_err(|e| local_failure(state, level, required, e))
    }
}

/// A local storage failure as the general path reports it: the engine's own error for a key or
/// value over its limits, otherwise the level not met, naming this node's error.
fn local_failure(
    state: &RingState,
    level: Level,
    required: usize,
    e: ClusterError,
) -> ClusterError {
    if is_limit_error(&e) {
        return e;
    }
    ClusterError::QuorumFailed {
        level,
        required,
        answered: 0,
        errors: vec![format!("{}: {e}", state.view.local().node_id)],
    }
}

/// Whether `slot`'s replica set is this node alone.
fn only_here(state: &RingState, slot: u16) -> bool {
    matches!(state.ring.replicas(slot), [only] if state.is_local(*only))
}

/// Whether the view counts this node alive (a plan leaves out replicas it does not).
fn local_alive(state: &RingState) -> bool {
    state.view.local().alive
}

/// Whether `error` is the engine refusing a key or value over its limits: every replica would
/// refuse it the same way, so it is reported in the engine's words, not as a level failure.
pub(crate) fn is_limit_error(error: &ClusterError) -> bool {
    matches!(
        error,
        ClusterError::Storage(
            ringkv_lsm::Error::KeyTooLarge { .. } | ringkv_lsm::Error::ValueTooLarge { .. }
        )
    )
}
