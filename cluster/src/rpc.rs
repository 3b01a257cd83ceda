//! What nodes ask of each other: the messages of the internal protocol, as plain data.
//!
//! Owns [`PeerRequest`], [`PeerResponse`] and [`Stamped`] (a message with the sender's HLC
//! timestamp, so every node's clock moves past every version it hears of), and through
//! `failure` how an error crosses between nodes ([`RemoteFailure`]). The coordinator
//! builds requests, a replica's handler answers them against its local storage, the
//! [`transport`](crate::transport) carries them and [`wire`](crate::wire) encodes them. Must
//! never encode bytes, open sockets or decide a consistency level: it is vocabulary.

use std::ops::Bound;

use bytes::Bytes;
use ringkv_lsm::Record;

use crate::api::{Consistency, Write};
use crate::storage::SlotRecord;

mod failure;

#[cfg(test)]
pub(crate) use failure::every_error;
pub use failure::{RemoteFailure, RemoteFailureKind, OPERATIONS};

/// A message with the sender's hybrid-logical-clock timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped<T> {
    /// The sender's [`Hlc::now`](crate::hlc::Hlc::now) when it sent the message.
    pub hlc: u64,
    /// The message.
    pub body: T,
}

/// A position in the slot-ordered keyspace, owned (for messages).
pub type SlotPosition = (u16, Bytes);

/// A request from a coordinator to a replica (or, for [`PeerRequest::Coordinate`], to the node
/// that leads a slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerRequest {
    /// The winning record of each key (tombstones and expired values included, so the
    /// coordinator resolves by version). Answer: [`PeerResponse::Records`], in order.
    Read {
        /// `(slot, user key)` pairs.
        keys: Vec<SlotPosition>,
    },
    /// Store these records (the engine keeps each key's highest version, whatever the order
    /// of arrival). Answer: [`PeerResponse::Applied`] once durable as the replica's fsync mode
    /// promises.
    Apply {
        /// The records, written as one atomic batch.
        records: Vec<SlotRecord>,
    },
    /// Records between two positions in `(slot, key)` order, at most `limit` of them. Answer:
    /// [`PeerResponse::Records`] is not used here: [`PeerResponse::Range`].
    Range {
        /// Lower bound.
        start: Bound<SlotPosition>,
        /// Upper bound.
        end: Bound<SlotPosition>,
        /// Only live values (true) or every winning record, tombstones included (false).
        live_only: bool,
        /// Most records to return.
        limit: usize,
    },
    /// The smallest `keep` live keys (all when `None`) in byte order between `start` and
    /// `end`, among the slots of `spans` (inclusive slot runs): one node's share of a
    /// `KRANGE` across slots. Answer: [`PeerResponse::Range`], in byte order.
    KeyRange {
        /// Inclusive runs of slots to read.
        spans: Vec<(u16, u16)>,
        /// Lower bound on user keys.
        start: Bound<Bytes>,
        /// Upper bound on user keys.
        end: Bound<Bytes>,
        /// Most keys wanted.
        keep: Option<usize>,
        /// Whether values are wanted (otherwise each record carries an empty value).
        with_values: bool,
    },
    /// Live keys in each slot. Answer: [`PeerResponse::Counts`], in order.
    CountSlots {
        /// The slots.
        slots: Vec<u16>,
    },
    /// Coordinate these writes here: the receiver leads their slot, checks their conditions
    /// under its key locks and writes at `consistency`. How compare-and-set writes (`SET NX`,
    /// `INCR`, ...) stay atomic when clients talk to different nodes. Answer:
    /// [`PeerResponse::Written`].
    Coordinate {
        /// The writes, all in slots this node leads.
        writes: Vec<Write>,
        /// The levels of the client's connection.
        consistency: Consistency,
    },
    /// Delete every user key stored here whose version is below `hlc` (`FLUSHALL`): tombstones
    /// at version `(hlc, node)`. Answer: [`PeerResponse::Done`].
    Truncate {
        /// The flush's version timestamp.
        hlc: u64,
        /// The coordinator's node number, the version's tie-break.
        node: u32,
    },
}

/// A replica's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerResponse {
    /// One winning record (or none) per key asked.
    Records(Vec<Option<Record>>),
    /// The records are stored.
    Applied,
    /// Records of a range, in order; fewer than `limit` means the range is exhausted.
    Range(Vec<SlotRecord>),
    /// One count per slot asked.
    Counts(Vec<u64>),
    /// One flag per coordinated write (false: its condition did not hold).
    Written(Vec<bool>),
    /// Done.
    Done,
    /// The request failed on the replica: a storage error, shutting down, a level the leader
    /// could not meet, with enough of the error to rebuild it.
    Failed(RemoteFailure),
}

impl PeerRequest {
    /// A short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            PeerRequest::Read { .. } => "read",
            PeerRequest::Apply { .. } => "apply",
            PeerRequest::Range { .. } => "range",
            PeerRequest::KeyRange { .. } => "key_range",
            PeerRequest::CountSlots { .. } => "count_slots",
            PeerRequest::Coordinate { .. } => "coordinate",
            PeerRequest::Truncate { .. } => "truncate",
        }
    }
}
