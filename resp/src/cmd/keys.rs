//! The keyspace family: DEL UNLINK EXISTS TYPE TOUCH KEYS SCAN RANDOMKEY RENAME RENAMENX COPY,
//! with Redis 7 semantics and error texts (`db.c`).
//!
//! Owns [`COMMANDS`] and [`execute`]. Patterns follow Redis's `stringmatchlen` ([`glob`]).
//! Every key holds a string, so `TYPE` answers `string` or `none`, and `SCAN ... TYPE t` keeps
//! keys only for `t` = `string`. ringkv has one database, like Redis Cluster, so `COPY ... DB
//! n` refuses any `n` but 0 with Redis Cluster's text. This module never touches the socket.
//!
//! Atomicity: DEL and UNLINK delete each key conditionally on the version they read (so the
//! count is exact), key by key; keys in different slots are not removed in one step. RENAME
//! writes the destination and then deletes the source if it still holds the value read; a
//! concurrent writer of the source keeps its write, which orders that write after the rename.

pub(crate) mod glob;
#[cfg(test)]
mod node_tests;

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use ringkv_cluster::{
    key_slot, Cluster, ClusterError, Condition, Request, Response, ScanCursor, Write,
};

use crate::cmd::args::{
    error, is, parse_cursor, parse_i64, parse_i64_in, NO_SUCH_KEY, SAME_OBJECT, SYNTAX,
};
use crate::cmd::string::store::{Store, CONTENTION, MAX_ATTEMPTS};
use crate::cmd::{Args, CommandError, CommandResult, CommandSpec, Ctx, Family};
use crate::reply::Reply;

const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(Family::Keys, "generic", name, arity, flags, keys, summary)
}

/// The keyspace family's rows, as Redis 7's `COMMAND INFO` / `COMMAND DOCS` give them.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    row("del", -2, &["write"], (1, -1, 1), "Deletes one or more keys."),
    row("unlink", -2, &["write", "fast"], (1, -1, 1), "Asynchronously deletes one or more keys."),
    row("exists", -2, &["readonly", "fast"], (1, -1, 1), "Determines whether one or more keys exist."),
    row("type", 2, &["readonly", "fast"], (1, 1, 1), "Determines the type of value stored at a key."),
    row("touch", -2, &["readonly", "fast"], (1, -1, 1), "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    row("keys", 2, &["readonly"], (0, 0, 0), "Returns all key names that match a pattern."),
    row("scan", -2, &["readonly"], (0, 0, 0), "Iterates over the key names in the database."),
    row("randomkey", 1, &["readonly"], (0, 0, 0), "Returns a random key name from the database."),
    row("rename", 3, &["write"], (1, 2, 1), "Renames a key and overwrites the destination."),
    row("renamenx", 3, &["write", "fast"], (1, 2, 1), "Renames a key only when the target key name doesn't exist."),
    row("copy", -3, &["write", "denyoom"], (1, 2, 1), "Copies the value of a key to a new key."),
];

/// Keys per `Request::Scan` step when KEYS walks the whole keyspace.
const KEYS_SCAN_BATCH: usize = 1024;

/// Runs one keyspace command (arity already checked by the dispatcher).
///
/// # Errors
/// Redis's error replies for bad arguments, and the cluster's failures.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let store = Store::new(ctx);
    let a = |i: usize| {
        args.get(i)
            .ok_or_else(|| error(crate::errors::wrong_arity(spec.name)))
    };
    match spec.name {
        "del" | "unlink" => Ok(Reply::Integer(delete(&store, &args[1..]).await?)),
        "exists" | "touch" => {
            let values = store.get(args[1..].to_vec()).await?;
            Ok(Reply::Integer(
                values.iter().filter(|v| v.is_some()).count() as i64,
            ))
        }
        "type" => {
            let value = store.get_one(a(1)?).await?;
            Ok(Reply::simple(if value.is_some() {
                "string"
            } else {
                "none"
            }))
        }
        "keys" => keys(&store, a(1)?).await,
        "scan" => scan(&store, args).await,
        "randomkey" => match store
            .cluster
            .execute(Request::RandomKey, store.consistency)
            .await?
        {
            Response::Key(Some(key)) => Ok(Reply::Bulk(key)),
            Response::Key(None) => Ok(Reply::Null),
            _ => Err(error("ERR internal error: unexpected cluster response")),
        },
        "rename" => rename(&store, a(1)?, a(2)?, false).await,
        "renamenx" => rename(&store, a(1)?, a(2)?, true).await,
        "copy" => copy(&store, args).await,
        other => Err(error(format!(
            "ERR command '{other}' is not in the keyspace family"
        ))),
    }
}

/// Writes that depend on nothing but their own key: as one request, or, when the cluster
/// refuses a conditional request across slots (a multi-node ring), one request per slot.
/// Flags come back in order.
async fn write_per_key<C: Cluster>(
    store: &Store<'_, C>,
    writes: Vec<Write>,
) -> Result<Vec<bool>, CommandError> {
    match store.write(writes.clone()).await {
        Err(CommandError::Cluster(ClusterError::CrossSlot)) => {}
        other => return other,
    }
    let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        by_slot.entry(key_slot(&w.key)).or_default().push(i);
    }
    let mut flags = vec![false; writes.len()];
    for indices in by_slot.into_values() {
        let group = indices.iter().map(|&i| writes[i].clone()).collect();
        for (i, ok) in indices.into_iter().zip(store.write(group).await?) {
            flags[i] = ok;
        }
    }
    Ok(flags)
}

/// Deletes the distinct keys among `keys`; how many existed. Each delete is conditional on
/// the version read, so a key counts once even when others delete it concurrently.
async fn delete<C: Cluster>(store: &Store<'_, C>, keys: &[Bytes]) -> Result<i64, CommandError> {
    let mut seen = HashSet::with_capacity(keys.len());
    let mut pending: Vec<Bytes> = keys
        .iter()
        .filter(|k| seen.insert(&k[..]))
        .cloned()
        .collect();
    let mut deleted = 0i64;
    for _ in 0..MAX_ATTEMPTS {
        if pending.is_empty() {
            return Ok(deleted);
        }
        let values = store.get(pending.clone()).await?;
        let present: Vec<(Bytes, Write)> = pending
            .iter()
            .zip(values)
            .filter_map(|(key, value)| {
                value.map(|v| {
                    let write = Write {
                        key: key.clone(),
                        value: None,
                        expire_at_ms: 0,
                        condition: Condition::IfVersion(Some(v.version)),
                    };
                    (key.clone(), write)
                })
            })
            .collect();
        if present.is_empty() {
            return Ok(deleted);
        }
        let (keys, writes): (Vec<Bytes>, Vec<Write>) = present.into_iter().unzip();
        let written = write_per_key(store, writes).await?;
        pending = keys
            .into_iter()
            .zip(written)
            .filter_map(|(key, ok)| {
                if ok {
                    deleted += 1;
                    None
                } else {
                    Some(key)
                }
            })
            .collect();
    }
    Err(error(CONTENTION))
}

/// Every live key, walked with `Request::Scan` (a key seen twice across resumptions is
/// listed once).
async fn keys<C: Cluster>(store: &Store<'_, C>, pattern: &Bytes) -> CommandResult {
    let all = &pattern[..] == b"*";
    let mut cursor = ScanCursor(0);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    loop {
        let request = Request::Scan {
            cursor,
            count: KEYS_SCAN_BATCH,
        };
        let (batch, next) = match store.cluster.execute(request, store.consistency).await? {
            Response::Scanned { keys, next } => (keys, next),
            _ => return Err(error("ERR internal error: unexpected cluster response")),
        };
        for key in batch {
            if (all || glob::matches(pattern, &key)) && seen.insert(key.clone()) {
                out.push(Reply::Bulk(key));
            }
        }
        if next.0 == 0 {
            return Ok(Reply::Array(out));
        }
        cursor = next;
    }
}

/// SCAN's options.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ScanOptions {
    cursor: u64,
    count: usize,
    pattern: Option<Bytes>,
    type_name: Option<Bytes>,
}

/// Parses `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]` as `scanGenericCommand`.
fn parse_scan(args: &Args) -> Result<ScanOptions, CommandError> {
    let cursor = parse_cursor(args.get(1).map_or(&[][..], |c| &c[..]))?;
    let mut o = ScanOptions {
        cursor,
        count: 10,
        pattern: None,
        type_name: None,
    };
    let mut i = 2;
    while i < args.len() {
        let remaining = args.len() - i;
        let opt = &args[i][..];
        if is(opt, "count") && remaining >= 2 {
            let count = parse_i64(&args[i + 1])?;
            if count < 1 {
                return Err(error(SYNTAX));
            }
            o.count = usize::try_from(count).unwrap_or(usize::MAX);
        } else if is(opt, "match") && remaining >= 2 {
            let pattern = args[i + 1].clone();
            // "*" matches everything, so it is the same as no pattern.
            o.pattern = (&pattern[..] != b"*").then_some(pattern);
        } else if is(opt, "type") && remaining >= 2 {
            o.type_name = Some(args[i + 1].clone());
        } else {
            return Err(error(SYNTAX));
        }
        i += 2;
    }
    Ok(o)
}

/// SCAN: one cluster scan step, filtered by pattern and type. The reply's cursor is a bulk
/// string, as Redis sends it.
async fn scan<C: Cluster>(store: &Store<'_, C>, args: &Args) -> CommandResult {
    let o = parse_scan(args)?;
    let request = Request::Scan {
        cursor: ScanCursor(o.cursor),
        count: o.count,
    };
    let (keys, next) = match store.cluster.execute(request, store.consistency).await? {
        Response::Scanned { keys, next } => (keys, next),
        _ => return Err(error("ERR internal error: unexpected cluster response")),
    };
    // Unknown type names filter everything out, as Redis 7 does (it only warns).
    let type_ok = o
        .type_name
        .as_ref()
        .is_none_or(|t| t.eq_ignore_ascii_case(b"string"));
    let keys = keys
        .into_iter()
        .filter(|k| type_ok && o.pattern.as_ref().is_none_or(|p| glob::matches(p, k)))
        .map(Reply::Bulk)
        .collect();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.0.to_string())),
        Reply::Array(keys),
    ]))
}

/// RENAME / RENAMENX: the destination takes the source's value and expiry.
async fn rename<C: Cluster>(
    store: &Store<'_, C>,
    src: &Bytes,
    dst: &Bytes,
    nx: bool,
) -> CommandResult {
    let done = || {
        if nx {
            Reply::Integer(1)
        } else {
            Reply::ok()
        }
    };
    for _ in 0..MAX_ATTEMPTS {
        let values = store.get(vec![src.clone(), dst.clone()]).await?;
        let mut values = values.into_iter();
        let (Some(source), target) = (values.next().flatten(), values.next().flatten()) else {
            return Err(error(NO_SUCH_KEY));
        };
        if src == dst {
            return Ok(if nx { Reply::Integer(0) } else { Reply::ok() });
        }
        if nx && target.is_some() {
            return Ok(Reply::Integer(0));
        }
        let put = Write {
            key: dst.clone(),
            value: Some(source.value.clone()),
            expire_at_ms: source.expire_at_ms,
            condition: if nx {
                Condition::IfVersion(None)
            } else {
                Condition::Always
            },
        };
        let remove = Write {
            key: src.clone(),
            value: None,
            expire_at_ms: 0,
            condition: Condition::IfVersion(Some(source.version)),
        };
        if nx {
            // The source may only go once the destination was claimed, so two requests.
            if !store.write_one(put).await? {
                continue;
            }
            store.write_one(remove).await?;
        } else {
            store.write(vec![put, remove]).await?;
        }
        return Ok(done());
    }
    Err(error(CONTENTION))
}

/// COPY source destination [DB destination-db] [REPLACE].
async fn copy<C: Cluster>(store: &Store<'_, C>, args: &Args) -> CommandResult {
    let (src, dst) = match (args.get(1), args.get(2)) {
        (Some(s), Some(d)) => (s, d),
        _ => return Err(error(crate::errors::wrong_arity("copy"))),
    };
    let mut replace = false;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j][..];
        if is(opt, "replace") {
            replace = true;
        } else if is(opt, "db") && j + 1 < args.len() {
            let db = parse_i64_in(&args[j + 1], i32::MIN.into(), i32::MAX.into())?;
            // Redis's default 16 databases bound the index; ringkv, like Redis Cluster,
            // has only database 0.
            if !(0..16).contains(&db) {
                return Err(error(crate::errors::DB_INDEX_OUT_OF_RANGE));
            }
            if db != 0 {
                return Err(error(
                    "ERR Copying to another database is not allowed in cluster mode",
                ));
            }
            j += 1;
        } else {
            return Err(error(SYNTAX));
        }
        j += 1;
    }
    if src == dst {
        return Err(error(SAME_OBJECT));
    }
    let values = store.get(vec![src.clone(), dst.clone()]).await?;
    let mut values = values.into_iter();
    let (Some(source), target) = (values.next().flatten(), values.next().flatten()) else {
        return Ok(Reply::Integer(0));
    };
    if target.is_some() && !replace {
        return Ok(Reply::Integer(0));
    }
    let write = Write {
        key: dst.clone(),
        value: Some(source.value),
        expire_at_ms: source.expire_at_ms,
        condition: if replace {
            Condition::Always
        } else {
            Condition::IfVersion(None)
        },
    };
    Ok(Reply::Integer(i64::from(store.write_one(write).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn scan_options_parse_like_redis() {
        let o = parse_scan(&args(&[
            "scan", "42", "MATCH", "a*", "count", "5", "TYPE", "string",
        ]))
        .expect("valid");
        assert_eq!(o.cursor, 42);
        assert_eq!(o.count, 5);
        assert_eq!(o.pattern.as_deref(), Some(&b"a*"[..]));
        assert_eq!(o.type_name.as_deref(), Some(&b"string"[..]));
        let o = parse_scan(&args(&["scan", "0", "match", "*"])).expect("valid");
        assert_eq!(o.pattern, None);
        assert_eq!(o.count, 10);
        for (bad, text) in [
            (&["scan", "x"][..], "ERR invalid cursor"),
            (&["scan", "0", "count", "0"], SYNTAX),
            (&["scan", "0", "count", "x"], crate::errors::NOT_INTEGER),
            (&["scan", "0", "match"], SYNTAX),
            (&["scan", "0", "bogus", "1"], SYNTAX),
        ] {
            match parse_scan(&args(bad)) {
                Err(CommandError::Reply(got)) => assert_eq!(got, text, "{bad:?}"),
                other => panic!("{bad:?}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn rows_belong_to_this_family() {
        assert!(COMMANDS.iter().all(|c| c.family == Family::Keys));
    }
}
