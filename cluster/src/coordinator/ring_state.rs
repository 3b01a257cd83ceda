//! The coordinator's picture of the ring at one moment.
//!
//! Owns [`RingState`]: a membership [`View`], the [`Ring`] derived from it and the
//! [`Topology`] shown to clients, built together so one request sees one consistent ring
//! (the coordinator swaps the whole state when membership changes). Must never change after
//! it is built, and never talk to peers.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::{Topology, TopologyNode};
use crate::ring::{Replication, Ring};
use crate::slot::SLOTS;
use crate::view::{Member, NodeStatus, View};

/// A view, its ring and its topology.
pub struct RingState {
    /// The members.
    pub view: Arc<View>,
    /// Replica placement over `view.members`.
    pub ring: Ring,
    /// What `CLUSTER SLOTS` and friends show.
    pub topology: Arc<Topology>,
}

impl RingState {
    /// The state for `view` under `replication`; `epoch` numbers it for clients.
    pub fn new(view: Arc<View>, replication: &Replication, epoch: u64) -> RingState {
        let ring = Ring::from_view(&view, replication);
        let nodes = view
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| TopologyNode {
                id: m.node_id.clone(),
                client_addr: m.client_addr,
                bus_port: m.bus_addr.port(),
                dc: m.dc.clone(),
                rack: m.rack.clone(),
                alive: m.alive,
                status: m.status.name(),
                load_bytes: m.load_bytes,
                primary_slots: ring.primary_slots(i),
                ownership: ring.ownership(i),
            })
            .collect();
        let topology = Arc::new(Topology {
            nodes,
            myself: view.local,
            ranges: ring.slot_ranges(),
            replication_factor: replication.total(),
            epoch,
        });
        RingState {
            view,
            ring,
            topology,
        }
    }

    /// The member at `index` of the view.
    pub fn member(&self, index: usize) -> &Member {
        &self.view.members[index]
    }

    /// Whether `index` is this node.
    pub fn is_local(&self, index: usize) -> bool {
        index == self.view.local
    }
}

/// The view of a cluster of one: this node, alive, owning every slot with one token.
pub fn single_node_view(node_id: &str, number: u32, client_addr: SocketAddr) -> View {
    let member = Member {
        node_id: node_id.to_string(),
        number,
        client_addr,
        bus_addr: SocketAddr::new(client_addr.ip(), client_addr.port().wrapping_add(10_000)),
        dc: "dc1".to_string(),
        rack: "rack1".to_string(),
        tokens: vec![SLOTS - 1],
        status: NodeStatus::Normal,
        generation: 1,
        alive: true,
        load_bytes: 0,
    };
    View {
        members: vec![member],
        local: 0,
    }
}
