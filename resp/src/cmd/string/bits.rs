//! The bitmap commands' pure arithmetic: GETBIT, SETBIT, BITCOUNT, BITPOS and BITOP over a
//! value's bytes, transcribed from Redis's `bitops.c` (ranges, negative indexes, the `BIT`
//! and `BYTE` units, the edge masks). Bit 0 is the most significant bit of byte 0, as in
//! Redis. This module never reads or writes a key.

use crate::cmd::args::{error, parse_i64_strict};
use crate::cmd::CommandError;

/// Redis's `proto_max_bulk_len` default, which bounds a bit offset (`offset >> 3` must be
/// below it) before ringkv's own, smaller value limit applies.
const MAX_BIT_OFFSET_BYTES: u64 = 512 * 1024 * 1024;

/// Parses a GETBIT/SETBIT offset as `getBitOffsetFromArgument` does.
pub(crate) fn parse_bit_offset(arg: &[u8]) -> Result<u64, CommandError> {
    let err = || error("ERR bit offset is not an integer or out of range");
    let offset = parse_i64_strict(arg).ok_or_else(err)?;
    let offset = u64::try_from(offset).map_err(|_| err())?;
    if offset >> 3 >= MAX_BIT_OFFSET_BYTES {
        return Err(err());
    }
    Ok(offset)
}

/// Parses SETBIT's value: 0 or 1.
pub(crate) fn parse_bit_value(arg: &[u8]) -> Result<bool, CommandError> {
    match parse_i64_strict(arg) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(error("ERR bit is not an integer or out of range")),
    }
}

/// The bit at `offset` (0 past the end).
pub(crate) fn get_bit(value: &[u8], offset: u64) -> bool {
    let Ok(byte) = usize::try_from(offset >> 3) else {
        return false;
    };
    value
        .get(byte)
        .is_some_and(|b| b & (1 << (7 - (offset & 7))) != 0)
}

/// Sets the bit at `offset`, growing `value` with zero bytes as needed; returns the old bit.
pub(crate) fn set_bit(value: &mut Vec<u8>, offset: u64, on: bool) -> bool {
    // The caller bounds `offset` by the value limit first, so the index fits.
    let byte = usize::try_from(offset >> 3).unwrap_or(usize::MAX);
    if value.len() <= byte {
        value.resize(byte + 1, 0);
    }
    let mask = 1u8 << (7 - (offset & 7));
    let old = value[byte] & mask != 0;
    if on {
        value[byte] |= mask;
    } else {
        value[byte] &= !mask;
    }
    old
}

fn popcount(bytes: &[u8]) -> i64 {
    bytes.iter().map(|b| i64::from(b.count_ones())).sum()
}

/// `redisBitpos`: the first bit equal to `bit` in `bytes`; for a clear bit not found, the
/// position just past the end; for a set bit not found, -1.
fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    for (i, &b) in bytes.iter().enumerate() {
        let b = if bit { b } else { !b };
        if b != 0 {
            return i as i64 * 8 + i64::from(b.leading_zeros());
        }
    }
    if bit {
        -1
    } else {
        bytes.len() as i64 * 8
    }
}

/// A BITCOUNT/BITPOS range unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Offsets count bytes (the default).
    Byte,
    /// Offsets count bits.
    Bit,
}

/// Parses `BIT` / `BYTE`.
pub(crate) fn parse_unit(arg: &[u8]) -> Result<Unit, CommandError> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(Unit::Bit)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(Unit::Byte)
    } else {
        Err(error(crate::cmd::args::SYNTAX))
    }
}

/// A normalised range: byte `start..=end` plus the masks of the bits outside a bit range in
/// its first and last bytes.
struct Range {
    start: i64,
    end: i64,
    first_neg_mask: u8,
    last_neg_mask: u8,
}

fn normalise(len: i64, mut start: i64, mut end: i64, unit: Unit) -> Range {
    let total = if unit == Unit::Bit { len << 3 } else { len };
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    let mut range = Range {
        start,
        end,
        first_neg_mask: 0,
        last_neg_mask: 0,
    };
    if unit == Unit::Bit && start <= end {
        range.first_neg_mask = !((1u16 << (8 - (start & 7))) - 1) as u8;
        range.last_neg_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
        range.start = start >> 3;
        range.end = end >> 3;
    }
    range
}

/// BITCOUNT over `value`, with an optional `(start, end, unit)` range.
pub(crate) fn bit_count(value: &[u8], range: Option<(i64, i64, Unit)>) -> i64 {
    let len = value.len() as i64;
    let Some((start, end, unit)) = range else {
        return popcount(value);
    };
    if start < 0 && end < 0 && start > end {
        return 0;
    }
    let r = normalise(len, start, end, unit);
    if r.start > r.end {
        return 0;
    }
    let (s, e) = (r.start as usize, r.end as usize);
    let mut count = popcount(&value[s..=e]);
    count -= i64::from((value[s] & r.first_neg_mask).count_ones());
    count -= i64::from((value[e] & r.last_neg_mask).count_ones());
    count
}

/// BITPOS over an existing `value`: `start` / `end` as given (`end` only with `start`).
pub(crate) fn bit_pos(
    value: &[u8],
    bit: bool,
    start: Option<i64>,
    end: Option<i64>,
    unit: Unit,
) -> i64 {
    let len = value.len() as i64;
    let end_given = end.is_some();
    let r = match start {
        None => Range {
            start: 0,
            end: len - 1,
            first_neg_mask: 0,
            last_neg_mask: 0,
        },
        Some(start) => {
            let end = end.unwrap_or(if unit == Unit::Bit {
                (len << 3) + 7
            } else {
                len - 1
            });
            normalise(len, start, end, unit)
        }
    };
    if r.start > r.end {
        return -1;
    }
    let mut start = r.start;
    let mut bytes = r.end - r.start + 1;
    let pos = 'found: {
        if r.first_neg_mask != 0 {
            let mut tmp = value[start as usize];
            tmp = if bit {
                tmp & !r.first_neg_mask
            } else {
                tmp | r.first_neg_mask
            };
            if r.last_neg_mask != 0 && bytes == 1 {
                tmp = if bit {
                    tmp & !r.last_neg_mask
                } else {
                    tmp | r.last_neg_mask
                };
            }
            let pos = first_bit(&[tmp], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - i64::from(r.last_neg_mask != 0);
        if cur > 0 {
            let s = start as usize;
            let pos = first_bit(&value[s..s + cur as usize], bit);
            if bytes == cur || (pos != -1 && pos != cur << 3) {
                break 'found pos;
            }
            start += cur;
            bytes -= cur;
        }
        let last = value[r.end as usize];
        let tmp = if bit {
            last & !r.last_neg_mask
        } else {
            last | r.last_neg_mask
        };
        first_bit(&[tmp], bit)
    };
    if end_given && !bit && pos == bytes << 3 {
        return -1;
    }
    if pos != -1 {
        pos + (start << 3)
    } else {
        pos
    }
}

/// A BITOP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BitOp {
    /// AND.
    And,
    /// OR.
    Or,
    /// XOR.
    Xor,
    /// NOT (one source).
    Not,
}

/// Parses BITOP's operation name.
pub(crate) fn parse_bitop(arg: &[u8]) -> Result<BitOp, CommandError> {
    [
        ("and", BitOp::And),
        ("or", BitOp::Or),
        ("xor", BitOp::Xor),
        ("not", BitOp::Not),
    ]
    .into_iter()
    .find(|(name, _)| arg.eq_ignore_ascii_case(name.as_bytes()))
    .map(|(_, op)| op)
    .ok_or_else(|| error(crate::cmd::args::SYNTAX))
}

/// BITOP's result over the sources (an absent key is an empty string); empty when every
/// source is empty, in which case the destination is deleted.
pub(crate) fn bit_op(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let max_len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let byte_at = |s: &[u8], j: usize| s.get(j).copied().unwrap_or(0);
    (0..max_len)
        .map(|j| {
            let mut out = sources.first().map_or(0, |s| byte_at(s, j));
            if op == BitOp::Not {
                return !out;
            }
            for s in &sources[1..] {
                let b = byte_at(s, j);
                match op {
                    BitOp::And => out &= b,
                    BitOp::Or => out |= b,
                    BitOp::Xor => out ^= b,
                    BitOp::Not => {}
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get_bits_grow_with_zeroes() {
        let mut v = Vec::new();
        assert!(!set_bit(&mut v, 7, true));
        assert_eq!(v, vec![0x01]);
        assert!(set_bit(&mut v, 7, false));
        assert!(!set_bit(&mut v, 17, true));
        assert_eq!(v, vec![0x00, 0x00, 0x40]);
        assert!(get_bit(&v, 17));
        assert!(!get_bit(&v, 1000));
    }

    #[test]
    fn offsets_and_values_are_checked() {
        assert!(parse_bit_offset(b"-1").is_err());
        assert!(parse_bit_offset(b"4294967296").is_err());
        assert_eq!(parse_bit_offset(b"4294967295").ok(), Some(4_294_967_295));
        assert!(parse_bit_value(b"2").is_err());
        assert_eq!(parse_bit_value(b"1").ok(), Some(true));
    }

    #[test]
    fn bitcount_matches_redis_examples() {
        let v = b"foobar";
        assert_eq!(bit_count(v, None), 26);
        assert_eq!(bit_count(v, Some((0, 0, Unit::Byte))), 4);
        assert_eq!(bit_count(v, Some((1, 1, Unit::Byte))), 6);
        assert_eq!(bit_count(v, Some((1, 1, Unit::Bit))), 1);
        assert_eq!(bit_count(v, Some((5, 30, Unit::Bit))), 17);
        assert_eq!(bit_count(v, Some((-1, -2, Unit::Byte))), 0);
        assert_eq!(bit_count(v, Some((0, -1, Unit::Byte))), 26);
        assert_eq!(bit_count(b"", Some((0, -1, Unit::Byte))), 0);
    }

    #[test]
    fn bitpos_matches_redis_examples() {
        let v = [0xffu8, 0xf0, 0x00];
        assert_eq!(bit_pos(&v, false, None, None, Unit::Byte), 12);
        let v = [0x00u8, 0xff, 0xf0];
        assert_eq!(bit_pos(&v, true, Some(0), None, Unit::Byte), 8);
        assert_eq!(bit_pos(&v, true, Some(2), None, Unit::Byte), 16);
        assert_eq!(bit_pos(&v, true, Some(2), Some(-1), Unit::Byte), 16);
        assert_eq!(bit_pos(&v, true, Some(7), Some(15), Unit::Bit), 8);
        assert_eq!(bit_pos(&[0u8; 3], true, None, None, Unit::Byte), -1);
        assert_eq!(bit_pos(&[0xffu8], false, None, None, Unit::Byte), 8);
        assert_eq!(bit_pos(&[0xffu8], false, Some(0), Some(-1), Unit::Byte), -1);
        assert_eq!(
            bit_pos(&[0xffu8, 0x7f], false, Some(3), Some(9), Unit::Bit),
            8
        );
        assert_eq!(bit_pos(&[0xffu8], true, Some(5), Some(2), Unit::Byte), -1);
    }

    #[test]
    fn bitop_combines_with_zero_padding() {
        let a: &[u8] = b"\xff\x0f";
        let b: &[u8] = b"\x0f";
        assert_eq!(bit_op(BitOp::And, &[a, b]), vec![0x0f, 0x00]);
        assert_eq!(bit_op(BitOp::Or, &[a, b]), vec![0xff, 0x0f]);
        assert_eq!(bit_op(BitOp::Xor, &[a, b]), vec![0xf0, 0x0f]);
        assert_eq!(bit_op(BitOp::Not, &[a]), vec![0x00, 0xf0]);
        assert!(bit_op(BitOp::And, &[b"", b""]).is_empty());
        assert!(parse_bitop(b"nand").is_err());
    }
}
