//! Replica placement: the ring's token order and the rack- and datacenter-aware walk that
//! picks a slot's replicas.
//!
//! Owns [`Layout`] (the token-owning nodes, their racks and replica groups, the tokens in ring
//! order) and [`Walker`] (one walk from a token, with reused scratch space). Must never look at
//! liveness or load: placement depends on tokens, racks, datacenters and the replication only.

use std::collections::HashMap;

use crate::ring::Replication;
use crate::slot::SLOTS;
use crate::view::View;

/// One token-owning node, as placement sees it.
#[derive(Debug)]
struct Node {
    /// Index in the view's members.
    member: usize,
    /// The replica group it counts towards (its datacenter, or the one group of a ring
    /// without per-datacenter factors); `None` for a datacenter that holds no replicas.
    group: Option<usize>,
    /// Its rack, unique across datacenters (a `(dc, rack)` pair).
    rack: usize,
}

/// A set of nodes that must hold a given number of a slot's replicas, on distinct racks first.
#[derive(Debug)]
struct Group {
    /// Replicas it holds per slot: its factor, capped at its nodes.
    quota: usize,
    /// Distinct racks among its nodes.
    racks: usize,
}

/// The ring's nodes and tokens, ready to walk.
#[derive(Debug)]
pub(super) struct Layout {
    nodes: Vec<Node>,
    groups: Vec<Group>,
    racks: usize,
    /// `(token, node)` in ring order: by token, then node number (the lower number owns a
    /// token two nodes share), then node index.
    positions: Vec<(u16, usize)>,
}

impl Layout {
    /// The layout of `view`'s token-owning members under `replication`.
    pub(super) fn new(view: &View, replication: &Replication) -> Layout {
        let per_dc = !replication.per_dc.is_empty();
        let group_of_dc: HashMap<&str, usize> = replication
            .per_dc
            .iter()
            .filter(|(_, &n)| n > 0)
            .enumerate()
            .map(|(i, (dc, _))| (dc.as_str(), i))
            .collect();
        let mut groups: Vec<Group> = if per_dc {
            replication
                .per_dc
                .values()
                .filter(|&&n| n > 0)
                .map(|&quota| Group { quota, racks: 0 })
                .collect()
        } else {
            vec![Group {
                quota: replication.factor,
                racks: 0,
            }]
        };
        let mut rack_ids: HashMap<(&str, &str), usize> = HashMap::new();
        let mut group_sizes = vec![0usize; groups.len()];
        let mut group_racks: Vec<Vec<bool>> = vec![Vec::new(); groups.len()];
        let mut nodes = Vec::new();
        let mut sortable: Vec<(u16, u32, usize)> = Vec::new();
        for (member, m) in view.members.iter().enumerate() {
            if !m.status.owns_tokens() {
                continue;
            }
            let tokens = m.tokens.iter().copied().filter(|&t| t < SLOTS);
            let node = nodes.len();
            let before = sortable.len();
            sortable.extend(tokens.map(|t| (t, m.number, node)));
            if sortable.len() == before {
                continue;
            }
            let next_rack = rack_ids.len();
            let rack = *rack_ids
                .entry((m.dc.as_str(), m.rack.as_str()))
                .or_insert(next_rack);
            let group = if per_dc {
                group_of_dc.get(m.dc.as_str()).copied()
            } else {
                Some(0)
            };
            if let Some(g) = group {
                group_sizes[g] += 1;
                let seen = &mut group_racks[g];
                if seen.len() <= rack {
                    seen.resize(rack + 1, false);
                }
                if !seen[rack] {
                    seen[rack] = true;
                    groups[g].racks += 1;
                }
            }
            nodes.push(Node {
                member,
                group,
                rack,
            });
        }
        for (g, size) in groups.iter_mut().zip(group_sizes) {
            g.quota = g.quota.min(size);
        }
        sortable.sort_unstable();
        sortable.dedup();
        Layout {
            nodes,
            groups,
            racks: rack_ids.len(),
            positions: sortable.into_iter().map(|(t, _, n)| (t, n)).collect(),
        }
    }

    /// Whether no node has a token.
    pub(super) fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Nodes with tokens.
    pub(super) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Each distinct token in ring order with the position of its owner (the first position
    /// holding it).
    pub(super) fn distinct_tokens(&self) -> impl Iterator<Item = (u16, usize)> + '_ {
        self.positions
            .iter()
            .enumerate()
            .filter(|&(i, &(token, _))| i == 0 || self.positions[i - 1].0 != token)
            .map(|(i, &(token, _))| (token, i))
    }

    /// A walker over this layout.
    pub(super) fn walker(&self) -> Walker<'_> {
        Walker {
            layout: self,
            order: vec![usize::MAX; self.nodes.len()],
            rack_taken: vec![false; self.racks],
            remaining: Vec::with_capacity(self.groups.len()),
            racks_taken: Vec::with_capacity(self.groups.len()),
            skipped: vec![Vec::new(); self.groups.len()],
            picked: Vec::new(),
            visited: Vec::new(),
        }
    }
}

/// Walks the ring from a position and picks the replicas, reusing its buffers between walks.
pub(super) struct Walker<'a> {
    layout: &'a Layout,
    /// Per node: its rank among the distinct nodes met on this walk (`usize::MAX`: not met).
    order: Vec<usize>,
    /// Per rack: whether it holds a replica already (racks belong to one group each).
    rack_taken: Vec<bool>,
    /// Per group: replicas still to pick.
    remaining: Vec<usize>,
    /// Per group: racks holding a replica.
    racks_taken: Vec<usize>,
    /// Per group: nodes passed over because their rack already holds a replica.
    skipped: Vec<Vec<usize>>,
    /// Picked nodes with their rank.
    picked: Vec<(usize, usize)>,
    /// Nodes met on this walk (to reset `order`).
    visited: Vec<usize>,
}

impl Walker<'_> {
    /// The replicas of the slots owned by the token at `start` (a position index), as view
    /// member indices in ring order.
    ///
    /// Cassandra's `NetworkTopologyStrategy` walk: in each group, a node on a rack without a
    /// replica is picked; one on a rack that has one is passed over until every rack of the
    /// group holds a replica, and then the passed-over nodes are picked in ring order, then
    /// any node met. The walk stops when every group is full or every node has been met.
    pub(super) fn replicas_from(&mut self, start: usize) -> Vec<usize> {
        let layout = self.layout;
        self.reset();
        let mut still_needed: usize = self.remaining.iter().sum();
        let positions = &layout.positions;
        for step in 0..positions.len() {
            if still_needed == 0 || self.visited.len() == layout.nodes.len() {
                break;
            }
            let node = positions[(start + step) % positions.len()].1;
            if self.order[node] != usize::MAX {
                continue;
            }
            self.order[node] = self.visited.len();
            self.visited.push(node);
            let info = &layout.nodes[node];
            let Some(g) = info.group else { continue };
            if self.remaining[g] == 0 {
                continue;
            }
            let all_racks = layout.groups[g].racks;
            if !self.rack_taken[info.rack] {
                self.rack_taken[info.rack] = true;
                self.racks_taken[g] += 1;
                self.pick(g, node);
                still_needed -= 1;
                if self.racks_taken[g] == all_racks {
                    // Every rack holds a replica: the nodes passed over come next.
                    let mut skipped = std::mem::take(&mut self.skipped[g]);
                    for &passed in &skipped {
                        if self.remaining[g] == 0 {
                            break;
                        }
                        self.pick(g, passed);
                        still_needed -= 1;
                    }
                    skipped.clear();
                    self.skipped[g] = skipped;
                }
            } else if self.racks_taken[g] == all_racks {
                self.pick(g, node);
                still_needed -= 1;
            } else {
                self.skipped[g].push(node);
            }
        }
        self.picked.sort_unstable();
        self.picked
            .iter()
            .map(|&(_, node)| layout.nodes[node].member)
            .collect()
    }

    /// Picks `node` as one of group `g`'s replicas.
    fn pick(&mut self, g: usize, node: usize) {
        self.remaining[g] -= 1;
        self.picked.push((self.order[node], node));
    }

    fn reset(&mut self) {
        for &node in &self.visited {
            self.order[node] = usize::MAX;
        }
        self.visited.clear();
        self.rack_taken.fill(false);
        self.remaining.clear();
        self.remaining
            .extend(self.layout.groups.iter().map(|g| g.quota));
        self.racks_taken.clear();
        self.racks_taken.resize(self.layout.groups.len(), 0);
        for s in &mut self.skipped {
            s.clear();
        }
        self.picked.clear();
    }
}
