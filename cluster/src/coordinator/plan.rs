//! Which replicas a request asks, and how many answers it waits for.
//!
//! Owns [`Plan`] and [`Needs`]: from a slot's replicas, the failure detector's verdicts and a
//! consistency level, the replicas to ask (alive ones, this node first) and the answers that
//! satisfy the level (per datacenter for `LOCAL_*` and `EACH_QUORUM`). Checked before any
//! replica is asked, so a level that cannot be met fails at once with Cassandra's
//! `Unavailable` (which level, how many alive, how many required). Must never send anything.

use crate::api::Level;
use crate::coordinator::level::{check_available, Operation};
use crate::coordinator::ring_state::RingState;
use crate::error::ClusterError;

/// Answers a request still needs, per datacenter (`None`: any replica counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    needs: Vec<(Option<String>, usize)>,
}

impl Needs {
    /// Counts an answer from a replica in `dc`; returns whether every need is now met.
    pub fn answered(&mut self, dc: &str) -> bool {
        for (need_dc, count) in &mut self.needs {
            if need_dc.as_deref().is_none_or(|d| d == dc) {
                *count = count.saturating_sub(1);
            }
        }
        self.met()
    }

    /// Whether every need is met.
    pub fn met(&self) -> bool {
        self.needs.iter().all(|(_, count)| *count == 0)
    }

    /// Whether an answer from `dc` would count towards an unmet need.
    pub fn wants(&self, dc: &str) -> bool {
        self.needs
            .iter()
            .any(|(need_dc, count)| *count > 0 && need_dc.as_deref().is_none_or(|d| d == dc))
    }

    /// Answers still missing, all datacenters together.
    pub fn missing(&self) -> usize {
        self.needs.iter().map(|(_, count)| count).sum()
    }
}

/// The replicas to ask for one slot's request and what satisfies its level.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Alive replicas, this node first, then ring order (reads ask those that count for the
    /// level; writes go to all of them).
    pub targets: Vec<usize>,
    /// Answers needed.
    pub needs: Needs,
    /// The level, for errors.
    pub level: Level,
    /// Answers needed in all, for errors.
    pub required: usize,
}

impl Plan {
    /// The plan for `level` over `replicas` (indices into the state's view).
    ///
    /// # Errors
    /// [`ClusterError::NoReplicas`] when the ring has no replica for the slot;
    /// [`ClusterError::UnsupportedLevel`] (`ANY` reads); [`ClusterError::Unavailable`] when
    /// too few replicas are alive (in the datacenters the level counts).
    pub fn new(
        state: &RingState,
        slot: u16,
        replicas: &[usize],
        level: Level,
        op: Operation,
    ) -> Result<Plan, ClusterError> {
        if replicas.is_empty() {
            return Err(ClusterError::NoReplicas { slot });
        }
        let dc_of = |i: usize| state.member(i).dc.as_str();
        let alive = |i: &usize| state.member(*i).alive;
        let local_dc = || state.view.local().dc.clone();
        let needs: Vec<(Option<String>, usize)> = match level {
            Level::LocalOne | Level::LocalQuorum => {
                let in_dc: Vec<usize> = replicas
                    .iter()
                    .copied()
                    .filter(|&i| dc_of(i) == state.view.local().dc)
                    .collect();
                let alive_in_dc = in_dc.iter().filter(|i| alive(i)).count();
                if in_dc.is_empty() {
                    return Err(ClusterError::Unavailable {
                        level,
                        required: 1,
                        alive: 0,
                    });
                }
                let required = check_available(level, op, in_dc.len(), alive_in_dc)?;
                vec![(Some(local_dc()), required)]
            }
            Level::EachQuorum => {
                let mut dcs: Vec<&str> = replicas.iter().map(|&i| dc_of(i)).collect();
                dcs.sort_unstable();
                dcs.dedup();
                let mut needs = Vec::with_capacity(dcs.len());
                for dc in dcs {
                    let in_dc = replicas.iter().filter(|&&i| dc_of(i) == dc);
                    let total = in_dc.clone().count();
                    let alive_in_dc = in_dc.filter(|i| alive(i)).count();
                    let required = check_available(level, op, total, alive_in_dc)?;
                    needs.push((Some(dc.to_string()), required));
                }
                needs
            }
            _ => {
                let alive_count = replicas.iter().filter(|i| alive(i)).count();
                let required = check_available(level, op, replicas.len(), alive_count)?;
                vec![(None, required)]
            }
        };
        let needs = Needs { needs };
        let local = state.view.local;
        let mut targets: Vec<usize> = replicas.iter().copied().filter(|i| alive(i)).collect();
        // This node first: its answer costs no network hop.
        if let Some(pos) = targets.iter().position(|&i| i == local) {
            targets[..=pos].rotate_right(1);
        }
        let required = needs.missing();
        Ok(Plan {
            targets,
            needs,
            level,
            required,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::*;
    use crate::ring::Replication;
    use crate::view::{Member, NodeStatus, View};

    fn state(nodes: &[(&str, &str, bool)], local: &str) -> RingState {
        let members = nodes
            .iter()
            .enumerate()
            .map(|(i, (id, dc, alive))| Member {
                node_id: (*id).to_string(),
                number: crate::node_id::node_number(id),
                client_addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
                bus_addr: SocketAddr::from(([127, 0, 0, 1], 17000 + i as u16)),
                dc: (*dc).to_string(),
                rack: "r".into(),
                tokens: vec![(i as u16 + 1) * 1000],
                status: NodeStatus::Normal,
                generation: 1,
                alive: *alive,
                load_bytes: 0,
            })
            .collect();
        let view = View::new(members, local).expect("local is a member");
        RingState::new(Arc::new(view), &Replication::simple(3), 1)
    }

    #[test]
    fn quorum_of_three_with_one_down_asks_the_two_alive_local_first() {
        let s = state(
            &[("a", "dc1", true), ("b", "dc1", false), ("c", "dc1", true)],
            "c",
        );
        let plan = Plan::new(&s, 0, &[0, 1, 2], Level::Quorum, Operation::Read).expect("plan");
        assert_eq!(plan.targets, vec![2, 0]);
        assert_eq!(plan.required, 2);
        let err = Plan::new(&s, 0, &[0, 1, 2], Level::All, Operation::Write).expect_err("all");
        assert!(matches!(
            err,
            ClusterError::Unavailable {
                level: Level::All,
                required: 3,
                alive: 2
            }
        ));
    }

    #[test]
    fn local_levels_count_the_local_datacenter_only() {
        let s = state(
            &[("a", "dc1", true), ("b", "dc2", true), ("c", "dc2", true)],
            "b",
        );
        let plan = Plan::new(&s, 0, &[0, 1, 2], Level::LocalQuorum, Operation::Read).expect("plan");
        assert_eq!(plan.targets, vec![1, 0, 2]);
        let mut needs = plan.needs.clone();
        assert!(!needs.answered("dc1"));
        assert!(!needs.answered("dc2"));
        assert!(needs.answered("dc2"));
        let each = Plan::new(&s, 0, &[0, 1, 2], Level::EachQuorum, Operation::Write).expect("each");
        assert_eq!(each.required, 3);
    }

    #[test]
    fn no_replicas_and_any_reads_are_refused() {
        let s = state(&[("a", "dc1", true)], "a");
        assert!(matches!(
            Plan::new(&s, 5, &[], Level::One, Operation::Read),
            Err(ClusterError::NoReplicas { slot: 5 })
        ));
        assert!(matches!(
            Plan::new(&s, 5, &[0], Level::Any, Operation::Read),
            Err(ClusterError::UnsupportedLevel { .. })
        ));
    }
}
