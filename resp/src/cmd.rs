//! The command table and dispatch.
//!
//! Owns [`CommandSpec`] (one row per command: name, arity, flags, key positions, family),
//! [`Family`], the handler context [`Ctx`] and [`CommandError`]. Each family lives in its own
//! file under `cmd/` and ends with a `const` table of its rows; this module joins the tables
//! into the one list of names that drives arity checks, `COMMAND`, `COMMAND INFO|DOCS|COUNT`
//! and key extraction. A handler never touches the socket: it turns arguments into
//! `ringkv_cluster::Request`s, awaits the cluster, and returns a [`Reply`].

use bytes::Bytes;
use ringkv_cluster::{Cluster, ClusterError};

use crate::reply::Reply;

/// Which file implements a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `cmd/connection.rs`: PING ECHO HELLO AUTH QUIT RESET SELECT CLIENT.
    Connection,
    /// `cmd/server.rs`: INFO DBSIZE FLUSHALL FLUSHDB TIME COMMAND CONFIG FUNCTION SCRIPT.
    Server,
    /// `cmd/string.rs`: GET SET ... LCS.
    String,
    /// `cmd/keys.rs`: DEL UNLINK EXISTS TYPE TOUCH KEYS SCAN RANDOMKEY RENAME RENAMENX COPY.
    Keys,
    /// `cmd/expire.rs`: EXPIRE ... PEXPIRETIME.
    Expire,
    /// `cmd/ringkv.rs`: CONSISTENCY KRANGE.
    Ringkv,
}

/// One row of the command table, shaped like Redis's `COMMAND INFO` answer.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// `n`: exactly n arguments including the name; `-n`: at least n.
    pub arity: i32,
    /// Redis's flags (`"write"`, `"readonly"`, `"fast"`, `"denyoom"`, ...).
    pub flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub key_step: i32,
    /// Redis's group name for `COMMAND DOCS` (`"string"`, `"generic"`, `"connection"`, ...).
    pub group: &'static str,
    /// One-line summary for `COMMAND DOCS`.
    pub summary: &'static str,
    /// Where it is implemented.
    pub family: Family,
}

/// A handler's failure, turned into an error reply by `reply.rs` (the one place texts live,
/// in `errors.rs`, byte-for-byte Redis's).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A Redis error reply, with its prefix (`"ERR syntax error"`, `"WRONGTYPE ..."`).
    #[error("{0}")]
    Reply(String),
    /// The cluster failed the request.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// What a handler can reach: the cluster, the connection's state, the server's shared state.
pub struct Ctx<'a, C: Cluster> {
    /// The cluster API.
    pub cluster: &'a C,
    /// The connection's own state (protocol, auth, consistency, name, ...), defined by the
    /// connection module.
    pub conn: &'a mut crate::conn::ConnState,
    /// State shared by every connection (config, client registry, counters), defined by the
    /// server module.
    pub server: &'a crate::server::ServerState,
}

/// Arguments of a command, name first, as parsed.
pub type Args = [Bytes];

/// The result of a handler.
pub type CommandResult = Result<Reply, CommandError>;
