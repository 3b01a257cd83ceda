//! Turning what gossip says about the peers into one [`View`].
//!
//! Owns [`assemble`]: the rules that pick which members a view holds (the newest generation
//! of each node, no `Left` node, one node per number, always the local node). Pure: must
//! never touch chitchat, log, or decide liveness (the caller sets `alive` from the failure
//! detector).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use crate::view::{Member, NodeStatus, View};

/// A member kept out of the view because its number is already taken.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Collision {
    /// The excluded node.
    pub node_id: String,
    /// The number it claims.
    pub number: u32,
    /// The node that keeps the number.
    pub kept: String,
}

/// A view and the members it had to leave out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    /// The view.
    pub view: View,
    /// Members excluded because their number collides with a kept member's.
    pub collisions: Vec<Collision>,
}

/// The view of `local` given every peer generation gossip knows (`alive` already set).
///
/// - Entries naming the local node are ignored: `local` is the truth about itself.
/// - Of several generations of one node, only the highest counts (a restart replaces the
///   old state; the old generation lingers in chitchat until the failure detector forgets it).
/// - A node whose newest generation is `Left` is not a member.
/// - Numbers are the versions' tie-break, so two members must never share one: the local
///   node keeps its own number; otherwise the node with the lowest id keeps it, and the others
///   are reported in [`Assembled::collisions`].
pub fn assemble(local: &Member, peers: impl IntoIterator<Item = Member>) -> Assembled {
    let mut newest: BTreeMap<String, Member> = BTreeMap::new();
    for peer in peers {
        if peer.node_id == local.node_id {
            continue;
        }
        match newest.entry(peer.node_id.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(peer);
            }
            Entry::Occupied(mut slot) => {
                if peer.generation > slot.get().generation {
                    slot.insert(peer);
                }
            }
        }
    }

    let mut owners: BTreeMap<u32, String> = BTreeMap::new();
    owners.insert(local.number, local.node_id.clone());
    let mut collisions = Vec::new();
    let mut members = vec![local.clone()];
    // `newest` iterates in id order, so the lowest id claims a number first.
    for member in newest.into_values() {
        if member.status == NodeStatus::Left {
            continue;
        }
        match owners.entry(member.number) {
            Entry::Vacant(slot) => {
                slot.insert(member.node_id.clone());
                members.push(member);
            }
            Entry::Occupied(slot) => collisions.push(Collision {
                node_id: member.node_id,
                number: member.number,
                kept: slot.get().clone(),
            }),
        }
    }

    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    // Ids are unique in `members` (one entry per id in `newest`, and the local id was skipped
    // there), so the local node is found exactly once.
    let local_index = members
        .iter()
        .position(|m| m.node_id == local.node_id)
        .unwrap_or(0);
    Assembled {
        view: View {
            members,
            local: local_index,
        },
        collisions,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn member(id: &str, number: u32, generation: u64) -> Member {
        Member {
            node_id: id.to_string(),
            number,
            client_addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
            bus_addr: SocketAddr::from(([127, 0, 0, 1], 16379)),
            dc: "dc1".into(),
            rack: "r1".into(),
            tokens: vec![u16::try_from(number % 16384).unwrap_or(0)],
            status: NodeStatus::Normal,
            generation,
            alive: true,
            load_bytes: 0,
        }
    }

    fn ids(view: &View) -> Vec<&str> {
        view.members.iter().map(|m| m.node_id.as_str()).collect()
    }

    #[test]
    fn the_local_node_is_always_there_and_found() {
        let local = member("m", 1, 5);
        let out = assemble(&local, [member("z", 2, 1), member("a", 3, 1)]);
        assert_eq!(ids(&out.view), ["a", "m", "z"]);
        assert_eq!(out.view.local(), &local);
        let alone = assemble(&local, []);
        assert_eq!(ids(&alone.view), ["m"]);
        assert!(alone.collisions.is_empty());
    }

    #[test]
    fn gossip_about_the_local_node_is_ignored() {
        let local = member("m", 1, 5);
        let stale = Member {
            status: NodeStatus::Left,
            ..member("m", 1, 9)
        };
        let out = assemble(&local, [stale]);
        assert_eq!(out.view.members, vec![local]);
    }

    #[test]
    fn the_highest_generation_replaces_older_ones() {
        let local = member("m", 1, 5);
        let old = Member {
            alive: false,
            tokens: vec![1],
            ..member("b", 2, 10)
        };
        let new = Member {
            alive: true,
            tokens: vec![2],
            ..member("b", 2, 11)
        };
        for peers in [vec![old.clone(), new.clone()], vec![new.clone(), old]] {
            let out = assemble(&local, peers);
            assert_eq!(out.view.members.len(), 2);
            assert_eq!(out.view.by_number(2), Some(&new));
        }
    }

    #[test]
    fn left_nodes_are_not_members_unless_they_come_back() {
        let local = member("m", 1, 5);
        let left = Member {
            status: NodeStatus::Left,
            ..member("b", 2, 10)
        };
        assert_eq!(ids(&assemble(&local, [left.clone()]).view), ["m"]);
        let back = Member {
            status: NodeStatus::Joining,
            ..member("b", 2, 11)
        };
        assert_eq!(ids(&assemble(&local, [left, back]).view), ["b", "m"]);
    }

    #[test]
    fn a_taken_number_keeps_the_lowest_id_and_reports_the_rest() {
        let local = member("m", 1, 5);
        let out = assemble(
            &local,
            [member("d", 7, 1), member("c", 7, 1), member("e", 7, 1)],
        );
        assert_eq!(ids(&out.view), ["c", "m"]);
        let excluded: Vec<_> = out.collisions.iter().map(|c| c.node_id.as_str()).collect();
        assert_eq!(excluded, ["d", "e"]);
        assert!(out
            .collisions
            .iter()
            .all(|c| c.kept == "c" && c.number == 7));
    }

    #[test]
    fn the_local_node_keeps_its_number_even_against_a_lower_id() {
        let local = member("m", 1, 5);
        let out = assemble(&local, [member("a", 1, 1)]);
        assert_eq!(ids(&out.view), ["m"]);
        assert_eq!(
            out.collisions,
            vec![Collision {
                node_id: "a".into(),
                number: 1,
                kept: "m".into()
            }]
        );
    }
}
