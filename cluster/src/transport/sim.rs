//! The simulated in-process network: a [`Transport`] for deterministic tests.
//!
//! Owns [`SimNetwork`] (the nodes, their handlers and the faults in force) and [`SimTransport`]
//! (one node's view of it). A call goes straight to the target's [`Handler`] in the same
//! process, through the faults: lost requests or responses, duplicated requests, delays,
//! partitions and crashed nodes. Every random choice comes from one seeded generator and every
//! delay from tokio's clock, so a test under `#[tokio::test(start_paused = true)]` replays
//! exactly from its seed. Must never touch a socket or the wall clock.
//!
//! The handler of a delivered request runs in its own task, as on a real peer: a caller that
//! times out does not stop the write it sent, so "applied but the acknowledgement was lost"
//! happens here as it does in production.

mod faults;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use self::faults::{Faults, Plan};
use crate::coordinator::random::SeededRng;
use crate::rpc::{PeerRequest, PeerResponse, Stamped};
use crate::transport::{Handler, Peer, SharedRequest, Transport, TransportError, TransportStats};

/// Port of the made-up addresses of simulated nodes (they label errors, nothing listens).
const SIM_PORT: u16 = 17_000;

/// An in-process network of nodes. Cheap to clone: clones share the nodes and the faults.
pub struct SimNetwork<H: Handler> {
    shared: Arc<Mutex<State<H>>>,
}

impl<H: Handler> std::fmt::Debug for SimNetwork<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        let mut up: Vec<u32> = state
            .nodes
            .iter()
            .filter(|(_, node)| node.handler.is_some())
            .map(|(number, _)| *number)
            .collect();
        up.sort_unstable();
        f.debug_struct("SimNetwork")
            .field("up", &up)
            .field("faults", &state.faults)
            .finish()
    }
}

impl<H: Handler> Clone for SimNetwork<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct State<H> {
    rng: SeededRng,
    faults: Faults,
    nodes: HashMap<u32, Node<H>>,
}

struct Node<H> {
    /// `None` while the node is crashed.
    handler: Option<Arc<H>>,
    /// Bumped by every crash and restart, so a request or response in flight across one is
    /// known to have lost its connection.
    incarnation: u64,
}

/// What a call needs from the network once its fate is drawn.
struct Dispatch<H> {
    plan: Plan,
    handler: Arc<H>,
    incarnation: u64,
}

impl<H: Handler> SimNetwork<H> {
    /// An empty network whose random choices all come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            shared: Arc::new(Mutex::new(State {
                rng: SeededRng::new(seed),
                faults: Faults::default(),
                nodes: HashMap::new(),
            })),
        }
    }

    /// Adds (or replaces) the node numbered `number`, answering with `handler`. Returns the
    /// [`Peer`] to call it by.
    pub fn add_node(&self, number: u32, handler: Arc<H>) -> Peer {
        let mut state = self.shared.lock();
        let incarnation = state.nodes.get(&number).map_or(0, |n| n.incarnation + 1);
        state.nodes.insert(
            number,
            Node {
                handler: Some(handler),
                incarnation,
            },
        );
        Self::peer(number)
    }

    /// The [`Peer`] of node `number`. Its address is made up from the number (in the loopback
    /// range, port 17000): it only labels errors.
    pub fn peer(number: u32) -> Peer {
        let octets = number.to_be_bytes();
        Peer {
            number,
            addr: SocketAddr::from((
                Ipv4Addr::new(127, octets[1], octets[2], octets[3]),
                SIM_PORT,
            )),
        }
    }

    /// The transport node `number` calls others with.
    pub fn transport(&self, number: u32) -> SimTransport<H> {
        SimTransport {
            network: self.clone(),
            local: number,
            counters: Arc::default(),
        }
    }

    /// Each request, and independently each response, is lost with probability `rate`
    /// (clamped to `0.0..=1.0`); the caller then times out.
    pub fn set_drop_rate(&self, rate: f64) {
        self.shared.lock().faults.drop_rate = rate.clamp(0.0, 1.0);
    }

    /// Each delivered request reaches the handler a second time with probability `rate`; the
    /// caller still gets one response.
    pub fn set_duplicate_rate(&self, rate: f64) {
        self.shared.lock().faults.duplicate_rate = rate.clamp(0.0, 1.0);
    }

    /// Each request and each response takes between `min` and `max` (uniform) to arrive.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        self.shared.lock().faults.delay = (min, max.max(min));
    }

    /// Cuts the link between `a` and `b` both ways: messages across it are lost.
    pub fn partition(&self, a: u32, b: u32) {
        self.shared.lock().faults.cut(a, b);
    }

    /// Cuts every link of node `n`, including to nodes added later.
    pub fn isolate(&self, n: u32) {
        self.shared.lock().faults.isolated.insert(n);
    }

    /// Removes every partition and isolation (rates and delays stay).
    pub fn heal(&self) {
        self.shared.lock().faults.heal();
    }

    /// Crashes node `n`: calls to it fail with [`TransportError::Connection`], calls in flight
    /// to it lose their connection, and its own calls fail with [`TransportError::Closed`].
    pub fn crash(&self, n: u32) {
        if let Some(node) = self.shared.lock().nodes.get_mut(&n) {
            node.handler = None;
            node.incarnation += 1;
        }
    }

    /// Brings node `n` back with `handler` (its state after the restart).
    pub fn restart(&self, n: u32, handler: Arc<H>) {
        self.add_node(n, handler);
    }

    /// Whether node `n` exists and is not crashed.
    pub fn is_up(&self, n: u32) -> bool {
        self.shared
            .lock()
            .nodes
            .get(&n)
            .is_some_and(|node| node.handler.is_some())
    }

    /// Draws the fate of a call from `from` to `peer`, or refuses it at once.
    fn dispatch(&self, from: u32, peer: &Peer) -> Result<Dispatch<H>, TransportError> {
        let mut state = self.shared.lock();
        if state.nodes.get(&from).is_none_or(|n| n.handler.is_none()) {
            return Err(TransportError::Closed);
        }
        let (handler, incarnation) = match state.nodes.get(&peer.number) {
            Some(Node {
                handler: Some(handler),
                incarnation,
            }) => (Arc::clone(handler), *incarnation),
            _ => return Err(down(peer)),
        };
        let State { rng, faults, .. } = &mut *state;
        Ok(Dispatch {
            plan: faults.plan(rng),
            handler,
            incarnation,
        })
    }

    /// Whether a message between `caller` and `target` gets through now (either way), and
    /// whether `target` is still the incarnation the call started with.
    fn link(&self, caller: u32, target: u32, incarnation: u64) -> Link {
        let state = self.shared.lock();
        match state.nodes.get(&target) {
            Some(node) if node.incarnation == incarnation && node.handler.is_some() => {
                if state.faults.is_cut(caller, target) {
                    Link::Cut
                } else {
                    Link::Up
                }
            }
            _ => Link::Broken,
        }
    }
}

enum Link {
    Up,
    Cut,
    Broken,
}

fn down(peer: &Peer) -> TransportError {
    TransportError::Connection {
        addr: peer.addr,
        reason: format!("node {} is down", peer.number),
    }
}

/// One node's handle on a [`SimNetwork`]. Cheap to clone.
pub struct SimTransport<H: Handler> {
    network: SimNetwork<H>,
    local: u32,
    /// Calls made and calls timed out, shared by the clones.
    counters: Arc<SimCounters>,
}

#[derive(Debug, Default)]
struct SimCounters {
    calls: AtomicU64,
    timeouts: AtomicU64,
}

impl<H: Handler> std::fmt::Debug for SimTransport<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTransport")
            .field("local", &self.local)
            .finish()
    }
}

impl<H: Handler> Clone for SimTransport<H> {
    fn clone(&self) -> Self {
        Self {
            network: self.network.clone(),
            local: self.local,
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<H: Handler> SimTransport<H> {
    /// The number of the node this transport sends from.
    pub fn local(&self) -> u32 {
        self.local
    }

    /// The call without its deadline: resolves when the response arrives, never when a
    /// message is lost (the deadline in [`Transport::call`] turns that into a timeout).
    async fn deliver(
        &self,
        peer: Peer,
        request: Stamped<PeerRequest>,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        let Dispatch {
            plan,
            handler,
            incarnation,
        } = self.network.dispatch(self.local, &peer)?;
        tokio::time::sleep(plan.request_delay).await;
        match self.network.link(self.local, peer.number, incarnation) {
            Link::Broken => return Err(down(&peer)),
            Link::Cut => return std::future::pending().await,
            Link::Up if plan.request_lost => return std::future::pending().await,
            Link::Up => {}
        }
        if plan.duplicated {
            let handler = Arc::clone(&handler);
            let (from, copy) = (self.local, request.clone());
            tokio::spawn(async move {
                handler.handle(from, copy).await;
            });
        }
        let (tx, rx) = oneshot::channel();
        let from = self.local;
        tokio::spawn(async move {
            let response = handler.handle(from, request).await;
            // The caller may have given up; then nobody wants the response.
            let _ = tx.send(response);
        });
        let response = rx.await.map_err(|_| TransportError::Connection {
            addr: peer.addr,
            reason: format!("node {} failed while handling the request", peer.number),
        })?;
        tokio::time::sleep(plan.response_delay).await;
        match self.network.link(self.local, peer.number, incarnation) {
            Link::Broken => Err(down(&peer)),
            Link::Cut => std::future::pending().await,
            Link::Up if plan.response_lost => std::future::pending().await,
            Link::Up => Ok(response),
        }
    }
}

impl<H: Handler> Transport for SimTransport<H> {
    async fn call(
        &self,
        peer: Peer,
        request: Stamped<PeerRequest>,
        timeout: Duration,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.deliver(peer, request)).await {
            Ok(result) => result,
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(TransportError::Timeout(timeout))
            }
        }
    }

    async fn call_shared(
        &self,
        peer: Peer,
        request: Arc<SharedRequest>,
    ) -> Result<Stamped<PeerResponse>, TransportError> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        self.deliver(peer, request.stamped().clone()).await
    }

    /// Calls and timeouts; a simulated network has no connections or frames to count.
    fn stats(&self) -> TransportStats {
        TransportStats {
            calls: self.counters.calls.load(Ordering::Relaxed),
            timeouts: self.counters.timeouts.load(Ordering::Relaxed),
            ..TransportStats::default()
        }
    }
}
