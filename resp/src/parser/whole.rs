//! The decoder's fast path: a plain multibulk request already whole in the buffer.
//!
//! Owns [`RequestDecoder::decode_whole`]. Nearly every request a busy client sends (GET, SET,
//! a pipeline of either) arrives whole in one read; for those, walking the state machine costs
//! more than the request: a state change, a search, a limit check and a buffer split or advance
//! per line. This pass reads the headers straight from the buffer, skips each argument by its
//! length, and on reaching the end splits the request off in one piece, handing out the
//! arguments as slices of it.
//!
//! It never decides anything the state machine would decide differently: it accepts only what
//! the state machine accepts with the same result (short canonical numbers, every limit met,
//! nothing to reserve, no authentication pending), and otherwise returns `None` having consumed
//! nothing and changed no state, so the state machine starts the same request from its first
//! byte and gives its own answer, error or wait. It never returns an error.
//!
//! A declined request's headers are read twice, once here and once by the state machine. That
//! happens at most once per request (the state machine then leaves `State::Start` or is waiting
//! for the rest of a `*<count>` line) and covers at most [`MAX_FAST_ARGS`] short header lines
//! (argument data is skipped by length, never read), so it is not counted in
//! `RequestDecoder::bytes_examined`, which measures the state machine's resumability.

use bytes::{Buf, BytesMut};

use super::{ParserLimits, Request, RequestDecoder};

/// Most arguments a request may have to take the fast path. Bounds the memory it keeps and the
/// headers it may read in vain when the request turns out to be incomplete, which the state
/// machine then reads again; larger requests (MSET of hundreds of keys) go to the state
/// machine, whose per-argument cost is small beside theirs.
const MAX_FAST_ARGS: usize = 32;

/// Most digits of a count or length the fast path reads; any longer number goes to the state
/// machine. Seven digits are far above every length the fast path takes (arguments of
/// [`ParserLimits::BIG_ARG_BYTES`] or more are declined), and the value read before a longer
/// number is declined stays within even a 32-bit `usize`.
const MAX_FAST_DIGITS: usize = 7;

/// A whole request found by [`scan`]: its length in bytes and its argument count.
struct Whole {
    len: usize,
    count: usize,
}

impl RequestDecoder {
    /// Decodes the request at the start of `buf` if it is a whole, plain multibulk request;
    /// `None`, having consumed nothing and changed no decoder state, when it is anything else.
    /// Call only between requests (`State::Start`).
    pub(super) fn decode_whole(&mut self, buf: &mut BytesMut) -> Option<Request> {
        if self.auth_required {
            return None;
        }
        let Whole { len, count } = scan(buf, &self.limits, &mut self.spans)?;
        let (&last, rest) = self.spans.split_last()?;
        // As the state machine counts: every byte but each line's marker.
        self.bytes_examined += (len - 1 - count) as u64;
        let mut frame = buf.split_to(len).freeze();
        let mut args = std::mem::take(&mut self.spare_args);
        args.reserve_exact(count);
        for &(start, arg_len) in rest {
            args.push(frame.slice(start..start + arg_len));
        }
        // The last argument takes the frame itself: one reference count fewer.
        frame.advance(last.0);
        frame.truncate(last.1);
        args.push(frame);
        Some(Request { args })
    }
}

/// Reads the headers of the request at the start of `buf`, recording each argument's start and
/// length in `spans` (emptied first); `None` when the request is not for the fast path.
#[inline]
fn scan(buf: &[u8], limits: &ParserLimits, spans: &mut Vec<(usize, usize)>) -> Option<Whole> {
    spans.clear();
    let max_line = limits.max_inline_bytes;
    if buf.first() != Some(&b'*') {
        return None;
    }
    let (count, mut at) = number_line(buf, 0, max_line)?;
    // Zero (skipped) and over-limit counts are the state machine's to answer.
    if count == 0 || count > MAX_FAST_ARGS || count > limits.max_args {
        return None;
    }
    let mut request_bytes = 0usize;
    for _ in 0..count {
        if buf.get(at) != Some(&b'$') {
            return None;
        }
        let (len, data) = number_line(buf, at, max_line)?;
        request_bytes += len;
        // Big arguments get a reservation from the state machine; over-limit ones an error.
        if len >= ParserLimits::BIG_ARG_BYTES
            || len > limits.max_bulk_bytes
            || request_bytes > limits.max_request_bytes
        {
            return None;
        }
        // Like the state machine, the two bytes after an argument are skipped unchecked.
        let next = data + len + 2;
        if next > buf.len() {
            return None;
        }
        spans.push((data, len));
        at = next;
    }
    Some(Whole { len: at, count })
}

/// Reads the number of the header line whose marker is at `buf[at]`: its value and where the
/// next line starts; `None` when the line is incomplete, too long, or its number is not a
/// short canonical one (the state machine then reads it itself).
///
/// Accepts exactly `[1-9][0-9]{0,6}` or `0`, then `\r` and one more byte, with the `\r` no
/// further into the line than `max_line`: a subset of what the state machine accepts, read to
/// the same value. Header numbers are one to four digits, so this is a plain loop that stops at
/// the first byte that is not a digit (a word-at-a-time reading measured slower).
#[inline(always)]
fn number_line(buf: &[u8], at: usize, max_line: usize) -> Option<(usize, usize)> {
    let mut end = at + 1;
    let mut value = usize::from(buf.get(end)?.wrapping_sub(b'0'));
    if value > 9 {
        return None;
    }
    loop {
        end += 1;
        let byte = *buf.get(end)?;
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            if byte != b'\r' {
                return None;
            }
            break;
        }
        // Only a leading '0' leaves the value at zero once a digit follows it.
        if value == 0 || end - at > MAX_FAST_DIGITS {
            return None;
        }
        value = value * 10 + usize::from(digit);
    }
    // `end` is the '\r': its index in the line counting the marker is `end - at`, and the byte
    // after it must be buffered too.
    if end - at > max_line || end + 1 >= buf.len() {
        return None;
    }
    Some((value, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    #[test]
    fn numbers_are_read_only_when_short_and_canonical() {
        let read = |line: &[u8]| number_line(line, 0, 64).map(|(n, _)| n);
        assert_eq!(read(b"$0\r\n"), Some(0));
        assert_eq!(read(b"$16\r\n"), Some(16));
        assert_eq!(read(b"$9999999\r\n"), Some(9_999_999));
        for declined in [
            &b"$\r\n"[..],
            b"$00\r\n",
            b"$01\r\n",
            b"$-1\r\n",
            b"$+1\r\n",
            b"$10000000\r\n",
            b"$1 \r\n",
            b"$1\n\r",
            b"$1\r",
            b"$1",
        ] {
            assert_eq!(
                read(declined),
                None,
                "{}",
                String::from_utf8_lossy(declined)
            );
        }
        // The '\r' at index 3 is past a 2-byte line limit.
        assert!(number_line(b"$16\r\n", 0, 2).is_none());
        assert!(number_line(b"$16\r\n", 0, 3).is_some());
    }

    /// What [`number_line`] must return, from the state machine's rules: the line up to the
    /// first `\r` must be a number `parse_i64` reads, of at most [`MAX_FAST_DIGITS`] digits and
    /// not negative, with its `\r` within `max_line` and one more byte buffered.
    fn number_line_by_the_rules(buf: &[u8], at: usize, max_line: usize) -> Option<(usize, usize)> {
        let cr = at + buf.get(at..)?.iter().position(|&byte| byte == b'\r')?;
        let number = crate::parser::number::parse_i64(&buf[at + 1..cr])?;
        let short = cr - at - 1 <= MAX_FAST_DIGITS && number >= 0;
        (short && cr - at <= max_line && cr + 1 < buf.len()).then_some((number as usize, cr + 2))
    }

    proptest::proptest! {
        #[test]
        fn numbers_are_read_as_the_state_machine_reads_them(
            line in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => b'0'..=b'9',
                    1 => Just(b'\r'),
                    1 => Just(b'-'),
                    1 => proptest::num::u8::ANY,
                ],
                0..14,
            ),
            max_line in 0usize..12,
        ) {
            let buf = [&b"$"[..], &line].concat();
            proptest::prop_assert_eq!(
                number_line(&buf, 0, max_line),
                number_line_by_the_rules(&buf, 0, max_line)
            );
        }

        #[test]
        fn every_short_number_is_read(n in 0usize..10_000_000) {
            let buf = format!("${n}\r\n").into_bytes();
            proptest::prop_assert_eq!(number_line(&buf, 0, 64), Some((n, buf.len())));
        }
    }

    #[test]
    fn declines_leave_the_buffer_alone() {
        let mut decoder = RequestDecoder::default();
        for input in [
            &b"*2\r\n$3\r\nGET\r\n$1\r\n"[..],
            b"*0\r\n",
            b"*1\r\n*1\r\n",
            b"PING\r\n",
            b"*1\r\n$40000\r\n",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(decoder.decode_whole(&mut buf).is_none());
            assert_eq!(&buf[..], input);
        }
    }

    #[test]
    fn a_whole_request_is_split_off_in_one_piece() {
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\nab\r\nrest"[..]);
        let request = decoder.decode_whole(&mut buf).expect("whole");
        assert_eq!(request.args, vec![&b"SET"[..], b"", b"ab"]);
        assert_eq!(&buf[..], b"rest");
        // 27 bytes consumed, four of them line markers.
        assert_eq!(decoder.bytes_examined(), 23);
    }

    #[test]
    fn a_recycled_vector_serves_the_next_request_unless_it_is_large() {
        let mut decoder = RequestDecoder::default();
        decoder.recycle(vec![bytes::Bytes::from_static(b"GET"); 8]);
        assert_eq!(decoder.spare_args.capacity(), 8);
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
        let request = decoder.decode_whole(&mut buf).expect("whole");
        assert_eq!(request.args, vec![&b"PING"[..]]);
        assert_eq!(request.args.capacity(), 8);
        decoder.recycle(Vec::with_capacity(
            super::super::MAX_RECYCLED_ARGS_CAPACITY + 1,
        ));
        assert_eq!(decoder.spare_args.capacity(), 0);
    }
}
