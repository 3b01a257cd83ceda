//! The `ringkv` binary as a process: it starts and serves the real `redis-cli`, keeps its data
//! across a graceful restart, loses no acknowledged write to SIGKILL with `--fsync always`, and
//! refuses to start, with a clear message and a non-zero exit, on a data directory another node
//! holds, a port in use or a bad configuration value.

#[path = "common/process.rs"]
mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use process::{free_port, run_to_exit, Node, DEADLINE};
use redis::AsyncCommands;

/// `redis-cli`'s stdout, checking it exited 0.
fn cli(node: &Node, args: &[&str]) -> String {
    let out = node.redis_cli(args);
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn serves_redis_cli() {
    let node = Node::start(&[]);
    assert_eq!(cli(&node, &["PING"]), "PONG\n");
    assert_eq!(cli(&node, &["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(cli(&node, &["GET", "greeting"]), "hello world\n");
    assert_eq!(cli(&node, &["INCRBY", "counter", "41"]), "41\n");
    assert_eq!(cli(&node, &["INCR", "counter"]), "42\n");
    assert_eq!(cli(&node, &["GET", "missing"]), "\n");
    assert_eq!(cli(&node, &["DBSIZE"]), "2\n");
    // Several commands on one connection, read from stdin as a user would pipe them.
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'SET a 1\\nAPPEND a 23\\nGET a\\n' | redis-cli -p {}",
            node.port
        ))
        .output()
        .expect("run redis-cli");
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "OK\n3\n123\n");
}

#[test]
fn requirepass_is_enforced_for_redis_cli() {
    let node = Node::start(&["--requirepass", "s3cret"]);
    let denied = cli(&node, &["GET", "k"]);
    assert!(
        denied.starts_with("NOAUTH"),
        "expected NOAUTH without a password, got {denied:?}"
    );
    assert_eq!(
        cli(
            &node,
            &["-a", "s3cret", "--no-auth-warning", "SET", "k", "v"]
        ),
        "OK\n"
    );
    assert_eq!(
        cli(&node, &["-a", "s3cret", "--no-auth-warning", "GET", "k"]),
        "v\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_graceful_restart() {
    let mut node = Node::start(&["--fsync", "periodic"]);
    let big = "x".repeat(200_000);
    {
        let mut conn = connect(&node, "connect").await;
        for i in 0..500 {
            let () = conn
                .set(format!("key:{i}"), format!("value:{i}"))
                .await
                .expect("SET");
        }
        let () = conn.set("big", &big).await.expect("SET big");
        let () = conn.set_ex("expiring", "soon", 1000).await.expect("SETEX");
        let () = conn.del("key:7").await.expect("DEL");
    }
    // SIGTERM must flush and exit 0 (asserted by `stop`).
    node.stop();
    node.restart();
    let mut conn = connect(&node, "connect after restart").await;
    for i in 0..500 {
        let got: Option<String> = conn.get(format!("key:{i}")).await.expect("GET");
        if i == 7 {
            assert_eq!(got, None, "deleted key came back");
        } else {
            assert_eq!(got.as_deref(), Some(format!("value:{i}").as_str()));
        }
    }
    let got: Option<String> = conn.get("big").await.expect("GET big");
    assert_eq!(got.as_deref(), Some(big.as_str()));
    let ttl: i64 = conn.ttl("expiring").await.expect("TTL");
    assert!((990..=1000).contains(&ttl), "TTL after restart: {ttl}");
    let size: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    assert_eq!(size, 501);
    drop(conn);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_with_fsync_always() {
    const CLIENTS: usize = 4;
    const KILL_AFTER_ACKS: usize = 2_000;
    let mut node = Node::start(&["--fsync", "always"]);
    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let mut conn = connect(&node, "connect").await;
        let acked = Arc::clone(&acked);
        let killed = Arc::clone(&killed);
        writers.push(tokio::spawn(async move {
            // Every write this client saw acknowledged, key -> value. Overwrites of one key
            // (every 50th write reuses key 0) check that the last acknowledged value wins.
            let mut confirmed = HashMap::new();
            // The write the kill cut off: never acknowledged, so it may or may not be there.
            let mut in_flight = None;
            for i in 0..1_000_000u64 {
                let key = if i % 50 == 0 {
                    format!("c{c}:hot")
                } else {
                    format!("c{c}:{i}")
                };
                let value = format!("{c}-{i}-{}", "v".repeat(64));
                let result: redis::RedisResult<()> = conn.set(&key, &value).await;
                match result {
                    Ok(()) => {
                        confirmed.insert(key, value);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        assert!(
                            killed.load(Ordering::SeqCst),
                            "SET failed before the kill: {e}"
                        );
                        in_flight = Some((key, value));
                        break;
                    }
                }
            }
            (confirmed, in_flight)
        }));
    }
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < KILL_AFTER_ACKS {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} writes acknowledged in {DEADLINE:?}",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killed.store(true, Ordering::SeqCst);
    node.kill();
    let mut confirmed = HashMap::new();
    let mut unacknowledged = HashMap::new();
    for writer in writers {
        let one = tokio::time::timeout(DEADLINE, writer)
            .await
            .expect("writers notice the kill")
            .expect("writer task");
        confirmed.extend(one.0);
        unacknowledged.extend(one.1);
    }
    assert!(confirmed.len() >= KILL_AFTER_ACKS / 2);

    node.restart();
    let mut conn = connect(&node, "connect after restart").await;
    let mut lost = Vec::new();
    for (key, value) in &confirmed {
        let got: Option<String> = conn.get(key).await.expect("GET");
        // A key whose later write was cut off by the kill may hold either value.
        let cut_off = unacknowledged.get(key).map(String::as_str);
        let acceptable = got.as_deref() == Some(value.as_str())
            || (cut_off.is_some() && got.as_deref() == cut_off);
        if !acceptable {
            lost.push((key.clone(), value.clone(), got));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after SIGKILL, e.g. (key, acknowledged, read) {:?}",
        lost.len(),
        confirmed.len(),
        &lost[..lost.len().min(5)]
    );
    drop(conn);
    node.stop();
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let node = Node::start(&[]);
    let port = free_port().to_string();
    let dir = node.data_dir().display().to_string();
    let (status, output) = run_to_exit(&["--port", &port, "--data-dir", &dir]);
    assert!(!status.success(), "second node started: {output}");
    assert!(
        output.contains("data directory") && output.contains("lock"),
        "unclear message for a locked data directory: {output}"
    );
    // The first node is undisturbed.
    assert_eq!(cli(&node, &["SET", "still", "here"]), "OK\n");
    assert_eq!(cli(&node, &["GET", "still"]), "here\n");
}

#[test]
fn a_port_in_use_is_refused() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("address").port().to_string();
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data").display().to_string();
    let (status, output) = run_to_exit(&["--port", &port, "--data-dir", &data]);
    assert!(!status.success(), "started on a port in use: {output}");
    assert!(
        output.contains(&port) && output.contains("in use"),
        "unclear message for a port in use: {output}"
    );
}

#[test]
fn bad_configuration_values_exit_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data").display().to_string();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "port = \"not a number\"\n").expect("write config");
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(&unknown_key, "no_such_setting = 1\n").expect("write config");
    let bad_toml = bad_toml.display().to_string();
    let unknown_key = unknown_key.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--fsync", "sometimes"], "sometimes"),
        (vec!["--port", "70000"], "70000"),
        (vec!["--maxclients", "0"], "maxclients"),
        (vec!["--worker-threads", "0"], "worker_threads"),
        (vec!["--fsync-interval-ms", "0"], "fsync_interval_ms"),
        (vec!["--read-consistency", "SOMETIMES"], "SOMETIMES"),
        (vec!["--bind", "not-an-address"], "not-an-address"),
        (vec!["--config", &bad_toml], "bad.toml"),
        (vec!["--config", &unknown_key], "no_such_setting"),
        (
            vec!["--config", "/nonexistent/ringkv.toml"],
            "/nonexistent/ringkv.toml",
        ),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, named) in cases {
        // A free port, so a value wrongly accepted starts a node (and fails the exit-code
        // check) instead of clashing with something.
        let port = free_port().to_string();
        let mut full = vec!["--data-dir", data.as_str()];
        if !args.contains(&"--port") {
            full.extend(["--port", port.as_str()]);
        }
        full.extend(&args);
        let (status, output) = run_to_exit(&full);
        assert_eq!(
            status.code(),
            Some(2),
            "{args:?} should exit 2; printed: {output}"
        );
        assert!(
            output.contains(named),
            "{args:?}: the message should name {named:?}: {output}"
        );
    }
}

#[test]
fn a_bad_environment_value_exits_2() {
    let out = std::process::Command::new(process::binary())
        .env("RINGKV_PORT", "not-a-port")
        .output()
        .expect("run ringkv");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-port"));
}

/// A connection to `node` that waits as long as the tests do for an answer: the `redis`
/// crate's default (500 ms) is shorter than an fsync can take on a loaded CI machine, and a
/// write timed out by the client is not a write the node lost.
async fn connect(node: &Node, what: &str) -> redis::aio::MultiplexedConnection {
    let mut conn = node
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect(what);
    conn.set_response_timeout(DEADLINE);
    conn
}

/// `THP_enabled` of process `pid` ("self" for this one), from `/proc/PID/status` (Linux).
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_owned())
}

#[test]
#[cfg(target_os = "linux")]
fn transparent_huge_pages_are_turned_off_only_when_asked() {
    if std::env::var_os("RINGKV_DISABLE_THP").is_some() {
        eprintln!("RINGKV_DISABLE_THP is set for the nodes; nothing to check");
        return;
    }
    let off = Node::start(&["--disable-thp", "true"]);
    let Some(switched) = thp_enabled(&off.pid().to_string()) else {
        eprintln!("this kernel does not report THP_enabled; nothing to check");
        return;
    };
    assert_eq!(switched, "0", "as redis-server's disable-thp yes");
    assert_eq!(cli(&off, &["SET", "k", "v"]), "OK\n");
    // A child inherits the switch, so a default node has what this process has.
    let default = Node::start(&[]);
    assert_eq!(
        thp_enabled(&default.pid().to_string()),
        thp_enabled("self"),
        "by default THP stays as the node found it"
    );
}
