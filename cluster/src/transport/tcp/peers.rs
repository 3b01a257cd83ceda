//! The node table: at most one connection in use per peer, and each peer's backoff.
//!
//! Owns [`PeerTable`] and [`PeerEntry`]. When two connections to the same peer exist (both
//! nodes dialed at once), both nodes keep the one dialed by the lower node number and retire
//! the other, so they agree without talking about it. After a failed dial the peer is backed
//! off: calls fail at once until the wait (doubling from `backoff_min` to `backoff_max`) is
//! over, and any connection with the peer resets it. Must never dial or close sockets itself:
//! the transport acts on what the table decides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::conn::Conn;
use super::TcpConfig;
use crate::transport::TransportError;

/// Every peer this node has talked to, by node number.
pub(super) struct PeerTable {
    local: u32,
    peers: Mutex<HashMap<u32, Arc<PeerEntry>>>,
}

/// One peer: its connection in use and its backoff.
pub(super) struct PeerEntry {
    /// Held while dialing, so concurrent callers share one dial.
    dial: tokio::sync::Mutex<()>,
    state: Mutex<PeerState>,
}

#[derive(Default)]
struct PeerState {
    conn: Option<Arc<Conn>>,
    /// While set and in the future, calls fail without dialing.
    retry_at: Option<Instant>,
    /// The last wait, doubled by the next failure.
    last_wait: Option<Duration>,
}

impl PeerTable {
    pub(super) fn new(local: u32) -> Self {
        Self {
            local,
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn entry(&self, number: u32) -> Arc<PeerEntry> {
        let mut peers = self.peers.lock();
        Arc::clone(peers.entry(number).or_insert_with(|| {
            Arc::new(PeerEntry {
                dial: tokio::sync::Mutex::new(()),
                state: Mutex::new(PeerState::default()),
            })
        }))
    }

    /// Offers a new connection for its peer. Returns the connection now in use and the one to
    /// retire, if any: of two open connections the one dialed by the lower node number wins;
    /// a newer connection dialed by the same node replaces the older (the old one is stale).
    pub(super) fn register(&self, conn: Arc<Conn>) -> (Arc<Conn>, Option<Arc<Conn>>) {
        let entry = self.entry(conn.peer);
        let mut state = entry.state.lock();
        state.retry_at = None;
        state.last_wait = None;
        let preferred = self.local.min(conn.peer);
        let old = match state.conn.take() {
            Some(old) if !old.is_closed() => old,
            _ => {
                state.conn = Some(Arc::clone(&conn));
                return (conn, None);
            }
        };
        let keep_new = old.dialed_by == conn.dialed_by || conn.dialed_by == preferred;
        let (kept, retired) = if keep_new { (conn, old) } else { (old, conn) };
        state.conn = Some(Arc::clone(&kept));
        (kept, Some(retired))
    }

    /// Forgets `conn` if it is the peer's connection in use.
    pub(super) fn remove(&self, conn: &Arc<Conn>) {
        let entry = self.entry(conn.peer);
        let mut state = entry.state.lock();
        if state.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            state.conn = None;
        }
    }
}

impl PeerEntry {
    /// The open connection in use, if any.
    pub(super) fn live(&self) -> Option<Arc<Conn>> {
        self.state
            .lock()
            .conn
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Fails while the peer is backed off.
    pub(super) fn check_backoff(&self, addr: SocketAddr) -> Result<(), TransportError> {
        let state = self.state.lock();
        match state.retry_at {
            Some(at) if at > Instant::now() => Err(TransportError::Connection {
                addr,
                reason: format!(
                    "backing off after a failed dial, next attempt in {:?}",
                    at - Instant::now()
                ),
            }),
            _ => Ok(()),
        }
    }

    pub(super) async fn dial_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.dial.lock().await
    }

    pub(super) fn reset_backoff(&self) {
        let mut state = self.state.lock();
        state.retry_at = None;
        state.last_wait = None;
    }

    /// Records a failed dial; returns how long calls now fail fast.
    pub(super) fn back_off(&self, config: &TcpConfig) -> Duration {
        let mut state = self.state.lock();
        let wait = match state.last_wait {
            None => config.backoff_min,
            Some(last) => last.saturating_mul(2).min(config.backoff_max),
        };
        state.last_wait = Some(wait);
        state.retry_at = Some(Instant::now() + wait);
        wait
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::*;

    const LOCAL: u32 = 5;

    fn conn(id: u64, peer: u32, dialed_by: u32) -> Arc<Conn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        Conn::new(
            id,
            peer,
            addr,
            dialed_by,
            crate::wire::FrameCodec::default(),
            CancellationToken::new(),
        )
    }

    fn ids(outcome: (Arc<Conn>, Option<Arc<Conn>>)) -> (u64, Option<u64>) {
        (outcome.0.id, outcome.1.map(|c| c.id))
    }

    #[test]
    fn the_connection_dialed_by_the_lower_node_wins_whatever_the_order() {
        // Peer 9 is higher than LOCAL: LOCAL's own dial is preferred.
        let table = PeerTable::new(LOCAL);
        assert_eq!(ids(table.register(conn(1, 9, 9))), (1, None));
        assert_eq!(ids(table.register(conn(2, 9, LOCAL))), (2, Some(1)));
        let table = PeerTable::new(LOCAL);
        assert_eq!(ids(table.register(conn(2, 9, LOCAL))), (2, None));
        assert_eq!(ids(table.register(conn(1, 9, 9))), (2, Some(1)));
        // Peer 3 is lower: its dial is preferred.
        let table = PeerTable::new(LOCAL);
        assert_eq!(ids(table.register(conn(1, 3, LOCAL))), (1, None));
        assert_eq!(ids(table.register(conn(2, 3, 3))), (2, Some(1)));
        assert_eq!(table.entry(3).live().map(|c| c.id), Some(2));
    }

    #[test]
    fn a_newer_dial_from_the_same_node_replaces_the_old_one() {
        let table = PeerTable::new(LOCAL);
        table.register(conn(1, 9, 9));
        assert_eq!(ids(table.register(conn(2, 9, 9))), (2, Some(1)));
    }

    #[test]
    fn a_closed_connection_is_simply_replaced_and_removed_only_if_current() {
        let table = PeerTable::new(LOCAL);
        let first = conn(1, 9, LOCAL);
        table.register(Arc::clone(&first));
        first.close(TransportError::Closed);
        assert!(table.entry(9).live().is_none());
        assert_eq!(ids(table.register(conn(2, 9, 9))), (2, None));
        table.remove(&first);
        assert_eq!(table.entry(9).live().map(|c| c.id), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_maximum_and_resets_on_a_connection() {
        let config = TcpConfig::new(LOCAL, SocketAddr::from(([127, 0, 0, 1], 0)));
        let table = PeerTable::new(LOCAL);
        let entry = table.entry(9);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut waits = Vec::new();
        for _ in 0..10 {
            waits.push(entry.back_off(&config));
        }
        assert_eq!(waits[0], config.backoff_min);
        assert_eq!(waits[1], config.backoff_min * 2);
        assert_eq!(waits[9], config.backoff_max);
        assert!(entry.check_backoff(addr).is_err());
        tokio::time::advance(config.backoff_max).await;
        assert!(entry.check_backoff(addr).is_ok());
        entry.back_off(&config);
        assert!(entry.check_backoff(addr).is_err());
        table.register(conn(1, 9, 9));
        assert!(entry.check_backoff(addr).is_ok());
        assert_eq!(entry.back_off(&config), config.backoff_min);
    }
}
