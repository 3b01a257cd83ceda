//! A coordinator's clock starts above every version its storage holds, so a node whose wall
//! clock stepped back while it was down still wins last-write-wins with its new writes.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_lsm::{Record, Version};

use crate::api::{Cluster, Condition, Consistency, Request, Response, StoredValue, Write};
use crate::clock::{Clock, ManualClock};
use crate::coordinator::{open_storage, ClusterConfig, LocalCluster};
use crate::hlc::LOGICAL_BITS;
use crate::slot::key_slot;
use crate::storage::Storage;

const START_MS: u64 = 1_700_000_000_000;
const HOUR_MS: u64 = 3_600_000;

fn config(dir: &Path, clock: &Arc<ManualClock>) -> ClusterConfig {
    ClusterConfig::new(dir, "node-1")
        .with_clock(Arc::clone(clock) as Arc<dyn Clock>)
        .with_seed(7)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

async fn set(cluster: &LocalCluster, key: &str, value: &str) {
    let writes = vec![Write {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        expire_at_ms: 0,
        condition: Condition::Always,
    }];
    let written = cluster
        .execute(Request::Write { writes }, Consistency::default())
        .await
        .expect("write");
    assert_eq!(written, Response::Written(vec![true]));
}

async fn get(cluster: &LocalCluster, key: &str) -> StoredValue {
    let keys = vec![Bytes::copy_from_slice(key.as_bytes())];
    match cluster
        .execute(Request::Get { keys }, Consistency::default())
        .await
        .expect("read")
    {
        Response::Values(mut values) => values.pop().flatten().expect("the key is set"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_write_after_a_restart_with_the_clock_stepped_back_still_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let cluster = LocalCluster::open(config(dir.path(), &clock)).expect("open");
    let before = rt().block_on(async {
        set(&cluster, "k", "before").await;
        get(&cluster, "k").await
    });
    cluster.shutdown().expect("shutdown");
    drop(cluster);

    clock.set(START_MS - HOUR_MS);
    let cluster = LocalCluster::open(config(dir.path(), &clock)).expect("reopen");
    let after = rt().block_on(async {
        set(&cluster, "k", "after").await;
        get(&cluster, "k").await
    });
    assert_eq!(after.value, Bytes::from("after"));
    assert!(after.version > before.version, "{after:?} vs {before:?}");
    cluster.shutdown().expect("shutdown");
}

#[test]
fn a_stored_version_far_above_the_wall_clock_is_not_bounded_like_a_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START_MS));
    let (db, params) = open_storage(config(dir.path(), &clock)).expect("open");
    // Thirty days ahead: far past the bound on a peer's clock, but this is our own data.
    let future = Version::new((START_MS + 720 * HOUR_MS) << LOGICAL_BITS, 99);
    Storage::put(
        &db,
        key_slot(b"k"),
        Bytes::from_static(b"k"),
        Record::value(future, "from the future"),
    )
    .expect("put");
    let cluster = LocalCluster::with_storage(db, params).expect("coordinator");
    assert!(cluster.hlc().current() >= future.hlc);
    let got = rt().block_on(async {
        set(&cluster, "k", "now").await;
        get(&cluster, "k").await
    });
    assert_eq!(got.value, Bytes::from("now"));
    assert!(got.version > future, "{got:?}");
    cluster.shutdown().expect("shutdown");
}
