//! One established connection: the calls waiting on it, its reader and its writer.
//!
//! Owns [`Conn`] (the pending map from request id to the waiting caller, the outbox to the
//! writer task) and the two tasks per connection: the reader turns frames into responses for
//! waiting callers or spawns the handler for requests; the writer drains the outbox, batching
//! every frame queued meanwhile into one write. A caller that gives up (deadline, dropped
//! future) removes its entry, so a late response finds nobody and is ignored. Must never run a
//! handler on the reader task (a slow handler would stall every call on the connection).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Counters, Inner};
use crate::rpc::{PeerResponse, RemoteFailure, RemoteFailureKind, Stamped};
use crate::transport::{Handler, TransportError};
use crate::wire::{self, Frame, FrameCodec, FrameKind, WireError, FRAME_HEADER_BYTES};

/// Frames queued for the writer before senders wait.
const OUTBOX_FRAMES: usize = 1024;
/// The writer stops adding queued frames to a batch past this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
/// Spare room the reader keeps in its buffer before each read, so one `read(2)` takes every
/// frame the socket holds (profiled: with only what the codec reserved, a replica paid two
/// reads per 1 KiB write it received).
const READ_ROOM: usize = 64 * 1024;

type Reply = Result<Stamped<PeerResponse>, TransportError>;

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
    outbox: mpsc::Sender<Frame>,
    /// Callers waiting for a response, by request id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_request: AtomicU64,
    /// Requests from the peer being handled now.
    handling: AtomicUsize,
    closed: CancellationToken,
}

impl Conn {
    pub(super) fn new(
        id: u64,
        peer: u32,
        addr: SocketAddr,
        dialed_by: u32,
        closed: CancellationToken,
    ) -> (Arc<Self>, mpsc::Receiver<Frame>) {
        let (outbox, rx) = mpsc::channel(OUTBOX_FRAMES);
        let conn = Arc::new(Self {
            id,
            peer,
            addr,
            dialed_by,
            outbox,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            handling: AtomicUsize::new(0),
            closed,
        });
        (conn, rx)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves once the connection is closed.
    pub(super) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// No call waiting and no request being handled.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.lock().is_empty() && self.handling.load(Ordering::SeqCst) == 0
    }

    /// Closes the connection (its tasks end and drop the socket) and fails every waiting call
    /// with `error`. Closing twice does nothing.
    pub(super) fn close(&self, error: TransportError) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
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

    /// Sends an encoded request and waits for its response, with no deadline of its own: the
    /// caller bounds it, and dropping this future removes the pending entry.
    pub(super) async fn request(&self, payload: Bytes) -> Reply {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let _entry = PendingEntry { conn: self, id };
        // `close` may have drained the map just before the insert.
        if self.is_closed() {
            return Err(self.broken());
        }
        let frame = Frame {
            kind: FrameKind::Request,
            request_id: id,
            payload,
        };
        if self.outbox.send(frame).await.is_err() {
            return Err(self.broken());
        }
        match rx.await {
            Ok(reply) => reply,
            Err(_) => Err(self.broken()),
        }
    }

    fn take_pending(&self, id: u64) -> Option<oneshot::Sender<Reply>> {
        self.pending.lock().remove(&id)
    }
}

/// Removes a call's pending entry however the call ends (answered, timed out, dropped).
struct PendingEntry<'a> {
    conn: &'a Conn,
    id: u64,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.conn.pending.lock().remove(&self.id);
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
    outbox: mpsc::Receiver<Frame>,
) {
    tokio::spawn(write_loop(
        Arc::clone(&inner),
        Arc::clone(&conn),
        write_half,
        outbox,
    ));
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
    let reason = loop {
        let frame = tokio::select! {
            _ = conn.closed() => return,
            frame = read_frame(&mut reader, &mut codec, &mut buf) => frame,
        };
        match frame {
            Ok(Some(frame)) => {
                if let Err(reason) = dispatch(inner, conn, frame) {
                    Counters::bump(&inner.counters.connection_failures);
                    break reason;
                }
            }
            Ok(None) => {
                debug!(
                    peer = conn.peer,
                    id = conn.id,
                    "the peer closed the connection"
                );
                conn.close(conn.broken());
                return;
            }
            Err(e) => {
                if is_bad_frame(&e) {
                    Counters::bump(&inner.counters.frames_dropped);
                    Counters::bump(&inner.counters.connection_failures);
                }
                break e.to_string();
            }
        }
    };
    warn!(peer = conn.peer, addr = %conn.addr, %reason, "dropping the connection");
    conn.close(TransportError::Connection {
        addr: conn.addr,
        reason,
    });
}

/// Acts on one frame from the peer. An error is a protocol violation that ends the connection.
fn dispatch<H: Handler>(
    inner: &Arc<Inner<H>>,
    conn: &Arc<Conn>,
    frame: Frame,
) -> Result<(), String> {
    match frame.kind {
        FrameKind::Request => {
            // Most requests (a point read, a write without fsync) finish at their first poll:
            // serving them here saves a task and a wake-up each. One that has to wait (an
            // fsync off the runtime, a forwarded write, a full outbox) continues in a task of
            // its own, so it never holds up this connection's reading; the task polls it again
            // with a real waker.
            let handling = Handling::start(conn);
            let mut task = Box::pin(serve(Arc::clone(inner), Arc::clone(conn), frame, handling));
            let mut cx = Context::from_waker(Waker::noop());
            // A handler that panics must not take the reader task (and with it every call on
            // this connection) down: the connection is closed with a reason instead, and its
            // callers fail at once rather than at their deadlines.
            match std::panic::catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => {
                    tokio::spawn(task);
                    Ok(())
                }
                Ok(Poll::Ready(())) => Ok(()),
                Err(_) => Err("a request handler panicked".to_owned()),
            }
        }
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

/// Runs the handler for one request and queues its response.
async fn serve<H: Handler>(
    inner: Arc<Inner<H>>,
    conn: Arc<Conn>,
    frame: Frame,
    _handling: Handling,
) {
    let response = match wire::decode_request(frame.payload) {
        Ok(request) => inner.handler.handle(conn.peer, request).await,
        Err(e) => {
            warn!(peer = conn.peer, error = %e, "undecodable request refused");
            refusal(format!("undecodable request: {e}"))
        }
    };
    let mut payload = wire::encode_response(&response);
    let limit = inner.codec.max_frame_bytes();
    if FRAME_HEADER_BYTES + payload.len() > limit {
        warn!(
            peer = conn.peer,
            bytes = payload.len(),
            limit,
            "response over the frame bound refused"
        );
        payload = wire::encode_response(&refusal(format!(
            "the response ({} bytes) exceeds the frame bound ({limit} bytes)",
            payload.len()
        )));
    }
    let frame = Frame {
        kind: FrameKind::Response,
        request_id: frame.request_id,
        payload,
    };
    // A closed connection has nobody left to answer.
    let _ = conn.outbox.send(frame).await;
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

async fn write_loop<H: Handler>(
    inner: Arc<Inner<H>>,
    conn: Arc<Conn>,
    mut writer: OwnedWriteHalf,
    mut outbox: mpsc::Receiver<Frame>,
) {
    let codec = inner.codec;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            _ = conn.closed() => break,
            frame = outbox.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        encode_into(&codec, &conn, &first, &mut buf);
        // Let every task that is ready (connections, replicas finishing a flush group) queue
        // its frames first, so they leave in one write: woken by the first frame, the writer
        // would otherwise run next and send each frame with a system call of its own.
        tokio::task::yield_now().await;
        while buf.len() < BATCH_BYTES {
            match outbox.try_recv() {
                Ok(frame) => encode_into(&codec, &conn, &frame, &mut buf),
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            _ = conn.closed() => break,
            written = writer.write_all(&buf) => written,
        };
        if let Err(e) = written {
            warn!(peer = conn.peer, addr = %conn.addr, error = %e, "write failed, dropping the connection");
            conn.close(TransportError::Connection {
                addr: conn.addr,
                reason: format!("write failed: {e}"),
            });
            break;
        }
        buf.clear();
    }
    // Best effort: the peer sees a clean end of stream rather than a reset.
    let _ = writer.shutdown().await;
}

fn encode_into(codec: &FrameCodec, conn: &Conn, frame: &Frame, buf: &mut BytesMut) {
    // Callers check the bound before queueing, so this only guards against a bug.
    if let Err(e) = codec.encode_ref(frame, buf) {
        warn!(peer = conn.peer, error = %e, "frame not sent");
    }
}
