//! The narrow API between the client front end and the cluster: plain data in, plain data out.
//!
//! Owns [`Request`], [`Response`], [`Consistency`] / [`Level`], [`StoredValue`], [`Write`],
//! [`Condition`], [`ScanCursor`] and the [`Cluster`] trait. `ringkv-resp` builds requests from
//! Redis commands and turns responses into replies; it never sees slots, replicas or the
//! engine. Must never mention RESP or a Redis command: Redis semantics (INCR, APPEND, SET NX,
//! ...) are computed by the front end from `Get` and conditional `Write`s.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

pub use ringkv_lsm::Version;

use crate::error::ClusterError;

/// A consistency level, as Cassandra defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of the replicas: `replication_factor / 2 + 1`.
    Quorum,
    /// Every replica.
    All,
    /// Writes only: one replica, or a stored hint for a down replica.
    Any,
    /// One replica in the coordinator's datacenter.
    LocalOne,
    /// A majority of the replicas in the coordinator's datacenter.
    LocalQuorum,
    /// A majority in every datacenter.
    EachQuorum,
}

impl Level {
    /// Every level, in the order `CONSISTENCY` lists them.
    pub const ALL: [Level; 9] = [
        Level::One,
        Level::Two,
        Level::Three,
        Level::Quorum,
        Level::All,
        Level::Any,
        Level::LocalOne,
        Level::LocalQuorum,
        Level::EachQuorum,
    ];

    /// The level's name as users type it (`QUORUM`, `LOCAL_ONE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Level::One => "ONE",
            Level::Two => "TWO",
            Level::Three => "THREE",
            Level::Quorum => "QUORUM",
            Level::All => "ALL",
            Level::Any => "ANY",
            Level::LocalOne => "LOCAL_ONE",
            Level::LocalQuorum => "LOCAL_QUORUM",
            Level::EachQuorum => "EACH_QUORUM",
        }
    }

    /// Parses a level name, case-insensitively.
    pub fn parse(name: &[u8]) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The levels a connection reads and writes at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consistency {
    /// Level for reads.
    pub read: Level,
    /// Level for writes.
    pub write: Level,
}

impl Default for Consistency {
    fn default() -> Self {
        Self {
            read: Level::Quorum,
            write: Level::Quorum,
        }
    }
}

/// A live value as stored: what `Get` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredValue {
    /// The value bytes.
    pub value: Bytes,
    /// Unix ms at which it expires; 0 = never.
    pub expire_at_ms: u64,
    /// The version that wrote it: pass it to [`Condition::IfVersion`] for a read-modify-write.
    pub version: Version,
}

/// A condition on a write, checked atomically with it on the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Write unconditionally.
    Always,
    /// Write only if the key's current live value has this version (`None`: only if the key
    /// is absent, deleted or expired). How `SET NX`, `INCR`, `APPEND`, `RENAME` are built.
    IfVersion(Option<Version>),
}

/// One key to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The user key (the cluster adds the slot).
    pub key: Bytes,
    /// The value, or `None` to delete the key.
    pub value: Option<Bytes>,
    /// Unix ms at which the value expires; 0 = never. Ignored for deletes.
    pub expire_at_ms: u64,
    /// When to apply it.
    pub condition: Condition,
}

/// Where a `SCAN` resumes. Redis clients treat cursors as integers, so it is one: the slot in
/// the high bits and a handle the coordinator may remember the last key under; a handle it no
/// longer knows (another node, a restart) resumes from the start of the slot, which may
/// repeat keys but never skips one present throughout — Redis's own guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScanCursor(pub u64);

/// What the front end asks of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The live values of these keys (read at the read level). Answer: [`Response::Values`],
    /// in the same order.
    Get {
        /// Keys to read.
        keys: Vec<Bytes>,
    },
    /// Writes at the write level. Each conditional write is checked and applied atomically
    /// with respect to other writes of the same key through this coordinator. Answer:
    /// [`Response::Written`], one flag per write (false: its condition did not hold).
    Write {
        /// The writes, applied in order.
        writes: Vec<Write>,
    },
    /// The next keys of a `SCAN`. Answer: [`Response::Scanned`].
    Scan {
        /// Where to resume (0 starts).
        cursor: ScanCursor,
        /// About how many keys to return (Redis's `COUNT`).
        count: usize,
    },
    /// Live keys in `[start, end]` by byte order, as `KRANGE`. When both bounds share a hash
    /// tag the cluster reads one slot; otherwise it merges every slot's ordered stream.
    /// Answer: [`Response::Entries`].
    Range {
        /// Lower bound.
        start: Bound<Bytes>,
        /// Upper bound.
        end: Bound<Bytes>,
        /// Entries to skip.
        offset: usize,
        /// Most entries to return (`None`: all).
        limit: Option<usize>,
        /// Whether values are wanted.
        with_values: bool,
    },
    /// Number of live keys (`DBSIZE`; an estimate is allowed, like Redis Cluster's). Answer:
    /// [`Response::Count`].
    CountKeys,
    /// Number of live keys in one slot. Answer: [`Response::Count`].
    CountKeysInSlot {
        /// The slot.
        slot: u16,
    },
    /// A random live key, or none. Answer: [`Response::Key`].
    RandomKey,
    /// Deletes every key. Answer: [`Response::Done`].
    FlushAll,
}

/// What the cluster answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// One entry per requested key.
    Values(Vec<Option<StoredValue>>),
    /// One flag per write.
    Written(Vec<bool>),
    /// Keys of a `SCAN` step and where to resume (`ScanCursor(0)`: done).
    Scanned {
        /// The keys.
        keys: Vec<Bytes>,
        /// The next cursor.
        next: ScanCursor,
    },
    /// Ordered entries of a range read (values empty when not asked for).
    Entries(Vec<(Bytes, Option<StoredValue>)>),
    /// A count.
    Count(u64),
    /// A key or none.
    Key(Option<Bytes>),
    /// Done.
    Done,
}

/// The cluster as the front end sees it.
pub trait Cluster: Send + Sync + 'static {
    /// Executes one request at the given consistency.
    ///
    /// # Errors
    /// [`ClusterError`]: a level that cannot be met, a timeout, a storage failure.
    fn execute(
        &self,
        request: Request,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Response, ClusterError>> + Send;

    /// The cluster clock's unix milliseconds, for TTL arithmetic (`EX`, `TTL`).
    fn now_ms(&self) -> u64;

    /// Facts for `INFO` and `CLUSTER INFO`: node id, replication factor, key count estimate,
    /// engine figures.
    fn info(&self) -> ClusterInfo;

    /// The ring as this node sees it now: members and each slot range's replicas, for
    /// `CLUSTER SLOTS|SHARDS|NODES|INFO`, `INFO cluster` and `ringkv status`.
    fn topology(&self) -> Arc<Topology>;
}

/// The ring as one node sees it: plain data for cluster-aware clients and operators.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// Every known node, sorted by id.
    pub nodes: Vec<TopologyNode>,
    /// Index of the answering node in `nodes`.
    pub myself: usize,
    /// Slot ranges in slot order, covering `0..16384` without gaps when the ring has nodes;
    /// adjacent slots with the same replicas are merged into one range.
    pub ranges: Vec<SlotRange>,
    /// Replicas per slot (all datacenters together).
    pub replication_factor: usize,
    /// Grows whenever this node's view of the ring changes (Redis's `cluster_current_epoch`).
    pub epoch: u64,
}

/// One node of a [`Topology`].
#[derive(Clone, Debug, PartialEq)]
pub struct TopologyNode {
    /// The node id.
    pub id: String,
    /// Where Redis clients reach it.
    pub client_addr: SocketAddr,
    /// Its bus (internal protocol and gossip) port.
    pub bus_port: u16,
    /// Datacenter.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// Whether the failure detector believes it up.
    pub alive: bool,
    /// Its ring status (`normal`, `joining`, `leaving`, `left`).
    pub status: &'static str,
    /// Bytes of data on its disk, as last published (0 when unknown).
    pub load_bytes: u64,
    /// Slots whose first replica it is.
    pub primary_slots: u32,
    /// Share of all slots it holds a replica of, 0.0..=1.0 (`nodetool status`'s "Owns
    /// (effective)": with replication factor 3 on 3 nodes, 1.0 each).
    pub ownership: f64,
}

/// A run of slots with the same replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot, inclusive.
    pub end: u16,
    /// Indices into [`Topology::nodes`]: the replicas in ring order, the first one the
    /// slot's owner ("master" to Redis Cluster clients).
    pub replicas: Vec<usize>,
}

/// Figures the front end shows in `INFO`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterInfo {
    /// This node's id.
    pub node_id: String,
    /// Replication factor.
    pub replication_factor: usize,
    /// Nodes in the ring.
    pub nodes: usize,
    /// The local engine's figures.
    pub engine: ringkv_lsm::Stats,
    /// The internal transport's counters (calls to peers, timeouts, connections, refusals).
    pub transport: crate::transport::TransportStats,
}
