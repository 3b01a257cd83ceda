//! Errors of the request parser.
//!
//! Owns [`ProtocolError`]: why a client's byte stream is not a valid request, with Redis's own
//! error texts (`networking.c`, `processInlineBuffer` / `processMultibulkBuffer`) so a client sees
//! byte for byte what Redis would send. This module only names and renders errors; it never
//! frames a reply (`-ERR ...\r\n` is the reply encoder's job) and never decides to close a
//! connection.

use std::io;

/// Why the bytes a client sent are not a request.
///
/// After any of these the stream is out of sync: the connection replies `-ERR <text>` (see
/// [`ProtocolError::wire_message`]) and closes, as Redis does. The decoder has already discarded
/// the rest of its input buffer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An inline request line (no leading `*`) is longer than `max_inline_bytes`.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,

    /// An inline request has an unterminated quote, or a closing quote followed by something
    /// other than a space (`"foo"bar`).
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,

    /// The `*<count>` line of a multibulk request is longer than `max_inline_bytes`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,

    /// A `$<length>` line inside a multibulk request is longer than `max_inline_bytes`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,

    /// The `*<count>` is not a number or is above `max_args`.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,

    /// A `$<length>` is not a number, is negative, or is above `max_bulk_bytes`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,

    /// Something other than a `$` bulk header where an argument was expected; a nested array
    /// (`*` inside `*`) is this error, since client requests are flat.
    #[error("Protocol error: expected '$', got '{}'", escape_byte(*got))]
    ExpectedBulk {
        /// The byte found instead of `$`.
        got: u8,
    },

    /// A client that still has to authenticate sent more arguments than it may before `AUTH`.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,

    /// A client that still has to authenticate sent a longer argument than it may before `AUTH`.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,

    /// The arguments of one request add up to more than `max_request_bytes`. Redis has no text
    /// for this: it silently drops a client past `client-query-buffer-limit`; ringkv says why.
    #[error("Protocol error: too big request")]
    TooBigRequest,

    /// Reading from the socket failed (the codec framework routes read errors through the
    /// decoder's error type). Not a protocol error: there is nothing to reply.
    #[error("reading a request failed: {source}")]
    Io {
        /// The underlying read error.
        #[from]
        source: io::Error,
    },
}

impl ProtocolError {
    /// The error text exactly as Redis writes it after `-ERR `, or `None` for
    /// [`ProtocolError::Io`], which gets no reply.
    ///
    /// This differs from `Display` only for [`ProtocolError::ExpectedBulk`]: Redis formats the
    /// byte with `%c`, so a non-ASCII byte goes out raw (not valid UTF-8), `\r` and `\n` become
    /// spaces (Redis keeps newlines out of error replies), and a NUL byte ends the text (its
    /// `sdscatvprintf` copies the formatted text with `strlen`).
    pub fn wire_message(&self) -> Option<Vec<u8>> {
        match self {
            ProtocolError::Io { .. } => None,
            ProtocolError::ExpectedBulk { got } => {
                let mut text = b"Protocol error: expected '$', got '".to_vec();
                match *got {
                    0 => {}
                    b'\r' | b'\n' => text.extend_from_slice(b" '"),
                    byte => text.extend_from_slice(&[byte, b'\'']),
                }
                Some(text)
            }
            other => Some(other.to_string().into_bytes()),
        }
    }

    /// Whether the connection that produced this error should get an `-ERR` reply before it is
    /// closed: true for every protocol error, false for a failed read.
    pub fn is_protocol(&self) -> bool {
        !matches!(self, ProtocolError::Io { .. })
    }
}

/// Shows a byte for `Display` (logs), where the text must be UTF-8: printable ASCII as itself,
/// anything else as `\xHH`.
fn escape_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte).to_string()
    } else {
        format!("\\x{byte:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_message_matches_redis_for_every_byte_class() {
        let got = |b| ProtocolError::ExpectedBulk { got: b }.wire_message();
        assert_eq!(
            got(b'f').as_deref(),
            Some(&b"Protocol error: expected '$', got 'f'"[..])
        );
        assert_eq!(
            got(b'\r').as_deref(),
            Some(&b"Protocol error: expected '$', got ' '"[..])
        );
        assert_eq!(
            got(0xff).as_deref(),
            Some(&b"Protocol error: expected '$', got '\xff'"[..])
        );
        assert_eq!(
            got(0).as_deref(),
            Some(&b"Protocol error: expected '$', got '"[..])
        );
        assert_eq!(
            ProtocolError::InvalidBulkLength.wire_message().as_deref(),
            Some(&b"Protocol error: invalid bulk length"[..])
        );
        let io = ProtocolError::from(io::Error::other("reset"));
        assert!(io.wire_message().is_none());
        assert!(!io.is_protocol());
    }

    #[test]
    fn display_escapes_unprintable_bytes() {
        assert_eq!(
            ProtocolError::ExpectedBulk { got: 0xff }.to_string(),
            "Protocol error: expected '$', got '\\xff'"
        );
        assert_eq!(
            ProtocolError::ExpectedBulk { got: b'*' }.to_string(),
            "Protocol error: expected '$', got '*'"
        );
    }
}
