//! ringkv's commands against a real single-node cluster (see `args::harness`).

use ringkv_cluster::{Consistency, Level};

use crate::cmd::args::harness::{bulk, bulks, err, ok, Harness};
use crate::reply::Reply;

#[tokio::test]
async fn consistency_shows_and_sets_the_connection_levels() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(&["CONSISTENCY"]).await,
        Reply::Map(vec![
            (bulk("read"), bulk("QUORUM")),
            (bulk("write"), bulk("QUORUM")),
        ])
    );
    assert_eq!(h.run(&["CONSISTENCY", "one"]).await, ok());
    assert_eq!(
        h.consistency(),
        Consistency {
            read: Level::One,
            write: Level::One
        }
    );
    assert_eq!(h.run(&["CONSISTENCY", "WRITE", "ALL"]).await, ok());
    assert_eq!(
        h.consistency(),
        Consistency {
            read: Level::One,
            write: Level::All
        }
    );
    assert!(matches!(
        h.run(&["CONSISTENCY", "SOME"]).await,
        Reply::Error(_)
    ));
    assert_eq!(
        h.run(&["CONSISTENCY", "READ", "ONE", "WRITE"]).await,
        err("ERR syntax error")
    );
}

#[tokio::test]
async fn krange_reads_ordered_keys_between_bounds() {
    let mut h = Harness::new();
    h.run(&["MSET", "a", "1", "b", "2", "c", "3", "d", "4"])
        .await;
    assert_eq!(
        h.run(&["KRANGE", "-", "+"]).await,
        bulks(&["a", "b", "c", "d"])
    );
    assert_eq!(h.run(&["KRANGE", "[b", "(d"]).await, bulks(&["b", "c"]));
    assert_eq!(h.run(&["KRANGE", "(b", "[d"]).await, bulks(&["c", "d"]));
    assert_eq!(
        h.run(&["KRANGE", "-", "+", "LIMIT", "1", "2"]).await,
        bulks(&["b", "c"])
    );
    assert_eq!(
        h.run(&["KRANGE", "[c", "+", "WITHVALUES"]).await,
        bulks(&["c", "3", "d", "4"])
    );
    assert_eq!(h.run(&["KRANGE", "+", "-"]).await, bulks(&[]));
    assert_eq!(h.run(&["KRANGE", "[d", "[a"]).await, bulks(&[]));
    assert_eq!(
        h.run(&["KRANGE", "-", "+", "LIMIT", "-1", "2"]).await,
        bulks(&[])
    );
    assert_eq!(
        h.run(&["KRANGE", "a", "+"]).await,
        err("ERR min or max not valid string range item")
    );
}
