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
    about = "A Redis-protocol key-value store in the Dynamo/Cassandra family"
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
    /// Default read consistency of a new connection [default: QUORUM].
    #[arg(long, env = "RINGKV_READ_CONSISTENCY", value_name = "LEVEL")]
    pub read_consistency: Option<String>,
    /// Default write consistency of a new connection [default: QUORUM].
    #[arg(long, env = "RINGKV_WRITE_CONSISTENCY", value_name = "LEVEL")]
    pub write_consistency: Option<String>,
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
    read_consistency: Option<String>,
    write_consistency: Option<String>,
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Default consistency of new connections.
    pub consistency: Consistency,
}

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
        Ok(Config {
            config_file: flags.config,
            bind: flags
                .bind
                .or(file.bind)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port: flags.port.or(file.port).unwrap_or(6379),
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
            consistency: Consistency { read, write },
        })
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
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_local_node() {
        let config = Config::load(Flags::default()).expect("defaults load");
        assert_eq!(config.bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(config.port, 6379);
        assert_eq!(config.data_dir, PathBuf::from("ringkv-data"));
        assert_eq!(config.fsync, FsyncPolicy::Periodic);
        assert_eq!(config.consistency, Consistency::default());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ringkv.toml");
        std::fs::write(
            &path,
            "port = 7000\nfsync = \"always\"\nread_consistency = \"one\"\n",
        )
        .expect("write");
        let flags = Flags {
            config: Some(path),
            port: Some(7001),
            ..Flags::default()
        };
        let config = Config::load(flags).expect("load");
        assert_eq!(config.port, 7001);
        assert_eq!(config.fsync, FsyncPolicy::Always);
        assert_eq!(config.consistency.read, Level::One);
        assert_eq!(config.consistency.write, Level::Quorum);
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ringkv.toml");
        std::fs::write(&path, "prot = 7000\n").expect("write");
        let err = Config::load(Flags {
            config: Some(path),
            ..Flags::default()
        })
        .expect_err("unknown key");
        assert!(
            err.to_string().contains("invalid configuration file"),
            "{err}"
        );
        let err = Config::load(Flags {
            write_consistency: Some("MOST".into()),
            ..Flags::default()
        })
        .expect_err("unknown level");
        assert!(
            err.to_string().contains("unknown consistency level 'MOST'"),
            "{err}"
        );
    }
}
