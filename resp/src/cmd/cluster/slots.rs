//! `CLUSTER SLOTS` and `CLUSTER SHARDS`: the slot map cluster-aware clients route by.
//!
//! Owns the two replies' shapes, Redis 7's byte for byte (`clusterCommandSlots` /
//! `addNodeToNodeReply` and `clusterCommandShards` / `addNodeDetailsToShardReply`), built from
//! the [`layout`](super::layout) placements. Pure: a [`Topology`] in, a [`Reply`] out.

use bytes::Bytes;
use ringkv_cluster::{Topology, TopologyNode};

use super::layout::{placements, Placement};
use crate::reply::Reply;

fn text(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// `CLUSTER SLOTS`: one entry per range, `[start, end, master, replica...]`, each node as
/// `[ip, port, id, {}]`. The fourth element is Redis 7's map of the networking metadata that
/// is not the preferred endpoint; ringkv's endpoint is the IP and nodes have no hostname, so
/// it is empty, as Redis's is in that configuration.
pub(crate) fn cluster_slots(topology: &Topology) -> Reply {
    Reply::Array(
        placements(topology)
            .iter()
            .map(|p| {
                let mut entry = vec![
                    Reply::Integer(i64::from(p.start)),
                    Reply::Integer(i64::from(p.end)),
                ];
                entry.extend(p.listed().iter().map(|&i| slot_node(&topology.nodes[i])));
                Reply::Array(entry)
            })
            .collect(),
    )
}

fn slot_node(node: &TopologyNode) -> Reply {
    Reply::Array(vec![
        text(&node.client_addr.ip().to_string()),
        Reply::Integer(i64::from(node.client_addr.port())),
        text(&node.id),
        Reply::Map(Vec::new()),
    ])
}

/// `CLUSTER SHARDS`: one shard per distinct replica set (its ranges share their replicas in
/// the same order), in order of its first slot. Each is a map `{slots: [start, end, ...],
/// nodes: [...]}`; its master is listed first with role `master`, the other replicas follow
/// as `replica`, down ones with health `fail`. ringkv has no replication stream, so the
/// offset is 0.
pub(crate) fn cluster_shards(topology: &Topology) -> Reply {
    let mut shards: Vec<(Vec<usize>, Vec<&Placement>)> = Vec::new();
    let placed = placements(topology);
    for p in &placed {
        match shards.iter_mut().find(|(set, _)| *set == p.replicas) {
            Some((_, ranges)) => ranges.push(p),
            None => shards.push((p.replicas.clone(), vec![p])),
        }
    }
    Reply::Array(
        shards
            .into_iter()
            .map(|(set, ranges)| {
                let slots = ranges
                    .iter()
                    .flat_map(|p| [p.start, p.end])
                    .map(|s| Reply::Integer(i64::from(s)))
                    .collect();
                let nodes = set
                    .iter()
                    .enumerate()
                    .map(|(rank, &i)| shard_node(&topology.nodes[i], rank == 0))
                    .collect();
                Reply::Map(vec![
                    (text("slots"), Reply::Array(slots)),
                    (text("nodes"), Reply::Array(nodes)),
                ])
            })
            .collect(),
    )
}

fn shard_node(node: &TopologyNode, master: bool) -> Reply {
    let ip = node.client_addr.ip().to_string();
    Reply::Map(vec![
        (text("id"), text(&node.id)),
        (
            text("port"),
            Reply::Integer(i64::from(node.client_addr.port())),
        ),
        (text("ip"), text(&ip)),
        (text("endpoint"), text(&ip)),
        (
            text("role"),
            text(if master { "master" } else { "replica" }),
        ),
        (text("replication-offset"), Reply::Integer(0)),
        (
            text("health"),
            text(if node.alive { "online" } else { "fail" }),
        ),
    ])
}
