//! The `ringkv` binary: parse the configuration, set up logging and the runtime, serve until
//! SIGINT or SIGTERM, and exit 0 after a clean shutdown (non-zero, with a one-line reason, on a
//! bad configuration, a port in use or a data directory another node holds).
//!
//! `ringkv status [--host H] [--port P] [--password P]` is the one admin subcommand: it asks a
//! running node for the ring and prints it like `nodetool status` (`status.rs`).

mod allocator;
mod status;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ringkv::config::{Config, Flags};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    allocator::configure();
    if std::env::args_os().nth(1).is_some_and(|a| a == "status") {
        return status::main(std::env::args_os().skip(1));
    }
    let config = match Config::load(Flags::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ringkv: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&config.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("ringkv: invalid log level '{}': {e}", config.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if config.disable_thp {
        if let Err(e) = allocator::disable_transparent_huge_pages() {
            tracing::warn!("transparent huge pages stay as the system has them: {e}");
        }
    }
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ringkv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .thread_name("ringkv-worker")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        ringkv::run(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}
