//! Replies as plain data, and their RESP2/RESP3 encoding.
//!
//! Owns [`Reply`] and [`Protocol`]. Command handlers build a `Reply`; only this module turns one
//! into bytes ([`Reply::encode`]), per the connection's protocol (RESP2 by default, RESP3 after
//! `HELLO 3`), so no handler ever writes to a socket or chooses an encoding. Errors from every
//! crate ([`CommandError`], [`ClusterError`], the engine's) are mapped to Redis error replies in
//! one place here as well ([`Reply::from_error`]), with the texts from `errors.rs`.
//!
//! The encoder writes bytes straight into the connection's output buffer rather than building
//! `redis-protocol` frames and encoding those: a `Reply` already is a frame tree, and converting
//! it would allocate a second tree per reply on the hot path (GET at `-P 16` encodes hundreds
//! of thousands of replies a second) to produce the same bytes. `redis-protocol`'s decoders
//! check this encoder independently in the tests. This module never reads a socket, never
//! touches the cluster, and never decides which error applies.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use ringkv_cluster::ClusterError;

use crate::cmd::CommandError;
use crate::errors;

/// One reply, before encoding. RESP3-only shapes degrade to RESP2 the way Redis does
/// (`Map` → flat array, `Set` → array, `Double` → bulk string, `Null` → `$-1`, `Bool` → `:1/:0`).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK` style status.
    Simple(Bytes),
    /// `-ERR ...` style error; the text includes its prefix (`ERR`, `WRONGTYPE`, ...).
    Error(Bytes),
    /// `:n`.
    Integer(i64),
    /// `$n` bulk string.
    Bulk(Bytes),
    /// Null bulk (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// Null array (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// `*n`.
    Array(Vec<Reply>),
    /// `%n` in RESP3; a flat key, value, key, value array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// `~n` in RESP3; an array in RESP2.
    Set(Vec<Reply>),
    /// `,d` in RESP3; a bulk string in RESP2.
    Double(f64),
    /// `#t`/`#f` in RESP3; `:1`/`:0` in RESP2.
    Bool(bool),
    /// `=n txt:...` in RESP3; a bulk string in RESP2.
    Verbatim(Bytes),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple status from static text.
    pub fn simple(text: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply; `text` must carry its prefix (`"ERR syntax error"`).
    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(Bytes::from(text.into()))
    }

    /// A bulk string copied from `bytes`.
    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }
}

/// The protocol a connection speaks, chosen with `HELLO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, every connection's start.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The number `HELLO` and `CLIENT LIST` show: 2 or 3.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

impl Reply {
    /// Appends this reply's bytes in `protocol` to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Simple(text) => line(out, b'+', text),
            Reply::Error(text) => line(out, b'-', text),
            Reply::Integer(n) => header(out, b':', *n),
            Reply::Bulk(bytes) => bulk(out, bytes),
            Reply::Null if resp3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', len_i64(items.len()));
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', len_i64(pairs.len()));
                } else {
                    header(out, b'*', len_i64(pairs.len()).saturating_mul(2));
                }
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, len_i64(items.len()));
                for item in items {
                    item.encode(protocol, out);
                }
            }
            Reply::Double(value) => {
                let text = format_double(*value);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(value) if resp3 => {
                out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Bool(value) => header(out, b':', i64::from(*value)),
            Reply::Verbatim(text) if resp3 => {
                header(out, b'=', len_i64(text.len()).saturating_add(4));
                out.put_slice(b"txt:");
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(text) => bulk(out, text),
        }
    }

    /// The error reply for a handler's failure: the one place a [`CommandError`] or a
    /// [`ClusterError`] becomes Redis text.
    pub fn from_error(error: CommandError) -> Reply {
        match error {
            CommandError::Reply(text) => Reply::Error(Bytes::from(text)),
            CommandError::Cluster(error) => Reply::from_cluster_error(&error),
        }
    }

    /// The error reply for a cluster failure. Consistency failures keep the cluster's sentence,
    /// which names the level and the replica counts (`ERR cannot achieve consistency level TWO:
    /// 2 replica(s) required but only 1 alive`); the engine's size limits get the same texts as
    /// the front end's own checks.
    pub fn from_cluster_error(error: &ClusterError) -> Reply {
        let text = match error {
            ClusterError::Storage(ringkv_lsm::Error::ValueTooLarge { max, .. }) => {
                errors::value_too_large(*max)
            }
            ClusterError::Storage(ringkv_lsm::Error::KeyTooLarge { max, .. }) => {
                errors::key_too_large(*max)
            }
            ClusterError::CrossSlot => errors::CROSSSLOT.to_string(),
            // Redis Cluster's "retry later" code, which cluster clients retry on their own.
            busy @ ClusterError::KeyBusy { .. } => format!("TRYAGAIN {busy}"),
            other => format!("ERR {other}"),
        };
        Reply::Error(Bytes::from(text))
    }
}

impl From<CommandError> for Reply {
    fn from(error: CommandError) -> Self {
        Reply::from_error(error)
    }
}

/// `len` as a RESP length; lengths never come near `i64::MAX`, but saturate rather than wrap.
fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// `<marker><text>\r\n` for simple strings, errors and doubles. A line break inside the text
/// would end the reply early and desynchronise the client, so each becomes a space, as Redis's
/// `addReplyErrorLength` does for errors.
fn line(out: &mut BytesMut, marker: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(marker);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

/// `$<len>\r\n<bytes>\r\n`, with one capacity check for the whole reply.
fn bulk(out: &mut BytesMut, bytes: &[u8]) {
    let mut line = [0u8; HEADER_BYTES];
    let line = header_line(&mut line, b'$', len_i64(bytes.len()));
    out.reserve(line.len() + bytes.len() + 2);
    out.extend_from_slice(line);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// `<marker><n>\r\n`.
fn header(out: &mut BytesMut, marker: u8, n: i64) {
    let mut line = [0u8; HEADER_BYTES];
    out.extend_from_slice(header_line(&mut line, marker, n));
}

/// Room for the longest header line: a marker, a sign, 19 digits and `\r\n`.
const HEADER_BYTES: usize = 24;

/// Formats `<marker><n>\r\n` into the end of `buf` without going through `fmt`, and returns
/// it, so it is copied into the output in one piece.
fn header_line(buf: &mut [u8; HEADER_BYTES], marker: u8, n: i64) -> &[u8] {
    let mut at = HEADER_BYTES - 2;
    buf[at..].copy_from_slice(b"\r\n");
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    at -= 1;
    buf[at] = marker;
    &buf[at..]
}

/// A double as Redis 7 prints it (`%.17g` with the shortest digits that read back the same):
/// `inf`, `-inf`, `nan`, plain notation for exponents from -4 to 16, `1.5e+300` style beyond.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return format!("{value}");
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..17).contains(&exponent) {
        return format!("{value}");
    }
    let mut text = String::with_capacity(mantissa.len() + 6);
    text.push_str(mantissa);
    let sign = if exponent < 0 { '-' } else { '+' };
    let _ = write!(text, "e{sign}{:02}", exponent.unsigned_abs());
    text
}

#[cfg(test)]
mod tests;
