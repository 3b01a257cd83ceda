//! The seam between the cluster logic and the network.
//!
//! Owns the [`Transport`] trait (send a [`PeerRequest`] to a peer, get its [`PeerResponse`]
//! or a [`TransportError`] by a deadline, or send one [`SharedRequest`] to several peers under
//! the caller's own deadline), the [`Handler`] trait (what a node runs for each request it
//! receives) and [`Peer`]. Production uses the TCP implementation on the bus port;
//! the coordinator's tests use the in-process simulated network, which can drop, delay,
//! duplicate and partition messages. Must never interpret a request: handlers do.

pub mod sim;
pub mod tcp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::rpc::{PeerRequest, PeerResponse, Stamped};
use crate::wire::EncodedRequest;

/// A peer to call: its node number (who it is) and bus address (where it listens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The peer's node number.
    pub number: u32,
    /// The peer's bus address.
    pub addr: SocketAddr,
}

/// Why a call to a peer produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No response by the deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The peer could not be reached or the connection broke before the response.
    #[error("connection to {addr} failed: {reason}")]
    Connection {
        /// The peer's address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The request does not fit in a frame (over the frame bound).
    #[error("request too large for one frame: {bytes} bytes, the bound is {limit}")]
    TooLarge {
        /// Encoded size.
        bytes: usize,
        /// The frame bound.
        limit: usize,
    },
    /// The transport is shut down.
    #[error("the transport is shut down")]
    Closed,
}

/// Sends requests to peers. Calls are independent: many may be in flight to one peer at once,
/// and a slow peer never delays calls to the others.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to `peer` and waits at most `timeout` for its response.
    ///
    /// # Errors
    /// [`TransportError`] when no response arrives in time, the peer is unreachable, the
    /// request is too large, or the transport is closed.
    fn call(
        &self,
        peer: Peer,
        request: Stamped<PeerRequest>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Stamped<PeerResponse>, TransportError>> + Send;

    /// [`Transport::call`] of a request going to several peers (a write's replicas), with no
    /// deadline of its own, for a caller that bounds its calls with one timer (a gather): a
    /// timer per call was a tenth of a replicated write's work on its coordinator, and
    /// encoding the request once per peer most of the rest of its transport work (profiled).
    /// A lost message leaves it pending forever, so the caller must bound it; dropping it
    /// abandons the call. Dialing a peer is still bounded by the transport's own connect
    /// timeout.
    ///
    /// # Errors
    /// As [`Transport::call`], but never [`TransportError::Timeout`].
    fn call_shared(
        &self,
        peer: Peer,
        request: Arc<SharedRequest>,
    ) -> impl Future<Output = Result<Stamped<PeerResponse>, TransportError>> + Send;

    /// The transport's counters since it started (`INFO`'s bus figures).
    fn stats(&self) -> TransportStats;
}

/// Counters of a transport since it started. A transport without connections (the simulated
/// one, a cluster of one's) reports zeros for what it does not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Calls made (whatever their outcome).
    pub calls: u64,
    /// Calls that got no response by their deadline.
    pub timeouts: u64,
    /// Dials and handshakes that failed, and connections dropped for a protocol error or lost
    /// (reset, or given up by keepalive or `TCP_USER_TIMEOUT`).
    pub connection_failures: u64,
    /// Frames refused (bad checksum, over the bound, another protocol version, unknown kind);
    /// each one also dropped its connection.
    pub frames_dropped: u64,
    /// Connections open now (one per peer, plus any still draining after losing a
    /// simultaneous dial).
    pub connections_open: u64,
    /// Peer requests refused because too much was in progress on their connection.
    pub requests_refused: u64,
}

/// A request for several peers: stamped once, and encoded at most once, by the first call
/// that puts it on a socket (the others copy those bytes).
#[derive(Debug)]
pub struct SharedRequest {
    stamped: Stamped<PeerRequest>,
    encoded: OnceLock<EncodedRequest>,
}

impl SharedRequest {
    /// The request, not encoded yet.
    pub fn new(stamped: Stamped<PeerRequest>) -> Self {
        Self {
            stamped,
            encoded: OnceLock::new(),
        }
    }

    /// The request.
    pub fn stamped(&self) -> &Stamped<PeerRequest> {
        &self.stamped
    }

    /// The request's encoding, made at the first call.
    pub fn encoded(&self) -> &EncodedRequest {
        self.encoded
            .get_or_init(|| EncodedRequest::new(&self.stamped))
    }
}

/// What a node runs for each request a peer sends it.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` from the peer numbered `from`. Failures are answers too
    /// ([`PeerResponse::Failed`]); a handler never drops a request silently.
    fn handle(
        &self,
        from: u32,
        request: Stamped<PeerRequest>,
    ) -> impl Future<Output = Stamped<PeerResponse>> + Send;
}
