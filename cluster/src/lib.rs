//! `ringkv-cluster`: slots, versions, consistency levels and the coordinator.
//!
//! # Layout
//!
//! - [`api`]: the narrow, plain-data API the front end uses ([`Request`], [`Response`],
//!   [`Consistency`], the [`Cluster`] trait).
//! - [`error`]: [`ClusterError`].
//!
//! # Architecture invariant
//!
//! This crate knows nothing of RESP or Redis commands; it stores keys in `ringkv-lsm` under
//! `slot ‖ key` and resolves replicas' answers by version.

#![warn(missing_docs)]

pub mod api;
pub mod error;

pub use api::{
    Cluster, ClusterInfo, Condition, Consistency, Level, Request, Response, ScanCursor,
    StoredValue, Version, Write,
};
pub use error::ClusterError;
