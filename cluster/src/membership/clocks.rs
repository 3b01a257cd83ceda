//! Each node's hybrid logical clock, gossiped beside its member.
//!
//! Owns [`Membership::set_hlc`] and [`Membership::peer_clocks`]: a node publishes its clock
//! under [`KEY_HLC`] in its own chitchat state and reads the clocks its peers published. A
//! peer's clock is at or above every version that peer issued or received, so a node that
//! moves past its peers' clocks after a restart issues versions above the ones it issued
//! before, even for keys only peers store. One decimal `u64` per node, never part of a
//! [`View`](crate::view::View) (views would then change every second). Must never apply or
//! bound a clock: how far a peer may move ours is the coordinator's decision.

use std::collections::BTreeMap;

use chitchat::{ChitchatId, NodeState};
use tracing::debug;

use super::state::KEY_HLC;
use super::Membership;

impl Membership {
    /// Announces this node's clock ([`Hlc::current`](crate::hlc::Hlc::current)). Cheap, and
    /// an unchanged value is not gossiped again.
    pub async fn set_hlc(&self, hlc: u64) {
        let mut chitchat = self.refresher.chitchat.lock().await;
        chitchat.self_node_state().set(KEY_HLC, hlc.to_string());
    }

    /// The clocks other nodes last announced, one per node state gossip holds (a restarted
    /// peer's earlier generations and down peers included: what they announced is still a
    /// floor of the versions they saw). This node's own states are left out.
    pub async fn peer_clocks(&self) -> Vec<u64> {
        let local_id = self.refresher.local.lock().node_id.clone();
        let chitchat = self.refresher.chitchat.lock().await;
        read_clocks(chitchat.node_states(), &local_id)
    }
}

/// The parseable [`KEY_HLC`] values of every state in `states` not of node `local_id`.
fn read_clocks(states: &BTreeMap<ChitchatId, NodeState>, local_id: &str) -> Vec<u64> {
    states
        .iter()
        .filter(|(id, _)| &*id.node_id != local_id)
        .filter_map(|(id, state)| {
            let text = state.get(KEY_HLC)?;
            match text.parse() {
                Ok(hlc) => Some(hlc),
                Err(_) => {
                    debug!(node = ?id, value = %text, "skipping a peer's malformed clock");
                    None
                }
            }
        })
        .collect()
}
