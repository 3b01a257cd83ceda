//! The cluster commands over TCP against a real single-node `LocalCluster`, through the `redis`
//! crate: the replies of `CLUSTER SLOTS|SHARDS|NODES|INFO|MYID|KEYSLOT|COUNTKEYSINSLOT` and
//! their errors, `READONLY`/`READWRITE`/`ASKING`, `RINGKV STATUS`, and the crate's cluster
//! client (which routes by `CLUSTER SLOTS`) reading and writing through the node.
//!
//! The node here announces the address it listens on, as the binary does, so the slot map
//! points cluster clients back at it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_read_routing::RandomReplicaStrategy;
use redis::{AsyncCommands, Value};
use ringkv_cluster::{ClusterConfig, LocalCluster};
use ringkv_resp::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long any one wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// The node's id, as `CLUSTER MYID` must report it.
const NODE_ID: &str = "0123456789abcdef0123456789abcdef01234567";

/// A running node announcing its listener's address; stops when dropped.
struct Node {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let cluster = Arc::new(
            LocalCluster::open(ClusterConfig::new(dir.path(), NODE_ID).with_client_addr(addr))
                .expect("open cluster"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(ringkv_resp::run(
            ServerConfig::default(),
            listener,
            cluster,
            async move {
                let _ = stopped.await;
            },
        ));
        Node {
            addr,
            _stop: stop,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("client");
        tokio::time::timeout(DEADLINE, client.get_multiplexed_async_connection())
            .await
            .expect("connect in time")
            .expect("connect")
    }
}

/// Runs `args` and returns the reply or the error's text.
async fn call(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> Result<Value, String> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    tokio::time::timeout(DEADLINE, cmd.query_async::<Value>(con))
        .await
        .expect("reply in time")
        .map_err(|e| {
            // The crate splits "ERR text" into a code and a detail; put them back together.
            match (e.code(), e.detail()) {
                (Some(code), Some(detail)) => format!("{code} {detail}"),
                _ => e.to_string(),
            }
        })
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[tokio::test]
async fn slot_map_replies_have_redis_shapes() {
    let node = Node::start().await;
    let mut con = node.connection().await;
    let port = i64::from(node.addr.port());

    assert_eq!(
        call(&mut con, &["CLUSTER", "SLOTS"]).await,
        Ok(Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16383),
            Value::Array(vec![
                bulk("127.0.0.1"),
                Value::Int(port),
                bulk(NODE_ID),
                Value::Array(Vec::new()),
            ]),
        ])]))
    );

    let shards = call(&mut con, &["CLUSTER", "SHARDS"])
        .await
        .expect("shards");
    let Value::Array(shards) = shards else {
        panic!("an array of shards: {shards:?}");
    };
    assert_eq!(shards.len(), 1);
    assert_eq!(
        shards[0],
        Value::Array(vec![
            bulk("slots"),
            Value::Array(vec![Value::Int(0), Value::Int(16383)]),
            bulk("nodes"),
            Value::Array(vec![Value::Array(vec![
                bulk("id"),
                bulk(NODE_ID),
                bulk("port"),
                Value::Int(port),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("endpoint"),
                bulk("127.0.0.1"),
                bulk("role"),
                bulk("master"),
                bulk("replication-offset"),
                Value::Int(0),
                bulk("health"),
                bulk("online"),
            ])]),
        ])
    );

    let nodes = text(&call(&mut con, &["CLUSTER", "NODES"]).await.expect("nodes"));
    assert_eq!(
        nodes,
        format!(
            "{NODE_ID} 127.0.0.1:{port}@{} myself,master - 0 0 1 connected 0-16383\n",
            port + 10_000
        )
    );

    let info = text(&call(&mut con, &["CLUSTER", "INFO"]).await.expect("info"));
    for line in [
        "cluster_state:ok\r\n",
        "cluster_slots_assigned:16384\r\n",
        "cluster_slots_ok:16384\r\n",
        "cluster_slots_fail:0\r\n",
        "cluster_known_nodes:1\r\n",
        "cluster_size:1\r\n",
    ] {
        assert!(info.contains(line), "CLUSTER INFO lacks {line:?}:\n{info}");
    }
    let info = text(&call(&mut con, &["INFO", "cluster"]).await.expect("info"));
    assert!(info.contains("cluster_enabled:1\r\n"), "{info}");

    for sub in ["MYID", "MYSHARDID"] {
        assert_eq!(call(&mut con, &["CLUSTER", sub]).await, Ok(bulk(NODE_ID)));
    }
}

#[tokio::test]
async fn slot_commands_count_keys_and_refuse_bad_slots() {
    let node = Node::start().await;
    let mut con = node.connection().await;
    // Redis's own values: `CLUSTER KEYSLOT foo` is 12182, and a hash tag hashes alone.
    assert_eq!(
        call(&mut con, &["CLUSTER", "KEYSLOT", "foo"]).await,
        Ok(Value::Int(12182))
    );
    assert_eq!(
        call(&mut con, &["CLUSTER", "KEYSLOT", "{foo}bar"]).await,
        Ok(Value::Int(12182))
    );
    for key in ["{foo}1", "{foo}2", "{foo}3", "other"] {
        let _: () = con.set(key, "v").await.expect("set");
    }
    assert_eq!(
        call(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "12182"]).await,
        Ok(Value::Int(3))
    );
    assert_eq!(
        call(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "0"]).await,
        Ok(Value::Int(0))
    );
    for (args, expected) in [
        (
            &["CLUSTER", "COUNTKEYSINSLOT", "16384"][..],
            "ERR Invalid slot",
        ),
        (&["CLUSTER", "COUNTKEYSINSLOT", "-1"], "ERR Invalid slot"),
        (
            &["CLUSTER", "COUNTKEYSINSLOT", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["CLUSTER", "NOPE"],
            "ERR unknown subcommand 'NOPE'. Try CLUSTER HELP.",
        ),
        (
            &["CLUSTER", "SLOTS", "extra"],
            "ERR wrong number of arguments for 'cluster|slots' command",
        ),
        (
            &["CLUSTER"],
            "ERR wrong number of arguments for 'cluster' command",
        ),
        (
            &["RINGKV", "NOPE"],
            "ERR unknown subcommand 'NOPE'. Try RINGKV HELP.",
        ),
    ] {
        assert_eq!(
            call(&mut con, args).await,
            Err(expected.to_string()),
            "{args:?}"
        );
    }
    let Ok(Value::Array(help)) = call(&mut con, &["CLUSTER", "HELP"]).await else {
        panic!("CLUSTER HELP answers an array");
    };
    assert!(help.len() > 10);
}

#[tokio::test]
async fn connection_flags_status_and_command_table() {
    let node = Node::start().await;
    let mut con = node.connection().await;
    for command in ["READONLY", "READWRITE", "ASKING"] {
        assert_eq!(
            call(&mut con, &[command]).await,
            Ok(Value::Okay),
            "{command}"
        );
    }
    let Ok(Value::Array(rows)) = call(&mut con, &["RINGKV", "STATUS"]).await else {
        panic!("RINGKV STATUS answers an array");
    };
    assert_eq!(rows.len(), 1);
    let Value::Array(fields) = &rows[0] else {
        panic!("a node is a map: {:?}", rows[0]);
    };
    let field = |name: &str| {
        let at = fields
            .iter()
            .position(|f| *f == bulk(name))
            .unwrap_or_else(|| panic!("no {name} in {fields:?}"));
        fields[at + 1].clone()
    };
    assert_eq!(field("id"), bulk(NODE_ID));
    assert_eq!(field("address"), bulk(&node.addr.to_string()));
    assert_eq!(field("state"), bulk("up"));
    assert_eq!(field("status"), bulk("normal"));
    assert_eq!(field("ownership"), bulk("1"));
    assert_eq!(field("myself"), Value::Int(1));

    for name in ["cluster", "readonly", "readwrite", "asking", "ringkv"] {
        let Ok(Value::Array(info)) = call(&mut con, &["COMMAND", "INFO", name]).await else {
            panic!("COMMAND INFO {name} answers an array");
        };
        assert!(
            matches!(&info[..], [Value::Array(row)] if row.first() == Some(&bulk(name))),
            "COMMAND INFO {name}: {info:?}"
        );
    }
}

#[tokio::test]
async fn the_cluster_client_routes_through_the_slot_map() {
    let node = Node::start().await;
    // Reading from replicas makes the client send READONLY on every connection.
    let client = ClusterClient::builder(vec![node.url()])
        .read_routing_strategy(RandomReplicaStrategy)
        .build()
        .expect("cluster client");
    let mut con = tokio::time::timeout(DEADLINE, client.get_async_connection())
        .await
        .expect("connect in time")
        .expect("cluster connection");
    let _: () = con.set("alpha", "1").await.expect("set");
    let _: () = con.set("beta", "2").await.expect("set");
    let got: Option<String> = con.get("alpha").await.expect("get");
    assert_eq!(got.as_deref(), Some("1"));
    // Keys in different slots: the client splits the MGET by slot and merges the answers.
    let values: Vec<Option<String>> = con.mget(&["alpha", "beta", "missing"]).await.expect("mget");
    assert_eq!(
        values,
        vec![Some("1".to_string()), Some("2".to_string()), None]
    );
    let deleted: i64 = con.del(&["alpha", "beta"]).await.expect("del");
    assert_eq!(deleted, 2);
    // The client asked for the slot map and marked its connections READONLY.
    let mut plain = node.connection().await;
    let stats = text(
        &call(&mut plain, &["INFO", "commandstats"])
            .await
            .expect("info"),
    );
    for command in ["cluster", "readonly"] {
        assert!(
            stats.contains(&format!("cmdstat_{command}:calls=")),
            "no {command} in:\n{stats}"
        );
    }
}
