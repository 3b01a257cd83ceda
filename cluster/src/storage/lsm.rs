//! [`Storage`] over the `ringkv-lsm` engine.
//!
//! Owns the `impl Storage for Db` and [`LsmIter`]. Every key goes through [`key::encode`], so
//! the engine only ever holds slot-prefixed keys; must never hand the engine a key without one.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};
use ringkv_lsm::{Db, DbIter, ReadMode, Record, Stats, WriteBatch};

use crate::error::ClusterError;
use crate::storage::{key, SlotKey, SlotRecord, Storage};

/// A range over the engine, yielding records with their slot and user key.
pub struct LsmIter {
    inner: DbIter,
}

impl Iterator for LsmIter {
    type Item = Result<SlotRecord, ClusterError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (engine_key, record) = match self.inner.next()? {
                Ok(item) => item,
                Err(e) => return Some(Err(e.into())),
            };
            // Every key this crate writes has a slot prefix; a shorter one cannot be ours, so
            // it is not part of any slot and is passed over.
            if let Some((slot, key)) = key::decode(&engine_key) {
                return Some(Ok(SlotRecord { slot, key, record }));
            }
        }
    }
}

fn engine_bound<'b>(bound: Bound<SlotKey<'_>>, buf: &'b mut Vec<u8>) -> Bound<&'b [u8]> {
    match bound {
        Bound::Included(pos) => {
            key::encode_into(pos, buf);
            Bound::Included(buf.as_slice())
        }
        Bound::Excluded(pos) => {
            key::encode_into(pos, buf);
            Bound::Excluded(buf.as_slice())
        }
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// `records` as one engine batch under their slot-prefixed keys.
fn engine_batch(records: Vec<SlotRecord>) -> WriteBatch {
    let mut batch = WriteBatch::with_capacity(records.len());
    if let [_] = records.as_slice() {
        for r in records {
            batch.put(key::encode(r.slot, &r.key), r.record);
        }
        return batch;
    }
    // Every engine key is a slice of one buffer: one allocation (and one shared count) for
    // the batch instead of one per key. The keys live and die together in the memtable.
    let total = records.iter().map(|r| key::PREFIX_LEN + r.key.len()).sum();
    let mut arena = BytesMut::with_capacity(total);
    for r in &records {
        arena.put_u16(r.slot);
        arena.put_slice(&r.key);
    }
    let mut arena = arena.freeze();
    for r in records {
        let engine_key = arena.split_to(key::PREFIX_LEN + r.key.len());
        batch.put(engine_key, r.record);
    }
    batch
}

impl Storage for Db {
    type Iter = LsmIter;

    fn get(&self, slot: u16, key: &[u8]) -> Result<Option<Record>, ClusterError> {
        // The engine key of a lookup lives only for the call: on the stack when it fits.
        const INLINE: usize = 128;
        let len = key::PREFIX_LEN + key.len();
        if len <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..key::PREFIX_LEN].copy_from_slice(&slot.to_be_bytes());
            buf[key::PREFIX_LEN..len].copy_from_slice(key);
            return Ok(self.get_record(&buf[..len])?);
        }
        Ok(self.get_record(&key::encode(slot, key))?)
    }

    fn get_many(&self, keys: &[(u16, Bytes)]) -> Result<Vec<Option<Record>>, ClusterError> {
        // A lone key (every `GET`) is cheapest as it was: one encoded key, no key table.
        if let [(slot, k)] = keys {
            return Ok(vec![Storage::get(self, *slot, k)?]);
        }
        // Every engine key goes into one buffer (one allocation instead of one per key), and
        // the engine reads them all from one view.
        let total = keys.iter().map(|(_, k)| key::PREFIX_LEN + k.len()).sum();
        let mut arena = Vec::with_capacity(total);
        for (slot, k) in keys {
            arena.extend_from_slice(&slot.to_be_bytes());
            arena.extend_from_slice(k);
        }
        let mut engine_keys: Vec<&[u8]> = Vec::with_capacity(keys.len());
        let mut rest = arena.as_slice();
        for (_, k) in keys {
            let (engine_key, tail) = rest.split_at(key::PREFIX_LEN + k.len());
            engine_keys.push(engine_key);
            rest = tail;
        }
        Ok(self.get_records(&engine_keys)?)
    }

    fn write(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
        Ok(Db::write(self, engine_batch(records))?)
    }

    fn write_buffered(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
        Ok(Db::write_buffered(self, engine_batch(records))?)
    }

    fn flush_writes(&self) -> Result<(), ClusterError> {
        Ok(Db::flush_wal(self)?)
    }

    fn range(
        &self,
        start: Bound<SlotKey<'_>>,
        end: Bound<SlotKey<'_>>,
        mode: ReadMode,
    ) -> Result<LsmIter, ClusterError> {
        let (mut start_buf, mut end_buf) = (Vec::new(), Vec::new());
        let start = engine_bound(start, &mut start_buf);
        let end = engine_bound(end, &mut end_buf);
        Ok(LsmIter {
            inner: self.range_with(start, end, mode)?,
        })
    }

    fn stats(&self) -> Stats {
        Db::stats(self)
    }

    fn max_hlc(&self) -> Result<u64, ClusterError> {
        Ok(Db::max_hlc(self).unwrap_or(0))
    }

    fn shutdown(&self) -> Result<(), ClusterError> {
        // Flushing first means the next start has no WAL to replay.
        self.flush()?;
        Ok(self.clone().close()?)
    }
}
