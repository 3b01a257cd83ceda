//! The coordinator: turns API requests into replica reads and writes at a consistency level.
//!
//! Owns [`LocalCluster`], the cluster of one node with replication factor 1 over the local
//! engine: every slot's replica set is this node. It is the path the multi-node cluster
//! extends (the level check, HLC versions, conditional writes, slot-ordered scans and ranges
//! are the same); there is no second single-node code path. Parts:
//!
//! - [`config`]: the node's settings, [`ClusterConfig`].
//! - [`level`]: replicas a level needs, and the `Unavailable` check.
//! - [`locks`]: striped key locks for compare-and-set.
//! - `write`: `Get` and `Write`; `scan`: `SCAN` cursors ([`scan::ScanTable`]); `range`:
//!   `KRANGE`; `keyspace`: `DBSIZE`, `RANDOMKEY`, `FLUSHALL`; [`random`]: the seeded RNG.
//!
//! The engine is synchronous and [`Cluster::execute`] is async. Point reads and writes that
//! cannot wait on an fsync take microseconds and run on the caller's task (with one runtime
//! worker, a hop to another thread would cost more than the work). Writes that fsync
//! (`FsyncMode::Always`) and whole-keyspace walks run under `tokio::task::spawn_blocking`, so
//! they never stall the runtime's other connections. Must never hold a lock across an
//! `.await`, and never know about RESP.

pub mod config;
mod keyspace;
pub mod level;
pub mod locks;
pub mod random;
mod range;
pub mod scan;
#[cfg(test)]
mod tests;
mod write;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use ringkv_lsm::{Db, FsyncMode};

use crate::api::{
    Cluster, ClusterInfo, Consistency, Request, Response, SlotRange, Topology, TopologyNode,
};
use crate::clock::Clock;
use crate::error::ClusterError;
use crate::hlc::Hlc;
use crate::node_id::node_number;
use crate::slot::SLOTS;
use crate::storage::{key, Storage};

pub use self::config::ClusterConfig;
pub use self::keyspace::EXACT_COUNT_BUDGET;
use self::level::{check_available, Operation};
use self::locks::KeyLocks;
use self::random::SeededRng;
use self::range::RangeQuery;
use self::scan::{ScanTable, MAX_SCAN_HANDLES, MAX_SCAN_KEY_BYTES};

/// Replication factor of a cluster of one.
const REPLICATION_FACTOR: usize = 1;
/// `SCAN` steps asking for more keys than this run off the runtime's threads.
const INLINE_SCAN_COUNT: usize = 1_000;

/// A cluster of one node with replication factor 1, over a [`Storage`] (the `ringkv-lsm`
/// engine unless a test supplies another). Cheap to clone; clones share everything.
pub struct LocalCluster<S: Storage = Db> {
    inner: Arc<Inner<S>>,
}

impl<S: Storage> Clone for LocalCluster<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// What the coordinator's parts share.
pub(crate) struct Inner<S> {
    pub(crate) storage: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hlc: Hlc,
    pub(crate) locks: KeyLocks,
    pub(crate) scans: Mutex<ScanTable>,
    pub(crate) rng: SeededRng,
    node_id: String,
    /// The ring of this one node, for cluster-aware clients.
    topology: Arc<Topology>,
    /// Whether a write may wait on an fsync (decides whether writes leave the runtime).
    writes_may_block: bool,
    shutting_down: AtomicBool,
}

/// How a [`LocalCluster`] over any [`Storage`] is set up.
#[derive(Clone)]
pub struct LocalParams {
    /// The node's id.
    pub node_id: String,
    /// The wall clock; the storage must read expiry from the same one.
    pub clock: Arc<dyn Clock>,
    /// Whether the storage's writes may block on an fsync.
    pub writes_may_block: bool,
    /// Seed of the random choices.
    pub seed: u64,
    /// Where Redis clients reach this node.
    pub client_addr: SocketAddr,
}

impl LocalCluster<Db> {
    /// Opens the node's engine in `config.data_dir` and the coordinator over it.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the engine cannot open (bad options, a directory locked
    /// by another process, corruption, I/O).
    pub fn open(config: ClusterConfig) -> Result<Self, ClusterError> {
        let clock = config.clock;
        let engine_clock = Arc::clone(&clock);
        let mut engine = config
            .engine
            .with_now_ms(Arc::new(move || engine_clock.now_ms()));
        engine.max_key_bytes = engine.max_key_bytes.saturating_add(key::PREFIX_LEN);
        let writes_may_block = matches!(engine.fsync, FsyncMode::Always);
        let db = Db::open(&config.data_dir, engine)?;
        let seed = config.seed.unwrap_or_else(|| {
            clock.now_ms() ^ u64::from(node_number(&config.node_id)).rotate_left(32)
        });
        Ok(Self::with_storage(
            db,
            LocalParams {
                node_id: config.node_id,
                clock,
                writes_may_block,
                seed,
                client_addr: config.client_addr,
            },
        ))
    }
}

impl<S: Storage> LocalCluster<S> {
    /// The coordinator over an already open `storage`.
    pub fn with_storage(storage: S, params: LocalParams) -> Self {
        let node = node_number(&params.node_id);
        Self {
            inner: Arc::new(Inner {
                storage,
                hlc: Hlc::new(Arc::clone(&params.clock), node),
                clock: params.clock,
                locks: KeyLocks::new(),
                scans: Mutex::new(ScanTable::new(MAX_SCAN_HANDLES, MAX_SCAN_KEY_BYTES)),
                rng: SeededRng::new(params.seed),
                topology: Arc::new(single_node_topology(&params.node_id, params.client_addr)),
                node_id: params.node_id,
                writes_may_block: params.writes_may_block,
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// The local storage.
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// The node's hybrid logical clock.
    pub fn hlc(&self) -> &Hlc {
        &self.inner.hlc
    }

    /// Refuses new requests with [`ClusterError::ShuttingDown`], then makes the storage durable
    /// and stops it (the engine flushes its memtable). Call once in-flight requests are done.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the final flush or sync fails.
    pub fn shutdown(&self) -> Result<(), ClusterError> {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.storage.shutdown()
    }

    /// Executes `request` on the calling thread, without the level check. The async
    /// [`Cluster::execute`] decides where this runs.
    fn run(inner: &Inner<S>, request: Request) -> Result<Response, ClusterError> {
        match request {
            Request::Get { keys } => inner.get(&keys),
            Request::Write { writes } => inner.write(writes),
            Request::Scan { cursor, count } => inner.scan(cursor, count),
            Request::Range {
                start,
                end,
                offset,
                limit,
                with_values,
            } => inner.range(RangeQuery {
                start,
                end,
                offset,
                limit,
                with_values,
            }),
            Request::CountKeys => inner.count_keys(),
            Request::CountKeysInSlot { slot } if slot >= SLOTS => Ok(Response::Count(0)),
            Request::CountKeysInSlot { slot } => {
                inner.storage.count_in_slot(slot).map(Response::Count)
            }
            Request::RandomKey => inner.random_key(),
            Request::FlushAll => inner.flush_all(),
        }
    }

    /// Whether `request` may take long enough (an fsync, a keyspace walk) that it must not run
    /// on a runtime worker.
    fn may_block(&self, request: &Request) -> bool {
        match request {
            Request::Get { .. } | Request::RandomKey => false,
            Request::Write { .. } => self.inner.writes_may_block,
            Request::Scan { count, .. } => *count > INLINE_SCAN_COUNT,
            Request::Range { start, end, .. } => range::single_slot(start, end).is_none(),
            Request::CountKeys | Request::CountKeysInSlot { .. } | Request::FlushAll => true,
        }
    }
}

/// Whether a request reads or writes, for its level.
fn operation(request: &Request) -> Operation {
    match request {
        Request::Write { .. } | Request::FlushAll => Operation::Write,
        Request::Get { .. }
        | Request::Scan { .. }
        | Request::Range { .. }
        | Request::CountKeys
        | Request::CountKeysInSlot { .. }
        | Request::RandomKey => Operation::Read,
    }
}

impl<S: Storage> Cluster for LocalCluster<S> {
    async fn execute(
        &self,
        request: Request,
        consistency: Consistency,
    ) -> Result<Response, ClusterError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ClusterError::ShuttingDown);
        }
        let op = operation(&request);
        let level = match op {
            Operation::Read => consistency.read,
            Operation::Write => consistency.write,
        };
        // This node is the one replica of every slot, and it is alive.
        check_available(level, op, REPLICATION_FACTOR, 1)?;
        if self.may_block(&request) {
            // Outside a runtime there is nothing to stall, and the request runs here below.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let inner = Arc::clone(&self.inner);
                return match runtime
                    .spawn_blocking(move || Self::run(&inner, request))
                    .await
                {
                    Ok(result) => result,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Cancelled: only happens when the runtime is shutting down.
                    Err(_) => Err(ClusterError::ShuttingDown),
                };
            }
        }
        Self::run(&self.inner, request)
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.inner.topology)
    }

    fn info(&self) -> ClusterInfo {
        ClusterInfo {
            node_id: self.inner.node_id.clone(),
            replication_factor: REPLICATION_FACTOR,
            nodes: 1,
            engine: self.inner.storage.stats(),
        }
    }
}

/// The ring of a cluster of one: this node holds every slot.
fn single_node_topology(node_id: &str, client_addr: SocketAddr) -> Topology {
    Topology {
        nodes: vec![TopologyNode {
            id: node_id.to_string(),
            client_addr,
            bus_port: client_addr.port().wrapping_add(10_000),
            dc: "dc1".to_string(),
            rack: "rack1".to_string(),
            alive: true,
            status: "normal",
            load_bytes: 0,
            primary_slots: u32::from(SLOTS),
            ownership: 1.0,
        }],
        myself: 0,
        ranges: vec![SlotRange {
            start: 0,
            end: SLOTS - 1,
            replicas: vec![0],
        }],
        replication_factor: REPLICATION_FACTOR,
        epoch: 1,
    }
}
