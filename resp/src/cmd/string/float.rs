//! INCRBYFLOAT's arithmetic and number formatting.
//!
//! Redis adds two `long double`s and prints the sum with `ld2string(.., LD_STR_HUMAN)`:
//! `%.17Lf`, trailing zeros (and a bare `.`) removed, `-0` shown as `0`. Rust has no
//! `long double`, and doing the sum in `f64` would show binary noise Redis's wider type hides
//! (`0.1 + 0.2` is `0.30000000000000004` in `f64`, `0.3` in Redis). So the sum is computed
//! exactly in decimal when both operands fit an `i128` mantissa (every realistic counter), and
//! rounded to 17 decimals as `%.17Lf` does; only numbers beyond that fall back to `f64`.
//! This module only computes and formats; it never reads or writes a key.

/// A decimal number: `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Digits after the point `%.17Lf` keeps.
const PRINTED_DECIMALS: u32 = 17;
/// Largest scale the exact path keeps before giving up (beyond it `f64` is as good).
const MAX_SCALE: u32 = 36;

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// Parses `[+-]digits[.digits][(e|E)[+-]digits]` exactly, or `None` when it is another form
/// (`inf`) or does not fit.
fn parse_decimal(text: &[u8]) -> Option<Decimal> {
    let (negative, mut rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let mut mantissa: i128 = 0;
    let mut scale: u32 = 0;
    let mut digits = 0usize;
    let mut seen_point = false;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa
                    .checked_mul(10)?
                    .checked_add(i128::from(byte - b'0'))?;
                digits += 1;
                if seen_point {
                    scale += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        rest = tail;
    }
    if digits == 0 {
        return None;
    }
    let mut exponent: i64 = 0;
    if let Some((_, exp_text)) = rest.split_first() {
        let (exp_negative, exp_digits) = match exp_text.split_first() {
            Some((b'-', tail)) => (true, tail),
            Some((b'+', tail)) => (false, tail),
            _ => (false, exp_text),
        };
        if exp_digits.is_empty() || exp_digits.len() > 6 {
            return None;
        }
        for &byte in exp_digits {
            if !byte.is_ascii_digit() {
                return None;
            }
            exponent = exponent * 10 + i64::from(byte - b'0');
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    let mut value = Decimal {
        mantissa: if negative { -mantissa } else { mantissa },
        scale,
    };
    if exponent >= 0 {
        let exponent = u32::try_from(exponent).ok()?;
        if exponent <= value.scale {
            value.scale -= exponent;
        } else {
            value.mantissa = value.mantissa.checked_mul(pow10(exponent - value.scale)?)?;
            value.scale = 0;
        }
    } else {
        value.scale = value.scale.checked_add(u32::try_from(-exponent).ok()?)?;
    }
    (value.scale <= MAX_SCALE).then_some(value)
}

fn add_decimal(a: Decimal, b: Decimal) -> Option<Decimal> {
    let scale = a.scale.max(b.scale);
    let a_m = a.mantissa.checked_mul(pow10(scale - a.scale)?)?;
    let b_m = b.mantissa.checked_mul(pow10(scale - b.scale)?)?;
    Some(Decimal {
        mantissa: a_m.checked_add(b_m)?,
        scale,
    })
}

/// Rounds to at most 17 decimals (half away from zero) and prints like `LD_STR_HUMAN`.
fn format_decimal(value: Decimal) -> Option<String> {
    let mut mantissa = value.mantissa;
    let mut scale = value.scale;
    if scale > PRINTED_DECIMALS {
        let divisor = pow10(scale - PRINTED_DECIMALS)?;
        let quotient = mantissa / divisor;
        let remainder = mantissa % divisor;
        mantissa = if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
            quotient + mantissa.signum()
        } else {
            quotient
        };
        scale = PRINTED_DECIMALS;
    }
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let mut out = String::with_capacity(digits.len() + 3);
    if mantissa < 0 {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
    Some(out)
}

/// Prints an `f64` as `%.17Lf` followed by `LD_STR_HUMAN`'s trimming.
pub(crate) fn format_human(value: f64) -> String {
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    if text == "-0" {
        text = "0".to_owned();
    }
    text
}

/// The text INCRBYFLOAT stores and replies: `current + increment`, or `None` when the sum
/// is not finite (`increment would produce NaN or Infinity`). Both texts must already have
/// been checked with [`crate::cmd::args::parse_f64_strict`], whose values are passed along.
pub(crate) fn add_and_format(
    current_text: &[u8],
    current: f64,
    increment_text: &[u8],
    increment: f64,
) -> Option<String> {
    if let (Some(a), Some(b)) = (parse_decimal(current_text), parse_decimal(increment_text)) {
        if let Some(text) = add_decimal(a, b).and_then(format_decimal) {
            return Some(text);
        }
    }
    let sum = current + increment;
    sum.is_finite().then(|| format_human(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> Option<String> {
        let fa: f64 = a.parse().expect("test float");
        let fb: f64 = b.parse().expect("test float");
        add_and_format(a.as_bytes(), fa, b.as_bytes(), fb)
    }

    #[test]
    fn sums_print_like_redis() {
        assert_eq!(add("10.50", "0.1").as_deref(), Some("10.6"));
        assert_eq!(add("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert_eq!(add("0", "3.0e3").as_deref(), Some("3000"));
        assert_eq!(add("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(add("1", "-1.1").as_deref(), Some("-0.1"));
        assert_eq!(add("17179869184", "1.5").as_deref(), Some("17179869185.5"));
        assert_eq!(add("1.5", "-1.5").as_deref(), Some("0"));
        assert_eq!(add("0", "-0.0").as_deref(), Some("0"));
        assert_eq!(add("0", "1e-20").as_deref(), Some("0"));
        assert_eq!(add("0", "6e-18").as_deref(), Some("0.00000000000000001"));
        assert_eq!(add("0", "1.2E+2").as_deref(), Some("120"));
    }

    #[test]
    fn non_finite_sums_are_refused() {
        assert_eq!(add("inf", "1"), None);
        assert_eq!(add("1.7e308", "1.7e308"), None);
    }

    #[test]
    fn huge_numbers_fall_back_to_f64() {
        assert_eq!(
            add("1e50", "0").as_deref(),
            Some(format_human(1e50).as_str())
        );
        assert_eq!(format_human(2.5), "2.5");
        assert_eq!(format_human(-0.0), "0");
        assert_eq!(format_human(100.0), "100");
    }
}
