//! The front end as a client sees it, over raw TCP against a real single-node cluster:
//! pipelining, inline commands, HELLO 3, Redis's error texts, authentication, limits,
//! `maxclients`, the idle timeout, `CLIENT`, `CONFIG`, `INFO`, `COMMAND` and graceful shutdown.

#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use node::{request, text, Client, TestNode};
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::OwnedFrame as Frame3;
use ringkv_resp::ServerConfig;

fn bulk3(frame: &Frame3) -> String {
    match frame {
        Frame3::BlobString { data, .. } | Frame3::SimpleString { data, .. } => {
            String::from_utf8_lossy(data).into_owned()
        }
        Frame3::Number { data, .. } => data.to_string(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    let mut batch = Vec::new();
    batch.extend(request(&[b"PING"]));
    batch.extend(request(&[b"ECHO", b"hello"]));
    batch.extend(request(&[b"SET", b"k", b"v"]));
    batch.extend(request(&[b"GET", b"k"]));
    batch.extend(b"PING\r\n");
    batch.extend(request(&[b"DBSIZE"]));
    client.send(&batch).await;
    client
        .expect(b"+PONG\r\n$5\r\nhello\r\n+OK\r\n$1\r\nv\r\n+PONG\r\n:1\r\n")
        .await;
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn inline_commands_work_as_typed_in_telnet() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    client.send(b"PING\r\n").await;
    client.expect(b"+PONG\r\n").await;
    client.send(b"echo \"two words\"\n").await;
    client.expect(b"$9\r\ntwo words\r\n").await;
}

#[tokio::test]
async fn unknown_commands_and_wrong_arity_get_redis_texts() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    client.send(&request(&[b"foo", b"a", b"b"])).await;
    client
        .expect(b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n")
        .await;
    client.send(&request(&[b"GET"])).await;
    client
        .expect(b"-ERR wrong number of arguments for 'get' command\r\n")
        .await;
    client.send(&request(&[b"CLIENT", b"SETNAME"])).await;
    client
        .expect(b"-ERR wrong number of arguments for 'client|setname' command\r\n")
        .await;
    client.send(&request(&[b"CLIENT", b"BOGUS"])).await;
    client
        .expect(b"-ERR unknown subcommand 'BOGUS'. Try CLIENT HELP.\r\n")
        .await;
    client.send(&request(&[b"SELECT", b"1"])).await;
    client.expect(b"-ERR DB index is out of range\r\n").await;
    // The connection goes on after each error.
    assert_eq!(text(&client.call(&["PING"]).await), "PONG");
}

#[tokio::test]
async fn hello_3_switches_to_resp3_and_answers_a_map() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    let reply = client.call3(&["HELLO", "3", "SETNAME", "tester"]).await;
    let Frame3::Map { data, .. } = reply else {
        panic!("HELLO 3 answers a map, got {reply:?}");
    };
    let fields: std::collections::HashMap<String, String> =
        data.iter().map(|(k, v)| (bulk3(k), bulk3(v))).collect();
    assert_eq!(fields["server"], "redis");
    assert_eq!(fields["proto"], "3");
    assert_eq!(fields["mode"], "standalone");
    assert_eq!(fields["role"], "master");
    assert!(fields.contains_key("version") && fields.contains_key("id"));
    assert!(fields.contains_key("modules"));
    // RESP3 nulls and the name set by HELLO.
    client.send(&request(&[b"GET", b"missing"])).await;
    client.expect(b"_\r\n").await;
    assert_eq!(bulk3(&client.call3(&["CLIENT", "GETNAME"]).await), "tester");
    // INFO is a verbatim string in RESP3.
    let info = client.call3(&["INFO", "server"]).await;
    assert!(
        matches!(info, Frame3::VerbatimString { ref data, .. } if data.starts_with(b"# Server\r\n")),
        "{info:?}"
    );
    // RESET goes back to RESP2 and forgets the name.
    client.send(&request(&[b"RESET"])).await;
    client.expect(b"+RESET\r\n").await;
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, Frame2::Null);
    client.call3(&["HELLO", "3"]).await;
    // Back to RESP2.
    client.call3(&["HELLO", "2"]).await;
    client.send(&request(&[b"GET", b"missing"])).await;
    client.expect(b"$-1\r\n").await;
    client.send(&request(&[b"HELLO", b"4"])).await;
    client
        .expect(b"-NOPROTO unsupported protocol version\r\n")
        .await;
}

#[tokio::test]
async fn requirepass_needs_auth_with_redis_texts() {
    let node = TestNode::start(ServerConfig {
        requirepass: Some("sesame".into()),
        ..ServerConfig::default()
    })
    .await;
    let mut client = node.client().await;
    client.send(&request(&[b"GET", b"k"])).await;
    client.expect(b"-NOAUTH Authentication required.\r\n").await;
    // Arity and unknown commands are reported before authentication, as in Redis.
    client.send(&request(&[b"GET"])).await;
    client
        .expect(b"-ERR wrong number of arguments for 'get' command\r\n")
        .await;
    client.send(&request(&[b"nosuch"])).await;
    client
        .expect(b"-ERR unknown command 'nosuch', with args beginning with: \r\n")
        .await;
    client.send(&request(&[b"AUTH", b"wrong"])).await;
    client
        .expect(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        .await;
    client.send(&request(&[b"HELLO", b"3"])).await;
    let reply = client.read2().await;
    assert!(
        text(&reply).starts_with("-NOAUTH HELLO must be called"),
        "{reply:?}"
    );
    client
        .send(&request(&[b"AUTH", b"default", b"sesame"]))
        .await;
    client.expect(b"+OK\r\n").await;
    assert_eq!(text(&client.call(&["PING"]).await), "PONG");

    // HELLO with AUTH authenticates a fresh connection in one step.
    let mut other = node.client().await;
    let reply = other
        .call3(&["HELLO", "3", "AUTH", "default", "sesame"])
        .await;
    assert!(matches!(reply, Frame3::Map { .. }), "{reply:?}");

    // Without a password configured, the one-argument AUTH is refused with Redis's text.
    let open = TestNode::start_default().await;
    let mut client = open.client().await;
    client.send(&request(&[b"AUTH", b"x"])).await;
    client
        .expect(
            b"-ERR AUTH <password> called without any password configured for the default \
              user. Are you sure your configuration is correct?\r\n",
        )
        .await;
}

#[tokio::test]
async fn values_over_the_limit_are_refused_and_the_connection_stays() {
    let node = TestNode::start(ServerConfig {
        max_value_bytes: 1024,
        max_key_bytes: 16,
        ..ServerConfig::default()
    })
    .await;
    let mut client = node.client().await;
    let big = vec![b'x'; 1025];
    client.send(&request(&[b"SET", b"k", &big])).await;
    client
        .expect(b"-ERR value exceeds the 1 KiB limit\r\n")
        .await;
    client
        .send(&request(&[b"SET", b"a-key-longer-than-16", b"v"]))
        .await;
    client
        .expect(b"-ERR key exceeds the 16 bytes limit\r\n")
        .await;
    assert_eq!(text(&client.call(&["SET", "k", "small"]).await), "OK");
    assert_eq!(text(&client.call(&["GET", "k"]).await), "small");
}

#[tokio::test]
async fn maxclients_refuses_one_more_with_redis_text() {
    let node = TestNode::start(ServerConfig {
        maxclients: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut first = node.client().await;
    let mut second = node.client().await;
    assert_eq!(text(&first.call(&["PING"]).await), "PONG");
    assert_eq!(text(&second.call(&["PING"]).await), "PONG");
    let mut third = node.client().await;
    assert_eq!(
        third.read_until_closed().await,
        b"-ERR max number of clients reached\r\n"
    );
    drop(first);
    // The freed slot is reusable once the server has noticed the close.
    let deadline = tokio::time::Instant::now() + node::DEADLINE;
    loop {
        let mut again = node.client().await;
        again.send(&request(&[b"PING"])).await;
        let got = again.read_until_closed_or_reply().await;
        if got == b"+PONG\r\n" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::task::yield_now().await;
    }
    assert_eq!(text(&second.call(&["PING"]).await), "PONG");
}

#[tokio::test]
async fn idle_clients_are_closed_after_timeout() {
    let node = TestNode::start(ServerConfig {
        timeout_secs: 1,
        ..ServerConfig::default()
    })
    .await;
    let mut client = node.client().await;
    assert_eq!(text(&client.call(&["PING"]).await), "PONG");
    let started = std::time::Instant::now();
    assert_eq!(client.read_until_closed().await, b"");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // CONFIG SET turns the timeout off for connections that wait afterwards.
    let mut other = node.client().await;
    assert_eq!(
        text(&other.call(&["CONFIG", "SET", "timeout", "0"]).await),
        "OK"
    );
    let reply = other.call(&["CONFIG", "GET", "timeout"]).await;
    assert_eq!(
        reply,
        Frame2::Array(vec![
            Frame2::BulkString(b"timeout".to_vec()),
            Frame2::BulkString(b"0".to_vec())
        ])
    );
}

#[tokio::test]
async fn client_commands_list_name_and_kill() {
    let node = TestNode::start_default().await;
    let mut a = node.client().await;
    let mut b = node.client().await;
    assert_eq!(text(&a.call(&["CLIENT", "SETNAME", "alpha"]).await), "OK");
    assert_eq!(
        text(&a.call(&["CLIENT", "SETNAME", "has space"]).await),
        "-ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        text(&a.call(&["CLIENT", "SETINFO", "LIB-NAME", "raw-test"]).await),
        "OK"
    );
    assert_eq!(
        text(&a.call(&["CLIENT", "SETINFO", "bogus", "x"]).await),
        "-ERR Unrecognized option 'bogus'"
    );
    let Frame2::Integer(b_id) = b.call(&["CLIENT", "ID"]).await else {
        panic!("CLIENT ID answers an integer");
    };
    let list = text(&a.call(&["CLIENT", "LIST"]).await);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.contains("name=alpha") && list.contains("lib-name=raw-test"),
        "{list}"
    );
    assert!(list.contains(&format!("id={b_id} ")), "{list}");
    let info = text(&a.call(&["CLIENT", "INFO"]).await);
    assert!(
        info.contains("name=alpha") && info.ends_with('\n'),
        "{info}"
    );

    assert_eq!(text(&a.call(&["SELECT", "0"]).await), "OK");
    assert_eq!(
        text(&a.call(&["CLIENT", "KILL", "ID", "0"]).await),
        "-ERR client-id should be greater than 0"
    );
    assert_eq!(
        text(&a.call(&["CLIENT", "KILL", "USER", "nobody"]).await),
        "-ERR No such user 'nobody'"
    );
    assert_eq!(
        a.call(&["CLIENT", "KILL", "TYPE", "pubsub"]).await,
        Frame2::Integer(0)
    );
    assert_eq!(
        text(&a.call(&["CLIENT", "LIST", "TYPE", "bogus"]).await),
        "-ERR Unknown client type 'bogus'"
    );
    let kill = a.call(&["CLIENT", "KILL", "ID", &b_id.to_string()]).await;
    assert_eq!(kill, Frame2::Integer(1));
    assert_eq!(b.read_until_closed().await, b"");
    assert_eq!(
        text(&a.call(&["CLIENT", "KILL", "127.0.0.1:1"]).await),
        "-ERR No such client"
    );
    // KILL with SKIPME no closes the caller after the reply.
    a.send(&request(&[
        b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"no",
    ]))
    .await;
    assert_eq!(a.read_until_closed().await, b":1\r\n");
}

#[tokio::test]
async fn server_commands_report_real_figures() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    for i in 0..5 {
        let key = format!("key{i}");
        assert_eq!(text(&client.call(&["SET", &key, "v"]).await), "OK");
    }
    assert_eq!(client.call(&["DBSIZE"]).await, Frame2::Integer(5));
    let info = text(&client.call(&["INFO"]).await);
    for field in [
        "# Server\r\n",
        "redis_version:",
        "uptime_in_seconds:",
        "connected_clients:1\r\n",
        "used_memory:",
        "# Persistence\r\n",
        "total_commands_processed:",
        "instantaneous_ops_per_sec:",
        "role:master",
        "cluster_enabled:1",
        "db0:keys=5,",
    ] {
        assert!(info.contains(field), "INFO lacks {field:?}:\n{info}");
    }
    assert!(
        !info.contains("cmdstat_"),
        "commandstats is not a default section"
    );
    let stats = text(&client.call(&["INFO", "commandstats"]).await);
    assert!(stats.contains("cmdstat_set:calls=5,"), "{stats}");
    assert_eq!(text(&client.call(&["CONFIG", "RESETSTAT"]).await), "OK");
    let stats = text(&client.call(&["INFO", "commandstats"]).await);
    assert!(!stats.contains("cmdstat_set:"), "{stats}");
    let engine = text(&client.call(&["INFO", "ringkv"]).await);
    assert!(
        engine.starts_with("# Ringkv\r\n") && engine.contains("writes:"),
        "{engine}"
    );

    let Frame2::Array(time) = client.call(&["TIME"]).await else {
        panic!("TIME answers an array");
    };
    assert_eq!(time.len(), 2);

    let Frame2::Integer(count) = client.call(&["COMMAND", "COUNT"]).await else {
        panic!("COMMAND COUNT answers an integer");
    };
    let Frame2::Array(all) = client.call(&["COMMAND"]).await else {
        panic!("COMMAND answers an array");
    };
    assert_eq!(all.len() as i64, count);
    let Frame2::Array(get) = client.call(&["COMMAND", "INFO", "get", "nosuch"]).await else {
        panic!("COMMAND INFO answers an array");
    };
    assert_eq!(get[1], Frame2::Null);
    let Frame2::Array(row) = &get[0] else {
        panic!("a command row is an array");
    };
    assert_eq!(row.len(), 10);
    assert_eq!(row[0], Frame2::BulkString(b"get".to_vec()));
    assert_eq!(row[1], Frame2::Integer(2));
    assert_eq!(
        client
            .call(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"])
            .await,
        Frame2::Array(vec![
            Frame2::BulkString(b"a".to_vec()),
            Frame2::BulkString(b"b".to_vec())
        ])
    );
    let Frame2::Array(docs) = client.call(&["COMMAND", "DOCS", "ping"]).await else {
        panic!("COMMAND DOCS answers a map (flat in RESP2)");
    };
    assert_eq!(docs[0], Frame2::BulkString(b"ping".to_vec()));

    let Frame2::Array(config) = client
        .call(&["CONFIG", "GET", "save", "appendonly", "max*"])
        .await
    else {
        panic!("CONFIG GET answers a map (flat in RESP2)");
    };
    let config: Vec<String> = config.iter().map(text).collect();
    for pair in [
        ["save", ""],
        ["appendonly", "yes"],
        ["maxclients", "10000"],
        ["maxmemory", "0"],
    ] {
        let at = config
            .iter()
            .position(|name| name == pair[0])
            .unwrap_or_else(|| panic!("{} missing from {config:?}", pair[0]));
        assert_eq!(config[at + 1], pair[1]);
    }
    assert_eq!(
        text(&client.call(&["CONFIG", "SET", "appendonly", "no"]).await),
        "-ERR Unknown option or number of arguments for CONFIG SET - 'appendonly'"
    );
    for (request, reply) in [
        (
            &["CONFIG", "SET", "timeout", "abc", "nosuch", "1"][..],
            "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'",
        ),
        (
            &["CONFIG", "SET", "timeout", "abc"][..],
            "-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument \
             couldn't be parsed into an integer",
        ),
        (
            &["CONFIG", "SET", "timeout", "1", "TIMEOUT", "2"][..],
            "-ERR CONFIG SET failed (possibly related to argument 'TIMEOUT') - duplicate parameter",
        ),
        (
            &["CONFIG", "SET", "timeout"][..],
            "-ERR wrong number of arguments for 'config|set' command",
        ),
        (
            &["CONFIG", "SET", "timeout", "1", "maxclients"][..],
            "-ERR syntax error",
        ),
        (
            &["FUNCTION", "FLUSH", "LATER"][..],
            "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        ),
    ] {
        assert_eq!(text(&client.call(request).await), reply, "{request:?}");
    }
    assert_eq!(text(&client.call(&["FUNCTION", "FLUSH"]).await), "OK");
    assert_eq!(text(&client.call(&["SCRIPT", "FLUSH", "SYNC"]).await), "OK");
    assert_eq!(text(&client.call(&["FLUSHALL"]).await), "OK");
    assert_eq!(client.call(&["DBSIZE"]).await, Frame2::Integer(0));
    assert_eq!(
        text(&client.call(&["FLUSHDB", "LAZY"]).await),
        "-ERR syntax error"
    );
}

#[tokio::test]
async fn shutdown_answers_requests_already_read_then_closes() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    assert_eq!(text(&client.call(&["SET", "k", "v"]).await), "OK");
    let mut idle = node.client().await;
    assert_eq!(text(&idle.call(&["PING"]).await), "PONG");
    node.stop().await.expect("clean stop");
    assert_eq!(idle.read_until_closed().await, b"");
    assert_eq!(client.read_until_closed().await, b"");
}

#[tokio::test]
async fn quit_replies_ok_then_closes() {
    let node = TestNode::start_default().await;
    let mut client: Client = node.client().await;
    client.send(&request(&[b"QUIT"])).await;
    assert_eq!(client.read_until_closed().await, b"+OK\r\n");
}
