//! Membership over real UDP on loopback: convergence, failure detection, restarts, state
//! changes, cluster ids and number collisions. Waits poll the view with a generous deadline;
//! nothing asserts how long anything took.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::view::{Member, NodeStatus, View};

/// Far above what any step needs on an idle machine, for a loaded shared one.
const DEADLINE: Duration = Duration::from_secs(60);
const GOSSIP_INTERVAL: Duration = Duration::from_millis(100);

/// A loopback port free right now (chitchat binds the address it is given, so port 0 would
/// not tell peers where it is).
fn free_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    socket.local_addr().expect("local address").port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A member called `id` whose bus (and gossip) port is `port`, with 256 tokens that depend on
/// `salt`.
fn member(id: &str, number: u32, port: u16, salt: u16) -> Member {
    Member {
        node_id: id.to_string(),
        number,
        client_addr: addr(port.wrapping_sub(10000)),
        bus_addr: addr(port),
        dc: "dc1".into(),
        rack: format!("rack-{id}"),
        tokens: (0..256u16).map(|i| i * 64 + salt % 64).collect(),
        status: NodeStatus::Normal,
        generation: 1,
        alive: true,
        load_bytes: 0,
    }
}

fn config(local: Member, seeds: &[u16]) -> MembershipConfig {
    let mut config = MembershipConfig::new(
        local.clone(),
        local.bus_addr,
        seeds.iter().map(|p| addr(*p).to_string()).collect(),
    );
    config.gossip_interval = GOSSIP_INTERVAL;
    config.failure.initial_interval = GOSSIP_INTERVAL;
    config
}

async fn start(local: Member, seeds: &[u16]) -> Membership {
    Membership::start(config(local, seeds))
        .await
        .expect("membership starts")
}

/// Waits until `node`'s view satisfies `ok`, returning that view.
async fn wait_for(node: &Membership, what: &str, ok: impl Fn(&View) -> bool) -> Arc<View> {
    let mut views = node.view();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let view = views.borrow_and_update().clone();
        if ok(&view) {
            return view;
        }
        match tokio::time::timeout_at(deadline, views.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("view channel closed while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; last view: {view:#?}"),
        }
    }
}

fn find<'a>(view: &'a View, id: &str) -> Option<&'a Member> {
    view.members.iter().find(|m| m.node_id == id)
}

/// Whether `view` holds exactly `expected` (compared whole, liveness included).
fn holds(view: &View, expected: &[&Member]) -> bool {
    view.members.len() == expected.len()
        && expected.iter().all(|e| find(view, &e.node_id) == Some(*e))
}

/// Waits until `node`'s chitchat holds `peer`'s whole gossiped state.
async fn wait_until_known(node: &Membership, peer: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let known = node
            .refresher
            .chitchat
            .lock()
            .await
            .node_states()
            .values()
            .any(|s| {
                let id = s.chitchat_id();
                &*id.node_id == peer
                    && state::decode(peer, id.generation_id, |key| s.get(key)).is_ok()
            });
        if known {
            return;
        }
        assert!(Instant::now() < deadline, "{peer}'s state never arrived");
        tokio::time::sleep(GOSSIP_INTERVAL).await;
    }
}

/// Kills a node's gossip as a crash would: no goodbye, its socket closed.
fn crash(node: Membership) {
    if let Some(handle) = &node.handle {
        handle.abort();
    }
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_started_at_once_converge_to_one_view() {
    let ports = [free_port(), free_port(), free_port()];
    let members: Vec<Member> = ["node-a", "node-b", "node-c"]
        .iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (id, port))| member(id, i as u32 + 1, port, i as u16))
        .collect();
    let started = Instant::now();
    // Spawned together, so all three start gossiping at the same moment.
    let starts: Vec<_> = members
        .iter()
        .cloned()
        .map(|m| tokio::spawn(async move { start(m, &ports[..1]).await }))
        .collect();
    let mut nodes = Vec::new();
    for started in starts {
        nodes.push(started.await.expect("start task"));
    }
    let expected: Vec<&Member> = members.iter().collect();
    for node in &nodes {
        let view = wait_for(node, "three members", |v| holds(v, &expected)).await;
        assert_eq!(view.local().node_id, node.current().local().node_id);
    }
    eprintln!("three nodes converged in {:?}", started.elapsed());
    for (node, member) in nodes.iter().zip(&members) {
        assert_eq!(node.current().local(), member);
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_goes_down_and_comes_back_with_its_new_state() {
    let ports = [free_port(), free_port(), free_port()];
    let a = member("node-a", 1, ports[0], 0);
    let b = member("node-b", 2, ports[1], 1);
    let c = member("node-c", 3, ports[2], 2);
    let node_a = start(a.clone(), &ports[..1]).await;
    let node_b = start(b.clone(), &ports[..1]).await;
    let node_c = start(c.clone(), &ports[..1]).await;
    for node in [&node_a, &node_b] {
        wait_for(node, "three members", |v| holds(v, &[&a, &b, &c])).await;
    }

    crash(node_c);
    let crashed_at = Instant::now();
    let down = Member {
        alive: false,
        ..c.clone()
    };
    for node in [&node_a, &node_b] {
        wait_for(node, "node-c down, tokens kept", |v| {
            holds(v, &[&a, &b, &down])
        })
        .await;
    }
    eprintln!("crash detected in {:?}", crashed_at.elapsed());

    let reborn = Member {
        generation: c.generation + 1,
        tokens: vec![5, 500, 5000],
        status: NodeStatus::Joining,
        ..c.clone()
    };
    // The crashed task may hold its socket a moment longer: retry the bind until it is free.
    let deadline = Instant::now() + DEADLINE;
    let node_c = loop {
        match Membership::start(config(reborn.clone(), &ports[..1])).await {
            Ok(node) => break node,
            Err(err) if Instant::now() < deadline => {
                eprintln!("restart not possible yet: {err}");
                tokio::time::sleep(GOSSIP_INTERVAL).await;
            }
            Err(err) => panic!("node-c cannot restart: {err}"),
        }
    };
    for node in [&node_a, &node_b, &node_c] {
        wait_for(node, "node-c back with its new generation", |v| {
            holds(v, &[&a, &b, &reborn])
        })
        .await;
    }
    for node in [node_a, node_b, node_c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_cleanly_goes_down_on_the_others() {
    let ports = [free_port(), free_port()];
    let a = member("node-a", 1, ports[0], 0);
    let b = member("node-b", 2, ports[1], 1);
    let node_a = start(a.clone(), &ports).await;
    let node_b = start(b.clone(), &ports).await;
    wait_for(&node_a, "two members", |v| holds(v, &[&a, &b])).await;
    wait_for(&node_b, "two members", |v| holds(v, &[&a, &b])).await;

    let stopped_at = Instant::now();
    node_b.shutdown().await;
    let down = Member {
        alive: false,
        ..b.clone()
    };
    wait_for(&node_a, "node-b down", |v| holds(v, &[&a, &down])).await;
    eprintln!("clean shutdown seen in {:?}", stopped_at.elapsed());
    node_a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tokens_and_load_changes_propagate() {
    let ports = [free_port(), free_port()];
    let a = member("node-a", 1, ports[0], 0);
    let b = member("node-b", 2, ports[1], 1);
    let node_a = start(a.clone(), &ports[..1]).await;
    let node_b = start(b.clone(), &ports[..1]).await;
    wait_for(&node_a, "two members", |v| holds(v, &[&a, &b])).await;

    node_b.set_status(NodeStatus::Leaving).await;
    // Unsorted with a duplicate: announced sorted and deduplicated.
    node_b.set_tokens(vec![900, 7, 900, 300]).await;
    node_b.set_load(123_456).await;
    let changed = Member {
        status: NodeStatus::Leaving,
        tokens: vec![7, 300, 900],
        load_bytes: 123_456,
        ..b.clone()
    };
    assert_eq!(node_b.current().local(), &changed);
    wait_for(&node_a, "node-b's new state", |v| holds(v, &[&a, &changed])).await;

    // Too many tokens are refused and the old ones stay announced.
    node_b.set_tokens((0..=u16::MAX).collect()).await;
    assert_eq!(node_b.current().local(), &changed);

    node_b.set_status(NodeStatus::Left).await;
    wait_for(&node_a, "node-b gone after leaving", |v| holds(v, &[&a])).await;
    for node in [node_a, node_b] {
        node.shutdown().await;
    }
}

/// Waits until `node` has heard a clock of at least `hlc` from a peer, returning its clocks.
async fn wait_for_clock(node: &Membership, hlc: u64) -> Vec<u64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let clocks = node.peer_clocks().await;
        if clocks.iter().any(|&c| c >= hlc) {
            return clocks;
        }
        assert!(
            Instant::now() < deadline,
            "clock {hlc} never arrived; heard {clocks:?}"
        );
        tokio::time::sleep(GOSSIP_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_clock_reaches_peers() {
    let ports = [free_port(), free_port()];
    let a = member("node-a", 1, ports[0], 0);
    let b = member("node-b", 2, ports[1], 1);
    let node_a = start(a.clone(), &ports[..1]).await;
    let node_b = start(b.clone(), &ports[..1]).await;
    wait_for(&node_a, "two members", |v| holds(v, &[&a, &b])).await;

    node_a.set_hlc(5 << 16).await;
    node_b.set_hlc(7 << 16).await;
    assert_eq!(wait_for_clock(&node_a, 7 << 16).await, vec![7 << 16]);
    // A newer clock replaces the older one; a node never lists its own.
    node_b.set_hlc(9 << 16).await;
    assert_eq!(wait_for_clock(&node_a, 9 << 16).await, vec![9 << 16]);
    assert_eq!(wait_for_clock(&node_b, 5 << 16).await, vec![5 << 16]);
    for node in [node_a, node_b] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_another_cluster_are_not_seen() {
    let ports = [free_port(), free_port(), free_port()];
    let a = member("node-a", 1, ports[0], 0);
    let b = member("node-b", 2, ports[1], 1);
    let stranger = member("node-x", 3, ports[2], 2);
    let node_a = start(a.clone(), &ports).await;
    let mut other = config(stranger.clone(), &ports);
    other.cluster_id = "another-cluster".into();
    let node_x = Membership::start(other).await.expect("starts");
    let node_b = start(b.clone(), &ports).await;
    wait_for(&node_a, "two members", |v| holds(v, &[&a, &b])).await;
    wait_for(&node_b, "two members", |v| holds(v, &[&a, &b])).await;

    // The stranger gossips with both every round; give it many rounds to leak through.
    tokio::time::sleep(GOSSIP_INTERVAL * 20).await;
    for node in [&node_a, &node_b] {
        assert!(holds(&node.current(), &[&a, &b]), "{:#?}", node.current());
        let states = node.refresher.chitchat.lock().await.node_states().len();
        assert_eq!(states, 2, "no state of the stranger is kept");
    }
    assert!(holds(&node_x.current(), &[&stranger]));
    for node in [node_a, node_b, node_x] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_number_is_taken_is_left_out() {
    let ports = [free_port(), free_port(), free_port()];
    let a = member("node-a", 7, ports[0], 0);
    let b = member("node-b", 8, ports[1], 1);
    let c = member("node-c", 7, ports[2], 2);
    let node_a = start(a.clone(), &ports[..1]).await;
    let node_b = start(b.clone(), &ports[..1]).await;
    let node_c = start(c.clone(), &ports[..1]).await;

    // Once every node holds every other's full state, node-a (the lower id) keeps number 7
    // everywhere but on node-c, which keeps its own number in its own view.
    for (node, peers) in [
        (&node_a, ["node-b", "node-c"]),
        (&node_b, ["node-a", "node-c"]),
        (&node_c, ["node-a", "node-b"]),
    ] {
        for peer in peers {
            wait_until_known(node, peer).await;
        }
        node.refresher.refresh().await;
    }
    for node in [&node_a, &node_b] {
        wait_for(node, "a and b only", |v| holds(v, &[&a, &b])).await;
    }
    wait_for(&node_c, "b and c only", |v| holds(v, &[&b, &c])).await;
    for node in [node_a, node_b, node_c] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn an_address_in_use_is_a_start_error() {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let err = Membership::start(config(member("node-a", 1, port, 0), &[]))
        .await
        .err()
        .expect("the port is taken");
    assert!(matches!(err, MembershipError::Start { .. }), "{err}");
    let mut too_many = member("node-a", 1, free_port(), 0);
    too_many.tokens = (0..=u16::MAX).collect();
    let err = Membership::start(config(too_many, &[]))
        .await
        .err()
        .expect("too many tokens");
    assert!(
        matches!(err, MembershipError::TooManyTokens { .. }),
        "{err}"
    );
}
