//! Coordinator tests over the real engine in a tempdir: levels, reads and writes, conditions,
//! scans (and their guarantee under concurrent changes), ranges, keyspace requests, and a
//! proptest against a `BTreeMap` model.

mod clock_start;
mod forwarded;
mod model;
mod sim;
mod whole_keyspace;

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_lsm::{FsyncMode, Options};
use tempfile::TempDir;

use crate::api::{
    Cluster, Condition, Consistency, Level, Request, Response, ScanCursor, StoredValue, Write,
};
use crate::clock::{Clock, ManualClock};
use crate::coordinator::scan::{make_cursor, split_cursor};
use crate::coordinator::{ClusterConfig, LocalCluster};
use crate::error::ClusterError;
use crate::slot::key_slot;

const START_MS: u64 = 1_700_000_000_000;

struct Node {
    cluster: LocalCluster,
    clock: Arc<ManualClock>,
    _dir: TempDir,
}

fn open_node(fsync: FsyncMode) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let config = ClusterConfig::new(dir.path(), "node-1")
        .with_engine(Options::default().with_fsync(fsync))
        .with_clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .with_seed(7);
    let cluster = LocalCluster::open(config).expect("open");
    Node {
        cluster,
        clock,
        _dir: dir,
    }
}

fn node() -> Node {
    open_node(FsyncMode::Periodic { interval_ms: 1000 })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn one() -> Consistency {
    Consistency {
        read: Level::One,
        write: Level::One,
    }
}

fn set(key: &str, value: &str) -> Write {
    Write {
        key: b(key),
        value: Some(b(value)),
        expire_at_ms: 0,
        condition: Condition::Always,
    }
}

impl Node {
    async fn exec(&self, request: Request) -> Response {
        self.cluster
            .execute(request, Consistency::default())
            .await
            .expect("request succeeds")
    }

    async fn write(&self, writes: Vec<Write>) -> Vec<bool> {
        match self.exec(Request::Write { writes }).await {
            Response::Written(flags) => flags,
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn get(&self, key: &str) -> Option<StoredValue> {
        match self.exec(Request::Get { keys: vec![b(key)] }).await {
            Response::Values(mut v) => v.pop().expect("one value"),
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn scan_step(&self, cursor: ScanCursor, count: usize) -> (Vec<Bytes>, ScanCursor) {
        match self.exec(Request::Scan { cursor, count }).await {
            Response::Scanned { keys, next } => (keys, next),
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn scan_all(&self, count: usize) -> Vec<Bytes> {
        let mut cursor = ScanCursor(0);
        let mut all = Vec::new();
        loop {
            let (keys, next) = self.scan_step(cursor, count).await;
            all.extend(keys);
            if next.0 == 0 {
                return all;
            }
            cursor = next;
        }
    }

    async fn range(
        &self,
        start: Bound<Bytes>,
        end: Bound<Bytes>,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(Bytes, Option<StoredValue>)> {
        let request = Request::Range {
            start,
            end,
            offset,
            limit,
            with_values: true,
        };
        match self.exec(request).await {
            Response::Entries(e) => e,
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn count(&self, request: Request) -> u64 {
        match self.exec(request).await {
            Response::Count(n) => n,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn every_level_but_two_and_three_works_on_one_node() {
    let n = node();
    rt().block_on(async {
        for level in Level::ALL {
            let c = Consistency {
                read: level,
                write: level,
            };
            let write = n
                .cluster
                .execute(
                    Request::Write {
                        writes: vec![set("k", "v")],
                    },
                    c,
                )
                .await;
            let read = n
                .cluster
                .execute(Request::Get { keys: vec![b("k")] }, c)
                .await;
            match level {
                Level::Two | Level::Three => {
                    for result in [write, read] {
                        let err = result.expect_err("needs more replicas than exist");
                        assert!(matches!(
                            err,
                            ClusterError::Unavailable { level: l, alive: 1, .. } if l == level
                        ));
                        assert!(err.to_string().contains(level.name()));
                    }
                }
                Level::Any => {
                    assert!(matches!(write, Ok(Response::Written(_))));
                    let err = read.expect_err("ANY is for writes");
                    assert!(matches!(
                        err,
                        ClusterError::UnsupportedLevel {
                            level: Level::Any,
                            operation: "reads"
                        }
                    ));
                }
                _ => {
                    assert!(matches!(write, Ok(Response::Written(ref f)) if f == &[true]));
                    assert!(matches!(read, Ok(Response::Values(ref v)) if v[0].is_some()));
                }
            }
        }
        // The level of the request's kind is the one checked: TWO for reads only.
        let mixed = Consistency {
            read: Level::Two,
            write: Level::One,
        };
        assert!(n
            .cluster
            .execute(
                Request::Write {
                    writes: vec![set("k", "v")]
                },
                mixed
            )
            .await
            .is_ok());
        let err = n
            .cluster
            .execute(Request::CountKeys, mixed)
            .await
            .expect_err("TWO read");
        assert_eq!(
            err.to_string(),
            "cannot achieve consistency level TWO: 2 replica(s) required but only 1 alive"
        );
    });
}

#[test]
fn writes_get_increasing_versions_and_deletes_hide_keys() {
    let n = node();
    rt().block_on(async {
        assert_eq!(n.get("k").await, None);
        assert_eq!(n.write(vec![set("k", "1")]).await, vec![true]);
        let first = n.get("k").await.expect("written");
        assert_eq!(first.value, b("1"));
        assert_eq!(first.version.millis(), START_MS);
        assert_eq!(first.version.node, crate::node_id::node_number("node-1"));
        n.write(vec![set("k", "2")]).await;
        let second = n.get("k").await.expect("written");
        assert!(second.version > first.version);
        assert_eq!(second.value, b("2"));
        let delete = Write {
            value: None,
            ..set("k", "")
        };
        assert_eq!(n.write(vec![delete]).await, vec![true]);
        assert_eq!(n.get("k").await, None);
        // The tombstone is in the engine, not a missing key.
        let record = crate::storage::Storage::get(n.cluster.storage(), key_slot(b"k"), b"k")
            .expect("read")
            .expect("tombstone");
        assert!(record.is_tombstone());
    });
}

#[test]
fn expired_values_read_as_absent() {
    let n = node();
    rt().block_on(async {
        let w = Write {
            expire_at_ms: START_MS + 100,
            ..set("t", "v")
        };
        n.write(vec![w]).await;
        assert_eq!(n.get("t").await.expect("live").expire_at_ms, START_MS + 100);
        n.clock.advance(99);
        assert!(n.get("t").await.is_some());
        n.clock.advance(1);
        assert_eq!(n.get("t").await, None);
        assert!(n.scan_all(10).await.is_empty());
        assert_eq!(n.count(Request::CountKeys).await, 0);
        // An expired key is absent for conditions too.
        let nx = Write {
            condition: Condition::IfVersion(None),
            ..set("t", "again")
        };
        assert_eq!(n.write(vec![nx]).await, vec![true]);
    });
}

#[test]
fn conditions_compare_the_live_version() {
    let n = node();
    rt().block_on(async {
        let nx = |v: &str| Write {
            condition: Condition::IfVersion(None),
            ..set("c", v)
        };
        assert_eq!(n.write(vec![nx("1")]).await, vec![true]);
        assert_eq!(n.write(vec![nx("2")]).await, vec![false]);
        let current = n.get("c").await.expect("present");
        assert_eq!(current.value, b("1"));
        let cas = |v: &str, version| Write {
            condition: Condition::IfVersion(Some(version)),
            ..set("c", v)
        };
        assert_eq!(n.write(vec![cas("3", current.version)]).await, vec![true]);
        // The old version is stale now.
        assert_eq!(n.write(vec![cas("4", current.version)]).await, vec![false]);
        assert_eq!(n.get("c").await.expect("present").value, b("3"));
        // Within one request, later conditions see earlier writes.
        let flags = n
            .write(vec![
                Write {
                    value: None,
                    ..set("d", "")
                },
                Write {
                    condition: Condition::IfVersion(None),
                    ..set("d", "fresh")
                },
                Write {
                    condition: Condition::IfVersion(None),
                    ..set("d", "again")
                },
            ])
            .await;
        assert_eq!(flags, vec![true, true, false]);
        assert_eq!(n.get("d").await.expect("present").value, b("fresh"));
    });
}

#[test]
fn concurrent_compare_and_set_increments_lose_nothing() {
    let n = node();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .worker_threads(4)
        .build()
        .expect("runtime");
    let cluster = n.cluster.clone();
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        loop {
                            let current = match cluster
                                .execute(Request::Get { keys: vec![b("ctr")] }, one())
                                .await
                                .expect("get")
                            {
                                Response::Values(mut v) => v.pop().flatten(),
                                other => panic!("unexpected {other:?}"),
                            };
                            let n: u64 = current
                                .as_ref()
                                .map(|c| String::from_utf8_lossy(&c.value).parse().expect("int"))
                                .unwrap_or(0);
                            let w = Write {
                                condition: Condition::IfVersion(current.map(|c| c.version)),
                                ..set("ctr", &(n + 1).to_string())
                            };
                            let done = cluster
                                .execute(Request::Write { writes: vec![w] }, one())
                                .await
                                .expect("write");
                            if done == Response::Written(vec![true]) {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let last = cluster
            .execute(Request::Get { keys: vec![b("ctr")] }, one())
            .await
            .expect("get");
        assert!(
            matches!(last, Response::Values(ref v) if v[0].as_ref().map(|s| s.value.clone()) == Some(b("400")))
        );
    });
}

#[test]
fn fsync_always_writes_run_off_the_runtime_and_persist() {
    let n = open_node(FsyncMode::Always);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let writes: Vec<_> = (0..20).map(|i| set(&format!("k{i}"), "v")).collect();
        assert_eq!(n.write(writes).await, vec![true; 20]);
        assert_eq!(n.count(Request::CountKeys).await, 20);
    });
    n.cluster.shutdown().expect("shutdown");
    let refused = rt().block_on(n.cluster.execute(Request::CountKeys, one()));
    assert!(matches!(refused, Err(ClusterError::ShuttingDown)));
    // Reopen the same directory once the old handle is gone: the data is there.
    let Node {
        cluster,
        clock,
        _dir: dir,
    } = n;
    drop(cluster);
    let config =
        ClusterConfig::new(dir.path(), "node-1").with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let reopened = LocalCluster::open(config).expect("reopen");
    let count = rt()
        .block_on(reopened.execute(Request::CountKeys, one()))
        .expect("count");
    assert_eq!(count, Response::Count(20));
}

#[test]
fn scan_returns_every_key_once_in_slot_order() {
    let n = node();
    rt().block_on(async {
        let keys: Vec<String> = (0..1000).map(|i| format!("key:{i}")).collect();
        for chunk in keys.chunks(100) {
            n.write(chunk.iter().map(|k| set(k, "v")).collect()).await;
        }
        for count in [1, 10, 333, 5000] {
            let got = n.scan_all(count).await;
            assert_eq!(got.len(), 1000, "count {count}");
            let slots: Vec<u16> = got.iter().map(|k| key_slot(k)).collect();
            assert!(slots.windows(2).all(|w| w[0] <= w[1]), "slot order");
            let set: BTreeSet<_> = got.into_iter().collect();
            assert_eq!(set.len(), 1000);
        }
        // A step returns about COUNT keys and a non-zero cursor naming the last key's slot.
        let (first, next) = n.scan_step(ScanCursor(0), 10).await;
        assert_eq!(first.len(), 10);
        let (slot, handle) = split_cursor(next);
        assert_eq!(slot, u64::from(key_slot(first.last().expect("key"))));
        assert_ne!(handle, 0);
    });
}

#[test]
fn scan_with_an_unknown_handle_restarts_its_slot() {
    let n = node();
    rt().block_on(async {
        // Three keys in one slot, one in a later slot.
        n.write(vec![set("{s}a", "v"), set("{s}b", "v"), set("{s}c", "v")])
            .await;
        let slot = key_slot(b"s");
        let forged = make_cursor(slot, 12345);
        let (keys, next) = n.scan_step(forged, 100).await;
        assert_eq!(keys, vec![b("{s}a"), b("{s}b"), b("{s}c")]);
        assert_eq!(next, ScanCursor(0));
        // A cursor beyond the last slot is simply done.
        let (keys, next) = n.scan_step(ScanCursor(u64::MAX), 10).await;
        assert!(keys.is_empty());
        assert_eq!(next, ScanCursor(0));
        // A known cursor may be repeated, as Redis allows.
        let (first, cursor) = n.scan_step(ScanCursor(0), 1).await;
        let again1 = n.scan_step(cursor, 1).await;
        let again2 = n.scan_step(cursor, 1).await;
        // Same keys; each step hands out its own handle.
        assert_eq!(again1.0, again2.0);
        assert_eq!(split_cursor(again1.1).0, split_cursor(again2.1).0);
        assert_eq!(first, vec![b("{s}a")]);
        assert_eq!(again1.0, vec![b("{s}b")]);
    });
}

#[test]
fn scan_returns_keys_present_throughout_despite_concurrent_changes() {
    let n = node();
    rt().block_on(async {
        let stable: Vec<String> = (0..600).map(|i| format!("stable:{i}")).collect();
        for chunk in stable.chunks(100) {
            n.write(chunk.iter().map(|k| set(k, "v")).collect()).await;
        }
        let mut churn = 0u32;
        let mut cursor = ScanCursor(0);
        let mut seen = BTreeSet::new();
        loop {
            let (keys, next) = n.scan_step(cursor, 25).await;
            seen.extend(keys);
            // Between steps, insert new keys and delete earlier churn keys all over the ring.
            let mut writes = Vec::new();
            for _ in 0..20 {
                writes.push(set(&format!("churn:{churn}"), "x"));
                if churn >= 10 {
                    writes.push(Write {
                        value: None,
                        ..set(&format!("churn:{}", churn - 10), "")
                    });
                }
                churn += 1;
            }
            n.write(writes).await;
            if next.0 == 0 {
                break;
            }
            cursor = next;
        }
        for k in &stable {
            assert!(seen.contains(&b(k)), "{k} missing from the scan");
        }
    });
}

#[test]
fn range_merges_slots_in_byte_order() {
    let n = node();
    rt().block_on(async {
        let keys = [
            "a", "b", "c", "d", "e", "{t}1", "{t}2", "{t}3", "x{t}", "zz",
        ];
        n.write(keys.iter().map(|k| set(k, &format!("v-{k}"))).collect())
            .await;
        let all = n.range(Bound::Unbounded, Bound::Unbounded, 0, None).await;
        let got: Vec<Bytes> = all.iter().map(|(k, _)| k.clone()).collect();
        let mut sorted: Vec<Bytes> = keys.iter().map(|k| b(k)).collect();
        sorted.sort();
        assert_eq!(got, sorted);
        assert_eq!(all[0].1.as_ref().expect("value").value, b("v-a"));

        let inc = |s: &str| Bound::Included(b(s));
        let exc = |s: &str| Bound::Excluded(b(s));
        let keys_of = |e: Vec<(Bytes, Option<StoredValue>)>| {
            e.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(
            keys_of(n.range(inc("b"), exc("e"), 0, None).await),
            vec![b("b"), b("c"), b("d")]
        );
        assert_eq!(
            keys_of(n.range(exc("b"), inc("e"), 1, Some(2)).await),
            vec![b("d"), b("e")]
        );
        // One slot: the shared tag prefix.
        assert_eq!(
            keys_of(n.range(inc("{t}"), inc("{t}\u{7f}"), 0, None).await),
            vec![b("{t}1"), b("{t}2"), b("{t}3")]
        );
        assert_eq!(
            keys_of(n.range(exc("{t}1"), inc("{t}3"), 1, Some(5)).await),
            vec![b("{t}3")]
        );
        assert!(n.range(inc("z"), inc("a"), 0, None).await.is_empty());
        assert!(n
            .range(Bound::Unbounded, Bound::Unbounded, 0, Some(0))
            .await
            .is_empty());
        assert!(n
            .range(Bound::Unbounded, Bound::Unbounded, 10, None)
            .await
            .is_empty());

        let no_values = Request::Range {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            offset: 0,
            limit: Some(2),
            with_values: false,
        };
        assert_eq!(
            n.exec(no_values).await,
            Response::Entries(vec![(b("a"), None), (b("b"), None)])
        );
    });
}

#[test]
fn counts_random_key_and_flush_all() {
    let n = node();
    rt().block_on(async {
        assert_eq!(n.exec(Request::RandomKey).await, Response::Key(None));
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        n.write(keys.iter().map(|k| set(k, "v")).collect()).await;
        n.write(vec![set("{s}1", "v"), set("{s}2", "v")]).await;
        assert_eq!(n.count(Request::CountKeys).await, 302);
        let slot = key_slot(b"s");
        assert_eq!(n.count(Request::CountKeysInSlot { slot }).await, 2);
        // Slots past the user slots (system keyspaces) hold no user keys.
        let system = crate::slot::SLOTS;
        assert_eq!(n.count(Request::CountKeysInSlot { slot: system }).await, 0);
        let mut picked = BTreeSet::new();
        for _ in 0..50 {
            match n.exec(Request::RandomKey).await {
                Response::Key(Some(k)) => {
                    assert!(n.get(&String::from_utf8_lossy(&k)).await.is_some());
                    picked.insert(k);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(picked.len() > 10, "random keys vary: {}", picked.len());
        assert_eq!(n.exec(Request::FlushAll).await, Response::Done);
        assert_eq!(n.count(Request::CountKeys).await, 0);
        assert_eq!(n.exec(Request::RandomKey).await, Response::Key(None));
        assert_eq!(n.get("k1").await, None);
        // Writes after the flush are kept.
        n.write(vec![set("after", "v")]).await;
        assert_eq!(n.count(Request::CountKeys).await, 1);
    });
}

#[test]
fn info_describes_a_single_node() {
    let n = node();
    let info = n.cluster.info();
    assert_eq!(info.node_id, "node-1");
    assert_eq!(info.replication_factor, 1);
    assert_eq!(info.nodes, 1);
    assert_eq!(n.cluster.now_ms(), START_MS);
}

#[test]
fn user_keys_may_use_the_whole_configured_key_limit() {
    let n = node();
    rt().block_on(async {
        let limit = Options::default().max_key_bytes;
        let key = "k".repeat(limit);
        assert_eq!(n.write(vec![set(&key, "v")]).await, vec![true]);
        let too_long = "k".repeat(limit + 1);
        let err = n
            .cluster
            .execute(
                Request::Write {
                    writes: vec![set(&too_long, "v")],
                },
                one(),
            )
            .await
            .expect_err("over the limit");
        assert!(matches!(err, ClusterError::Storage(_)));
    });
}
