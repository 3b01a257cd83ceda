//! `ringkv`: the node binary's wiring, as a library so tests start a node in-process exactly as
//! `main` does.
//!
//! # Layout
//!
//! - [`config`]: flags, `RINGKV_*` environment and TOML file, merged into a [`Config`].
//! - [`identity`]: the node id kept in the data directory.
//! - [`run`]: opens the cluster (for now a cluster of one: `ringkv_cluster::LocalCluster` over
//!   the `ringkv-lsm` engine), serves Redis clients with `ringkv_resp::server::run` until the
//!   shutdown future completes, then stops taking requests and flushes the engine.
//!
//! `main.rs` adds what only a process has: argument parsing, logging, the runtime, signals and
//! the exit code.

pub mod config;
pub mod identity;

use std::future::Future;
use std::sync::Arc;

use std::net::SocketAddr;
use std::time::Duration;

use ringkv_cluster::coordinator::{ClusterConfig, DEFAULT_REQUEST_TIMEOUT};
use ringkv_cluster::membership::FailureConfig;
use ringkv_cluster::node::{ClusterNode, NodeConfig, StartError};
use ringkv_cluster::ring::Replication;
use ringkv_cluster::ClusterError;
use ringkv_lsm::FsyncMode;
use ringkv_resp::server::{run as serve, ServerConfig, ServerError};
use tokio::net::TcpListener;
use tracing::info;

pub use config::Config;

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node id could not be read or stored.
    #[error("cannot keep the node id in {path}: {source}")]
    Identity {
        /// The id file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node could not start: its data directory (locked by another node, damaged,
    /// unreadable), its bus port, or gossip.
    #[error("cannot start the node: {0}")]
    Start(#[source] StartError),
    /// The client listener failed.
    #[error(transparent)]
    Serve(#[from] ServerError),
    /// Flushing at shutdown failed.
    #[error("shutdown did not complete cleanly: {0}")]
    Shutdown(#[source] ClusterError),
}

/// Runs one node on `listener` until `shutdown` completes: stops accepting, lets in-flight
/// requests finish, flushes the memtable and returns.
///
/// # Errors
/// [`NodeError`] naming what failed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::Identity {
        path: config.data_dir.clone(),
        source,
    })?;
    let node_id = identity::load_or_create(&config.data_dir, config.node_id.as_deref())?;
    let fsync = match config.fsync {
        config::FsyncPolicy::Always => FsyncMode::Always,
        config::FsyncPolicy::Periodic => FsyncMode::Periodic {
            interval_ms: config.fsync_interval_ms,
        },
    };
    let mut engine = ringkv_lsm::Options::default().with_fsync(fsync);
    if let Some(bytes) = config.row_cache_bytes {
        engine = engine.with_row_cache_bytes(bytes);
    }
    let local_addr = listener.local_addr().ok();
    let client_port = local_addr.map_or(config.port, |a| a.port());
    let announced = SocketAddr::new(config.announce_ip, client_port);
    let node_config = NodeConfig {
        cluster: ClusterConfig::new(&config.data_dir, &node_id)
            .with_engine(engine)
            .with_client_addr(announced),
        bus_bind: SocketAddr::new(config.bind, config.bus_port),
        announce_ip: config.announce_ip,
        seeds: config.seeds.clone(),
        replication: Replication::simple(config.replication_factor),
        vnodes: config.vnodes,
        dc: config.dc.clone(),
        rack: config.rack.clone(),
        cluster_name: config.cluster_name.clone(),
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        gossip_interval: Duration::from_millis(config.gossip_interval_ms),
        failure: FailureConfig {
            phi_threshold: config.phi_threshold,
            // The detector's first guess at the heartbeat interval: the gossip interval.
            initial_interval: Duration::from_millis(config.gossip_interval_ms),
            ..FailureConfig::default()
        },
        join_wait: Duration::from_millis(config.join_wait_ms),
    };
    let node = ClusterNode::start(node_config)
        .await
        .map_err(NodeError::Start)?;
    let cluster = Arc::new(node.coordinator().clone());
    info!(
        node_id = %node_id,
        addr = ?local_addr,
        data_dir = %config.data_dir.display(),
        fsync = ?config.fsync,
        "ringkv node ready"
    );
    let server_config = ServerConfig {
        maxclients: config.maxclients,
        timeout_secs: config.timeout_secs,
        requirepass: config.requirepass.clone(),
        default_consistency: config.consistency,
        bind: config.bind.to_string(),
        port: local_addr.map_or(config.port, |a| a.port()),
        data_dir: config.data_dir.clone(),
        config_file: config.config_file.clone(),
        fsync_always: config.fsync == config::FsyncPolicy::Always,
        ..ServerConfig::default()
    };
    let served = serve(server_config, listener, Arc::clone(&cluster), shutdown).await;
    info!("stopped accepting clients; leaving the cluster and flushing the engine");
    drop(cluster);
    let flushed = node.shutdown().await.map_err(NodeError::Shutdown);
    served?;
    flushed?;
    info!("ringkv node stopped");
    Ok(())
}
