//! The front end's configuration.
//!
//! Owns [`ServerConfig`]: what the binary reads from flags, environment and file and hands to
//! [`run`](crate::server::run), with Redis's defaults. It holds values only; it never reads
//! files or the environment (the binary does) and never opens sockets. The parameters
//! `CONFIG SET` may change at run time are copied into the server's state, which owns their
//! live values.

use std::path::PathBuf;

use ringkv_cluster::Consistency;

use crate::parser::ParserLimits;

/// How the front end behaves: limits, authentication, defaults, and facts it reports.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Most client connections at once; one more is told `-ERR max number of clients reached`
    /// and closed, as Redis does. Changeable with `CONFIG SET maxclients`. Default 10000.
    pub maxclients: usize,
    /// Seconds a client may stay idle before its connection is closed; 0 = never, Redis's
    /// `timeout`. Changeable with `CONFIG SET timeout`. Default 0.
    pub timeout_secs: u64,
    /// The password of the `default` user; `None`: no authentication. Changeable with
    /// `CONFIG SET requirepass` (an empty value removes it).
    pub requirepass: Option<String>,
    /// Bounds of one request, enforced by the parser before it allocates.
    pub parser_limits: ParserLimits,
    /// Largest value a command may store (`ERR value exceeds the 10 MiB limit`; the connection
    /// stays usable). Default 10 MiB.
    pub max_value_bytes: usize,
    /// Largest key a command may name. Default 64 KiB.
    pub max_key_bytes: usize,
    /// The levels a new connection reads and writes at (`CONSISTENCY` changes its own).
    pub default_consistency: Consistency,
    /// The address clients connect to, for `INFO` and `CONFIG GET bind`.
    pub bind: String,
    /// The client port, for `INFO` and `CONFIG GET port`.
    pub port: u16,
    /// The data directory, for `INFO` and `CONFIG GET dir`.
    pub data_dir: PathBuf,
    /// The configuration file the binary read, if any, for `INFO`.
    pub config_file: Option<PathBuf>,
    /// Whether the write-ahead log is synced before every acknowledgement (`fsync = "always"`,
    /// shown as `appendfsync always`) or periodically (`everysec`).
    pub fsync_always: bool,
}

impl ServerConfig {
    /// Redis's default `maxclients`.
    pub const DEFAULT_MAXCLIENTS: usize = 10_000;
    /// The default value limit (DESIGN.md, "Limits").
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 10 * 1024 * 1024;
    /// The default key limit (DESIGN.md, "Limits").
    pub const DEFAULT_MAX_KEY_BYTES: usize = 64 * 1024;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            maxclients: Self::DEFAULT_MAXCLIENTS,
            timeout_secs: 0,
            requirepass: None,
            parser_limits: ParserLimits::default(),
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            max_key_bytes: Self::DEFAULT_MAX_KEY_BYTES,
            default_consistency: Consistency::default(),
            bind: "127.0.0.1".to_owned(),
            port: 6379,
            data_dir: PathBuf::from("ringkv-data"),
            config_file: None,
            fsync_always: false,
        }
    }
}
