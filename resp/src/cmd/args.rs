//! Argument parsing shared by the data command families (strings, keys, expiry, ringkv).
//!
//! Owns the number parsers that reproduce Redis's own (`string2ll`, `strtold` as used by
//! `getLongDoubleFromObject`, `strtoul` as used by `parseScanCursorOrReply`), case-insensitive
//! option matching, and the error texts those commands answer with, byte for byte Redis's
//! (`t_string.c`, `expire.c`, `db.c`, `bitops.c`, `object.c`, `util.c`); texts shared with
//! other families come from `crate::errors`. It only turns bytes into values
//! or a [`CommandError`]; it never talks to the cluster and never builds a reply.
//!
//! For tests only, `harness` runs the data families against a real single-node cluster.

use crate::cmd::CommandError;

#[cfg(test)]
pub(crate) mod harness;

pub(crate) use crate::errors::{NOT_INTEGER, SYNTAX};

/// What `getLongDoubleFromObjectOrReply` answers for a non-float.
pub(crate) const NOT_FLOAT: &str = "ERR value is not a valid float";
/// `shared.nokeyerr`.
pub(crate) const NO_SUCH_KEY: &str = "ERR no such key";
/// `shared.sameobjecterr`.
pub(crate) const SAME_OBJECT: &str = "ERR source and destination objects are the same";
/// INCR family overflow.
pub(crate) const INCR_OVERFLOW: &str = "ERR increment or decrement would overflow";
/// DECRBY with `i64::MIN`.
pub(crate) const DECR_OVERFLOW: &str = "ERR decrement would overflow";
/// INCRBYFLOAT producing a non-finite number.
pub(crate) const NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";

/// A Redis error reply (the text carries its `ERR` prefix).
pub(crate) fn error(text: impl Into<String>) -> CommandError {
    CommandError::Reply(text.into())
}

/// `addReplyErrorExpireTime`: `invalid expire time in '<command>' command`.
pub(crate) fn invalid_expire_time(command: &str) -> CommandError {
    error(format!("ERR invalid expire time in '{command}' command"))
}

/// Whether an argument equals an option name, ASCII case-insensitively (`strcasecmp`).
pub(crate) fn is(arg: &[u8], option: &str) -> bool {
    arg.eq_ignore_ascii_case(option.as_bytes())
}

/// Redis's `string2ll`: an optional `-`, then digits with no leading zero (except `0` itself),
/// nothing else (no `+`, no spaces), within `i64`. The request parser's length lines use the
/// same rule, so both share one implementation.
pub(crate) fn parse_i64_strict(text: &[u8]) -> Option<i64> {
    crate::parser::number::parse_i64(text)
}

/// An integer argument, or Redis's `value is not an integer or out of range`.
pub(crate) fn parse_i64(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64_strict(arg).ok_or_else(|| error(NOT_INTEGER))
}

/// An integer argument that must fall in `min..=max`, as `getRangeLongFromObjectOrReply`.
pub(crate) fn parse_i64_in(arg: &[u8], min: i64, max: i64) -> Result<i64, CommandError> {
    let value = parse_i64(arg)?;
    if value < min || value > max {
        return Err(error(format!(
            "ERR value is out of range, value must between {min} and {max}"
        )));
    }
    Ok(value)
}

/// Longest text `string2ld` accepts is `MAX_LONG_DOUBLE_CHARS - 1` bytes.
const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

/// A float as `string2ld` reads it (C's `strtold` over the whole text): no leading space, no
/// trailing bytes, not NaN. Accepts what `strtold` accepts: decimal with optional exponent,
/// `inf`/`infinity`, and hexadecimal floats are refused (ringkv does not parse them).
pub(crate) fn parse_f64_strict(text: &[u8]) -> Option<f64> {
    if text.is_empty() || text.len() >= MAX_LONG_DOUBLE_CHARS {
        return None;
    }
    if text[0].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    // Rust's parser accepts exactly the decimal forms strtold does, plus "inf"/"infinity"
    // and "nan" (case-insensitively), with an optional sign.
    let value: f64 = text.parse().ok()?;
    if value.is_nan() {
        return None;
    }
    Some(value)
}

/// A float argument, or Redis's `value is not a valid float`.
pub(crate) fn parse_f64(arg: &[u8]) -> Result<f64, CommandError> {
    parse_f64_strict(arg).ok_or_else(|| error(NOT_FLOAT))
}

/// A `SCAN` cursor as `parseScanCursorOrReply` reads it with `strtoul(s, &end, 10)`: an
/// optional sign (a `-` wraps, as C's does), decimal digits, nothing after them, no leading
/// space, no overflow. The empty string is cursor 0, as in Redis.
pub(crate) fn parse_cursor(arg: &[u8]) -> Result<u64, CommandError> {
    let invalid = || error("ERR invalid cursor");
    let (negative, digits) = match arg.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, arg),
    };
    if digits.is_empty() {
        // strtoul consumed nothing, so the end pointer is the start: valid only when the
        // whole argument is empty.
        return if arg.is_empty() {
            Ok(0)
        } else {
            Err(invalid())
        };
    }
    let mut value: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(invalid());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers_follow_string2ll() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-5"), Some(-5));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"9223372036854775808",
            b"-9223372036854775809",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"-",
            b"abc",
            b"000000000000000000001",
        ] {
            assert_eq!(parse_i64_strict(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn integer_errors_carry_redis_text() {
        match parse_i64(b"x") {
            Err(CommandError::Reply(text)) => assert_eq!(text, NOT_INTEGER),
            other => panic!("unexpected {other:?}"),
        }
        match parse_i64_in(b"2147483648", i32::MIN.into(), i32::MAX.into()) {
            Err(CommandError::Reply(text)) => assert_eq!(
                text,
                "ERR value is out of range, value must between -2147483648 and 2147483647"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn floats_follow_strtold_rules() {
        assert_eq!(parse_f64_strict(b"10.5"), Some(10.5));
        assert_eq!(parse_f64_strict(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64_strict(b"-.5"), Some(-0.5));
        assert_eq!(parse_f64_strict(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64_strict(b"nan"), None);
        assert_eq!(parse_f64_strict(b" 1"), None);
        assert_eq!(parse_f64_strict(b"1 "), None);
        assert_eq!(parse_f64_strict(b""), None);
        assert_eq!(parse_f64_strict(b"1x"), None);
    }

    #[test]
    fn cursors_follow_strtoul() {
        assert_eq!(parse_cursor(b"0").ok(), Some(0));
        assert_eq!(parse_cursor(b"").ok(), Some(0));
        assert_eq!(parse_cursor(b"+7").ok(), Some(7));
        assert_eq!(parse_cursor(b"-1").ok(), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615").ok(), Some(u64::MAX));
        assert!(parse_cursor(b"18446744073709551616").is_err());
        assert!(parse_cursor(b"12a").is_err());
        assert!(parse_cursor(b" 1").is_err());
        assert!(parse_cursor(b"-").is_err());
    }

    #[test]
    fn options_match_case_insensitively() {
        assert!(is(b"nX", "NX"));
        assert!(!is(b"NXX", "NX"));
    }
}
