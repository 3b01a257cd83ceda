//! The bounds the request parser enforces.
//!
//! Owns [`ParserLimits`]: how big one request may be, checked by the decoder before it allocates
//! or buffers anything on a client's say-so. It holds numbers only; the checks live in the
//! decoder, and per-command limits (the 10 MiB value limit, the 64 KiB key limit) belong to the
//! command layer, which can answer them with an error and keep the connection.

/// Upper bounds on one request, each checked as soon as the header that announces a size is
/// read, so a client cannot make the node allocate or wait for more than these allow.
///
/// The defaults are Redis's: a bulk may be as long as `proto-max-bulk-len`, an inline line as long
/// as `PROTO_INLINE_MAX_SIZE`, and a client that has not authenticated yet may send at most 10
/// arguments of at most 16 KiB. Exceeding any of them is a protocol error (the connection is
/// closed), not a command error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Longest single argument (`$<length>`) of a multibulk request. Larger is
    /// "invalid bulk length". Default 512 MiB, Redis's `proto-max-bulk-len`; the command layer
    /// applies the smaller value and key limits with clearer errors.
    pub max_bulk_bytes: usize,
    /// Most arguments (`*<count>`) in one multibulk request. Larger is
    /// "invalid multibulk length". Default 1,048,576, as Redis before 7.0.
    pub max_args: usize,
    /// Longest inline request line, and longest `*<count>` / `$<length>` line. Default 64 KiB,
    /// Redis's `PROTO_INLINE_MAX_SIZE`.
    pub max_inline_bytes: usize,
    /// Most argument bytes in one request, all arguments together. Larger is "too big request".
    /// Default 1 GiB, Redis's `client-query-buffer-limit`.
    pub max_request_bytes: usize,
    /// Most arguments a client may send in one request before it authenticates (only while
    /// [`RequestDecoder::set_auth_required`](super::RequestDecoder::set_auth_required) is on).
    /// Default 10, as Redis.
    pub max_unauthenticated_args: usize,
    /// Longest argument a client may send before it authenticates. Default 16 KiB, as Redis.
    pub max_unauthenticated_bulk_bytes: usize,
    /// Most bytes reserved up front for a large argument once its header is read, so it is
    /// received into one buffer instead of one that grows and copies. Past this the buffer grows
    /// as data actually arrives, so a header alone can never make the node commit more than this
    /// per connection. Default 16 MiB, above the default value limit.
    pub max_reserve_bytes: usize,
}

impl ParserLimits {
    /// Redis's `PROTO_MBULK_BIG_ARG`: arguments at least this long get their whole buffer reserved
    /// when their header is read. Smaller ones arrive with the next read anyway.
    pub const BIG_ARG_BYTES: usize = 32 * 1024;
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_bulk_bytes: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
            max_request_bytes: 1024 * 1024 * 1024,
            max_unauthenticated_args: 10,
            max_unauthenticated_bulk_bytes: 16 * 1024,
            max_reserve_bytes: 16 * 1024 * 1024,
        }
    }
}
