//! The write-ahead log: segments of CRC-framed batches, group-committed fsync, and recovery.
//!
//! Owns the WAL's files under `<dir>/wal/` (`{id:06}.log`, see [`crate::dir`]), the frame
//! format it shares with the manifest ([`frame`]), the batch encoding ([`WalBatch`]), the
//! appender ([`Wal`]) and recovery ([`replay`]). Must never acknowledge a write it has not
//! handed to the operating system, never retry a failed fsync (the kernel may have dropped
//! the dirty pages, so a retry can "succeed" over lost data: the WAL poisons itself instead),
//! and never decide which segments are obsolete: the engine says so through the manifest's
//! log number.
//!
//! A segment is a sequence of frames, one [`WalBatch`] per frame, appended with `write(2)`.
//! Segments only grow; the engine rotates to a new segment when it switches memtables, and
//! deletes the old ones once their memtables are flushed.

pub(crate) mod batch;
pub(crate) mod frame;
pub(crate) mod replay;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

// The engine never names `writer::Lsn` or `replay::ReplayReport` (it only passes them on), so
// they are reached through their modules rather than re-exported.
pub(crate) use batch::WalBatch;
pub(crate) use replay::replay;
pub(crate) use writer::Wal;

/// The largest encoded batch one frame can hold: the frame format's 32-bit length. The engine
/// keeps batches far below it; the limit exists so that nothing is appended that replay would
/// refuse.
pub(crate) const MAX_BATCH_BYTES: usize = u32::MAX as usize;
