//! The integer syntax of `*<count>` and `$<length>` lines.
//!
//! Owns [`parse_i64`], which accepts exactly what Redis's `string2ll` accepts, so a length line
//! Redis refuses is refused here with the same error. It only parses; range checks against the
//! limits belong to the decoder.

/// Longest text `string2ll` looks at: `LONG_STR_SIZE` (21) minus one; longer is refused outright,
/// which also keeps a hostile length line from costing more than a few comparisons.
const MAX_DIGITS_WITH_SIGN: usize = 20;

/// Parses a decimal `i64` the way Redis's `string2ll` does: an optional `-`, then either a lone
/// `0` or a digit 1-9 followed by digits. No `+`, no spaces, no leading zeros, no `-0`, nothing
/// after the digits, and the value must fit in an `i64`. Returns `None` for anything else.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_DIGITS_WITH_SIGN {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(byte - b'0'))?;
    }
    if negative {
        // -(i64::MIN) does not fit in i64, so compare magnitudes in u64 first.
        if magnitude > i64::MIN.unsigned_abs() {
            return None;
        }
        Some(0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_string2ll_accepts() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"7"), Some(7));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"2147483648"), Some(2_147_483_648));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn refuses_what_string2ll_refuses() {
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"100000000000000000000",
            b"1\x00",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trips_every_i64(n: i64) {
            proptest::prop_assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
        }
    }
}
