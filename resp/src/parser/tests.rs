//! Tests of the request decoder: Redis's behaviour case by case, every error, resumability and
//! its cost, and the bounds on allocation.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::{ParserLimits, Request, RequestDecoder};
use crate::error::ProtocolError;

/// What a decoder made of a stream: the requests, then the error that stopped it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Vec<Vec<u8>>>,
    error: Option<String>,
}

/// Feeds `chunks` to `decoder` one read at a time, decoding after each as `FramedRead` does.
fn feed<'a>(decoder: &mut RequestDecoder, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Request { args })) => {
                    assert!(!args.is_empty(), "empty requests are skipped");
                    requests.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(error) => {
                    assert!(buf.is_empty(), "input is discarded after an error");
                    return Outcome {
                        requests,
                        error: Some(error.to_string()),
                    };
                }
            }
        }
    }
    Outcome {
        requests,
        error: None,
    }
}

fn whole(input: &[u8]) -> Outcome {
    feed(&mut RequestDecoder::default(), [input])
}

fn whole_with(limits: ParserLimits, input: &[u8]) -> Outcome {
    feed(&mut RequestDecoder::new(limits), [input])
}

fn ok(requests: &[&[&[u8]]]) -> Outcome {
    Outcome {
        requests: requests
            .iter()
            .map(|r| r.iter().map(|a| a.to_vec()).collect())
            .collect(),
        error: None,
    }
}

fn err(requests: &[&[&[u8]]], text: &str) -> Outcome {
    Outcome {
        error: Some(text.to_string()),
        ..ok(requests)
    }
}

/// Encodes a request as a client library would.
fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn multibulk_request() {
    assert_eq!(
        whole(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"),
        ok(&[&[b"SET", b"k", b"value"]])
    );
    assert_eq!(
        whole(b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"),
        ok(&[&[b"GET", b""]])
    );
}

#[test]
fn binary_arguments_are_taken_verbatim() {
    let value: Vec<u8> = (0..=255).collect();
    let input = multibulk(&[b"SET", b"k\r\n*1", &value]);
    assert_eq!(whole(&input), ok(&[&[b"SET", b"k\r\n*1", &value]]));
}

#[test]
fn pipelined_requests_in_one_buffer() {
    let mut input = multibulk(&[b"PING"]);
    input.extend_from_slice(b"ECHO hi\r\n");
    input.extend_from_slice(&multibulk(&[b"GET", b"a"]));
    input.extend_from_slice(b"PING\n");
    assert_eq!(
        whole(&input),
        ok(&[&[b"PING"], &[b"ECHO", b"hi"], &[b"GET", b"a"], &[b"PING"]])
    );
}

#[test]
fn empty_requests_are_skipped_as_in_redis() {
    // Redis's "Handle an empty query" and "Negative multibulk length".
    assert_eq!(whole(b"\r\nPING\r\n"), ok(&[&[b"PING"]]));
    assert_eq!(whole(b"*-10\r\nPING\r\n"), ok(&[&[b"PING"]]));
    assert_eq!(
        whole(b"*0\r\n*-1\r\n   \r\n\n*1\r\n$1\r\nx\r\n"),
        ok(&[&[b"x"]])
    );
}

#[test]
fn inline_requests_with_quotes() {
    assert_eq!(
        whole(b"SET \"a key\" 'it\\'s' \"\\x00\\n\"\r\n"),
        ok(&[&[b"SET", b"a key", b"it's", b"\x00\n"]])
    );
    assert_eq!(whole(b"set k v\n"), ok(&[&[b"set", b"k", b"v"]]));
    // Only the '\r' right before the '\n' belongs to the line ending.
    assert_eq!(whole(b"a\rb\r\n"), ok(&[&[b"a", b"b"]]));
}

#[test]
fn incomplete_requests_wait() {
    for partial in [
        &b"*"[..],
        b"*2",
        b"*2\r",
        b"*2\r\n$3",
        b"*2\r\n$3\r\nGET\r\n$1\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r",
        b"PING",
        b"PING\r",
        b"\"unterminated",
    ] {
        let mut decoder = RequestDecoder::default();
        let mut buf = BytesMut::from(partial);
        assert!(
            matches!(decoder.decode(&mut buf), Ok(None)),
            "{:?}",
            String::from_utf8_lossy(partial)
        );
    }
}

#[test]
fn like_redis_the_line_ending_bytes_are_not_checked() {
    // Redis skips the two bytes after '\r' in a header and after a bulk's payload unchecked;
    // reading the same stream the same way keeps replies identical.
    assert_eq!(whole(b"*1\rX$4\r\nPINGxy"), ok(&[&[b"PING"]]));
}

#[test]
fn redis_protocol_test_cases() {
    // tests/unit/protocol.tcl in Redis.
    assert_eq!(
        whole(b"*20000000\r\n"),
        err(&[], "Protocol error: invalid multibulk length")
    );
    assert_eq!(
        whole(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
        err(&[], "Protocol error: expected '$', got 'f'")
    );
    assert_eq!(
        whole(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n"),
        err(&[], "Protocol error: invalid bulk length")
    );
    assert_eq!(
        whole(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n"),
        err(&[], "Protocol error: invalid bulk length")
    );
    assert_eq!(
        whole(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n"),
        err(&[], "Protocol error: invalid bulk length")
    );
    assert_eq!(
        whole(b"*1\r\nfoo\r\n"),
        err(&[], "Protocol error: expected '$', got 'f'")
    );
}

#[test]
fn protocol_desync_regressions_end_in_an_error() {
    // Redis's "Protocol desync regression test": the client never sends a line ending.
    for prefix in [&b"\x00"[..], b"*\x00", b"$\x00"] {
        let mut decoder = RequestDecoder::default();
        let payload = [b'A'; 1024];
        let mut chunks = vec![prefix];
        chunks.extend(std::iter::repeat_n(&payload[..], 100));
        let outcome = feed(&mut decoder, chunks);
        let error = outcome.error.unwrap_or_default();
        assert!(error.starts_with("Protocol error: too big"), "{error}");
    }
}

#[test]
fn every_error_text() {
    let small = ParserLimits {
        max_inline_bytes: 8,
        max_bulk_bytes: 10,
        max_args: 3,
        max_request_bytes: 15,
        ..ParserLimits::default()
    };
    let cases: &[(&[u8], &str)] = &[
        (b"123456789\r\n", "Protocol error: too big inline request"),
        (b"1234567890", "Protocol error: too big inline request"),
        (
            b"SET \"k v\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
        (b"'a'b\r\n", "Protocol error: unbalanced quotes in request"),
        (b"*123456789", "Protocol error: too big mbulk count string"),
        (
            b"*12345678\r\n",
            "Protocol error: too big mbulk count string",
        ),
        (
            b"*1\r\n$123456789",
            "Protocol error: too big bulk count string",
        ),
        (b"*x\r\n", "Protocol error: invalid multibulk length"),
        (b"*\r\n", "Protocol error: invalid multibulk length"),
        (b"*4\r\n", "Protocol error: invalid multibulk length"),
        (b"*01\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n$11\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$+1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
        (b"*1\r\n*1\r\n", "Protocol error: expected '$', got '*'"),
        (b"*1\r\n\r\n", "Protocol error: expected '$', got '\\x0d'"),
        (
            b"*2\r\n$10\r\n0123456789\r\n$6\r\n",
            "Protocol error: too big request",
        ),
    ];
    for (input, text) in cases {
        assert_eq!(
            whole_with(small, input),
            err(&[], text),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn limits_are_inclusive() {
    let small = ParserLimits {
        max_inline_bytes: 8,
        max_bulk_bytes: 10,
        max_args: 3,
        max_request_bytes: 20,
        ..ParserLimits::default()
    };
    assert_eq!(whole_with(small, b"12345678\r\n"), ok(&[&[b"12345678"]]));
    assert_eq!(
        whole_with(
            small,
            b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$0\r\n\r\n"
        ),
        ok(&[&[b"0123456789", b"0123456789", b""]])
    );
}

#[test]
fn unauthenticated_limits_apply_only_when_required() {
    let eleven: Vec<&[u8]> = vec![b"x"; 11];
    let big = vec![b'v'; 16 * 1024 + 1];
    let mut decoder = RequestDecoder::default();
    decoder.set_auth_required(true);
    assert_eq!(
        feed(&mut decoder, [&multibulk(&eleven)[..]]),
        err(&[], "Protocol error: unauthenticated multibulk length")
    );
    assert_eq!(
        feed(&mut decoder, [&multibulk(&[b"AUTH", &big])[..]]),
        err(&[], "Protocol error: unauthenticated bulk length")
    );
    assert_eq!(
        feed(&mut decoder, [&b"*-1\r\nAUTH pw\r\n"[..]]),
        ok(&[&[b"AUTH", b"pw"]])
    );
    decoder.set_auth_required(false);
    assert_eq!(feed(&mut decoder, [&multibulk(&eleven)[..]]).error, None);
    assert_eq!(
        feed(&mut decoder, [&multibulk(&[b"SET", &big])[..]]).error,
        None
    );
}

#[test]
fn the_decoder_is_usable_after_an_error() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n*1\r\n$4\r\nPING\r\n"[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(ProtocolError::ExpectedBulk { got: b'*' })
    ));
    assert!(buf.is_empty());
    buf.extend_from_slice(b"PING\r\n");
    assert_eq!(
        decoder.decode(&mut buf).ok().flatten().map(|r| r.args),
        Some(vec![Bytes::from_static(b"PING")])
    );
}

#[test]
fn decode_eof_drops_a_partial_request() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"PING\r\n*2\r\n$3\r\nGET\r\n"[..]);
    assert!(matches!(decoder.decode_eof(&mut buf), Ok(Some(_))));
    assert!(matches!(decoder.decode_eof(&mut buf), Ok(None)));
    assert!(buf.is_empty());
}

#[test]
fn arguments_are_slices_of_the_read_buffer() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let request = decoder.decode(&mut buf).ok().flatten();
    let args = request.map(|r| r.args).unwrap_or_default();
    assert_eq!(args.len(), 2);
    for arg in &args {
        let at = arg.as_ptr() as usize;
        assert!(at >= start && at < end, "argument was copied");
    }
}

#[test]
fn the_nesting_bomb_fails_at_once_without_recursion() {
    let bomb = b"*1\r\n".repeat(10_000);
    let mut decoder = RequestDecoder::default();
    let outcome = feed(&mut decoder, [&bomb[..]]);
    assert_eq!(outcome, err(&[], "Protocol error: expected '$', got '*'"));
    // Rejected at the second frame's first byte: nothing else was looked at.
    assert!(
        decoder.bytes_examined() <= 8,
        "{}",
        decoder.bytes_examined()
    );
}

#[test]
fn a_2_gb_bulk_header_is_refused_before_allocating() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(b"*1\r\n$2147483648\r\n");
    let capacity = buf.capacity();
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(ProtocolError::InvalidBulkLength)
    ));
    assert!(buf.capacity() <= capacity, "nothing was reserved");
    // A count of 2^31 arguments is refused at its header too.
    let mut buf = BytesMut::from(&b"*2147483648\r\n"[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(ProtocolError::InvalidMultibulkLength)
    ));
}

#[test]
fn a_large_announced_count_reserves_little() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*1048576\r\n$1\r\nx\r\n"[..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    assert!(decoder.args.capacity() <= super::INITIAL_ARGS_CAPACITY);
}

#[test]
fn a_big_bulk_is_received_into_one_reserved_buffer() {
    let len = 3 * 1024 * 1024;
    let value = vec![b'v'; len];
    let input = multibulk(&[b"SET", b"k", &value]);
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut capacities = Vec::new();
    let mut requests = Vec::new();
    for chunk in input.chunks(16 * 1024) {
        buf.extend_from_slice(chunk);
        capacities.push(buf.capacity());
        while let Ok(Some(request)) = decoder.decode(&mut buf) {
            requests.push(request);
        }
    }
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].args[2].len(), len);
    // Once the header was read the buffer had room for the whole value: no regrowth after.
    let grown = capacities.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(grown <= 1, "buffer grew {grown} times: {capacities:?}");
    assert!(decoder.bytes_examined() <= 2 * input.len() as u64);
}

#[test]
fn reservation_is_capped() {
    let limits = ParserLimits {
        max_reserve_bytes: 64 * 1024,
        ..ParserLimits::default()
    };
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::from(&b"*1\r\n$500000000\r\nabc"[..]);
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    assert!(buf.capacity() >= 64 * 1024);
    assert!(buf.capacity() < 1024 * 1024, "{}", buf.capacity());
}

#[test]
fn a_3_mb_array_in_16_kib_reads_is_examined_once() {
    let args: Vec<Vec<u8>> = (0..300_000)
        .map(|i| format!("{i:05}").into_bytes())
        .collect();
    let mut arg_refs: Vec<&[u8]> = vec![b"MSET"];
    arg_refs.extend(args.iter().map(|a| &a[..]));
    let input = multibulk(&arg_refs);
    assert!(input.len() > 3_000_000);
    let mut decoder = RequestDecoder::default();
    let outcome = feed(&mut decoder, input.chunks(16 * 1024));
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.requests.len(), 1);
    assert_eq!(outcome.requests[0].len(), arg_refs.len());
    assert_eq!(outcome.requests[0][300_000], args[299_999]);
    // A parser that restarted the request on each read would examine ~190x the input here.
    let examined = decoder.bytes_examined();
    assert!(
        examined <= 2 * input.len() as u64,
        "{examined} for {}",
        input.len()
    );
}

#[test]
fn byte_at_a_time_is_examined_once() {
    let mut input = Vec::new();
    for i in 0..200 {
        input.extend_from_slice(&multibulk(&[
            b"SET",
            format!("key{i}").as_bytes(),
            b"value",
        ]));
        input.extend_from_slice(b"GET \"quoted key\" plain\r\n");
    }
    let mut decoder = RequestDecoder::default();
    let outcome = feed(&mut decoder, input.chunks(1));
    assert_eq!(outcome.requests.len(), 400);
    assert_eq!(outcome, whole(&input));
    let examined = decoder.bytes_examined();
    assert!(
        examined <= 2 * input.len() as u64,
        "{examined} for {}",
        input.len()
    );
}

#[test]
fn a_long_inline_line_in_small_reads_is_examined_once() {
    let mut input = b"ECHO ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 60 * 1024));
    input.extend_from_slice(b"\r\n");
    let mut decoder = RequestDecoder::default();
    let outcome = feed(&mut decoder, input.chunks(100));
    assert_eq!(outcome.requests.len(), 1);
    assert!(decoder.bytes_examined() <= 2 * input.len() as u64);
}

#[tokio::test]
async fn works_under_framed_read() {
    use futures_core::Stream;
    use tokio_util::codec::FramedRead;

    let mut input = multibulk(&[b"SET", b"k", b"v"]);
    input.extend_from_slice(b"GET k\r\n*2\r\n$3\r\nGET");
    let mut frames = FramedRead::new(&input[..], RequestDecoder::default());
    let mut seen = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut frames).poll_next(cx)).await
    {
        seen.push(frame.map(|r| r.args).map_err(|e| e.to_string()));
    }
    assert_eq!(
        seen,
        vec![
            Ok(vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"k"),
                Bytes::from_static(b"v")
            ]),
            Ok(vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")]),
        ]
    );
}

/// A request a client could send, with how it is written on the wire.
fn arb_request() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>)> {
    let multibulk_request =
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6).prop_map(
            |args| {
                let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                let wire = multibulk(&refs);
                (args, wire)
            },
        );
    let inline_request =
        proptest::collection::vec("[a-zA-Z0-9_:.-]{1,12}", 1..5).prop_map(|words| {
            let wire = format!("{}\r\n", words.join(" ")).into_bytes();
            (words.into_iter().map(String::into_bytes).collect(), wire)
        });
    prop_oneof![3 => multibulk_request, 1 => inline_request]
}

proptest! {
    #[test]
    fn a_request_split_at_any_byte_parses_as_whole(
        requests in proptest::collection::vec(arb_request(), 1..4),
    ) {
        let wire: Vec<u8> = requests.iter().flat_map(|(_, w)| w.clone()).collect();
        let expected = Outcome {
            requests: requests.into_iter().map(|(args, _)| args).collect(),
            error: None,
        };
        prop_assert_eq!(&whole(&wire), &expected);
        for split in 0..=wire.len() {
            let (head, tail) = wire.split_at(split);
            prop_assert_eq!(&feed(&mut RequestDecoder::default(), [head, tail]), &expected);
        }
        prop_assert_eq!(&feed(&mut RequestDecoder::default(), wire.chunks(1)), &expected);
    }

    #[test]
    fn any_bytes_decode_the_same_however_they_are_split(
        input in proptest::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => Just(b'\r'),
                2 => Just(b'\n'),
                1 => Just(b'*'),
                1 => Just(b'$'),
                1 => Just(b'"'),
                1 => Just(b'1'),
            ],
            0..200,
        ),
        chunk_lens in proptest::collection::vec(1usize..9, 1..40),
    ) {
        let limits = ParserLimits {
            max_inline_bytes: 16,
            max_bulk_bytes: 8,
            max_args: 4,
            max_request_bytes: 12,
            ..ParserLimits::default()
        };
        let expected = whole_with(limits, &input);
        let mut chunks = Vec::new();
        let mut rest = &input[..];
        for len in chunk_lens.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*len).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        prop_assert_eq!(&feed(&mut RequestDecoder::new(limits), chunks), &expected);
    }
}
