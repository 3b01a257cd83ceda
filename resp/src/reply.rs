//! Replies as plain data, and (the connection's part) their RESP2/RESP3 encoding.
//!
//! Owns [`Reply`]. Command handlers build a `Reply`; only this module turns one into bytes, per
//! the connection's protocol (RESP2 by default, RESP3 after `HELLO 3`), so no handler ever
//! writes to a socket or chooses an encoding. Errors from every crate are mapped to Redis
//! error replies in one place here as well.

use bytes::Bytes;

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
