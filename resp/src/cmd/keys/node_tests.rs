//! The keyspace family against a real single-node cluster (see `args::harness`).

use crate::cmd::args::harness::{bulk, err, int, ok, Harness};
use crate::reply::Reply;

fn sorted_keys(reply: Reply) -> Vec<Reply> {
    match reply {
        Reply::Array(mut items) => {
            items.sort_by_key(|r| format!("{r:?}"));
            items
        }
        other => panic!("not an array: {other:?}"),
    }
}

#[tokio::test]
async fn del_exists_type_touch() {
    let mut h = Harness::new();
    h.run(&["MSET", "a", "1", "b", "2", "c", "3"]).await;
    assert_eq!(h.run(&["EXISTS", "a", "a", "zz"]).await, int(2));
    assert_eq!(h.run(&["TOUCH", "a", "b", "zz"]).await, int(2));
    assert_eq!(h.run(&["TYPE", "a"]).await, Reply::simple("string"));
    assert_eq!(h.run(&["TYPE", "zz"]).await, Reply::simple("none"));
    assert_eq!(h.run(&["DEL", "a", "a", "zz", "b"]).await, int(2));
    assert_eq!(h.run(&["UNLINK", "c", "a"]).await, int(1));
    assert_eq!(h.run(&["EXISTS", "a", "b", "c"]).await, int(0));
}

#[tokio::test]
async fn keys_scan_and_randomkey() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["RANDOMKEY"]).await, Reply::Null);
    h.run(&[
        "MSET", "user:1", "a", "user:2", "b", "item:1", "c", "hello", "d",
    ])
    .await;
    assert_eq!(
        sorted_keys(h.run(&["KEYS", "user:*"]).await),
        vec![bulk("user:1"), bulk("user:2")]
    );
    assert_eq!(sorted_keys(h.run(&["KEYS", "*"]).await).len(), 4);
    assert_eq!(
        sorted_keys(h.run(&["KEYS", "h[a-e]llo"]).await),
        vec![bulk("hello")]
    );
    let mut cursor = "0".to_owned();
    let mut seen = Vec::new();
    loop {
        let reply = h
            .run(&["SCAN", &cursor, "MATCH", "*:1", "COUNT", "1"])
            .await;
        let Reply::Array(parts) = reply else {
            panic!("SCAN reply is an array")
        };
        let [Reply::Bulk(next), Reply::Array(keys)] = &parts[..] else {
            panic!("SCAN reply is [cursor, keys]: {parts:?}")
        };
        seen.extend(keys.iter().cloned());
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    seen.sort_by_key(|r| format!("{r:?}"));
    seen.dedup();
    assert_eq!(seen, vec![bulk("item:1"), bulk("user:1")]);
    let reply = h.run(&["SCAN", "0", "TYPE", "hash", "COUNT", "100"]).await;
    let Reply::Array(parts) = reply else {
        panic!("SCAN reply is an array")
    };
    assert_eq!(parts[1], Reply::Array(Vec::new()));
    assert_eq!(h.run(&["SCAN", "abc"]).await, err("ERR invalid cursor"));
    assert!(matches!(h.run(&["RANDOMKEY"]).await, Reply::Bulk(_)));
}

#[tokio::test]
async fn rename_and_renamenx() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["RENAME", "a", "b"]).await, err("ERR no such key"));
    h.run(&["SET", "a", "1", "EX", "100"]).await;
    assert_eq!(h.run(&["RENAME", "a", "a"]).await, ok());
    assert_eq!(h.run(&["RENAME", "a", "b"]).await, ok());
    assert_eq!(h.run(&["GET", "b"]).await, bulk("1"));
    assert_eq!(h.run(&["TTL", "b"]).await, int(100));
    assert_eq!(h.run(&["EXISTS", "a"]).await, int(0));
    h.run(&["SET", "c", "3"]).await;
    assert_eq!(h.run(&["RENAMENX", "b", "c"]).await, int(0));
    assert_eq!(h.run(&["RENAMENX", "b", "b"]).await, int(0));
    assert_eq!(h.run(&["RENAMENX", "b", "d"]).await, int(1));
    assert_eq!(h.run(&["GET", "d"]).await, bulk("1"));
    assert_eq!(h.run(&["RENAME", "d", "c"]).await, ok());
    assert_eq!(h.run(&["GET", "c"]).await, bulk("1"));
}

#[tokio::test]
async fn copy_with_options() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["COPY", "a", "b"]).await, int(0));
    h.run(&["SET", "a", "1", "PX", "5000"]).await;
    h.run(&["SET", "c", "3"]).await;
    assert_eq!(h.run(&["COPY", "a", "b"]).await, int(1));
    assert_eq!(h.run(&["PTTL", "b"]).await, int(5000));
    assert_eq!(h.run(&["COPY", "a", "c"]).await, int(0));
    assert_eq!(
        h.run(&["COPY", "a", "c", "REPLACE", "DB", "0"]).await,
        int(1)
    );
    assert_eq!(h.run(&["GET", "c"]).await, bulk("1"));
    assert_eq!(
        h.run(&["COPY", "a", "a"]).await,
        err("ERR source and destination objects are the same")
    );
    assert_eq!(
        h.run(&["COPY", "a", "x", "DB", "1"]).await,
        err("ERR Copying to another database is not allowed in cluster mode")
    );
    assert_eq!(
        h.run(&["COPY", "a", "x", "DB", "16"]).await,
        err("ERR DB index is out of range")
    );
    assert_eq!(
        h.run(&["COPY", "a", "x", "DB"]).await,
        err("ERR syntax error")
    );
}
