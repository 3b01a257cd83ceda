//! A ringkv node and raw TCP clients for the front end's integration tests.
//!
//! [`TestNode::start`] binds `127.0.0.1:0`, opens a real single-node `LocalCluster` in a
//! temporary directory and runs `ringkv_resp::run` on it, as the binary does. [`Client`] speaks
//! raw bytes and decodes replies with `redis-protocol`, an implementation independent of
//! ringkv's encoder. Every wait has a deadline; nothing sleeps to wait.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::OwnedFrame as Frame3;
use ringkv_cluster::{ClusterConfig, LocalCluster};
use ringkv_resp::{ServerConfig, ServerError, ServerState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running node.
pub struct TestNode {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The server's shared state, to read counters.
    pub state: Arc<ServerState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    cluster: Arc<LocalCluster>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// Starts a node with `config`.
    pub async fn start(config: ServerConfig) -> TestNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cluster = Arc::new(
            LocalCluster::open(ClusterConfig::new(dir.path(), "test-node")).expect("open cluster"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(ServerState::new(config));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ringkv_resp::run_with_state(
            Arc::clone(&state),
            listener,
            Arc::clone(&cluster),
            async move {
                let _ = stopped.await;
            },
        ));
        TestNode {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
            cluster,
            _dir: dir,
        }
    }

    /// Starts a node with the default configuration.
    pub async fn start_default() -> TestNode {
        TestNode::start(ServerConfig::default()).await
    }

    /// A new client connection.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Asks the server to shut down and waits until `run` returns.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        let result = tokio::time::timeout(DEADLINE, task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        let _ = self.cluster.shutdown();
        result
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A raw client connection.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

/// Encodes `args` as a multibulk request.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Sends a request and reads its RESP2 reply.
    pub async fn call(&mut self, args: &[&str]) -> Frame2 {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&request(&args)).await;
        self.read2().await
    }

    /// Sends a request and reads its RESP3 reply.
    pub async fn call3(&mut self, args: &[&str]) -> Frame3 {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&request(&args)).await;
        self.read3().await
    }

    async fn fill(&mut self) {
        let n = tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buf))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(n > 0, "connection closed while a reply was expected");
    }

    /// Reads one RESP2 reply.
    pub async fn read2(&mut self) -> Frame2 {
        loop {
            if let Some((frame, used)) =
                redis_protocol::resp2::decode::decode(&self.buf).expect("valid RESP2 reply")
            {
                let _ = self.buf.split_to(used);
                return frame;
            }
            self.fill().await;
        }
    }

    /// Reads one RESP3 reply.
    pub async fn read3(&mut self) -> Frame3 {
        loop {
            if let Some((frame, used)) = redis_protocol::resp3::decode::complete::decode(&self.buf)
                .expect("valid RESP3 reply")
            {
                let _ = self.buf.split_to(used);
                return frame;
            }
            self.fill().await;
        }
    }

    /// Reads exactly `expected.len()` bytes and checks they are `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        while self.buf.len() < expected.len() {
            self.fill().await;
        }
        let got = self.buf.split_to(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Reads until one whole RESP2 reply is buffered or the server closes; returns the reply's
    /// bytes (or whatever came before the close).
    pub async fn read_until_closed_or_reply(&mut self) -> Vec<u8> {
        loop {
            if let Ok(Some((_, used))) = redis_protocol::resp2::decode::decode(&self.buf) {
                return self.buf.split_to(used).to_vec();
            }
            match tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("reply or close in time")
            {
                Ok(0) | Err(_) => return self.buf.split().to_vec(),
                Ok(_) => {}
            }
        }
    }

    /// Waits until the server closes the connection; returns what it sent before.
    pub async fn read_until_closed(&mut self) -> Vec<u8> {
        loop {
            match tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("server closes in time")
            {
                Ok(0) | Err(_) => return self.buf.split().to_vec(),
                Ok(_) => {}
            }
        }
    }
}

/// A RESP2 simple string, bulk or error as text, for assertions.
pub fn text(frame: &Frame2) -> String {
    match frame {
        Frame2::SimpleString(s) | Frame2::BulkString(s) => String::from_utf8_lossy(s).into_owned(),
        Frame2::Error(e) => format!("-{e}"),
        Frame2::Integer(n) => format!(":{n}"),
        other => format!("{other:?}"),
    }
}
