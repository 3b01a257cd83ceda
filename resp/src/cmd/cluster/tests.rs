//! The cluster replies against hand-built topologies: three nodes, several ranges, one node
//! down; and a single node, as `LocalCluster` reports it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ringkv_cluster::{SlotRange, Topology, TopologyNode};

use super::layout::{placements, slot_health, SlotHealth};
use super::*;
use crate::reply::Protocol;

fn node(id: &str, port: u16, alive: bool) -> TopologyNode {
    TopologyNode {
        id: id.to_string(),
        client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        bus_port: port + 10_000,
        dc: if port == 7003 { "dc2" } else { "dc1" }.to_string(),
        rack: "rack1".to_string(),
        alive,
        status: "normal",
        load_bytes: u64::from(port),
        primary_slots: 100,
        ownership: 0.5,
    }
}

fn range(start: u16, end: u16, replicas: &[usize]) -> SlotRange {
    SlotRange {
        start,
        end,
        replicas: replicas.to_vec(),
    }
}

/// Nodes a, b, c (c down, myself a). 0-99 on a+b; 100-5460 first on c, then a; 5461-10922 on
/// b+c; 10923-16383 on c alone.
fn three_nodes() -> Topology {
    Topology {
        nodes: vec![
            node("a", 7001, true),
            node("b", 7002, true),
            node("c", 7003, false),
        ],
        myself: 0,
        ranges: vec![
            range(0, 99, &[0, 1]),
            range(100, 5460, &[2, 0]),
            range(5461, 10922, &[1, 2]),
            range(10923, 16383, &[2]),
        ],
        replication_factor: 2,
        epoch: 7,
    }
}

fn single_node() -> Topology {
    Topology {
        nodes: vec![node("me", 7001, true)],
        myself: 0,
        ranges: vec![range(0, 16383, &[0])],
        replication_factor: 1,
        epoch: 1,
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn int(n: i64) -> Reply {
    Reply::Integer(n)
}

fn slot_node(ip: &str, port: i64, id: &str) -> Reply {
    Reply::Array(vec![bulk(ip), int(port), bulk(id), Reply::Map(Vec::new())])
}

fn resp2(reply: &Reply) -> Vec<u8> {
    let mut out = BytesMut::new();
    reply.encode(Protocol::Resp2, &mut out);
    out.to_vec()
}

#[test]
fn the_first_alive_replica_is_the_master() {
    let t = three_nodes();
    let placed = placements(&t);
    let masters: Vec<_> = placed.iter().map(|p| p.master()).collect();
    assert_eq!(masters, [Some(0), Some(0), Some(1), Some(2)]);
    assert_eq!(placed[1].replicas, [0, 2]);
    assert_eq!(placed[1].listed(), [0]);
    assert_eq!(placed[3].listed(), [2], "a failed master is still listed");
    assert_eq!(
        slot_health(&placed),
        SlotHealth {
            assigned: 16384,
            ok: 100,
            pfail: 5361 + 5462,
            fail: 5461,
        }
    );
}

#[test]
fn slots_list_alive_replicas_master_first() {
    let a = || slot_node("127.0.0.1", 7001, "a");
    let b = || slot_node("127.0.0.1", 7002, "b");
    let c = || slot_node("127.0.0.1", 7003, "c");
    assert_eq!(
        cluster_slots(&three_nodes()),
        Reply::Array(vec![
            Reply::Array(vec![int(0), int(99), a(), b()]),
            Reply::Array(vec![int(100), int(5460), a()]),
            Reply::Array(vec![int(5461), int(10922), b()]),
            Reply::Array(vec![int(10923), int(16383), c()]),
        ])
    );
}

#[test]
fn single_node_slots_are_redis_bytes() {
    assert_eq!(
        resp2(&cluster_slots(&single_node())),
        b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nme\r\n*0\r\n"
    );
}

#[test]
fn shards_group_ranges_by_replica_set() {
    let Reply::Array(shards) = cluster_shards(&three_nodes()) else {
        panic!("an array of shards");
    };
    assert_eq!(shards.len(), 4);
    let shard_node = |id: &str, port: i64, role: &str, health: &str| {
        Reply::Map(vec![
            (bulk("id"), bulk(id)),
            (bulk("port"), int(port)),
            (bulk("ip"), bulk("127.0.0.1")),
            (bulk("endpoint"), bulk("127.0.0.1")),
            (bulk("role"), bulk(role)),
            (bulk("replication-offset"), int(0)),
            (bulk("health"), bulk(health)),
        ])
    };
    assert_eq!(
        shards[1],
        Reply::Map(vec![
            (bulk("slots"), Reply::Array(vec![int(100), int(5460)])),
            (
                bulk("nodes"),
                Reply::Array(vec![
                    shard_node("a", 7001, "master", "online"),
                    shard_node("c", 7003, "replica", "fail"),
                ])
            ),
        ])
    );
    // Two ranges with the same replicas are one shard with two slot pairs.
    let mut t = single_node();
    t.ranges = vec![range(0, 9, &[0]), range(10, 16383, &[0])];
    let Reply::Array(shards) = cluster_shards(&t) else {
        panic!("an array of shards");
    };
    assert_eq!(shards.len(), 1);
    let Reply::Map(fields) = &shards[0] else {
        panic!("a shard map");
    };
    assert_eq!(
        fields[0].1,
        Reply::Array(vec![int(0), int(9), int(10), int(16383)])
    );
}

#[test]
fn nodes_lines_flag_myself_and_failed_nodes() {
    assert_eq!(
        cluster_nodes(&three_nodes()),
        "a 127.0.0.1:7001@17001 myself,master - 0 0 7 connected 0-5460\n\
         b 127.0.0.1:7002@17002 master - 0 0 7 connected 5461-10922\n\
         c 127.0.0.1:7003@17003 master,fail - 0 0 7 disconnected 10923-16383\n"
    );
    let mut t = single_node();
    t.ranges = vec![range(0, 0, &[0]), range(2, 16383, &[0])];
    assert_eq!(
        cluster_nodes(&t),
        "me 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0 2-16383\n"
    );
}

#[test]
fn info_counts_slots_by_replica_health() {
    assert_eq!(
        cluster_info(&three_nodes()),
        "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:100\r\n\
         cluster_slots_pfail:10823\r\ncluster_slots_fail:5461\r\ncluster_known_nodes:3\r\n\
         cluster_size:3\r\ncluster_current_epoch:7\r\ncluster_my_epoch:7\r\n\
         ringkv_replication_factor:2\r\n"
    );
    let info = cluster_info(&single_node());
    assert!(info.starts_with("cluster_state:ok\r\n"), "{info}");
    assert!(info.contains("cluster_slots_ok:16384\r\n"), "{info}");
    // A slot no node holds fails the cluster, as with cluster-require-full-coverage.
    let mut t = single_node();
    t.ranges = vec![range(0, 16000, &[0])];
    assert!(cluster_info(&t).starts_with("cluster_state:fail\r\n"));
}

#[test]
fn status_describes_every_node() {
    let Reply::Array(rows) = ringkv_status(&three_nodes()) else {
        panic!("an array of nodes");
    };
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2],
        Reply::Map(vec![
            (bulk("id"), bulk("c")),
            (bulk("address"), bulk("127.0.0.1:7003")),
            (bulk("dc"), bulk("dc2")),
            (bulk("rack"), bulk("rack1")),
            (bulk("state"), bulk("down")),
            (bulk("status"), bulk("normal")),
            (bulk("load_bytes"), int(7003)),
            (bulk("ownership"), Reply::Double(0.5)),
            (bulk("primary_slots"), int(100)),
            (bulk("myself"), Reply::Bool(false)),
        ])
    );
}

#[test]
fn a_wildcard_address_is_shown_as_the_one_the_client_reached() {
    let mut t = single_node();
    t.nodes[0].client_addr = SocketAddr::from(([0, 0, 0, 0], 7001));
    let local = SocketAddr::from(([10, 1, 2, 3], 7001));
    let shown = announced(Arc::new(t), local);
    assert_eq!(
        shown.nodes[0].client_addr,
        SocketAddr::from(([10, 1, 2, 3], 7001))
    );
    let plain = Arc::new(single_node());
    assert!(Arc::ptr_eq(&announced(Arc::clone(&plain), local), &plain));
}

#[test]
fn slots_are_checked_as_redis_does() {
    assert_eq!(parse_slot(b"0").ok(), Some(0));
    assert_eq!(parse_slot(b"16383").ok(), Some(16383));
    for (arg, text) in [
        (&b"16384"[..], "ERR Invalid slot"),
        (b"-1", "ERR Invalid slot"),
        (b"x", "ERR value is not an integer or out of range"),
        (b"", "ERR value is not an integer or out of range"),
    ] {
        match parse_slot(arg) {
            Err(CommandError::Reply(got)) => assert_eq!(got, text, "{arg:?}"),
            other => panic!("{arg:?}: {other:?}"),
        }
    }
}

#[test]
fn malformed_ranges_are_left_out_rather_than_panicking() {
    let mut t = single_node();
    t.ranges = vec![range(0, 10, &[5]), range(11, 16383, &[])];
    assert_eq!(cluster_slots(&t), Reply::Array(Vec::new()));
    assert!(cluster_info(&t).contains("cluster_slots_assigned:0\r\n"));
    assert_eq!(
        cluster_nodes(&t),
        "me 127.0.0.1:7001@17001 myself,master - 0 0 1 connected\n"
    );
}
