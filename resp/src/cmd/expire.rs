//! The expiry family: EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT), TTL PTTL EXPIRETIME
//! PEXPIRETIME PERSIST, with Redis 7 semantics and error texts (`expire.c`).
//!
//! Owns [`COMMANDS`] and [`execute`]. An expiry is part of the stored record
//! (`StoredValue::expire_at_ms`), so changing it rewrites the value with a new expiry,
//! conditional on the version read (a read-modify-write through
//! [`Store::update`](crate::cmd::string::store::Store::update)). A time already past deletes
//! the key, as Redis does. Times come from the cluster clock, never the local one. This module
//! never touches the socket.

#[cfg(test)]
mod node_tests;

use ringkv_cluster::Cluster;

use crate::cmd::args::{error, invalid_expire_time, is, parse_i64};
use crate::cmd::string::store::{Step, Store};
use crate::cmd::{Args, CommandError, CommandResult, CommandSpec, Ctx, Family};
use crate::reply::Reply;

const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(
        Family::Expire,
        "generic",
        name,
        arity,
        flags,
        (1, 1, 1),
        summary,
    )
}

/// The expiry family's rows, as Redis 7's `COMMAND INFO` / `COMMAND DOCS` give them.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    row(
        "expire",
        -3,
        &["write", "fast"],
        "Sets the expiration time of a key in seconds.",
    ),
    row(
        "pexpire",
        -3,
        &["write", "fast"],
        "Sets the expiration time of a key in milliseconds.",
    ),
    row(
        "expireat",
        -3,
        &["write", "fast"],
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    row(
        "pexpireat",
        -3,
        &["write", "fast"],
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    row(
        "ttl",
        2,
        &["readonly", "fast"],
        "Returns the expiration time in seconds of a key.",
    ),
    row(
        "pttl",
        2,
        &["readonly", "fast"],
        "Returns the expiration time in milliseconds of a key.",
    ),
    row(
        "expiretime",
        2,
        &["readonly", "fast"],
        "Returns the expiration time of a key as a Unix timestamp.",
    ),
    row(
        "pexpiretime",
        2,
        &["readonly", "fast"],
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    ),
    row(
        "persist",
        2,
        &["write", "fast"],
        "Removes the expiration time of a key.",
    ),
];

/// Runs one expiry command (arity already checked by the dispatcher).
///
/// # Errors
/// Redis's error replies for bad arguments, and the cluster's failures.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    let store = Store::new(ctx);
    let key = args
        .get(1)
        .ok_or_else(|| error(crate::errors::wrong_arity(spec.name)))?;
    match spec.name {
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let conditions = parse_conditions(&args[3.min(args.len())..])?;
            let (unit_ms, relative) = match spec.name {
                "expire" => (1000, true),
                "pexpire" => (1, true),
                "expireat" => (1000, false),
                _ => (1, false),
            };
            let time = args
                .get(2)
                .ok_or_else(|| error(crate::errors::wrong_arity(spec.name)))?;
            let time = parse_i64(time)?;
            let base = if relative { store.now_ms() } else { 0 };
            let when = absolute_ms(time, unit_ms, base, spec.name)?;
            store
                .update(key, |cur, now| {
                    let Some(cur) = cur else {
                        return Ok(Step::Reply(Reply::Integer(0)));
                    };
                    if !conditions.allow(cur.expire_at_ms, when) {
                        return Ok(Step::Reply(Reply::Integer(0)));
                    }
                    let past = u64::try_from(when).map_or(true, |w| w <= now);
                    Ok(Step::Write {
                        value: (!past).then(|| cur.value.clone()),
                        expire_at_ms: u64::try_from(when).unwrap_or(0),
                        reply: Reply::Integer(1),
                    })
                })
                .await
        }
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => {
            let value = store.get_one(key).await?;
            let in_ms = spec.name.starts_with('p');
            let absolute = spec.name.ends_with("time");
            Ok(Reply::Integer(ttl_reply(
                value.map(|v| v.expire_at_ms),
                store.now_ms(),
                in_ms,
                absolute,
            )))
        }
        "persist" => {
            store
                .update(key, |cur, _| {
                    Ok(match cur {
                        Some(cur) if cur.expire_at_ms != 0 => Step::Write {
                            value: Some(cur.value.clone()),
                            expire_at_ms: 0,
                            reply: Reply::Integer(1),
                        },
                        _ => Step::Reply(Reply::Integer(0)),
                    })
                })
                .await
        }
        other => Err(error(format!(
            "ERR command '{other}' is not in the expiry family"
        ))),
    }
}

/// EXPIRE's NX / XX / GT / LT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Conditions {
    /// Whether the new expiry `when` may replace `current` (unix ms, 0 = none), as
    /// `expireGenericCommand` decides: no expiry counts as infinite for GT and LT.
    fn allow(self, current: u64, when: i64) -> bool {
        let current = (current != 0).then(|| i64::try_from(current).unwrap_or(i64::MAX));
        if self.nx && current.is_some() {
            return false;
        }
        if self.xx && current.is_none() {
            return false;
        }
        if self.gt && current.is_none_or(|c| when <= c) {
            return false;
        }
        if self.lt && current.is_some_and(|c| when >= c) {
            return false;
        }
        true
    }
}

/// `parseExtendedExpireArgumentsOrReply`.
fn parse_conditions(options: &[bytes::Bytes]) -> Result<Conditions, CommandError> {
    let mut c = Conditions::default();
    for opt in options {
        if is(opt, "nx") {
            c.nx = true;
        } else if is(opt, "xx") {
            c.xx = true;
        } else if is(opt, "gt") {
            c.gt = true;
        } else if is(opt, "lt") {
            c.lt = true;
        } else {
            let mut text = String::from("ERR Unsupported option ");
            text.push_str(&String::from_utf8_lossy(opt));
            return Err(error(text));
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// The absolute unix ms of an EXPIRE-family argument, with Redis's overflow checks.
fn absolute_ms(time: i64, unit_ms: i64, base_ms: u64, command: &str) -> Result<i64, CommandError> {
    let scaled = time
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid_expire_time(command))?;
    let base = i64::try_from(base_ms).map_err(|_| invalid_expire_time(command))?;
    scaled
        .checked_add(base)
        .ok_or_else(|| invalid_expire_time(command))
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME of a key: -2 absent, -1 no expiry; a relative
/// TTL in seconds is rounded to the nearest second, as Redis rounds it.
fn ttl_reply(expire_at_ms: Option<u64>, now_ms: u64, in_ms: bool, absolute: bool) -> i64 {
    match expire_at_ms {
        None => -2,
        Some(0) => -1,
        Some(at) => {
            let at = i64::try_from(at).unwrap_or(i64::MAX);
            let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
            let ttl = if absolute { at } else { at - now }.max(0);
            if in_ms {
                ttl
            } else {
                (ttl + 500) / 1000
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn opts(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn err_text(result: Result<Conditions, CommandError>) -> String {
        match result {
            Err(CommandError::Reply(text)) => text,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn conditions_parse_and_conflict_as_redis() {
        assert_eq!(
            parse_conditions(&opts(&["Gt", "xx"])).ok(),
            Some(Conditions {
                xx: true,
                gt: true,
                ..Conditions::default()
            })
        );
        assert_eq!(
            err_text(parse_conditions(&opts(&["nx", "xx"]))),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            err_text(parse_conditions(&opts(&["gt", "lt"]))),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            err_text(parse_conditions(&opts(&["foo"]))),
            "ERR Unsupported option foo"
        );
    }

    #[test]
    fn conditions_decide_like_expire_generic_command() {
        let only = |f: fn(&mut Conditions)| {
            let mut c = Conditions::default();
            f(&mut c);
            c
        };
        let nx = only(|c| c.nx = true);
        let xx = only(|c| c.xx = true);
        let gt = only(|c| c.gt = true);
        let lt = only(|c| c.lt = true);
        assert!(nx.allow(0, 10) && !nx.allow(5, 10));
        assert!(!xx.allow(0, 10) && xx.allow(5, 10));
        assert!(!gt.allow(0, 10) && gt.allow(5, 10) && !gt.allow(10, 10));
        assert!(lt.allow(0, 10) && lt.allow(20, 10) && !lt.allow(10, 10));
        assert!(Conditions::default().allow(7, -1));
    }

    #[test]
    fn expire_times_overflow_into_errors() {
        assert_eq!(absolute_ms(10, 1000, 5, "expire").ok(), Some(10_005));
        assert_eq!(absolute_ms(-10, 1000, 0, "expire").ok(), Some(-10_000));
        match absolute_ms(i64::MAX / 100, 1000, 0, "expire") {
            Err(CommandError::Reply(text)) => {
                assert_eq!(text, "ERR invalid expire time in 'expire' command")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(absolute_ms(i64::MAX, 1, 1, "pexpire").is_err());
    }

    #[test]
    fn ttl_replies_follow_redis() {
        assert_eq!(ttl_reply(None, 0, false, false), -2);
        assert_eq!(ttl_reply(Some(0), 0, true, false), -1);
        assert_eq!(ttl_reply(Some(10_400), 1_000, false, false), 9);
        assert_eq!(ttl_reply(Some(10_600), 1_000, false, false), 10);
        assert_eq!(ttl_reply(Some(10_600), 1_000, true, false), 9_600);
        assert_eq!(ttl_reply(Some(500), 1_000, true, false), 0);
        assert_eq!(ttl_reply(Some(10_600), 1_000, false, true), 11);
        assert_eq!(ttl_reply(Some(10_600), 1_000, true, true), 10_600);
    }
}
