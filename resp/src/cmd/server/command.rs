//! `COMMAND`, `COMMAND COUNT|INFO|DOCS|GETKEYS|LIST|HELP`, answered from the command table.
//!
//! Owns the shape of Redis 7's command rows (name, arity, flags, first key, last key, step, ACL
//! categories, tips, key specs, subcommands) and docs maps, derived from [`CommandSpec`]. Reads
//! the table only.

use bytes::Bytes;

use super::error;
use crate::cmd::connection::help;
use crate::cmd::table::table;
use crate::cmd::{check_subcommand_arity, Args, CommandResult, CommandSpec};
use crate::errors;
use crate::reply::Reply;

fn text(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn status(s: &str) -> Reply {
    Reply::Simple(Bytes::copy_from_slice(s.as_bytes()))
}

/// `COMMAND [subcommand ...]`.
pub(super) fn command(args: &Args) -> CommandResult {
    let Some(sub) = args.get(1) else {
        return Ok(Reply::Array(
            table().rows().iter().map(|s| info(s)).collect(),
        ));
    };
    let sub = sub.to_ascii_lowercase();
    match sub.as_slice() {
        b"count" => {
            check_subcommand_arity("command|count", 2, args)?;
            Ok(Reply::Integer(
                i64::try_from(table().len()).unwrap_or(i64::MAX),
            ))
        }
        b"info" => {
            check_subcommand_arity("command|info", -2, args)?;
            if args.len() == 2 {
                return Ok(Reply::Array(
                    table().rows().iter().map(|s| info(s)).collect(),
                ));
            }
            Ok(Reply::Array(
                args[2..]
                    .iter()
                    .map(|name| table().lookup(name).map_or(Reply::Null, |(_, s)| info(s)))
                    .collect(),
            ))
        }
        b"docs" => {
            check_subcommand_arity("command|docs", -2, args)?;
            let specs: Vec<&CommandSpec> = if args.len() == 2 {
                table().rows().to_vec()
            } else {
                args[2..]
                    .iter()
                    .filter_map(|name| table().lookup(name).map(|(_, s)| s))
                    .collect()
            };
            Ok(Reply::Map(
                specs.into_iter().map(|s| (text(s.name), docs(s))).collect(),
            ))
        }
        b"getkeys" => {
            check_subcommand_arity("command|getkeys", -3, args)?;
            getkeys(&args[2..])
        }
        b"list" => {
            check_subcommand_arity("command|list", -2, args)?;
            if args.len() > 2 {
                return Err(error(errors::SYNTAX));
            }
            Ok(Reply::Array(
                table().rows().iter().map(|s| text(s.name)).collect(),
            ))
        }
        b"help" => {
            check_subcommand_arity("command|help", 2, args)?;
            Ok(help(&[
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "GETKEYS <full-command>",
                "    Return the keys from a full command.",
                "HELP",
                "    Print this help.",
            ]))
        }
        _ => Err(error(errors::unknown_subcommand("command", &args[1]))),
    }
}

/// One `COMMAND INFO` row, Redis 7's ten fields.
fn info(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        text(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        Reply::Set(spec.flags.iter().map(|f| status(f)).collect()),
        Reply::Integer(i64::from(spec.first_key)),
        Reply::Integer(i64::from(spec.last_key)),
        Reply::Integer(i64::from(spec.key_step)),
        Reply::Set(acl_categories(spec).into_iter().map(status).collect()),
        Reply::Array(Vec::new()),
        Reply::Array(key_specs(spec)),
        Reply::Array(Vec::new()),
    ])
}

/// ACL categories derived from the flags and the group, as Redis assigns them.
fn acl_categories(spec: &CommandSpec) -> Vec<&'static str> {
    let mut categories = Vec::new();
    if spec.has_flag("write") {
        categories.push("@write");
    }
    if spec.has_flag("readonly") {
        categories.push("@read");
    }
    match spec.group {
        "string" => categories.push("@string"),
        "generic" => categories.push("@keyspace"),
        "connection" => categories.push("@connection"),
        "scripting" => categories.push("@scripting"),
        _ => {}
    }
    categories.push(if spec.has_flag("fast") {
        "@fast"
    } else {
        "@slow"
    });
    categories
}

/// Redis 7 key specs from the row's first key, last key and step: one `index` / `range` spec.
fn key_specs(spec: &CommandSpec) -> Vec<Reply> {
    if spec.first_key <= 0 {
        return Vec::new();
    }
    let last_key = if spec.last_key < 0 {
        spec.last_key
    } else {
        spec.last_key - spec.first_key
    };
    let access = if spec.has_flag("write") { "RW" } else { "RO" };
    vec![Reply::Map(vec![
        (text("flags"), Reply::Set(vec![status(access)])),
        (
            text("begin_search"),
            Reply::Map(vec![
                (text("type"), text("index")),
                (
                    text("spec"),
                    Reply::Map(vec![(
                        text("index"),
                        Reply::Integer(i64::from(spec.first_key)),
                    )]),
                ),
            ]),
        ),
        (
            text("find_keys"),
            Reply::Map(vec![
                (text("type"), text("range")),
                (
                    text("spec"),
                    Reply::Map(vec![
                        (text("lastkey"), Reply::Integer(i64::from(last_key))),
                        (text("keystep"), Reply::Integer(i64::from(spec.key_step))),
                        (text("limit"), Reply::Integer(0)),
                    ]),
                ),
            ]),
        ),
    ])]
}

/// One `COMMAND DOCS` entry.
fn docs(spec: &CommandSpec) -> Reply {
    Reply::Map(vec![
        (text("summary"), text(spec.summary)),
        (text("group"), text(spec.group)),
    ])
}

/// `COMMAND GETKEYS <command> <args...>`.
fn getkeys(command: &Args) -> CommandResult {
    let Some((_, spec)) = command.first().and_then(|name| table().lookup(name)) else {
        return Err(error(errors::GETKEYS_INVALID_COMMAND));
    };
    if !spec.accepts_arity(command.len()) {
        return Err(error(errors::GETKEYS_INVALID_ARGS));
    }
    let keys: Vec<Reply> = spec
        .key_positions(command.len())
        .filter_map(|i| command.get(i).cloned().map(Reply::Bulk))
        .collect();
    if keys.is_empty() {
        return Err(error(errors::GETKEYS_NO_KEYS));
    }
    Ok(Reply::Array(keys))
}
