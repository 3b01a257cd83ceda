//! ringkv's own commands: CONSISTENCY and KRANGE (DESIGN.md, "Consistency" and "Range
//! queries").
//!
//! Owns [`COMMANDS`] and [`execute`].
//!
//! - `CONSISTENCY` shows the connection's levels as a map `{read: LEVEL, write: LEVEL}` (a
//!   flat `read LEVEL write LEVEL` array in RESP2). `CONSISTENCY <level>` sets both;
//!   `CONSISTENCY READ <level> [WRITE <level>]` (either order, either alone) sets those given
//!   and answers `OK`. Levels are Cassandra's names, case-insensitive. This only records the
//!   levels on the connection: whether the cluster can meet one is decided per request by the
//!   cluster, which refuses with its own error (`TWO` on a single node).
//! - `KRANGE min max [LIMIT offset count] [WITHVALUES]` lists live keys between two bounds in
//!   byte order, with ZRANGEBYLEX's bound syntax ([`bounds`]); with `WITHVALUES` each key is
//!   followed by its value (a flat array, like ZRANGE's WITHSCORES). A negative `count`
//!   means no limit and a negative `offset` an empty answer, as in ZRANGEBYLEX.
//!
//! This module never touches the socket.

pub(crate) mod bounds;
#[cfg(test)]
mod node_tests;

use bytes::Bytes;
use ringkv_cluster::{Cluster, Level, Request, Response};

use crate::cmd::args::{error, is, parse_i64, SYNTAX};
use crate::cmd::{Args, CommandError, CommandResult, CommandSpec, Ctx, Family};
use crate::reply::Reply;
use bounds::LexBound;

/// ringkv's rows. CONSISTENCY is connection state, grouped with `connection`; KRANGE reads
/// keys like SCAN, grouped with `generic`. KRANGE declares no key positions: its bounds are
/// not keys, and the cluster routes the range itself.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "consistency",
        arity: -1,
        flags: &["fast", "stale", "loading"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        group: "connection",
        summary: "Shows or sets the connection's read and write consistency levels.",
        family: Family::Ringkv,
    },
    CommandSpec {
        name: "krange",
        arity: -3,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        group: "generic",
        summary: "Returns the keys, and optionally values, between two lexicographical bounds.",
        family: Family::Ringkv,
    },
];

/// Runs one ringkv command (arity already checked by the dispatcher).
///
/// # Errors
/// Unknown levels, bad bounds, syntax errors, and the cluster's failures.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    match spec.name {
        "consistency" => {
            let current = ctx.conn.consistency;
            match parse_consistency(&args[1.min(args.len())..], current)? {
                None => Ok(Reply::Map(vec![
                    (
                        Reply::bulk(Bytes::from_static(b"read")),
                        level_reply(current.read),
                    ),
                    (
                        Reply::bulk(Bytes::from_static(b"write")),
                        level_reply(current.write),
                    ),
                ])),
                Some(next) => {
                    ctx.conn.consistency = next;
                    Ok(Reply::ok())
                }
            }
        }
        "krange" => {
            let query = parse_krange(args)?;
            let consistency = ctx.conn.consistency;
            krange(ctx.cluster, consistency, query).await
        }
        other => Err(error(format!(
            "ERR command '{other}' is not a ringkv command"
        ))),
    }
}

fn level_reply(level: Level) -> Reply {
    Reply::bulk(Bytes::from_static(level.name().as_bytes()))
}

/// The error for a name that is no level.
fn unknown_level(name: &[u8]) -> CommandError {
    let valid: Vec<&str> = Level::ALL.iter().map(|l| l.name()).collect();
    error(format!(
        "ERR unknown consistency level '{}', valid levels: {}",
        String::from_utf8_lossy(name),
        valid.join(", ")
    ))
}

fn level(name: &[u8]) -> Result<Level, CommandError> {
    Level::parse(name).ok_or_else(|| unknown_level(name))
}

/// `None` to show; `Some(levels)` to set.
fn parse_consistency(
    options: &[Bytes],
    current: ringkv_cluster::Consistency,
) -> Result<Option<ringkv_cluster::Consistency>, CommandError> {
    match options {
        [] => Ok(None),
        [one] if !is(one, "read") && !is(one, "write") => {
            let l = level(one)?;
            Ok(Some(ringkv_cluster::Consistency { read: l, write: l }))
        }
        _ => {
            let mut next = current;
            let mut pairs = options.chunks(2);
            for pair in &mut pairs {
                match pair {
                    [which, name] if is(which, "read") => next.read = level(name)?,
                    [which, name] if is(which, "write") => next.write = level(name)?,
                    _ => return Err(error(SYNTAX)),
                }
            }
            Ok(Some(next))
        }
    }
}

/// A parsed KRANGE.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KrangeQuery {
    min: LexBound,
    max: LexBound,
    /// `None`: the answer is empty whatever the keys (negative offset).
    offset: Option<usize>,
    limit: Option<usize>,
    with_values: bool,
}

fn parse_krange(args: &Args) -> Result<KrangeQuery, CommandError> {
    let (min, max) = match (args.get(1), args.get(2)) {
        (Some(min), Some(max)) => (bounds::parse(min)?, bounds::parse(max)?),
        _ => return Err(error(crate::errors::wrong_arity("krange"))),
    };
    let mut query = KrangeQuery {
        min,
        max,
        offset: Some(0),
        limit: None,
        with_values: false,
    };
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i][..];
        if is(opt, "withvalues") {
            query.with_values = true;
            i += 1;
        } else if is(opt, "limit") && i + 2 < args.len() {
            let offset = parse_i64(&args[i + 1])?;
            let count = parse_i64(&args[i + 2])?;
            query.offset = usize::try_from(offset).ok();
            query.limit = usize::try_from(count).ok();
            i += 3;
        } else {
            return Err(error(SYNTAX));
        }
    }
    Ok(query)
}

async fn krange<C: Cluster>(
    cluster: &C,
    consistency: ringkv_cluster::Consistency,
    query: KrangeQuery,
) -> CommandResult {
    let (Some(start), Some(end), Some(offset)) =
        (query.min.as_start(), query.max.as_end(), query.offset)
    else {
        return Ok(Reply::Array(Vec::new()));
    };
    if query.limit == Some(0) || bounds::is_empty(&start, &end) {
        return Ok(Reply::Array(Vec::new()));
    }
    let request = Request::Range {
        start,
        end,
        offset,
        limit: query.limit,
        with_values: query.with_values,
    };
    let entries = match cluster.execute(request, consistency).await? {
        Response::Entries(entries) => entries,
        _ => return Err(error("ERR internal error: unexpected cluster response")),
    };
    let mut out = Vec::with_capacity(entries.len() * if query.with_values { 2 } else { 1 });
    for (key, value) in entries {
        out.push(Reply::Bulk(key));
        if query.with_values {
            out.push(value.map_or(Reply::Null, |v| Reply::Bulk(v.value)));
        }
    }
    Ok(Reply::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_cluster::Consistency;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn consistency_shows_and_sets_levels() {
        let current = Consistency::default();
        assert_eq!(parse_consistency(&[], current).ok(), Some(None));
        let both = parse_consistency(&args(&["one"]), current).expect("valid");
        assert_eq!(
            both,
            Some(Consistency {
                read: Level::One,
                write: Level::One
            })
        );
        let split = parse_consistency(&args(&["WRITE", "all", "read", "local_quorum"]), current)
            .expect("valid");
        assert_eq!(
            split,
            Some(Consistency {
                read: Level::LocalQuorum,
                write: Level::All
            })
        );
        let write_only = parse_consistency(&args(&["write", "any"]), current).expect("valid");
        assert_eq!(
            write_only,
            Some(Consistency {
                read: Level::Quorum,
                write: Level::Any
            })
        );
    }

    #[test]
    fn consistency_errors_name_the_valid_levels() {
        match parse_consistency(&args(&["most"]), Consistency::default()) {
            Err(CommandError::Reply(text)) => assert_eq!(
                text,
                "ERR unknown consistency level 'most', valid levels: ONE, TWO, THREE, QUORUM, \
                 ALL, ANY, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM"
            ),
            other => panic!("unexpected {other:?}"),
        }
        for bad in [&["read"][..], &["read", "one", "write"], &["both", "one"]] {
            assert!(parse_consistency(&args(bad), Consistency::default()).is_err());
        }
    }

    #[test]
    fn krange_options_parse() {
        let q = parse_krange(&args(&[
            "krange",
            "[a",
            "(c",
            "LIMIT",
            "1",
            "-1",
            "withvalues",
        ]))
        .expect("valid");
        assert_eq!(q.offset, Some(1));
        assert_eq!(q.limit, None);
        assert!(q.with_values);
        let q = parse_krange(&args(&["krange", "-", "+", "limit", "-1", "5"])).expect("valid");
        assert_eq!(q.offset, None);
        for bad in [
            &["krange", "a", "+"][..],
            &["krange", "-", "+", "limit", "1"],
            &["krange", "-", "+", "bogus"],
        ] {
            assert!(parse_krange(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
