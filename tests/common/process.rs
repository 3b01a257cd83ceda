//! Real `ringkv` processes for the end-to-end tests: [`Node`] spawns the binary cargo built for
//! this package (`CARGO_BIN_EXE_ringkv`), each in its own temporary directory holding its data
//! directory and its log file, and offers `kill` (SIGKILL), `stop` (SIGTERM, then exit 0),
//! `restart` and raw clients.
//!
//! Every wait polls with a deadline; nothing sleeps a fixed time hoping the node is ready. When a
//! test panics, dropping its nodes prints their logs to stderr, so a failure shows what the node
//! said.
//!
//! The binary cannot report the port it bound, so [`free_port`] binds `127.0.0.1:0`, reads the
//! port and releases it before the node binds it. Another process may take the port in between;
//! [`Node::start`] therefore retries with a fresh port when the node exits saying so.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one wait (start, stop, a reply) may take before the test fails. Generous,
/// because CI builds tests in debug mode on two shared cores.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(10);

/// The `ringkv` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ringkv")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// One `ringkv` process (or none, between `kill`/`stop` and `restart`) with its directory.
pub struct Node {
    /// The client port.
    pub port: u16,
    /// Extra flags given at every start (besides `--port`, `--data-dir`).
    args: Vec<String>,
    /// Holds `data/` and `node.log`; removed when the node is dropped.
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    /// Starts a node with `args` (flags besides `--port` and `--data-dir`) in a new temporary
    /// directory, and waits until it answers `PING`.
    ///
    /// # Panics
    /// If the node does not come up within [`DEADLINE`] (its log is printed).
    pub fn start(args: &[&str]) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("ringkv-e2e-")
            .tempdir()
            .expect("temporary directory");
        let mut node = Node {
            port: 0,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            dir,
            child: None,
        };
        // The port may be taken between `free_port` and the node's bind: try a few.
        for _ in 0..5 {
            node.port = free_port();
            node.spawn();
            match node.wait_ready() {
                Ok(()) => return node,
                Err(status) if node.log().contains("Address already in use") => {
                    eprintln!("port {} was taken ({status}); trying another", node.port);
                }
                Err(status) => panic!(
                    "ringkv exited before serving ({status}); log:\n{}",
                    node.log()
                ),
            }
        }
        panic!("no free port found for ringkv; log:\n{}", node.log());
    }

    /// Spawns a node on `port` with `args` (flags besides `--port` and `--data-dir`) in a new
    /// temporary directory and returns at once, without waiting for it to serve: a cluster
    /// starts all its nodes before waiting for any. Follow with [`Node::wait_serving`].
    ///
    /// # Panics
    /// If the directory cannot be made or the binary cannot be spawned.
    pub fn spawn_on(port: u16, args: &[String]) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("ringkv-e2e-")
            .tempdir()
            .expect("temporary directory");
        let mut node = Node {
            port,
            args: args.to_vec(),
            dir,
            child: None,
        };
        node.spawn();
        node
    }

    /// Waits until a node from [`Node::spawn_on`] answers `PING`, or returns the exit status
    /// if it exits first (its log then says why, e.g. "Address already in use").
    ///
    /// # Panics
    /// If the node is not running, or neither happens within [`DEADLINE`].
    pub fn wait_serving(&mut self) -> Result<(), ExitStatus> {
        self.wait_ready()
    }

    /// Whether the process is running (false after `kill`/`stop`, or once it has exited by
    /// itself, which this reaps).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The node's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// Everything the node logged so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The running process's id.
    ///
    /// # Panics
    /// If the node is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    /// The flags of one run: the node's own plus port and data directory.
    fn full_args(&self) -> Vec<String> {
        let mut args = vec![
            "--port".to_owned(),
            self.port.to_string(),
            "--data-dir".to_owned(),
            self.data_dir().display().to_string(),
        ];
        args.extend(self.args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node already running");
        let log = open_log(&self.log_path());
        writeln!(&log, "==> starting ringkv {}", self.full_args().join(" ")).expect("log");
        let child = Command::new(binary())
            .args(self.full_args())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn ringkv");
        self.child = Some(child);
    }

    /// Polls until the node answers `PING` (with `+PONG` or any error such as `-NOAUTH`),
    /// returning the exit status if the process exits first.
    fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("node is running")
                .try_wait()
                .expect("wait for ringkv")
            {
                self.child = None;
                return Err(status);
            }
            if ping(self.port) {
                return Ok(());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "ringkv did not answer PING on port {} within {DEADLINE:?}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Kills the node with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("node is running");
        child.kill().expect("SIGKILL ringkv");
        child.wait().expect("reap ringkv");
    }

    /// Sends SIGTERM and waits for the process to exit, returning its status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("node is running");
        signal(child.id(), "TERM");
        wait_with_deadline(&mut child, &self.log())
    }

    /// Stops the node gracefully: SIGTERM, then asserts it exits 0 within [`DEADLINE`].
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "ringkv exited with {status} after SIGTERM; log:\n{}",
            self.log()
        );
    }

    /// Starts the node again on the same port and data directory (after `kill` or `stop`),
    /// waiting until it answers.
    pub fn restart(&mut self) {
        self.spawn();
        if let Err(status) = self.wait_ready() {
            panic!("ringkv exited on restart ({status}); log:\n{}", self.log());
        }
    }

    /// Runs the real `redis-cli` against this node with `args`, returning its output.
    ///
    /// # Panics
    /// If `redis-cli` is not installed (`scripts/test.sh` installs it).
    pub fn redis_cli(&self, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli (Debian package redis-tools; scripts/test.sh installs it)")
    }

    /// A raw TCP connection to the node with [`DEADLINE`] as its read and write timeouts.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to ringkv");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        stream.set_write_timeout(Some(DEADLINE)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        stream
    }

    /// A `redis` crate client for this node.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis client")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- ringkv log ({}) ----\n{}---- end of log ----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// Runs the binary with `args` to completion (it is expected to refuse to start), returning
/// its exit status and everything it printed.
///
/// # Panics
/// If it is still running after [`DEADLINE`] (it is killed first).
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log_path = dir.path().join("out.log");
    let log = open_log(&log_path);
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn ringkv");
    let status = wait_with_deadline(&mut child, "");
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    (status, output)
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open node log")
}

/// Sends signal `name` (`TERM`, `KILL`, ...) to `pid` with the system's `kill`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits for `child` to exit; past [`DEADLINE`] kills it and panics, printing `log`.
fn wait_with_deadline(child: &mut Child, log: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for ringkv") {
            return status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringkv did not exit within {DEADLINE:?}; log:\n{log}");
        }
        std::thread::sleep(POLL);
    }
}

/// True when something on `port` answers an inline-free `PING` with a simple string or error.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    matches!(stream.read(&mut first), Ok(1) if first[0] == b'+' || first[0] == b'-')
}

/// Reads one RESP reply line-wise from a blocking stream: a simple string, error or integer
/// line, or a bulk string with its payload. Enough for the raw-protocol tests.
pub fn read_reply(stream: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    read_line(stream, &mut reply);
    if reply.first() == Some(&b'$') {
        let len: i64 = std::str::from_utf8(&reply[1..reply.len() - 2])
            .expect("bulk length")
            .parse()
            .expect("bulk length");
        if len >= 0 {
            let mut payload = vec![0u8; usize::try_from(len).expect("length") + 2];
            stream.read_exact(&mut payload).expect("bulk payload");
            reply.extend_from_slice(&payload);
        }
    }
    reply
}

/// Appends one `\r\n`-terminated line to `out`.
fn read_line(stream: &mut TcpStream, out: &mut Vec<u8>) {
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        let n = stream.read(&mut byte).expect("read a reply line");
        assert!(
            n == 1,
            "connection closed mid-reply after {:?}",
            String::from_utf8_lossy(out)
        );
        out.push(byte[0]);
    }
}

/// Reads until the peer closes the connection (or [`DEADLINE`] passes, which fails).
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("the node should close the connection");
    all
}

/// Encodes `args` as a RESP request (an array of bulk strings).
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}
