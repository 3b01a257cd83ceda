//! What a node knows of the cluster's members: the shared vocabulary of membership, the ring
//! and the coordinator.
//!
//! Owns [`NodeStatus`], [`Member`] (one node as gossip describes it, with the failure
//! detector's verdict) and [`View`] (every member this node knows, itself included). The
//! membership layer produces views; the coordinator derives its [`Ring`](crate::ring::Ring)
//! and its live replicas from them; tests build them by hand. Must never gossip, detect
//! failures or place slots itself: it is plain data.

use std::fmt;
use std::net::SocketAddr;

/// Where a node is in its life in the ring (Cassandra's gossip states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeStatus {
    /// Announced with tokens but not yet serving its ranges.
    Joining,
    /// Owns its tokens and serves them.
    Normal,
    /// Handing its ranges to others before leaving.
    Leaving,
    /// Gone from the ring; kept so others forget it deliberately.
    Left,
}

impl NodeStatus {
    /// The status as gossiped and shown to operators (`normal`, `joining`, ...).
    pub fn name(self) -> &'static str {
        match self {
            NodeStatus::Joining => "joining",
            NodeStatus::Normal => "normal",
            NodeStatus::Leaving => "leaving",
            NodeStatus::Left => "left",
        }
    }

    /// Parses [`NodeStatus::name`].
    pub fn parse(name: &str) -> Option<NodeStatus> {
        [
            NodeStatus::Joining,
            NodeStatus::Normal,
            NodeStatus::Leaving,
            NodeStatus::Left,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Whether a node in this status owns its tokens in the ring (`Normal` and `Leaving`:
    /// a leaving node serves until its ranges have moved).
    pub fn owns_tokens(self) -> bool {
        matches!(self, NodeStatus::Normal | NodeStatus::Leaving)
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One node as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node's id (40 hex characters unless configured).
    pub node_id: String,
    /// Its number, the tie-break in its versions ([`node_number`](crate::node_id::node_number)
    /// of `node_id`).
    pub number: u32,
    /// Where Redis clients reach it.
    pub client_addr: SocketAddr,
    /// Where peers reach it (internal TCP transport and gossip share this port).
    pub bus_addr: SocketAddr,
    /// Its datacenter.
    pub dc: String,
    /// Its rack.
    pub rack: String,
    /// Its ring tokens: slots at which its vnodes sit, sorted, without duplicates.
    pub tokens: Vec<u16>,
    /// Its status.
    pub status: NodeStatus,
    /// Grows on every restart of the node; a higher generation replaces an older one's state.
    pub generation: u64,
    /// The failure detector's verdict (always true for the local node).
    pub alive: bool,
    /// Bytes of live data on disk, as it last published them (0 when unknown).
    pub load_bytes: u64,
}

/// Every member this node knows, itself included, sorted by `node_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The members, sorted by `node_id`.
    pub members: Vec<Member>,
    /// Index of this node in `members`.
    pub local: usize,
}

impl View {
    /// A view of `members` (any order) in which `local_id` is this node.
    ///
    /// Returns `None` when `local_id` is not among them.
    pub fn new(mut members: Vec<Member>, local_id: &str) -> Option<View> {
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        members.dedup_by(|a, b| a.node_id == b.node_id);
        let local = members.iter().position(|m| m.node_id == local_id)?;
        Some(View { members, local })
    }

    /// This node.
    pub fn local(&self) -> &Member {
        &self.members[self.local]
    }

    /// The member numbered `number`, if known.
    pub fn by_number(&self, number: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.number == number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member {
            node_id: id.to_string(),
            number: crate::node_id::node_number(id),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
            bus_addr: SocketAddr::from(([127, 0, 0, 1], 16379)),
            dc: "dc1".into(),
            rack: "rack1".into(),
            tokens: vec![1, 2],
            status: NodeStatus::Normal,
            generation: 1,
            alive: true,
            load_bytes: 0,
        }
    }

    #[test]
    fn a_view_is_sorted_and_finds_itself() {
        let view = View::new(vec![member("c"), member("a"), member("b")], "b").expect("view");
        let ids: Vec<_> = view.members.iter().map(|m| m.node_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(view.local().node_id, "b");
        assert!(View::new(vec![member("a")], "z").is_none());
        let number = crate::node_id::node_number("c");
        assert_eq!(
            view.by_number(number).map(|m| m.node_id.as_str()),
            Some("c")
        );
    }

    #[test]
    fn statuses_round_trip_their_names() {
        for s in [
            NodeStatus::Joining,
            NodeStatus::Normal,
            NodeStatus::Leaving,
            NodeStatus::Left,
        ] {
            assert_eq!(NodeStatus::parse(s.name()), Some(s));
        }
        assert_eq!(NodeStatus::parse("up"), None);
        assert!(NodeStatus::Normal.owns_tokens());
        assert!(!NodeStatus::Joining.owns_tokens());
    }
}
