//! Noticing a peer that vanished: TCP keepalive and `TCP_USER_TIMEOUT` on every bus socket.
//!
//! Owns [`Keepalive`] (the timers, part of [`TcpConfig`](super::TcpConfig)) and [`apply`],
//! which the handshake calls on every bus socket, dialed or accepted. *Why:* a peer that goes
//! away without a FIN or RST (power loss, a partition, a firewall dropping the flow) leaves a
//! half-open connection. With Linux's defaults an idle one is first probed after two hours, and
//! data sent on it is retransmitted for about 15 minutes (`tcp_retries2`) before the socket
//! fails, so calls to that peer would time out one by one on a connection nothing closes. With
//! these options the kernel fails the socket within [`Keepalive::user_timeout`], its reader
//! closes the connection, and the next call dials again under the usual backoff.
//! A failure to set an option is logged and the connection is kept: it only notices a dead
//! peer as late as it did without the options.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tracing::warn;

/// How a bus connection notices that its peer has gone. Linux keeps whole seconds of the
/// keepalive timers, so `idle` and `interval` must be at least 1 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// How long a connection may be silent before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Between unanswered probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes after which the connection is dropped (`TCP_KEEPCNT`). On Linux
    /// `user_timeout` decides instead once it is set (tcp(7)); the count is for other systems.
    pub probes: u32,
    /// How long sent data may stay unacknowledged, and on Linux how long probes may go
    /// unanswered, before the kernel drops the connection (`TCP_USER_TIMEOUT`, Linux only).
    pub user_timeout: Duration,
}

impl Keepalive {
    /// 10 s idle, then a probe every 5 s, dropped after 4 unanswered ones or 30 s without an
    /// acknowledgement. *Why these values:* 30 s is Cassandra's internode `TCP_USER_TIMEOUT`
    /// (since 4.0), many times the coordinator's 2 s request deadline, and leaves room for
    /// seven retransmissions from Linux's 200 ms minimum RTO (the seventh is sent at
    /// 0.2 + 0.4 + ... + 12.8 = 25.4 s), so a burst of loss or a partition of a few seconds
    /// costs no reconnect, while a dead peer is noticed in 30 s rather than 15 min. The probes
    /// make an idle connection fail in the same 30 s (10 + 4 x 5): an idle one is as dead as a
    /// busy one, and 4 is the count Linux in effect uses once `user_timeout` is set, so other
    /// systems behave the same. A probe is one empty segment per idle connection every 5 s,
    /// nothing next to the traffic.
    pub const DEFAULT: Self = Self {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(5),
        probes: 4,
        user_timeout: Duration::from_secs(30),
    };
}

/// Sets `settings` on `stream`. Never fails: a socket without them is no worse than before,
/// so each failure is only logged.
pub(super) fn apply(stream: &TcpStream, settings: &Keepalive) {
    let socket = SockRef::from(stream);
    let params = TcpKeepalive::new().with_time(settings.idle);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd",
        target_os = "windows"
    ))]
    let params = params
        .with_interval(settings.interval)
        .with_retries(settings.probes);
    if let Err(e) = socket.set_tcp_keepalive(&params) {
        let peer = stream.peer_addr().ok();
        warn!(?peer, error = %e, "could not set TCP keepalive on a bus connection");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = socket.set_tcp_user_timeout(Some(settings.user_timeout)) {
        let peer = stream.peer_addr().ok();
        warn!(?peer, error = %e, "could not set TCP_USER_TIMEOUT on a bus connection");
    }
}
