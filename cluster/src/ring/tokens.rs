//! Choosing a node's tokens when it first starts.
//!
//! Owns [`random_tokens`] (for a node that sees no ring yet), [`allocate_tokens`] (for one that
//! joins a ring: it takes its fair share from the most-loaded nodes) and [`DEFAULT_VNODES`].
//! Must never persist or publish tokens: the node stores them in its system keyspace and
//! gossips them; this module only computes them.

use crate::coordinator::random::SeededRng;
use crate::ring::Replication;
use crate::slot::SLOTS;
use crate::view::{NodeStatus, View};

/// Tokens per node unless configured: enough that random placement is within a few percent
/// of fair per node and that a joining node takes slots from every other node.
pub const DEFAULT_VNODES: usize = 256;

/// `vnodes` distinct random tokens (at most [`SLOTS`]), sorted; the same seed gives the same
/// tokens.
///
/// # Balance
///
/// This is how nodes started together, before they see each other, choose; nothing evens out
/// their shares. With `v` tokens per node a node's share of primary slots is the sum of `v`
/// gaps between random tokens, so it deviates from the fair share by about `1/sqrt(v)`
/// (relative standard deviation): about 6% with the default 256, 12.5% with 64. Over 3
/// nodes and 256 tokens the test measures a worst node within about ±15% of the fair share
/// across seeds. A node joining an existing ring uses [`allocate_tokens`] instead, which is
/// within a few slots of fair.
pub fn random_tokens(vnodes: usize, seed: u64) -> Vec<u16> {
    let rng = SeededRng::new(seed);
    let mut all: Vec<u16> = (0..SLOTS).collect();
    let count = vnodes.min(all.len());
    // A partial Fisher-Yates shuffle: the first `count` entries are a uniform sample.
    for i in 0..count {
        let left = (all.len() - i) as u64;
        let j = i + rng.below(left) as usize;
        all.swap(i, j);
    }
    all.truncate(count);
    all.sort_unstable();
    all
}

/// Tokens for `view.local()`, a node starting for the first time, that give it its fair share
/// of the ring (`SLOTS / (n + 1)` primary slots among `n` nodes owning tokens) taken from many
/// nodes: each token splits a range of the node currently owning the most slots, taking about
/// `share / vnodes` slots from it, so the donors end up level. Only the new node's ranges
/// change owner: about `1/(n + 1)` of the slots move.
///
/// Which of the donor's ranges is split is drawn with `seed` among those longer than the take
/// (the largest when none is). *Why not always the largest:* two nodes starting at the same
/// moment can see the same ring and allocate before either sees the other's tokens; choosing
/// the same ranges they chose the same tokens, a shared token belongs to the lower node number,
/// and the other node owned no slot at all (seen in one start in five of the cluster
/// benchmark's three nodes). Drawn ranges differ, so both get about their share.
///
/// With per-datacenter replication only the local datacenter's nodes are balanced against
/// (its slots are what the node's replicas hold). The local node's own tokens in the view, if
/// any, are ignored. With no other node owning tokens, or another node joining without tokens
/// yet (choosing its own at the same time), it returns [`random_tokens`]. It
/// returns `min(vnodes, share)` tokens: every token must own at least one slot. Sorted,
/// distinct.
pub fn allocate_tokens(
    view: &View,
    replication: &Replication,
    vnodes: usize,
    seed: u64,
) -> Vec<u16> {
    let local = view.local();
    let donors: Vec<&crate::view::Member> = view
        .members
        .iter()
        .filter(|m| m.node_id != local.node_id && m.status.owns_tokens())
        .filter(|m| replication.per_dc.is_empty() || m.dc == local.dc)
        .filter(|m| m.tokens.iter().any(|&t| t < SLOTS))
        .collect();
    // Another node choosing its tokens right now (it gossips itself joining, without tokens)
    // sees much the same ring and would split the same ranges: start as nodes started together
    // do. A node that died while joining keeps later first starts random until it is removed.
    let concurrent = view.members.iter().any(|m| {
        m.node_id != local.node_id && m.status == NodeStatus::Joining && m.tokens.is_empty()
    });
    if donors.is_empty() || concurrent {
        return random_tokens(vnodes, seed);
    }
    let mut model = Model::new(&donors);
    let rng = SeededRng::new(seed);
    let share = usize::from(SLOTS) / (donors.len() + 1);
    let count = vnodes.min(share).max(1);
    let mut mine = Vec::with_capacity(count);
    for i in 0..count {
        // Spread `share` over the tokens exactly: the takes sum to it.
        let take = share * (i + 1) / count - share * i / count;
        match model.split_most_loaded(take.max(1), &rng) {
            Some(token) => mine.push(token),
            None => break,
        }
    }
    mine.sort_unstable();
    mine
}

/// The ring being allocated: existing tokens plus the new node's, with per-node loads.
struct Model {
    /// `(token, owner)` sorted by token, one entry per distinct token (a token shared by two
    /// nodes belongs to the lower number; the other owns nothing there). `owner` is an index
    /// into `load`; the new node is `NEW`.
    tokens: Vec<(u16, usize)>,
    /// Primary slots per donor.
    load: Vec<usize>,
}

/// The owner index of the node being placed.
const NEW: usize = usize::MAX;

impl Model {
    fn new(donors: &[&crate::view::Member]) -> Model {
        let mut sortable: Vec<(u16, u32, usize)> = donors
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                m.tokens
                    .iter()
                    .filter(|&&t| t < SLOTS)
                    .map(move |&t| (t, m.number, i))
            })
            .collect();
        sortable.sort_unstable();
        sortable.dedup_by_key(|e| e.0);
        let tokens: Vec<(u16, usize)> = sortable.into_iter().map(|(t, _, i)| (t, i)).collect();
        let mut model = Model {
            tokens,
            load: vec![0; donors.len()],
        };
        for i in 0..model.tokens.len() {
            let owner = model.tokens[i].1;
            model.load[owner] += model.range_len(i);
        }
        model
    }

    /// Slots owned by the token at index `i`: those after the previous token up to it.
    fn range_len(&self, i: usize) -> usize {
        if self.tokens.len() == 1 {
            return usize::from(SLOTS);
        }
        let prev = self.prev_token(i);
        let token = self.tokens[i].0;
        (usize::from(token) + usize::from(SLOTS) - usize::from(prev)) % usize::from(SLOTS)
    }

    fn prev_token(&self, i: usize) -> u16 {
        let prev = if i == 0 { self.tokens.len() - 1 } else { i - 1 };
        self.tokens[prev].0
    }

    /// Places a new-node token taking up to `take` slots from the start of a range of the
    /// most-loaded donor that has a range it can split: one drawn by `rng` among its ranges
    /// longer than `take`, else its largest. Returns the token, or `None` when no donor range
    /// has two slots.
    fn split_most_loaded(&mut self, take: usize, rng: &SeededRng) -> Option<u16> {
        let mut by_load: Vec<usize> = (0..self.load.len()).collect();
        // Most loaded first; equal loads in a fixed order so allocation is reproducible.
        by_load.sort_by_key(|&d| (std::cmp::Reverse(self.load[d]), d));
        for donor in by_load {
            let ranges: Vec<(usize, usize)> = (0..self.tokens.len())
                .filter(|&i| self.tokens[i].1 == donor)
                .map(|i| (self.range_len(i), i))
                .collect();
            let roomy: Vec<(usize, usize)> = ranges
                .iter()
                .copied()
                .filter(|&(len, _)| len > take)
                .collect();
            let chosen = if roomy.is_empty() {
                ranges
                    .iter()
                    .copied()
                    .max_by_key(|&(len, i)| (len, std::cmp::Reverse(i)))
            } else {
                let pick = rng.below(roomy.len() as u64) as usize;
                roomy.get(pick).copied()
            };
            let Some((len, i)) = chosen else { continue };
            if len < 2 {
                continue;
            }
            // The donor keeps at least one slot of the range, so the new token is distinct
            // from every existing one.
            let taken = take.min(len - 1);
            let token = ((usize::from(self.prev_token(i)) + taken) % usize::from(SLOTS)) as u16;
            let at = self.tokens.partition_point(|&(t, _)| t < token);
            self.tokens.insert(at, (token, NEW));
            self.load[donor] -= taken;
            return Some(token);
        }
        None
    }
}
