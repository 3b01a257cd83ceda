//! The request parser's robustness harness, shared by the `cargo fuzz` target
//! (`resp/fuzz/fuzz_targets/parser.rs`) and the stable test `tests/parser_random_inputs.rs`, so
//! both check the same properties.
//!
//! [`check`] decodes arbitrary bytes whole, in arbitrary chunks and one byte at a time, and
//! asserts that the decoder never panics, that all three agree (requests and error text), that
//! it never yields an empty request, that it discards its input after an error, and that it
//! examines each byte about once. It uses only the crate's public API.

use bytes::BytesMut;
use ringkv_resp::{ParserLimits, Request, RequestDecoder};
use tokio_util::codec::Decoder;

/// Limits small enough that arbitrary inputs reach every limit check.
const SMALL_LIMITS: ParserLimits = ParserLimits {
    max_bulk_bytes: 16,
    max_args: 5,
    max_inline_bytes: 24,
    max_request_bytes: 12,
    max_unauthenticated_args: 2,
    max_unauthenticated_bulk_bytes: 4,
    max_reserve_bytes: 64,
};

/// What a decoder made of a stream: the requests, then the error that stopped it.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Every request decoded, as plain byte vectors.
    pub requests: Vec<Vec<Vec<u8>>>,
    /// The error text, if the stream ended in a protocol error.
    pub error: Option<String>,
}

/// Decodes `chunks` as successive reads, as `FramedRead` does, checking per-call invariants, and
/// ends with `decode_eof` as a closed connection would.
pub fn decode_chunks<'a>(
    decoder: &mut RequestDecoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let take = |request: Request, requests: &mut Vec<Vec<Vec<u8>>>| {
        assert!(
            !request.args.is_empty(),
            "the decoder yielded an empty request"
        );
        requests.push(request.args.iter().map(|arg| arg.to_vec()).collect());
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => take(request, &mut requests),
                Ok(None) => break,
                Err(error) => {
                    assert!(buf.is_empty(), "input left buffered after an error");
                    assert!(error.is_protocol());
                    assert!(error.wire_message().is_some());
                    return Outcome {
                        requests,
                        error: Some(error.to_string()),
                    };
                }
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(request)) => take(request, &mut requests),
            Ok(None) => break,
            Err(error) => panic!("decode_eof failed after decode succeeded: {error}"),
        }
    }
    assert!(buf.is_empty(), "decode_eof left input buffered");
    Outcome {
        requests,
        error: None,
    }
}

/// A small deterministic generator (xorshift64*), so chunkings follow from the input alone.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Runs one input and returns what it decoded to. The first byte chooses the limits (default or
/// small), whether authentication is required, and seeds the chunking; the rest is the byte
/// stream.
pub fn check(data: &[u8]) -> Outcome {
    let Some((&control, input)) = data.split_first() else {
        return Outcome {
            requests: Vec::new(),
            error: None,
        };
    };
    let limits = if control & 1 == 0 {
        SMALL_LIMITS
    } else {
        ParserLimits::default()
    };
    let auth_required = control & 2 != 0;
    let decoder = || {
        let mut decoder = RequestDecoder::new(limits);
        decoder.set_auth_required(auth_required);
        decoder
    };

    let mut whole_decoder = decoder();
    let whole = decode_chunks(&mut whole_decoder, [input]);

    let seed = u64::from(control)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(input.len() as u64);
    // xorshift never leaves zero, so keep the seed odd.
    let mut rng = Xorshift(seed | 1);
    let mut chunks = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let len = (rng.next() % 17 + 1) as usize;
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    let chunk_count = chunks.len() as u64;
    let mut chunked_decoder = decoder();
    let chunked = decode_chunks(&mut chunked_decoder, chunks);
    assert_eq!(chunked, whole, "chunked reads decode differently");

    let mut bytewise_decoder = decoder();
    let bytewise = decode_chunks(&mut bytewise_decoder, input.chunks(1));
    assert_eq!(bytewise, whole, "one-byte reads decode differently");

    // Resumability: each byte is examined about once however the input is cut. A header whose
    // '\r' arrived without the byte after it is looked at again on the next read, hence the
    // small per-read allowance.
    let len = input.len() as u64;
    for (examined, reads) in [
        (whole_decoder.bytes_examined(), 1),
        (chunked_decoder.bytes_examined(), chunk_count),
        (bytewise_decoder.bytes_examined(), len),
    ] {
        assert!(
            examined <= len + 2 * reads + 2,
            "examined {examined} bytes of {len} in {reads} reads"
        );
    }
    whole
}
