//! Cluster commands: CLUSTER, READONLY, READWRITE, ASKING, and ringkv's RINGKV STATUS.
//!
//! Owns their handlers and table rows ([`COMMANDS`]). `CLUSTER SLOTS|SHARDS|NODES|INFO` answer
//! from the ring the cluster reports ([`Cluster::topology`]) with Redis 7's shapes, so
//! cluster-aware clients (redis-py's `RedisCluster`, the `redis` crate's cluster client,
//! `redis-cli -c`) send each command straight to a replica of its key; any node would
//! coordinate it anyway, so ringkv never answers `MOVED` or `ASK`. Parts:
//!
//! - `layout`: which replica is a range's "master" (its first alive one) and the slot counts;
//! - `slots`: `CLUSTER SLOTS` and `CLUSTER SHARDS`;
//! - `nodes`: `CLUSTER NODES`, `CLUSTER INFO` and `RINGKV STATUS`.
//!
//! `CLUSTER MYID|MYSHARDID|KEYSLOT|COUNTKEYSINSLOT|HELP` are answered here. A node's shard id
//! is its node id: each node is the master of its own ranges. `CLUSTER GETKEYSINSLOT` is not
//! offered: the cluster API has no request that lists one slot's keys. `READONLY` and
//! `READWRITE` set and clear a flag on the connection (`RESET` clears it too) and `ASKING`
//! answers `OK`: every node serves every key at the connection's consistency level.
//!
//! A node whose client address is a wildcard (`--bind 0.0.0.0`) is shown to each client at
//! the address that client connected to. Never touches a socket.

mod layout;
mod nodes;
mod slots;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_cluster::{key_slot, Cluster, Request, Response, Topology, SLOTS};

use super::connection::help;
use super::{
    check_subcommand_arity, parse_integer, Args, CommandError, CommandResult, CommandSpec, Ctx,
    Family,
};
use crate::errors;
use crate::reply::Reply;

use nodes::{cluster_info, cluster_nodes, ringkv_status};
use slots::{cluster_shards, cluster_slots};

/// The cluster family's rows.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    row(
        "cluster",
        -2,
        &[],
        "A container for Redis Cluster commands.",
    ),
    row(
        "readonly",
        1,
        &["loading", "stale", "fast"],
        "Enables read-only queries for a connection to a Redis Cluster replica node.",
    ),
    row(
        "readwrite",
        1,
        &["loading", "stale", "fast"],
        "Enables read-write queries for a connection to a Redis Cluster replica node.",
    ),
    row(
        "asking",
        1,
        &["fast"],
        "Signals that a cluster client is following an -ASK redirect.",
    ),
    row(
        "ringkv",
        -2,
        &["loading", "stale"],
        "A container for ringkv's operator commands (RINGKV STATUS: the ring, node by node).",
    ),
];

const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(
        Family::Cluster,
        "cluster",
        name,
        arity,
        flags,
        (0, 0, 0),
        summary,
    )
}

/// Runs a cluster command (arity already checked by the connection).
///
/// # Errors
/// Redis's errors for unknown subcommands, wrong arities and bad slots; the cluster's
/// failures for `COUNTKEYSINSLOT`.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    match spec.name {
        "cluster" => cluster(ctx, args).await,
        "readonly" => {
            ctx.conn.readonly = true;
            Ok(Reply::ok())
        }
        "readwrite" => {
            ctx.conn.readonly = false;
            Ok(Reply::ok())
        }
        "asking" => Ok(Reply::ok()),
        "ringkv" => ringkv(ctx, args),
        _ => Err(error(errors::unknown_command(args))),
    }
}

/// An error reply from text that may not be UTF-8 (it quotes client bytes).
fn error(text: impl Into<Bytes>) -> CommandError {
    CommandError::Reply(String::from_utf8_lossy(&text.into()).into_owned())
}

/// `CLUSTER <subcommand> ...`.
async fn cluster<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"slots" => {
            check_subcommand_arity("cluster|slots", 2, args)?;
            Ok(cluster_slots(&topology(ctx)))
        }
        b"shards" => {
            check_subcommand_arity("cluster|shards", 2, args)?;
            Ok(cluster_shards(&topology(ctx)))
        }
        b"nodes" => {
            check_subcommand_arity("cluster|nodes", 2, args)?;
            Ok(Reply::Verbatim(Bytes::from(cluster_nodes(&topology(ctx)))))
        }
        b"info" => {
            check_subcommand_arity("cluster|info", 2, args)?;
            Ok(Reply::Verbatim(Bytes::from(cluster_info(&topology(ctx)))))
        }
        b"myid" | b"myshardid" => {
            let name = if sub == b"myid" {
                "cluster|myid"
            } else {
                "cluster|myshardid"
            };
            check_subcommand_arity(name, 2, args)?;
            let topology = ctx.cluster.topology();
            let id = topology
                .nodes
                .get(topology.myself)
                .map_or_else(|| ctx.cluster.info().node_id, |n| n.id.clone());
            Ok(Reply::Bulk(Bytes::from(id)))
        }
        b"keyslot" => {
            check_subcommand_arity("cluster|keyslot", 3, args)?;
            Ok(Reply::Integer(i64::from(key_slot(&args[2]))))
        }
        b"countkeysinslot" => {
            check_subcommand_arity("cluster|countkeysinslot", 3, args)?;
            let slot = parse_slot(&args[2])?;
            let request = Request::CountKeysInSlot { slot };
            match ctx.cluster.execute(request, ctx.conn.consistency).await? {
                Response::Count(n) => Ok(Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))),
                other => Err(CommandError::Reply(format!(
                    "ERR internal error: unexpected cluster response {other:?}"
                ))),
            }
        }
        b"help" => {
            check_subcommand_arity("cluster|help", 2, args)?;
            Ok(help(CLUSTER_HELP))
        }
        _ => Err(error(errors::unknown_subcommand("cluster", &args[1]))),
    }
}

/// `RINGKV <subcommand>`: `STATUS` and `HELP`.
fn ringkv<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"status" => {
            check_subcommand_arity("ringkv|status", 2, args)?;
            Ok(ringkv_status(&topology(ctx)))
        }
        b"help" => {
            check_subcommand_arity("ringkv|help", 2, args)?;
            Ok(help(RINGKV_HELP))
        }
        _ => Err(error(errors::unknown_subcommand("ringkv", &args[1]))),
    }
}

/// `CLUSTER COUNTKEYSINSLOT`'s slot: an integer (`ERR value is not an integer or out of
/// range`) in `0..16384` (`ERR Invalid slot`), as Redis checks it.
fn parse_slot(arg: &[u8]) -> Result<u16, CommandError> {
    let slot = parse_integer(arg).ok_or_else(|| error(errors::NOT_INTEGER))?;
    u16::try_from(slot)
        .ok()
        .filter(|&s| s < SLOTS)
        .ok_or_else(|| error(INVALID_SLOT))
}

/// `clusterCommand` (COUNTKEYSINSLOT): a slot outside `0..16384`.
const INVALID_SLOT: &str = "ERR Invalid slot";

/// The ring, with this node's wildcard address replaced by the one the client reached.
fn topology<C: Cluster>(ctx: &Ctx<'_, C>) -> Arc<Topology> {
    announced(ctx.cluster.topology(), ctx.conn.client().local_addr)
}

/// `topology` with this node's client address made reachable: a node bound to a wildcard
/// address (`0.0.0.0`, `::`) is shown at `local` (the address the client connected to), with
/// its own port, since a client cannot connect to a wildcard. Other nodes are shown as the
/// ring knows them.
fn announced(topology: Arc<Topology>, local: SocketAddr) -> Arc<Topology> {
    let wildcard = topology
        .nodes
        .get(topology.myself)
        .is_some_and(|n| n.client_addr.ip().is_unspecified());
    if !wildcard {
        return topology;
    }
    let mut fixed = Topology::clone(&topology);
    if let Some(me) = fixed.nodes.get_mut(fixed.myself) {
        me.client_addr.set_ip(local.ip());
    }
    Arc::new(fixed)
}

const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id (in ringkv, its node id).",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "HELP",
    "    Print this help.",
];

const RINGKV_HELP: &[&str] = &[
    "RINGKV <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "STATUS",
    "    Return every node of the ring: id, address, datacenter, rack, up/down, ring status,",
    "    load in bytes, ownership (share of the slots it holds a replica of), primary slots.",
    "HELP",
    "    Print this help.",
];
