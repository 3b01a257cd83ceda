//! Gossip membership and failure detection, over `chitchat` (DESIGN.md, "Membership").
//!
//! Owns [`Membership`]: it runs chitchat (Scuttlebutt anti-entropy plus a phi-accrual failure
//! detector, over UDP on the bus port), publishes this node's [`Member`] in its chitchat state
//! and turns every node's state into a [`View`] on a watch channel. The parts:
//!
//! - `config`: [`MembershipConfig`] and [`FailureConfig`], and their chitchat translation.
//! - `state`: the gossiped keys and their encodings (a [`Member`] to key-values and back).
//! - `assemble`: which members a view holds (newest generation, no `Left`, unique numbers).
//! - `refresh`: reads chitchat and republishes the view when it changes.
//! - `clocks`: each node's hybrid logical clock, gossiped beside (not in) its member, so a
//!   restarted node can start its clock above the versions it issued before.
//!
//! Must never decide placement or talk the internal protocol: the ring and the coordinator
//! read views; the TCP transport carries requests.

mod assemble;
mod clocks;
mod config;
mod refresh;
mod state;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatHandle};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error};

pub use self::config::{FailureConfig, MembershipConfig, DEFAULT_CLUSTER_ID};
use self::refresh::Refresher;
pub use self::state::MAX_TOKENS;
use self::state::{encode, encode_tokens, KEY_HALTED, KEY_LOAD, KEY_STATUS, KEY_TOKENS};
use crate::view::{Member, NodeStatus, View};

/// Why membership could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// Chitchat could not start (most often: the UDP address is taken or not local).
    #[error("cannot start gossip on {addr}: {source}")]
    Start {
        /// The UDP address it tried to bind.
        addr: SocketAddr,
        /// Chitchat's reason.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node announces more tokens than fit in one gossiped value.
    #[error("a node may announce at most {max} tokens, not {count}")]
    TooManyTokens {
        /// Tokens asked for (after removing duplicates).
        count: usize,
        /// The limit, [`MAX_TOKENS`].
        max: usize,
    },
}

/// This node's membership in the cluster: its gossip server and the views it produces.
///
/// Dropping it stops gossip abruptly (peers see a crash); [`Membership::shutdown`] leaves
/// cleanly.
pub struct Membership {
    refresher: Arc<Refresher>,
    /// `None` only once [`Membership::shutdown`] took it.
    handle: Option<ChitchatHandle>,
    refresh_task: JoinHandle<()>,
    gossip_interval: Duration,
}

impl Membership {
    /// Starts gossiping as `config.local`, with its seeds, and publishes a first view (this
    /// node alone, until peers are heard from).
    ///
    /// # Errors
    ///
    /// [`MembershipError::Start`] when the UDP socket cannot be bound;
    /// [`MembershipError::TooManyTokens`] when the node announces more than
    /// [`MAX_TOKENS`] tokens.
    pub async fn start(config: MembershipConfig) -> Result<Membership, MembershipError> {
        let mut local = config.local.clone();
        local.alive = true;
        local.tokens = normalize_tokens(std::mem::take(&mut local.tokens))?;
        let handle = spawn_chitchat(config.chitchat(), encode(&local), &UdpTransport)
            .await
            .map_err(|source| MembershipError::Start {
                addr: config.gossip_addr,
                source: source.into(),
            })?;
        let refresher = Arc::new(Refresher::new(handle.chitchat(), local));
        refresher.refresh().await;
        let refresh_task = tokio::spawn(refresher.clone().run(config.gossip_interval));
        Ok(Membership {
            refresher,
            handle: Some(handle),
            refresh_task,
            gossip_interval: config.gossip_interval,
        })
    }

    /// A receiver of every new view. Each view contains this node (alive) and every other
    /// node gossip knows that has not left, `alive` as the failure detector says.
    pub fn view(&self) -> watch::Receiver<Arc<View>> {
        self.refresher.views.subscribe()
    }

    /// The latest view.
    pub fn current(&self) -> Arc<View> {
        self.refresher.views.borrow().clone()
    }

    /// Announces a new status for this node.
    pub async fn set_status(&self, status: NodeStatus) {
        self.publish(KEY_STATUS, status.name().to_string(), |m| m.status = status)
            .await;
    }

    /// Announces how many bytes of live data this node holds. Cheap when unchanged.
    pub async fn set_load(&self, load_bytes: u64) {
        self.publish(KEY_LOAD, load_bytes.to_string(), |m| {
            m.load_bytes = load_bytes
        })
        .await;
    }

    /// Announces this node's ring tokens (sorted and deduplicated here).
    ///
    /// More than [`MAX_TOKENS`] tokens cannot be gossiped: the call logs an error and
    /// leaves the announced tokens as they were.
    pub async fn set_tokens(&self, tokens: Vec<u16>) {
        let tokens = match normalize_tokens(tokens) {
            Ok(tokens) => tokens,
            Err(reason) => {
                error!(%reason, "tokens not announced");
                return;
            }
        };
        let encoded = encode_tokens(&tokens);
        self.publish(KEY_TOKENS, encoded, |m| m.tokens = tokens)
            .await;
    }

    /// Leaves the gossip cleanly: marks this node halted in its state, gossips that to the
    /// live peers (so they show it down at once instead of after the failure detector's
    /// timeout), then stops. The node's status is unchanged: a restart is not a departure.
    pub async fn shutdown(mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        let peers: Vec<SocketAddr> = handle
            .with_chitchat(|chitchat| {
                chitchat.self_node_state().set(KEY_HALTED, "1");
                let me = chitchat.self_chitchat_id().clone();
                chitchat
                    .live_nodes()
                    .filter(|id| **id != me)
                    .map(|id| id.gossip_advertise_addr)
                    .collect()
            })
            .await;
        for peer in peers {
            if let Err(reason) = handle.gossip(peer) {
                debug!(%peer, %reason, "could not announce the shutdown");
            }
        }
        // A handshake is three datagrams; the peer's answer carries its digest, and our reply
        // to it carries the halted mark. One gossip interval leaves room for that and for one
        // regular round, which repeats it. Peers that miss it detect the silence instead.
        tokio::time::sleep(self.gossip_interval.min(Duration::from_secs(1))).await;
        if let Err(reason) = handle.shutdown().await {
            debug!(%reason, "gossip server stopped with an error");
        }
    }

    /// Sets `key` in this node's chitchat state and `apply`s the same change to the local
    /// member, then republishes the view.
    async fn publish(&self, key: &str, value: String, apply: impl FnOnce(&mut Member)) {
        {
            // Both under the chitchat lock, so a concurrent refresh never sees one without
            // the other for long; the local member's lock is only held for the assignment.
            let mut chitchat = self.refresher.chitchat.lock().await;
            chitchat.self_node_state().set(key, value);
            apply(&mut self.refresher.local.lock());
        }
        self.refresher.refresh().await;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        // The refresh loop holds the chitchat state, so it would outlive the node otherwise.
        // Chitchat's server stops by itself when its handle (if still here) drops.
        self.refresh_task.abort();
    }
}

/// `tokens` sorted and deduplicated, as [`Member::tokens`] promises.
fn normalize_tokens(mut tokens: Vec<u16>) -> Result<Vec<u16>, MembershipError> {
    tokens.sort_unstable();
    tokens.dedup();
    if tokens.len() > MAX_TOKENS {
        return Err(MembershipError::TooManyTokens {
            count: tokens.len(),
            max: MAX_TOKENS,
        });
    }
    Ok(tokens)
}
