//! Nodes over real sockets on loopback: a node's clock starts above what its peers gossip.
//! Waits are bounded by generous deadlines; nothing asserts how long anything took.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv_lsm::{Record, Version};

use super::{ClusterNode, NodeConfig};
use crate::clock::{Clock, ManualClock};
use crate::coordinator::{open_storage, ClusterConfig};
use crate::hlc::LOGICAL_BITS;
use crate::membership::{FailureConfig, DEFAULT_CLUSTER_ID};
use crate::ring::Replication;
use crate::storage::Storage;

const START_MS: u64 = 1_700_000_000_000;
/// Far above what a start needs on an idle machine; a start that hears its seed returns early.
const JOIN_WAIT: Duration = Duration::from_secs(60);
const GOSSIP_INTERVAL: Duration = Duration::from_millis(100);

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn config(dir: &Path, id: &str, clock: &Arc<ManualClock>, seeds: Vec<String>) -> NodeConfig {
    NodeConfig {
        cluster: ClusterConfig::new(dir, id)
            .with_clock(Arc::clone(clock) as Arc<dyn Clock>)
            .with_client_addr(SocketAddr::new(loopback(), 6379))
            .with_seed(1),
        bus_bind: SocketAddr::new(loopback(), 0),
        announce_ip: loopback(),
        seeds,
        replication: Replication::simple(1),
        vnodes: 16,
        dc: "dc1".into(),
        rack: "r1".into(),
        cluster_name: DEFAULT_CLUSTER_ID.into(),
        request_timeout: Duration::from_secs(2),
        gossip_interval: GOSSIP_INTERVAL,
        failure: FailureConfig {
            initial_interval: GOSSIP_INTERVAL,
            ..FailureConfig::default()
        },
        join_wait: JOIN_WAIT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_wall_clock_is_behind_starts_above_its_peers_gossiped_clock() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let clock_a = Arc::new(ManualClock::new(START_MS));
    // Half a minute behind: a clock that stepped back, within the bound on a peer's clock.
    let clock_b = Arc::new(ManualClock::new(START_MS - 30_000));

    // Node A already holds a version from its wall clock, so it gossips a clock of at least
    // that from its first moment.
    let stored = Version::new((START_MS << LOGICAL_BITS) | 5, 1);
    {
        let (db, _) =
            open_storage(config(dir_a.path(), "node-a", &clock_a, vec![]).cluster).expect("open");
        Storage::put(&db, 1, Bytes::from_static(b"k"), Record::value(stored, "v")).expect("put");
        Storage::shutdown(&db).expect("close");
    }
    let node_a = ClusterNode::start(config(dir_a.path(), "node-a", &clock_a, vec![]))
        .await
        .expect("node a starts");
    let seeds = vec![node_a.bus_addr().to_string()];
    let node_b = ClusterNode::start(config(dir_b.path(), "node-b", &clock_b, seeds))
        .await
        .expect("node b starts");

    // Node B stores nothing, yet its first version is above what node A stored.
    let first = node_b.coordinator().hlc().next_version();
    assert!(first.hlc > stored.hlc, "{first:?} vs {stored:?}");
    for node in [node_b, node_a] {
        node.shutdown().await.expect("shutdown");
    }
}
