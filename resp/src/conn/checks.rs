//! The checks every request passes before its command runs.
//!
//! Owns [`admit`]: command lookup (case-insensitive), arity, authentication and the key and
//! value size limits, in Redis's order (`processCommand`: unknown command, then arity, then
//! `NOAUTH`), with Redis's texts. Never runs a command and never reads the cluster.

use bytes::Bytes;

use crate::cmd::table;
use crate::cmd::CommandSpec;
use crate::conn::ConnState;
use crate::errors;
use crate::reply::Reply;
use crate::server::ServerState;

/// Finds the command of `args` and checks that it may run: its table index and row, or the
/// error reply that refuses it.
///
/// The size limits apply to arguments as they arrive: an argument at a key position longer
/// than `max_key_bytes` is refused as a key, any other longer than `max_value_bytes` as a
/// value. A family that builds a value bigger than its arguments (APPEND, SETRANGE) checks the
/// result itself against `ctx.server.config.max_value_bytes`.
pub(crate) fn admit(
    server: &ServerState,
    state: &ConnState,
    args: &[Bytes],
) -> Result<(usize, &'static CommandSpec), Reply> {
    let table = table::table();
    let Some((index, spec)) = args.first().and_then(|name| table.lookup(name)) else {
        crate::server::stats::add(&server.stats.unknown_commands, 1);
        return Err(Reply::Error(errors::unknown_command(args)));
    };
    if !spec.accepts_arity(args.len()) {
        server.stats.record_rejected(index);
        return Err(Reply::error(errors::wrong_arity(spec.name)));
    }
    if !state.authenticated && server.auth_required() && !spec.has_flag("no_auth") {
        server.stats.record_rejected(index);
        return Err(Reply::error(errors::NOAUTH));
    }
    if let Some(refusal) = check_sizes(server, spec, args) {
        server.stats.record_rejected(index);
        return Err(refusal);
    }
    Ok((index, spec))
}

/// The size-limit refusal for `args`, if any argument is too long.
fn check_sizes(server: &ServerState, spec: &CommandSpec, args: &[Bytes]) -> Option<Reply> {
    let config = &server.config;
    let longest = args.iter().skip(1).map(Bytes::len).max().unwrap_or(0);
    // The common case: everything is shorter than both limits.
    if longest <= config.max_key_bytes.min(config.max_value_bytes) {
        return None;
    }
    for position in spec.key_positions(args.len()) {
        if args
            .get(position)
            .is_some_and(|key| key.len() > config.max_key_bytes)
        {
            return Some(Reply::error(errors::key_too_large(config.max_key_bytes)));
        }
    }
    if longest > config.max_value_bytes {
        return Some(Reply::error(errors::value_too_large(
            config.max_value_bytes,
        )));
    }
    None
}
