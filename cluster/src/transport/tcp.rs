//! The TCP transport: the internal protocol over real sockets on the bus port.
//!
//! Owns [`TcpTransport`] (listens, dials, and serves peers' requests with a [`Handler`]),
//! [`TcpConfig`] and [`TransportStats`]. Between two nodes there is one long-lived connection,
//! used in both directions: calls are multiplexed on it by request id with per-call deadlines
//! (`conn`), the node table keeps one connection per peer and settles simultaneous dials in
//! favour of the connection dialed by the lower node number (`peers`), and a peer that
//! cannot be reached is retried with exponential backoff, during which calls fail at once.
//! A peer that vanished without closing its connection is noticed by the kernel through TCP
//! keepalive and `TCP_USER_TIMEOUT` (`keepalive`), which fails the socket like any other.
//! A frame over the bound, with a bad checksum or another protocol version drops that
//! connection with a logged reason, never the node. Must never interpret a request (the
//! handler does) or stop reading a connection for a handler that waits (the connection's
//! reader polls its pending handlers beside its reads, `conn`).

mod admission;
mod conn;
mod keepalive;
mod outbox;
mod peers;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::conn::Conn;
pub use self::keepalive::Keepalive;
use self::peers::PeerTable;
use crate::rpc::{PeerRequest, PeerResponse, Stamped};
use crate::transport::{Handler, Peer, SharedRequest, Transport, TransportError, TransportStats};
use crate::wire::{self, FrameCodec, FRAME_HEADER_BYTES};

/// Settings of a [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// This node's number, sent in the handshake.
    pub local: u32,
    /// The bus address to listen on (port 0 picks a free one; see [`TcpTransport::local_addr`]).
    pub listen: SocketAddr,
    /// Bound on one frame, header included; larger frames are refused both ways.
    pub max_frame_bytes: usize,
    /// How long dialing and the handshake may take. Also how long a connection that lost a
    /// simultaneous-dial race is kept open for calls already sent on it.
    pub connect_timeout: Duration,
    /// First wait after a failed dial before the next attempt.
    pub backoff_min: Duration,
    /// Longest wait between attempts (the wait doubles after each failure up to this).
    pub backoff_max: Duration,
    /// How every bus connection notices a peer that vanished without closing it.
    pub keepalive: Keepalive,
    /// Requests from one peer connection handled at once; more are refused at once (see
    /// `tcp/admission.rs`).
    pub max_requests_in_progress: usize,
    /// Payload bytes of the requests from one peer connection handled at once; a request
    /// that would pass it is refused unless nothing is in progress.
    pub max_request_bytes_in_progress: usize,
}

/// Default of [`TcpConfig::max_requests_in_progress`]. *Why this many:* the cluster benchmark's
/// heaviest line (50 clients pipelining 16 requests through one coordinator) keeps about 800
/// writes in flight to each replica, so 4096 leaves room for bursts and still bounds a
/// replica's queued work to seconds of its throughput.
pub const DEFAULT_MAX_REQUESTS_IN_PROGRESS: usize = 4096;

/// Default of [`TcpConfig::max_request_bytes_in_progress`]: four frames of the largest size.
pub const DEFAULT_MAX_REQUEST_BYTES_IN_PROGRESS: usize = 4 * wire::DEFAULT_MAX_FRAME_BYTES;

impl TcpConfig {
    /// Defaults: frames up to [`wire::DEFAULT_MAX_FRAME_BYTES`], 1 s to connect, backoff from
    /// 50 ms to 5 s, [`Keepalive::DEFAULT`], [`DEFAULT_MAX_REQUESTS_IN_PROGRESS`] and
    /// [`DEFAULT_MAX_REQUEST_BYTES_IN_PROGRESS`] per connection.
    pub fn new(local: u32, listen: SocketAddr) -> Self {
        Self {
            local,
            listen,
            max_frame_bytes: wire::DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            keepalive: Keepalive::DEFAULT,
            max_requests_in_progress: DEFAULT_MAX_REQUESTS_IN_PROGRESS,
            max_request_bytes_in_progress: DEFAULT_MAX_REQUEST_BYTES_IN_PROGRESS,
        }
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    timeouts: AtomicU64,
    connection_failures: AtomicU64,
    frames_dropped: AtomicU64,
    requests_refused: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The internal protocol over TCP. Cheap to clone: clones share the listener, the
/// connections and the counters. Dropping the last clone stops it as [`TcpTransport::shutdown`]
/// does, without waiting.
pub struct TcpTransport<H: Handler> {
    inner: Arc<Inner<H>>,
    _stop_on_drop: Arc<StopOnDrop>,
}

impl<H: Handler> std::fmt::Debug for TcpTransport<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("local", &self.inner.config.local)
            .field("addr", &self.inner.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<H: Handler> Clone for TcpTransport<H> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _stop_on_drop: Arc::clone(&self._stop_on_drop),
        }
    }
}

/// Held only by the handles (never by the transport's own tasks), so the tasks stop when the
/// last handle goes.
struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What the handles and every task of one transport share.
struct Inner<H> {
    config: TcpConfig,
    local_addr: SocketAddr,
    handler: Arc<H>,
    codec: FrameCodec,
    peers: PeerTable,
    /// Every open connection by id, including ones that lost a simultaneous dial and are
    /// draining.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_conn_id: AtomicU64,
    counters: Counters,
    /// Set first by shutdown, so no call or connection starts afterwards.
    closing: AtomicBool,
    /// Cancelled at shutdown; every connection's token is a child of it.
    stop: CancellationToken,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl<H: Handler> TcpTransport<H> {
    /// Binds `config.listen` and starts serving peers with `handler`.
    ///
    /// # Errors
    /// The I/O error of binding the listener.
    pub async fn bind(config: TcpConfig, handler: Arc<H>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        Self::with_listener(config, listener, handler)
    }

    /// Starts serving peers with `handler` on a listener the caller bound (tests bind
    /// `127.0.0.1:0` and learn the port first); `config.listen` is not used. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// The I/O error of reading the listener's address.
    pub fn with_listener(
        config: TcpConfig,
        listener: TcpListener,
        handler: Arc<H>,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            codec: FrameCodec::new(config.max_frame_bytes),
            peers: PeerTable::new(config.local),
            config,
            local_addr,
            handler,
            conns: Mutex::new(HashMap::new()),
            next_conn_id: AtomicU64::new(1),
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            stop: stop.clone(),
            accept_task: Mutex::new(None),
        });
        let task = tokio::spawn(Arc::clone(&inner).accept_loop(listener));
        *inner.accept_task.lock() = Some(task);
        info!(node = inner.config.local, addr = %local_addr, "bus listening");
        Ok(Self {
            inner,
            _stop_on_drop: Arc::new(StopOnDrop(stop)),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Stops listening (the port is free when this returns), closes every connection and fails
    /// pending calls with [`TransportError::Closed`]. Later calls fail with `Closed` too.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::SeqCst);
        let conns: Vec<Arc<Conn>> = inner.conns.lock().values().cloned().collect();
        for conn in conns {
            conn.close(TransportError::Closed);
        }
        inner.stop.cancel();
        let task = inner.accept_task.lock().take();
        if let Some(task) = task {
            // The accept loop only ends; a panic in it has nothing left to clean up.
            let _ = task.await;
        }
        info!(node = inner.config.local, "bus shut down");
    }
}

impl<H: Handler> Transport for TcpTransport<H> {
    async fn call(
        &self,
        peer: Peer,
        request: Stamped<PeerRequest>,
        timeout: Duration,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        let inner = &self.inner;
        Counters::bump(&inner.counters.calls);
        if inner.closing.load(Ordering::SeqCst) {
            return Err(TransportError::Closed);
        }
        let deadline = Instant::now() + timeout;
        let outcome = if peer.number == inner.config.local {
            match tokio::time::timeout_at(deadline, inner.call_self(peer, request)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(TransportError::Timeout(timeout)),
            }
        } else {
            inner.remote_call(peer, request, deadline, timeout).await
        };
        if matches!(outcome, Err(TransportError::Timeout(_))) {
            Counters::bump(&inner.counters.timeouts);
        }
        outcome
    }

    async fn call_shared(
        &self,
        peer: Peer,
        request: Arc<SharedRequest>,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        let inner = &self.inner;
        Counters::bump(&inner.counters.calls);
        if inner.closing.load(Ordering::SeqCst) {
            return Err(TransportError::Closed);
        }
        if peer.number == inner.config.local {
            return inner.call_self(peer, request.stamped().clone()).await;
        }
        // Before dialing, as in `remote_call`; the encoding is exact, so no guess to check.
        let encoded = request.encoded();
        let limit = inner.codec.max_frame_bytes();
        if encoded.frame_len() > limit {
            return Err(TransportError::TooLarge {
                bytes: encoded.frame_len(),
                limit,
            });
        }
        let dial_deadline = Instant::now() + inner.config.connect_timeout;
        let conn = inner.connection(peer, dial_deadline).await?;
        conn.request_encoded(encoded).await
    }

    /// The counters now.
    fn stats(&self) -> TransportStats {
        let c = &self.inner.counters;
        TransportStats {
            calls: c.calls.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            connection_failures: c.connection_failures.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            connections_open: self.inner.conns.lock().len() as u64,
            requests_refused: c.requests_refused.load(Ordering::Relaxed),
        }
    }
}

impl<H: Handler> Inner<H> {
    /// A call of this node to itself: it needs no socket (and two connections to itself
    /// would confuse the one-connection-per-peer table), only the handler, in a task of its
    /// own as a peer's would be.
    async fn call_self(
        &self,
        peer: Peer,
        request: Stamped<PeerRequest>,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        let handler = Arc::clone(&self.handler);
        let from = self.config.local;
        let task = tokio::spawn(async move { handler.handle(from, request).await });
        task.await.map_err(|_| TransportError::Connection {
            addr: peer.addr,
            reason: "the local handler failed".to_owned(),
        })
    }

    async fn remote_call(
        self: &Arc<Self>,
        peer: Peer,
        request: Stamped<PeerRequest>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        // Before dialing: a request no frame can carry must not cost a connection, nor fail
        // as unreachable when its peer is.
        let size_hint = wire::request_frame_size_hint(&request);
        conn::check_request_size(&self.codec, &request, size_hint)?;
        // With a connection open, the request is queued at this future's first poll; each
        // call keeps its own timer, so nothing on the connection can hold it past its deadline.
        let work = async {
            let conn = self.connection(peer, deadline).await?;
            conn.request(&request, size_hint).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(TransportError::Timeout(timeout)),
        }
    }

    /// The connection to `peer`: the open one, or a new one dialed now unless the peer is in
    /// backoff.
    async fn connection(
        self: &Arc<Self>,
        peer: Peer,
        deadline: Instant,
    ) -> Result<Arc<Conn>, TransportError> {
        let entry = self.peers.entry(peer.number);
        if let Some(conn) = entry.live() {
            return Ok(conn);
        }
        entry.check_backoff(peer.addr)?;
        // One dial at a time per peer; the others wait for its outcome.
        let _dialing = entry.dial_lock().await;
        if let Some(conn) = entry.live() {
            return Ok(conn);
        }
        entry.check_backoff(peer.addr)?;
        let limit = self.config.connect_timeout;
        let dial_deadline = deadline.min(Instant::now() + limit);
        match tokio::time::timeout_at(dial_deadline, self.dial(peer)).await {
            Ok(Ok(conn)) => {
                entry.reset_backoff();
                Ok(conn)
            }
            outcome => {
                let reason = match outcome {
                    Ok(Err(reason)) => reason,
                    _ => format!("no connection within {limit:?}"),
                };
                Counters::bump(&self.counters.connection_failures);
                let wait = entry.back_off(&self.config);
                warn!(peer = peer.number, addr = %peer.addr, %reason, retry_in = ?wait, "dial failed");
                Err(TransportError::Connection {
                    addr: peer.addr,
                    reason,
                })
            }
        }
    }

    async fn dial(self: &Arc<Self>, peer: Peer) -> Result<Arc<Conn>, String> {
        let stream = TcpStream::connect(peer.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (stream, buf, remote) = self.handshake(stream).await?;
        if remote != peer.number {
            return Err(format!(
                "expected node {} at {}, found node {remote}",
                peer.number, peer.addr
            ));
        }
        self.start(stream, buf, remote, peer.addr, self.config.local)
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        tokio::spawn(Arc::clone(&self).accept_one(stream, addr));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: pause rather than spin.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(self.config.backoff_min).await;
                    }
                },
            }
        }
    }

    async fn accept_one(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
        let limit = self.config.connect_timeout;
        let outcome = tokio::select! {
            _ = self.stop.cancelled() => return,
            outcome = tokio::time::timeout(limit, self.handshake(stream)) => outcome,
        };
        let result = match outcome {
            Ok(Ok((stream, buf, remote))) => self.start(stream, buf, remote, addr, remote),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(format!("no handshake within {limit:?}")),
        };
        if let Err(reason) = result {
            Counters::bump(&self.counters.connection_failures);
            warn!(%addr, %reason, "refused an incoming connection");
        }
    }

    /// Sets the socket options of a bus connection and exchanges handshakes: sends this
    /// node's number, reads the peer's. Returns the stream, whatever bytes arrived after the
    /// peer's handshake, and the peer's number. Every connection, dialed or accepted, starts
    /// here.
    async fn handshake(&self, stream: TcpStream) -> Result<(TcpStream, BytesMut, u32), String> {
        let mut stream = stream;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("set TCP_NODELAY: {e}"))?;
        keepalive::apply(&stream, &self.config.keepalive);
        conn::write_frame(
            &mut stream,
            &self.codec,
            &wire::Frame::handshake(self.config.local),
        )
        .await
        .map_err(|e| format!("send handshake: {e}"))?;
        let mut buf = BytesMut::new();
        // Bounded to a handshake's size: before it, four bytes from anyone must not make us
        // reserve a whole frame's worth of memory.
        let mut codec = FrameCodec::new(FRAME_HEADER_BYTES + 4);
        let frame = match conn::read_frame(&mut stream, &mut codec, &mut buf).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err("closed before its handshake".to_owned()),
            Err(e) => {
                if conn::is_bad_frame(&e) {
                    Counters::bump(&self.counters.frames_dropped);
                }
                return Err(format!("handshake: {e}"));
            }
        };
        let remote = frame
            .handshake_node()
            .map_err(|e| format!("expected a handshake: {e}"))?;
        Ok((stream, buf, remote))
    }

    /// Puts a connection whose handshake is done into service and returns the connection the
    /// node table now holds for that peer (another one if this one lost a simultaneous dial).
    fn start(
        self: &Arc<Self>,
        stream: TcpStream,
        buf: BytesMut,
        remote: u32,
        addr: SocketAddr,
        dialed_by: u32,
    ) -> Result<Arc<Conn>, String> {
        if self.closing.load(Ordering::SeqCst) {
            return Err("the transport is shutting down".to_owned());
        }
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let conn = Conn::new(
            id,
            remote,
            addr,
            dialed_by,
            self.codec,
            self.stop.child_token(),
        );
        self.conns.lock().insert(id, Arc::clone(&conn));
        let (read_half, write_half) = stream.into_split();
        conn::spawn_tasks(
            Arc::clone(self),
            Arc::clone(&conn),
            read_half,
            write_half,
            buf,
        );
        let (current, retired) = self.peers.register(Arc::clone(&conn));
        debug!(peer = remote, %addr, dialed_by, id, "connection open");
        if let Some(retired) = retired {
            self.retire(retired);
        }
        Ok(current)
    }

    /// Stops using `conn` for new calls and closes it once it is idle, after waiting
    /// `connect_timeout` so that the peer, which settles the same race the same way, has
    /// switched too. Calls already sent on it are still answered.
    fn retire(self: &Arc<Self>, conn: Arc<Conn>) {
        debug!(
            peer = conn.peer,
            id = conn.id,
            "connection retired: the peer has a preferred one"
        );
        let grace = self.config.connect_timeout;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = conn.closed() => return,
                    _ = tokio::time::sleep(grace) => {}
                }
                if conn.is_idle() {
                    conn.close(TransportError::Connection {
                        addr: conn.addr,
                        reason: "replaced by the connection dialed by the lower node".to_owned(),
                    });
                    return;
                }
            }
        });
    }

    /// Called by a connection's tasks once it has ended.
    fn forget(&self, conn: &Arc<Conn>) {
        self.conns.lock().remove(&conn.id);
        self.peers.remove(conn);
    }
}
