//! The in-memory write buffer: an ordered map of internal keys plus a hash index of each
//! key's newest entry.
//!
//! Owns [`Memtable`] and its iterator; the key representation is in [`key`], the index in
//! [`point_index`]. Writes land here after the WAL; once the table reaches its size budget the
//! engine freezes it and a flush turns it into an L0 SSTable. Must never do I/O, and never
//! replace an entry already present under the same key and version (a duplicate delivery of a
//! write must not move it past a snapshot).
//!
//! The map is a `BTreeMap` behind a read-write lock rather than a lock-free skiplist: the
//! engine's write lock already serialises inserts, so lock-freedom bought nothing, and the
//! B-tree did an insert plus a seek in 43% fewer instructions (docs/DESIGN.md, "Memtable").
//! Readers take the lock for one search or one iterator refill at a time, never across a
//! write.

mod key;
mod point_index;

use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::record::{Entry, InternalKey, Version};
use key::{KeyBytes, MemKey};
pub(crate) use point_index::hash_key;
use point_index::PointIndex;

/// Bytes counted per map entry on top of its key and payload: a flat allowance for the
/// map's own structure, the one the skiplist had, so the map's part of the flush cadence did
/// not change with the map (the index's part is counted as allocated).
const MAP_ENTRY_OVERHEAD: usize = 32;

/// A sorted write buffer: concurrent readers, one writer at a time (the engine's write lock).
pub(crate) struct Memtable {
    /// Id of the WAL segment holding this memtable's writes.
    wal_segment: u64,
    map: RwLock<BTreeMap<MemKey, Entry>>,
    /// Each key's newest entry, answering most point reads without the map.
    index: PointIndex,
    /// Entries in `map`, so emptiness checks never take its lock.
    entries: AtomicUsize,
    approximate_bytes: AtomicUsize,
    min_hlc: AtomicU64,
    /// Highest HLC timestamp of any entry (0 while empty).
    max_hlc: AtomicU64,
    max_seqno: AtomicU64,
}

impl Memtable {
    /// An empty memtable whose writes are logged in WAL segment `wal_segment`.
    pub(crate) fn new(wal_segment: u64) -> Self {
        Self {
            wal_segment,
            map: RwLock::new(BTreeMap::new()),
            index: PointIndex::new(),
            entries: AtomicUsize::new(0),
            approximate_bytes: AtomicUsize::new(0),
            min_hlc: AtomicU64::new(u64::MAX),
            max_hlc: AtomicU64::new(0),
            max_seqno: AtomicU64::new(0),
        }
    }

    /// The WAL segment this memtable's writes are in.
    pub(crate) fn wal_segment(&self) -> u64 {
        self.wal_segment
    }

    /// Inserts an entry unless the same key and version is already present.
    ///
    /// The index is updated after the map, and both before the engine publishes the entry's
    /// seqno: a reader whose snapshot covers the entry finds it in the index, and one the
    /// index sends to the map finds every entry its snapshot covers there.
    pub(crate) fn insert(&self, key: InternalKey, entry: Entry) {
        let hlc = key.version.hlc;
        let seqno = entry.seqno;
        let size = key.user_key.len()
            + Version::ENCODED_LEN
            + entry.approximate_size()
            + MAP_ENTRY_OVERHEAD;
        let hash = hash_key(&key.user_key);
        let user_key = KeyBytes::from_bytes(key.user_key);
        let mem_key = MemKey {
            user_key: user_key.clone(),
            version: key.version,
        };
        let inserted = match self.map.write().entry(mem_key) {
            MapEntry::Vacant(slot) => {
                slot.insert(entry.clone());
                true
            }
            MapEntry::Occupied(_) => false,
        };
        if inserted {
            let grown = self.index.offer(hash, &user_key, key.version, entry);
            self.approximate_bytes
                .fetch_add(size + grown, Ordering::Relaxed);
            self.entries.fetch_add(1, Ordering::Release);
        }
        self.min_hlc.fetch_min(hlc, Ordering::Relaxed);
        self.max_hlc.fetch_max(hlc, Ordering::Relaxed);
        self.max_seqno.fetch_max(seqno, Ordering::Relaxed);
    }

    /// The highest version of `user_key` visible at `snapshot_seqno`, if any; `hash` is
    /// [`hash_key`] of `user_key`.
    pub(crate) fn get(
        &self,
        user_key: &[u8],
        hash: u64,
        snapshot_seqno: u64,
    ) -> Option<(Version, Entry)> {
        match self.index.newest(hash, user_key) {
            // The highest version there is, so the highest visible one if visible at all.
            Some(found) if found.1.seqno <= snapshot_seqno => Some(found),
            // Written after the snapshot: an older version may still be visible.
            Some(_) => self.search(user_key, snapshot_seqno),
            None => None,
        }
    }

    /// [`Memtable::get`] through the ordered map: the key's versions, newest first.
    fn search(&self, user_key: &[u8], snapshot_seqno: u64) -> Option<(Version, Entry)> {
        let start = MemKey::seek_first(user_key);
        let map = self.map.read();
        map.range(start..)
            .take_while(|(k, _)| k.user_key.as_slice() == user_key)
            .find(|(_, e)| e.seqno <= snapshot_seqno)
            .map(|(k, e)| (k.version, e.clone()))
    }

    /// Approximate bytes used, for the flush trigger.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.approximate_bytes.load(Ordering::Relaxed)
    }

    /// Whether the memtable holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.load(Ordering::Acquire) == 0
    }

    /// Smallest HLC of any entry (`u64::MAX` when empty).
    pub(crate) fn min_hlc(&self) -> u64 {
        self.min_hlc.load(Ordering::Relaxed)
    }

    /// Highest HLC timestamp of any entry, `None` when empty.
    pub(crate) fn max_hlc(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.max_hlc.load(Ordering::Relaxed))
    }

    /// Largest sequence number of any entry.
    pub(crate) fn max_seqno(&self) -> u64 {
        self.max_seqno.load(Ordering::Relaxed)
    }

    /// Calls `f` with each user key's newest entry (the highest version), in key order, and
    /// returns how many older versions it skipped. Stops at `f`'s first error.
    ///
    /// For the flush of a frozen memtable: it walks the map under its read lock without
    /// cloning any entry (writers never insert into a frozen memtable, so the lock keeps no
    /// one out), where [`Memtable::iter`] copies keys and bumps reference counts per entry.
    pub(crate) fn for_each_newest(
        &self,
        mut f: impl FnMut(&[u8], Version, &Entry) -> Result<()>,
    ) -> Result<u64> {
        let map = self.map.read();
        let mut last: Option<&KeyBytes> = None;
        let mut skipped = 0;
        for (k, e) in map.iter() {
            // Versions of one key sit together, newest first: only the first one is taken.
            if last.is_some_and(|l| l.as_slice() == k.user_key.as_slice()) {
                skipped += 1;
                continue;
            }
            last = Some(&k.user_key);
            f(k.user_key.as_slice(), k.version, e)?;
        }
        Ok(skipped)
    }

    /// An iterator from the first key at or after `start`.
    pub(crate) fn iter(self: &Arc<Self>, start: Bound<&[u8]>) -> MemtableIter {
        let start = match start {
            Bound::Unbounded => Bound::Unbounded,
            Bound::Included(k) => Bound::Included(MemKey::seek_first(k)),
            // Every version of `k` sorts at or after `seek_first(k)`; skip them all by seeking
            // to the first version of the smallest key after `k`.
            Bound::Excluded(k) => {
                let mut next = k.to_vec();
                next.push(0);
                Bound::Included(MemKey::seek_first(&next))
            }
        };
        let mut iter = MemtableIter {
            table: Arc::clone(self),
            buffer: VecDeque::new(),
            resume: start,
        };
        iter.refill();
        iter
    }
}

/// Iterates a memtable in chunks: each refill copies the next few entries (cheap `Bytes`
/// clones) under the map's read lock, so the iterator owns its data and holds no lock between
/// refills (an iterator over the live memtable never keeps writers out for longer than one
/// refill, and sees the writes made between refills that sort after its position).
pub(crate) struct MemtableIter {
    table: Arc<Memtable>,
    buffer: VecDeque<(Bytes, Version, Entry)>,
    /// Where the next refill starts.
    resume: Bound<MemKey>,
}

const REFILL_ENTRIES: usize = 64;

impl MemtableIter {
    fn refill(&mut self) {
        let range = (self.resume.clone(), Bound::Unbounded);
        let map = self.table.map.read();
        for (k, e) in map.range::<MemKey, _>(range).take(REFILL_ENTRIES) {
            self.buffer
                .push_back((k.user_key.to_bytes(), k.version, e.clone()));
        }
        drop(map);
        if let Some((k, v, _)) = self.buffer.back() {
            self.resume = Bound::Excluded(MemKey {
                user_key: KeyBytes::new(k),
                version: *v,
            });
        }
    }
}

impl EntryIter for MemtableIter {
    fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.buffer.front().map(|(k, v, e)| (k.as_ref(), *v, e))
    }

    fn advance(&mut self) -> Result<()> {
        self.buffer.pop_front();
        if self.buffer.is_empty() {
            self.refill();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
