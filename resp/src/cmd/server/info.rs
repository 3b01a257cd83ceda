//! `INFO [section ...]`.
//!
//! Owns the text of `INFO`: Redis's sections and field names where ringkv has the figure
//! (server, clients, memory, persistence, stats, replication, cpu, cluster, keyspace,
//! commandstats) and a `ringkv` section with the engine's figures. Every number is measured:
//! counters from the server state, memory and CPU from `/proc/self`, key counts and engine
//! figures from the cluster. Fields Redis has and ringkv cannot measure are left out rather
//! than shown as zero, except where clients rely on them being present. Reads only.

use std::fmt::Write as _;

use bytes::Bytes;
use ringkv_cluster::Cluster;

use super::key_count;
use crate::cmd::table::table;
use crate::cmd::{CommandResult, Ctx};
use crate::reply::Reply;
use crate::server::stats::load;
use crate::server::REDIS_VERSION;

/// Sections `INFO` and `INFO default` show, in order.
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
];

/// Sections `INFO all` and `INFO everything` show, in order.
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "cluster",
    "keyspace",
    "ringkv",
];

/// `INFO [section ...]`: a verbatim string in RESP3, a bulk string in RESP2.
pub(super) async fn info<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &[Bytes]) -> CommandResult {
    let mut wanted: Vec<&'static str> = Vec::new();
    if args.len() == 1 {
        wanted.extend_from_slice(DEFAULT_SECTIONS);
    }
    for arg in &args[1..] {
        let name = arg.to_ascii_lowercase();
        match name.as_slice() {
            b"default" => wanted.extend_from_slice(DEFAULT_SECTIONS),
            b"all" | b"everything" => wanted.extend_from_slice(ALL_SECTIONS),
            other => {
                if let Some(section) = ALL_SECTIONS.iter().find(|s| s.as_bytes() == other) {
                    wanted.push(section);
                }
            }
        }
    }
    // In ALL_SECTIONS order, each once.
    let sections: Vec<&str> = ALL_SECTIONS
        .iter()
        .copied()
        .filter(|s| wanted.contains(s))
        .collect();

    let mut text = String::new();
    for section in sections {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        match section {
            "server" => server(ctx, &mut text),
            "clients" => clients(ctx, &mut text),
            "memory" => memory(ctx, &mut text),
            "persistence" => persistence(ctx, &mut text),
            "stats" => stats(ctx, &mut text),
            "replication" => replication(&mut text),
            "cpu" => cpu(&mut text),
            "commandstats" => commandstats(ctx, &mut text),
            "cluster" => cluster(ctx, &mut text),
            "keyspace" => {
                // INFO must answer even when the connection's read level cannot be met
                // (`CONSISTENCY TWO` on one node): the count is then left out.
                let keys = key_count(ctx).await.ok();
                keyspace(keys, &mut text);
            }
            _ => ringkv(ctx, &mut text),
        }
    }
    Ok(Reply::Verbatim(Bytes::from(text)))
}

/// Appends `name:value\r\n`.
macro_rules! field {
    ($text:expr, $name:expr, $value:expr) => {
        let _ = write!($text, "{}:{}\r\n", $name, $value);
    };
}

fn server<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    let config = &ctx.server.config;
    let uptime = ctx.server.stats.uptime_secs();
    text.push_str("# Server\r\n");
    field!(text, "redis_version", REDIS_VERSION);
    field!(text, "ringkv_version", env!("CARGO_PKG_VERSION"));
    field!(text, "redis_mode", "standalone");
    field!(text, "os", std::env::consts::OS);
    field!(text, "arch_bits", usize::BITS);
    field!(text, "process_id", std::process::id());
    field!(text, "run_id", ctx.cluster.info().node_id);
    field!(text, "tcp_port", config.port);
    field!(
        text,
        "server_time_usec",
        ctx.cluster.now_ms().saturating_mul(1000)
    );
    field!(text, "uptime_in_seconds", uptime);
    field!(text, "uptime_in_days", uptime / 86_400);
    field!(
        text,
        "config_file",
        config
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
}

fn clients<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    text.push_str("# Clients\r\n");
    field!(text, "connected_clients", ctx.server.clients.len());
    field!(text, "cluster_connections", 0);
    field!(text, "maxclients", ctx.server.maxclients());
    field!(text, "blocked_clients", 0);
    field!(text, "tracking_clients", 0);
}

fn memory<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    let status = ProcStatus::read();
    let engine = ctx.cluster.info().engine;
    text.push_str("# Memory\r\n");
    field!(text, "used_memory", status.rss_bytes);
    field!(text, "used_memory_human", human(status.rss_bytes));
    field!(text, "used_memory_rss", status.rss_bytes);
    field!(text, "used_memory_rss_human", human(status.rss_bytes));
    field!(text, "used_memory_peak", status.peak_rss_bytes);
    field!(text, "used_memory_peak_human", human(status.peak_rss_bytes));
    field!(text, "maxmemory", 0);
    field!(text, "maxmemory_human", "0B");
    field!(text, "maxmemory_policy", "noeviction");
    field!(text, "ringkv_memtable_bytes", engine.memtable_bytes);
    field!(text, "ringkv_block_cache_bytes", engine.block_cache_bytes);
    field!(text, "ringkv_row_cache_bytes", engine.row_cache_bytes);
}

fn persistence<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    let engine = ctx.cluster.info().engine;
    text.push_str("# Persistence\r\n");
    field!(text, "loading", 0);
    field!(text, "async_loading", 0);
    field!(text, "rdb_bgsave_in_progress", 0);
    field!(text, "aof_enabled", 1);
    field!(text, "aof_rewrite_in_progress", 0);
    field!(text, "aof_last_write_status", "ok");
    field!(
        text,
        "ringkv_fsync",
        if ctx.server.config.fsync_always {
            "always"
        } else {
            "periodic"
        }
    );
    field!(text, "ringkv_wal_bytes_on_disk", engine.wal_bytes_on_disk);
    field!(text, "ringkv_wal_bytes_written", engine.wal_bytes_written);
    field!(text, "ringkv_wal_syncs", engine.wal_syncs);
    field!(text, "ringkv_wal_writes", engine.wal_writes);
    field!(text, "ringkv_flushes", engine.flushes);
    field!(text, "ringkv_compactions", engine.compactions);
}

fn stats<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    let stats = &ctx.server.stats;
    text.push_str("# Stats\r\n");
    field!(
        text,
        "total_connections_received",
        load(&stats.total_connections)
    );
    field!(
        text,
        "total_commands_processed",
        load(&stats.commands_processed)
    );
    field!(text, "instantaneous_ops_per_sec", stats.ops_per_sec());
    field!(text, "total_net_input_bytes", load(&stats.net_input_bytes));
    field!(
        text,
        "total_net_output_bytes",
        load(&stats.net_output_bytes)
    );
    field!(
        text,
        "rejected_connections",
        load(&stats.rejected_connections)
    );
    field!(text, "total_error_replies", load(&stats.error_replies));
    field!(text, "unknown_commands", load(&stats.unknown_commands));
}

fn replication(text: &mut String) {
    text.push_str("# Replication\r\n");
    field!(text, "role", "master");
    field!(text, "connected_slaves", 0);
}

fn cpu(text: &mut String) {
    let (user, system) = cpu_seconds();
    text.push_str("# CPU\r\n");
    field!(text, "used_cpu_sys", format!("{system:.6}"));
    field!(text, "used_cpu_user", format!("{user:.6}"));
}

fn commandstats<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    text.push_str("# Commandstats\r\n");
    for (index, spec) in table().rows().iter().enumerate() {
        let Some(counters) = ctx.server.stats.command(index) else {
            continue;
        };
        let calls = load(&counters.calls);
        let rejected = load(&counters.rejected_calls);
        if calls == 0 && rejected == 0 {
            continue;
        }
        let usec = load(&counters.usec);
        let per_call = if calls == 0 {
            0.0
        } else {
            usec as f64 / calls as f64
        };
        let _ = write!(
            text,
            "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},\
             rejected_calls={rejected},failed_calls={}\r\n",
            spec.name,
            load(&counters.failed_calls),
        );
    }
}

/// Redis Cluster's one field, `cluster_enabled:1` (every node answers `CLUSTER SLOTS`), then
/// the ring as this node sees it: its id, the nodes it knows and how many the failure
/// detector believes up, the replication factor and the ring's epoch; then the internal bus's
/// counters (calls to peers and their timeouts, connections open and failed, frames dropped,
/// peer requests refused as overloaded).
fn cluster<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    let info = ctx.cluster.info();
    let topology = ctx.cluster.topology();
    text.push_str("# Cluster\r\n");
    field!(text, "cluster_enabled", 1);
    field!(text, "ringkv_node_id", info.node_id);
    field!(text, "ringkv_nodes", topology.nodes.len());
    field!(
        text,
        "ringkv_nodes_up",
        topology.nodes.iter().filter(|n| n.alive).count()
    );
    field!(
        text,
        "ringkv_replication_factor",
        topology.replication_factor
    );
    field!(text, "ringkv_ring_epoch", topology.epoch);
    let bus = info.transport;
    field!(text, "ringkv_bus_calls", bus.calls);
    field!(text, "ringkv_bus_timeouts", bus.timeouts);
    field!(text, "ringkv_bus_connections", bus.connections_open);
    field!(
        text,
        "ringkv_bus_connection_failures",
        bus.connection_failures
    );
    field!(text, "ringkv_bus_frames_dropped", bus.frames_dropped);
    field!(text, "ringkv_bus_requests_refused", bus.requests_refused);
}

/// Redis omits a database with no keys. ringkv does not count keys with a TTL separately, so
/// `expires` and `avg_ttl` are shown as 0 only for clients that parse the line.
fn keyspace(keys: Option<u64>, text: &mut String) {
    text.push_str("# Keyspace\r\n");
    if let Some(keys) = keys.filter(|&k| k > 0) {
        let _ = write!(text, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
    }
}

fn ringkv<C: Cluster>(ctx: &Ctx<'_, C>, text: &mut String) {
    let engine = ctx.cluster.info().engine;
    text.push_str("# Ringkv\r\n");
    for (level, stats) in engine.levels.iter().enumerate() {
        let _ = write!(
            text,
            "level{level}:tables={},bytes={},records={}\r\n",
            stats.tables, stats.bytes, stats.records
        );
    }
    field!(text, "memtable_bytes", engine.memtable_bytes);
    field!(text, "immutable_memtables", engine.immutable_memtables);
    field!(text, "user_bytes_written", engine.user_bytes_written);
    field!(text, "writes", engine.writes);
    field!(text, "wal_writes", engine.wal_writes);
    field!(text, "gets", engine.gets);
    field!(text, "get_tables_probed", engine.get_tables_probed);
    field!(text, "flush_bytes_written", engine.flush_bytes_written);
    field!(text, "compaction_bytes_in", engine.compaction_bytes_in);
    field!(text, "compaction_bytes_out", engine.compaction_bytes_out);
    field!(
        text,
        "expired_tables_dropped",
        engine.expired_tables_dropped
    );
    field!(text, "bloom_negatives", engine.bloom_negatives);
    field!(text, "bloom_positives", engine.bloom_positives);
    field!(text, "bloom_false_positives", engine.bloom_false_positives);
    field!(text, "block_cache_hits", engine.block_cache_hits);
    field!(text, "block_cache_misses", engine.block_cache_misses);
    field!(text, "row_cache_hits", engine.row_cache_hits);
    field!(text, "row_cache_misses", engine.row_cache_misses);
    field!(text, "write_stalls", engine.write_stalls);
    field!(text, "write_stall_micros", engine.write_stall_micros);
}

/// Bytes as Redis's `bytesToHuman`: `1.50M`.
fn human(bytes: u64) -> String {
    let b = bytes as f64;
    const K: f64 = 1024.0;
    if b < K {
        format!("{bytes}B")
    } else if b < K * K {
        format!("{:.2}K", b / K)
    } else if b < K * K * K {
        format!("{:.2}M", b / (K * K))
    } else {
        format!("{:.2}G", b / (K * K * K))
    }
}

/// Resident memory from `/proc/self/status` (its `kB` units are exact, unlike `statm`'s pages,
/// whose size varies by platform). Zero where `/proc` is absent.
struct ProcStatus {
    rss_bytes: u64,
    peak_rss_bytes: u64,
}

impl ProcStatus {
    fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        ProcStatus {
            rss_bytes: kb("VmRSS:"),
            peak_rss_bytes: kb("VmHWM:"),
        }
    }
}

/// User and system CPU seconds of this process, from `/proc/self/stat` (clock ticks of 1/100 s,
/// Linux's `USER_HZ`). Zeros where `/proc` is absent.
fn cpu_seconds() -> (f64, f64) {
    const TICKS_PER_SEC: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields after its ')' are plain.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After ')': state is field 3, so utime (field 14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        ticks(11) as f64 / TICKS_PER_SEC,
        ticks(12) as f64 / TICKS_PER_SEC,
    )
}
