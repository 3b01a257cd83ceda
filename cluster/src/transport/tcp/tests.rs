use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::admission::MAX_REFUSALS_IN_PROGRESS;
use super::conn::{read_frame, write_frame};
use super::*;
use crate::rpc::{RemoteFailure, RemoteFailureKind};
use crate::wire::{Frame, FrameKind};

/// A slot number that makes [`Echo`] never answer.
const NEVER: u16 = u16::MAX;
/// A slot number that makes [`Echo`] answer after [`SLOW`].
const SLOW_SLOT: u16 = u16::MAX - 1;
const SLOW: Duration = Duration::from_millis(400);
/// A slot number that makes [`Echo`] panic at once (a handler bug).
const PANIC_SLOT: u16 = u16::MAX - 2;
/// A slot number that makes [`Echo`] block its thread until [`Echo::gate`] is free (a
/// handler that blocks instead of awaiting).
const BLOCK_SLOT: u16 = u16::MAX - 3;
/// A slot number that makes [`Echo`] yield to the runtime a few times before answering (as a
/// flush group's leader does to let other writers join).
const YIELD_SLOT: u16 = u16::MAX - 4;
/// A slot number that makes [`Echo`] wait (asynchronously) for a permit of [`Echo::hold`]
/// before answering, so a test decides when the handler finishes.
const HOLD_SLOT: u16 = u16::MAX - 5;
const LONG: Duration = Duration::from_secs(10);

/// Answers `CountSlots` with `Counts([its node, the sender, the request's hlc])`, after a
/// few milliseconds chosen by the slot (so concurrent answers come back out of order).
struct Echo {
    node: u32,
    seen: AtomicU64,
    gate: parking_lot::Mutex<()>,
    hold: tokio::sync::Semaphore,
}

impl Echo {
    fn new(node: u32) -> Self {
        Self {
            node,
            seen: AtomicU64::new(0),
            gate: parking_lot::Mutex::new(()),
            hold: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Handler for Echo {
    async fn handle(&self, from: u32, request: Stamped<PeerRequest>) -> Stamped<PeerResponse> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        let slot = match &request.body {
            PeerRequest::CountSlots { slots } => slots.first().copied().unwrap_or(0),
            _ => 0,
        };
        match slot {
            NEVER => std::future::pending::<()>().await,
            PANIC_SLOT => panic!("a handler bug"),
            BLOCK_SLOT => drop(self.gate.lock()),
            YIELD_SLOT => {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
            }
            SLOW_SLOT => tokio::time::sleep(SLOW).await,
            HOLD_SLOT => {
                if let Ok(permit) = self.hold.acquire().await {
                    permit.forget();
                }
            }
            n => tokio::time::sleep(Duration::from_millis(u64::from(n % 5))).await,
        }
        Stamped {
            hlc: request.hlc,
            body: PeerResponse::Counts(vec![u64::from(self.node), u64::from(from), request.hlc]),
        }
    }
}

fn config(node: u32, listen: SocketAddr) -> TcpConfig {
    TcpConfig {
        connect_timeout: Duration::from_millis(500),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..TcpConfig::new(node, listen)
    }
}

async fn node_at(node: u32, listen: SocketAddr) -> (TcpTransport<Echo>, Arc<Echo>) {
    let echo = Arc::new(Echo::new(node));
    let transport = TcpTransport::bind(config(node, listen), Arc::clone(&echo))
        .await
        .expect("bind loopback");
    (transport, echo)
}

async fn node(node: u32) -> (TcpTransport<Echo>, Arc<Echo>) {
    node_at(node, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

fn peer(number: u32, transport: &TcpTransport<Echo>) -> Peer {
    Peer {
        number,
        addr: transport.local_addr(),
    }
}

fn ask(hlc: u64, slot: u16) -> Stamped<PeerRequest> {
    Stamped {
        hlc,
        body: PeerRequest::CountSlots { slots: vec![slot] },
    }
}

/// Polls `done` every 10 ms until it holds or `LONG` passes.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test]
async fn calls_go_both_ways_over_one_connection() {
    let (a, _) = node(1).await;
    let (b, _) = node(2).await;
    let reply = a.call(peer(2, &b), ask(7, 1), LONG).await.expect("a to b");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 7]));
    // b reaches a over the connection a dialed: a's address is never needed.
    let nowhere = Peer {
        number: 1,
        addr: SocketAddr::from(([127, 0, 0, 1], 9)),
    };
    let reply = b.call(nowhere, ask(8, 1), LONG).await.expect("b to a");
    assert_eq!(reply.body, PeerResponse::Counts(vec![1, 2, 8]));
    assert_eq!(a.stats().connections_open, 1);
    assert_eq!(b.stats().connections_open, 1);
}

#[tokio::test]
async fn a_shared_request_reaches_every_peer_it_is_sent_to() {
    let (a, _) = node(1).await;
    let (b, b_echo) = node(2).await;
    let (c, c_echo) = node(3).await;
    let shared = Arc::new(SharedRequest::new(ask(9, 1)));
    let (to_b, to_c) = tokio::join!(
        a.call_shared(peer(2, &b), Arc::clone(&shared)),
        a.call_shared(peer(3, &c), Arc::clone(&shared)),
    );
    assert_eq!(
        to_b.expect("a to b").body,
        PeerResponse::Counts(vec![2, 1, 9])
    );
    assert_eq!(
        to_c.expect("a to c").body,
        PeerResponse::Counts(vec![3, 1, 9])
    );
    // Sent again on the same connection: a fresh request id, the same bytes otherwise.
    let again = a
        .call_shared(peer(2, &b), shared)
        .await
        .expect("a to b again");
    assert_eq!(again.body, PeerResponse::Counts(vec![2, 1, 9]));
    assert_eq!(b_echo.seen.load(Ordering::SeqCst), 2);
    assert_eq!(c_echo.seen.load(Ordering::SeqCst), 1);
    assert_eq!(a.stats().calls, 3);
}

#[tokio::test]
async fn a_shared_request_over_the_bound_is_refused_before_dialing() {
    let echo = Arc::new(Echo::new(1));
    let mut small = config(1, SocketAddr::from(([127, 0, 0, 1], 0)));
    small.max_frame_bytes = 1024;
    let a = TcpTransport::bind(small, echo).await.expect("bind");
    let (b, b_echo) = node(2).await;
    let big = Arc::new(SharedRequest::new(Stamped {
        hlc: 1,
        body: PeerRequest::Read {
            keys: vec![(1, Bytes::from(vec![0u8; 2048]))],
        },
    }));
    let err = a
        .call_shared(peer(2, &b), big)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, TransportError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert_eq!(a.stats().connections_open, 0);
    assert_eq!(b_echo.seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn serves_on_a_listener_bound_by_the_caller() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = Arc::new(Echo::new(2));
    let b = TcpTransport::with_listener(config(2, addr), listener, echo).expect("serve");
    assert_eq!(b.local_addr(), addr);
    let (a, _) = node(1).await;
    let reply = a
        .call(Peer { number: 2, addr }, ask(4, 0), LONG)
        .await
        .expect("a to b");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 4]));
}

#[tokio::test]
async fn a_node_calls_itself_without_a_socket() {
    let (a, _) = node(1).await;
    let reply = a.call(peer(1, &a), ask(3, 0), LONG).await.expect("self");
    assert_eq!(reply.body, PeerResponse::Counts(vec![1, 1, 3]));
    assert_eq!(a.stats().connections_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_multiplexed() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let calls: Vec<_> = (0..200u64)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move { (i, a.call(target, ask(i, i as u16), LONG).await) })
        })
        .collect();
    for call in calls {
        let (i, reply) = call.await.expect("task");
        let reply = reply.expect("answered");
        assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, i]));
    }
    assert_eq!(echo.seen.load(Ordering::SeqCst), 200);
    assert_eq!(a.stats().connections_open, 1);
    assert_eq!(a.stats().calls, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_that_yield_are_all_served_amid_others() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let calls: Vec<_> = (0..500u64)
        .map(|i| {
            let a = a.clone();
            let slot = if i % 2 == 0 { YIELD_SLOT } else { 0 };
            tokio::spawn(async move { (i, a.call(target, ask(i, slot), LONG).await) })
        })
        .collect();
    for call in calls {
        let (i, reply) = call.await.expect("task");
        assert_eq!(
            reply.expect("answered").body,
            PeerResponse::Counts(vec![2, 1, i])
        );
    }
    assert_eq!(echo.seen.load(Ordering::SeqCst), 500);
    assert_eq!(
        b.inner.conns.lock().values().next().map(|c| c.is_idle()),
        Some(true)
    );
}

#[tokio::test]
async fn a_dead_port_fails_with_connection_then_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (a, _) = node(1).await;
    let dead = Peer { number: 2, addr };
    let err = a
        .call(dead, ask(1, 0), LONG)
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, TransportError::Connection { .. }), "{err}");
    let err = a
        .call(dead, ask(1, 0), LONG)
        .await
        .expect_err("backing off");
    match err {
        TransportError::Connection { reason, .. } => {
            assert!(reason.contains("backing off"), "{reason}")
        }
        other => panic!("expected a connection error, got {other}"),
    }
    // The second call did not dial.
    assert_eq!(a.stats().connection_failures, 1);
}

#[tokio::test]
async fn an_unanswered_call_times_out_and_the_connection_serves_others() {
    let (a, _) = node(1).await;
    let (b, _) = node(2).await;
    let target = peer(2, &b);
    let timeout = Duration::from_millis(200);
    let err = a
        .call(target, ask(1, NEVER), timeout)
        .await
        .expect_err("never answered");
    assert_eq!(err, TransportError::Timeout(timeout));
    let reply = a.call(target, ask(2, 0), LONG).await.expect("still served");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 2]));
    let stats = a.stats();
    assert_eq!((stats.timeouts, stats.connections_open), (1, 1));
}

#[tokio::test]
async fn a_late_response_is_ignored() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let err = a
        .call(target, ask(1, SLOW_SLOT), Duration::from_millis(50))
        .await
        .expect_err("slower than the deadline");
    assert!(matches!(err, TransportError::Timeout(_)));
    // Keep calling until the slow answer has come and gone; every answer is the caller's own.
    let mut hlc = 100;
    let before = Instant::now();
    while before.elapsed() < SLOW * 2 {
        hlc += 1;
        let reply = a.call(target, ask(hlc, 0), LONG).await.expect("answered");
        assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, hlc]));
    }
    assert!(echo.seen.load(Ordering::SeqCst) > 2);
    assert_eq!(a.stats().connections_open, 1);
}

#[tokio::test]
async fn a_request_over_the_bound_is_refused() {
    let echo = Arc::new(Echo::new(1));
    let mut small = config(1, SocketAddr::from(([127, 0, 0, 1], 0)));
    small.max_frame_bytes = 1024;
    let a = TcpTransport::bind(small, echo).await.expect("bind");
    let (b, _) = node(2).await;
    let big = Stamped {
        hlc: 1,
        body: PeerRequest::Read {
            keys: vec![(1, Bytes::from(vec![0u8; 2048]))],
        },
    };
    let err = a.call(peer(2, &b), big, LONG).await.expect_err("too large");
    assert!(
        matches!(err, TransportError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_request_over_the_bound_is_refused_before_dialing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut small = config(1, SocketAddr::from(([127, 0, 0, 1], 0)));
    small.max_frame_bytes = 1024;
    let a = TcpTransport::bind(small, Arc::new(Echo::new(1)))
        .await
        .expect("bind");
    let big = Stamped {
        hlc: 1,
        body: PeerRequest::Read {
            keys: vec![(1, Bytes::from(vec![0u8; 2048]))],
        },
    };
    let dead = Peer { number: 2, addr };
    let err = a.call(dead, big, LONG).await.expect_err("too large");
    assert!(
        matches!(err, TransportError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
    let stats = a.stats();
    assert_eq!((stats.connection_failures, stats.connections_open), (0, 0));
}

#[tokio::test]
async fn a_request_guessed_over_the_bound_whose_frame_fits_is_sent() {
    let limit = 1024;
    let codec = FrameCodec::new(limit);
    let read = |len: usize| Stamped {
        hlc: 1,
        body: PeerRequest::Read {
            keys: vec![(1, Bytes::from(vec![0u8; len]))],
        },
    };
    let fits = |request: &Stamped<PeerRequest>| {
        wire::put_request_frame(&codec, &mut BytesMut::new(), 1, request).is_ok()
    };
    let request = (limit / 2..limit)
        .map(read)
        .find(|r| wire::request_frame_size_hint(r) > limit && fits(r))
        .expect("a request whose size guess is over its frame's size");
    let mut small = config(1, SocketAddr::from(([127, 0, 0, 1], 0)));
    small.max_frame_bytes = limit;
    let a = TcpTransport::bind(small, Arc::new(Echo::new(1)))
        .await
        .expect("bind");
    let (b, _) = node(2).await;
    let reply = a.call(peer(2, &b), request, LONG).await.expect("sent");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 1]));
}

/// Connects a raw socket to `target` and does the handshake as node 99.
async fn raw_peer(target: SocketAddr) -> TcpStream {
    let mut raw = TcpStream::connect(target).await.expect("connect");
    let codec = FrameCodec::default();
    write_frame(&mut raw, &codec, &Frame::handshake(99))
        .await
        .expect("send handshake");
    let mut buf = BytesMut::new();
    let frame = read_frame(&mut raw, &mut codec.clone(), &mut buf)
        .await
        .expect("read handshake")
        .expect("a frame");
    assert_eq!(frame.handshake_node().expect("a handshake"), 2);
    raw
}

/// Waits for `raw` to be closed by the other side.
async fn closed_by_peer(raw: &mut TcpStream) {
    let mut buf = BytesMut::new();
    let outcome = tokio::time::timeout(LONG, read_frame(raw, &mut FrameCodec::default(), &mut buf))
        .await
        .expect("the node drops the connection");
    assert!(!matches!(outcome, Ok(Some(_))), "no frame expected");
}

#[tokio::test]
async fn a_bad_checksum_drops_the_connection_not_the_node() {
    let (b, _) = node(2).await;
    let mut raw = raw_peer(b.local_addr()).await;
    let mut bytes = BytesMut::new();
    let frame = Frame {
        kind: FrameKind::Request,
        request_id: 1,
        payload: crate::wire::encode_request(&ask(1, 0)),
    };
    FrameCodec::default()
        .encode_ref(&frame, &mut bytes)
        .expect("encode");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    raw.write_all(&bytes).await.expect("send");
    closed_by_peer(&mut raw).await;
    assert_eq!(b.stats().frames_dropped, 1);

    let (a, _) = node(1).await;
    a.call(peer(2, &b), ask(5, 0), LONG)
        .await
        .expect("still serving");
}

#[tokio::test]
async fn an_oversized_frame_drops_the_connection_not_the_node() {
    let (b, _) = node(2).await;
    let mut raw = raw_peer(b.local_addr()).await;
    raw.write_all(&u32::MAX.to_be_bytes()).await.expect("send");
    closed_by_peer(&mut raw).await;
    assert_eq!(b.stats().frames_dropped, 1);

    let (a, _) = node(1).await;
    a.call(peer(2, &b), ask(5, 0), LONG)
        .await
        .expect("still serving");
}

#[tokio::test]
async fn a_panicking_handler_closes_its_connection_not_the_node() {
    let (a, _) = node(1).await;
    let (b, _) = node(2).await;
    let err = a
        .call(peer(2, &b), ask(1, PANIC_SLOT), LONG)
        .await
        .expect_err("the handler panicked");
    // The connection was closed: the caller hears that, not its deadline passing.
    assert!(
        matches!(err, crate::transport::TransportError::Connection { .. }),
        "{err}"
    );
    assert!(eventually(|| b.stats().connection_failures >= 1).await);
    let answer = a
        .call(peer(2, &b), ask(7, 0), LONG)
        .await
        .expect("served again over a new connection");
    assert!(matches!(answer.body, PeerResponse::Counts(_)));
}

#[tokio::test]
async fn a_first_frame_larger_than_a_handshake_is_refused_before_it_is_buffered() {
    let (b, _) = node(2).await;
    let mut raw = TcpStream::connect(b.local_addr()).await.expect("connect");
    // Declares a frame well under the 64 MiB bound, but no handshake is that large.
    raw.write_all(&(1u32 << 20).to_be_bytes())
        .await
        .expect("send");
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::default();
    let first = read_frame(&mut raw, &mut codec, &mut buf)
        .await
        .expect("handshake");
    assert!(matches!(
        first,
        Some(Frame {
            kind: FrameKind::Handshake,
            ..
        })
    ));
    closed_by_peer(&mut raw).await;
    assert!(eventually(|| b.stats().frames_dropped == 1).await);
    assert_eq!(b.stats().connections_open, 0);

    let (a, _) = node(1).await;
    a.call(peer(2, &b), ask(5, 0), LONG)
        .await
        .expect("still serving");
}

#[tokio::test]
async fn another_protocol_version_is_refused_at_the_handshake() {
    let (b, _) = node(2).await;
    let mut raw = TcpStream::connect(b.local_addr()).await.expect("connect");
    let mut bytes = BytesMut::new();
    FrameCodec::default()
        .encode_ref(&Frame::handshake(99), &mut bytes)
        .expect("encode");
    bytes[4] = crate::wire::PROTOCOL_VERSION + 1;
    raw.write_all(&bytes).await.expect("send");
    // The node's own handshake arrives first, then the end of the stream.
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::default();
    let first = read_frame(&mut raw, &mut codec, &mut buf)
        .await
        .expect("handshake");
    assert!(matches!(
        first,
        Some(Frame {
            kind: FrameKind::Handshake,
            ..
        })
    ));
    closed_by_peer(&mut raw).await;
    assert!(eventually(|| b.stats().connection_failures == 1).await);
    assert_eq!(b.stats().connections_open, 0);
}

#[tokio::test]
async fn a_restarted_peer_is_reached_again() {
    let (a, _) = node(1).await;
    let (b, _) = node(2).await;
    let target = peer(2, &b);
    a.call(target, ask(1, 0), LONG).await.expect("first");
    b.shutdown().await;
    drop(b);
    let err = a
        .call(target, ask(2, 0), LONG)
        .await
        .expect_err("b is gone");
    assert!(matches!(err, TransportError::Connection { .. }), "{err}");

    let (_b, _) = node_at(2, target.addr).await;
    let deadline = Instant::now() + LONG;
    let reply = loop {
        match a.call(target, ask(3, 0), Duration::from_secs(1)).await {
            Ok(reply) => break reply,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, TransportError::Connection { .. }), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("never reconnected: {e}"),
        }
    };
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_settle_on_one_connection() {
    for _ in 0..5 {
        let (a, _) = node(1).await;
        let (b, _) = node(2).await;
        let (to_b, to_a) = (peer(2, &b), peer(1, &a));
        let (ab, ba) = tokio::join!(a.call(to_b, ask(1, 0), LONG), b.call(to_a, ask(2, 0), LONG));
        ab.expect("a to b");
        ba.expect("b to a");
        assert!(
            eventually(|| a.stats().connections_open == 1 && b.stats().connections_open == 1).await,
            "a {:?}, b {:?}",
            a.stats(),
            b.stats()
        );
        a.call(to_b, ask(3, 0), LONG).await.expect("a to b after");
        b.call(to_a, ask(4, 0), LONG).await.expect("b to a after");
    }
}

#[tokio::test]
async fn shutdown_fails_pending_calls_with_closed() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let caller = a.clone();
    let call = tokio::spawn(async move { caller.call(target, ask(1, NEVER), LONG).await });
    assert!(eventually(|| echo.seen.load(Ordering::SeqCst) == 1).await);
    a.shutdown().await;
    assert_eq!(call.await.expect("task"), Err(TransportError::Closed));
    assert_eq!(
        a.call(target, ask(2, 0), LONG).await,
        Err(TransportError::Closed)
    );
    assert_eq!(a.stats().connections_open, 0);
    // The peer notices and forgets the connection too.
    assert!(eventually(|| b.stats().connections_open == 0).await);
}

#[tokio::test]
async fn a_pending_handler_does_not_block_other_requests_on_its_connection() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let caller = a.clone();
    let stuck = tokio::spawn(async move { caller.call(target, ask(1, NEVER), LONG).await });
    assert!(eventually(|| echo.seen.load(Ordering::SeqCst) == 1).await);
    for hlc in 2..12 {
        let reply = a.call(target, ask(hlc, 0), LONG).await.expect("served");
        assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, hlc]));
    }
    assert!(
        !stuck.is_finished(),
        "the first request's handler never finishes"
    );
    assert_eq!(b.stats().connections_open, 1);
    assert_eq!(
        b.inner.conns.lock().values().next().map(|c| c.is_idle()),
        Some(false)
    );
    stuck.abort();
}

/// A two-worker runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
// Held across the calls on purpose: the lock is what blocks the handler's thread.
#[allow(clippy::await_holding_lock)]
fn a_callers_deadline_fires_while_a_handler_blocks_the_reader() {
    // The peer runs on a runtime of its own, as it would in its own process: with both nodes
    // on one runtime, the worker its handler blocks may be the one that was to drive the
    // timers, and the callers' deadlines would then never fire (the test hung most runs).
    let peer_runtime = runtime();
    let (b, echo) = peer_runtime.block_on(node(2));
    let target = peer(2, &b);
    runtime().block_on(async {
        let (a, _) = node(1).await;
        a.call(target, ask(1, 0), LONG).await.expect("connected");
        let timeout = Duration::from_millis(100);
        {
            // The handler blocks b's reader thread until this guard goes: no frame on the
            // connection is read, yet both callers hear of their deadline.
            let _gate = echo.gate.lock();
            let blocked = a.call(target, ask(2, BLOCK_SLOT), timeout).await;
            assert_eq!(blocked, Err(TransportError::Timeout(timeout)));
            let behind = a.call(target, ask(3, 0), timeout).await;
            assert_eq!(behind, Err(TransportError::Timeout(timeout)));
        }
        let reply = a.call(target, ask(4, 0), LONG).await.expect("served again");
        assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 4]));
        assert_eq!(a.stats().timeouts, 2);
    });
}

/// The connection `transport` uses to `peer`, opened if need be.
async fn conn_to(transport: &TcpTransport<Echo>, peer: Peer) -> Arc<conn::Conn> {
    transport
        .inner
        .connection(peer, Instant::now() + LONG)
        .await
        .expect("connected")
}

#[tokio::test]
async fn closing_a_connection_fails_its_pending_calls_with_the_first_reason() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let caller = a.clone();
    let call = tokio::spawn(async move { caller.call(target, ask(1, NEVER), LONG).await });
    assert!(eventually(|| echo.seen.load(Ordering::SeqCst) == 1).await);
    let conn = conn_to(&a, target).await;
    let first = TransportError::Connection {
        addr: target.addr,
        reason: "first".to_owned(),
    };
    conn.close(first.clone());
    conn.close(TransportError::Closed);
    assert_eq!(call.await.expect("task"), Err(first));
    assert!(conn.is_closed());
    let reply = a
        .call(target, ask(2, 0), LONG)
        .await
        .expect("a new connection");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 2]));
}

#[tokio::test]
async fn the_transports_cancellation_fails_pending_calls_at_once() {
    let (a, _) = node(1).await;
    let (b, echo) = node(2).await;
    let target = peer(2, &b);
    let caller = a.clone();
    let call = tokio::spawn(async move { caller.call(target, ask(1, NEVER), LONG).await });
    assert!(eventually(|| echo.seen.load(Ordering::SeqCst) == 1).await);
    // What the last handle's drop does: no `shutdown` closing each connection first.
    a.inner.stop.cancel();
    let outcome = tokio::time::timeout(LONG / 2, call)
        .await
        .expect("failed before its deadline");
    assert_eq!(outcome.expect("task"), Err(TransportError::Closed));
    assert!(eventually(|| a.stats().connections_open == 0).await);
}

/// Accepts one connection as node 99, answers its handshake, then reads nothing until `go`
/// fires; from then on reports the request id of every frame it reads.
async fn silent_peer(
    listener: TcpListener,
    go: tokio::sync::oneshot::Receiver<()>,
    ids: tokio::sync::mpsc::UnboundedSender<u64>,
) {
    let (mut raw, _) = listener.accept().await.expect("accept");
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let hello = read_frame(&mut raw, &mut codec, &mut buf)
        .await
        .expect("handshake")
        .expect("a frame");
    assert_eq!(hello.handshake_node().expect("a handshake"), 1);
    write_frame(&mut raw, &codec, &Frame::handshake(99))
        .await
        .expect("send handshake");
    let _ = go.await;
    while let Ok(Some(frame)) = read_frame(&mut raw, &mut codec, &mut buf).await {
        if ids.send(frame.request_id).is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_full_outbox_makes_a_caller_wait_then_its_request_goes_in_order() {
    use std::future::Future;
    use std::task::{Context, Waker};

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = Peer {
        number: 99,
        addr: listener.local_addr().expect("addr"),
    };
    let (go, started) = tokio::sync::oneshot::channel();
    let (ids_tx, mut ids) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(silent_peer(listener, started, ids_tx));
    let (a, _) = node(1).await;
    let conn = conn_to(&a, target).await;
    let big = Stamped {
        hlc: 1,
        body: PeerRequest::Read {
            keys: vec![(1, Bytes::from(vec![0u8; 1 << 20]))],
        },
    };
    // Polled by hand on this task, so the writer does not run until we yield: requests are
    // queued until the outbox is over its cap, and the next caller has to wait.
    let mut calls = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    let hint = crate::wire::request_frame_size_hint(&big);
    loop {
        assert!(calls.len() < 16, "the outbox never filled");
        let before = conn.outbox().buffered();
        let mut call = Box::pin(conn.request(&big, hint));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        calls.push(call);
        if conn.outbox().buffered() == before {
            break;
        }
    }
    let queued = calls.len() - 1;
    assert!(queued >= 1 && conn.outbox().buffered() + hint > outbox::OUTBOX_CAP);
    // The peer starts reading: the writer empties the outbox and lets the waiting call in,
    // and every request arrives, in the order they were made.
    let _ = go.send(());
    let expected: Vec<u64> = (1..=calls.len() as u64).collect();
    let received = async {
        let mut seen = Vec::new();
        while seen.len() < expected.len() {
            seen.push(ids.recv().await.expect("the peer reads on"));
        }
        seen
    };
    let pending = futures_util::future::join_all(calls);
    let seen = tokio::select! {
        seen = received => seen,
        _ = pending => panic!("nobody answers these calls"),
    };
    assert_eq!(seen, expected);
}

/// Both ends of a bus connection carry the keepalive settings, read back from the kernel: the
/// dialing side and the accepting side each run `handshake` on their own socket.
#[tokio::test]
async fn dialed_and_accepted_sockets_notice_a_vanished_peer() {
    // Not the defaults, so a socket left at anything else (or at the defaults through some
    // other path) fails the test.
    let settings = Keepalive {
        idle: Duration::from_secs(7),
        interval: Duration::from_secs(3),
        probes: 5,
        user_timeout: Duration::from_secs(22),
    };
    let mut dialer_config = config(1, SocketAddr::from(([127, 0, 0, 1], 0)));
    dialer_config.keepalive = settings;
    let mut acceptor_config = config(2, SocketAddr::from(([127, 0, 0, 1], 0)));
    acceptor_config.keepalive = settings;
    let dialer = TcpTransport::bind(dialer_config, Arc::new(Echo::new(1)))
        .await
        .expect("bind");
    let acceptor = TcpTransport::bind(acceptor_config, Arc::new(Echo::new(2)))
        .await
        .expect("bind");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.expect("connect");
    let (accepted, _) = accepted.expect("accept");
    let before = socket2::SockRef::from(&dialed);
    assert!(!before.keepalive().expect("SO_KEEPALIVE"), "off by default");
    let (dialed, accepted) = tokio::join!(
        dialer.inner.handshake(dialed),
        acceptor.inner.handshake(accepted),
    );
    let (dialed, _, remote_of_dialed) = dialed.expect("dialer's handshake");
    let (accepted, _, remote_of_accepted) = accepted.expect("acceptor's handshake");
    assert_eq!((remote_of_dialed, remote_of_accepted), (2, 1));
    for (side, stream) in [("dialed", &dialed), ("accepted", &accepted)] {
        let socket = socket2::SockRef::from(stream);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"), "{side}");
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            settings.idle,
            "{side}"
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            settings.interval,
            "{side}"
        );
        assert_eq!(
            socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
            settings.probes,
            "{side}"
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            socket.tcp_user_timeout().expect("TCP_USER_TIMEOUT"),
            Some(settings.user_timeout),
            "{side}"
        );
        assert!(stream.nodelay().expect("TCP_NODELAY"), "{side}");
    }
}
async fn node_with(
    node: u32,
    adjust: impl FnOnce(&mut TcpConfig),
) -> (TcpTransport<Echo>, Arc<Echo>) {
    let echo = Arc::new(Echo::new(node));
    let mut config = config(node, SocketAddr::from(([127, 0, 0, 1], 0)));
    adjust(&mut config);
    let transport = TcpTransport::bind(config, Arc::clone(&echo))
        .await
        .expect("bind loopback");
    (transport, echo)
}

fn is_overload_refusal(reply: &Result<Stamped<PeerResponse>, TransportError>) -> bool {
    matches!(reply, Ok(Stamped {
        body: PeerResponse::Failed(RemoteFailure { kind: RemoteFailureKind::Overloaded, message }),
        ..
    }) if message.starts_with("overloaded"))
}

#[tokio::test]
async fn requests_past_the_bound_in_progress_are_refused_at_once() {
    let (a, _) = node(1).await;
    let (b, echo) = node_with(2, |c| c.max_requests_in_progress = 3).await;
    let target = peer(2, &b);
    let stuck: Vec<_> = (1..=3)
        .map(|hlc| {
            let caller = a.clone();
            tokio::spawn(async move { caller.call(target, ask(hlc, NEVER), LONG).await })
        })
        .collect();
    assert!(eventually(|| echo.seen.load(Ordering::SeqCst) == 3).await);
    for hlc in 4..10 {
        let reply = a.call(target, ask(hlc, 0), LONG).await;
        assert!(is_overload_refusal(&reply), "{reply:?}");
    }
    assert_eq!(
        echo.seen.load(Ordering::SeqCst),
        3,
        "refused requests never reach the handler"
    );
    assert_eq!(b.stats().requests_refused, 6);
    for task in stuck {
        task.abort();
    }
}

/// Node 1 calls node 2 (configured by `adjust`) once with a request its handler holds, then
/// once more, which must be refused as overloaded. Returns both nodes, node 2's handler and the
/// held call.
async fn hold_one_then_be_refused(
    adjust: impl FnOnce(&mut TcpConfig),
) -> (
    TcpTransport<Echo>,
    TcpTransport<Echo>,
    Arc<Echo>,
    tokio::task::JoinHandle<Result<Stamped<PeerResponse>, TransportError>>,
) {
    let (a, _) = node(1).await;
    let (b, echo) = node_with(2, adjust).await;
    let target = peer(2, &b);
    let caller = a.clone();
    let held = tokio::spawn(async move { caller.call(target, ask(1, HOLD_SLOT), LONG).await });
    assert!(eventually(|| echo.seen.load(Ordering::SeqCst) == 1).await);
    let refused = a.call(target, ask(2, 0), LONG).await;
    assert!(is_overload_refusal(&refused), "{refused:?}");
    (a, b, echo, held)
}

#[tokio::test]
async fn a_finished_handler_makes_room_again() {
    let (a, b, echo, held) = hold_one_then_be_refused(|c| c.max_requests_in_progress = 1).await;
    echo.hold.add_permits(1);
    let reply = held.await.expect("task").expect("served");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 1]));
    let reply = a.call(peer(2, &b), ask(3, 0), LONG).await.expect("served");
    assert_eq!(reply.body, PeerResponse::Counts(vec![2, 1, 3]));
    assert_eq!(b.stats().requests_refused, 1);
}

#[tokio::test]
async fn requests_past_the_bytes_in_progress_are_refused_but_one_is_always_taken() {
    let (_a, _b, echo, held) =
        hold_one_then_be_refused(|c| c.max_request_bytes_in_progress = 1).await;
    echo.hold.add_permits(1);
    assert!(
        held.await.expect("task").is_ok(),
        "taken though over the bytes: nothing was in progress"
    );
}

/// Two nodes flooding each other past their bounds get refusals (or time out where requests
/// were dropped), and their connection then serves both ways at once: the held calls' answers
/// come through it and fresh calls succeed. (Review reproduced a 30 s mutual stall when a
/// reader stopped reading at its refusal bound; that needed a longer, timing-dependent flood
/// than a unit test should run, so this checks the recovery, not the race.)
#[tokio::test]
async fn two_peers_flooding_each_other_get_refusals_and_recover() {
    let (a, echo_a) = node_with(1, |c| c.max_requests_in_progress = 1).await;
    let (b, echo_b) = node_with(2, |c| c.max_requests_in_progress = 1).await;
    let (to_a, to_b) = (peer(1, &a), peer(2, &b));
    // Each side holds one of the other's requests, so both are at their bound.
    let (ca, cb) = (a.clone(), b.clone());
    let held_at_b = tokio::spawn(async move { ca.call(to_b, ask(1, HOLD_SLOT), LONG).await });
    let held_at_a = tokio::spawn(async move { cb.call(to_a, ask(2, HOLD_SLOT), LONG).await });
    assert!(eventually(|| echo_a.seen.load(Ordering::SeqCst) == 1).await);
    assert!(eventually(|| echo_b.seen.load(Ordering::SeqCst) == 1).await);
    // More requests than either side has room for refusals, both ways at once (small: the
    // test checks the accounting and the recovery, and must not load a shared CI machine).
    let big_ask = |hlc: u64| Stamped {
        hlc,
        body: PeerRequest::CountSlots {
            slots: vec![0; 100],
        },
    };
    let flood = |from: &TcpTransport<Echo>, to: Peer| {
        let from = from.clone();
        tokio::spawn(async move {
            let calls = (0..(MAX_REFUSALS_IN_PROGRESS as u64 + 200))
                .map(|i| from.call(to, big_ask(100 + i), Duration::from_millis(500)));
            futures_util::future::join_all(calls).await
        })
    };
    let (fa, fb) = (flood(&a, to_b), flood(&b, to_a));
    let (fa, fb) = (fa.await.expect("task"), fb.await.expect("task"));
    for reply in fa.iter().chain(&fb) {
        assert!(
            is_overload_refusal(reply)
                || reply == &Err(TransportError::Timeout(Duration::from_millis(500))),
            "{reply:?}"
        );
    }
    // The held calls finish once released: their answers come through the busy connection.
    echo_a.hold.add_permits(1);
    echo_b.hold.add_permits(1);
    assert!(held_at_b.await.expect("task").is_ok());
    assert!(held_at_a.await.expect("task").is_ok());
    // And a fresh call goes through at once both ways.
    assert!(a.call(to_b, ask(9, 0), LONG).await.is_ok());
    assert!(b.call(to_a, ask(9, 0), LONG).await.is_ok());
}
