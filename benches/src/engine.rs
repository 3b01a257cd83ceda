//! The engines under test behind one small interface, configured as fairly as each allows.
//!
//! Owns [`Engine`] (what a workload may do: put, put with expiry, get, seek-and-scan, flush,
//! full compaction), [`EngineKind`], [`EngineConfig`] and [`open`]. Each adapter lives in
//! its own file ([`ringkv`], [`fjall`]) and documents how it maps the shared settings onto
//! its engine. Must never time or measure anything itself: workloads do that, the same way
//! for every engine.

pub mod fjall;
pub mod ringkv;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::BoxError;

/// Which engine a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// ringkv's own LSM engine (`ringkv-lsm`).
    Ringkv,
    /// fjall 3, the reference LSM engine we compare against.
    Fjall,
}

impl EngineKind {
    /// The engine's name as the command line and the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Ringkv => "ringkv",
            EngineKind::Fjall => "fjall",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ringkv" => Ok(EngineKind::Ringkv),
            "fjall" => Ok(EngineKind::Fjall),
            other => Err(format!(
                "unknown engine {other:?}: expected ringkv or fjall"
            )),
        }
    }
}

/// How durable a write is when `put` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// In the OS when `put` returns, fsynced by a background timer every `interval_ms`
    /// (ringkv `FsyncMode::Periodic`; fjall's default buffered journal plus, unless
    /// [`EngineConfig::fjall_timer_sync`] is off, a timer calling `persist(SyncData)`).
    Periodic {
        /// Milliseconds between background fsyncs (at least 1).
        interval_ms: u64,
    },
    /// Fsynced before `put` returns (ringkv `FsyncMode::Always`; fjall `persist(SyncData)`
    /// after each insert; both are `fdatasync(2)`).
    EveryWrite,
}

/// Settings shared by both engines so they run with comparable resources.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Block cache budget in bytes (ringkv `block_cache_bytes`, fjall `cache_size`).
    pub cache_bytes: u64,
    /// Memtable size in bytes (ringkv `memtable_bytes`, fjall `max_memtable_size`).
    pub memtable_bytes: u64,
    /// Write durability.
    pub durability: Durability,
    /// ringkv only: tombstone/expired-value grace period; `None` keeps the engine default.
    /// The TTL workload sets 0 because a single node has no replicas whose repair an
    /// expired value would need to outlive.
    pub gc_grace_ms: Option<u64>,
    /// fjall only, with [`Durability::Periodic`]: run a timer thread that calls
    /// `persist(SyncData)` every interval, as ringkv's periodic mode does. fjall 3 has no
    /// periodic fsync of its own; off gives fjall's bare default (journal flushed to the OS
    /// on every write, fsynced only on rotation and close), slightly less durable and
    /// slightly less work than ringkv's periodic mode.
    pub fjall_timer_sync: bool,
}

/// What a full compaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compaction {
    /// The engine merged everything into its bottom level.
    Full,
    /// The engine has no full compaction; the figures are of its state as it is.
    Unsupported,
}

/// One engine instance, opened on a directory. `Send + Sync` so that multi-writer
/// workloads share it across threads, as a server would.
pub trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// Writes `value` under `key` with the configured durability.
    ///
    /// # Errors
    /// The engine's write failed.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError>;

    /// Writes `value` under `key`, to read as absent from `expire_at_ms` (unix ms) on.
    /// An engine without per-record expiry writes a plain value (see [`Engine::supports_ttl`]).
    ///
    /// # Errors
    /// The engine's write failed.
    fn put_expiring(&self, key: &[u8], value: &[u8], expire_at_ms: u64) -> Result<(), BoxError>;

    /// Whether [`Engine::put_expiring`] really expires records.
    fn supports_ttl(&self) -> bool;

    /// The length of the live value under `key`, if any.
    ///
    /// # Errors
    /// The engine's read failed.
    fn get(&self, key: &[u8]) -> Result<Option<usize>, BoxError>;

    /// Positions at the first key `>= start` and reads up to `limit` entries in order;
    /// returns how many it read.
    ///
    /// # Errors
    /// The engine's read failed.
    fn scan(&self, start: &[u8], limit: usize) -> Result<usize, BoxError>;

    /// Writes the memtable out to a table and waits for it.
    ///
    /// # Errors
    /// The flush failed.
    fn flush(&self) -> Result<(), BoxError>;

    /// Runs a full (major) compaction and waits for it.
    ///
    /// # Errors
    /// The compaction failed.
    fn compact(&self) -> Result<Compaction, BoxError>;

    /// Figures the engine reports about itself, for the notes under a result (never used
    /// for the compared columns).
    fn engine_notes(&self) -> Vec<String>;

    /// Syncs and closes the engine, stopping its background threads.
    ///
    /// # Errors
    /// The final sync or shutdown failed.
    fn close(self: Box<Self>) -> Result<(), BoxError>;
}

/// Opens (creating if needed) an engine of `kind` in `dir`.
///
/// # Errors
/// The engine refused the directory or the settings.
pub fn open(
    kind: EngineKind,
    dir: &Path,
    config: &EngineConfig,
) -> Result<Box<dyn Engine>, BoxError> {
    Ok(match kind {
        EngineKind::Ringkv => Box::new(ringkv::RingkvEngine::open(dir, config)?),
        EngineKind::Fjall => Box::new(fjall::FjallEngine::open(dir, config)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(durability: Durability) -> EngineConfig {
        EngineConfig {
            cache_bytes: 8 << 20,
            memtable_bytes: 1 << 20,
            durability,
            gc_grace_ms: Some(0),
            fjall_timer_sync: true,
        }
    }

    /// The contract every adapter must meet, run against each engine.
    fn conformance(kind: EngineKind, durability: Durability) -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let engine = open(kind, dir.path(), &config(durability))?;
        assert_eq!(engine.kind(), kind);
        for i in 0..200u32 {
            let key = format!("key{i:05}");
            engine.put(key.as_bytes(), &[7u8; 100])?;
        }
        engine.put(b"key00003", &[1u8; 10])?;
        assert_eq!(engine.get(b"key00003")?, Some(10));
        assert_eq!(engine.get(b"key00004")?, Some(100));
        assert_eq!(engine.get(b"nope")?, None);
        engine.flush()?;
        assert_eq!(engine.scan(b"key00190", 100)?, 10);
        assert_eq!(engine.scan(b"key00010", 5)?, 5);
        assert_eq!(engine.scan(b"zzz", 5)?, 0);
        engine.compact()?;
        assert_eq!(engine.get(b"key00199")?, Some(100));
        engine.close()?;

        let engine = open(kind, dir.path(), &config(durability))?;
        assert_eq!(engine.get(b"key00003")?, Some(10), "after reopen");
        assert_eq!(engine.scan(b"", 1000)?, 200);
        engine.close()?;
        Ok(())
    }

    #[test]
    fn fjall_adapter_conforms() -> Result<(), BoxError> {
        conformance(EngineKind::Fjall, Durability::Periodic { interval_ms: 50 })?;
        conformance(EngineKind::Fjall, Durability::EveryWrite)
    }

    #[test]
    fn ringkv_adapter_conforms() -> Result<(), BoxError> {
        conformance(EngineKind::Ringkv, Durability::Periodic { interval_ms: 50 })?;
        conformance(EngineKind::Ringkv, Durability::EveryWrite)
    }

    #[test]
    fn ringkv_expires_records_and_fjall_says_it_cannot() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let engine = open(
            EngineKind::Ringkv,
            dir.path(),
            &config(Durability::EveryWrite),
        )?;
        assert!(engine.supports_ttl());
        engine.put_expiring(b"gone", b"v", 1)?;
        engine.put_expiring(b"kept", b"v", u64::MAX)?;
        assert_eq!(engine.get(b"gone")?, None);
        assert_eq!(engine.get(b"kept")?, Some(1));
        engine.close()?;

        let dir = tempfile::tempdir()?;
        let engine = open(
            EngineKind::Fjall,
            dir.path(),
            &config(Durability::EveryWrite),
        )?;
        assert!(!engine.supports_ttl());
        engine.put_expiring(b"gone", b"v", 1)?;
        assert_eq!(engine.get(b"gone")?, Some(1));
        engine.close()?;
        Ok(())
    }

    #[test]
    fn engine_names_round_trip() -> Result<(), BoxError> {
        for kind in [EngineKind::Ringkv, EngineKind::Fjall] {
            assert_eq!(kind.name().parse::<EngineKind>()?, kind);
        }
        assert!("rocksdb".parse::<EngineKind>().is_err());
        Ok(())
    }
}
