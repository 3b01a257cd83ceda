//! A real five-node ring of `ringkv` processes with replication factor 3 (issue 5): every slot
//! lands on exactly three of the five nodes and the nodes agree on which; with two nodes
//! killed, `ONE` reads every key (so the one surviving replica of a key held it), `QUORUM`
//! goes on for the keys that kept two replicas and fails with a clear error for those that
//! kept one; the killed nodes restart and rejoin, and a write at `ALL` is then read at `ONE`
//! from every node.
//!
//! One cluster serves the steps in order, because starting and converging a ring is the slow
//! part.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeSet;

use cluster::{
    assert_every_slot_has, assert_level_error, ClusterOptions, TestCluster, CONVERGE_TIMEOUT,
};
use redis::Commands;

/// The nodes killed in the middle of the test.
const DOWN: [usize; 2] = [3, 4];

/// A key and the nodes holding its replicas.
struct Placed {
    key: String,
    holders: Vec<usize>,
}

impl Placed {
    /// How many of its replicas are on the [`DOWN`] nodes.
    fn replicas_down(&self) -> usize {
        self.holders.iter().filter(|h| DOWN.contains(h)).count()
    }
}

#[test]
fn a_five_node_ring_keeps_serving_with_two_nodes_down() {
    let mut ring = TestCluster::start_with(ClusterOptions {
        seed_all: true,
        ..ClusterOptions::new(5, 3)
    });
    ring.wait_converged(CONVERGE_TIMEOUT);

    let slots = ring.cluster_slots(0).expect("CLUSTER SLOTS");
    assert_every_slot_has(&slots, 3, 5);
    for i in 1..5 {
        assert_eq!(
            ring.cluster_slots(i).expect("CLUSTER SLOTS"),
            slots,
            "node-{i} and node-0 disagree on the ring"
        );
    }

    // Keys until both kinds are there: some that keep two replicas when DOWN die, some that
    // keep one (a replica set holding both DOWN nodes).
    let mut placed = Vec::new();
    let mut holders_seen = BTreeSet::new();
    for n in 0..2000 {
        let key = format!("five:{n}");
        let holders = ring.nodes_holding(&key);
        let distinct: BTreeSet<usize> = holders.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            3,
            "{key} should be on exactly 3 nodes: {holders:?}"
        );
        holders_seen.extend(distinct);
        placed.push(Placed { key, holders });
        let one_left = placed.iter().filter(|p| p.replicas_down() == 2).count();
        let two_left = placed.iter().filter(|p| p.replicas_down() < 2).count();
        if one_left >= 5 && two_left >= 20 {
            break;
        }
    }
    assert!(
        placed.iter().any(|p| p.replicas_down() == 2),
        "no key among {} has both {DOWN:?} as replicas",
        placed.len()
    );
    assert_eq!(
        holders_seen.len(),
        5,
        "every node holds replicas of some keys"
    );

    let mut writer = ring.connection_at(0, "ALL");
    for p in &placed {
        let () = writer
            .set(&p.key, format!("v-{}", p.key))
            .expect("SET at ALL");
    }

    for down in DOWN {
        ring.kill(down);
    }
    for down in DOWN {
        ring.wait_down(down, CONVERGE_TIMEOUT);
    }

    for i in 0..3 {
        let mut one = ring.connection_at(i, "ONE");
        let mut quorum = ring.connection_at(i, "QUORUM");
        for p in &placed {
            let value: Option<String> = one.get(&p.key).expect("GET at ONE, two nodes down");
            assert_eq!(
                value,
                Some(format!("v-{}", p.key)),
                "node-{i} at ONE for {} on {:?}",
                p.key,
                p.holders
            );
            if p.replicas_down() < 2 {
                let value: Option<String> = quorum
                    .get(&p.key)
                    .expect("GET at QUORUM, two replicas left");
                assert_eq!(value, Some(format!("v-{}", p.key)));
                let () = quorum
                    .set(&p.key, format!("v2-{}", p.key))
                    .expect("SET at QUORUM, two replicas left");
                let () = quorum
                    .set(&p.key, format!("v-{}", p.key))
                    .expect("SET at QUORUM, two replicas left");
            } else {
                // A key of the same slot (hash tag), so a partly applied write could not
                // change what the ONE reads above see.
                let err = quorum
                    .set::<_, _, ()>(format!("{{{}}}:probe", p.key), "x")
                    .expect_err("SET at QUORUM with one replica left");
                assert_level_error(&err, "QUORUM", &[2, 1]);
            }
        }
    }

    for down in DOWN {
        ring.restart(down);
    }
    ring.wait_converged(CONVERGE_TIMEOUT);
    assert_eq!(
        ring.cluster_slots(3).expect("CLUSTER SLOTS"),
        slots,
        "the restarted nodes took other tokens"
    );
    let mut all = ring.connection_at(4, "ALL");
    for p in &placed {
        let () = all
            .set(&p.key, "after")
            .expect("SET at ALL after the rejoin");
    }
    for i in 0..5 {
        let mut one = ring.connection_at(i, "ONE");
        for p in &placed {
            let value: Option<String> = one.get(&p.key).expect("GET at ONE after the rejoin");
            assert_eq!(value.as_deref(), Some("after"), "node-{i}: {}", p.key);
        }
    }
}
