//! A ring of one node, driven through the cluster harness: with the default replication
//! factor 3 it still serves `QUORUM` and `ALL` (a slot gets min(RF, nodes) replicas), answers
//! the cluster commands as the only replica of every slot, serves the `redis` crate's cluster
//! client and `redis-cli -c`, and keeps its identity and data across a graceful stop and a
//! SIGKILL (with `--fsync always`).

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/process.rs"]
mod process;

use cluster::{assert_every_slot_has, ClusterOptions, TestCluster, CONVERGE_TIMEOUT};
use redis::Commands;

#[test]
fn a_ring_of_one_serves_every_level_and_survives_restarts() {
    let mut ring = TestCluster::start_with(ClusterOptions {
        fsync_always: true,
        ..ClusterOptions::new(1, 3)
    });
    ring.wait_converged(CONVERGE_TIMEOUT);
    let slots = ring.cluster_slots(0).expect("CLUSTER SLOTS");
    assert_every_slot_has(&slots, 1, 1);
    assert_eq!(ring.nodes_holding("any-key"), [0]);

    for level in ["ONE", "QUORUM", "ALL"] {
        let mut conn = ring.connection_at(0, level);
        let key = format!("at-{level}");
        let () = conn.set(&key, level).expect("SET");
        let value: Option<String> = conn.get(&key).expect("GET");
        assert_eq!(value.as_deref(), Some(level));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = ring
            .cluster_client(&[0])
            .get_async_connection()
            .await
            .expect("cluster connection");
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&["at-ONE", "at-ALL", "missing"])
            .query_async(&mut conn)
            .await
            .expect("MGET through the cluster client");
        assert_eq!(values, [Some("ONE".into()), Some("ALL".into()), None]);
    });
    let out = ring.redis_cli(0, &["-c", "GET", "at-QUORUM"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "QUORUM\n", "{out:?}");

    ring.stop(0);
    assert!(!ring.is_running(0));
    ring.restart(0);
    let mut conn = ring.connection(0);
    let myid: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut conn)
        .expect("CLUSTER MYID");
    assert_eq!(myid, "node-0");
    let () = conn.set("before-kill", "acknowledged").expect("SET");
    drop(conn);

    ring.kill(0);
    assert!(!ring.is_running(0));
    ring.restart(0);
    ring.wait_converged(CONVERGE_TIMEOUT);
    assert_eq!(ring.cluster_slots(0).expect("CLUSTER SLOTS"), slots);
    let mut conn = ring.connection(0);
    let values: Vec<Option<String>> = conn
        .mget(&["at-ONE", "at-QUORUM", "at-ALL", "before-kill"])
        .expect("MGET after restarts");
    assert_eq!(
        values,
        [
            Some("ONE".into()),
            Some("QUORUM".into()),
            Some("ALL".into()),
            Some("acknowledged".into())
        ]
    );
}
