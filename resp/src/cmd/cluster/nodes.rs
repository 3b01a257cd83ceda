//! `CLUSTER NODES`, `CLUSTER INFO` and `RINGKV STATUS`: the ring described node by node.
//!
//! Owns the texts of `CLUSTER NODES` (Redis 7's `clusterGenNodeDescription` line format) and
//! `CLUSTER INFO` (`genClusterInfoString`'s fields where ringkv has the figure), and the
//! `RINGKV STATUS` reply (what `nodetool status` shows). Pure functions of a [`Topology`].
//!
//! Every node is shown as a `master`: each serves reads and writes and is the master of the
//! ranges whose first alive replica it is (see [`layout`](super::layout)), so none is the
//! `slave` of another, and the master-id column is `-` for all. A node the failure detector
//! believes down is `master,fail` with link state `disconnected`. ringkv's gossip keeps no
//! ping timestamps for the front end, so the ping-sent and pong-received columns are 0, and
//! the config epoch of every node is the ring's epoch. The message counters of `CLUSTER INFO`
//! (`cluster_stats_messages_*`) are left out rather than shown as zero.

use std::fmt::Write as _;

use bytes::Bytes;
use ringkv_cluster::Topology;

use super::layout::{master_ranges, placements, slot_health};
use crate::reply::Reply;

/// `CLUSTER NODES`: one `\n`-terminated line per node, in the topology's (id) order:
/// `<id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state>
/// <slot> ...`, slots as `start-end` or a lone `slot`.
pub(crate) fn cluster_nodes(topology: &Topology) -> String {
    let placed = placements(topology);
    let owned = master_ranges(topology, &placed);
    let mut text = String::new();
    for (i, node) in topology.nodes.iter().enumerate() {
        let mut flags = Vec::with_capacity(3);
        if i == topology.myself {
            flags.push("myself");
        }
        flags.push("master");
        if !node.alive {
            flags.push("fail");
        }
        let link = if node.alive {
            "connected"
        } else {
            "disconnected"
        };
        let _ = write!(
            text,
            "{} {}:{}@{} {} - 0 0 {} {}",
            node.id,
            node.client_addr.ip(),
            node.client_addr.port(),
            node.bus_port,
            flags.join(","),
            topology.epoch,
            link
        );
        for &(start, end) in owned.get(i).map(Vec::as_slice).unwrap_or_default() {
            if start == end {
                let _ = write!(text, " {start}");
            } else {
                let _ = write!(text, " {start}-{end}");
            }
        }
        text.push('\n');
    }
    text
}

/// `CLUSTER INFO`: `name:value\r\n` lines. Slots are `ok` when every replica is alive,
/// `pfail` when some replica is down but one is alive (served, with less redundancy), `fail`
/// when none is alive; the state is `fail` when a slot is unassigned or failed.
/// `cluster_size` counts the nodes that are master of at least one slot.
pub(crate) fn cluster_info(topology: &Topology) -> String {
    let placed = placements(topology);
    let health = slot_health(&placed);
    let size = master_ranges(topology, &placed)
        .iter()
        .filter(|ranges| !ranges.is_empty())
        .count();
    let mut text = String::new();
    let mut field = |name: &str, value: &dyn std::fmt::Display| {
        let _ = write!(text, "{name}:{value}\r\n");
    };
    field("cluster_state", &health.state());
    field("cluster_slots_assigned", &health.assigned);
    field("cluster_slots_ok", &health.ok);
    field("cluster_slots_pfail", &health.pfail);
    field("cluster_slots_fail", &health.fail);
    field("cluster_known_nodes", &topology.nodes.len());
    field("cluster_size", &size);
    field("cluster_current_epoch", &topology.epoch);
    field("cluster_my_epoch", &topology.epoch);
    field("ringkv_replication_factor", &topology.replication_factor);
    text
}

fn text(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// `RINGKV STATUS`: one map per node, in the topology's (id) order, with what `nodetool
/// status` shows: `id`, `address` (`ip:port` for clients), `dc`, `rack`, `state` (`up` or
/// `down`, the failure detector's verdict), `status` (the ring status: `normal`, `joining`,
/// `leaving`, `left`), `load_bytes`, `ownership` (share of all slots it holds a replica of,
/// 0 to 1, a double), `primary_slots` (slots whose first ring replica it is) and `myself`.
pub(crate) fn ringkv_status(topology: &Topology) -> Reply {
    Reply::Array(
        topology
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                Reply::Map(vec![
                    (text("id"), text(&node.id)),
                    (text("address"), text(&node.client_addr.to_string())),
                    (text("dc"), text(&node.dc)),
                    (text("rack"), text(&node.rack)),
                    (text("state"), text(if node.alive { "up" } else { "down" })),
                    (text("status"), text(node.status)),
                    (
                        text("load_bytes"),
                        Reply::Integer(i64::try_from(node.load_bytes).unwrap_or(i64::MAX)),
                    ),
                    (text("ownership"), Reply::Double(node.ownership)),
                    (
                        text("primary_slots"),
                        Reply::Integer(i64::from(node.primary_slots)),
                    ),
                    (text("myself"), Reply::Bool(i == topology.myself)),
                ])
            })
            .collect(),
    )
}
