//! Whole-keyspace requests wait longer than point requests: a node that takes longer than the
//! request timeout to answer (here a slow network; in life, counting or flushing a large
//! keyspace) still serves `DBSIZE` and `FLUSHALL`, where a point read gives up.

use std::time::Duration;

use super::sim::{cluster_with_timeout, level, set};
use crate::api::{Cluster, Level, Request, Response};
use crate::error::ClusterError;

/// Replica timeout of these clusters; every message then takes 250 ms each way, so a remote
/// answer comes after about 500 ms: past it, well within 5 and 30 times it.
const TIMEOUT: Duration = Duration::from_millis(300);
const HOP: Duration = Duration::from_millis(250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbsize_and_flushall_wait_for_slow_nodes_that_a_point_read_gives_up_on() {
    // Replication factor 1: each key lives on one node, so counting asks the other two.
    let c = cluster_with_timeout(3, 1, 21, TIMEOUT);
    for i in 0..30 {
        let written = c.nodes[i % 3]
            .execute(
                Request::Write {
                    writes: vec![set(&format!("k{i}"), "v")],
                },
                level(Level::One),
            )
            .await
            .expect("write");
        assert_eq!(written, Response::Written(vec![true]));
    }
    c.net.set_delay(HOP, HOP);
    // A key that node 0 does not hold: its read must cross the slow network.
    let remote_key = (0..30)
        .map(|i| format!("k{i}"))
        .find(|k| c.replica_positions(k) != [0])
        .expect("a key on another node");
    let read = c.nodes[0]
        .execute(
            Request::Get {
                keys: vec![remote_key.into()],
            },
            level(Level::One),
        )
        .await;
    assert!(
        matches!(read, Err(ClusterError::QuorumFailed { .. })),
        "a point read gives up at the request timeout: {read:?}"
    );
    let count = c.nodes[0]
        .execute(Request::CountKeys, level(Level::One))
        .await
        .expect("DBSIZE waits longer");
    assert_eq!(count, Response::Count(30));
    let flushed = c.nodes[0]
        .execute(Request::FlushAll, level(Level::One))
        .await
        .expect("FLUSHALL waits longer");
    assert_eq!(flushed, Response::Done);
    c.net.set_delay(Duration::ZERO, Duration::ZERO);
    let count = c.nodes[1]
        .execute(Request::CountKeys, level(Level::One))
        .await
        .expect("DBSIZE");
    assert_eq!(count, Response::Count(0));
}
