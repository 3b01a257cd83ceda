//! Real multi-node `ringkv` clusters on loopback for the end-to-end tests: [`TestCluster`]
//! starts N [`Node`]s (from `process.rs`, which a test file declares next to this module as
//! `mod process`) at once, each with its own temporary data directory and log, node id
//! `node-<i>`, its own client and bus ports and the first node's bus address as its seed. It
//! stops (SIGTERM), kills (SIGKILL) and restarts nodes (same data directory, same ports), and
//! reads the ring as clients see it: `CLUSTER NODES`, `CLUSTER SLOTS`, `CLUSTER SHARDS`.
//!
//! Every wait polls with a deadline and panics with what it last saw; nothing sleeps a fixed
//! time hoping the ring has settled. Dropping the cluster kills every node still running (also
//! when a test panics, and then each node's log is printed, by [`Node`]'s drop).
//!
//! Must never reach into a node's data directory or process beyond signals: a test sees the
//! cluster only as clients and operators do.

#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::process::Output;
use std::time::{Duration, Instant};

use redis::{FromRedisValue, Value};

use crate::process::{Node, DEADLINE};

/// Flags every node gets to tune gossip and failure detection for tests (`--gossip-interval-ms`,
/// `--phi-threshold`, `--join-wait-ms`); every cluster test picks them up. Empty: the defaults
/// (gossip every 500 ms, phi 8) already mark a dead node down within seconds, and a shorter
/// interval risks a busy CI machine's pauses reading as deaths.
pub const FAILURE_DETECTION_ARGS: &[&str] = &[];

/// How long a ring may take to converge or to notice a node down (gossip rounds plus the
/// failure detector, on two shared cores with debug builds).
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often a wait asks the nodes again.
const POLL: Duration = Duration::from_millis(200);

/// How a [`TestCluster`] is started.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// `--replication-factor`.
    pub replication_factor: usize,
    /// `--fsync always` instead of the default periodic fsync.
    pub fsync_always: bool,
    /// Every node's bus address in `--seeds` instead of only the first node's.
    pub seed_all: bool,
    /// More flags for every node.
    pub extra_args: Vec<String>,
}

impl ClusterOptions {
    /// `nodes` nodes with `replication_factor`, periodic fsync, the first node as the seed.
    pub fn new(nodes: usize, replication_factor: usize) -> Self {
        Self {
            nodes,
            replication_factor,
            fsync_always: false,
            seed_all: false,
            extra_args: Vec::new(),
        }
    }
}

/// One node as a node's `CLUSTER NODES` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    /// The node id.
    pub id: String,
    /// `ip:port@busport`.
    pub address: String,
    /// The flags (`myself`, `master`, `fail`, ...).
    pub flags: Vec<String>,
}

impl NodeLine {
    /// Whether the answering node believes this one down (`fail` or `pfail`).
    pub fn failing(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "pfail")
    }
}

/// One entry of `CLUSTER SLOTS`: a slot range and the node ids serving it, master first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotEntry {
    /// First slot.
    pub start: u16,
    /// Last slot, inclusive.
    pub end: u16,
    /// Node ids, master first.
    pub nodes: Vec<String>,
}

/// N `ringkv` processes forming one ring.
pub struct TestCluster {
    nodes: Vec<Node>,
    bus_ports: Vec<u16>,
    options: ClusterOptions,
}

impl TestCluster {
    /// Starts `n` nodes with replication factor `rf` and waits until each answers `PING`
    /// (not until the ring converges: see [`TestCluster::wait_converged`]).
    pub fn start(n: usize, rf: usize) -> TestCluster {
        TestCluster::start_with(ClusterOptions::new(n, rf))
    }

    /// Starts a cluster as `options` say: every process is spawned before any is waited for,
    /// as three nodes started at the same moment must converge. When a node finds a port
    /// taken (another process got it between picking and binding), the whole cluster starts
    /// again on fresh ports.
    ///
    /// # Panics
    /// If a node exits for another reason, or does not serve within [`DEADLINE`].
    pub fn start_with(options: ClusterOptions) -> TestCluster {
        assert!(options.nodes > 0, "a cluster needs a node");
        for _ in 0..3 {
            let ports = pick_ports(options.nodes);
            let bus_ports: Vec<u16> = ports.iter().map(|&(_, bus)| bus).collect();
            let nodes = ports
                .iter()
                .enumerate()
                .map(|(i, &(port, _))| Node::spawn_on(port, &node_args(&options, i, &bus_ports)))
                .collect();
            let mut cluster = TestCluster {
                nodes,
                bus_ports,
                options: options.clone(),
            };
            match cluster.wait_all_serving() {
                Ok(()) => return cluster,
                Err(i) if cluster.nodes[i].log().contains("Address already in use") => {
                    eprintln!("node-{i}'s port was taken; starting the cluster on other ports");
                }
                Err(i) => panic!(
                    "node-{i} exited before serving; its log:\n{}",
                    cluster.nodes[i].log()
                ),
            }
        }
        panic!("no free ports found for a {}-node cluster", options.nodes);
    }

    /// Waits for every node to answer `PING`; `Err(i)` when node `i` exited first.
    fn wait_all_serving(&mut self) -> Result<(), usize> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.wait_serving().map_err(|_| i)?;
        }
        Ok(())
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The options it was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Node `i`'s id: `node-<i>`.
    pub fn node_id(i: usize) -> String {
        format!("node-{i}")
    }

    /// The index of the node called `id`, if it is one of `node-<i>`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        let i: usize = id.strip_prefix("node-")?.parse().ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    /// Node `i`'s process.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Node `i`'s client port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Node `i`'s bus port.
    pub fn bus_port(&self, i: usize) -> u16 {
        self.bus_ports[i]
    }

    /// Whether node `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// Indices of the running nodes.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect()
    }

    /// Stops node `i` gracefully: SIGTERM, then asserts it exits 0.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again with the same data directory, ports and flags, and waits until it
    /// answers `PING`.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// A `redis` crate client for node `i`.
    pub fn client(&self, i: usize) -> redis::Client {
        self.nodes[i].client()
    }

    /// A blocking connection to node `i`, with [`DEADLINE`] as its timeouts so a request that
    /// hangs fails the test instead of stalling it.
    pub fn connection(&self, i: usize) -> redis::Connection {
        let conn = self
            .client(i)
            .get_connection_with_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("connect to node-{i}: {e}"));
        conn.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        conn.set_write_timeout(Some(DEADLINE))
            .expect("write timeout");
        conn
    }

    /// A connection to node `i` whose reads and writes use `level` (`CONSISTENCY <level>`).
    pub fn connection_at(&self, i: usize, level: &str) -> redis::Connection {
        let mut conn = self.connection(i);
        redis::cmd("CONSISTENCY")
            .arg(level)
            .query::<()>(&mut conn)
            .unwrap_or_else(|e| panic!("CONSISTENCY {level} on node-{i}: {e}"));
        conn
    }

    /// Runs the real `redis-cli` against node `i` with `args`.
    pub fn redis_cli(&self, i: usize, args: &[&str]) -> Output {
        self.nodes[i].redis_cli(args)
    }

    /// `redis://127.0.0.1:PORT/` of every node in `nodes`.
    pub fn urls(&self, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|&i| self.nodes[i].url()).collect()
    }

    /// The `redis` crate's cluster client, given every node in `nodes` as initial nodes.
    pub fn cluster_client(&self, nodes: &[usize]) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(self.urls(nodes))
            .connection_timeout(DEADLINE)
            .response_timeout(DEADLINE)
            .build()
            .expect("cluster client")
    }

    /// Node `i`'s `CLUSTER NODES`, parsed.
    ///
    /// # Errors
    /// The client's error if node `i` cannot be asked.
    pub fn cluster_nodes(&self, i: usize) -> redis::RedisResult<Vec<NodeLine>> {
        let text: String = self.ask(i, redis::cmd("CLUSTER").arg("NODES"))?;
        Ok(text.lines().filter_map(parse_node_line).collect())
    }

    /// Node `i`'s `CLUSTER SLOTS`, parsed.
    ///
    /// # Errors
    /// The client's error if node `i` cannot be asked or the reply has another shape.
    pub fn cluster_slots(&self, i: usize) -> redis::RedisResult<Vec<SlotEntry>> {
        let reply: Value = self.ask(i, redis::cmd("CLUSTER").arg("SLOTS"))?;
        parse_slots(&reply).ok_or_else(|| bad_reply("CLUSTER SLOTS", &reply))
    }

    /// Sends one command to node `i` on a new connection.
    fn ask<T: FromRedisValue>(&self, i: usize, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self
            .client(i)
            .get_connection_with_timeout(Duration::from_secs(5))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        cmd.query(&mut conn)
    }

    /// Waits until every running node lists all nodes in `CLUSTER NODES`, the running ones
    /// up and the others `fail`, `CLUSTER INFO` shows every slot assigned, and all running nodes
    /// answer the same `CLUSTER SLOTS` (with every node up: min(replication factor, nodes)
    /// replicas per range).
    ///
    /// # Panics
    /// After `timeout`, with what the last look found wrong.
    pub fn wait_converged(&mut self, timeout: Duration) {
        let running = self.running();
        let expected: Vec<String> = (0..self.nodes.len()).map(TestCluster::node_id).collect();
        self.wait_until("the ring to converge", timeout, |cluster| {
            for &i in &running {
                let lines = cluster
                    .cluster_nodes(i)
                    .map_err(|e| format!("node-{i}: CLUSTER NODES failed: {e}"))?;
                let mut seen: Vec<String> = lines.iter().map(|l| l.id.clone()).collect();
                seen.sort();
                if seen != expected {
                    return Err(format!("node-{i} knows {seen:?}, not {expected:?}"));
                }
                for line in &lines {
                    let j = cluster.index_of(&line.id).unwrap_or(usize::MAX);
                    let up = running.contains(&j);
                    if up == line.failing() {
                        return Err(format!(
                            "node-{i} sees {} as {:?} but it is {}",
                            line.id,
                            line.flags,
                            if up { "running" } else { "down" }
                        ));
                    }
                }
                let info: String = cluster
                    .ask(i, redis::cmd("CLUSTER").arg("INFO"))
                    .map_err(|e| format!("node-{i}: CLUSTER INFO failed: {e}"))?;
                if !info.contains("cluster_slots_assigned:16384") {
                    return Err(format!("node-{i}: not every slot is assigned:\n{info}"));
                }
            }
            // One ring: every running node places every slot on the same replicas, and with
            // every node up each slot has min(replication factor, nodes) of them.
            let mut first: Option<(usize, Vec<SlotEntry>)> = None;
            for &i in &running {
                let slots = cluster
                    .cluster_slots(i)
                    .map_err(|e| format!("node-{i}: CLUSTER SLOTS failed: {e}"))?;
                if running.len() == expected.len() {
                    let replicas = cluster.options.replication_factor.min(expected.len());
                    if let Some(short) = slots.iter().find(|e| e.nodes.len() != replicas) {
                        return Err(format!(
                            "node-{i} places {short:?} on other than {replicas}"
                        ));
                    }
                }
                match &first {
                    None => first = Some((i, slots)),
                    Some((j, theirs)) if *theirs != slots => {
                        return Err(format!("node-{i} and node-{j} place slots differently"));
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        });
    }

    /// Waits until every other running node marks node `down` as failing in `CLUSTER NODES`.
    ///
    /// # Panics
    /// After `timeout`, naming a node that still sees it up.
    pub fn wait_down(&mut self, down: usize, timeout: Duration) {
        let others: Vec<usize> = self.running().into_iter().filter(|&i| i != down).collect();
        let id = TestCluster::node_id(down);
        self.wait_until(&format!("{id} to be marked down"), timeout, |cluster| {
            for &i in &others {
                let lines = cluster
                    .cluster_nodes(i)
                    .map_err(|e| format!("node-{i}: CLUSTER NODES failed: {e}"))?;
                match lines.iter().find(|l| l.id == id) {
                    Some(line) if line.failing() => {}
                    Some(line) => return Err(format!("node-{i} sees {id} as {:?}", line.flags)),
                    None => return Err(format!("node-{i} does not list {id}")),
                }
            }
            Ok(())
        });
    }

    /// The nodes holding `key`'s replicas, as the ring says (`CLUSTER KEYSLOT`, then the shard
    /// of that slot in `CLUSTER SHARDS`, which lists down replicas too), asking the first
    /// running node. Order: the slot's master first.
    ///
    /// # Panics
    /// If no node is running or the replies have another shape.
    pub fn nodes_holding(&mut self, key: &str) -> Vec<usize> {
        let asked = *self.running().first().expect("a running node");
        let slot: i64 = self
            .ask(asked, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .expect("CLUSTER KEYSLOT");
        let shards: Value = self
            .ask(asked, redis::cmd("CLUSTER").arg("SHARDS"))
            .expect("CLUSTER SHARDS");
        let ids = shard_of(&shards, slot)
            .unwrap_or_else(|| panic!("no shard holds slot {slot}: {shards:?}"));
        ids.iter()
            .map(|id| {
                self.index_of(id)
                    .unwrap_or_else(|| panic!("unknown node {id}"))
            })
            .collect()
    }

    /// Polls `check` until it returns `Ok`, panicking after `timeout` with its last error.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&TestCluster) -> Result<(), String>,
    ) {
        let started = Instant::now();
        loop {
            let last = match check(self) {
                Ok(()) => return,
                Err(e) => e,
            };
            assert!(
                started.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last: {last}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Prints every node's log to stderr (done anyway when a test panics).
    pub fn dump_logs(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            eprintln!("---- node-{i} log ----\n{}---- end ----", node.log());
        }
    }
}

/// The flags of node `i`: ports, id, seeds, replication factor and the options' extras (the
/// data directory is [`Node`]'s).
fn node_args(options: &ClusterOptions, i: usize, bus_ports: &[u16]) -> Vec<String> {
    let seeds: Vec<String> = if options.seed_all {
        bus_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    } else {
        vec![format!("127.0.0.1:{}", bus_ports[0])]
    };
    let mut args = vec![
        "--bus-port".to_owned(),
        bus_ports[i].to_string(),
        "--node-id".to_owned(),
        TestCluster::node_id(i),
        "--seeds".to_owned(),
        seeds.join(","),
        "--replication-factor".to_owned(),
        options.replication_factor.to_string(),
        "--announce-ip".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    if options.fsync_always {
        args.extend(["--fsync".to_owned(), "always".to_owned()]);
    }
    args.extend(FAILURE_DETECTION_ARGS.iter().map(|a| (*a).to_owned()));
    args.extend(options.extra_args.iter().cloned());
    args
}

/// `n` (client, bus) port pairs that were free a moment ago: the client port for TCP and the
/// bus port for both TCP (peer requests) and UDP (gossip). All are held until all are picked,
/// so no two nodes get the same port.
fn pick_ports(n: usize) -> Vec<(u16, u16)> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n {
        let client = TcpListener::bind("127.0.0.1:0").expect("bind a client port");
        let client_port = client.local_addr().expect("address").port();
        held.push((client, None));
        let (bus, udp) = loop {
            let bus = TcpListener::bind("127.0.0.1:0").expect("bind a bus port");
            let port = bus.local_addr().expect("address").port();
            if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
                break (bus, udp);
            }
        };
        let bus_port = bus.local_addr().expect("address").port();
        held.push((bus, Some(udp)));
        ports.push((client_port, bus_port));
    }
    drop(held);
    ports
}

/// Parses one `CLUSTER NODES` line: `<id> <ip:port@cport> <flags> ...`.
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let mut fields = line.split_whitespace();
    let id = fields.next()?.to_owned();
    let address = fields.next()?.to_owned();
    let flags = fields.next()?.split(',').map(str::to_owned).collect();
    Some(NodeLine { id, address, flags })
}

fn bad_reply(what: &str, reply: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply shape",
        format!("{what}: {reply:?}"),
    ))
}

/// `CLUSTER SLOTS` as entries: `[start, end, [ip, port, id, ...], ...]`.
fn parse_slots(reply: &Value) -> Option<Vec<SlotEntry>> {
    let Value::Array(entries) = reply else {
        return None;
    };
    entries
        .iter()
        .map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let start = u16::try_from(int(parts.first()?)?).ok()?;
            let end = u16::try_from(int(parts.get(1)?)?).ok()?;
            let nodes = parts[2..]
                .iter()
                .map(|node| match node {
                    Value::Array(fields) => text(fields.get(2)?),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>()?;
            Some(SlotEntry { start, end, nodes })
        })
        .collect()
}

/// The node ids of the `CLUSTER SHARDS` shard whose slot ranges include `slot`.
fn shard_of(shards: &Value, slot: i64) -> Option<Vec<String>> {
    let Value::Array(shards) = shards else {
        return None;
    };
    for shard in shards {
        let Some(Value::Array(bounds)) = field(shard, "slots") else {
            return None;
        };
        let bounds: Vec<i64> = bounds.iter().filter_map(int).collect();
        if !bounds
            .chunks(2)
            .any(|r| r.len() == 2 && r[0] <= slot && slot <= r[1])
        {
            continue;
        }
        let Some(Value::Array(nodes)) = field(shard, "nodes") else {
            return None;
        };
        return nodes
            .iter()
            .map(|n| field(n, "id").and_then(text))
            .collect();
    }
    None
}

/// A field of a map reply: a RESP3 map, or RESP2's flat `[name, value, ...]` array.
fn field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    match map {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .map(|(_, v)| v),
        Value::Array(flat) => flat
            .chunks(2)
            .find(|pair| pair.len() == 2 && text(&pair[0]).as_deref() == Some(name))
            .map(|pair| &pair[1]),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// Asserts `entries` (one node's `CLUSTER SLOTS`) cover every slot once, in order, each
/// range served by `replicas` distinct nodes among `node-0..node-<nodes-1>`.
///
/// # Panics
/// Naming the first gap, overlap or short range.
pub fn assert_every_slot_has(entries: &[SlotEntry], replicas: usize, nodes: usize) {
    let mut next = 0u32;
    for entry in entries {
        assert_eq!(
            u32::from(entry.start),
            next,
            "slots {next}..{} are missing or overlap: {entries:?}",
            entry.start
        );
        assert!(entry.end >= entry.start, "backwards range {entry:?}");
        let mut ids = entry.nodes.clone();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            replicas,
            "slots {}-{} have {:?}, not {replicas} distinct replicas",
            entry.start,
            entry.end,
            entry.nodes
        );
        for id in &ids {
            let known = id
                .strip_prefix("node-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n < nodes);
            assert!(
                known,
                "slots {}-{} name an unknown node {id}",
                entry.start, entry.end
            );
        }
        next = u32::from(entry.end) + 1;
    }
    assert_eq!(next, 16384, "slots {next}..16383 are missing: {entries:?}");
}

/// Asserts `err` is the clear consistency error: its text names `level` and every number in
/// `counts` (how many replicas answered or are alive, how many were needed), as whole words.
///
/// # Panics
/// Printing the error when a part is missing.
pub fn assert_level_error(err: &redis::RedisError, level: &str, counts: &[usize]) {
    let message = err.to_string();
    let words: Vec<&str> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    assert!(
        words.contains(&level),
        "the error does not name {level}: {message}"
    );
    for count in counts {
        assert!(
            words.contains(&count.to_string().as_str()),
            "the error does not say {count}: {message}"
        );
    }
}
