//! The cluster's error type.
//!
//! Owns [`ClusterError`]. Every variant names its parts (which level, how many replicas
//! answered, how many were needed) so the front end can print a clear sentence; the mapping
//! to Redis error replies lives in `ringkv-resp`, never here.

use crate::api::Level;

/// Everything a cluster request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Not enough replicas are alive to even try the level (Cassandra's `UnavailableException`).
    #[error("cannot achieve consistency level {level}: {required} replica(s) required but only {alive} alive")]
    Unavailable {
        /// The level asked for.
        level: Level,
        /// Replicas the level needs.
        required: usize,
        /// Replicas believed alive.
        alive: usize,
    },
    /// Replicas were asked but too few answered in time or without error.
    #[error("consistency level {level} not met: {answered} of {required} required replica(s) answered{}", format_errors(.errors))]
    QuorumFailed {
        /// The level asked for.
        level: Level,
        /// Replicas the level needs.
        required: usize,
        /// Replicas that answered successfully.
        answered: usize,
        /// What the others said.
        errors: Vec<String>,
    },
    /// A level that makes no sense for the request (`ANY` for a read).
    #[error("consistency level {level} is not supported for {operation}")]
    UnsupportedLevel {
        /// The level asked for.
        level: Level,
        /// "reads" or "writes".
        operation: &'static str,
    },
    /// The local storage engine failed.
    #[error("storage error: {0}")]
    Storage(#[from] ringkv_lsm::Error),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A record of a system keyspace (the node's ring identity, ...) cannot be decoded or
    /// encoded.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What the record is ("local ring state").
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A request that must be atomic (conditional writes: `MSETNX`, `RENAME`, `COPY`) spans
    /// several slots of a multi-node ring, as Redis Cluster refuses it.
    #[error("keys in request don't hash to the same slot")]
    CrossSlot,
    /// A peer (a forwarded conditional write's leader) failed with an error that cannot
    /// cross the wire as its own variant (an engine I/O error, a corrupt record): the peer's
    /// own sentence, which displays exactly as its error did. Errors made of plain data come
    /// back as their own variant instead ([`RemoteFailure::into_error`]).
    ///
    /// [`RemoteFailure::into_error`]: crate::rpc::RemoteFailure::into_error
    #[error("{0}")]
    Forwarded(String),
    /// A write waited for its keys' locks on their leader longer than the bound
    /// (`lock_wait`: a quarter of the request timeout) and was not applied: another write to
    /// the key, or to one sharing its lock stripe, held it. Safe to retry.
    #[error("write not applied: another write held this key's lock (or one it shares) for {waited_ms} ms")]
    KeyBusy {
        /// How long the write waited.
        waited_ms: u64,
    },
    /// The ring has no node owning the slot yet (the cluster is still forming).
    #[error("the ring has no replicas for slot {slot} yet")]
    NoReplicas {
        /// The slot.
        slot: u16,
    },
}

fn format_errors(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}
