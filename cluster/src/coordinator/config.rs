//! What a node's coordinator is opened with.
//!
//! Owns [`ClusterConfig`]. Built by the binary from flags, environment and file; this crate
//! only reads it. Must never read the environment or files itself.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};

/// Configuration of a [`LocalCluster`](crate::coordinator::LocalCluster).
#[derive(Clone)]
pub struct ClusterConfig {
    /// Directory of the node's engine (created if missing).
    pub data_dir: PathBuf,
    /// The node's id; its versions carry [`node_number`](crate::node_id::node_number) of it.
    pub node_id: String,
    /// Engine options (fsync mode, memtable size, limits, ...). The engine's clock is replaced
    /// by [`ClusterConfig::clock`] so expiry agrees everywhere, and its key limit is raised by
    /// the slot prefix so users get the configured limit on their own keys.
    pub engine: ringkv_lsm::Options,
    /// Wall-clock source. Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// Seed of the coordinator's random choices (`RANDOMKEY`, scan handles); `None` seeds from
    /// the clock and the node id.
    pub seed: Option<u64>,
    /// Where Redis clients reach this node (announced to cluster-aware clients).
    pub client_addr: SocketAddr,
}

impl ClusterConfig {
    /// A node called `node_id` storing data in `data_dir`, with default engine options and
    /// the system clock.
    pub fn new(data_dir: impl Into<PathBuf>, node_id: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            node_id: node_id.into(),
            engine: ringkv_lsm::Options::default(),
            clock: Arc::new(SystemClock),
            seed: None,
            client_addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
        }
    }

    /// Sets the address announced to clients.
    pub fn with_client_addr(mut self, client_addr: SocketAddr) -> Self {
        self.client_addr = client_addr;
        self
    }

    /// Sets the engine options.
    pub fn with_engine(mut self, engine: ringkv_lsm::Options) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the random seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("data_dir", &self.data_dir)
            .field("node_id", &self.node_id)
            .field("engine", &self.engine)
            .field("seed", &self.seed)
            .field("client_addr", &self.client_addr)
            .finish_non_exhaustive()
    }
}
