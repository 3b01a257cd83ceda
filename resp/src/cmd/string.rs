//! The string family: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX APPEND
//! STRLEN GETRANGE SETRANGE INCR DECR INCRBY DECRBY INCRBYFLOAT SETBIT GETBIT BITCOUNT BITPOS
//! BITOP LCS, with Redis 7 semantics, options and error texts (`t_string.c`, `bitops.c`).
//!
//! Owns [`COMMANDS`] and [`execute`]. Every value in ringkv is a string, so Redis's
//! `WRONGTYPE` never arises. Commands that depend on a key's current value are
//! read-modify-writes through [`store::Store::update`] (compare-and-set on the version,
//! retried on a lost race); plain overwrites (SET, MSET, SETEX) are single unconditional
//! writes. This module never touches the socket or chooses an encoding: it returns a
//! [`Reply`].

pub(crate) mod bits;
pub(crate) mod float;
pub(crate) mod lcs;
#[cfg(test)]
mod node_tests;
pub(crate) mod store;

use bytes::Bytes;
use ringkv_cluster::{Cluster, Condition, StoredValue, Write};

use crate::cmd::args::{
    self, error, invalid_expire_time, is, parse_i64, DECR_OVERFLOW, INCR_OVERFLOW, NAN_OR_INFINITY,
    NOT_FLOAT, NOT_INTEGER, SYNTAX,
};
use crate::cmd::{Args, CommandError, CommandResult, CommandSpec, Ctx, Family};
use crate::reply::Reply;
use bits::Unit;
use store::{Step, Store};

const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(Family::String, group, name, arity, flags, keys, summary)
}

const READ_FAST: &[&str] = &["readonly", "fast"];
const READ: &[&str] = &["readonly"];
const WRITE_OOM: &[&str] = &["write", "denyoom"];
const WRITE_OOM_FAST: &[&str] = &["write", "denyoom", "fast"];
const WRITE_FAST: &[&str] = &["write", "fast"];
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);

/// The string family's rows: arity, flags, key positions and group as Redis 7's
/// `COMMAND INFO` / `COMMAND DOCS` give them.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    row("get", 2, READ_FAST, ONE_KEY, "string", "Returns the string value of a key."),
    row("set", -3, WRITE_OOM, ONE_KEY, "string", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    row("setnx", 3, WRITE_OOM_FAST, ONE_KEY, "string", "Set the string value of a key only when the key doesn't exist."),
    row("setex", 4, WRITE_OOM, ONE_KEY, "string", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    row("psetex", 4, WRITE_OOM, ONE_KEY, "string", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    row("getset", 3, WRITE_OOM_FAST, ONE_KEY, "string", "Returns the previous string value of a key after setting it to a new value."),
    row("getdel", 2, WRITE_FAST, ONE_KEY, "string", "Returns the string value of a key after deleting the key."),
    row("getex", -2, WRITE_FAST, ONE_KEY, "string", "Returns the string value of a key after setting its expiration time."),
    row("mget", -2, READ_FAST, (1, -1, 1), "string", "Atomically returns the string values of one or more keys."),
    row("mset", -3, WRITE_OOM, (1, -1, 2), "string", "Atomically creates or modifies the string values of one or more keys."),
    row("msetnx", -3, WRITE_OOM, (1, -1, 2), "string", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    row("append", 3, WRITE_OOM_FAST, ONE_KEY, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    row("strlen", 2, READ_FAST, ONE_KEY, "string", "Returns the length of a string value."),
    row("getrange", 4, READ, ONE_KEY, "string", "Returns a substring of the string stored at a key."),
    row("setrange", 4, WRITE_OOM, ONE_KEY, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    row("incr", 2, WRITE_OOM_FAST, ONE_KEY, "string", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    row("decr", 2, WRITE_OOM_FAST, ONE_KEY, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    row("incrby", 3, WRITE_OOM_FAST, ONE_KEY, "string", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    row("decrby", 3, WRITE_OOM_FAST, ONE_KEY, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    row("incrbyfloat", 3, WRITE_OOM_FAST, ONE_KEY, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    row("setbit", 4, WRITE_OOM, ONE_KEY, "bitmap", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    row("getbit", 3, READ_FAST, ONE_KEY, "bitmap", "Returns a bit value by offset."),
    row("bitcount", -2, READ, ONE_KEY, "bitmap", "Counts the number of set bits (population counting) in a string."),
    row("bitpos", -3, READ, ONE_KEY, "bitmap", "Finds the first set (1) or clear (0) bit in a string."),
    row("bitop", -4, WRITE_OOM, (2, -1, 1), "bitmap", "Performs bitwise operations on multiple strings, and stores the result."),
    row("lcs", -3, READ, (1, 2, 1), "string", "Finds the longest common substring."),
];

/// Runs one string-family command (arity already checked by the dispatcher).
///
/// # Errors
/// Redis's error replies for bad arguments, and the cluster's failures.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let store = Store::new(ctx);
    let a = |i: usize| arg(spec, args, i);
    match spec.name {
        "get" => {
            let value = store.get_one(a(1)?).await?;
            // Moved, not cloned: the read's copy is not needed after the reply.
            Ok(value.map_or(Reply::Null, |v| Reply::Bulk(v.value)))
        }
        "set" => set(&store, spec, args).await,
        "setnx" => {
            store.check_len(a(2)?.len())?;
            let written = store
                .write_one(put(a(1)?, a(2)?.clone(), 0, Condition::IfVersion(None)))
                .await?;
            Ok(Reply::Integer(i64::from(written)))
        }
        "setex" | "psetex" => {
            let unit_ms = if spec.name == "setex" { 1000 } else { 1 };
            let expire_at = expire_at_ms(a(2)?, unit_ms, true, store.now_ms(), spec.name)?;
            store.check_len(a(3)?.len())?;
            store
                .write_one(put(a(1)?, a(3)?.clone(), expire_at, Condition::Always))
                .await?;
            Ok(Reply::ok())
        }
        "getset" => {
            let new = a(2)?.clone();
            store.check_len(new.len())?;
            store
                .update(a(1)?, |cur, _| {
                    Ok(Step::Write {
                        value: Some(new.clone()),
                        expire_at_ms: 0,
                        reply: value_reply(cur),
                    })
                })
                .await
        }
        "getdel" => {
            store
                .update(a(1)?, |cur, _| {
                    Ok(match cur {
                        None => Step::Reply(Reply::Null),
                        Some(cur) => Step::Write {
                            value: None,
                            expire_at_ms: 0,
                            reply: Reply::Bulk(cur.value.clone()),
                        },
                    })
                })
                .await
        }
        "getex" => getex(&store, spec, args).await,
        "mget" => {
            let values = store.get(args[1..].to_vec()).await?;
            Ok(Reply::Array(
                values.iter().map(|v| value_reply(v.as_ref())).collect(),
            ))
        }
        "mset" => mset(&store, spec, args).await,
        "msetnx" => msetnx(&store, spec, args).await,
        "append" => {
            let suffix = a(2)?;
            store
                .update(a(1)?, |cur, _| {
                    let mut value = cur.map(|c| c.value.to_vec()).unwrap_or_default();
                    store.check_len(value.len() + suffix.len())?;
                    value.extend_from_slice(suffix);
                    Ok(Step::Write {
                        reply: Reply::Integer(value.len() as i64),
                        value: Some(Bytes::from(value)),
                        expire_at_ms: cur.map_or(0, |c| c.expire_at_ms),
                    })
                })
                .await
        }
        "strlen" => {
            let value = store.get_one(a(1)?).await?;
            Ok(Reply::Integer(value.map_or(0, |v| v.value.len() as i64)))
        }
        "getrange" => {
            let start = parse_i64(a(2)?)?;
            let end = parse_i64(a(3)?)?;
            let value = store.get_one(a(1)?).await?;
            let value = value.map(|v| v.value).unwrap_or_default();
            Ok(Reply::Bulk(get_range(&value, start, end)))
        }
        "setrange" => setrange(&store, spec, args).await,
        "incr" => incr_by(&store, a(1)?, 1).await,
        "decr" => incr_by(&store, a(1)?, -1).await,
        "incrby" => incr_by(&store, a(1)?, parse_i64(a(2)?)?).await,
        "decrby" => {
            let by = parse_i64(a(2)?)?;
            let by = by.checked_neg().ok_or_else(|| error(DECR_OVERFLOW))?;
            incr_by(&store, a(1)?, by).await
        }
        "incrbyfloat" => incr_by_float(&store, a(1)?, a(2)?).await,
        "setbit" => {
            let offset = bits::parse_bit_offset(a(2)?)?;
            let on = bits::parse_bit_value(a(3)?)?;
            let needed = usize::try_from(offset >> 3).map_or(usize::MAX, |b| b + 1);
            store.check_len(needed)?;
            store
                .update(a(1)?, |cur, _| {
                    let mut value = cur.map(|c| c.value.to_vec()).unwrap_or_default();
                    let old = bits::set_bit(&mut value, offset, on);
                    Ok(Step::Write {
                        value: Some(Bytes::from(value)),
                        expire_at_ms: cur.map_or(0, |c| c.expire_at_ms),
                        reply: Reply::Integer(i64::from(old)),
                    })
                })
                .await
        }
        "getbit" => {
            let offset = bits::parse_bit_offset(a(2)?)?;
            let value = store.get_one(a(1)?).await?;
            let bit = value.is_some_and(|v| bits::get_bit(&v.value, offset));
            Ok(Reply::Integer(i64::from(bit)))
        }
        "bitcount" => bitcount(&store, spec, args).await,
        "bitpos" => bitpos(&store, spec, args).await,
        "bitop" => bitop(&store, spec, args).await,
        "lcs" => lcs(&store, spec, args).await,
        other => Err(error(format!(
            "ERR command '{other}' is not in the string family"
        ))),
    }
}

/// Argument `i`, or the arity error (the dispatcher checks arity first, so this only guards
/// against a table row that disagrees with its handler).
fn arg<'a>(spec: &CommandSpec, args: &'a Args, i: usize) -> Result<&'a Bytes, CommandError> {
    args.get(i)
        .ok_or_else(|| error(crate::errors::wrong_arity(spec.name)))
}

/// A bulk reply of a value, or null.
fn value_reply(value: Option<&StoredValue>) -> Reply {
    match value {
        Some(v) => Reply::Bulk(v.value.clone()),
        None => Reply::Null,
    }
}

/// An unconditional-or-conditional write of one value.
fn put(key: &Bytes, value: Bytes, expire_at_ms: u64, condition: Condition) -> Write {
    Write {
        key: key.clone(),
        value: Some(value),
        expire_at_ms,
        condition,
    }
}

/// `getExpireMillisecondsOrReply`: an expire argument as an absolute unix ms. `unit_ms` is
/// 1000 for seconds; `relative` adds the current time (EX, PX). Non-positive times and
/// overflows are `invalid expire time in '<command>' command`.
pub(crate) fn expire_at_ms(
    arg: &[u8],
    unit_ms: i64,
    relative: bool,
    now_ms: u64,
    command: &str,
) -> Result<u64, CommandError> {
    let value = parse_i64(arg)?;
    if value <= 0 {
        return Err(invalid_expire_time(command));
    }
    let mut ms = value
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid_expire_time(command))?;
    if relative {
        let now = i64::try_from(now_ms).map_err(|_| invalid_expire_time(command))?;
        ms = ms
            .checked_add(now)
            .ok_or_else(|| invalid_expire_time(command))?;
    }
    u64::try_from(ms).map_err(|_| invalid_expire_time(command))
}

/// Which expiry option SET / GETEX were given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireKind {
    fn unit_ms(self) -> i64 {
        match self {
            ExpireKind::Ex | ExpireKind::ExAt => 1000,
            ExpireKind::Px | ExpireKind::PxAt => 1,
        }
    }

    fn relative(self) -> bool {
        matches!(self, ExpireKind::Ex | ExpireKind::Px)
    }
}

/// SET's and GETEX's options, as `parseExtendedStringArgumentsOrReply` accepts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ExtendedOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, Bytes)>,
}

/// Parses the options after `first` (3 for SET, 2 for GETEX). Repeating an option is allowed;
/// any conflicting pair, an option the command does not take, or a missing time is
/// `ERR syntax error` — Redis's exact rules.
fn parse_extended(
    args: &Args,
    first: usize,
    is_set: bool,
) -> Result<ExtendedOptions, CommandError> {
    let mut o = ExtendedOptions::default();
    let mut j = first;
    while j < args.len() {
        let opt = &args[j][..];
        let next = args.get(j + 1);
        let kind = o.expire.as_ref().map(|(k, _)| *k);
        let other_expire = |k: ExpireKind| kind.is_some_and(|have| have != k);
        if is(opt, "nx") && !o.xx && is_set {
            o.nx = true;
        } else if is(opt, "xx") && !o.nx && is_set {
            o.xx = true;
        } else if is(opt, "get") && is_set {
            o.get = true;
        } else if is(opt, "keepttl") && !o.persist && kind.is_none() && is_set {
            o.keep_ttl = true;
        } else if is(opt, "persist") && !is_set && kind.is_none() && !o.keep_ttl {
            o.persist = true;
        } else if let (Some(k), Some(value)) = (expire_option(opt), next) {
            if o.keep_ttl || o.persist || other_expire(k) {
                return Err(error(SYNTAX));
            }
            o.expire = Some((k, value.clone()));
            j += 1;
        } else {
            return Err(error(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

fn expire_option(opt: &[u8]) -> Option<ExpireKind> {
    [
        ("ex", ExpireKind::Ex),
        ("px", ExpireKind::Px),
        ("exat", ExpireKind::ExAt),
        ("pxat", ExpireKind::PxAt),
    ]
    .into_iter()
    .find(|(name, _)| is(opt, name))
    .map(|(_, k)| k)
}

fn options_expire_at(
    o: &ExtendedOptions,
    now_ms: u64,
    command: &str,
) -> Result<Option<u64>, CommandError> {
    o.expire
        .as_ref()
        .map(|(kind, value)| expire_at_ms(value, kind.unit_ms(), kind.relative(), now_ms, command))
        .transpose()
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL].
async fn set<C: Cluster>(store: &Store<'_, C>, spec: &CommandSpec, args: &Args) -> CommandResult {
    let key = arg(spec, args, 1)?;
    let value = arg(spec, args, 2)?;
    let o = parse_extended(args, 3, true)?;
    // The cluster clock is read only for an expiry option: a plain SET needs no time.
    let expire_at = match o.expire {
        Some(_) => options_expire_at(&o, store.now_ms(), spec.name)?,
        None => None,
    };
    store.check_len(value.len())?;
    if !o.get && !o.keep_ttl && !o.xx {
        // Plain SET and SET NX need no read: NX is a write conditional on absence.
        let condition = if o.nx {
            Condition::IfVersion(None)
        } else {
            Condition::Always
        };
        let mut write = put(key, value.clone(), expire_at.unwrap_or(0), condition);
        if expire_at.is_some_and(|at| at <= store.now_ms()) {
            // EXAT/PXAT in the past: the key is gone at once, so store no value.
            write.value = None;
        }
        let written = store.write_one(write).await?;
        return Ok(if written { Reply::ok() } else { Reply::Null });
    }
    store
        .update(key, |cur, _| {
            let old = if o.get { value_reply(cur) } else { Reply::Null };
            if (o.nx && cur.is_some()) || (o.xx && cur.is_none()) {
                return Ok(Step::Reply(old));
            }
            let expire_at_ms = if o.keep_ttl {
                cur.map_or(0, |c| c.expire_at_ms)
            } else {
                expire_at.unwrap_or(0)
            };
            Ok(Step::Write {
                value: Some(value.clone()),
                expire_at_ms,
                reply: if o.get { old } else { Reply::ok() },
            })
        })
        .await
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST].
async fn getex<C: Cluster>(store: &Store<'_, C>, spec: &CommandSpec, args: &Args) -> CommandResult {
    let key = arg(spec, args, 1)?;
    let o = parse_extended(args, 2, false)?;
    if o.expire.is_none() && !o.persist {
        return Ok(value_reply(store.get_one(key).await?.as_ref()));
    }
    store
        .update(key, |cur, now| {
            let Some(cur) = cur else {
                return Ok(Step::Reply(Reply::Null));
            };
            // Redis validates the time only once it found the key.
            let expire_at_ms = match options_expire_at(&o, now, spec.name)? {
                Some(at) => at,
                None if cur.expire_at_ms == 0 => {
                    return Ok(Step::Reply(Reply::Bulk(cur.value.clone())));
                }
                None => 0,
            };
            Ok(Step::Write {
                value: Some(cur.value.clone()),
                expire_at_ms,
                reply: Reply::Bulk(cur.value.clone()),
            })
        })
        .await
}

/// Key/value pairs of MSET / MSETNX, or the arity error for an odd count.
fn pairs<'a>(
    spec: &CommandSpec,
    args: &'a Args,
) -> Result<Vec<(&'a Bytes, &'a Bytes)>, CommandError> {
    if args.len() < 3 || args.len().is_multiple_of(2) {
        return Err(error(crate::errors::wrong_arity(spec.name)));
    }
    Ok(args[1..].chunks_exact(2).map(|p| (&p[0], &p[1])).collect())
}

/// MSET: every pair written unconditionally in one request. Pairs in one slot are applied
/// together by one replica set; pairs in different slots are not one atomic step, so a
/// concurrent reader may see some keys updated before others.
async fn mset<C: Cluster>(store: &Store<'_, C>, spec: &CommandSpec, args: &Args) -> CommandResult {
    let pairs = pairs(spec, args)?;
    for (_, value) in &pairs {
        store.check_len(value.len())?;
    }
    let writes = pairs
        .into_iter()
        .map(|(k, v)| put(k, v.clone(), 0, Condition::Always))
        .collect();
    store.write(writes).await?;
    Ok(Reply::ok())
}

/// MSETNX: reads every key and answers 0 if any exists; otherwise writes each key
/// conditional on its absence (`IfVersion(None)`) and answers 1 if all were written.
///
/// Not atomic across keys: between the read and the writes a concurrent writer can create
/// one of the keys; that key keeps the other writer's value, the keys written before or
/// after it keep MSETNX's, and the reply is 0. Redis never shows this mix; ringkv does not
/// roll the written keys back, because a delete could erase a third writer's newer value.
async fn msetnx<C: Cluster>(
    store: &Store<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let pairs = pairs(spec, args)?;
    for (_, value) in &pairs {
        store.check_len(value.len())?;
    }
    // A repeated key takes its last value, as Redis's sequential setKey calls leave it.
    let mut unique: Vec<(&Bytes, &Bytes)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match unique.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => unique.push((key, value)),
        }
    }
    let current = store
        .get(unique.iter().map(|(k, _)| (*k).clone()).collect())
        .await?;
    if current.iter().any(Option::is_some) {
        return Ok(Reply::Integer(0));
    }
    let writes = unique
        .into_iter()
        .map(|(k, v)| put(k, v.clone(), 0, Condition::IfVersion(None)))
        .collect();
    let written = store.write(writes).await?;
    Ok(Reply::Integer(i64::from(written.iter().all(|w| *w))))
}

/// GETRANGE's slice, with Redis 7's index rules.
fn get_range(value: &Bytes, mut start: i64, mut end: i64) -> Bytes {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

/// SETRANGE key offset value.
async fn setrange<C: Cluster>(
    store: &Store<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let key = arg(spec, args, 1)?;
    let offset = parse_i64(arg(spec, args, 2)?)?;
    let patch = arg(spec, args, 3)?;
    let offset = usize::try_from(offset).map_err(|_| error("ERR offset is out of range"))?;
    if !patch.is_empty() {
        store.check_len(offset.saturating_add(patch.len()))?;
    }
    store
        .update(key, |cur, _| {
            let Some(cur) = cur else {
                if patch.is_empty() {
                    return Ok(Step::Reply(Reply::Integer(0)));
                }
                let mut value = vec![0u8; offset + patch.len()];
                value[offset..].copy_from_slice(patch);
                return Ok(Step::Write {
                    reply: Reply::Integer(value.len() as i64),
                    value: Some(Bytes::from(value)),
                    expire_at_ms: 0,
                });
            };
            if patch.is_empty() {
                return Ok(Step::Reply(Reply::Integer(cur.value.len() as i64)));
            }
            let mut value = cur.value.to_vec();
            if value.len() < offset + patch.len() {
                value.resize(offset + patch.len(), 0);
            }
            value[offset..offset + patch.len()].copy_from_slice(patch);
            Ok(Step::Write {
                reply: Reply::Integer(value.len() as i64),
                value: Some(Bytes::from(value)),
                expire_at_ms: cur.expire_at_ms,
            })
        })
        .await
}

/// INCR / DECR / INCRBY / DECRBY: the TTL is kept, as Redis keeps it.
async fn incr_by<C: Cluster>(store: &Store<'_, C>, key: &Bytes, by: i64) -> CommandResult {
    store
        .update(key, |cur, _| {
            let old = match cur {
                None => 0,
                Some(c) => args::parse_i64_strict(&c.value).ok_or_else(|| error(NOT_INTEGER))?,
            };
            let new = old.checked_add(by).ok_or_else(|| error(INCR_OVERFLOW))?;
            Ok(Step::Write {
                value: Some(Bytes::from(new.to_string())),
                expire_at_ms: cur.map_or(0, |c| c.expire_at_ms),
                reply: Reply::Integer(new),
            })
        })
        .await
}

/// INCRBYFLOAT: see [`float`] for how the sum is computed and printed.
async fn incr_by_float<C: Cluster>(
    store: &Store<'_, C>,
    key: &Bytes,
    increment_text: &Bytes,
) -> CommandResult {
    let increment = args::parse_f64(increment_text)?;
    store
        .update(key, |cur, _| {
            let (text, value): (&[u8], f64) = match cur {
                None => (b"0", 0.0),
                Some(c) => (
                    &c.value,
                    args::parse_f64_strict(&c.value).ok_or_else(|| error(NOT_FLOAT))?,
                ),
            };
            let sum = float::add_and_format(text, value, increment_text, increment)
                .ok_or_else(|| error(NAN_OR_INFINITY))?;
            let sum = Bytes::from(sum);
            Ok(Step::Write {
                value: Some(sum.clone()),
                expire_at_ms: cur.map_or(0, |c| c.expire_at_ms),
                reply: Reply::Bulk(sum),
            })
        })
        .await
}

/// BITCOUNT key [start end [BYTE | BIT]]. As in Redis, a missing key answers 0 before the
/// range is even parsed.
async fn bitcount<C: Cluster>(
    store: &Store<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let Some(value) = store.get_one(arg(spec, args, 1)?).await? else {
        return Ok(Reply::Integer(0));
    };
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let start = parse_i64(&args[2])?;
            let end = parse_i64(&args[3])?;
            let unit = match args.get(4) {
                Some(u) => bits::parse_unit(u)?,
                None => Unit::Byte,
            };
            Some((start, end, unit))
        }
        _ => return Err(error(SYNTAX)),
    };
    Ok(Reply::Integer(bits::bit_count(&value.value, range)))
}

/// BITPOS key bit [start [end [BYTE | BIT]]].
async fn bitpos<C: Cluster>(
    store: &Store<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let bit = match parse_i64(arg(spec, args, 2)?)? {
        0 => false,
        1 => true,
        _ => return Err(error("ERR The bit argument must be 1 or 0.")),
    };
    let Some(value) = store.get_one(arg(spec, args, 1)?).await? else {
        return Ok(Reply::Integer(if bit { -1 } else { 0 }));
    };
    if args.len() > 6 {
        return Err(error(SYNTAX));
    }
    let start = args.get(3).map(|s| parse_i64(s)).transpose()?;
    let unit = match args.get(5) {
        Some(u) => bits::parse_unit(u)?,
        None => Unit::Byte,
    };
    let end = args.get(4).map(|e| parse_i64(e)).transpose()?;
    Ok(Reply::Integer(bits::bit_pos(
        &value.value,
        bit,
        start,
        end,
        unit,
    )))
}

/// BITOP op destkey key [key ...]: an empty result deletes the destination, as Redis.
async fn bitop<C: Cluster>(store: &Store<'_, C>, spec: &CommandSpec, args: &Args) -> CommandResult {
    let op = bits::parse_bitop(arg(spec, args, 1)?)?;
    if op == bits::BitOp::Not && args.len() != 4 {
        return Err(error(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let dest = arg(spec, args, 2)?;
    let values = store.get(args[3..].to_vec()).await?;
    let sources: Vec<&[u8]> = values
        .iter()
        .map(|v| v.as_ref().map_or(&[][..], |v| &v.value[..]))
        .collect();
    let result = bits::bit_op(op, &sources);
    let len = result.len() as i64;
    store.check_len(result.len())?;
    let write = Write {
        key: dest.clone(),
        value: (!result.is_empty()).then(|| Bytes::from(result)),
        expire_at_ms: 0,
        condition: Condition::Always,
    };
    store.write_one(write).await?;
    Ok(Reply::Integer(len))
}

/// Redis's `proto_max_bulk_len` default, which bounds LCS's working table.
const LCS_MAX_TABLE_BYTES: u128 = 512 * 1024 * 1024;

/// Table cells LCS computes on the connection's own task; bigger tables go to the blocking
/// pool.
const LCS_INLINE_CELLS: u128 = 1 << 20;

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN].
async fn lcs<C: Cluster>(store: &Store<'_, C>, spec: &CommandSpec, args: &Args) -> CommandResult {
    let a_key = arg(spec, args, 1)?;
    let b_key = arg(spec, args, 2)?;
    let values = store.get(vec![a_key.clone(), b_key.clone()]).await?;
    let text = |i: usize| {
        values
            .get(i)
            .and_then(|v| v.as_ref())
            .map(|v| v.value.clone())
    };
    let (a, b) = (text(0).unwrap_or_default(), text(1).unwrap_or_default());
    let (mut get_len, mut get_idx, mut with_match_len) = (false, false, false);
    let mut min_match_len = 0usize;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j][..];
        if is(opt, "idx") {
            get_idx = true;
        } else if is(opt, "len") {
            get_len = true;
        } else if is(opt, "withmatchlen") {
            with_match_len = true;
        } else if is(opt, "minmatchlen") && j + 1 < args.len() {
            let n = parse_i64(&args[j + 1])?;
            min_match_len = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            j += 1;
        } else {
            return Err(error(SYNTAX));
        }
        j += 1;
    }
    if get_len && get_idx {
        return Err(error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    if lcs::table_bytes(a.len(), b.len()) > LCS_MAX_TABLE_BYTES {
        return Err(error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let result = if (a.len() as u128) * (b.len() as u128) > LCS_INLINE_CELLS {
        // A big table takes long enough to stall every connection on this runtime thread.
        tokio::task::spawn_blocking(move || lcs::lcs(&a, &b, min_match_len))
            .await
            .map_err(|e| error(format!("ERR internal error: LCS failed: {e}")))?
    } else {
        lcs::lcs(&a, &b, min_match_len)
    };
    let len = Reply::Integer(result.text.len() as i64);
    if get_idx {
        let matches = result
            .matches
            .iter()
            .map(|m| {
                let mut entry = vec![
                    Reply::Array(vec![
                        Reply::Integer(m.a_start as i64),
                        Reply::Integer(m.a_end as i64),
                    ]),
                    Reply::Array(vec![
                        Reply::Integer(m.b_start as i64),
                        Reply::Integer(m.b_end as i64),
                    ]),
                ];
                if with_match_len {
                    entry.push(Reply::Integer(m.len() as i64));
                }
                Reply::Array(entry)
            })
            .collect();
        return Ok(Reply::Map(vec![
            (
                Reply::bulk(Bytes::from_static(b"matches")),
                Reply::Array(matches),
            ),
            (Reply::bulk(Bytes::from_static(b"len")), len),
        ]));
    }
    if get_len {
        return Ok(len);
    }
    Ok(Reply::Bulk(Bytes::from(result.text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn syntax_error(result: Result<ExtendedOptions, CommandError>) -> bool {
        matches!(result, Err(CommandError::Reply(text)) if text == SYNTAX)
    }

    #[test]
    fn set_options_parse_and_conflict_as_redis() {
        let o = parse_extended(&args(&["set", "k", "v", "nx", "get", "ex", "10"]), 3, true)
            .expect("valid");
        assert!(o.nx && o.get);
        assert_eq!(o.expire, Some((ExpireKind::Ex, Bytes::from_static(b"10"))));
        let o = parse_extended(&args(&["set", "k", "v", "KEEPTTL", "XX", "xx"]), 3, true)
            .expect("valid");
        assert!(o.keep_ttl && o.xx);
        let o = parse_extended(&args(&["set", "k", "v", "px", "1", "PX", "2"]), 3, true)
            .expect("repeating the same unit is allowed");
        assert_eq!(o.expire, Some((ExpireKind::Px, Bytes::from_static(b"2"))));
        for bad in [
            &["set", "k", "v", "nx", "xx"][..],
            &["set", "k", "v", "ex", "1", "px", "1"],
            &["set", "k", "v", "ex", "1", "keepttl"],
            &["set", "k", "v", "keepttl", "exat", "1"],
            &["set", "k", "v", "ex"],
            &["set", "k", "v", "persist"],
            &["set", "k", "v", "bogus"],
        ] {
            assert!(syntax_error(parse_extended(&args(bad), 3, true)), "{bad:?}");
        }
    }

    #[test]
    fn getex_options_parse_and_conflict_as_redis() {
        let o = parse_extended(&args(&["getex", "k", "persist"]), 2, false).expect("valid");
        assert!(o.persist);
        for bad in [
            &["getex", "k", "persist", "ex", "1"][..],
            &["getex", "k", "nx"],
            &["getex", "k", "get"],
            &["getex", "k", "keepttl"],
            &["getex", "k", "pxat", "1", "exat", "1"],
        ] {
            assert!(
                syntax_error(parse_extended(&args(bad), 2, false)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expire_times_are_validated_like_redis() {
        assert_eq!(expire_at_ms(b"10", 1000, true, 5, "set").ok(), Some(10_005));
        assert_eq!(expire_at_ms(b"7", 1, false, 5, "set").ok(), Some(7));
        for bad in [&b"0"[..], b"-1", b"9223372036854775807"] {
            match expire_at_ms(bad, 1000, true, 5, "set") {
                Err(CommandError::Reply(text)) => {
                    assert_eq!(text, "ERR invalid expire time in 'set' command")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        match expire_at_ms(b"x", 1, false, 0, "setex") {
            Err(CommandError::Reply(text)) => assert_eq!(text, NOT_INTEGER),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn getrange_follows_redis_7_indexes() {
        let v = Bytes::from_static(b"This is a string");
        assert_eq!(get_range(&v, 0, 3), "This");
        assert_eq!(get_range(&v, -3, -1), "ing");
        assert_eq!(get_range(&v, 0, -1), "This is a string");
        assert_eq!(get_range(&v, 10, 100), "string");
        assert_eq!(get_range(&v, -1, -5), "");
        assert_eq!(get_range(&v, 5, 3), "");
        assert_eq!(get_range(&Bytes::new(), 0, -1), "");
    }

    #[test]
    fn every_row_is_in_this_family_with_redis_shaped_keys() {
        for spec in COMMANDS {
            assert_eq!(spec.family, Family::String);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.arity != 0);
        }
    }
}
