//! A running cluster node: storage, transport, membership and coordinator wired together.
//!
//! Owns [`NodeConfig`] and [`ClusterNode`]. Starting a node opens its engine, reads its ring
//! identity from the system keyspace (tokens and generation; a first start chooses tokens,
//! from the ring it sees after a short wait for gossip, and stores them), binds the internal
//! transport on the bus port (TCP) and gossips on the same port (UDP), then keeps the
//! coordinator's ring in step with every membership view. Before it serves anyone, its clock
//! is above every version it stored (the coordinator sees to that) and every clock its peers
//! gossip (it waits, up to the join wait, to hear one); afterwards it keeps publishing its
//! clock and following theirs. Must never interpret client commands and never choose tokens
//! again for a node that has them.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringkv_lsm::Db;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::coordinator::{open_storage, ClusterConfig, Coordinator, LocalNode, NodeHandler};
use crate::error::ClusterError;
use crate::membership::{FailureConfig, Membership, MembershipConfig, MembershipError};
use crate::node_id::node_number;
use crate::ring::{allocate_tokens, Replication};
use crate::storage::system::{load_local_state, store_local_state, LocalState};
use crate::transport::tcp::{TcpConfig, TcpTransport};
use crate::view::{Member, NodeStatus, View};

/// The coordinator type of a running node.
pub type NodeCoordinator = Coordinator<Db, TcpTransport<NodeHandler<Db>>>;

/// How often a node publishes its load (bytes on disk) to gossip.
const LOAD_INTERVAL: Duration = Duration::from_secs(10);
/// How often a node publishes its clock to gossip and moves past the clocks peers published:
/// often enough that a peer restarting a moment after a write still finds it covered.
const CLOCK_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Storage, identity, clock and client address.
    pub cluster: ClusterConfig,
    /// Address to bind the bus on (TCP transport and UDP gossip share the port; port 0 picks
    /// a free one for both).
    pub bus_bind: SocketAddr,
    /// The IP peers and clients are told to use (the bind IP unless it is unspecified).
    pub announce_ip: std::net::IpAddr,
    /// Seed nodes' bus addresses (`host:port`); empty: a cluster of its own.
    pub seeds: Vec<String>,
    /// Replicas per slot.
    pub replication: Replication,
    /// Tokens of a new node.
    pub vnodes: usize,
    /// Datacenter.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// Gossip ignores nodes of other clusters.
    pub cluster_name: String,
    /// How long a request waits for replicas.
    pub request_timeout: Duration,
    /// How often gossip runs.
    pub gossip_interval: Duration,
    /// The failure detector's settings.
    pub failure: FailureConfig,
    /// How long a first start listens to gossip before choosing tokens against the ring it
    /// sees (nodes started together see no tokens and choose at random).
    pub join_wait: Duration,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine or the system keyspace failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The bus port could not be bound.
    #[error("cannot listen on the bus address {addr}: {source}")]
    Bus {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Gossip could not start.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The data directory belongs to another node.
    #[error("this data directory belongs to node '{stored}', not '{configured}'")]
    WrongNode {
        /// The id in the system keyspace.
        stored: String,
        /// The id this start was given.
        configured: String,
    },
}

/// A running node.
pub struct ClusterNode {
    coordinator: NodeCoordinator,
    membership: Arc<Membership>,
    transport: TcpTransport<NodeHandler<Db>>,
    tasks: Vec<JoinHandle<()>>,
    bus_addr: SocketAddr,
}

impl ClusterNode {
    /// Starts the node.
    ///
    /// # Errors
    /// [`StartError`] naming what failed.
    pub async fn start(config: NodeConfig) -> Result<ClusterNode, StartError> {
        let client_addr = config.cluster.client_addr;
        let node_id = config.cluster.node_id.clone();
        let number = node_number(&node_id);
        let clock = Arc::clone(&config.cluster.clock);
        let (db, params) = open_storage(config.cluster.clone())?;
        let local = LocalNode::new(db, params)?;
        let stored = load_local_state(local.storage())?;
        if let Some(s) = &stored {
            if s.node_id != node_id {
                return Err(StartError::WrongNode {
                    stored: s.node_id.clone(),
                    configured: node_id,
                });
            }
        }
        let generation = LocalState::next_generation(stored.as_ref(), clock.now_ms());
        let handler = Arc::new(local.handler());
        let transport = TcpTransport::bind(
            TcpConfig::new(number, config.bus_bind),
            Arc::clone(&handler),
        )
        .await
        .map_err(|source| StartError::Bus {
            addr: config.bus_bind,
            source,
        })?;
        let bus_port = transport.local_addr().port();
        let bus_addr = SocketAddr::new(config.announce_ip, bus_port);
        let (tokens, status) = match &stored {
            Some(s) if !s.tokens.is_empty() => (s.tokens.clone(), NodeStatus::Normal),
            _ => (Vec::new(), NodeStatus::Joining),
        };
        let member = Member {
            node_id: node_id.clone(),
            number,
            client_addr,
            bus_addr,
            dc: config.dc.clone(),
            rack: config.rack.clone(),
            tokens,
            status,
            generation,
            alive: true,
            load_bytes: disk_bytes(&local.storage().stats()),
        };
        let mut gossip = MembershipConfig::new(
            member,
            SocketAddr::new(config.bus_bind.ip(), bus_port),
            config.seeds.clone(),
        );
        gossip.cluster_id = config.cluster_name.clone();
        gossip.gossip_interval = config.gossip_interval;
        gossip.failure = config.failure.clone();
        let membership = Arc::new(Membership::start(gossip).await?);
        membership.set_hlc(local.hlc().current()).await;
        // One deadline for everything a start waits to hear from gossip.
        let join_deadline = tokio::time::Instant::now() + config.join_wait;
        let tokens = match stored.as_ref().filter(|s| !s.tokens.is_empty()) {
            Some(s) => s.tokens.clone(),
            None => {
                let view = wait_for_ring(&membership, &config, join_deadline).await;
                let seed = clock.now_ms() ^ u64::from(number);
                let tokens = allocate_tokens(&view, &config.replication, config.vnodes, seed);
                info!(tokens = tokens.len(), "first start: chose ring tokens");
                tokens
            }
        };
        catch_up_clocks(&membership, &local, &config, join_deadline).await;
        store_local_state(
            local.storage(),
            &LocalState {
                node_id: node_id.clone(),
                tokens: tokens.clone(),
                generation,
            },
        )?;
        if status == NodeStatus::Joining {
            membership.set_tokens(tokens).await;
            membership.set_status(NodeStatus::Normal).await;
        }
        let coordinator = local.coordinator(
            transport.clone(),
            config.replication.clone(),
            (*membership.current()).clone(),
            config.request_timeout,
        );
        handler.set_leader(coordinator.as_leader());
        let mut tasks = vec![follow_views(&membership, coordinator.clone())];
        tasks.push(publish_load(&membership, coordinator.clone()));
        tasks.push(follow_clocks(&membership, coordinator.clone()));
        info!(
            node_id = %node_id,
            bus = %bus_addr,
            generation,
            "cluster node started"
        );
        Ok(ClusterNode {
            coordinator,
            membership,
            transport,
            tasks,
            bus_addr,
        })
    }

    /// The coordinator (the `Cluster` the front end serves).
    pub fn coordinator(&self) -> &NodeCoordinator {
        &self.coordinator
    }

    /// The bus address peers reach this node at.
    pub fn bus_addr(&self) -> SocketAddr {
        self.bus_addr
    }

    /// Leaves gossip, closes the transport, then makes the storage durable and stops it.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the final flush fails.
    pub async fn shutdown(self) -> Result<(), ClusterError> {
        for task in self.tasks {
            task.abort();
            // Aborted tasks drop their handles to membership.
            let _ = task.await;
        }
        match Arc::try_unwrap(self.membership) {
            Ok(membership) => membership.shutdown().await,
            Err(_) => warn!("membership still shared at shutdown; peers will see a crash"),
        }
        self.transport.shutdown().await;
        self.coordinator.shutdown()
    }
}

/// Listens to gossip until `deadline` (less when there are no seeds) and returns the view
/// then: the ring a first start chooses its tokens against.
async fn wait_for_ring(
    membership: &Membership,
    config: &NodeConfig,
    deadline: tokio::time::Instant,
) -> View {
    let mut views = membership.view();
    let has_others = |v: &View| {
        v.members
            .iter()
            .enumerate()
            .any(|(i, m)| i != v.local && m.status.owns_tokens() && !m.tokens.is_empty())
    };
    if !config.seeds.is_empty() {
        loop {
            if has_others(&views.borrow_and_update()) {
                break;
            }
            match tokio::time::timeout_at(deadline, views.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
    }
    let view = membership.current();
    (*view).clone()
}

/// Moves the clock past every clock peers gossip, first waiting (when there are seeds, until
/// `deadline`) to hear at least one. Versions this node issued for keys it does not store
/// live only on peers, whose clocks are at or above them; if the wall clock stepped back
/// while the node was down, only those clocks keep its new versions above the old ones.
async fn catch_up_clocks(
    membership: &Membership,
    local: &LocalNode<Db>,
    config: &NodeConfig,
    deadline: tokio::time::Instant,
) {
    loop {
        let clocks = membership.peer_clocks().await;
        let now = tokio::time::Instant::now();
        if !clocks.is_empty() || config.seeds.is_empty() || now >= deadline {
            if clocks.is_empty() && !config.seeds.is_empty() {
                info!(
                    "no peer's clock heard within the join wait; starting from the stored versions"
                );
            }
            for hlc in clocks {
                local.observe_peer_clock(hlc);
            }
            return;
        }
        // Chitchat signals no change of a key, so this polls, once per gossip round.
        tokio::time::sleep_until((now + config.gossip_interval).min(deadline)).await;
    }
}

/// Keeps the coordinator's ring in step with membership.
fn follow_views(membership: &Membership, coordinator: NodeCoordinator) -> JoinHandle<()> {
    let mut views = membership.view();
    tokio::spawn(async move {
        loop {
            let view = Arc::clone(&views.borrow_and_update());
            coordinator.set_view(view);
            if views.changed().await.is_err() {
                break;
            }
        }
    })
}

/// Publishes this node's load to gossip now and then.
fn publish_load(membership: &Arc<Membership>, coordinator: NodeCoordinator) -> JoinHandle<()> {
    let membership = Arc::clone(membership);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LOAD_INTERVAL);
        loop {
            tick.tick().await;
            membership
                .set_load(disk_bytes(&coordinator.storage().stats()))
                .await;
        }
    })
}

/// Publishes this node's clock to gossip and moves past the clocks peers published, every
/// [`CLOCK_INTERVAL`]: what a peer restarting later catches up with.
fn follow_clocks(membership: &Arc<Membership>, coordinator: NodeCoordinator) -> JoinHandle<()> {
    let membership = Arc::clone(membership);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CLOCK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            membership.set_hlc(coordinator.hlc().current()).await;
            for hlc in membership.peer_clocks().await {
                coordinator.observe_peer_clock(hlc);
            }
        }
    })
}

/// Bytes the engine keeps on disk: its tables and its WAL.
fn disk_bytes(stats: &ringkv_lsm::Stats) -> u64 {
    stats.levels.iter().map(|l| l.bytes).sum::<u64>() + stats.wal_bytes_on_disk
}
