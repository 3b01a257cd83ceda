//! What a node needs to join the gossip: [`MembershipConfig`] and [`FailureConfig`].
//!
//! Owns the defaults (gossip every 500 ms, phi threshold 8) and their translation into
//! chitchat's configuration. Must never start anything.

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::{ChitchatConfig, ChitchatId, FailureDetectorConfig, ProtocolVersion};

use crate::view::Member;

/// The chitchat cluster id ringkv nodes use unless configured otherwise.
pub const DEFAULT_CLUSTER_ID: &str = "ringkv";

/// How a node joins the gossip.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// This node as it announces itself (`alive` is forced true); its `generation` becomes
    /// chitchat's generation id, so it must grow on every restart.
    pub local: Member,
    /// The UDP address gossip binds: the bus port (the TCP transport uses the same number).
    /// Peers are told `local.bus_addr` when this is an unspecified address (`0.0.0.0`).
    pub gossip_addr: SocketAddr,
    /// `host:busport` of seed nodes. May include this node; unreachable seeds are retried.
    pub seeds: Vec<String>,
    /// Nodes of another cluster id are refused (chitchat answers them `BadCluster`).
    pub cluster_id: String,
    /// How often this node gossips with up to three peers (Cassandra: every second).
    pub gossip_interval: Duration,
    /// The failure detector's settings.
    pub failure: FailureConfig,
}

impl MembershipConfig {
    /// The default configuration for `local`, gossiping on `gossip_addr` with `seeds`.
    pub fn new(local: Member, gossip_addr: SocketAddr, seeds: Vec<String>) -> Self {
        MembershipConfig {
            local,
            gossip_addr,
            seeds,
            cluster_id: DEFAULT_CLUSTER_ID.to_string(),
            gossip_interval: Duration::from_millis(500),
            failure: FailureConfig::default(),
        }
    }

    /// The address peers gossip to: `gossip_addr`, unless it is unspecified, then the bus
    /// address the node announces.
    pub fn advertise_addr(&self) -> SocketAddr {
        if self.gossip_addr.ip().is_unspecified() {
            self.local.bus_addr
        } else {
            self.gossip_addr
        }
    }

    /// Chitchat's configuration for this node.
    pub(crate) fn chitchat(&self) -> ChitchatConfig {
        ChitchatConfig {
            chitchat_id: ChitchatId::new(
                self.local.node_id.clone(),
                self.local.generation,
                self.advertise_addr(),
            ),
            cluster_id: self.cluster_id.clone(),
            gossip_interval: self.gossip_interval,
            listen_addr: self.gossip_addr,
            seed_nodes: self.seeds.clone(),
            failure_detector_config: self.failure.detector(),
            // ringkv never deletes gossiped keys, so tombstones are rare; chitchat's own
            // suggested hour keeps a lagging peer from needing a reset.
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V0 (uncompressed digests) is the format every chitchat 0.13 peer reads.
            protocol_version: ProtocolVersion::V0,
        }
    }
}

/// The phi-accrual failure detector's settings.
///
/// Chitchat's phi is the time since a peer's last heartbeat divided by the mean interval
/// between its heartbeats, so a peer is declared down after about `phi_threshold` mean
/// intervals of silence. Heartbeats travel with every gossip message, so the mean interval is
/// at most the gossip interval.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureConfig {
    /// Phi above which a peer is down (Cassandra's `phi_convict_threshold`, 8).
    pub phi_threshold: f64,
    /// How many recent heartbeat intervals the mean is taken over.
    pub sampling_window_size: usize,
    /// Intervals longer than this are not samples (a peer coming back after a pause must not
    /// make the detector slow forever).
    pub max_interval: Duration,
    /// The interval assumed before samples arrive (weighted like five samples); keep it near
    /// the gossip interval, or a young peer takes `phi_threshold` times it to be detected.
    pub initial_interval: Duration,
    /// How long a down peer is kept (shown `alive: false`, its tokens in the ring) before its
    /// state is forgotten. Long by default: a crashed node keeps its ranges until an operator
    /// removes it or it comes back.
    pub dead_grace_period: Duration,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            phi_threshold: 8.0,
            sampling_window_size: 1000,
            max_interval: Duration::from_secs(10),
            initial_interval: Duration::from_millis(500),
            dead_grace_period: Duration::from_secs(24 * 3600),
        }
    }
}

impl FailureConfig {
    /// Chitchat's failure detector configuration.
    fn detector(&self) -> FailureDetectorConfig {
        FailureDetectorConfig::new(
            self.phi_threshold,
            self.sampling_window_size.max(1),
            self.max_interval,
            self.initial_interval,
            self.dead_grace_period,
        )
    }
}
