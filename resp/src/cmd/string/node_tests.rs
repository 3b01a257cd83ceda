//! The string family against a real single-node cluster (see `args::harness`).

use bytes::Bytes;

use crate::cmd::args::harness::{bulk, bulks, err, int, ok, Harness};
use crate::reply::Reply;

#[tokio::test]
async fn set_and_get_with_every_option() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["GET", "k"]).await, Reply::Null);
    assert_eq!(h.run(&["SET", "k", "v"]).await, ok());
    assert_eq!(h.run(&["GET", "k"]).await, bulk("v"));
    assert_eq!(h.run(&["SET", "k", "w", "NX"]).await, Reply::Null);
    assert_eq!(h.run(&["SET", "k", "w", "XX", "GET"]).await, bulk("v"));
    assert_eq!(h.run(&["SET", "n", "w", "XX"]).await, Reply::Null);
    assert_eq!(h.run(&["SET", "n", "1", "NX", "GET"]).await, Reply::Null);
    assert_eq!(h.run(&["GET", "n"]).await, bulk("1"));
    assert_eq!(
        h.run(&["SET", "k", "x", "nx", "xx"]).await,
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["SET", "k", "x", "EX", "0"]).await,
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        h.run(&["SET", "k", "x", "EX", "x"]).await,
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(h.run(&["SET", "t", "v", "EX", "10"]).await, ok());
    assert_eq!(h.run(&["PTTL", "t"]).await, int(10_000));
    assert_eq!(h.run(&["SET", "t", "w", "KEEPTTL"]).await, ok());
    assert_eq!(h.run(&["TTL", "t"]).await, int(10));
    assert_eq!(h.run(&["SET", "t", "w"]).await, ok());
    assert_eq!(h.run(&["TTL", "t"]).await, int(-1));
    let at = (h.clock_ms() + 5_000).to_string();
    assert_eq!(h.run(&["SET", "t", "v", "PXAT", &at]).await, ok());
    assert_eq!(h.run(&["PTTL", "t"]).await, int(5_000));
    h.clock.advance(5_000);
    assert_eq!(h.run(&["GET", "t"]).await, Reply::Null);
    assert_eq!(h.run(&["SET", "p", "v", "EXAT", "1"]).await, ok());
    assert_eq!(h.run(&["EXISTS", "p"]).await, int(0));
}

#[tokio::test]
async fn setnx_setex_psetex_getset_getdel() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["SETNX", "k", "1"]).await, int(1));
    assert_eq!(h.run(&["SETNX", "k", "2"]).await, int(0));
    assert_eq!(h.run(&["SETEX", "e", "10", "v"]).await, ok());
    assert_eq!(h.run(&["TTL", "e"]).await, int(10));
    assert_eq!(
        h.run(&["SETEX", "e", "-1", "v"]).await,
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(h.run(&["PSETEX", "e", "1500", "v"]).await, ok());
    assert_eq!(h.run(&["PTTL", "e"]).await, int(1500));
    assert_eq!(h.run(&["GETSET", "e", "w"]).await, bulk("v"));
    assert_eq!(h.run(&["TTL", "e"]).await, int(-1));
    assert_eq!(h.run(&["GETSET", "new", "w"]).await, Reply::Null);
    assert_eq!(h.run(&["GETDEL", "e"]).await, bulk("w"));
    assert_eq!(h.run(&["GETDEL", "e"]).await, Reply::Null);
}

#[tokio::test]
async fn getex_changes_or_removes_the_expiry() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["GETEX", "k", "EX", "0"]).await, Reply::Null);
    h.run(&["SET", "k", "v"]).await;
    assert_eq!(
        h.run(&["GETEX", "k", "EX", "0"]).await,
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(h.run(&["GETEX", "k", "EX", "100"]).await, bulk("v"));
    assert_eq!(h.run(&["TTL", "k"]).await, int(100));
    assert_eq!(h.run(&["GETEX", "k"]).await, bulk("v"));
    assert_eq!(h.run(&["TTL", "k"]).await, int(100));
    assert_eq!(h.run(&["GETEX", "k", "PERSIST"]).await, bulk("v"));
    assert_eq!(h.run(&["TTL", "k"]).await, int(-1));
    assert_eq!(
        h.run(&["GETEX", "k", "PERSIST", "EX", "1"]).await,
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["GETEX", "k", "PXAT", "1"]).await, bulk("v"));
    assert_eq!(h.run(&["GET", "k"]).await, Reply::Null);
}

#[tokio::test]
async fn multi_key_reads_and_writes() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["MSET", "a", "1", "b", "2"]).await, ok());
    assert_eq!(
        h.run(&["MGET", "a", "nope", "b"]).await,
        Reply::Array(vec![bulk("1"), Reply::Null, bulk("2")])
    );
    assert_eq!(
        h.run(&["MSET", "a", "1", "b"]).await,
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(h.run(&["MSETNX", "a", "9", "c", "3"]).await, int(0));
    assert_eq!(h.run(&["EXISTS", "c"]).await, int(0));
    assert_eq!(
        h.run(&["MSETNX", "c", "3", "d", "4", "c", "5"]).await,
        int(1)
    );
    assert_eq!(h.run(&["MGET", "c", "d"]).await, bulks(&["5", "4"]));
}

#[tokio::test]
async fn append_strlen_ranges() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["APPEND", "k", "Hello"]).await, int(5));
    assert_eq!(h.run(&["APPEND", "k", " World"]).await, int(11));
    assert_eq!(h.run(&["STRLEN", "k"]).await, int(11));
    assert_eq!(h.run(&["STRLEN", "none"]).await, int(0));
    assert_eq!(h.run(&["GETRANGE", "k", "0", "4"]).await, bulk("Hello"));
    assert_eq!(h.run(&["GETRANGE", "k", "-5", "-1"]).await, bulk("World"));
    assert_eq!(h.run(&["GETRANGE", "none", "0", "-1"]).await, bulk(""));
    assert_eq!(h.run(&["SETRANGE", "k", "6", "Redis"]).await, int(11));
    assert_eq!(h.run(&["GET", "k"]).await, bulk("Hello Redis"));
    assert_eq!(h.run(&["SETRANGE", "z", "3", "ab"]).await, int(5));
    assert_eq!(
        h.run(&["GET", "z"]).await,
        Reply::Bulk(Bytes::from_static(b"\0\0\0ab"))
    );
    assert_eq!(h.run(&["SETRANGE", "none", "3", ""]).await, int(0));
    assert_eq!(h.run(&["EXISTS", "none"]).await, int(0));
    assert_eq!(
        h.run(&["SETRANGE", "k", "-1", "x"]).await,
        err("ERR offset is out of range")
    );
    assert_eq!(
        h.run(&["SETRANGE", "k", "10485760", "x"]).await,
        err("ERR value exceeds the 10 MiB limit")
    );
}

#[tokio::test]
async fn counters() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["INCR", "c"]).await, int(1));
    assert_eq!(h.run(&["INCRBY", "c", "10"]).await, int(11));
    assert_eq!(h.run(&["DECR", "c"]).await, int(10));
    assert_eq!(h.run(&["DECRBY", "c", "20"]).await, int(-10));
    assert_eq!(h.run(&["GET", "c"]).await, bulk("-10"));
    h.run(&["SET", "c", "9223372036854775807"]).await;
    assert_eq!(
        h.run(&["INCR", "c"]).await,
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(
        h.run(&["DECRBY", "c", "-9223372036854775808"]).await,
        err("ERR decrement would overflow")
    );
    h.run(&["SET", "s", "abc"]).await;
    assert_eq!(
        h.run(&["INCR", "s"]).await,
        err("ERR value is not an integer or out of range")
    );
    h.run(&["SET", "ttl", "1", "EX", "100"]).await;
    assert_eq!(h.run(&["INCR", "ttl"]).await, int(2));
    assert_eq!(h.run(&["TTL", "ttl"]).await, int(100));
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "10.5"]).await, bulk("10.5"));
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "0.1"]).await, bulk("10.6"));
    h.run(&["SET", "f", "5.0e3"]).await;
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "2.0e2"]).await, bulk("5200"));
    assert_eq!(
        h.run(&["INCRBYFLOAT", "s", "1"]).await,
        err("ERR value is not a valid float")
    );
    assert_eq!(
        h.run(&["INCRBYFLOAT", "f", "x"]).await,
        err("ERR value is not a valid float")
    );
    assert_eq!(
        h.run(&["INCRBYFLOAT", "f", "inf"]).await,
        err("ERR increment would produce NaN or Infinity")
    );
}

#[tokio::test]
async fn bitmaps() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["SETBIT", "b", "7", "1"]).await, int(0));
    assert_eq!(h.run(&["SETBIT", "b", "7", "0"]).await, int(1));
    assert_eq!(h.run(&["GETBIT", "b", "7"]).await, int(0));
    assert_eq!(h.run(&["GETBIT", "none", "7"]).await, int(0));
    assert_eq!(
        h.run(&["SETBIT", "b", "7", "2"]).await,
        err("ERR bit is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["SETBIT", "b", "-1", "1"]).await,
        err("ERR bit offset is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["SETBIT", "b", "4294967295", "1"]).await,
        err("ERR value exceeds the 10 MiB limit")
    );
    h.run(&["SET", "s", "foobar"]).await;
    assert_eq!(h.run(&["BITCOUNT", "s"]).await, int(26));
    assert_eq!(h.run(&["BITCOUNT", "s", "1", "1"]).await, int(6));
    assert_eq!(h.run(&["BITCOUNT", "s", "5", "30", "BIT"]).await, int(17));
    assert_eq!(
        h.run(&["BITCOUNT", "s", "1"]).await,
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["BITCOUNT", "none", "1"]).await, int(0));
    assert_eq!(
        h.run(&["BITCOUNT", "s", "0", "1", "bits"]).await,
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["BITPOS", "none", "1"]).await, int(-1));
    assert_eq!(h.run(&["BITPOS", "none", "0"]).await, int(0));
    assert_eq!(
        h.run(&["BITPOS", "s", "2"]).await,
        err("ERR The bit argument must be 1 or 0.")
    );
    assert_eq!(h.run(&["BITPOS", "s", "1"]).await, int(1));
    assert_eq!(
        h.run(&["BITPOS", "s", "1", "2", "-1", "BYTE"]).await,
        int(17)
    );
    h.run(&["SET", "x", "\u{7f}"]).await;
    assert_eq!(h.run(&["BITOP", "NOT", "dest", "x"]).await, int(1));
    assert_eq!(
        h.run(&["GET", "dest"]).await,
        Reply::Bulk(Bytes::from_static(b"\x80"))
    );
    assert_eq!(
        h.run(&["BITOP", "NOT", "dest", "x", "s"]).await,
        err("ERR BITOP NOT must be called with a single source key.")
    );
    assert_eq!(h.run(&["BITOP", "AND", "dest", "x", "s"]).await, int(6));
    assert_eq!(h.run(&["BITOP", "OR", "dest", "n1", "n2"]).await, int(0));
    assert_eq!(h.run(&["EXISTS", "dest"]).await, int(0));
    assert_eq!(
        h.run(&["BITOP", "NAND", "d", "x"]).await,
        err("ERR syntax error")
    );
}

#[tokio::test]
async fn lcs_replies() {
    let mut h = Harness::new();
    h.run(&["MSET", "key1", "ohmytext", "key2", "mynewtext"])
        .await;
    assert_eq!(h.run(&["LCS", "key1", "key2"]).await, bulk("mytext"));
    assert_eq!(h.run(&["LCS", "key1", "key2", "LEN"]).await, int(6));
    let range = |a: i64, b: i64| Reply::Array(vec![int(a), int(b)]);
    assert_eq!(
        h.run(&[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN"
        ])
        .await,
        Reply::Map(vec![
            (
                bulk("matches"),
                Reply::Array(vec![Reply::Array(vec![range(4, 7), range(5, 8), int(4)])])
            ),
            (bulk("len"), int(6)),
        ])
    );
    assert_eq!(
        h.run(&["LCS", "key1", "key2", "LEN", "IDX"]).await,
        err("ERR If you want both the length and indexes, please just use IDX.")
    );
    assert_eq!(h.run(&["LCS", "key1", "nope"]).await, bulk(""));
}

#[tokio::test]
async fn values_over_the_limit_are_refused_before_writing() {
    let mut h = Harness::new();
    let big = Bytes::from(vec![b'x'; 10 * 1024 * 1024 + 1]);
    let set = [Bytes::from_static(b"SET"), Bytes::from_static(b"k"), big];
    assert_eq!(
        h.run_args(&set).await,
        err("ERR value exceeds the 10 MiB limit")
    );
    assert_eq!(h.run(&["EXISTS", "k"]).await, int(0));
    let almost = Bytes::from(vec![b'x'; 10 * 1024 * 1024]);
    let set = [Bytes::from_static(b"SET"), Bytes::from_static(b"k"), almost];
    assert_eq!(h.run_args(&set).await, ok());
    assert_eq!(
        h.run(&["APPEND", "k", "y"]).await,
        err("ERR value exceeds the 10 MiB limit")
    );
    assert_eq!(h.run(&["STRLEN", "k"]).await, int(10 * 1024 * 1024));
}

#[tokio::test]
async fn large_lcs_runs_off_the_connection_task() {
    let mut h = Harness::new();
    let a = format!("{}xyz", "a".repeat(1500));
    let b = format!("xyz{}", "a".repeat(1500));
    h.run(&["MSET", "a", &a, "b", &b]).await;
    assert_eq!(h.run(&["LCS", "a", "b", "LEN"]).await, int(1500));
}
