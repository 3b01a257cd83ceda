//! The storage seam: what the coordinator needs from a node's local engine.
//!
//! Owns the [`Storage`] trait, its record types ([`SlotKey`], [`SlotRecord`]), the engine key
//! encoding ([`key`]: `slot (u16, big-endian) ‖ user key`, DESIGN.md "Storage keys and
//! versions") and the implementation for `ringkv_lsm::Db` ([`lsm`]). Must never decide which
//! version wins (the engine keeps the highest) or what a key means beyond its slot; consistency
//! levels, conditions and cursors belong to the coordinator.

pub mod key;
pub mod lsm;
pub mod system;
#[cfg(test)]
mod tests;

use std::ops::Bound;

use bytes::Bytes;
use ringkv_lsm::{ReadMode, Record, Stats};

use crate::error::ClusterError;

/// A position in the slot-ordered keyspace: a slot and a user key within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotKey<'a> {
    /// The slot (user slots are below [`SLOTS`](crate::slot::SLOTS); the prefixes above are
    /// reserved for system keyspaces).
    pub slot: u16,
    /// The user key.
    pub key: &'a [u8],
}

impl<'a> SlotKey<'a> {
    /// The position `key` in `slot`.
    pub fn new(slot: u16, key: &'a [u8]) -> Self {
        Self { slot, key }
    }

    /// The first position of `slot`, before every key in it.
    pub fn slot_start(slot: u16) -> SlotKey<'static> {
        SlotKey { slot, key: b"" }
    }
}

/// One record of one key, with the key's slot: what ranges yield and what writes take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRecord {
    /// The key's slot.
    pub slot: u16,
    /// The user key (without the slot prefix).
    pub key: Bytes,
    /// The record: a value or a tombstone, with its version and expiry.
    pub record: Record,
}

/// A node's local, versioned, slot-ordered store.
///
/// Reads return the *winning* record of a key (its highest version); "live" means not a
/// tombstone and not expired at the storage's own clock, which the coordinator wires to the
/// cluster [`Clock`](crate::clock::Clock) so both agree on expiry.
pub trait Storage: Send + Sync + 'static {
    /// Iterator over a range, in `(slot, key)` order.
    type Iter: Iterator<Item = Result<SlotRecord, ClusterError>> + Send;

    /// The winning record of `key` in `slot`, tombstones and expired values included; `None`
    /// if the key was never written (or compaction has dropped everything about it).
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the engine fails to read.
    fn get(&self, slot: u16, key: &[u8]) -> Result<Option<Record>, ClusterError>;

    /// The winning record of each `(slot, key)`, in order, as [`Storage::get`] returns it.
    /// Implementations that can should read every key from one consistent state and share
    /// the per-read setup; this default asks [`Storage::get`] key by key.
    ///
    /// # Errors
    /// As [`Storage::get`]; the first failure fails the whole read.
    fn get_many(&self, keys: &[(u16, Bytes)]) -> Result<Vec<Option<Record>>, ClusterError> {
        keys.iter()
            .map(|(slot, key)| self.get(*slot, key))
            .collect()
    }

    /// Writes `records` atomically: after a crash all of them are there or none. When it
    /// returns they are durable as the engine's fsync mode promises.
    ///
    /// # Errors
    /// [`ClusterError::Storage`]: a key or value over the engine's limits (nothing is
    /// written), I/O failures, a poisoned engine.
    fn write(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError>;

    /// Writes `records` atomically, as [`Storage::write`], but may leave them short of the
    /// durability the fsync mode promises (in the engine's WAL buffer) until the next
    /// [`Storage::flush_writes`]; readers may see them before. Whoever acknowledges such a
    /// write must flush first. The default writes through.
    ///
    /// # Errors
    /// As [`Storage::write`].
    fn write_buffered(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
        self.write(records)
    }

    /// Makes every [`Storage::write_buffered`] write so far as durable as [`Storage::write`]
    /// makes its own (many writes then share one system call). The default has nothing to do.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when handing the writes to the operating system fails.
    fn flush_writes(&self) -> Result<(), ClusterError> {
        Ok(())
    }

    /// Records with positions between `start` and `end`, in `(slot, key)` order, one per key:
    /// live ones only, or every winning record with [`ReadMode::AllRecords`].
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when opening the range fails; later failures come from the
    /// iterator.
    fn range(
        &self,
        start: Bound<SlotKey<'_>>,
        end: Bound<SlotKey<'_>>,
        mode: ReadMode,
    ) -> Result<Self::Iter, ClusterError>;

    /// The engine's figures, for `INFO`.
    fn stats(&self) -> Stats;

    /// The highest HLC timestamp of any version the storage holds (0 when it holds none),
    /// read from metadata, not by scanning. The node's clock starts above it, so versions it
    /// issues after a restart beat the ones it stored before, whatever its wall clock did.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the storage cannot tell.
    fn max_hlc(&self) -> Result<u64, ClusterError>;

    /// Makes everything written durable and stops the engine; later calls fail.
    ///
    /// # Errors
    /// [`ClusterError::Storage`] when the final flush or sync fails.
    fn shutdown(&self) -> Result<(), ClusterError>;

    /// Writes one record. See [`Storage::write`].
    ///
    /// # Errors
    /// As [`Storage::write`].
    fn put(&self, slot: u16, key: Bytes, record: Record) -> Result<(), ClusterError> {
        self.write(vec![SlotRecord { slot, key, record }])
    }

    /// Records of one slot with user keys between `start` and `end`. See [`Storage::range`].
    ///
    /// # Errors
    /// As [`Storage::range`].
    fn slot_range(
        &self,
        slot: u16,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        mode: ReadMode,
    ) -> Result<Self::Iter, ClusterError> {
        let start = match start {
            Bound::Included(k) => Bound::Included(SlotKey::new(slot, k)),
            Bound::Excluded(k) => Bound::Excluded(SlotKey::new(slot, k)),
            Bound::Unbounded => Bound::Included(SlotKey::slot_start(slot)),
        };
        let end = match end {
            Bound::Included(k) => Bound::Included(SlotKey::new(slot, k)),
            Bound::Excluded(k) => Bound::Excluded(SlotKey::new(slot, k)),
            Bound::Unbounded => key::slot_end(slot),
        };
        self.range(start, end, mode)
    }

    /// Number of live keys in `slot` (exact: walks the slot).
    ///
    /// # Errors
    /// As [`Storage::range`].
    fn count_in_slot(&self, slot: u16) -> Result<u64, ClusterError> {
        let mut n = 0;
        for item in self.slot_range(slot, Bound::Unbounded, Bound::Unbounded, ReadMode::Live)? {
            item?;
            n += 1;
        }
        Ok(n)
    }
}
