//! Failures that cross the simulated network come back as the error the failing node would
//! have returned had the client asked it directly: a conditional write forwarded to its
//! slot's leader (also when the leader fails only at its own deadline), and a write whose
//! replicas' engines refuse its value.

use std::sync::Arc;

use bytes::Bytes;

use super::sim::{
    cluster, cluster_with_engine, cluster_with_timeout, level, set, SimCluster, SimCoordinator,
};
use crate::api::{Cluster, Condition, Level, Request, Response, Write};
use crate::error::ClusterError;
use crate::view::View;

const KEY: &str = "forwarded";

/// A `SET NX`-style write of `KEY`.
fn set_if_absent(value: &str) -> Write {
    Write {
        condition: Condition::IfVersion(None),
        ..set(KEY, value)
    }
}

async fn write_through(
    c: &SimCluster,
    node: usize,
    write: Write,
    l: Level,
) -> Result<Response, ClusterError> {
    c.nodes[node]
        .execute(
            Request::Write {
                writes: vec![write],
            },
            level(l),
        )
        .await
}

/// `ALL` failed with two of three replicas answering and one reason for the third: the
/// leader's own failure, not a forwarding node's deadline on the leader (`required: 1`).
fn all_short_of_one_replica(e: &ClusterError) -> bool {
    matches!(
        e,
        ClusterError::QuorumFailed {
            level: Level::All,
            required: 3,
            answered: 2,
            errors,
        } if errors.len() == 1
    )
}

/// `KEY` read at `ALL` through `node`.
async fn read_at_all(node: &SimCoordinator) -> Response {
    node.execute(
        Request::Get {
            keys: vec![Bytes::from_static(KEY.as_bytes())],
        },
        level(Level::All),
    )
    .await
    .expect("read at ALL")
}

/// Tells node `node` alone that `down` are down; the others keep believing them alive.
fn mark_down_on(c: &SimCluster, node: usize, down: &[usize]) {
    let mut members = c.members.clone();
    for &d in down {
        members[d].alive = false;
    }
    let view = View::new(members, &c.members[node].node_id).expect("view");
    c.nodes[node].set_view(Arc::new(view));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_short_of_replicas_fails_a_forwarded_write_as_it_would_a_direct_one() {
    let c = cluster(3, 3, 11);
    let replicas = c.replica_positions(KEY);
    let (leader, others) = (replicas[0], &replicas[1..]);
    // Only the leader believes its fellow replicas down: the others still forward to it.
    mark_down_on(&c, leader, others);
    let direct = write_through(&c, leader, set_if_absent("v"), Level::All)
        .await
        .expect_err("ALL with two replicas down");
    let forwarded = write_through(&c, others[0], set_if_absent("v"), Level::All)
        .await
        .expect_err("ALL through a node that forwards to the leader");
    assert!(
        matches!(
            forwarded,
            ClusterError::Unavailable {
                level: Level::All,
                required: 3,
                alive: 1,
            }
        ),
        "{forwarded:?}"
    );
    assert_eq!(format!("{forwarded:?}"), format!("{direct:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_replica_fails_fails_a_forwarded_write_as_it_would_a_direct_one() {
    let c = cluster(3, 3, 12);
    let replicas = c.replica_positions(KEY);
    let (leader, asker, crashed) = (replicas[0], replicas[1], replicas[2]);
    // Everyone believes everyone alive; calls to one replica fail.
    c.net.crash(c.members[crashed].number);
    let direct = write_through(&c, leader, set_if_absent("v"), Level::All)
        .await
        .expect_err("ALL with a replica crashed");
    assert!(all_short_of_one_replica(&direct), "{direct:?}");
    let forwarded = write_through(&c, asker, set_if_absent("v"), Level::All)
        .await
        .expect_err("ALL through a node that forwards to the leader");
    assert!(all_short_of_one_replica(&forwarded), "{forwarded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_node_waits_for_a_leader_that_waits_on_a_silent_replica() {
    // A 1 s timeout leaves the leader 1.5 s between its own deadline and the forwarding
    // node's (300 ms left 450 ms, little on a loaded CI machine).
    let c = cluster_with_timeout(3, 3, 14, std::time::Duration::from_secs(1));
    let replicas = c.replica_positions(KEY);
    let (leader, asker, cut_off) = (replicas[0], replicas[1], replicas[2]);
    // Everyone believes everyone alive; the leader's messages to one replica are lost, so the
    // leader fails only once its own deadline passes.
    c.net
        .partition(c.members[leader].number, c.members[cut_off].number);
    let forwarded = write_through(&c, asker, set_if_absent("v"), Level::All)
        .await
        .expect_err("ALL through a node that forwards to the leader");
    // The leader's failure, not the forwarding node's own deadline on the leader
    // (`required: 1, answered: 0`, "leader ...: no response").
    assert!(all_short_of_one_replica(&forwarded), "{forwarded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_limit_reads_the_same_through_every_node() {
    let engine = ringkv_lsm::Options {
        max_value_bytes: 4096,
        ..ringkv_lsm::Options::default()
    };
    // Four nodes of three replicas: one node holds no copy of the key.
    let c = cluster_with_engine(4, 3, 13, &engine);
    let replicas = c.replica_positions(KEY);
    let outsider = (0..4)
        .find(|n| !replicas.contains(n))
        .expect("a node outside the replica set");
    let big = "x".repeat(5000);
    let too_large = |e: &ClusterError| {
        matches!(
            e,
            ClusterError::Storage(ringkv_lsm::Error::ValueTooLarge {
                len: 5000,
                max: 4096
            })
        )
    };
    for node in [replicas[0], replicas[1], outsider] {
        // Led here (the leader), forwarded to the leader (the others).
        let conditional = write_through(&c, node, set_if_absent(&big), Level::Quorum)
            .await
            .expect_err("a conditional write over the limit");
        assert!(too_large(&conditional), "node {node}: {conditional:?}");
        // Written by this node to every replica, its own among them or not.
        let plain = write_through(&c, node, set(KEY, &big), Level::Quorum)
            .await
            .expect_err("a write over the limit");
        assert!(too_large(&plain), "node {node}: {plain:?}");
    }
    // Nothing was stored anywhere.
    for node in &c.nodes {
        assert_eq!(read_at_all(node).await, Response::Values(vec![None]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_key_lock_stays_busy_fails_on_its_leader_and_is_not_applied() {
    let c = cluster_with_timeout(3, 3, 15, std::time::Duration::from_secs(1));
    let replicas = c.replica_positions(KEY);
    let (leader, asker) = (replicas[0], replicas[1]);
    // A write to the key that never finishes on its leader.
    let held = c.nodes[leader].shared.locks.lock([KEY.as_bytes()]).await;
    for (node, write) in [
        (asker, set_if_absent("forwarded")),
        (leader, set_if_absent("direct")),
        (leader, set(KEY, "plain")),
    ] {
        // Bounded, so a regression to an unbounded lock wait fails instead of hanging.
        let failed = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            write_through(&c, node, write, Level::Quorum),
        )
        .await
        .expect("the write gave up on the busy lock")
        .expect_err("the key's lock is held");
        // The leader's own failure, not the forwarder's deadline on it.
        assert!(
            matches!(&failed, ClusterError::KeyBusy { waited_ms: 250 }),
            "{failed:?}"
        );
    }
    drop(held);
    // Key locks are handed out in arrival order: a failed write still queued would run before
    // this one and make its condition fail.
    let last = write_through(&c, asker, set_if_absent("v"), Level::Quorum)
        .await
        .expect("the lock is free again");
    assert_eq!(
        last,
        Response::Written(vec![true]),
        "no failed write was applied"
    );
    let read = read_at_all(&c.nodes[leader]).await;
    assert!(
        matches!(&read, Response::Values(v) if v.len() == 1
            && v[0].as_ref().is_some_and(|s| s.value == Bytes::from_static(b"v"))),
        "{read:?}"
    );
}
