//! Ring tests: exact placement on hand-built rings (ownership, ties, wrapping, racks,
//! datacenters), and properties of token allocation (balance, movement on a join) and of
//! replica lists over random rings.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::node_id::node_number;
use crate::view::{Member, NodeStatus};

fn member(id: &str, dc: &str, rack: &str, tokens: Vec<u16>) -> Member {
    Member {
        node_id: id.to_string(),
        number: node_number(id),
        client_addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
        bus_addr: SocketAddr::from(([127, 0, 0, 1], 16379)),
        dc: dc.into(),
        rack: rack.into(),
        tokens,
        status: NodeStatus::Normal,
        generation: 1,
        alive: true,
        load_bytes: 0,
    }
}

fn view(members: Vec<Member>) -> View {
    let local = members[0].node_id.clone();
    View::new(members, &local).expect("view")
}

fn index(view: &View, id: &str) -> usize {
    view.members
        .iter()
        .position(|m| m.node_id == id)
        .expect("member")
}

fn ids<'a>(view: &'a View, replicas: &[usize]) -> Vec<&'a str> {
    replicas
        .iter()
        .map(|&i| view.members[i].node_id.as_str())
        .collect()
}

fn per_dc(entries: &[(&str, usize)]) -> Replication {
    Replication::per_datacenter(entries.iter().map(|&(dc, n)| (dc.to_string(), n)).collect())
}

#[test]
fn replication_counts() {
    let simple = Replication::simple(3);
    assert_eq!((simple.total(), simple.in_dc("any")), (3, 3));
    let dcs = per_dc(&[("dc1", 2), ("dc2", 1)]);
    assert_eq!(dcs.factor, 3);
    assert_eq!(dcs.total(), 3);
    assert_eq!(
        (dcs.in_dc("dc1"), dcs.in_dc("dc2"), dcs.in_dc("dc3")),
        (2, 1, 0)
    );
}

#[test]
fn a_slot_belongs_to_the_first_token_at_or_after_it() {
    let v = view(vec![
        member("a", "dc1", "r1", vec![100, 5000]),
        member("b", "dc1", "r1", vec![200]),
        member("c", "dc1", "r1", vec![300]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(2));
    assert_eq!(ids(&v, ring.replicas(0)), ["a", "b"]);
    assert_eq!(ids(&v, ring.replicas(100)), ["a", "b"]);
    assert_eq!(ids(&v, ring.replicas(101)), ["b", "c"]);
    assert_eq!(ids(&v, ring.replicas(300)), ["c", "a"]);
    assert_eq!(ids(&v, ring.replicas(301)), ["a", "b"]);
    // Past the last token the ring wraps to the first.
    assert_eq!(ids(&v, ring.replicas(5001)), ["a", "b"]);
    assert_eq!(ids(&v, ring.replicas(SLOTS - 1)), ["a", "b"]);
    assert_eq!(ring.replicas(SLOTS), &[] as &[usize]);
    let a = index(&v, "a");
    // a owns 0..=100 and 301..=16383.
    assert_eq!(ring.primary_slots(a), 101 + (16383 - 300));
    assert_eq!(ring.primary_slots(index(&v, "b")), 100);
    assert_eq!(ring.node_count(), 3);
    let total: u32 = (0..3).map(|i| ring.primary_slots(i)).sum();
    assert_eq!(total, u32::from(SLOTS));
    // With RF 2 every slot has two replicas: ownerships sum to 2.
    let owned: f64 = (0..3).map(|i| ring.ownership(i)).sum();
    assert!((owned - 2.0).abs() < 1e-9);
}

#[test]
fn equal_tokens_go_to_the_lower_node_number() {
    let (x, y) = ("node-x", "node-y");
    let (low, high) = if node_number(x) < node_number(y) {
        (x, y)
    } else {
        (y, x)
    };
    let v = view(vec![
        member(high, "dc1", "r1", vec![10]),
        member(low, "dc1", "r1", vec![10]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(2));
    assert_eq!(ids(&v, ring.replicas(10)), [low, high]);
    assert_eq!(ring.primary_slots(index(&v, low)), u32::from(SLOTS));
    assert_eq!(ring.primary_slots(index(&v, high)), 0);
}

#[test]
fn fewer_nodes_than_the_factor_and_empty_rings() {
    let v = view(vec![
        member("a", "dc1", "r1", vec![1]),
        member("b", "dc1", "r1", vec![2]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(3));
    assert_eq!(ids(&v, ring.replicas(2)), ["b", "a"]);
    assert!((ring.ownership(0) - 1.0).abs() < 1e-9);

    let mut joining = member("j", "dc1", "r1", vec![1, 2, 3]);
    joining.status = NodeStatus::Joining;
    let v = view(vec![joining, member("n", "dc1", "r1", vec![])]);
    let ring = Ring::from_view(&v, &Replication::simple(3));
    assert!(ring.is_empty());
    assert_eq!(ring.node_count(), 0);
    assert!(ring.replicas(0).is_empty());
    assert!(ring.slot_ranges().is_empty());
    assert_eq!(ring.primary_slots(0), 0);
}

#[test]
fn leaving_nodes_still_hold_replicas_and_joining_ones_do_not() {
    let mut leaving = member("b", "dc1", "r1", vec![200]);
    leaving.status = NodeStatus::Leaving;
    let mut joining = member("c", "dc1", "r1", vec![150]);
    joining.status = NodeStatus::Joining;
    let v = view(vec![member("a", "dc1", "r1", vec![100]), leaving, joining]);
    let ring = Ring::from_view(&v, &Replication::simple(3));
    assert_eq!(ids(&v, ring.replicas(120)), ["b", "a"]);
}

#[test]
fn racks_are_distinct_first_then_repeated_in_ring_order() {
    // Ring order from slot 0: a(r1) b(r1) c(r2) d(r2) e(r3).
    let v = view(vec![
        member("a", "dc1", "r1", vec![10]),
        member("b", "dc1", "r1", vec![20]),
        member("c", "dc1", "r2", vec![30]),
        member("d", "dc1", "r2", vec![40]),
        member("e", "dc1", "r3", vec![50]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(3));
    // b is passed over (r1 taken), d too (r2 taken): three racks.
    assert_eq!(ids(&v, ring.replicas(0)), ["a", "c", "e"]);
    assert_eq!(ids(&v, ring.replicas(15)), ["b", "c", "e"]);

    // Two racks for three replicas: once both racks hold one, the passed-over node fills
    // the last place, and the list is in ring order.
    let v = view(vec![
        member("a", "dc1", "r1", vec![10]),
        member("b", "dc1", "r1", vec![20]),
        member("c", "dc1", "r1", vec![25]),
        member("d", "dc1", "r2", vec![30]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(3));
    assert_eq!(ids(&v, ring.replicas(0)), ["a", "b", "d"]);
    assert_eq!(ids(&v, ring.replicas(26)), ["d", "a", "b"]);
}

#[test]
fn racks_are_told_apart_by_datacenter_too() {
    // Same rack name in two datacenters: two racks for a ring without per-dc factors.
    let v = view(vec![
        member("a", "dc1", "r1", vec![10]),
        member("b", "dc1", "r1", vec![20]),
        member("c", "dc2", "r1", vec![30]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(2));
    assert_eq!(ids(&v, ring.replicas(0)), ["a", "c"]);
}

#[test]
fn per_dc_factors_collect_in_each_listed_datacenter() {
    let v = view(vec![
        member("a", "dc1", "r1", vec![10]),
        member("b", "dc1", "r1", vec![20]),
        member("c", "dc1", "r1", vec![30]),
        member("x", "dc2", "r1", vec![15]),
        member("y", "dc2", "r1", vec![25]),
        member("z", "dc3", "r1", vec![5]),
    ]);
    let ring = Ring::from_view(&v, &per_dc(&[("dc1", 2), ("dc2", 1)]));
    // z (dc3, unlisted) holds nothing even where it is the owner.
    assert_eq!(ids(&v, ring.replicas(0)), ["a", "x", "b"]);
    assert_eq!(ids(&v, ring.replicas(16)), ["b", "y", "c"]);
    assert_eq!(ring.primary_slots(index(&v, "z")), 0);
    assert_eq!(ring.ownership(index(&v, "z")), 0.0);
    // A datacenter with fewer nodes than its factor gives what it has.
    let ring = Ring::from_view(&v, &per_dc(&[("dc1", 1), ("dc3", 2)]));
    assert_eq!(ids(&v, ring.replicas(0)), ["z", "a"]);
}

#[test]
fn slot_ranges_merge_runs_of_equal_replicas() {
    let v = view(vec![
        member("a", "dc1", "r1", vec![100, 5000]),
        member("b", "dc1", "r1", vec![200]),
    ]);
    let ring = Ring::from_view(&v, &Replication::simple(1));
    let (a, b) = (index(&v, "a"), index(&v, "b"));
    let ranges = ring.slot_ranges();
    let got: Vec<(u16, u16, Vec<usize>)> = ranges
        .into_iter()
        .map(|r| (r.start, r.end, r.replicas))
        .collect();
    assert_eq!(
        got,
        [
            (0, 100, vec![a]),
            (101, 200, vec![b]),
            (201, SLOTS - 1, vec![a])
        ]
    );
}

#[test]
fn random_tokens_are_sorted_distinct_and_seeded() {
    let t = random_tokens(DEFAULT_VNODES, 9);
    assert_eq!(t.len(), DEFAULT_VNODES);
    assert!(t.windows(2).all(|w| w[0] < w[1]));
    assert!(t.iter().all(|&x| x < SLOTS));
    assert_eq!(t, random_tokens(DEFAULT_VNODES, 9));
    assert_ne!(t, random_tokens(DEFAULT_VNODES, 10));
    assert_eq!(random_tokens(100_000, 1).len(), usize::from(SLOTS));
    assert!(random_tokens(0, 1).is_empty());
}

/// Primary-slot shares of nodes that chose random tokens independently (the doc comment of
/// [`random_tokens`] quotes the measured figure).
#[test]
fn random_tokens_balance_is_loose() {
    let fair = f64::from(SLOTS) / 3.0;
    let mut worst: f64 = 0.0;
    for seed in 0..20u64 {
        let members = (0..3)
            .map(|i| {
                let id = format!("node-{i}");
                member(
                    &id,
                    "dc1",
                    "r1",
                    random_tokens(DEFAULT_VNODES, seed * 3 + i),
                )
            })
            .collect();
        let v = view(members);
        let ring = Ring::from_view(&v, &Replication::simple(1));
        for i in 0..3 {
            let dev = (f64::from(ring.primary_slots(i)) - fair).abs() / fair;
            worst = worst.max(dev);
        }
    }
    assert!(worst < 0.35, "worst node off its fair share by {worst:.3}");
}

/// Adds nodes one by one as new nodes do: each allocates against the ring it sees.
fn grow(nodes: usize, vnodes: usize, seed: u64, rack: impl Fn(usize) -> String) -> Vec<Member> {
    let mut members: Vec<Member> = Vec::new();
    for i in 0..nodes {
        let id = format!("node-{i:02}");
        let mut newcomer = member(&id, "dc1", &rack(i), Vec::new());
        newcomer.status = NodeStatus::Joining;
        let mut all = members.clone();
        all.push(newcomer.clone());
        let v = View::new(all, &id).expect("view");
        newcomer.tokens = allocate_tokens(&v, &Replication::simple(3), vnodes, seed + i as u64);
        newcomer.status = NodeStatus::Normal;
        members.push(newcomer);
    }
    members
}

/// Each slot's owner, by node id.
fn owners(members: &[Member]) -> Vec<String> {
    let v = view(members.to_vec());
    let ring = Ring::from_view(&v, &Replication::simple(1));
    (0..SLOTS)
        .map(|s| v.members[ring.replicas(s)[0]].node_id.clone())
        .collect()
}

#[test]
fn allocated_tokens_are_sorted_distinct_and_capped_by_the_share() {
    let members = grow(4, DEFAULT_VNODES, 1, |_| "r1".into());
    for m in &members {
        assert_eq!(m.tokens.len(), DEFAULT_VNODES);
        assert!(m.tokens.windows(2).all(|w| w[0] < w[1]));
    }
    let all: HashSet<u16> = members.iter().flat_map(|m| m.tokens.clone()).collect();
    assert_eq!(all.len(), 4 * DEFAULT_VNODES, "no token is shared");
    // 16384 / 100 = 163 slots: no more tokens than slots to own.
    let few = grow(3, DEFAULT_VNODES, 1, |_| "r1".into());
    let mut v = few.clone();
    for i in 3..99 {
        v.push(member(
            &format!("x{i}"),
            "dc1",
            "r1",
            vec![(i * 160) as u16],
        ));
    }
    let mut newcomer = member("new", "dc1", "r1", Vec::new());
    newcomer.status = NodeStatus::Joining;
    v.push(newcomer);
    let v = View::new(v, "new").expect("view");
    let tokens = allocate_tokens(&v, &Replication::simple(1), DEFAULT_VNODES, 1);
    assert_eq!(tokens.len(), 163);
}

#[test]
fn allocation_balances_the_local_datacenter_with_per_dc_factors() {
    let mut members = vec![
        member("a", "dc1", "r1", random_tokens(64, 1)),
        member("b", "dc2", "r1", random_tokens(64, 2)),
        member("c", "dc2", "r1", random_tokens(64, 3)),
    ];
    let mut newcomer = member("d", "dc1", "r1", Vec::new());
    newcomer.status = NodeStatus::Joining;
    members.push(newcomer.clone());
    let repl = per_dc(&[("dc1", 1), ("dc2", 1)]);
    let v = View::new(members.clone(), "d").expect("view");
    newcomer.tokens = allocate_tokens(&v, &repl, 64, 4);
    newcomer.status = NodeStatus::Normal;
    members[3] = newcomer;
    let v = view(members);
    let ring = Ring::from_view(&v, &per_dc(&[("dc1", 1)]));
    // Within dc1, a and d split the slots evenly.
    assert_eq!(ring.primary_slots(index(&v, "d")), u32::from(SLOTS) / 2);
    assert_eq!(ring.primary_slots(index(&v, "a")), u32::from(SLOTS) / 2);
}

#[test]
fn a_join_onto_a_random_ring_takes_from_the_most_loaded() {
    // Three nodes that started together with random tokens, then a fourth joins.
    let mut members: Vec<Member> = (0..3)
        .map(|i| {
            member(
                &format!("n{i}"),
                "dc1",
                "r1",
                random_tokens(DEFAULT_VNODES, 40 + i),
            )
        })
        .collect();
    let v = view(members.clone());
    let ring = Ring::from_view(&v, &Replication::simple(1));
    let before: Vec<u32> = (0..3).map(|i| ring.primary_slots(i)).collect();
    let mut newcomer = member("n3", "dc1", "r1", Vec::new());
    newcomer.status = NodeStatus::Joining;
    members.push(newcomer.clone());
    let v = View::new(members.clone(), "n3").expect("view");
    newcomer.tokens = allocate_tokens(&v, &Replication::simple(1), DEFAULT_VNODES, 43);
    newcomer.status = NodeStatus::Normal;
    members[3] = newcomer;
    let v = view(members);
    let ring = Ring::from_view(&v, &Replication::simple(1));
    let after: Vec<u32> = (0..4).map(|i| ring.primary_slots(i)).collect();
    assert_eq!(after[3], u32::from(SLOTS) / 4);
    let (max_before, min_before) = (before.iter().max(), before.iter().min());
    // The most loaded gave most: the spread between the old nodes shrank.
    let spread_after = after[..3].iter().max().zip(after[..3].iter().min());
    let spread_before = max_before.zip(min_before);
    let width = |s: Option<(&u32, &u32)>| s.map_or(0, |(hi, lo)| hi - lo);
    assert!(
        width(spread_after) < width(spread_before),
        "{before:?} -> {after:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn allocation_keeps_every_node_near_its_fair_share(nodes in 3usize..=10, seed in any::<u64>()) {
        let members = grow(nodes, DEFAULT_VNODES, seed, |_| "r1".into());
        let v = view(members);
        let ring = Ring::from_view(&v, &Replication::simple(1));
        let fair = f64::from(SLOTS) / nodes as f64;
        for i in 0..nodes {
            let got = f64::from(ring.primary_slots(i));
            prop_assert!((got - fair).abs() <= fair * 0.10, "node {} owns {} of fair {}", i, got, fair);
        }
    }

    #[test]
    fn a_join_moves_its_share_from_many_nodes(nodes in 3usize..=10, seed in any::<u64>()) {
        let members = grow(nodes + 1, DEFAULT_VNODES, seed, |_| "r1".into());
        let before = owners(&members[..nodes]);
        let after = owners(&members);
        let moved: Vec<usize> = (0..before.len()).filter(|&s| before[s] != after[s]).collect();
        let expected = f64::from(SLOTS) / (nodes + 1) as f64;
        prop_assert!((moved.len() as f64 - expected).abs() <= expected * 0.30,
            "{} slots moved, expected about {}", moved.len(), expected);
        let newcomer = &members[nodes].node_id;
        prop_assert!(moved.iter().all(|&s| &after[s] == newcomer), "only the newcomer gains slots");
        let donors: BTreeSet<&String> = moved.iter().map(|&s| &before[s]).collect();
        prop_assert!(donors.len() >= nodes.min(8), "taken from only {} nodes", donors.len());
    }

    #[test]
    fn replica_lists_hold_distinct_members(nodes in 1usize..=8, factor in 1usize..=5, seed in any::<u64>()) {
        let members: Vec<Member> = (0..nodes)
            .map(|i| member(&format!("n{i}"), "dc1", "r1", random_tokens(16, seed.wrapping_add(i as u64))))
            .collect();
        let v = view(members);
        let ring = Ring::from_view(&v, &Replication::simple(factor));
        for slot in 0..SLOTS {
            let r = ring.replicas(slot);
            let distinct: HashSet<usize> = r.iter().copied().collect();
            prop_assert_eq!(r.len(), factor.min(nodes));
            prop_assert_eq!(distinct.len(), r.len());
        }
    }

    #[test]
    fn three_racks_of_two_hold_three_replicas_on_three_racks(seed in any::<u64>()) {
        let members = grow(6, DEFAULT_VNODES, seed, |i| format!("rack{}", i % 3));
        let v = view(members);
        let ring = Ring::from_view(&v, &Replication::simple(3));
        for slot in 0..SLOTS {
            let racks: HashSet<&str> = ring.replicas(slot).iter().map(|&i| v.members[i].rack.as_str()).collect();
            prop_assert_eq!(racks.len(), 3);
        }
    }

    #[test]
    fn per_dc_replicas_are_counted_per_datacenter(seed in any::<u64>()) {
        let dcs = ["dc1", "dc1", "dc1", "dc2", "dc2"];
        let members: Vec<Member> = dcs
            .iter()
            .enumerate()
            .map(|(i, dc)| member(&format!("n{i}"), dc, "r1", random_tokens(64, seed.wrapping_add(i as u64))))
            .collect();
        let v = view(members);
        let ring = Ring::from_view(&v, &per_dc(&[("dc1", 2), ("dc2", 1)]));
        for slot in 0..SLOTS {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in ring.replicas(slot) {
                *count.entry(v.members[i].dc.as_str()).or_default() += 1;
            }
            prop_assert_eq!(count.get("dc1"), Some(&2));
            prop_assert_eq!(count.get("dc2"), Some(&1));
        }
    }

    #[test]
    fn slot_ranges_cover_the_ring_and_agree_with_replicas(nodes in 1usize..=6, factor in 1usize..=3, seed in any::<u64>()) {
        let members: Vec<Member> = (0..nodes)
            .map(|i| member(&format!("n{i}"), "dc1", &format!("r{}", i % 2), random_tokens(32, seed.wrapping_add(i as u64))))
            .collect();
        let v = view(members);
        let ring = Ring::from_view(&v, &Replication::simple(factor));
        let ranges = ring.slot_ranges();
        let mut next = 0u32;
        for (k, r) in ranges.iter().enumerate() {
            prop_assert_eq!(u32::from(r.start), next);
            prop_assert!(r.end >= r.start);
            for slot in r.start..=r.end {
                prop_assert_eq!(ring.replicas(slot), r.replicas.as_slice());
            }
            if k > 0 {
                prop_assert_ne!(&ranges[k - 1].replicas, &r.replicas, "adjacent runs are merged");
            }
            next = u32::from(r.end) + 1;
        }
        prop_assert_eq!(next, u32::from(SLOTS));
    }
}

/// Two nodes that start together and see the same one-node ring. Seeing each other joining,
/// both choose at random; not seeing each other, they still split different ranges. Either
/// way each owns primary slots (one start in five of the cluster benchmark left the second
/// with none: both split the same ranges into the same tokens).
#[test]
fn two_nodes_joining_at_once_both_own_slots() {
    let donor = member("n0", "dc1", "r1", random_tokens(DEFAULT_VNODES, 7));
    let joining = |id: &str| {
        let mut m = member(id, "dc1", "r1", Vec::new());
        m.status = NodeStatus::Joining;
        m
    };
    for see_each_other in [true, false] {
        let mut chosen = Vec::new();
        for (me, other, seed) in [("n1", "n2", 11), ("n2", "n1", 12)] {
            let mut members = vec![donor.clone(), joining(me)];
            if see_each_other {
                members.push(joining(other));
            }
            let v = View::new(members, me).expect("view");
            let tokens = allocate_tokens(&v, &Replication::simple(1), DEFAULT_VNODES, seed);
            if see_each_other {
                assert_eq!(tokens, random_tokens(DEFAULT_VNODES, seed));
            }
            chosen.push(member(me, "dc1", "r1", tokens));
        }
        let ring = Ring::from_view(
            &view(vec![donor.clone(), chosen[0].clone(), chosen[1].clone()]),
            &Replication::simple(1),
        );
        let fair = u32::from(SLOTS) / 3;
        for i in 1..3 {
            let owned = ring.primary_slots(i);
            assert!(
                owned > fair / 5,
                "seeing each other {see_each_other}: node {i} owns {owned} of fair {fair}"
            );
        }
    }
}
