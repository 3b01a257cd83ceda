//! `ringkv-cluster`: slots, the vnode ring, membership, the internal transport, versions,
//! consistency levels and the coordinator.
//!
//! # Layout
//!
//! A request from the front end ([`api::Request`]) reaches the [`coordinator`], which maps
//! each key to its hash slot ([`slot`]) and the slot to its replicas on the [`ring`], checks
//! the consistency level against the replicas [`membership`] believes alive, versions writes
//! with the node's hybrid logical clock ([`hlc`] over a [`clock::Clock`], tie-broken by the
//! [`node_id::node_number`]) and reads or writes the replicas' [`storage`] (its own directly,
//! the others' over the [`transport`]), where the engine key is `slot ‖ user key`. [`node`]
//! assembles a running node. The parts:
//!
//! - [`api`]: the narrow, plain-data API the front end uses ([`Request`], [`Response`],
//!   [`Consistency`], the [`Cluster`] trait).
//! - [`error`]: the error type, [`ClusterError`].
//! - [`slot`]: Redis Cluster's CRC16 hash slots and hash tags.
//! - [`clock`]: the [`Clock`] seam ([`SystemClock`], [`ManualClock`] for tests).
//! - [`hlc`]: [`Hlc`], strictly increasing versions that survive a wall clock stepping back.
//! - [`node_id`]: a node's 32-bit number, the versions' tie-break.
//! - [`storage`]: the [`Storage`] trait the coordinator needs, its key encoding, and its
//!   implementation for `ringkv_lsm::Db`.
//! - [`view`]: what a node knows of the members ([`view::Member`], [`view::View`]);
//!   [`membership`]: gossip (chitchat) and failure detection that keep the view current.
//! - [`ring`]: tokens, and each slot's rack- and datacenter-aware replicas.
//! - [`rpc`]: the messages nodes send each other; [`wire`]: their framed byte encoding;
//!   [`transport`]: the seam that carries them (TCP, or the simulated network in tests).
//! - [`coordinator`]: [`coordinator::Coordinator`], every node's coordinator, and
//!   [`LocalCluster`], the same over a ring of one, configured by [`ClusterConfig`].
//! - [`node`]: [`node::ClusterNode`], storage + transport + gossip + coordinator, running.
//!
//! # Architecture invariant
//!
//! This crate knows nothing of RESP or Redis commands (it must not depend on `redis-protocol`
//! or `ringkv-resp`); it stores keys in `ringkv-lsm` under `slot ‖ key` and resolves replicas'
//! answers by version. `SystemTime::now()` appears only in [`clock`].

#![warn(missing_docs)]

pub mod api;
pub mod clock;
pub mod coordinator;
pub mod error;
pub mod hlc;
pub mod membership;
pub mod node;
pub mod node_id;
pub mod ring;
pub mod rpc;
pub mod slot;
pub mod storage;
pub mod transport;
pub mod view;
pub mod wire;

pub use api::{
    Cluster, ClusterInfo, Condition, Consistency, Level, Request, Response, ScanCursor, SlotRange,
    StoredValue, Topology, TopologyNode, Version, Write,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use coordinator::{ClusterConfig, LocalCluster, LocalParams};
pub use error::ClusterError;
pub use hlc::Hlc;
pub use node_id::node_number;
pub use slot::{hash_tag, key_slot, SLOTS};
pub use storage::{SlotKey, SlotRecord, Storage};
