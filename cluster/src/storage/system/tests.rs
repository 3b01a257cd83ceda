//! System keyspace tests over the real engine in a tempdir: round trips (across a reopen),
//! versions, corrupt records, and invisibility to the coordinator's user-keyspace walks.

use std::ops::Bound;

use bytes::Bytes;
use ringkv_lsm::{Db, Options, Record, Version};

use super::*;
use crate::api::{Cluster, Condition, Consistency, Level, Request, Response, ScanCursor, Write};
use crate::coordinator::{ClusterConfig, LocalCluster};

fn state(generation: u64) -> LocalState {
    LocalState {
        node_id: "node-7".into(),
        tokens: vec![0, 17, 4096, SLOTS - 1],
        generation,
    }
}

fn open(dir: &std::path::Path) -> Db {
    Db::open(dir, Options::default()).expect("open")
}

#[test]
fn state_round_trips_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    assert_eq!(load_local_state(&db).expect("load"), None);
    store_local_state(&db, &state(5)).expect("store");
    assert_eq!(load_local_state(&db).expect("load"), Some(state(5)));
    db.close().expect("close");

    let db = open(dir.path());
    assert_eq!(load_local_state(&db).expect("load"), Some(state(5)));
    let next = LocalState {
        generation: 6,
        ..state(5)
    };
    store_local_state(&db, &next).expect("store");
    db.close().expect("close");
    let db = open(dir.path());
    assert_eq!(load_local_state(&db).expect("load"), Some(next));
}

#[test]
fn a_later_store_wins_whatever_its_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    store_local_state(&db, &state(100)).expect("store");
    let older = LocalState {
        tokens: vec![1, 2, 3],
        ..state(3)
    };
    store_local_state(&db, &older).expect("store");
    assert_eq!(load_local_state(&db).expect("load"), Some(older.clone()));
    let same = LocalState {
        tokens: vec![9],
        ..older
    };
    store_local_state(&db, &same).expect("store");
    assert_eq!(load_local_state(&db).expect("load"), Some(same));
}

#[test]
fn empty_ids_and_tokens_round_trip() {
    let s = LocalState {
        node_id: String::new(),
        tokens: Vec::new(),
        generation: 0,
    };
    assert_eq!(decode(&encode(&s).expect("encode")).expect("decode"), s);
}

#[test]
fn damaged_records_are_errors_not_panics() {
    let good = encode(&state(5)).expect("encode");
    for i in 0..good.len() {
        let mut bad = good.to_vec();
        bad[i] ^= 0x40;
        assert!(
            matches!(decode(&bad), Err(ClusterError::Corrupt { .. })),
            "flip at {i}"
        );
    }
    for len in 0..good.len() {
        assert!(
            matches!(decode(&good[..len]), Err(ClusterError::Corrupt { .. })),
            "truncated to {len}"
        );
    }
    // A well-checksummed record whose lengths lie.
    let mut lying = good[..good.len() - CRC_LEN].to_vec();
    lying[13..17].copy_from_slice(&u32::MAX.to_be_bytes());
    let crc = crc32fast::hash(&lying);
    lying.extend_from_slice(&crc.to_be_bytes());
    let err = decode(&lying).expect_err("lying length");
    assert!(err.to_string().contains("local ring state"), "{err}");
    // An unknown layout version.
    let mut future = good[..good.len() - CRC_LEN].to_vec();
    future[4] = FORMAT + 1;
    let crc = crc32fast::hash(&future);
    future.extend_from_slice(&crc.to_be_bytes());
    assert!(decode(&future)
        .expect_err("future layout")
        .to_string()
        .contains("layout version"));
}

#[test]
fn a_garbage_record_in_the_engine_loads_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    Storage::put(
        &db,
        SYSTEM_SLOT,
        Bytes::from_static(LOCAL_STATE_KEY),
        Record::value(Version::new(1, 0), "not a state"),
    )
    .expect("put");
    assert!(matches!(
        load_local_state(&db),
        Err(ClusterError::Corrupt { .. })
    ));
    // A store over it repairs it; a tombstone over that reads as no state.
    store_local_state(&db, &state(2)).expect("store");
    assert_eq!(load_local_state(&db).expect("load"), Some(state(2)));
    Storage::put(
        &db,
        SYSTEM_SLOT,
        Bytes::from_static(LOCAL_STATE_KEY),
        Record::tombstone(Version::new(u64::MAX, 0)),
    )
    .expect("delete");
    assert_eq!(load_local_state(&db).expect("load"), None);
}

#[test]
fn tokens_outside_the_ring_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let bad = LocalState {
        tokens: vec![SLOTS],
        ..state(1)
    };
    assert!(matches!(
        store_local_state(&db, &bad),
        Err(ClusterError::Corrupt { .. })
    ));
    assert_eq!(load_local_state(&db).expect("load"), None);
}

#[test]
fn generations_grow_on_every_start() {
    assert_eq!(
        LocalState::next_generation(None, 1_700_000_000_123),
        1_700_000_000
    );
    assert_eq!(LocalState::next_generation(None, 0), 1);
    let prev = state(1_700_000_000);
    // The clock stepped back: still above the previous generation.
    assert_eq!(
        LocalState::next_generation(Some(&prev), 1_600_000_000_000),
        1_700_000_001
    );
    assert_eq!(
        LocalState::next_generation(Some(&prev), 1_800_000_000_000),
        1_800_000_000
    );
}

fn one() -> Consistency {
    Consistency {
        read: Level::One,
        write: Level::One,
    }
}

fn set(key: &str) -> Write {
    Write {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Some(Bytes::from_static(b"v")),
        expire_at_ms: 0,
        condition: Condition::Always,
    }
}

#[test]
fn user_walks_never_see_the_system_keyspace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster =
        LocalCluster::open(ClusterConfig::new(dir.path(), "node-7").with_seed(3)).expect("open");
    store_local_state(cluster.storage(), &state(9)).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let exec = |request| cluster.execute(request, one());
        assert_eq!(
            exec(Request::RandomKey).await.expect("randomkey"),
            Response::Key(None)
        );
        assert_eq!(
            exec(Request::CountKeys).await.expect("dbsize"),
            Response::Count(0)
        );
        exec(Request::Write {
            writes: vec![set("a"), set("b")],
        })
        .await
        .expect("write");
        assert_eq!(
            exec(Request::CountKeys).await.expect("dbsize"),
            Response::Count(2)
        );
        let mut seen = Vec::new();
        let mut cursor = ScanCursor(0);
        loop {
            match exec(Request::Scan { cursor, count: 100 })
                .await
                .expect("scan")
            {
                Response::Scanned { keys, next } => {
                    seen.extend(keys);
                    cursor = next;
                }
                other => panic!("unexpected {other:?}"),
            }
            if cursor == ScanCursor(0) {
                break;
            }
        }
        seen.sort();
        assert_eq!(seen, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        let all = Request::Range {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            offset: 0,
            limit: None,
            with_values: false,
        };
        match exec(all).await.expect("krange") {
            Response::Entries(entries) => assert_eq!(entries.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        let system_slot = Request::CountKeysInSlot { slot: SYSTEM_SLOT };
        assert_eq!(
            exec(system_slot).await.expect("countkeysinslot"),
            Response::Count(0)
        );
        assert_eq!(
            exec(Request::FlushAll).await.expect("flushall"),
            Response::Done
        );
        assert_eq!(
            exec(Request::CountKeys).await.expect("dbsize"),
            Response::Count(0)
        );
    });
    assert_eq!(
        load_local_state(cluster.storage()).expect("load"),
        Some(state(9)),
        "FLUSHALL keeps the node's ring identity"
    );
}
