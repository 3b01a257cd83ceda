//! The coordinator of several nodes over the simulated network: real engines in tempdirs,
//! messages dropped, delayed and partitioned by a seeded [`SimNetwork`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkv_lsm::Db;
use tempfile::TempDir;

use crate::api::{Cluster, Condition, Consistency, Level, Request, Response, Version, Write};
use crate::clock::SystemClock;
use crate::coordinator::NodeHandler;
use crate::coordinator::{open_storage, ClusterConfig, Coordinator, LocalNode};
use crate::error::ClusterError;
use crate::node_id::node_number;
use crate::ring::{random_tokens, Replication};
use crate::storage::Storage;
use crate::transport::sim::{SimNetwork, SimTransport};
use crate::view::{Member, NodeStatus, View};

pub(super) type SimCoordinator = Coordinator<Db, SimTransport<NodeHandler<Db>>>;

pub(super) struct SimCluster {
    pub(super) net: SimNetwork<NodeHandler<Db>>,
    pub(super) nodes: Vec<SimCoordinator>,
    pub(super) members: Vec<Member>,
    _dirs: Vec<TempDir>,
}

fn member(i: usize) -> Member {
    let id = format!("node-{i}");
    let number = node_number(&id);
    Member {
        node_id: id,
        number,
        client_addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
        bus_addr: SimNetwork::<NodeHandler<Db>>::peer(number).addr,
        dc: "dc1".into(),
        rack: format!("rack{i}"),
        tokens: random_tokens(32, i as u64 + 1),
        status: NodeStatus::Normal,
        generation: 1,
        alive: true,
        load_bytes: 0,
    }
}

pub(super) fn cluster(n: usize, rf: usize, seed: u64) -> SimCluster {
    cluster_with_engine(n, rf, seed, &ringkv_lsm::Options::default())
}

/// [`cluster`] with every node's engine built from `engine` (its size limits, say).
pub(super) fn cluster_with_engine(
    n: usize,
    rf: usize,
    seed: u64,
    engine: &ringkv_lsm::Options,
) -> SimCluster {
    cluster_with(n, rf, seed, engine, Duration::from_millis(300))
}

/// [`cluster`] whose coordinators wait `timeout` for replicas (a test that needs slack
/// around a deadline on a loaded machine).
pub(super) fn cluster_with_timeout(
    n: usize,
    rf: usize,
    seed: u64,
    timeout: Duration,
) -> SimCluster {
    cluster_with(n, rf, seed, &ringkv_lsm::Options::default(), timeout)
}

fn cluster_with(
    n: usize,
    rf: usize,
    seed: u64,
    engine: &ringkv_lsm::Options,
    timeout: Duration,
) -> SimCluster {
    let net = SimNetwork::new(seed);
    let members: Vec<Member> = (0..n).map(member).collect();
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for m in &members {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ClusterConfig::new(dir.path(), m.node_id.clone())
            .with_clock(Arc::new(SystemClock))
            .with_seed(seed)
            .with_engine(engine.clone());
        let (db, params) = open_storage(config).expect("open");
        let local = LocalNode::new(db, params).expect("local node");
        let handler = Arc::new(local.handler());
        net.add_node(m.number, Arc::clone(&handler));
        let view = View::new(members.clone(), &m.node_id).expect("view");
        let coordinator = local.coordinator(
            net.transport(m.number),
            Replication::simple(rf),
            view,
            timeout,
        );
        handler.set_leader(coordinator.as_leader());
        nodes.push(coordinator);
        dirs.push(dir);
    }
    SimCluster {
        net,
        nodes,
        members,
        _dirs: dirs,
    }
}

impl SimCluster {
    /// Positions in `members` of `key`'s replicas in ring order (the first leads the slot), as
    /// node 0 sees the ring.
    pub(super) fn replica_positions(&self, key: &str) -> Vec<usize> {
        let state = self.nodes[0].ring_state();
        state
            .ring
            .replicas(crate::slot::key_slot(key.as_bytes()))
            .iter()
            .map(|&r| {
                let id = &state.member(r).node_id;
                self.members
                    .iter()
                    .position(|m| &m.node_id == id)
                    .expect("member")
            })
            .collect()
    }

    /// Tells every node that `down` are down (as the failure detector would).
    fn mark_down(&self, down: &[usize]) {
        let mut members = self.members.clone();
        for &d in down {
            members[d].alive = false;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let view = View::new(members.clone(), &self.members[i].node_id).expect("view");
            node.set_view(Arc::new(view));
        }
    }
}

pub(super) fn level(l: Level) -> Consistency {
    Consistency { read: l, write: l }
}

pub(super) fn set(key: &str, value: &str) -> Write {
    Write {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        expire_at_ms: 0,
        condition: Condition::Always,
    }
}

async fn get(
    node: &SimCoordinator,
    key: &str,
    l: Level,
) -> Result<Option<(Bytes, Version)>, ClusterError> {
    match node
        .execute(
            Request::Get {
                keys: vec![Bytes::copy_from_slice(key.as_bytes())],
            },
            level(l),
        )
        .await?
    {
        Response::Values(mut v) => Ok(v.pop().flatten().map(|s| (s.value, s.version))),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_lands_on_the_replica_set_and_every_node_reads_it() {
    let c = cluster(5, 3, 1);
    for i in 0..50 {
        let w = c.nodes[i % 5]
            .execute(
                Request::Write {
                    writes: vec![set(&format!("k{i}"), &format!("v{i}"))],
                },
                level(Level::All),
            )
            .await
            .expect("write at ALL");
        assert_eq!(w, Response::Written(vec![true]));
    }
    for i in 0..50 {
        let key = format!("k{i}");
        // Exactly the slot's three replicas store it.
        let state = c.nodes[0].ring_state();
        let replicas = state.ring.replicas(crate::slot::key_slot(key.as_bytes()));
        assert_eq!(replicas.len(), 3);
        let holders: Vec<usize> = (0..5)
            .filter(|&n| {
                Storage::get(
                    c.nodes[n].storage(),
                    crate::slot::key_slot(key.as_bytes()),
                    key.as_bytes(),
                )
                .expect("local read")
                .is_some()
            })
            .collect();
        let mut expected = c.replica_positions(&key);
        expected.sort_unstable();
        assert_eq!(holders, expected, "{key}");
        for node in &c.nodes {
            let got = get(node, &key, Level::One).await.expect("read at ONE");
            assert_eq!(got.map(|(v, _)| v), Some(Bytes::from(format!("v{i}"))));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_fail_clearly_when_replicas_are_down() {
    let c = cluster(3, 3, 2);
    c.net.crash(c.members[2].number);
    c.mark_down(&[2]);
    let write = |l| {
        c.nodes[0].execute(
            Request::Write {
                writes: vec![set("k", "v")],
            },
            level(l),
        )
    };
    write(Level::Quorum).await.expect("QUORUM with one down");
    let err = write(Level::All).await.expect_err("ALL with one down");
    assert_eq!(
        err.to_string(),
        "cannot achieve consistency level ALL: 3 replica(s) required but only 2 alive"
    );
    assert!(get(&c.nodes[1], "k", Level::Quorum)
        .await
        .expect("quorum read")
        .is_some());
    c.net.crash(c.members[1].number);
    c.mark_down(&[1, 2]);
    assert!(matches!(
        write(Level::Quorum).await,
        Err(ClusterError::Unavailable {
            required: 2,
            alive: 1,
            ..
        })
    ));
    write(Level::One).await.expect("ONE with two down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_answering_fails_the_level_by_the_deadline() {
    let c = cluster(3, 3, 3);
    // The failure detector has not noticed yet: the node is believed up but unreachable.
    c.net.isolate(c.members[2].number);
    let err = c.nodes[0]
        .execute(
            Request::Write {
                writes: vec![set("k", "v")],
            },
            level(Level::All),
        )
        .await
        .expect_err("ALL with one unreachable");
    assert!(
        matches!(
            err,
            ClusterError::QuorumFailed {
                required: 3,
                answered: 2,
                ..
            }
        ),
        "{err}"
    );
    // QUORUM does not wait for it.
    c.nodes[0]
        .execute(
            Request::Write {
                writes: vec![set("k", "v2")],
            },
            level(Level::Quorum),
        )
        .await
        .expect("QUORUM");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 4,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Random writes and reads through random nodes while pairs are partitioned and healed
    /// and messages are dropped and delayed: a `QUORUM` read that succeeds never returns less
    /// than the newest acknowledged `QUORUM` write of its key (R + W > N).
    #[test]
    fn quorum_writes_are_seen_by_later_quorum_reads_despite_drops_and_partitions(
        seed in 0u64..1_000_000,
        drop_percent in 0u64..10,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(quorum_run(seed, drop_percent as f64 / 100.0));
    }
}

async fn quorum_run(seed: u64, drop_rate: f64) {
    let c = cluster(3, 3, seed);
    c.net.set_drop_rate(drop_rate);
    c.net
        .set_delay(Duration::from_micros(0), Duration::from_millis(2));
    let rng = crate::coordinator::random::SeededRng::new(seed ^ 0x5eed);
    // Per key, the highest acknowledged version.
    let mut acked: HashMap<String, Version> = HashMap::new();
    for step in 0..120 {
        match rng.below(10) {
            0 => {
                c.net.heal();
                let a = rng.below(3) as usize;
                let b = (a + 1 + rng.below(2) as usize) % 3;
                c.net.partition(c.members[a].number, c.members[b].number);
            }
            1 => c.net.heal(),
            _ => {}
        }
        let key = format!("k{}", rng.below(8));
        let node = &c.nodes[rng.below(3) as usize];
        if rng.below(2) == 0 {
            let written = node
                .execute(
                    Request::Write {
                        writes: vec![set(&key, &format!("v{step}"))],
                    },
                    level(Level::Quorum),
                )
                .await;
            if written.is_ok() {
                // The version it wrote is the one any later read must reach.
                let seen = get(node, &key, Level::One).await;
                if let Ok(Some((_, version))) = seen {
                    let entry = acked.entry(key).or_insert(version);
                    *entry = (*entry).max(version);
                }
            }
        } else if let Ok(found) = get(node, &key, Level::Quorum).await {
            if let Some(min) = acked.get(&key) {
                let (_, version) = found.expect("an acknowledged key is found");
                assert!(
                    version >= *min,
                    "{key}: read {version:?}, acknowledged {min:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_through_different_nodes_serialise_on_the_leader() {
    let c = Arc::new(cluster(3, 3, 5));
    let mut tasks = Vec::new();
    for n in 0..3 {
        let c = Arc::clone(&c);
        tasks.push(tokio::spawn(async move {
            let node = &c.nodes[n];
            for _ in 0..15 {
                loop {
                    let current = get(node, "counter", Level::Quorum).await.expect("read");
                    let (value, version) = match current {
                        Some((v, ver)) => (
                            std::str::from_utf8(&v)
                                .expect("utf8")
                                .parse::<u64>()
                                .expect("int"),
                            Some(ver),
                        ),
                        None => (0, None),
                    };
                    let mut w = set("counter", &(value + 1).to_string());
                    w.condition = Condition::IfVersion(version);
                    let done = node
                        .execute(Request::Write { writes: vec![w] }, level(Level::Quorum))
                        .await
                        .expect("conditional write");
                    if done == Response::Written(vec![true]) {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let (value, _) = get(&c.nodes[1], "counter", Level::All)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(value, Bytes::from_static(b"45"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests_across_slots_are_refused() {
    let c = cluster(3, 3, 6);
    let mut a = set("a", "1");
    a.condition = Condition::IfVersion(None);
    let mut b = set("b", "1");
    b.condition = Condition::IfVersion(None);
    let err = c.nodes[0]
        .execute(Request::Write { writes: vec![a, b] }, level(Level::Quorum))
        .await
        .expect_err("cross slot");
    assert!(matches!(err, ClusterError::CrossSlot));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_cover_every_node_and_flush_clears_all() {
    let c = cluster(4, 2, 7);
    let mut expected: Vec<String> = (0..300).map(|i| format!("key:{i:03}")).collect();
    for chunk in expected.chunks(50) {
        let writes = chunk.iter().map(|k| set(k, "v")).collect();
        c.nodes[1]
            .execute(Request::Write { writes }, level(Level::Quorum))
            .await
            .expect("mset");
    }
    expected.sort();
    // SCAN from every node returns every key.
    for node in &c.nodes {
        let mut cursor = crate::api::ScanCursor(0);
        let mut seen = Vec::new();
        loop {
            match node
                .execute(Request::Scan { cursor, count: 37 }, level(Level::Quorum))
                .await
                .expect("scan")
            {
                Response::Scanned { keys, next } => {
                    seen.extend(
                        keys.into_iter()
                            .map(|k| String::from_utf8(k.to_vec()).expect("utf8")),
                    );
                    if next.0 == 0 {
                        break;
                    }
                    cursor = next;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen, expected);
        let range = node
            .execute(
                Request::Range {
                    start: std::ops::Bound::Included(Bytes::from_static(b"key:100")),
                    end: std::ops::Bound::Excluded(Bytes::from_static(b"key:200")),
                    offset: 10,
                    limit: Some(5),
                    with_values: true,
                },
                level(Level::One),
            )
            .await
            .expect("range");
        let Response::Entries(entries) = range else {
            panic!("entries");
        };
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            keys,
            [
                &b"key:110"[..],
                b"key:111",
                b"key:112",
                b"key:113",
                b"key:114"
            ]
        );
        assert_eq!(
            node.execute(Request::CountKeys, level(Level::One))
                .await
                .expect("count"),
            Response::Count(300)
        );
        assert!(matches!(
            node.execute(Request::RandomKey, level(Level::One))
                .await
                .expect("random"),
            Response::Key(Some(_))
        ));
    }
    c.nodes[2]
        .execute(Request::FlushAll, level(Level::Quorum))
        .await
        .expect("flush");
    assert_eq!(
        c.nodes[0]
            .execute(Request::CountKeys, level(Level::One))
            .await
            .expect("count"),
        Response::Count(0)
    );
    c.mark_down(&[3]);
    assert!(matches!(
        c.nodes[0]
            .execute(Request::FlushAll, level(Level::One))
            .await,
        Err(ClusterError::Unavailable {
            level: Level::All,
            ..
        })
    ));
}
