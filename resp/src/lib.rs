//! `ringkv-resp`: the Redis-protocol front end (connections, request parser, replies, commands).
//!
//! # Layout
//!
//! A client's bytes flow through these parts, in order:
//! - [`server`]: [`run`] accepts clients on a listener the caller bound, admits them up to
//!   `maxclients`, spawns one task per connection and shuts down gracefully; [`ServerState`]
//!   is what every connection shares (config, client registry, counters).
//! - [`conn`]: the connection task. It reads into a buffer, decodes requests with the
//!   [`parser`], checks each one (lookup, arity, `NOAUTH`, size limits), runs it, encodes the
//!   reply and sends the replies of one read in one write. [`ConnState`] is the connection's
//!   own state (protocol, authentication, consistency, name).
//! - [`parser`]: [`RequestDecoder`] turns the input buffer into [`Request`]s (multibulk and
//!   inline), bounded by [`ParserLimits`], failing with a [`ProtocolError`] ([`error`]) that
//!   carries Redis's own text.
//! - [`cmd`]: the command table ([`CommandSpec`] rows joined by `cmd/table.rs`) and one file per
//!   family (`connection`, `server`, `string`, `keys`, `expire`, `ringkv`). A handler turns
//!   arguments into `ringkv_cluster::Request`s, awaits the [`Cluster`](ringkv_cluster::Cluster),
//!   and returns a [`Reply`].
//! - [`reply`]: [`Reply`] and its RESP2/RESP3 encoding; the one place errors of every crate
//!   become Redis error replies, with the texts of [`errors`].
//!
//! # Architecture invariant
//!
//! `resp` is the only crate that knows RESP, and it reaches the cluster only through the
//! `ringkv_cluster::Cluster` trait's plain data: no slots, replicas or engine here.

pub mod cmd;
pub mod conn;
pub mod error;
pub mod errors;
pub mod parser;
pub mod reply;
pub mod server;

pub use cmd::{CommandError, CommandSpec, Family};
pub use conn::ConnState;
pub use error::ProtocolError;
pub use parser::{ParserLimits, Request, RequestDecoder};
pub use reply::{Protocol, Reply};
pub use server::{run, run_with_state, ServerConfig, ServerError, ServerState};
