//! The node's configuration: command-line flags, `RINGKV_*` environment variables and a TOML
//! file, merged in that order of precedence over the defaults.
//!
//! Owns [`Flags`] (what clap parses), [`FileConfig`] (what the TOML file may say) and the
//! resolved [`Config`]. Must never start anything: it only reads and validates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use ringkv_cluster::{Consistency, Level};
use serde::Deserialize;

/// How the write-ahead log is synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before every acknowledgement (group commit shares one fsync among writers).
    Always,
    /// fsync every `fsync_interval_ms` (like Redis's `appendfsync everysec`).
    Periodic,
}

/// Command-line flags. Each also reads `RINGKV_<NAME>` from the environment; a flag wins over
/// the environment, which wins over the file, which wins over the default.
#[derive(Debug, Default, Parser)]
#[command(
    name = "ringkv",
    version,
    about = "A Redis-protocol key-value store in the Dynamo/Cassandra family",
    after_help = "Admin commands:\n  ringkv status [--host H] [--port P] [--password P]   \
                  the ring as this node sees it, like nodetool status (ringkv status --help)"
)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "RINGKV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to accept clients on [default: 127.0.0.1].
    #[arg(long, env = "RINGKV_BIND", value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// Client port [default: 6379].
    #[arg(long, env = "RINGKV_PORT", value_name = "N")]
    pub port: Option<u16>,
    /// Data directory [default: ./ringkv-data].
    #[arg(long, env = "RINGKV_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's id [default: generated on first start and kept in the data directory].
    #[arg(long, env = "RINGKV_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// WAL sync policy [default: periodic].
    #[arg(long, env = "RINGKV_FSYNC", value_enum)]
    pub fsync: Option<FsyncPolicy>,
    /// Milliseconds between WAL fsyncs with `--fsync periodic` [default: 1000].
    #[arg(long, env = "RINGKV_FSYNC_INTERVAL_MS", value_name = "MS")]
    pub fsync_interval_ms: Option<u64>,
    /// Password clients must give with AUTH [default: none].
    #[arg(long, env = "RINGKV_REQUIREPASS", value_name = "PASS")]
    pub requirepass: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: info].
    #[arg(long, env = "RINGKV_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Most client connections at once [default: 10000].
    #[arg(long, env = "RINGKV_MAXCLIENTS", value_name = "N")]
    pub maxclients: Option<usize>,
    /// Seconds before an idle client is disconnected, 0 = never [default: 0].
    #[arg(long, env = "RINGKV_TIMEOUT", value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Threads serving clients [default: the number of CPUs].
    #[arg(long, env = "RINGKV_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<usize>,
    /// Bytes of the storage engine's row cache (recent point reads' answers), 0 = off
    /// [default: 160 MiB].
    #[arg(long, env = "RINGKV_ROW_CACHE_BYTES", value_name = "BYTES")]
    pub row_cache_bytes: Option<usize>,
    /// Turn transparent huge pages off for this process, as redis-server's `disable-thp`:
    /// shorter write tails on a fresh node, more CPU for cached reads [default: false].
    #[arg(long, env = "RINGKV_DISABLE_THP", value_name = "BOOL")]
    pub disable_thp: Option<bool>,
    /// Default read consistency of a new connection [default: QUORUM].
    #[arg(long, env = "RINGKV_READ_CONSISTENCY", value_name = "LEVEL")]
    pub read_consistency: Option<String>,
    /// Default write consistency of a new connection [default: QUORUM].
    #[arg(long, env = "RINGKV_WRITE_CONSISTENCY", value_name = "LEVEL")]
    pub write_consistency: Option<String>,
    /// Internal bus port: peer requests (TCP) and gossip (UDP) [default: the client port +
    /// 10000; with `--port 0` or a client port above 55535, 0 = any free port, fine for a lone
    /// node or one peers learn by gossip, but not for one that others name in `--seeds`].
    #[arg(long, env = "RINGKV_BUS_PORT", value_name = "N")]
    pub bus_port: Option<u16>,
    /// Bus addresses of nodes to join through, comma-separated [default: none, a cluster of
    /// its own]. Listing this node itself is harmless.
    #[arg(
        long,
        env = "RINGKV_SEEDS",
        value_name = "HOST:BUSPORT,...",
        value_delimiter = ','
    )]
    pub seeds: Option<Vec<String>>,
    /// Replicas of each slot [default: 3]. A slot gets min(N, nodes in the ring) replicas, so a
    /// lone node with the default still serves QUORUM and ALL.
    #[arg(long, env = "RINGKV_REPLICATION_FACTOR", value_name = "N")]
    pub replication_factor: Option<usize>,
    /// Ring tokens (virtual nodes) this node takes when it first starts, 1 to 4096 [default:
    /// 256]. Later starts keep the tokens stored in the data directory.
    #[arg(long, env = "RINGKV_VNODES", value_name = "N")]
    pub vnodes: Option<usize>,
    /// This node's datacenter [default: dc1].
    #[arg(long, env = "RINGKV_DC", value_name = "NAME")]
    pub dc: Option<String>,
    /// This node's rack; replicas go to distinct racks first [default: rack1].
    #[arg(long, env = "RINGKV_RACK", value_name = "NAME")]
    pub rack: Option<String>,
    /// Name of the cluster; gossip from a cluster of another name is ignored [default:
    /// ringkv].
    #[arg(long, env = "RINGKV_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Address given to clients (CLUSTER SLOTS) and peers [default: the bind address, which
    /// must then not be 0.0.0.0 or ::].
    #[arg(long, env = "RINGKV_ANNOUNCE_IP", value_name = "ADDR")]
    pub announce_ip: Option<IpAddr>,
    /// Milliseconds between gossip rounds, 10 to 60000 [default: 500].
    #[arg(long, env = "RINGKV_GOSSIP_INTERVAL_MS", value_name = "MS")]
    pub gossip_interval_ms: Option<u64>,
    /// Failure detector threshold: a peer silent for about this many gossip intervals is down
    /// (Cassandra's phi_convict_threshold), above 0 and at most 100 [default: 8].
    #[arg(long, env = "RINGKV_PHI_THRESHOLD", value_name = "PHI")]
    pub phi_threshold: Option<f64>,
    /// Milliseconds a first start listens to its seeds before choosing ring tokens, at most
    /// 600000 [default: 2000].
    #[arg(long, env = "RINGKV_JOIN_WAIT_MS", value_name = "MS")]
    pub join_wait_ms: Option<u64>,
}

/// What the TOML file may set: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    bind: Option<IpAddr>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    node_id: Option<String>,
    fsync: Option<FsyncPolicy>,
    fsync_interval_ms: Option<u64>,
    requirepass: Option<String>,
    log_level: Option<String>,
    maxclients: Option<usize>,
    timeout: Option<u64>,
    worker_threads: Option<usize>,
    row_cache_bytes: Option<usize>,
    disable_thp: Option<bool>,
    read_consistency: Option<String>,
    write_consistency: Option<String>,
    bus_port: Option<u16>,
    seeds: Option<SeedList>,
    replication_factor: Option<usize>,
    vnodes: Option<usize>,
    dc: Option<String>,
    rack: Option<String>,
    cluster_name: Option<String>,
    announce_ip: Option<IpAddr>,
    gossip_interval_ms: Option<u64>,
    phi_threshold: Option<f64>,
    join_wait_ms: Option<u64>,
}

/// `seeds` in the file: a TOML array of `"host:port"` strings, or one comma-separated string
/// as the flag and the environment take it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SeedList {
    List(Vec<String>),
    Commas(String),
}

impl SeedList {
    fn into_vec(self) -> Vec<String> {
        match self {
            SeedList::List(list) => list,
            SeedList::Commas(text) => text.split(',').map(str::to_owned).collect(),
        }
    }
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for ringkv.
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// The resolved configuration of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
    /// Client address.
    pub bind: IpAddr,
    /// Client port (0: any free port).
    pub port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Node id, if configured (otherwise the one kept in the data directory, or a new one).
    pub node_id: Option<String>,
    /// WAL sync policy.
    pub fsync: FsyncPolicy,
    /// Milliseconds between periodic fsyncs.
    pub fsync_interval_ms: u64,
    /// The `default` user's password.
    pub requirepass: Option<String>,
    /// Log filter.
    pub log_level: String,
    /// Most clients at once.
    pub maxclients: usize,
    /// Idle timeout in seconds, 0 = none.
    pub timeout_secs: u64,
    /// Threads serving clients.
    pub worker_threads: usize,
    /// The engine's row cache budget, if set (otherwise the engine's default).
    pub row_cache_bytes: Option<usize>,
    /// Whether the binary turns transparent huge pages off for its process.
    pub disable_thp: bool,
    /// Default consistency of new connections.
    pub consistency: Consistency,
    /// Bus port for peers and gossip (0: any free port, only when `port` is 0 too or it was
    /// asked for).
    pub bus_port: u16,
    /// Bus addresses (`host:port`) to join through, trimmed, without empty entries; empty: a
    /// cluster of its own.
    pub seeds: Vec<String>,
    /// Replicas per slot (the ring uses min(this, its nodes)); at least 1.
    pub replication_factor: usize,
    /// Tokens taken on first start, 1..=[`MAX_VNODES`].
    pub vnodes: usize,
    /// Datacenter name.
    pub dc: String,
    /// Rack name.
    pub rack: String,
    /// Cluster name; gossip ignores other clusters.
    pub cluster_name: String,
    /// Address announced to clients and peers; never unspecified (0.0.0.0 / ::).
    pub announce_ip: IpAddr,
    /// Milliseconds between gossip rounds.
    pub gossip_interval_ms: u64,
    /// Phi above which the failure detector marks a peer down; finite, above 0.
    pub phi_threshold: f64,
    /// Milliseconds a first start waits for the ring before choosing tokens.
    pub join_wait_ms: u64,
}

/// Distance of the default bus port from the client port (Redis Cluster's convention).
pub const BUS_PORT_OFFSET: u16 = 10_000;

/// Most ring tokens one node may take.
pub const MAX_VNODES: usize = 4096;

impl Config {
    /// Merges flags (and their environment variables) over the file over the defaults.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable or invalid file or an out-of-range value.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let fsync_interval_ms = flags
            .fsync_interval_ms
            .or(file.fsync_interval_ms)
            .unwrap_or(1000);
        if fsync_interval_ms == 0 {
            return Err(ConfigError::Invalid {
                name: "fsync_interval_ms",
                reason: "must be at least 1".into(),
            });
        }
        let maxclients = flags.maxclients.or(file.maxclients).unwrap_or(10_000);
        if maxclients == 0 {
            return Err(ConfigError::Invalid {
                name: "maxclients",
                reason: "must be at least 1".into(),
            });
        }
        let worker_threads = flags
            .worker_threads
            .or(file.worker_threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if worker_threads == 0 {
            return Err(ConfigError::Invalid {
                name: "worker_threads",
                reason: "must be at least 1".into(),
            });
        }
        let read = parse_level(
            "read_consistency",
            flags.read_consistency.or(file.read_consistency),
        )?;
        let write = parse_level(
            "write_consistency",
            flags.write_consistency.or(file.write_consistency),
        )?;
        let node_id = flags.node_id.or(file.node_id);
        if let Some(id) = &node_id {
            if id.is_empty()
                || id.len() > 256
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::Invalid {
                    name: "node_id",
                    reason: "must be 1 to 256 characters without spaces".into(),
                });
            }
        }
        let bind = flags
            .bind
            .or(file.bind)
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let port = flags.port.or(file.port).unwrap_or(6379);
        let bus_port = resolve_bus_port(port, flags.bus_port.or(file.bus_port))?;
        let seeds = match flags.seeds {
            Some(seeds) => seeds,
            None => file.seeds.map(SeedList::into_vec).unwrap_or_default(),
        };
        let seeds = validate_seeds(seeds)?;
        let replication_factor = flags
            .replication_factor
            .or(file.replication_factor)
            .unwrap_or(3);
        if replication_factor == 0 {
            return Err(ConfigError::Invalid {
                name: "replication_factor",
                reason: "must be at least 1".into(),
            });
        }
        let vnodes = flags.vnodes.or(file.vnodes).unwrap_or(256);
        if !(1..=MAX_VNODES).contains(&vnodes) {
            return Err(ConfigError::Invalid {
                name: "vnodes",
                reason: format!("must be 1 to {MAX_VNODES}, not {vnodes}"),
            });
        }
        let dc = validate_name("dc", flags.dc.or(file.dc), "dc1")?;
        let rack = validate_name("rack", flags.rack.or(file.rack), "rack1")?;
        let cluster_name = validate_name(
            "cluster_name",
            flags.cluster_name.or(file.cluster_name),
            "ringkv",
        )?;
        let announce_ip = resolve_announce_ip(bind, flags.announce_ip.or(file.announce_ip))?;
        let gossip_interval_ms = flags
            .gossip_interval_ms
            .or(file.gossip_interval_ms)
            .unwrap_or(500);
        if !(10..=60_000).contains(&gossip_interval_ms) {
            return Err(ConfigError::Invalid {
                name: "gossip_interval_ms",
                reason: format!("must be 10 to 60000, not {gossip_interval_ms}"),
            });
        }
        let phi_threshold = flags.phi_threshold.or(file.phi_threshold).unwrap_or(8.0);
        if !(phi_threshold > 0.0 && phi_threshold <= 100.0) {
            return Err(ConfigError::Invalid {
                name: "phi_threshold",
                reason: format!("must be above 0 and at most 100, not {phi_threshold}"),
            });
        }
        let join_wait_ms = flags.join_wait_ms.or(file.join_wait_ms).unwrap_or(2000);
        if join_wait_ms > 600_000 {
            return Err(ConfigError::Invalid {
                name: "join_wait_ms",
                reason: format!("must be at most 600000, not {join_wait_ms}"),
            });
        }
        Ok(Config {
            config_file: flags.config,
            bind,
            port,
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("ringkv-data")),
            node_id,
            fsync: flags.fsync.or(file.fsync).unwrap_or(FsyncPolicy::Periodic),
            fsync_interval_ms,
            requirepass: flags
                .requirepass
                .or(file.requirepass)
                .filter(|p| !p.is_empty()),
            log_level: flags
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            maxclients,
            timeout_secs: flags.timeout.or(file.timeout).unwrap_or(0),
            worker_threads,
            row_cache_bytes: flags.row_cache_bytes.or(file.row_cache_bytes),
            disable_thp: flags.disable_thp.or(file.disable_thp).unwrap_or(false),
            consistency: Consistency { read, write },
            bus_port,
            seeds,
            replication_factor,
            vnodes,
            dc,
            rack,
            cluster_name,
            announce_ip,
            gossip_interval_ms,
            phi_threshold,
            join_wait_ms,
        })
    }
}

/// The bus port: as given, else the client port + [`BUS_PORT_OFFSET`], else (client port 0,
/// an in-process or test node) 0 as well, any free port.
fn resolve_bus_port(port: u16, bus_port: Option<u16>) -> Result<u16, ConfigError> {
    // Above 55535 Redis Cluster's +10000 convention has no port to give: any free port will
    // do, since peers learn a node's bus address by gossip (only a node others name in their
    // --seeds needs a fixed one, and that is said with --bus-port).
    let bus_port = match bus_port {
        Some(bus_port) => bus_port,
        None if port == 0 => 0,
        None => port.checked_add(BUS_PORT_OFFSET).unwrap_or(0),
    };
    if bus_port != 0 && bus_port == port {
        return Err(ConfigError::Invalid {
            name: "bus_port",
            reason: format!("must differ from the client port {port}"),
        });
    }
    Ok(bus_port)
}

/// Trims each seed, drops empty ones (so `--seeds ""` means none) and checks each is
/// `host:port` with a non-zero port (`[v6]:port` for IPv6 literals). Host names are kept for
/// the node to resolve, since a peer's address may change between restarts.
fn validate_seeds(seeds: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::with_capacity(seeds.len());
    for seed in seeds {
        let seed = seed.trim();
        if seed.is_empty() {
            continue;
        }
        let invalid = |why: &str| ConfigError::Invalid {
            name: "seeds",
            reason: format!("'{seed}' is not HOST:BUSPORT ({why})"),
        };
        let (host, port) = seed.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
        match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_err() => {
                return Err(invalid("not an IPv6 address in the brackets"));
            }
            Some(_) => {}
            None if host.contains(':') => {
                return Err(invalid("an IPv6 address goes in brackets: [::1]:17001"));
            }
            None if host.is_empty()
                || host.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err(invalid("no host"));
            }
            None => {}
        }
        match port.parse::<u16>() {
            Ok(p) if p != 0 => {}
            _ => return Err(invalid("the port must be 1 to 65535")),
        }
        out.push(seed.to_owned());
    }
    Ok(out)
}

/// A datacenter, rack or cluster name: `default` when unset, else 1 to 64 characters without
/// spaces or control characters (they appear in gossip keys and in `RINGKV STATUS`).
fn validate_name(
    name: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    if value.is_empty()
        || value.len() > 64
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("'{value}' must be 1 to 64 characters without spaces"),
        });
    }
    Ok(value)
}

/// The address peers and clients are told: the one given, else the bind address. A wildcard
/// bind cannot be announced (nobody can connect to 0.0.0.0), so it needs one said.
fn resolve_announce_ip(bind: IpAddr, announce: Option<IpAddr>) -> Result<IpAddr, ConfigError> {
    match announce {
        Some(ip) if ip.is_unspecified() => Err(ConfigError::Invalid {
            name: "announce_ip",
            reason: format!("{ip} cannot be reached by peers or clients; give a real address"),
        }),
        Some(ip) => Ok(ip),
        None if bind.is_unspecified() => Err(ConfigError::Invalid {
            name: "announce_ip",
            reason: format!(
                "the bind address {bind} listens everywhere but cannot be announced; give \
                 --announce-ip with the address peers and clients should use"
            ),
        }),
        None => Ok(bind),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

fn parse_level(name: &'static str, value: Option<String>) -> Result<Level, ConfigError> {
    match value {
        None => Ok(Level::Quorum),
        Some(text) => Level::parse(text.as_bytes()).ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!(
                "unknown consistency level '{text}' (expected one of {})",
                Level::ALL.map(|l| l.name()).join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests;
