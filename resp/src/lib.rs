//! `ringkv-resp`: the Redis-protocol front end (request parser, replies, commands).
//!
//! # Layout
//!
//! A connection's bytes flow through these parts:
//! - [`parser`] holds [`RequestDecoder`], which turns the input buffer into [`Request`]s
//!   (multibulk and inline), bounded by [`ParserLimits`], failing with a [`ProtocolError`] that
//!   carries Redis's own text.
//! - [`error`] holds [`ProtocolError`].
//!
//! Reply encoding, the command table and the connection task come next; `resp` is the only
//! crate that knows RESP.

pub mod error;
pub mod parser;

pub use error::ProtocolError;
pub use parser::{ParserLimits, Request, RequestDecoder};
