//! One client connection: its state and the task that serves it.
//!
//! Owns [`ConnState`] (protocol, authentication, consistency, name, ...: the one struct a
//! connection's commands read and change, owned by its task, like mini-redis's `Handler`) and
//! `Connection`, the task: read into a buffer, decode every complete request with
//! [`RequestDecoder`], check each (`conn/checks.rs`: lookup, arity, authentication, size
//! limits), run it through `cmd::execute`, encode the reply, and send all the replies of one read
//! in one write (pipelining). A protocol error is answered `-ERR <text>` and the connection
//! closes, as Redis does; so does an idle timeout (silently), `QUIT`, `CLIENT KILL` and server
//! shutdown (after the requests already read have been answered).
//!
//! Must never interpret a command's arguments (that is the families' job) or know a RESP
//! encoding (that is `reply.rs`'s).

mod checks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringkv_cluster::{Cluster, Consistency};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;
use tracing::debug;

use crate::cmd::{self, Ctx};
use crate::parser::RequestDecoder;
use crate::reply::{Protocol, Reply};
use crate::server::{stats, ClientDetails, ClientHandle, CloseRequest, ServerState};

/// Bytes the read buffer is grown by when it runs low; one read takes at most this much.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Most room a read is given for the size of the previous request: a client that once sent a
/// 10 MiB value does not make every later read reserve 10 MiB (the parser still takes a large
/// request in as many reads as it needs).
const MAX_READ_ROOM_BYTES: usize = 1024 * 1024;

/// Most room a read is given while nothing of the next request has arrived: a connection that
/// goes idle after one large request must not sit on a buffer of that size (as redis trims idle
/// query buffers); the first bytes of the next request bring the larger room back.
const IDLE_READ_ROOM_BYTES: usize = 64 * 1024;

/// Replies are sent early, before the rest of a read's requests run, once this many bytes are
/// waiting: a client pipelining thousands of large GETs gets them in pieces instead of the node
/// holding all of them in memory.
const MAX_PENDING_REPLY_BYTES: usize = 1024 * 1024;

/// Output buffers that grew past this for one large reply are given back after it is sent.
const KEEP_OUTPUT_CAPACITY: usize = 256 * 1024;

/// A connection's own state: everything its commands may read and change about it.
///
/// Owned by the connection task and lent to each command as `Ctx::conn`. The fields other
/// connections must see (name, library, protocol) are mirrored into the client registry by the
/// setters, so change them through the setters only.
#[derive(Debug)]
pub struct ConnState {
    /// The client id (`CLIENT ID`, `HELLO`).
    pub id: u64,
    /// RESP2 or RESP3; change with [`ConnState::set_protocol`].
    protocol: Protocol,
    /// Whether the client has authenticated, or needed not (no password when it connected).
    pub authenticated: bool,
    /// The levels this connection reads and writes at (`CONSISTENCY`).
    pub consistency: Consistency,
    /// The selected database; always 0 (`SELECT` accepts nothing else).
    pub db: u32,
    /// Close the connection once the current reply is sent (`QUIT`, `CLIENT KILL` of itself).
    pub close_after_reply: bool,
    /// `READONLY` was sent (cleared by `READWRITE` and `RESET`). Kept for Redis Cluster
    /// clients; reads are coordinated at the connection's level either way.
    pub readonly: bool,
    /// This client's entry in the registry.
    client: Arc<ClientHandle>,
}

impl ConnState {
    /// The state of a new connection.
    pub(crate) fn new(
        client: Arc<ClientHandle>,
        authenticated: bool,
        consistency: Consistency,
    ) -> Self {
        ConnState {
            id: client.id,
            protocol: Protocol::Resp2,
            authenticated,
            consistency,
            db: 0,
            close_after_reply: false,
            readonly: false,
            client,
        }
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the protocol (`HELLO 2|3`, `RESET`).
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
        self.client.update(|d| d.protocol = protocol);
    }

    /// The client's name (empty: none).
    pub fn name(&self) -> Bytes {
        self.client.details().name
    }

    /// Names the client (`CLIENT SETNAME`, `HELLO SETNAME`); empty removes the name.
    pub fn set_name(&mut self, name: Bytes) {
        self.client.update(|d| d.name = name);
    }

    /// Records the client library's name (`CLIENT SETINFO LIB-NAME`).
    pub fn set_lib_name(&mut self, lib_name: Bytes) {
        self.client.update(|d| d.lib_name = lib_name);
    }

    /// Records the client library's version (`CLIENT SETINFO LIB-VER`).
    pub fn set_lib_ver(&mut self, lib_ver: Bytes) {
        self.client.update(|d| d.lib_ver = lib_ver);
    }

    /// What the client told about itself.
    pub fn details(&self) -> ClientDetails {
        self.client.details()
    }

    /// This connection's registry entry (`CLIENT INFO`).
    pub fn client(&self) -> &Arc<ClientHandle> {
        &self.client
    }
}

/// A connection task: the socket, its buffers, its state, and what it shares.
pub(crate) struct Connection<C: Cluster> {
    socket: TcpStream,
    decoder: RequestDecoder,
    input: BytesMut,
    /// Bytes the decoder has consumed of the request it is in the middle of.
    partial_request_bytes: usize,
    /// Size of the last complete request: each read gets at least this much room, so a run of
    /// large requests (a pipelined 10 KiB `MSET`) takes one read per request, not 1.34.
    last_request_bytes: usize,
    output: BytesMut,
    state: ConnState,
    server: Arc<ServerState>,
    cluster: Arc<C>,
    /// Dropped when the task ends; the server waits for every clone to go.
    _done: mpsc::Sender<()>,
}

/// How a connection ends.
enum Close {
    /// The peer closed, or a read or write failed.
    Peer,
    /// A protocol error was answered.
    ProtocolError,
    /// `QUIT`, or `CLIENT KILL` of itself.
    AfterReply,
    /// Idle longer than `timeout`.
    Idle,
    /// `CLIENT KILL` from another client.
    Killed,
    /// The server is shutting down.
    Shutdown,
}

impl<C: Cluster> Connection<C> {
    /// A task for an accepted, registered socket.
    pub(crate) fn new(
        socket: TcpStream,
        client: Arc<ClientHandle>,
        server: Arc<ServerState>,
        cluster: Arc<C>,
        done: mpsc::Sender<()>,
    ) -> Self {
        let state = ConnState::new(
            client,
            !server.auth_required(),
            server.config.default_consistency,
        );
        Connection {
            socket,
            decoder: RequestDecoder::new(server.config.parser_limits),
            input: BytesMut::with_capacity(READ_CHUNK_BYTES),
            partial_request_bytes: 0,
            last_request_bytes: 0,
            output: BytesMut::with_capacity(READ_CHUNK_BYTES),
            state,
            server,
            cluster,
            _done: done,
        }
    }

    /// Serves the client until it leaves, then unregisters it.
    pub(crate) async fn run(mut self) {
        let close = self.serve().await;
        let id = self.state.id;
        let reason = match close {
            Close::Peer => "peer closed",
            Close::ProtocolError => "protocol error",
            Close::AfterReply => "closed after reply",
            Close::Idle => "idle timeout",
            Close::Killed => "killed",
            Close::Shutdown => "server shutting down",
        };
        debug!(client = id, reason, "connection closed");
        let _ = self.socket.shutdown().await;
        self.server.clients.unregister(id);
    }

    async fn serve(&mut self) -> Close {
        let client = Arc::clone(self.state.client());
        loop {
            if let Some(close) = self.answer_buffered().await {
                return close;
            }
            if let Some(reason) = client.close_requested() {
                return reason.into();
            }
            let room = self.last_request_bytes.min(if self.input.is_empty() {
                IDLE_READ_ROOM_BYTES
            } else {
                MAX_READ_ROOM_BYTES
            });
            if self.input.capacity() - self.input.len() < room.max(READ_CHUNK_BYTES / 4) {
                self.input.reserve(room.max(READ_CHUNK_BYTES));
            }
            let timeout_secs = self.server.timeout_secs();
            let read = read_some(&mut self.socket, &mut self.input, timeout_secs);
            let read = tokio::select! {
                biased;
                reason = client.closing() => return reason.into(),
                read = read => read,
            };
            match read {
                Read::Data(n) => stats::add(&self.server.stats.net_input_bytes, n as u64),
                Read::Closed => return Close::Peer,
                Read::Idle => return Close::Idle,
            }
        }
    }

    /// Runs every complete request in the input buffer and sends the replies. Returns how the
    /// connection must close, if it must.
    async fn answer_buffered(&mut self) -> Option<Close> {
        let mut close = None;
        let mut clock = None;
        loop {
            self.decoder
                .set_auth_required(self.server.auth_required() && !self.state.authenticated);
            let buffered = self.input.len();
            let decoded = self.decoder.decode(&mut self.input);
            // The decoder only ever takes bytes from the front of the buffer.
            self.partial_request_bytes += buffered.saturating_sub(self.input.len());
            match decoded {
                Ok(Some(request)) => {
                    self.last_request_bytes = std::mem::take(&mut self.partial_request_bytes);
                    let reply = self.answer(&request.args, &mut clock).await;
                    self.decoder.recycle(request.args);
                    reply.encode(self.state.protocol(), &mut self.output);
                    if self.state.close_after_reply {
                        close = Some(Close::AfterReply);
                        break;
                    }
                    if self.output.len() >= MAX_PENDING_REPLY_BYTES {
                        if !self.flush().await {
                            return Some(Close::Peer);
                        }
                        // The send's time belongs to no command.
                        clock = None;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    if let Some(text) = error.wire_message() {
                        debug!(client = self.state.id, %error, "protocol error");
                        let mut line = b"ERR ".to_vec();
                        line.extend_from_slice(&text);
                        Reply::Error(Bytes::from(line))
                            .encode(self.state.protocol(), &mut self.output);
                        stats::add(&self.server.stats.error_replies, 1);
                        close = Some(Close::ProtocolError);
                    } else {
                        close = Some(Close::Peer);
                    }
                    break;
                }
            }
        }
        if !self.flush().await {
            return Some(Close::Peer);
        }
        close
    }

    /// Checks and runs one request.
    ///
    /// `clock` is the batch's last clock reading: `None` at the start of a read batch (and
    /// after a send), then the time the previous command finished, which is when this one
    /// starts. Chaining the readings this way costs one clock read per command instead of two
    /// (three with the activity time), which at `-P 16` was a noticeable part of a GET; a
    /// command's time then includes the few hundred nanoseconds of checking and encoding
    /// around it, as Redis's `commandstats` do not, well within its microsecond resolution.
    async fn answer(&mut self, args: &[Bytes], clock: &mut Option<Instant>) -> Reply {
        // Borrowed field by field (no `Arc` clone per request): `ctx` needs the state mutably.
        let server = &*self.server;
        let (index, spec) = match checks::admit(server, &self.state, args) {
            Ok(found) => found,
            Err(reply) => {
                stats::add(&server.stats.error_replies, 1);
                return reply;
            }
        };
        let client = self.state.client();
        client.set_last_command(index);
        let started = match *clock {
            Some(at) => at,
            None => {
                // The first command of a read batch: the read is the client's activity.
                let now = Instant::now();
                client.mark_active(now);
                now
            }
        };
        let result = {
            let mut ctx = Ctx {
                cluster: &*self.cluster,
                conn: &mut self.state,
                server,
            };
            cmd::execute(&mut ctx, spec, args).await
        };
        let finished = Instant::now();
        *clock = Some(finished);
        let micros = finished.saturating_duration_since(started).as_micros();
        let usec = u64::try_from(micros).unwrap_or(u64::MAX);
        let reply = result.unwrap_or_else(Reply::from_error);
        let failed = matches!(reply, Reply::Error(_));
        if failed {
            stats::add(&server.stats.error_replies, 1);
        }
        server.stats.record_call(index, usec, failed);
        reply
    }

    /// Sends the pending replies; false if the peer is gone.
    async fn flush(&mut self) -> bool {
        if self.output.is_empty() {
            return true;
        }
        if let Err(error) = self.socket.write_all(&self.output).await {
            debug!(client = self.state.id, %error, "write failed");
            return false;
        }
        stats::add(
            &self.server.stats.net_output_bytes,
            self.output.len() as u64,
        );
        self.output.clear();
        if self.output.capacity() > KEEP_OUTPUT_CAPACITY {
            self.output = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
        true
    }
}

impl From<CloseRequest> for Close {
    fn from(reason: CloseRequest) -> Self {
        match reason {
            CloseRequest::Killed => Close::Killed,
            CloseRequest::Shutdown => Close::Shutdown,
        }
    }
}

/// What one wait for input brought.
enum Read {
    /// This many bytes.
    Data(usize),
    /// End of stream, or a failed read.
    Closed,
    /// Nothing within the idle timeout.
    Idle,
}

/// Reads what is available into `input`, waiting at most `timeout_secs` (0: for ever).
async fn read_some(socket: &mut TcpStream, input: &mut BytesMut, timeout_secs: u64) -> Read {
    let read = socket.read_buf(input);
    let result = if timeout_secs == 0 {
        read.await
    } else {
        match tokio::time::timeout(Duration::from_secs(timeout_secs), read).await {
            Ok(result) => result,
            Err(_) => return Read::Idle,
        }
    };
    match result {
        Ok(0) | Err(_) => Read::Closed,
        Ok(n) => Read::Data(n),
    }
}
