//! The listener: accepts clients, runs a task per connection, shuts down gracefully.
//!
//! Owns [`run`], [`ServerState`] (what every connection shares: the configuration and its
//! run-time-settable parts, the client registry, the counters) and [`ServerError`]. Parts:
//! `server/config.rs` ([`ServerConfig`]), `server/clients.rs` (the client registry),
//! `server/stats.rs` (counters). The accept loop never reads a request or runs a command;
//! that is each connection task's job (`conn.rs`). Shaped like mini-redis's `server::run`: the
//! caller binds the listener (tests bind `127.0.0.1:0`) and passes the future that ends it.

mod clients;
mod config;
pub(crate) mod stats;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use ringkv_cluster::Cluster;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

pub(crate) use clients::CloseRequest;
pub use clients::{ClientDetails, ClientHandle, ClientRegistry};
pub use config::ServerConfig;
pub use stats::{CommandStats, ServerStats};

use crate::cmd::table;
use crate::conn::Connection;
use crate::errors;

/// The Redis version ringkv answers as (`HELLO`, `INFO`): the one whose commands and replies
/// it reproduces. Clients use it to choose features; ringkv's own version is in `INFO server`.
pub const REDIS_VERSION: &str = "7.2.4";

/// How often the ops/sec sampler runs, as Redis's `serverCron` samples.
const OPS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// How long shutdown waits for connections to finish the requests they have read and send
/// the replies.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause after a failed `accept` (too many open files, out of buffers) before
/// trying again; the pause doubles from 10 ms up to this.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening socket failed in a way retrying cannot fix.
    #[error("accepting client connections failed: {source}")]
    Accept {
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// What every connection shares.
#[derive(Debug)]
pub struct ServerState {
    /// The configuration the server started with. The parameters `CONFIG SET` can change
    /// (`maxclients`, `timeout`, `requirepass`) are read through the methods below instead.
    pub config: ServerConfig,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Counters.
    pub stats: ServerStats,
    /// Live `maxclients`.
    maxclients: AtomicUsize,
    /// Live `timeout`, in seconds.
    timeout_secs: AtomicU64,
    /// Live `requirepass`.
    requirepass: RwLock<Option<String>>,
    /// Whether `requirepass` is set: read on every command, so it is kept apart from the lock.
    auth_required: AtomicBool,
}

impl ServerState {
    /// The shared state of a server starting with `config`.
    pub fn new(config: ServerConfig) -> Self {
        let requirepass = config.requirepass.clone().filter(|p| !p.is_empty());
        ServerState {
            maxclients: AtomicUsize::new(config.maxclients),
            timeout_secs: AtomicU64::new(config.timeout_secs),
            auth_required: AtomicBool::new(requirepass.is_some()),
            requirepass: RwLock::new(requirepass),
            clients: ClientRegistry::new(),
            stats: ServerStats::new(table::table().len()),
            config,
        }
    }

    /// The live `maxclients`.
    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// Changes `maxclients`; clients already connected stay.
    pub fn set_maxclients(&self, maxclients: usize) {
        self.maxclients.store(maxclients, Ordering::Relaxed);
    }

    /// The live idle timeout in seconds (0 = none).
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.load(Ordering::Relaxed)
    }

    /// Changes the idle timeout; connections pick it up at their next wait.
    pub fn set_timeout_secs(&self, secs: u64) {
        self.timeout_secs.store(secs, Ordering::Relaxed);
    }

    /// Whether the `default` user has a password.
    pub fn auth_required(&self) -> bool {
        self.auth_required.load(Ordering::Relaxed)
    }

    /// The live `requirepass`.
    pub fn requirepass(&self) -> Option<String> {
        self.requirepass.read().clone()
    }

    /// Sets or (with `None` or an empty password) removes the password. As in Redis, clients
    /// connected before keep their authentication state.
    pub fn set_requirepass(&self, password: Option<String>) {
        let password = password.filter(|p| !p.is_empty());
        let mut current = self.requirepass.write();
        self.auth_required
            .store(password.is_some(), Ordering::Relaxed);
        *current = password;
    }

    /// Whether `password` is the `default` user's: any password when none is set (Redis's
    /// `nopass`). Compared in constant time, so the reply's timing does not reveal a prefix.
    pub fn check_password(&self, password: &[u8]) -> bool {
        match &*self.requirepass.read() {
            None => true,
            Some(expected) => constant_time_eq(expected.as_bytes(), password),
        }
    }
}

/// Byte equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves clients on `listener` until `shutdown` completes, then stops accepting, lets every
/// connection finish the requests it is running and send their replies, and returns.
///
/// Each connection is a task of its own (`conn.rs`). A client over `maxclients` is told
/// `-ERR max number of clients reached` and closed. Transient `accept` failures (out of file
/// descriptors or buffers, an aborted handshake) are logged and retried with a growing pause.
///
/// # Errors
/// [`ServerError::Accept`] if the listening socket fails for good; connections are still
/// drained first.
pub async fn run<C: Cluster>(
    config: ServerConfig,
    listener: TcpListener,
    cluster: Arc<C>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    run_with_state(
        Arc::new(ServerState::new(config)),
        listener,
        cluster,
        shutdown,
    )
    .await
}

/// [`run`] with a state the caller keeps a handle on (to read counters or the client list).
///
/// # Errors
/// As [`run`].
pub async fn run_with_state<C: Cluster>(
    state: Arc<ServerState>,
    listener: TcpListener,
    cluster: Arc<C>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    // Connections hold a clone of `done`; when the last clone is dropped, every connection has
    // finished (mini-redis's `shutdown_complete` channel).
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut sampler = tokio::time::interval(OPS_SAMPLE_INTERVAL);
    sampler.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut backoff = Duration::from_millis(10);
    tokio::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "accepting Redis clients");
    }

    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            _ = sampler.tick() => state.stats.sample_ops(),
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    backoff = Duration::from_millis(10);
                    admit(socket, &state, &cluster, &done_tx);
                }
                Err(error) if is_transient(&error) => {
                    warn!(%error, pause_ms = backoff.as_millis(), "accept failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
                Err(source) => {
                    error!(error = %source, "accept failed; stopping");
                    break Err(ServerError::Accept { source });
                }
            },
        }
    };

    // No connection is admitted after this, so every one is in the registry: each finishes
    // the requests it has read, sends the replies, and closes.
    drop(listener);
    for client in state.clients.snapshot() {
        client.request_close(CloseRequest::Shutdown);
    }
    drop(done_tx);
    let open = state.clients.len();
    if open > 0 {
        info!(connections = open, "waiting for connections to finish");
    }
    // Resolves once every connection task has dropped its sender. A client that stops
    // reading can hold its connection in a write for ever, so the wait is bounded; such
    // connections are abandoned (their tasks end with the runtime).
    if tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, done_rx.recv())
        .await
        .is_err()
    {
        warn!(
            connections = state.clients.len(),
            "connections still busy at shutdown; abandoning them"
        );
    }
    info!("client listener stopped");
    result
}

/// Registers a new connection and spawns its task, or refuses it over `maxclients`.
fn admit<C: Cluster>(
    socket: TcpStream,
    state: &Arc<ServerState>,
    cluster: &Arc<C>,
    done: &mpsc::Sender<()>,
) {
    let (Ok(addr), Ok(local_addr)) = (socket.peer_addr(), socket.local_addr()) else {
        // The peer is already gone.
        return;
    };
    let fd = raw_fd(&socket);
    let handle = match state
        .clients
        .register(addr, local_addr, fd, state.maxclients())
    {
        Ok(handle) => handle,
        Err(_) => {
            stats::add(&state.stats.rejected_connections, 1);
            debug!(%addr, "refusing client: maxclients reached");
            // Best effort, as Redis: the socket is fresh, so the line fits in its send buffer.
            let line = format!("-{}\r\n", errors::MAX_CLIENTS);
            let _ = socket.try_write(line.as_bytes());
            return;
        }
    };
    stats::add(&state.stats.total_connections, 1);
    if let Err(error) = socket.set_nodelay(true) {
        debug!(%addr, %error, "could not set TCP_NODELAY");
    }
    let connection = Connection::new(
        socket,
        handle,
        Arc::clone(state),
        Arc::clone(cluster),
        done.clone(),
    );
    tokio::spawn(connection.run());
}

/// Whether an `accept` error passes: resources run out and come back, handshakes abort.
fn is_transient(error: &io::Error) -> bool {
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOBUFS: i32 = 105;
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::OutOfMemory
    ) || matches!(
        error.raw_os_error(),
        Some(ENOMEM | ENFILE | EMFILE | ENOBUFS)
    )
}

#[cfg(unix)]
fn raw_fd(socket: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    i64::from(socket.as_raw_fd())
}

#[cfg(not(unix))]
fn raw_fd(_socket: &TcpStream) -> i64 {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_compare_exactly() {
        let state = ServerState::new(ServerConfig {
            requirepass: Some("secret".into()),
            ..ServerConfig::default()
        });
        assert!(state.auth_required());
        assert!(state.check_password(b"secret"));
        assert!(!state.check_password(b"secreT"));
        assert!(!state.check_password(b"secre"));
        state.set_requirepass(Some(String::new()));
        assert!(!state.auth_required());
        assert!(state.check_password(b"anything"));
    }
}
