//! `CONFIG GET|SET|RESETSTAT|HELP`.
//!
//! Owns the list of parameters `CONFIG GET` shows: ringkv's own, and the Redis ones clients and
//! `redis-benchmark` ask for at connect time (`save`, `appendonly`, `databases`, ...) with the
//! values that describe ringkv truthfully. `CONFIG SET` changes `timeout`, `maxclients` and
//! `requirepass` (checked all first, then applied, as Redis applies a multi-parameter SET
//! atomically); anything else gets Redis's "Unknown option" text. Reads and changes the
//! server's shared state only.

use bytes::Bytes;
use ringkv_cluster::Cluster;

use super::error;
use crate::cmd::connection::help;
use crate::cmd::{check_subcommand_arity, parse_integer, Args, CommandError, CommandResult, Ctx};
use crate::errors;
use crate::reply::Reply;

/// `CONFIG <subcommand> ...`.
pub(super) fn config<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" => {
            check_subcommand_arity("config|get", -3, args)?;
            Ok(get(ctx, &args[2..]))
        }
        b"set" => {
            check_subcommand_arity("config|set", -4, args)?;
            if args.len() % 2 == 1 {
                return Err(error(errors::SYNTAX));
            }
            set(ctx, &args[2..])
        }
        b"resetstat" => {
            check_subcommand_arity("config|resetstat", 2, args)?;
            ctx.server.stats.reset();
            Ok(Reply::ok())
        }
        b"help" => {
            check_subcommand_arity("config|help", 2, args)?;
            Ok(help(&[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "HELP",
                "    Print this help.",
            ]))
        }
        _ => Err(error(errors::unknown_subcommand("config", &args[1]))),
    }
}

/// Every parameter `CONFIG GET` knows, with its current value.
fn parameters<C: Cluster>(ctx: &Ctx<'_, C>) -> Vec<(&'static str, String)> {
    let server = ctx.server;
    let config = &server.config;
    let limits = &config.parser_limits;
    vec![
        ("bind", config.bind.clone()),
        ("port", config.port.to_string()),
        ("dir", config.data_dir.display().to_string()),
        ("timeout", server.timeout_secs().to_string()),
        ("maxclients", server.maxclients().to_string()),
        ("requirepass", server.requirepass().unwrap_or_default()),
        ("databases", "1".to_owned()),
        // No RDB snapshots: the engine is durable through its write-ahead log.
        ("save", String::new()),
        // The write-ahead log plays the AOF's part and is always on.
        ("appendonly", "yes".to_owned()),
        (
            "appendfsync",
            if config.fsync_always {
                "always"
            } else {
                "everysec"
            }
            .to_owned(),
        ),
        ("maxmemory", "0".to_owned()),
        ("maxmemory-policy", "noeviction".to_owned()),
        ("cluster-enabled", "yes".to_owned()),
        ("proto-max-bulk-len", limits.max_bulk_bytes.to_string()),
        (
            "client-query-buffer-limit",
            limits.max_request_bytes.to_string(),
        ),
        ("ringkv-max-value-bytes", config.max_value_bytes.to_string()),
        ("ringkv-max-key-bytes", config.max_key_bytes.to_string()),
        (
            "ringkv-read-consistency",
            config.default_consistency.read.name().to_owned(),
        ),
        (
            "ringkv-write-consistency",
            config.default_consistency.write.name().to_owned(),
        ),
    ]
}

/// `CONFIG GET pattern [pattern ...]`: each matching parameter once, as a map.
fn get<C: Cluster>(ctx: &Ctx<'_, C>, patterns: &Args) -> Reply {
    let pairs = parameters(ctx)
        .into_iter()
        .filter(|(name, _)| {
            patterns
                .iter()
                .any(|pattern| glob_match_nocase(pattern, name.as_bytes()))
        })
        .map(|(name, value)| {
            (
                Reply::Bulk(Bytes::from_static(name.as_bytes())),
                Reply::Bulk(Bytes::from(value)),
            )
        })
        .collect();
    Reply::Map(pairs)
}

/// A parameter `CONFIG SET` can change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settable {
    Timeout,
    MaxClients,
    RequirePass,
}

/// A validated `CONFIG SET` change.
enum Change {
    Timeout(u64),
    MaxClients(usize),
    RequirePass(Option<String>),
}

/// `CONFIG SET name value [name value ...]`, in `configSetCommand`'s order: every name is
/// looked up first (an unknown one wins over any bad value), a name given twice is refused,
/// then every value is checked, and only then is anything applied.
fn set<C: Cluster>(ctx: &mut Ctx<'_, C>, pairs: &Args) -> CommandResult {
    let mut names = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let lower = pair[0].to_ascii_lowercase();
        let settable = match lower.as_slice() {
            b"timeout" => Settable::Timeout,
            b"maxclients" => Settable::MaxClients,
            b"requirepass" => Settable::RequirePass,
            _ => return Err(error(errors::config_set_unknown(&pair[0]))),
        };
        names.push(settable);
    }
    let mut changes = Vec::with_capacity(names.len());
    for (i, (settable, pair)) in names.iter().zip(pairs.chunks_exact(2)).enumerate() {
        let name = String::from_utf8_lossy(&pair[0]).into_owned();
        if names[..i].contains(settable) {
            return Err(CommandError::Reply(errors::config_set_failed(
                &name,
                "duplicate parameter",
            )));
        }
        let value = &pair[1];
        changes.push(match settable {
            Settable::Timeout => Change::Timeout(integer_in(&name, value, 0, i64::MAX)?),
            Settable::MaxClients => {
                let max = integer_in(&name, value, 1, i64::from(u32::MAX))?;
                Change::MaxClients(usize::try_from(max).unwrap_or(usize::MAX))
            }
            Settable::RequirePass => {
                let password = String::from_utf8(value.to_vec()).map_err(|_| {
                    CommandError::Reply(errors::config_set_failed(
                        &name,
                        "argument must be valid UTF-8",
                    ))
                })?;
                Change::RequirePass(Some(password))
            }
        });
    }
    for change in changes {
        match change {
            Change::Timeout(secs) => ctx.server.set_timeout_secs(secs),
            Change::MaxClients(max) => ctx.server.set_maxclients(max),
            Change::RequirePass(password) => ctx.server.set_requirepass(password),
        }
    }
    Ok(Reply::ok())
}

/// An integer parameter value within `min..=max`, with `configSetCommand`'s texts.
fn integer_in(name: &str, value: &[u8], min: i64, max: i64) -> Result<u64, CommandError> {
    let n = parse_integer(value).ok_or_else(|| {
        CommandError::Reply(errors::config_set_failed(
            name,
            "argument couldn't be parsed into an integer",
        ))
    })?;
    if n < min || n > max {
        return Err(CommandError::Reply(errors::config_set_failed(
            name,
            &format!("argument must be between {min} and {max} inclusive"),
        )));
    }
    u64::try_from(n).map_err(|_| CommandError::Reply(errors::config_set_failed(name, "negative")))
}

/// Redis's `stringmatchlen` with `nocase`: `*`, `?`, `[abc]`, `[^a-z]`, `\\x`, ASCII
/// case-insensitive. Iterative, backtracking only to the last `*`, so any pattern runs in
/// `O(pattern × text)`.
fn glob_match_nocase(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    let (matched, next) = match_class(pattern, p, text[t]);
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1].eq_ignore_ascii_case(&text[t]) {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c.eq_ignore_ascii_case(&text[t]) {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`: whether it matched and
/// the index after the class. An unterminated class runs to the end of the pattern, as Redis.
fn match_class(pattern: &[u8], open: usize, c: u8) -> (bool, usize) {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let c = c.to_ascii_lowercase();
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1].to_ascii_lowercase() == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (mut lo, mut hi) = (
                pattern[i].to_ascii_lowercase(),
                pattern[i + 2].to_ascii_lowercase(),
            );
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= pattern[i].to_ascii_lowercase() == c;
            i += 1;
        }
    }
    let next = (i + 1).min(pattern.len());
    (matched != negate, next)
}

#[cfg(test)]
mod tests {
    use super::glob_match_nocase as m;

    #[test]
    fn glob_patterns() {
        assert!(m(b"*", b"maxclients"));
        assert!(m(b"max*", b"maxclients"));
        assert!(m(b"MAX*", b"maxclients"));
        assert!(!m(b"max*", b"timeout"));
        assert!(m(b"t?meout", b"timeout"));
        assert!(m(b"*pass*", b"requirepass"));
        assert!(m(b"[ab]ind", b"bind"));
        assert!(!m(b"[^b]ind", b"bind"));
        assert!(m(b"[a-c]ind", b"bind"));
        assert!(m(b"save", b"save"));
        assert!(!m(b"save", b"saves"));
        assert!(m(b"a\\*b", b"a*b"));
        assert!(!m(b"", b"x"));
        assert!(m(b"**", b""));
    }
}
