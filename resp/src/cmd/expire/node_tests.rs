//! The expiry family against a real single-node cluster (see `args::harness`).

use crate::cmd::args::harness::{bulk, err, int, Harness, START_MS};
use crate::reply::Reply;

#[tokio::test]
async fn expire_variants_and_ttl() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["EXPIRE", "k", "10"]).await, int(0));
    assert_eq!(h.run(&["TTL", "k"]).await, int(-2));
    h.run(&["SET", "k", "v"]).await;
    assert_eq!(h.run(&["TTL", "k"]).await, int(-1));
    assert_eq!(h.run(&["EXPIRETIME", "k"]).await, int(-1));
    assert_eq!(h.run(&["EXPIRE", "k", "10"]).await, int(1));
    assert_eq!(h.run(&["TTL", "k"]).await, int(10));
    assert_eq!(h.run(&["PEXPIRE", "k", "2500"]).await, int(1));
    assert_eq!(h.run(&["PTTL", "k"]).await, int(2500));
    assert_eq!(h.run(&["TTL", "k"]).await, int(3));
    let at = (START_MS / 1000 + 100).to_string();
    assert_eq!(h.run(&["EXPIREAT", "k", &at]).await, int(1));
    assert_eq!(
        h.run(&["EXPIRETIME", "k"]).await,
        int((START_MS / 1000 + 100) as i64)
    );
    let pat = (START_MS + 7_000).to_string();
    assert_eq!(h.run(&["PEXPIREAT", "k", &pat]).await, int(1));
    assert_eq!(
        h.run(&["PEXPIRETIME", "k"]).await,
        int((START_MS + 7_000) as i64)
    );
    h.clock.advance(7_000);
    assert_eq!(h.run(&["GET", "k"]).await, Reply::Null);
    assert_eq!(h.run(&["TTL", "k"]).await, int(-2));
}

#[tokio::test]
async fn past_times_delete_the_key() {
    let mut h = Harness::new();
    h.run(&["SET", "k", "v"]).await;
    assert_eq!(h.run(&["EXPIRE", "k", "-1"]).await, int(1));
    assert_eq!(h.run(&["EXISTS", "k"]).await, int(0));
    h.run(&["SET", "k", "v"]).await;
    assert_eq!(h.run(&["PEXPIREAT", "k", "1"]).await, int(1));
    assert_eq!(h.run(&["EXISTS", "k"]).await, int(0));
}

#[tokio::test]
async fn nx_xx_gt_lt() {
    let mut h = Harness::new();
    h.run(&["SET", "k", "v"]).await;
    assert_eq!(h.run(&["EXPIRE", "k", "10", "XX"]).await, int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "10", "GT"]).await, int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "10", "NX"]).await, int(1));
    assert_eq!(h.run(&["EXPIRE", "k", "20", "NX"]).await, int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "5", "GT"]).await, int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "20", "GT"]).await, int(1));
    assert_eq!(h.run(&["EXPIRE", "k", "30", "LT"]).await, int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "15", "lt", "xx"]).await, int(1));
    assert_eq!(h.run(&["TTL", "k"]).await, int(15));
    assert_eq!(
        h.run(&["EXPIRE", "k", "15", "NX", "XX"]).await,
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        h.run(&["EXPIRE", "k", "15", "GT", "LT"]).await,
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(
        h.run(&["EXPIRE", "k", "15", "FOO"]).await,
        err("ERR Unsupported option FOO")
    );
    assert_eq!(
        h.run(&["EXPIRE", "k", "x"]).await,
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["EXPIRE", "k", "9223372036854775807"]).await,
        err("ERR invalid expire time in 'expire' command")
    );
}

#[tokio::test]
async fn persist_removes_the_expiry() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["PERSIST", "k"]).await, int(0));
    h.run(&["SET", "k", "v"]).await;
    assert_eq!(h.run(&["PERSIST", "k"]).await, int(0));
    h.run(&["EXPIRE", "k", "10"]).await;
    assert_eq!(h.run(&["PERSIST", "k"]).await, int(1));
    assert_eq!(h.run(&["TTL", "k"]).await, int(-1));
    assert_eq!(h.run(&["GET", "k"]).await, bulk("v"));
}
