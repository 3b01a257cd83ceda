//! The data commands (strings, keyspace, expiry, CONSISTENCY, KRANGE) as a client sees them,
//! over raw TCP against a real single-node cluster: replies and Redis's error texts in RESP2
//! and RESP3, concurrent read-modify-writes that must not lose updates, a full SCAN, and a
//! consistency level the node cannot meet.

#[path = "common/node.rs"]
mod node;

use node::{text, Client, TestNode};
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::OwnedFrame as Frame3;

fn bulk(s: &str) -> Frame2 {
    Frame2::BulkString(s.as_bytes().to_vec())
}

fn int(n: i64) -> Frame2 {
    Frame2::Integer(n)
}

#[tokio::test]
async fn string_commands_reply_as_redis() {
    let node = TestNode::start_default().await;
    let mut c = node.client().await;
    assert_eq!(
        text(&c.call(&["SET", "k", "v", "NX", "EX", "100"]).await),
        "OK"
    );
    assert_eq!(c.call(&["SET", "k", "w", "NX"]).await, Frame2::Null);
    assert_eq!(c.call(&["SET", "k", "w", "GET"]).await, bulk("v"));
    assert_eq!(c.call(&["TTL", "k"]).await, int(-1));
    assert_eq!(
        text(&c.call(&["SET", "k", "v", "EX", "1", "KEEPTTL"]).await),
        "-ERR syntax error"
    );
    assert_eq!(
        text(&c.call(&["SET", "k", "v", "PX", "-5"]).await),
        "-ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        text(&c.call(&["GET"]).await),
        "-ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(c.call(&["INCRBY", "n", "5"]).await, int(5));
    assert_eq!(c.call(&["INCRBYFLOAT", "n", "0.1"]).await, bulk("5.1"));
    assert_eq!(
        text(&c.call(&["INCR", "n"]).await),
        "-ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.call(&["MGET", "k", "missing", "n"]).await,
        Frame2::Array(vec![bulk("w"), Frame2::Null, bulk("5.1")])
    );
    assert_eq!(c.call(&["APPEND", "k", "xyz"]).await, int(4));
    assert_eq!(c.call(&["GETRANGE", "k", "1", "-1"]).await, bulk("xyz"));
    assert_eq!(c.call(&["SETBIT", "bits", "9", "1"]).await, int(0));
    assert_eq!(c.call(&["BITCOUNT", "bits"]).await, int(1));
    assert_eq!(c.call(&["BITPOS", "bits", "1"]).await, int(9));
}

#[tokio::test]
async fn lcs_idx_and_consistency_are_maps_in_resp3_and_flat_in_resp2() {
    let node = TestNode::start_default().await;
    let mut c = node.client().await;
    c.call(&["MSET", "a", "ohmytext", "b", "mynewtext"]).await;
    let Frame2::Array(flat) = c.call(&["LCS", "a", "b", "IDX"]).await else {
        panic!("LCS IDX in RESP2 is an array")
    };
    assert_eq!(flat.len(), 4);
    assert_eq!(flat[0], bulk("matches"));
    assert_eq!(flat[2], bulk("len"));
    assert_eq!(flat[3], int(6));
    assert_eq!(
        c.call(&["CONSISTENCY"]).await,
        Frame2::Array(vec![
            bulk("read"),
            bulk("QUORUM"),
            bulk("write"),
            bulk("QUORUM")
        ])
    );
    let mut c3 = node.client().await;
    assert!(matches!(
        c3.call3(&["HELLO", "3"]).await,
        Frame3::Map { .. }
    ));
    assert!(matches!(
        c3.call3(&["LCS", "a", "b", "IDX"]).await,
        Frame3::Map { .. }
    ));
    assert!(matches!(
        c3.call3(&["CONSISTENCY"]).await,
        Frame3::Map { .. }
    ));
}

#[tokio::test]
async fn a_level_the_node_cannot_meet_fails_the_request_not_the_setting() {
    let node = TestNode::start_default().await;
    let mut c = node.client().await;
    assert_eq!(text(&c.call(&["CONSISTENCY", "READ", "TWO"]).await), "OK");
    let reply = text(&c.call(&["GET", "k"]).await);
    assert!(
        reply.starts_with("-ERR") && reply.contains("TWO"),
        "{reply}"
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"]).await), "OK");
    assert_eq!(text(&c.call(&["CONSISTENCY", "ONE"]).await), "OK");
    assert_eq!(c.call(&["GET", "k"]).await, bulk("v"));
    let reply = text(&c.call(&["CONSISTENCY", "MOST"]).await);
    assert!(
        reply.starts_with("-ERR unknown consistency level 'MOST'"),
        "{reply}"
    );
}

#[tokio::test]
async fn concurrent_increments_and_appends_lose_no_update() {
    let node = TestNode::start_default().await;
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 100;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = Client::connect(node.addr).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let Frame2::Integer(_) = c.call(&["INCR", "counter"]).await else {
                    panic!("INCR failed")
                };
                let Frame2::Integer(_) = c.call(&["APPEND", "log", "x"]).await else {
                    panic!("APPEND failed")
                };
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let mut c = node.client().await;
    let total = (CLIENTS * ROUNDS) as i64;
    assert_eq!(c.call(&["GET", "counter"]).await, bulk(&total.to_string()));
    assert_eq!(c.call(&["STRLEN", "log"]).await, int(total));
}

#[tokio::test]
async fn scan_visits_every_key_and_keys_matches_patterns() {
    let node = TestNode::start_default().await;
    let mut c = node.client().await;
    let mut mset = vec!["MSET".to_owned()];
    for i in 0..200 {
        mset.push(format!("key:{i}"));
        mset.push(i.to_string());
    }
    let args: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(text(&c.call(&args).await), "OK");
    let mut cursor = "0".to_owned();
    let mut seen = std::collections::HashSet::new();
    loop {
        let Frame2::Array(parts) = c.call(&["SCAN", &cursor, "COUNT", "7"]).await else {
            panic!("SCAN reply is an array")
        };
        let [Frame2::BulkString(next), Frame2::Array(keys)] = &parts[..] else {
            panic!("SCAN reply is [cursor, keys]")
        };
        for key in keys {
            seen.insert(text(key));
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 200);
    let Frame2::Array(matched) = c.call(&["KEYS", "key:1?"]).await else {
        panic!("KEYS reply is an array")
    };
    assert_eq!(matched.len(), 10);
    assert_eq!(c.call(&["DEL", "key:1", "key:2", "nope"]).await, int(2));
    assert_eq!(c.call(&["EXISTS", "key:1", "key:3"]).await, int(1));
}

#[tokio::test]
async fn krange_reads_a_hash_tagged_range_in_order() {
    let node = TestNode::start_default().await;
    let mut c = node.client().await;
    c.call(&[
        "MSET", "{u}:c", "3", "{u}:a", "1", "{u}:b", "2", "{v}:a", "9",
    ])
    .await;
    assert_eq!(
        c.call(&["KRANGE", "[{u}:", "({u};", "WITHVALUES"]).await,
        Frame2::Array(vec![
            bulk("{u}:a"),
            bulk("1"),
            bulk("{u}:b"),
            bulk("2"),
            bulk("{u}:c"),
            bulk("3")
        ])
    );
    assert_eq!(
        c.call(&["KRANGE", "-", "+", "LIMIT", "1", "2"]).await,
        Frame2::Array(vec![bulk("{u}:b"), bulk("{u}:c")])
    );
    assert_eq!(
        text(&c.call(&["KRANGE", "{u}", "+"]).await),
        "-ERR min or max not valid string range item"
    );
}

#[tokio::test]
async fn expiry_and_rename_over_the_wire() {
    let node = TestNode::start_default().await;
    let mut c = node.client().await;
    c.call(&["SET", "k", "v"]).await;
    assert_eq!(c.call(&["EXPIRE", "k", "100", "NX"]).await, int(1));
    assert_eq!(c.call(&["EXPIRE", "k", "50", "GT"]).await, int(0));
    assert_eq!(
        text(&c.call(&["EXPIRE", "k", "50", "NX", "LT"]).await),
        "-ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        c.call(&["RENAME", "k", "k2"]).await,
        Frame2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(c.call(&["TTL", "k2"]).await, int(100));
    assert_eq!(
        text(&c.call(&["RENAME", "k", "k3"]).await),
        "-ERR no such key"
    );
    assert_eq!(c.call(&["PERSIST", "k2"]).await, int(1));
    assert_eq!(c.call(&["TTL", "k2"]).await, int(-1));
    assert_eq!(
        c.call(&["TYPE", "k2"]).await,
        Frame2::SimpleString(b"string".to_vec())
    );
    assert_eq!(c.call(&["EXPIRE", "k2", "0"]).await, int(1));
    assert_eq!(
        c.call(&["TYPE", "k2"]).await,
        Frame2::SimpleString(b"none".to_vec())
    );
}
