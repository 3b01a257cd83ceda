//! The command table and dispatch.
//!
//! Owns [`CommandSpec`] (one row per command: name, arity, flags, key positions, family),
//! [`Family`], the handler context [`Ctx`], [`CommandError`] and `execute`, which hands a
//! checked request to its family. Each family lives in its own file under `cmd/` and ends with
//! a `const` table of its rows; `cmd/table.rs` joins the tables into the one list of names that
//! drives lookup, arity checks, `COMMAND`, `COMMAND INFO|DOCS|COUNT|GETKEYS` and key
//! extraction. A handler never touches the socket: it turns arguments into
//! `ringkv_cluster::Request`s, awaits the cluster, and returns a [`Reply`]. Lookup, arity,
//! authentication and size limits are checked by the connection before a handler runs.
//!
//! Families: `connection` (PING ... CLIENT), `server` (INFO ... SCRIPT), `string`, `keys`,
//! `expire`, `ringkv`, `cluster` (CLUSTER, READONLY, READWRITE, ASKING, RINGKV STATUS); `args`
//! holds the argument parsers the data families share.

pub(crate) mod args;
pub(crate) mod cluster;
pub(crate) mod connection;
pub(crate) mod expire;
pub(crate) mod keys;
pub(crate) mod ringkv;
pub(crate) mod server;
pub(crate) mod string;
pub(crate) mod table;

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
    /// `cmd/cluster.rs`: CLUSTER READONLY READWRITE ASKING RINGKV.
    Cluster,
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

impl CommandSpec {
    /// A row; the family files wrap this in a short `row` with their family and group.
    #[allow(clippy::too_many_arguments)]
    pub(crate) const fn new(
        family: Family,
        group: &'static str,
        name: &'static str,
        arity: i32,
        flags: &'static [&'static str],
        (first_key, last_key, key_step): (i32, i32, i32),
        summary: &'static str,
    ) -> CommandSpec {
        CommandSpec {
            name,
            arity,
            flags,
            first_key,
            last_key,
            key_step,
            group,
            summary,
            family,
        }
    }
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

impl CommandSpec {
    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn accepts_arity(&self, argc: usize) -> bool {
        arity_accepts(self.arity, argc)
    }

    /// Whether the row carries `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// Positions of the keys in a request of `argc` arguments, from the row's first key, last
    /// key and step, as Redis's legacy key spec (`COMMAND GETKEYS`, key-size limits). Empty
    /// when the command has no keys or `argc` is too short to hold them.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = usize::try_from(self.first_key).unwrap_or(0);
        let last = if self.last_key < 0 {
            let back = usize::try_from(self.last_key.unsigned_abs()).unwrap_or(usize::MAX);
            argc.checked_sub(back)
        } else {
            usize::try_from(self.last_key).ok()
        };
        let step = usize::try_from(self.key_step).unwrap_or(1).max(1);
        let range = match last {
            Some(last) if first > 0 => first..last.min(argc.saturating_sub(1)).saturating_add(1),
            _ => 0..0,
        };
        range.step_by(step)
    }
}

/// Whether `argc` arguments satisfy `arity` (`n`: exactly n; `-n`: at least n); also used for
/// subcommands, whose arities the container commands' handlers know.
pub fn arity_accepts(arity: i32, argc: usize) -> bool {
    let wanted = usize::try_from(arity.unsigned_abs()).unwrap_or(usize::MAX);
    if arity >= 0 {
        argc == wanted
    } else {
        argc >= wanted
    }
}

/// Checks a container command's subcommand arity (`CLIENT SETNAME` has arity 3); `full_name`
/// is Redis's `container|subcommand` name used in the error.
///
/// # Errors
/// `ERR wrong number of arguments for 'client|setname' command`.
pub(crate) fn check_subcommand_arity(
    full_name: &str,
    arity: i32,
    args: &Args,
) -> Result<(), CommandError> {
    if arity_accepts(arity, args.len()) {
        Ok(())
    } else {
        Err(CommandError::Reply(crate::errors::wrong_arity(full_name)))
    }
}

/// Redis's `string2ll` for the front end's own integer arguments (`SELECT`, `HELLO`, `CLIENT
/// KILL ID`, `CONFIG SET`): an optional `-`, digits without a leading zero, within `i64`; no
/// `+`, no spaces.
pub(crate) fn parse_integer(arg: &[u8]) -> Option<i64> {
    let digits = arg.strip_prefix(b"-").unwrap_or(arg);
    let canonical = match digits {
        [] => false,
        [b'0'] => arg.len() == 1,
        [first, ..] => (b'1'..=b'9').contains(first) && digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// Runs a request whose command, arity, authentication and sizes the connection has checked,
/// in the family that implements it.
///
/// # Errors
/// The handler's [`CommandError`], turned into an error reply by the connection.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    match spec.family {
        Family::Connection => connection::execute(ctx, spec, args).await,
        Family::Server => server::execute(ctx, spec, args).await,
        Family::String => string::execute(ctx, spec, args).await,
        Family::Keys => keys::execute(ctx, spec, args).await,
        Family::Expire => expire::execute(ctx, spec, args).await,
        Family::Ringkv => ringkv::execute(ctx, spec, args).await,
        Family::Cluster => cluster::execute(ctx, spec, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(first_key: i32, last_key: i32, key_step: i32) -> CommandSpec {
        CommandSpec {
            name: "t",
            arity: -1,
            flags: &[],
            first_key,
            last_key,
            key_step,
            group: "generic",
            summary: "",
            family: Family::Keys,
        }
    }

    #[test]
    fn key_positions_follow_first_last_and_step() {
        let positions = |s: CommandSpec, argc| s.key_positions(argc).collect::<Vec<_>>();
        assert_eq!(positions(spec(1, 1, 1), 3), vec![1]);
        assert_eq!(positions(spec(1, -1, 1), 4), vec![1, 2, 3]);
        assert_eq!(positions(spec(1, -1, 2), 5), vec![1, 3]);
        assert_eq!(positions(spec(0, 0, 0), 5), Vec::<usize>::new());
        assert_eq!(positions(spec(1, 1, 1), 1), Vec::<usize>::new());
        assert_eq!(positions(spec(1, -2, 1), 2), Vec::<usize>::new());
    }

    #[test]
    fn integers_parse_as_string2ll() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1a",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn arity_exact_and_minimum() {
        assert!(arity_accepts(2, 2));
        assert!(!arity_accepts(2, 3));
        assert!(arity_accepts(-2, 5));
        assert!(!arity_accepts(-2, 1));
    }
}
