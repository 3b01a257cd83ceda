//! `ringkv-lsm`: ringkv's on-disk storage engine, a log-structured merge tree.
//!
//! # Layout
//!
//! A write goes to the write-ahead log ([`wal`]) and then to the active [`memtable`]. A full
//! memtable is frozen and flushed to an L0 SSTable ([`sstable`]); background compaction
//! ([`compaction`]) merges tables down through levels L1..Ln, keeping only the winning version
//! of each key, turning expired values into tombstones and dropping what is dead. The
//! [`manifest`] is the atomic record of which tables form each level. Reads merge the
//! memtables and the tables ([`iter`]), newest data first, and keep the highest version. A
//! point read remembers the tables' answer in the row cache ([`row_cache`]), so reading the key
//! again skips the tables until a flush or compaction changes that answer.
//!
//! Versions, not arrival order, decide which write of a key wins (see [`Version`]): replicas
//! receive old writes late (hints, repair), and the engine resolves them by version.
//!
//! # Architecture invariant
//!
//! This crate knows nothing of networks, slots or Redis: keys and values are opaque bytes.

#![warn(missing_docs)]

mod cache;
mod coding;
mod compaction;
mod db;
mod dir;
mod error;
mod iter;
mod manifest;
mod memtable;
mod options;
mod record;
mod row_cache;
mod sstable;
mod stats;
mod wal;

pub use db::{Db, Snapshot, WriteBatch};
pub use error::{Error, Result};
pub use iter::user::{DbIter, ReadMode};
pub use options::{system_now_ms, Compression, FsyncMode, NowMs, Options};
pub use record::{Record, Version};
pub use sstable::meta::TableMeta;
pub use stats::{LevelStats, Stats};
