//! The vnode ring: which nodes hold each of the 16384 slots (DESIGN.md, "Partitioning").
//!
//! Owns [`Ring`] (built once per membership change from a [`View`], then answering
//! [`Ring::replicas`] with two array lookups), [`Replication`] (the replication factor, per
//! datacenter when several are configured) and token choice ([`random_tokens`],
//! [`allocate_tokens`]). The rules:
//!
//! - Every member whose status owns tokens places its tokens (slot positions) on the ring. A
//!   slot belongs to the first token at or after it, clockwise, wrapping past the last slot;
//!   equal tokens of two nodes are ordered by node number, so the lower number owns the slot.
//! - A slot's replicas are its owner followed by the next distinct nodes clockwise, rack-aware
//!   as Cassandra's `NetworkTopologyStrategy`: nodes of racks not yet holding a replica first;
//!   once every rack holds one, the nodes passed over, then the rest, in ring order. With
//!   per-datacenter factors the ring is walked once and each listed datacenter collects its
//!   own count.
//!
//! Must never gossip, talk to the network or decide liveness: the ring is a pure function of
//! the view, and the coordinator filters its replicas by the failure detector's verdict.

mod placement;
#[cfg(test)]
mod tests;
mod tokens;

use std::collections::{BTreeMap, HashMap};

use crate::api::SlotRange;
use crate::slot::SLOTS;
use crate::view::View;

pub use self::tokens::{allocate_tokens, random_tokens, DEFAULT_VNODES};

/// How many replicas each slot has, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    /// Replicas per slot over the whole ring, regardless of datacenter; used only when
    /// `per_dc` is empty.
    pub factor: usize,
    /// Replicas per slot in each listed datacenter (Cassandra's `NetworkTopologyStrategy`
    /// options). Empty: `factor` replicas over the whole ring. Datacenters not listed hold no
    /// replicas when it is not empty.
    pub per_dc: BTreeMap<String, usize>,
}

impl Replication {
    /// `factor` replicas per slot, whatever the datacenters.
    pub fn simple(factor: usize) -> Self {
        Self {
            factor,
            per_dc: BTreeMap::new(),
        }
    }

    /// `per_dc[dc]` replicas in each listed datacenter; `factor` is set to their sum.
    pub fn per_datacenter(per_dc: BTreeMap<String, usize>) -> Self {
        Self {
            factor: per_dc.values().sum(),
            per_dc,
        }
    }

    /// Replicas per slot in all: `factor`, or the sum of `per_dc` when it is not empty.
    pub fn total(&self) -> usize {
        if self.per_dc.is_empty() {
            self.factor
        } else {
            self.per_dc.values().sum()
        }
    }

    /// Replicas per slot in datacenter `dc`: its `per_dc` entry (0 if unlisted), or `factor`
    /// when `per_dc` is empty (a ring without per-datacenter factors counts as one
    /// datacenter, as Cassandra's `LOCAL_QUORUM` does over `SimpleStrategy`).
    pub fn in_dc(&self, dc: &str) -> usize {
        if self.per_dc.is_empty() {
            self.factor
        } else {
            self.per_dc.get(dc).copied().unwrap_or(0)
        }
    }
}

/// The replicas of every slot, precomputed. Cheap to share in an `Arc`; rebuild it with
/// [`Ring::from_view`] when membership changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Ring {
    /// For each slot, the index in `sets` of its replica list; empty when no member owns
    /// tokens.
    slot_set: Box<[u32]>,
    /// The distinct replica lists (indices into the view's members, ring order). Slots
    /// between two adjacent tokens share a list, so there are at most as many as tokens.
    sets: Vec<Box<[usize]>>,
    /// Per view member: slots whose first replica it is.
    primary: Vec<u32>,
    /// Per view member: slots it holds a replica of.
    replicated: Vec<u32>,
    /// Members that place tokens on the ring.
    nodes: usize,
    /// The replication it was built with.
    replication: Replication,
}

impl Ring {
    /// The ring of `view`'s members whose status owns tokens
    /// ([`NodeStatus::owns_tokens`](crate::view::NodeStatus::owns_tokens)), with
    /// `replication`. Tokens outside `0..SLOTS` are ignored. Cost: one walk of the ring per
    /// distinct token, each ending as soon as the replicas are found.
    pub fn from_view(view: &View, replication: &Replication) -> Ring {
        let layout = placement::Layout::new(view, replication);
        let slots = usize::from(SLOTS);
        let mut sets: Vec<Box<[usize]>> = Vec::new();
        let mut set_ids: HashMap<Vec<usize>, u32> = HashMap::new();
        let mut slot_set = Vec::new();
        if !layout.is_empty() {
            slot_set = vec![0u32; slots];
            let mut walker = layout.walker();
            // Each distinct token owns the slots after the previous distinct token, up to
            // itself; the slots after the last token wrap to the first.
            let mut next_slot = 0usize;
            let mut first_id = None;
            for (token, start) in layout.distinct_tokens() {
                let replicas = walker.replicas_from(start);
                let next_id = u32::try_from(sets.len()).unwrap_or(u32::MAX);
                let id = *set_ids.entry(replicas).or_insert_with_key(|list| {
                    sets.push(list.clone().into_boxed_slice());
                    next_id
                });
                first_id.get_or_insert(id);
                let end = usize::from(token) + 1;
                slot_set[next_slot..end].fill(id);
                next_slot = end;
            }
            if let Some(id) = first_id {
                slot_set[next_slot..].fill(id);
            }
        }
        let members = view.members.len();
        let mut per_set = vec![0u32; sets.len()];
        for &id in &slot_set {
            per_set[id as usize] += 1;
        }
        let mut primary = vec![0u32; members];
        let mut replicated = vec![0u32; members];
        for (set, &count) in sets.iter().zip(&per_set) {
            if let Some(&owner) = set.first() {
                primary[owner] += count;
            }
            for &member in set.iter() {
                replicated[member] += count;
            }
        }
        Ring {
            slot_set: slot_set.into_boxed_slice(),
            sets,
            primary,
            replicated,
            nodes: layout.node_count(),
            replication: replication.clone(),
        }
    }

    /// The replicas of `slot`: indices into the view's members, in ring order, the first one
    /// the slot's owner. Fewer than the replication factor when there are fewer nodes (or
    /// racks and nodes in a datacenter); empty when no member owns tokens or `slot` is not
    /// below [`SLOTS`]. Two array lookups, no allocation.
    pub fn replicas(&self, slot: u16) -> &[usize] {
        match self.slot_set.get(usize::from(slot)) {
            Some(&id) => &self.sets[id as usize],
            None => &[],
        }
    }

    /// Whether no member owns tokens (every slot has no replicas).
    pub fn is_empty(&self) -> bool {
        self.slot_set.is_empty()
    }

    /// Members placing tokens on the ring.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// The replication the ring was built with.
    pub fn replication(&self) -> &Replication {
        &self.replication
    }

    /// Slots whose first replica is `member` (an index into the view's members; 0 for one
    /// out of range).
    pub fn primary_slots(&self, member: usize) -> u32 {
        self.primary.get(member).copied().unwrap_or(0)
    }

    /// Share of all slots `member` holds a replica of, `0.0..=1.0` (`nodetool status`'s
    /// "Owns (effective)").
    pub fn ownership(&self, member: usize) -> f64 {
        let held = self.replicated.get(member).copied().unwrap_or(0);
        f64::from(held) / f64::from(SLOTS)
    }

    /// Runs of adjacent slots with the same replicas, in slot order, covering `0..SLOTS`
    /// without gaps (empty when the ring is). Replica indices are the view's member indices,
    /// which are [`Topology::nodes`](crate::api::Topology::nodes) indices when the topology
    /// lists the view's members in order.
    pub fn slot_ranges(&self) -> Vec<SlotRange> {
        let mut ranges: Vec<SlotRange> = Vec::new();
        let mut run: Option<(u16, u32)> = None;
        for (slot, &id) in (0..SLOTS).zip(self.slot_set.iter()) {
            match run {
                Some((_, current)) if current == id => {}
                Some((start, current)) => {
                    ranges.push(self.range(start, slot - 1, current));
                    run = Some((slot, id));
                }
                None => run = Some((slot, id)),
            }
        }
        if let Some((start, id)) = run {
            ranges.push(self.range(start, SLOTS - 1, id));
        }
        ranges
    }

    fn range(&self, start: u16, end: u16, id: u32) -> SlotRange {
        SlotRange {
            start,
            end,
            replicas: self.sets[id as usize].to_vec(),
        }
    }
}
