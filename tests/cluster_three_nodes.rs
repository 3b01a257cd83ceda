//! A real three-node ring of `ringkv` processes with replication factor 3 (issue 5): it
//! converges to one ring with every slot on all three nodes; data written at `ALL` is read at
//! `ONE` from every node; multi-key commands span slots and `MSETNX` across slots is
//! `CROSSSLOT`; the `redis` crate's cluster client and `redis-cli -c` work against it. With one
//! node killed, `QUORUM` goes on and `ALL` fails with a clear error; with two, `ONE` goes on and
//! `QUORUM` fails; the killed nodes restart with their identity and tokens and rejoin.
//!
//! Each test shares one cluster among its steps, in order, because starting and converging a
//! ring is the slow part.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/process.rs"]
mod process;

use cluster::{
    assert_every_slot_has, assert_level_error, ClusterOptions, TestCluster, CONVERGE_TIMEOUT,
};
use redis::cluster_read_routing::RandomReplicaStrategy;
use redis::Commands;

/// Keys spread over many slots (no hash tags).
fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

#[test]
fn a_healthy_ring_serves_every_client() {
    let mut ring = TestCluster::start(3, 3);
    ring.wait_converged(CONVERGE_TIMEOUT);
    every_node_sees_one_ring_with_three_replicas_per_slot(&mut ring);
    data_written_at_all_is_read_at_one_from_every_node(&ring);
    info_counts_the_bus(&ring);
    multi_key_commands_span_slots(&ring);
    msetnx_across_slots_is_crossslot(&ring);
    the_cluster_client_routes_by_slot(&ring);
    redis_cli_in_cluster_mode_works(&ring);
}

fn every_node_sees_one_ring_with_three_replicas_per_slot(ring: &mut TestCluster) {
    let first = ring.cluster_slots(0).expect("CLUSTER SLOTS on node-0");
    assert_every_slot_has(&first, 3, 3);
    for i in 1..3 {
        let slots = ring.cluster_slots(i).expect("CLUSTER SLOTS");
        assert_eq!(slots, first, "node-{i} and node-0 disagree on the ring");
    }
    for i in 0..3 {
        let myid: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut ring.connection(i))
            .expect("CLUSTER MYID");
        assert_eq!(myid, TestCluster::node_id(i));
    }
    let holders = ring.nodes_holding("some-key");
    let mut sorted = holders.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2], "every key lives on all three nodes");
}

fn data_written_at_all_is_read_at_one_from_every_node(ring: &TestCluster) {
    let keys = keys("all", 30);
    let mut writer = ring.connection_at(1, "ALL");
    for key in &keys {
        let () = writer
            .set(key, format!("value of {key}"))
            .expect("SET at ALL");
    }
    for i in 0..3 {
        let mut reader = ring.connection_at(i, "ONE");
        for key in &keys {
            let value: Option<String> = reader.get(key).expect("GET at ONE");
            assert_eq!(
                value.as_deref(),
                Some(format!("value of {key}").as_str()),
                "node-{i} at ONE"
            );
        }
    }
}

/// The writer of the last step called both peers for each of its 30 writes at `ALL`, over one
/// connection per peer, and nothing was refused.
fn info_counts_the_bus(ring: &TestCluster) {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query(&mut ring.connection(1))
        .expect("INFO cluster");
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO cluster: {info}"))
    };
    assert!(field("ringkv_bus_calls") >= 60, "{info}");
    assert!(field("ringkv_bus_connections") >= 2, "{info}");
    assert_eq!(field("ringkv_bus_requests_refused"), 0, "{info}");
    assert_eq!(field("ringkv_bus_frames_dropped"), 0, "{info}");
    field("ringkv_bus_timeouts");
    field("ringkv_bus_connection_failures");
}

fn multi_key_commands_span_slots(ring: &TestCluster) {
    let mut conn = ring.connection_at(2, "QUORUM");
    let keys = keys("multi", 12);
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let () = conn.mset(&pairs).expect("MSET across slots");
    let mut asked = keys.clone();
    asked.insert(3, "multi:missing".into());
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&asked)
        .query(&mut conn)
        .expect("MGET across slots");
    let mut expected: Vec<Option<String>> = keys.iter().map(|k| Some(format!("v-{k}"))).collect();
    expected.insert(3, None);
    assert_eq!(values, expected);
    // Read back through another coordinator, as one ring.
    let mut other = ring.connection_at(0, "QUORUM");
    let exists: usize = redis::cmd("EXISTS")
        .arg(&keys[0])
        .arg(&keys[5])
        .arg("multi:missing")
        .arg(&keys[0])
        .query(&mut other)
        .expect("EXISTS across slots");
    assert_eq!(
        exists, 3,
        "EXISTS counts a repeated key twice, as Redis does"
    );
    let deleted: usize = redis::cmd("DEL")
        .arg(&keys[..6])
        .arg("multi:missing")
        .query(&mut other)
        .expect("DEL across slots");
    assert_eq!(deleted, 6);
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut conn)
        .expect("MGET after DEL");
    for (i, value) in values.iter().enumerate() {
        assert_eq!(value.is_some(), i >= 6, "{}: {value:?}", keys[i]);
    }
}

fn msetnx_across_slots_is_crossslot(ring: &TestCluster) {
    let mut conn = ring.connection(0);
    let slot = |key: &str| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut ring.connection(0))
            .expect("CLUSTER KEYSLOT")
    };
    assert_ne!(slot("nx-a"), slot("nx-b"), "the test needs two slots");
    let err = redis::cmd("MSETNX")
        .arg("nx-a")
        .arg("1")
        .arg("nx-b")
        .arg("2")
        .query::<i64>(&mut conn)
        .expect_err("MSETNX across slots");
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let exists: usize = redis::cmd("EXISTS")
        .arg("nx-a")
        .arg("nx-b")
        .query(&mut conn)
        .expect("EXISTS");
    assert_eq!(exists, 0, "a refused MSETNX writes nothing");
    // One hash tag, one slot: Redis's semantics.
    let set: i64 = redis::cmd("MSETNX")
        .arg("{nx}a")
        .arg("1")
        .arg("{nx}b")
        .arg("2")
        .query(&mut conn)
        .expect("MSETNX in one slot");
    assert_eq!(set, 1);
    let again: i64 = redis::cmd("MSETNX")
        .arg("{nx}b")
        .arg("3")
        .arg("{nx}c")
        .arg("4")
        .query(&mut conn)
        .expect("MSETNX in one slot");
    assert_eq!(again, 0, "one key exists: nothing is set");
    let values: Vec<Option<String>> = conn.mget(&["{nx}a", "{nx}b", "{nx}c"]).expect("MGET");
    assert_eq!(values, [Some("1".into()), Some("2".into()), None]);
}

fn the_cluster_client_routes_by_slot(ring: &TestCluster) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for client in [
            ring.cluster_client(&[0]),
            redis::cluster::ClusterClient::builder(ring.urls(&[0, 1, 2]))
                .read_routing_strategy(RandomReplicaStrategy)
                .build()
                .expect("cluster client"),
        ] {
            let mut conn = client
                .get_async_connection()
                .await
                .expect("cluster connection");
            let keys = keys("routed", 40);
            for key in &keys {
                redis::cmd("SET")
                    .arg(key)
                    .arg(key.to_uppercase())
                    .query_async::<()>(&mut conn)
                    .await
                    .expect("SET through the cluster client");
            }
            for key in &keys {
                let value: Option<String> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET through the cluster client");
                assert_eq!(value, Some(key.to_uppercase()));
            }
            // The client splits a multi-slot MGET by slot and joins the replies in order.
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("MGET through the cluster client");
            let expected: Vec<Option<String>> =
                keys.iter().map(|k| Some(k.to_uppercase())).collect();
            assert_eq!(values, expected);
            let counter: i64 = redis::cmd("INCR")
                .arg("routed:counter")
                .query_async(&mut conn)
                .await
                .expect("INCR through the cluster client");
            assert!(counter >= 1);
        }
    });
}

fn redis_cli_in_cluster_mode_works(ring: &TestCluster) {
    let out = ring.redis_cli(0, &["-c", "SET", "cli-key", "from redis-cli"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n", "{out:?}");
    for i in 0..3 {
        let out = ring.redis_cli(i, &["-c", "GET", "cli-key"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from redis-cli\n",
            "redis-cli -c on node-{i}: {out:?}"
        );
    }
    let out = ring.redis_cli(1, &["-c", "CLUSTER", "INFO"]);
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:3"), "{info}");
}

#[test]
fn the_ring_rides_out_node_failures() {
    let mut ring = TestCluster::start_with(ClusterOptions {
        fsync_always: true,
        ..ClusterOptions::new(3, 3)
    });
    ring.wait_converged(CONVERGE_TIMEOUT);
    let before = ring.cluster_slots(0).expect("CLUSTER SLOTS");
    let old = keys("before", 20);
    let mut writer = ring.connection_at(0, "ALL");
    for key in &old {
        let () = writer.set(key, "old").expect("SET at ALL");
    }

    // One node down: QUORUM (2 of 3) goes on, ALL cannot be met.
    ring.kill(2);
    ring.wait_down(2, CONVERGE_TIMEOUT);
    for i in [0, 1] {
        let mut quorum = ring.connection_at(i, "QUORUM");
        for key in &old {
            let value: Option<String> = quorum.get(key).expect("GET at QUORUM, one node down");
            assert_eq!(value.as_deref(), Some("old"), "node-{i}");
        }
        let () = quorum
            .set(format!("one-down:{i}"), "written")
            .expect("SET at QUORUM, one node down");
        let mut all = ring.connection_at(i, "ALL");
        let err = all
            .set::<_, _, ()>("one-down:all", "x")
            .expect_err("SET at ALL with a replica down");
        assert_level_error(&err, "ALL", &[3, 2]);
        let err = all
            .get::<_, Option<String>>(&old[0])
            .expect_err("GET at ALL with a replica down");
        assert_level_error(&err, "ALL", &[3, 2]);
    }

    // Two nodes down: ONE goes on, QUORUM cannot be met.
    ring.kill(1);
    ring.wait_down(1, CONVERGE_TIMEOUT);
    let mut one = ring.connection_at(0, "ONE");
    for key in &old {
        let value: Option<String> = one.get(key).expect("GET at ONE, two nodes down");
        assert_eq!(value.as_deref(), Some("old"));
    }
    let () = one
        .set("two-down", "written")
        .expect("SET at ONE, two nodes down");
    let mut quorum = ring.connection_at(0, "QUORUM");
    let err = quorum
        .set::<_, _, ()>("two-down:quorum", "x")
        .expect_err("SET at QUORUM with two replicas down");
    assert_level_error(&err, "QUORUM", &[2, 1]);

    // Both come back with their identity and tokens, and rejoin.
    ring.restart(1);
    ring.restart(2);
    ring.wait_converged(CONVERGE_TIMEOUT);
    for i in [1, 2] {
        let myid: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut ring.connection(i))
            .expect("CLUSTER MYID");
        assert_eq!(myid, TestCluster::node_id(i), "restarted with its identity");
        assert_eq!(
            ring.cluster_slots(i).expect("CLUSTER SLOTS"),
            before,
            "node-{i} restarted with other tokens"
        );
    }
    // Writes acknowledged at ALL before the kills are read at ONE through a restarted node.
    let mut restarted = ring.connection_at(2, "ONE");
    for key in &old {
        let value: Option<String> = restarted.get(key).expect("GET at ONE on node-2");
        assert_eq!(value.as_deref(), Some("old"));
    }
    // A write at ALL is read at ONE from any node.
    let mut all = ring.connection_at(2, "ALL");
    let after = keys("after", 20);
    for key in &after {
        let () = all.set(key, "new").expect("SET at ALL after the rejoin");
    }
    for i in 0..3 {
        let mut one = ring.connection_at(i, "ONE");
        for key in &after {
            let value: Option<String> = one.get(key).expect("GET at ONE after the rejoin");
            assert_eq!(value.as_deref(), Some("new"), "node-{i}");
        }
    }
}
