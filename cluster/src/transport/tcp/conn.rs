//! One established connection: the calls waiting on it, its reader and its writer.
//!
//! Owns [`Conn`] (the pending map from request id to the waiting caller, the [`Outbox`] the
//! writer drains) and the two tasks per connection. A call encodes its request straight into
//! the outbox at its first poll, so a caller that stops waiting after its quorum leaves no
//! work behind but a pending entry. The reader turns frames into responses for waiting
//! callers, and runs the handler of each request it receives in a set of pending handlers it
//! polls itself (each woken by its own waker), so a handler that has to wait (an fsync, a
//! forwarded write, a full outbox) never holds up reading and costs no task of its own. The
//! writer sends every frame queued since its last write in one write. A caller that gives up
//! (deadline, dropped future) removes its entry, so a late response finds nobody and is
//! ignored. Deadlines belong to the callers, never to the reader: a handler that blocks its
//! thread delays this connection's frames, not a caller's timeout. However the reader ends
//! (the peer, a protocol error, a panicking handler, the transport's shutdown) it closes the
//! connection, failing every waiting call at once, and lets the handlers still pending finish
//! in a task of their own.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::admission::{Admission, InProgress};
use super::outbox::{Outbox, OutboxClosed, OUTBOX_CAP};
use super::{Counters, Inner};
use crate::rpc::{PeerRequest, PeerResponse, RemoteFailure, RemoteFailureKind, Stamped};
use crate::transport::{Handler, TransportError};
use crate::wire::{self, Frame, FrameCodec, FrameKind, WireError};

/// Spare room the reader keeps in its buffer before each read, so one `read(2)` takes every
/// frame the socket holds (profiled: with only what the codec reserved, a replica paid two
/// reads per 1 KiB write it received).
const READ_ROOM: usize = 64 * 1024;
/// Frames guessed at least this large are encoded before the outbox's lock is taken and
/// copied in under it: encoding and checksumming a large batch or range in place would hold
/// every other sender on the connection (and the writer) on that lock meanwhile.
const ENCODE_APART_BYTES: usize = 64 * 1024;
/// The writer's batch buffer is given back to the allocator after a write larger than this
/// (a frame of many values), rather than kept for the life of the connection.
const KEEP_BATCH_BYTES: usize = 1024 * 1024;

type Reply = Result<Stamped<PeerResponse>, TransportError>;

/// Callers waiting for a response, by request id. Ids are handed out in sequence by this
/// node, so a multiplicative hash spreads them as well as SipHash does, for a fraction of its
/// cost (profiled: SipHash was a tenth of a call's transport work).
type Pending = HashMap<u64, oneshot::Sender<Reply>, BuildHasherDefault<IdHasher>>;

/// Hashes a request id (Fibonacci hashing: the low bits of consecutive ids differ, and the
/// high bits hashbrown keeps for its control bytes are mixed).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; this keeps any other input correct, if slower.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// An established, handshaken connection to one peer.
pub(super) struct Conn {
    /// Unique within the transport.
    pub(super) id: u64,
    /// The peer's node number.
    pub(super) peer: u32,
    /// The peer's address (as dialed, or as accepted from).
    pub(super) addr: SocketAddr,
    /// The node that dialed it, for settling simultaneous dials.
    pub(super) dialed_by: u32,
    codec: FrameCodec,
    outbox: Outbox,
    /// Callers waiting for a response, by request id.
    pending: Mutex<Pending>,
    next_request: AtomicU64,
    /// Requests from the peer being handled now.
    handling: AtomicUsize,
    /// Set once by [`Conn::close`]: the connection's own record that it was closed, apart
    /// from `cancel`, which the transport's shutdown cancels too (before anyone failed the
    /// waiting calls).
    closed: AtomicBool,
    /// Cancelled by `close` and by the transport's shutdown (a child of its token): the
    /// tasks stop on it.
    cancel: CancellationToken,
}

impl Conn {
    pub(super) fn new(
        id: u64,
        peer: u32,
        addr: SocketAddr,
        dialed_by: u32,
        codec: FrameCodec,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            peer,
            addr,
            dialed_by,
            codec,
            outbox: Outbox::new(OUTBOX_CAP),
            pending: Mutex::new(Pending::default()),
            next_request: AtomicU64::new(1),
            handling: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            cancel,
        })
    }

    /// Closed, or about to be: the transport is shutting down.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.cancel.is_cancelled()
    }

    /// Resolves once the connection is closed or the transport shuts down.
    pub(super) async fn closed(&self) {
        self.cancel.cancelled().await;
    }

    /// No call waiting and no request being handled.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.lock().is_empty() && self.handling.load(Ordering::SeqCst) == 0
    }

    /// Closes the connection (its tasks end and drop the socket, frames not yet written are
    /// dropped) and fails every waiting call with `error`. Only the first close acts.
    pub(super) fn close(&self, error: TransportError) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.cancel.cancel();
        self.outbox.close();
        let waiting: Vec<_> = self.pending.lock().drain().map(|(_, tx)| tx).collect();
        for tx in waiting {
            // The caller may have given up already.
            let _ = tx.send(Err(error.clone()));
        }
    }

    fn broken(&self) -> TransportError {
        TransportError::Connection {
            addr: self.addr,
            reason: "the connection closed before the response".to_owned(),
        }
    }

    /// Sends `request` (encoded into the outbox at the first poll, unless the outbox is full)
    /// and waits for its response, with no deadline of its own: the caller bounds it, and
    /// dropping this future removes the pending entry.
    /// `size_hint` is [`wire::request_frame_size_hint`] of `request`, worked out once by the
    /// caller (it walks every record).
    pub(super) async fn request(&self, request: &Stamped<PeerRequest>, size_hint: usize) -> Reply {
        let codec = self.codec;
        self.call_with(size_hint, |buf, id| {
            wire::put_request_frame(&codec, buf, id, request)
        })
        .await
    }

    /// [`Conn::request`] of a request encoded beforehand (one encoding for several peers).
    pub(super) async fn request_encoded(&self, encoded: &wire::EncodedRequest) -> Reply {
        let codec = self.codec;
        self.call_with(encoded.frame_len(), |buf, id| {
            wire::put_encoded_request_frame(&codec, buf, id, encoded)
        })
        .await
    }

    /// Sends the request frame `encode` appends for a fresh request id and waits for its
    /// response, as [`Conn::request`] describes.
    async fn call_with(
        &self,
        size_hint: usize,
        encode: impl FnOnce(&mut BytesMut, u64) -> Result<usize, WireError>,
    ) -> Reply {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let mut entry = PendingEntry {
            conn: self,
            id,
            removed: false,
        };
        // `close` may have drained the map just before the insert.
        if self.is_closed() {
            return Err(self.broken());
        }
        let codec = self.codec;
        let queued = self.push_frame(size_hint, |buf| encode(buf, id)).await;
        match queued {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(too_large(e, codec.max_frame_bytes())),
            Err(_closed) => return Err(self.broken()),
        }
        let reply = rx.await;
        // Whoever answered (the reader, or `close`) took the entry out to do so.
        entry.removed = true;
        reply.unwrap_or_else(|_| Err(self.broken()))
    }

    /// Queues the response to request `id`; one over the frame bound is replaced by a
    /// refusal saying so. Nothing is sent on a closed connection (nobody is left to answer).
    async fn respond(&self, id: u64, response: &Stamped<PeerResponse>) {
        let codec = self.codec;
        let queued = self
            .push_frame(wire::response_frame_size_hint(response), |buf| {
                wire::put_response_frame(&codec, buf, id, response)
            })
            .await;
        let Ok(Err(e)) = queued else {
            return;
        };
        let limit = codec.max_frame_bytes();
        warn!(peer = self.peer, error = %e, limit, "response over the frame bound refused");
        let refused = refusal(format!(
            "the response exceeds the frame bound ({limit} bytes): {e}"
        ));
        let queued = self
            .outbox
            .push(wire::response_frame_size_hint(&refused), |buf| {
                wire::put_response_frame(&codec, buf, id, &refused)
            })
            .await;
        if let Ok(Err(e)) = queued {
            warn!(peer = self.peer, error = %e, "refusal not sent");
        }
    }

    /// Queues the frame `encode` appends (whole or not at all): in place when it is small,
    /// else encoded apart first (see [`ENCODE_APART_BYTES`]).
    async fn push_frame(
        &self,
        size_hint: usize,
        encode: impl FnOnce(&mut BytesMut) -> Result<usize, WireError>,
    ) -> Result<Result<usize, WireError>, OutboxClosed> {
        if size_hint < ENCODE_APART_BYTES {
            return self.outbox.push(size_hint, encode).await;
        }
        let mut frame = BytesMut::with_capacity(size_hint);
        if let Err(e) = encode(&mut frame) {
            return Ok(Err(e));
        }
        self.outbox
            .push(frame.len(), |buf| {
                buf.extend_from_slice(&frame);
                Ok(frame.len())
            })
            .await
    }

    fn take_pending(&self, id: u64) -> Option<oneshot::Sender<Reply>> {
        self.pending.lock().remove(&id)
    }

    #[cfg(test)]
    pub(super) fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

/// Refuses a request whose frame would be over `codec`'s bound, before any connection is
/// sought for it. The size hint is only a guess, so a request guessed over the bound is
/// encoded (apart, and only then) to be sure: one just under the bound still goes.
pub(super) fn check_request_size(
    codec: &FrameCodec,
    request: &Stamped<PeerRequest>,
    size_hint: usize,
) -> Result<(), TransportError> {
    if size_hint <= codec.max_frame_bytes() {
        return Ok(());
    }
    match wire::put_request_frame(codec, &mut BytesMut::new(), 0, request) {
        Ok(_) => Ok(()),
        Err(e) => Err(too_large(e, codec.max_frame_bytes())),
    }
}

/// The caller's error for a request its frame could not carry.
fn too_large(error: WireError, limit: usize) -> TransportError {
    let bytes = match error {
        WireError::FrameSize { bytes, .. } => usize::try_from(bytes).unwrap_or(usize::MAX),
        _ => limit.saturating_add(1),
    };
    TransportError::TooLarge { bytes, limit }
}

/// Removes a call's pending entry however the call ends (answered, timed out, dropped).
struct PendingEntry<'a> {
    conn: &'a Conn,
    id: u64,
    /// Already out of the map.
    removed: bool,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        if !self.removed {
            self.conn.pending.lock().remove(&self.id);
        }
    }
}

/// Whether a read error means the peer sent a frame we refuse (rather than a socket error).
pub(super) fn is_bad_frame(error: &WireError) -> bool {
    !matches!(error, WireError::Io(_))
}

/// Reads the next whole frame into `buf`; `None` on a clean end of stream between frames.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, WireError> {
    loop {
        if let Some(frame) = codec.decode(buf)? {
            return Ok(Some(frame));
        }
        if buf.capacity() - buf.len() < READ_ROOM {
            buf.reserve(READ_ROOM);
        }
        if reader.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(WireError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the peer closed the connection inside a frame ({} byte(s) buffered)",
                    buf.len()
                ),
            )));
        }
    }
}

/// Writes one frame and flushes (the handshake, before the writer task exists).
pub(super) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    codec: &FrameCodec,
    frame: &Frame,
) -> Result<(), WireError> {
    let mut buf = BytesMut::with_capacity(frame.encoded_len());
    codec.encode_ref(frame, &mut buf)?;
    writer.write_all(&buf).await?;
    writer.flush().await?;
    Ok(())
}

/// Starts the reader and writer tasks of `conn`. `buf` holds bytes that arrived after the
/// handshake.
pub(super) fn spawn_tasks<H: Handler>(
    inner: Arc<Inner<H>>,
    conn: Arc<Conn>,
    read_half: OwnedReadHalf,
    write_half: OwnedWriteHalf,
    buf: BytesMut,
) {
    tokio::spawn(write_loop(Arc::clone(&conn), write_half));
    tokio::spawn(async move {
        read_loop(&inner, &conn, read_half, buf).await;
        inner.forget(&conn);
    });
}

async fn read_loop<H: Handler>(
    inner: &Arc<Inner<H>>,
    conn: &Arc<Conn>,
    mut reader: OwnedReadHalf,
    mut buf: BytesMut,
) {
    let mut codec = inner.codec;
    // Requests whose handlers did not finish at their first poll, polled here whenever one of
    // them is woken.
    let mut handlers = FuturesUnordered::new();
    let mut in_progress = InProgress::default();
    // Made once: a fresh one per frame would register with the token each time.
    let closed = conn.closed();
    tokio::pin!(closed);
    let error = loop {
        tokio::select! {
            biased;
            _ = &mut closed => break TransportError::Closed,
            // A handler that panics must not take the reader (and with it every call on this
            // connection) down: the connection is closed with a reason instead, and its
            // callers fail at once rather than at their deadlines.
            served = AssertUnwindSafe(handlers.next()).catch_unwind(), if !handlers.is_empty() => {
                match served {
                    Err(_) => {
                        Counters::bump(&inner.counters.connection_failures);
                        break dropped(conn, "a request handler panicked".to_owned());
                    }
                    Ok(Some(done)) => in_progress.finish(done),
                    Ok(None) => {}
                }
            }
            // Always read: responses to this node's own calls arrive here too, and a reader
            // that stopped for its peer's requests could wait on a peer doing the same.
            frame = read_frame(&mut reader, &mut codec, &mut buf) => match frame {
                Ok(Some(frame)) if frame.kind == FrameKind::Request => {
                    let config = &inner.config;
                    let admission = in_progress.admit(
                        frame.payload.len(),
                        config.max_requests_in_progress,
                        config.max_request_bytes_in_progress,
                    );
                    if !matches!(admission, Admission::Handled(_)) {
                        Counters::bump(&inner.counters.requests_refused);
                        debug!(
                            peer = conn.peer,
                            requests = in_progress.requests(),
                            bytes = in_progress.bytes(),
                            answered = admission == Admission::Refused,
                            "request refused: too much in progress"
                        );
                    }
                    if admission == Admission::Dropped {
                        continue;
                    }
                    let handling = Handling::start(conn);
                    handlers.push(serve(
                        Arc::clone(inner),
                        Arc::clone(conn),
                        frame,
                        handling,
                        admission,
                        (in_progress.requests(), in_progress.bytes()),
                    ));
                }
                Ok(Some(frame)) => {
                    if let Err(reason) = dispatch(conn, frame) {
                        Counters::bump(&inner.counters.connection_failures);
                        break dropped(conn, reason);
                    }
                }
                Ok(None) => {
                    debug!(peer = conn.peer, id = conn.id, "the peer closed the connection");
                    break conn.broken();
                }
                Err(e) => {
                    if is_bad_frame(&e) {
                        Counters::bump(&inner.counters.frames_dropped);
                    }
                    // A bad frame, or the connection lost (a reset, keepalive or
                    // TCP_USER_TIMEOUT giving up on a vanished peer).
                    Counters::bump(&inner.counters.connection_failures);
                    break dropped(conn, e.to_string());
                }
            },
        }
    };
    conn.close(error);
    if !handlers.is_empty() {
        // Handlers are not cancelled halfway (a replica write may be waiting for its flush
        // group): they finish on their own, and their responses go nowhere.
        tokio::spawn(async move {
            while let Ok(Some(_)) | Err(_) = AssertUnwindSafe(handlers.next()).catch_unwind().await
            {
            }
        });
    }
}

/// Logs why the connection is dropped and returns the error its callers get.
fn dropped(conn: &Conn, reason: String) -> TransportError {
    warn!(peer = conn.peer, addr = %conn.addr, %reason, "dropping the connection");
    TransportError::Connection {
        addr: conn.addr,
        reason,
    }
}

/// Acts on one frame from the peer other than a request. An error is a protocol violation
/// that ends the connection.
fn dispatch(conn: &Conn, frame: Frame) -> Result<(), String> {
    match frame.kind {
        FrameKind::Response => {
            let Some(tx) = conn.take_pending(frame.request_id) else {
                debug!(
                    peer = conn.peer,
                    request = frame.request_id,
                    "late response ignored"
                );
                return Ok(());
            };
            let reply = wire::decode_response(frame.payload).map_err(|e| {
                warn!(peer = conn.peer, error = %e, "undecodable response");
                TransportError::Connection {
                    addr: conn.addr,
                    reason: format!("undecodable response: {e}"),
                }
            });
            // The caller may have given up in the meantime.
            let _ = tx.send(reply);
            Ok(())
        }
        FrameKind::Handshake => Err("a second handshake on an established connection".to_owned()),
        FrameKind::Request => Err("a request reached the response path".to_owned()),
    }
}

/// One request being handled on a connection, counted so a retired connection is closed only
/// once idle; the count drops with this guard, even when the handler panics.
struct Handling(Arc<Conn>);

impl Handling {
    fn start(conn: &Arc<Conn>) -> Self {
        conn.handling.fetch_add(1, Ordering::SeqCst);
        Handling(Arc::clone(conn))
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the handler for one admitted request, or refuses one that was not (`in_progress`: the
/// requests and payload bytes being handled when it came), and queues the response. Returns
/// `admission` for the reader's accounting.
async fn serve<H: Handler>(
    inner: Arc<Inner<H>>,
    conn: Arc<Conn>,
    frame: Frame,
    _handling: Handling,
    admission: Admission,
    in_progress: (usize, usize),
) -> Admission {
    let response = if admission == Admission::Refused {
        let (requests, bytes) = in_progress;
        Stamped {
            hlc: 0,
            body: PeerResponse::Failed(RemoteFailure {
                kind: RemoteFailureKind::Overloaded,
                message: format!(
                    "overloaded: {requests} request(s) of {bytes} bytes already in progress \
                     from this node"
                ),
            }),
        }
    } else {
        match wire::decode_request(frame.payload) {
            Ok(request) => inner.handler.handle(conn.peer, request).await,
            Err(e) => {
                warn!(peer = conn.peer, error = %e, "undecodable request refused");
                refusal(format!("undecodable request: {e}"))
            }
        }
    };
    conn.respond(frame.request_id, &response).await;
    admission
}

fn refusal(message: String) -> Stamped<PeerResponse> {
    Stamped {
        hlc: 0,
        body: PeerResponse::Failed(RemoteFailure {
            kind: RemoteFailureKind::Refused,
            message,
        }),
    }
}

async fn write_loop(conn: Arc<Conn>, mut writer: OwnedWriteHalf) {
    let mut batch = BytesMut::with_capacity(64 * 1024);
    let closed = conn.closed();
    tokio::pin!(closed);
    // `close` closes the outbox, which ends this loop.
    while conn.outbox.ready().await {
        // Let every task that is ready (connections, replicas finishing a flush group) queue
        // its frames first, so they leave in one write: woken by the first frame, the writer
        // would otherwise run next and send each frame with a system call of its own.
        tokio::task::yield_now().await;
        conn.outbox.take(&mut batch);
        if batch.is_empty() {
            continue;
        }
        let written = tokio::select! {
            _ = &mut closed => break,
            written = writer.write_all(&batch) => written,
        };
        if let Err(e) = written {
            warn!(peer = conn.peer, addr = %conn.addr, error = %e, "write failed, dropping the connection");
            conn.close(TransportError::Connection {
                addr: conn.addr,
                reason: format!("write failed: {e}"),
            });
            break;
        }
        if batch.capacity() > KEEP_BATCH_BYTES {
            batch = BytesMut::with_capacity(64 * 1024);
        } else {
            batch.clear();
        }
    }
    // Best effort: the peer sees a clean end of stream rather than a reset.
    let _ = writer.shutdown().await;
}
