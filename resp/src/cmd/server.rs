//! Server commands: INFO DBSIZE FLUSHALL FLUSHDB TIME COMMAND CONFIG FUNCTION SCRIPT.
//!
//! Owns their handlers and table rows ([`COMMANDS`]). Parts: `server/info.rs` (`INFO`),
//! `server/command.rs` (`COMMAND` and its subcommands, answered from the command table),
//! `server/config.rs` (`CONFIG GET|SET`). `DBSIZE` and `FLUSHALL` go to the cluster at the
//! connection's consistency; the rest read the server's shared state. `FUNCTION FLUSH` and
//! `SCRIPT FLUSH` answer `OK`: ringkv has no scripts, and test suites call them between runs.
//! Never touches a socket.

mod command;
mod config;
mod info;

use bytes::Bytes;
use ringkv_cluster::{Cluster, Request, Response};

use super::connection::help;
use super::{check_subcommand_arity, Args, CommandError, CommandResult, CommandSpec, Ctx, Family};
use crate::errors;
use crate::reply::Reply;

/// The server family's rows.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    row(
        "info",
        -1,
        &["loading", "stale"],
        "server",
        "Returns information and statistics about the server.",
    ),
    row(
        "dbsize",
        1,
        &["readonly", "fast"],
        "server",
        "Returns the number of keys in the database.",
    ),
    row(
        "flushall",
        -1,
        &["write"],
        "server",
        "Removes all keys from all databases.",
    ),
    row(
        "flushdb",
        -1,
        &["write"],
        "server",
        "Remove all keys from the current database.",
    ),
    row(
        "time",
        1,
        &["loading", "stale", "fast"],
        "server",
        "Returns the server time.",
    ),
    row(
        "command",
        -1,
        &["loading", "stale"],
        "server",
        "Returns detailed information about all commands.",
    ),
    row(
        "config",
        -2,
        &[],
        "server",
        "A container for server configuration commands.",
    ),
    row(
        "function",
        -2,
        &[],
        "scripting",
        "A container for function commands.",
    ),
    row(
        "script",
        -2,
        &[],
        "scripting",
        "A container for Lua scripts management commands.",
    ),
];

const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(
        Family::Server,
        group,
        name,
        arity,
        flags,
        (0, 0, 0),
        summary,
    )
}

/// Runs a server command.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    match spec.name {
        "info" => info::info(ctx, args).await,
        "dbsize" => dbsize(ctx).await,
        "flushall" | "flushdb" => flush(ctx, args).await,
        "time" => Ok(time(ctx)),
        "command" => command::command(args),
        "config" => config::config(ctx, args),
        "function" => flush_scripts(args, "function", errors::FUNCTION_FLUSH_OPTION),
        "script" => flush_scripts(args, "script", errors::SCRIPT_FLUSH_OPTION),
        _ => Err(error(errors::unknown_command(args))),
    }
}

/// An error reply from text that may not be UTF-8 (it quotes client bytes).
fn error(text: impl Into<Bytes>) -> CommandError {
    CommandError::Reply(String::from_utf8_lossy(&text.into()).into_owned())
}

/// A cluster answer of the wrong kind: a bug in the cluster, reported rather than hidden.
fn unexpected(response: &Response) -> CommandError {
    CommandError::Reply(format!(
        "ERR internal error: unexpected cluster response {response:?}"
    ))
}

/// The number of live keys, as the cluster estimates it.
async fn key_count<C: Cluster>(ctx: &Ctx<'_, C>) -> Result<u64, CommandError> {
    match ctx
        .cluster
        .execute(Request::CountKeys, ctx.conn.consistency)
        .await?
    {
        Response::Count(n) => Ok(n),
        other => Err(unexpected(&other)),
    }
}

async fn dbsize<C: Cluster>(ctx: &mut Ctx<'_, C>) -> CommandResult {
    let count = key_count(ctx).await?;
    Ok(Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)))
}

/// `FLUSHALL|FLUSHDB [ASYNC|SYNC]`: with one database they are the same; both modes delete
/// everything before replying.
async fn flush<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    match args {
        [_] => {}
        [_, mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {}
        _ => return Err(error(errors::SYNTAX)),
    }
    match ctx
        .cluster
        .execute(Request::FlushAll, ctx.conn.consistency)
        .await?
    {
        Response::Done => Ok(Reply::ok()),
        other => Err(unexpected(&other)),
    }
}

/// `TIME`: the cluster clock, as seconds and microseconds (bulk strings, as Redis).
fn time<C: Cluster>(ctx: &Ctx<'_, C>) -> Reply {
    let now_ms = ctx.cluster.now_ms();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from((now_ms / 1000).to_string())),
        Reply::Bulk(Bytes::from(((now_ms % 1000) * 1000).to_string())),
    ])
}

/// `FUNCTION FLUSH [ASYNC|SYNC]` and `SCRIPT FLUSH [ASYNC|SYNC]`: nothing to flush.
fn flush_scripts(args: &Args, container: &str, bad_option: &'static str) -> CommandResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"flush" => {
            check_subcommand_arity(&format!("{container}|flush"), -2, args)?;
            match args {
                [_, _] => Ok(Reply::ok()),
                [_, _, mode]
                    if mode.eq_ignore_ascii_case(b"async")
                        || mode.eq_ignore_ascii_case(b"sync") =>
                {
                    Ok(Reply::ok())
                }
                _ => Err(error(bad_option)),
            }
        }
        b"help" => {
            check_subcommand_arity(&format!("{container}|help"), 2, args)?;
            Ok(help(if container == "script" {
                &[
                    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "FLUSH [ASYNC|SYNC]",
                    "    Flush the Lua scripts cache. ringkv has no scripts: always OK.",
                    "HELP",
                    "    Print this help.",
                ]
            } else {
                &[
                    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "FLUSH [ASYNC|SYNC]",
                    "    Delete all the libraries. ringkv has no functions: always OK.",
                    "HELP",
                    "    Print this help.",
                ]
            }))
        }
        _ => Err(error(errors::unknown_subcommand(container, &args[1]))),
    }
}
