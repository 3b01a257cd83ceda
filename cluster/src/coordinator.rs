//! The coordinator: turns API requests into replica reads and writes at a consistency level.
//!
//! Owns [`Coordinator`]: every node runs one, accepts every request and coordinates it over
//! the replica set of each key's slot (DESIGN.md "Partitioning", "Consistency"). A cluster of
//! one ([`LocalCluster`]) is the same coordinator over a ring of one member whose transport
//! has no peers: there is no second single-node code path. Parts:
//!
//! - [`config`]: the node's settings, [`ClusterConfig`].
//! - [`ring_state`]: one consistent view + ring + topology, swapped on membership changes.
//! - [`level`] and [`plan`]: replicas a level needs, which to ask, the `Unavailable` check.
//! - `call`: sending one request to a plan's replicas and gathering enough answers; `local`:
//!   the short path when this node is a slot's only replica (a ring of one); `flush_group`:
//!   local writes sharing one flush of the engine's WAL buffer.
//! - [`replica`]: the replica side (local storage), shared by local and remote calls, and the
//!   transport's [`NodeHandler`].
//! - `read` and `write`: `Get`, unconditional and conditional `Write` (compare-and-set runs on
//!   the slot's leader under [`locks`]); `walk`: `SCAN` and `KRANGE`; `keyspace`: `DBSIZE`,
//!   `RANDOMKEY`, `FLUSHALL`; [`scan`]: cursors; [`random`]: the seeded RNG.
//!
//! Must never hold a lock across an `.await` other than the async key locks, never wait on a
//! node the failure detector believes down, and never know about RESP.

mod call;
pub mod config;
mod flush_group;
mod keyspace;
pub mod level;
mod local;
pub mod locks;
pub mod plan;
pub mod random;
mod range;
mod read;
pub mod replica;
pub mod ring_state;
pub mod scan;
#[cfg(test)]
mod tests;
mod walk;
mod write;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use ringkv_lsm::{Db, FsyncMode};

use crate::api::{Cluster, ClusterInfo, Consistency, Request, Response, Topology};
use crate::clock::Clock;
use crate::error::ClusterError;
use crate::hlc::Hlc;
use crate::node_id::node_number;
use crate::ring::Replication;
use crate::rpc::{PeerRequest, PeerResponse, Stamped};
use crate::storage::{key, Storage};
use crate::transport::{Peer, SharedRequest, Transport, TransportError, TransportStats};
use crate::view::View;

pub use self::config::ClusterConfig;
use self::flush_group::FlushGroups;
pub use self::keyspace::EXACT_COUNT_BUDGET;
use self::locks::KeyLocks;
use self::random::SeededRng;
pub use self::replica::{NodeHandler, WriteLeader};
use self::ring_state::{single_node_view, RingState};
use self::scan::{ScanTable, MAX_SCAN_HANDLES, MAX_SCAN_KEY_BYTES};

/// How long a request waits for replicas by default (Cassandra's write timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A transport for a cluster of one: there is never a peer to call.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

impl Transport for NoPeers {
    async fn call(
        &self,
        peer: Peer,
        _request: Stamped<PeerRequest>,
        _timeout: Duration,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        Err(TransportError::Connection {
            addr: peer.addr,
            reason: "a cluster of one has no peers".into(),
        })
    }

    async fn call_shared(
        &self,
        peer: Peer,
        _request: Arc<SharedRequest>,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        Err(TransportError::Connection {
            addr: peer.addr,
            reason: "a cluster of one has no peers".into(),
        })
    }

    /// Nothing to count: a cluster of one never calls.
    fn stats(&self) -> TransportStats {
        TransportStats::default()
    }
}

/// The coordinator of a node with peers reached over `T`, storing locally in `S`. Cheap to
/// clone; clones share everything. Runs on a Tokio runtime with timers enabled (requests wait
/// for replicas and for busy key locks with deadlines).
pub struct Coordinator<S: Storage = Db, T: Transport = NoPeers> {
    shared: Arc<Shared<S, T>>,
}

/// A cluster of one node: the coordinator over a ring of itself.
pub type LocalCluster<S = Db> = Coordinator<S, NoPeers>;

impl<S: Storage, T: Transport> Clone for Coordinator<S, T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The node's local side: its storage, clock and per-node tables. What a replica needs.
pub(crate) struct Inner<S> {
    pub(crate) storage: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hlc: Hlc,
    pub(crate) scans: Mutex<ScanTable>,
    pub(crate) rng: SeededRng,
    node_id: String,
    /// Whether a write may wait on an fsync (decides whether writes leave the runtime).
    pub(crate) writes_may_block: bool,
    /// Buffered writes waiting to share one flush of the storage.
    pub(crate) flushes: FlushGroups,
    shutting_down: AtomicBool,
}

impl<S> Inner<S> {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// What the coordinator's parts share.
pub(crate) struct Shared<S, T> {
    pub(crate) inner: Arc<Inner<S>>,
    transport: T,
    state: RwLock<Arc<RingState>>,
    replication: Replication,
    epoch: AtomicU64,
    /// Key locks of the writes this node leads (compare-and-set atomicity).
    pub(crate) locks: KeyLocks,
    timeout: Duration,
}

/// How a [`Coordinator`] over any [`Storage`] is set up.
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
    /// Opens the node's engine in `config.data_dir` and a cluster of one over it.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the engine cannot open (bad options, a directory locked
    /// by another process, corruption, I/O).
    pub fn open(config: ClusterConfig) -> Result<Self, ClusterError> {
        let (db, params) = open_storage(config)?;
        Self::with_storage(db, params)
    }
}

/// Opens the engine as `config` says, with the parameters of a coordinator over it.
///
/// # Errors
/// As [`LocalCluster::open`].
pub fn open_storage(config: ClusterConfig) -> Result<(Db, LocalParams), ClusterError> {
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
    Ok((
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

impl<S: Storage> LocalCluster<S> {
    /// A cluster of one over an already open `storage`, its clock started above every
    /// version the storage holds.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the storage cannot tell its highest version.
    pub fn with_storage(storage: S, params: LocalParams) -> Result<Self, ClusterError> {
        let view = single_node_view(
            &params.node_id,
            node_number(&params.node_id),
            params.client_addr,
        );
        let inner = Arc::new(Inner::new(storage, params)?);
        Ok(Coordinator::new(
            inner,
            NoPeers,
            Replication::simple(1),
            view,
            DEFAULT_REQUEST_TIMEOUT,
        ))
    }
}

impl<S: Storage> Inner<S> {
    /// The local side over `storage`. The clock starts above every version stored: the wall
    /// clock may have stepped back while the node was down, and a version below one it
    /// stored before would silently lose last-write-wins.
    fn new(storage: S, params: LocalParams) -> Result<Self, ClusterError> {
        let node = node_number(&params.node_id);
        let hlc = Hlc::starting_after(Arc::clone(&params.clock), node, storage.max_hlc()?);
        Ok(Inner {
            storage,
            hlc,
            clock: params.clock,
            scans: Mutex::new(ScanTable::new(MAX_SCAN_HANDLES, MAX_SCAN_KEY_BYTES)),
            rng: SeededRng::new(params.seed),
            node_id: params.node_id,
            writes_may_block: params.writes_may_block,
            flushes: FlushGroups::default(),
            shutting_down: AtomicBool::new(false),
        })
    }
}

/// The local side of a node before its coordinator exists: what the transport's handler
/// serves from while the node is being assembled.
pub struct LocalNode<S: Storage> {
    inner: Arc<Inner<S>>,
}

impl<S: Storage> LocalNode<S> {
    /// The local side over `storage`, its clock started above every version the storage
    /// holds.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the storage cannot tell its highest version.
    pub fn new(storage: S, params: LocalParams) -> Result<Self, ClusterError> {
        Ok(Self {
            inner: Arc::new(Inner::new(storage, params)?),
        })
    }

    /// Moves the node's clock past a peer's timestamp (one it gossiped), unless it is
    /// implausibly far ahead of the wall clock ([`replica::MAX_CLOCK_DRIFT_MS`]).
    pub fn observe_peer_clock(&self, remote: u64) {
        self.inner.observe_peer_clock(remote);
    }

    /// The local storage.
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// The node's hybrid logical clock.
    pub fn hlc(&self) -> &Hlc {
        &self.inner.hlc
    }

    /// The handler peers' requests go to (connect its leader once the coordinator exists).
    pub fn handler(&self) -> NodeHandler<S> {
        NodeHandler::new(Arc::clone(&self.inner))
    }

    /// The coordinator over this local side, calling peers over `transport`.
    pub fn coordinator<T: Transport>(
        &self,
        transport: T,
        replication: Replication,
        view: View,
        timeout: Duration,
    ) -> Coordinator<S, T> {
        Coordinator::new(
            Arc::clone(&self.inner),
            transport,
            replication,
            view,
            timeout,
        )
    }
}

impl<S: Storage, T: Transport> Coordinator<S, T> {
    fn new(
        inner: Arc<Inner<S>>,
        transport: T,
        replication: Replication,
        view: View,
        timeout: Duration,
    ) -> Self {
        let state = RingState::new(Arc::new(view), &replication, 1);
        Self {
            shared: Arc::new(Shared {
                inner,
                transport,
                state: RwLock::new(Arc::new(state)),
                replication,
                epoch: AtomicU64::new(1),
                locks: KeyLocks::new(),
                timeout,
            }),
        }
    }

    /// The local storage.
    pub fn storage(&self) -> &S {
        &self.shared.inner.storage
    }

    /// The node's hybrid logical clock.
    pub fn hlc(&self) -> &Hlc {
        &self.shared.inner.hlc
    }

    /// Moves the node's clock past a peer's timestamp (one it gossiped), unless it is
    /// implausibly far ahead of the wall clock ([`replica::MAX_CLOCK_DRIFT_MS`]).
    pub fn observe_peer_clock(&self, remote: u64) {
        self.shared.inner.observe_peer_clock(remote);
    }

    /// The transport to peers.
    pub fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// Takes a new membership view: requests from now on use its ring.
    pub fn set_view(&self, view: Arc<View>) {
        let epoch = self.shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let state = Arc::new(RingState::new(view, &self.shared.replication, epoch));
        *self.shared.state.write() = state;
    }

    /// The ring state requests use now.
    pub fn ring_state(&self) -> Arc<RingState> {
        self.shared.ring_state()
    }

    /// Refuses new requests with [`ClusterError::ShuttingDown`], then makes the storage durable
    /// and stops it (the engine flushes its memtable). Call once in-flight requests are done.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the final flush or sync fails.
    pub fn shutdown(&self) -> Result<(), ClusterError> {
        self.shared
            .inner
            .shutting_down
            .store(true, Ordering::Release);
        self.shared.inner.storage.shutdown()
    }

    /// This coordinator as the leader peers forward conditional writes to.
    pub fn as_leader(&self) -> Arc<dyn WriteLeader> {
        Arc::new(self.clone())
    }
}

impl<S: Storage, T: Transport> Shared<S, T> {
    pub(crate) fn ring_state(&self) -> Arc<RingState> {
        Arc::clone(&self.state.read())
    }
}

impl<S: Storage, T: Transport> WriteLeader for Coordinator<S, T> {
    fn lead(
        &self,
        writes: Vec<crate::api::Write>,
        consistency: Consistency,
    ) -> replica::BoxFuture<'_, Result<Vec<bool>, ClusterError>> {
        Box::pin(async move { self.shared.lead(writes, consistency).await })
    }
}

impl<S: Storage, T: Transport> Cluster for Coordinator<S, T> {
    async fn execute(
        &self,
        request: Request,
        consistency: Consistency,
    ) -> Result<Response, ClusterError> {
        let shared = &self.shared;
        if shared.inner.is_shutting_down() {
            return Err(ClusterError::ShuttingDown);
        }
        match request {
            Request::Get { keys } => shared.get(keys, consistency.read).await,
            Request::Write { writes } => shared.write(writes, consistency).await,
            Request::Scan { cursor, count } => shared.scan(cursor, count, consistency.read).await,
            Request::Range {
                start,
                end,
                offset,
                limit,
                with_values,
            } => {
                let query = range::RangeQuery {
                    start,
                    end,
                    offset,
                    limit,
                    with_values,
                };
                shared.range(query, consistency.read).await
            }
            Request::CountKeys => shared.count_keys(consistency.read).await,
            Request::CountKeysInSlot { slot } => {
                shared.count_keys_in_slot(slot, consistency.read).await
            }
            Request::RandomKey => shared.random_key(consistency.read).await,
            Request::FlushAll => shared.flush_all().await,
        }
    }

    fn now_ms(&self) -> u64 {
        self.shared.inner.clock.now_ms()
    }

    fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.shared.ring_state().topology)
    }

    fn info(&self) -> ClusterInfo {
        let state = self.shared.ring_state();
        ClusterInfo {
            node_id: self.shared.inner.node_id.clone(),
            replication_factor: self.shared.replication.total(),
            nodes: state.view.members.len(),
            engine: self.shared.inner.storage.stats(),
            transport: self.shared.transport.stats(),
        }
    }
}
