//! Who serves each slot range, as Redis Cluster clients are told.
//!
//! Owns the one rule every cluster reply follows, so `CLUSTER SLOTS`, `SHARDS`, `NODES`, `INFO`
//! and `RINGKV STATUS` never disagree: a range's **master** is its first *alive* replica in
//! ring order, and its other alive replicas are its replicas. ringkv has no failover to wait
//! for (every replica serves reads and writes, and every node coordinates every key), so
//! naming an alive replica first sends a cluster-aware client's writes where they succeed
//! instead of to a node it would time out on. When no replica of a range is alive, the ring's
//! first replica stays its master, failing, as Redis keeps a failed master with no replica to
//! promote. Pure functions of a [`Topology`]; never reads the cluster or builds a reply.

use ringkv_cluster::{SlotRange, Topology, SLOTS};

/// A range's replicas as clients see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// First slot.
    pub start: u16,
    /// Last slot, inclusive.
    pub end: u16,
    /// Node indices: the alive replicas in ring order (the first is the master), then the
    /// down ones in ring order. Indices outside the topology's nodes are left out.
    pub replicas: Vec<usize>,
    /// How many of `replicas`, from the front, are alive.
    pub alive: usize,
}

impl Placement {
    /// The range's master: its first alive replica, else (no replica alive) its first one.
    pub fn master(&self) -> Option<usize> {
        self.replicas.first().copied()
    }

    /// The nodes `CLUSTER SLOTS` lists: the alive replicas, master first, or the failing master
    /// alone when none is alive (Redis lists a failed master but never a failed replica).
    pub fn listed(&self) -> &[usize] {
        let listed = self.alive.max(1).min(self.replicas.len());
        &self.replicas[..listed]
    }

    /// Number of slots in the range.
    pub fn slots(&self) -> u32 {
        u32::from(self.end.saturating_sub(self.start)) + 1
    }
}

/// Every assigned range of `topology`, in slot order, placed by the rule above. Ranges with
/// no known replica are unassigned and left out.
pub(crate) fn placements(topology: &Topology) -> Vec<Placement> {
    topology
        .ranges
        .iter()
        .filter_map(|range| place(topology, range))
        .collect()
}

fn place(topology: &Topology, range: &SlotRange) -> Option<Placement> {
    let known: Vec<usize> = range
        .replicas
        .iter()
        .copied()
        .filter(|&i| i < topology.nodes.len())
        .collect();
    if known.is_empty() || range.start > range.end {
        return None;
    }
    let (mut replicas, down): (Vec<usize>, Vec<usize>) =
        known.into_iter().partition(|&i| topology.nodes[i].alive);
    let alive = replicas.len();
    replicas.extend(down);
    Some(Placement {
        start: range.start,
        end: range.end,
        replicas,
        alive,
    })
}

/// Slot counts in the terms of `CLUSTER INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotHealth {
    /// Slots with at least one replica.
    pub assigned: u32,
    /// Slots whose every replica is alive.
    pub ok: u32,
    /// Slots with a replica down but one alive: served, with less redundancy (Redis's PFAIL,
    /// "possibly failing").
    pub pfail: u32,
    /// Slots with no replica alive: unavailable.
    pub fail: u32,
}

impl SlotHealth {
    /// `ok` when every slot is assigned and none has lost all its replicas (Redis's
    /// `cluster_state` with `cluster-require-full-coverage yes`).
    pub fn state(&self) -> &'static str {
        if self.assigned == u32::from(SLOTS) && self.fail == 0 {
            "ok"
        } else {
            "fail"
        }
    }
}

/// The slot counts of `placements`.
pub(crate) fn slot_health(placements: &[Placement]) -> SlotHealth {
    let mut health = SlotHealth::default();
    for p in placements {
        let slots = p.slots();
        health.assigned += slots;
        if p.alive == 0 {
            health.fail += slots;
        } else if p.alive < p.replicas.len() {
            health.pfail += slots;
        } else {
            health.ok += slots;
        }
    }
    health
}

/// For each node of `topology`, the slot ranges it is master of, adjacent ranges merged, in
/// slot order.
pub(crate) fn master_ranges(topology: &Topology, placements: &[Placement]) -> Vec<Vec<(u16, u16)>> {
    let mut ranges: Vec<Vec<(u16, u16)>> = vec![Vec::new(); topology.nodes.len()];
    for p in placements {
        let Some(own) = p.master().and_then(|m| ranges.get_mut(m)) else {
            continue;
        };
        match own.last_mut() {
            Some(last) if u32::from(last.1) + 1 == u32::from(p.start) => last.1 = p.end,
            _ => own.push((p.start, p.end)),
        }
    }
    ranges
}
