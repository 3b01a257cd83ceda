//! Keeping the published [`View`] in step with chitchat.
//!
//! Owns [`Refresher`]: it holds the local member (the truth about this node), reads every
//! peer's state and the failure detector's live set out of chitchat, assembles a view and
//! publishes it on a watch channel when it differs from the last one. Its loop wakes on
//! chitchat's live-node watcher (a node up, down, or changing its state) and on every gossip
//! interval (which catches what that watcher misses: state changes of down nodes, and nodes
//! forgotten after the dead grace period). Must never hold the chitchat lock across anything
//! but reading or writing that state.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chitchat::{Chitchat, ChitchatId, NodeState};
use tokio::sync::{watch, Mutex};
use tokio::time::MissedTickBehavior;
use tracing::{debug, error};

use super::assemble::{assemble, Collision};
use super::state::{decode, KEY_HALTED};
use crate::view::{Member, View};

/// Rebuilds and publishes the view.
pub(crate) struct Refresher {
    /// The gossip state, shared with chitchat's server task.
    pub(crate) chitchat: Arc<Mutex<Chitchat>>,
    /// This node as it announces itself. A sync mutex: it is only held to copy or change the
    /// member, never across an await.
    pub(crate) local: parking_lot::Mutex<Member>,
    /// Where views are published.
    pub(crate) views: watch::Sender<Arc<View>>,
    /// Collisions already logged, so a lasting one is logged once, not every interval.
    reported: parking_lot::Mutex<BTreeSet<Collision>>,
    /// Serializes refreshes: one that read older state must never publish after one that
    /// read newer state.
    refreshing: Mutex<()>,
}

impl Refresher {
    /// A refresher for `local` over `chitchat`, with the view of `local` alone published.
    pub(crate) fn new(chitchat: Arc<Mutex<Chitchat>>, local: Member) -> Refresher {
        let alone = assemble(&local, []).view;
        let (views, _) = watch::channel(Arc::new(alone));
        Refresher {
            chitchat,
            local: parking_lot::Mutex::new(local),
            views,
            reported: parking_lot::Mutex::new(BTreeSet::new()),
            refreshing: Mutex::new(()),
        }
    }

    /// Rebuilds the view from chitchat's current state and publishes it if it changed.
    pub(crate) async fn refresh(&self) {
        let _serial = self.refreshing.lock().await;
        let local = self.local.lock().clone();
        let peers = {
            let chitchat = self.chitchat.lock().await;
            read_peers(&chitchat, &local.node_id)
        };
        let assembled = assemble(&local, peers);
        self.report(&assembled.collisions);
        let view = assembled.view;
        self.views.send_if_modified(|current| {
            if **current == view {
                false
            } else {
                *current = Arc::new(view);
                true
            }
        });
    }

    /// Refreshes whenever chitchat's live set changes and every `interval`, until aborted.
    pub(crate) async fn run(self: Arc<Self>, interval: Duration) {
        let mut live = self.chitchat.lock().await.live_nodes_watcher();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = live.changed() => {
                    if changed.is_err() {
                        // Chitchat is gone; only the interval can still bring news (none).
                        return;
                    }
                }
                _ = tick.tick() => {}
            }
            self.refresh().await;
        }
    }

    /// Logs collisions not logged yet, and forgets those that ended (so a recurrence is
    /// logged again).
    fn report(&self, collisions: &[Collision]) {
        let local_id = self.local.lock().node_id.clone();
        let current: BTreeSet<Collision> = collisions.iter().cloned().collect();
        let mut reported = self.reported.lock();
        for c in current.difference(&reported) {
            if c.kept == local_id {
                error!(
                    node = %c.node_id, number = c.number,
                    "a peer claims this node's number; it is excluded from the view and must not join"
                );
            } else {
                error!(
                    node = %c.node_id, number = c.number, kept = %c.kept,
                    "a node's number is already taken; it is excluded from the view"
                );
            }
        }
        *reported = current;
    }
}

/// Every decodable peer generation in `chitchat`, with `alive` from the failure detector
/// (and false once the peer announced a clean shutdown).
fn read_peers(chitchat: &Chitchat, local_id: &str) -> Vec<Member> {
    let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
    read_states(chitchat.node_states(), &live, local_id)
}

/// [`read_peers`] over the parts it reads.
fn read_states(
    states: &BTreeMap<ChitchatId, NodeState>,
    live: &HashSet<&ChitchatId>,
    local_id: &str,
) -> Vec<Member> {
    states
        .iter()
        .filter(|(id, _)| &*id.node_id != local_id)
        .filter_map(|(id, state)| {
            match decode(&id.node_id, id.generation_id, |key| state.get(key)) {
                Ok(mut member) => {
                    member.alive = live.contains(id) && state.get(KEY_HALTED).is_none();
                    Some(member)
                }
                Err(reason) => {
                    debug!(node = ?id, %reason, "skipping a peer whose gossiped state is incomplete or malformed");
                    None
                }
            }
        })
        .collect()
}
