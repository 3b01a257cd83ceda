//! Encoder tests: exact bytes for each shape, and `redis-protocol`'s decoders as an independent
//! reader of what the encoder writes.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::OwnedFrame as Frame3;
use ringkv_cluster::{ClusterError, Level};

use super::{format_double, Protocol, Reply};
use crate::cmd::CommandError;

fn encode(reply: &Reply, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    reply.encode(protocol, &mut out);
    out.to_vec()
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

#[test]
fn resp2_bytes_for_every_shape() {
    let cases: Vec<(Reply, &[u8])> = vec![
        (Reply::ok(), b"+OK\r\n"),
        (Reply::error("ERR bad"), b"-ERR bad\r\n"),
        (Reply::Integer(-42), b":-42\r\n"),
        (Reply::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (bulk("hi"), b"$2\r\nhi\r\n"),
        (bulk(""), b"$0\r\n\r\n"),
        (Reply::Null, b"$-1\r\n"),
        (Reply::NullArray, b"*-1\r\n"),
        (Reply::Array(vec![]), b"*0\r\n"),
        (
            Reply::Map(vec![(bulk("a"), Reply::Integer(1))]),
            b"*2\r\n$1\r\na\r\n:1\r\n",
        ),
        (Reply::Set(vec![bulk("x")]), b"*1\r\n$1\r\nx\r\n"),
        (Reply::Double(1.5), b"$3\r\n1.5\r\n"),
        (Reply::Bool(true), b":1\r\n"),
        (Reply::Bool(false), b":0\r\n"),
        (
            Reply::Verbatim(Bytes::from_static(b"a:1")),
            b"$3\r\na:1\r\n",
        ),
    ];
    for (reply, expected) in cases {
        assert_eq!(
            encode(&reply, Protocol::Resp2),
            expected,
            "{reply:?} in RESP2"
        );
    }
}

#[test]
fn resp3_bytes_for_every_shape() {
    let cases: Vec<(Reply, &[u8])> = vec![
        (Reply::Null, b"_\r\n"),
        (Reply::NullArray, b"_\r\n"),
        (
            Reply::Map(vec![(bulk("a"), Reply::Integer(1))]),
            b"%1\r\n$1\r\na\r\n:1\r\n",
        ),
        (Reply::Set(vec![bulk("x")]), b"~1\r\n$1\r\nx\r\n"),
        (Reply::Double(1.5), b",1.5\r\n"),
        (Reply::Double(f64::INFINITY), b",inf\r\n"),
        (Reply::Bool(true), b"#t\r\n"),
        (
            Reply::Verbatim(Bytes::from_static(b"a:1")),
            b"=7\r\ntxt:a:1\r\n",
        ),
    ];
    for (reply, expected) in cases {
        assert_eq!(
            encode(&reply, Protocol::Resp3),
            expected,
            "{reply:?} in RESP3"
        );
    }
}

#[test]
fn line_breaks_in_status_and_error_text_become_spaces() {
    assert_eq!(
        encode(&Reply::error("ERR a\r\nb"), Protocol::Resp2),
        b"-ERR a  b\r\n"
    );
}

#[test]
fn doubles_print_as_redis_prints_them() {
    assert_eq!(format_double(3.0), "3");
    assert_eq!(format_double(0.1), "0.1");
    assert_eq!(format_double(-2.5), "-2.5");
    assert_eq!(format_double(0.0001), "0.0001");
    assert_eq!(format_double(0.00001), "1e-05");
    assert_eq!(format_double(1e300), "1e+300");
    assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
    assert_eq!(format_double(f64::NAN), "nan");
}

/// A nested reply with every shape, decoded by `redis-protocol` in both protocols.
#[test]
fn redis_protocol_decodes_what_the_encoder_writes() {
    let reply = Reply::Array(vec![
        Reply::simple("PONG"),
        Reply::error("ERR oops"),
        Reply::Integer(7),
        bulk("value"),
        Reply::Null,
        Reply::Map(vec![(bulk("k"), Reply::Array(vec![Reply::Integer(1)]))]),
        Reply::Set(vec![bulk("m")]),
        Reply::Double(2.25),
        Reply::Bool(true),
        Reply::Verbatim(Bytes::from_static(b"# Server\r\n")),
    ]);

    let bytes2 = encode(&reply, Protocol::Resp2);
    let (frame2, used2) = redis_protocol::resp2::decode::decode(&bytes2)
        .expect("valid RESP2")
        .expect("complete RESP2");
    assert_eq!(used2, bytes2.len());
    let Frame2::Array(items) = frame2 else {
        panic!("expected an array, got {frame2:?}")
    };
    assert_eq!(items.len(), 10);
    assert_eq!(items[0], Frame2::SimpleString(b"PONG".to_vec()));
    assert_eq!(items[1], Frame2::Error("ERR oops".into()));
    assert_eq!(items[4], Frame2::Null);
    assert_eq!(items[7], Frame2::BulkString(b"2.25".to_vec()));
    assert_eq!(items[8], Frame2::Integer(1));

    let bytes3 = encode(&reply, Protocol::Resp3);
    let (frame3, used3) = redis_protocol::resp3::decode::complete::decode(&bytes3)
        .expect("valid RESP3")
        .expect("complete RESP3");
    assert_eq!(used3, bytes3.len());
    let Frame3::Array { data: items, .. } = frame3 else {
        panic!("expected an array, got {frame3:?}")
    };
    assert_eq!(items.len(), 10);
    assert!(matches!(items[4], Frame3::Null));
    assert!(matches!(items[5], Frame3::Map { ref data, .. } if data.len() == 1));
    assert!(matches!(items[6], Frame3::Set { ref data, .. } if data.len() == 1));
    assert!(matches!(items[7], Frame3::Double { data, .. } if data == 2.25));
    assert!(matches!(items[8], Frame3::Boolean { data: true, .. }));
    assert!(matches!(items[9], Frame3::VerbatimString { ref data, .. } if data == b"# Server\r\n"));
}

#[test]
fn cluster_errors_name_the_level_and_counts() {
    let reply = Reply::from_error(CommandError::Cluster(ClusterError::Unavailable {
        level: Level::Two,
        required: 2,
        alive: 1,
    }));
    assert_eq!(
        reply,
        Reply::error(
            "ERR cannot achieve consistency level TWO: 2 replica(s) required but only 1 alive"
        )
    );
    let too_large = ClusterError::Storage(ringkv_lsm::Error::ValueTooLarge {
        len: 20 << 20,
        max: 10 << 20,
    });
    assert_eq!(
        Reply::from_cluster_error(&too_large),
        Reply::error("ERR value exceeds the 10 MiB limit")
    );
    assert_eq!(
        Reply::from_error(CommandError::Reply("ERR syntax error".into())),
        Reply::error("ERR syntax error")
    );
}

/// A failure reported by another node (a forwarded conditional write's leader) gets the reply
/// the failing node's own error gets, whichever node the client talked to.
#[test]
fn a_peer_reported_failure_gets_the_reply_of_the_peers_own_error() {
    use ringkv_cluster::rpc::RemoteFailure;
    let errors = [
        ClusterError::Storage(ringkv_lsm::Error::ValueTooLarge {
            len: 20 << 20,
            max: 10 << 20,
        }),
        ClusterError::Storage(ringkv_lsm::Error::KeyTooLarge {
            len: 70 << 10,
            max: 64 << 10,
        }),
        ClusterError::CrossSlot,
        ClusterError::Unavailable {
            level: Level::All,
            required: 3,
            alive: 1,
        },
        ClusterError::QuorumFailed {
            level: Level::Quorum,
            required: 2,
            answered: 1,
            errors: vec!["node-2: timed out".into()],
        },
        ClusterError::ShuttingDown,
        ClusterError::KeyBusy { waited_ms: 500 },
        ClusterError::Storage(ringkv_lsm::Error::Locked {
            path: "/data".into(),
        }),
    ];
    for error in errors {
        let local = Reply::from_cluster_error(&error);
        let remote = Reply::from_cluster_error(&RemoteFailure::from_error(&error).into_error());
        assert_eq!(remote, local, "{error:?}");
    }
    // The two the front end maps to replies of their own keep them.
    assert_eq!(
        Reply::from_cluster_error(
            &RemoteFailure::from_error(&ClusterError::CrossSlot).into_error()
        ),
        Reply::error("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(
        Reply::from_cluster_error(
            &RemoteFailure::from_error(&ClusterError::KeyBusy { waited_ms: 500 }).into_error()
        ),
        Reply::error(
            "TRYAGAIN write not applied: another write held this key's lock (or one it \
             shares) for 500 ms"
        )
    );
}
