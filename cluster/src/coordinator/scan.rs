//! `SCAN` cursors: resumable integers naming a slot and a remembered key.
//!
//! Owns [`ScanTable`] and the cursor encoding (the step itself is in `walk`). A cursor is `slot << 48 | handle`: the
//! slot of the last key returned and a handle (48 bits, never 0) into a bounded LRU table
//! remembering that key. Resuming reads the engine from just after the remembered key; a
//! handle the table no longer knows (evicted, a restart, another node) resumes from the start
//! of the cursor's slot, which may repeat keys but never skips one present throughout the
//! iteration (Redis's guarantee). Must never be locked while a replica is read.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::api::ScanCursor;

/// Bits of a cursor holding the handle; the slot sits above them.
pub const HANDLE_BITS: u32 = 48;
const HANDLE_MASK: u64 = (1 << HANDLE_BITS) - 1;

/// Handles remembered at most; older ones are forgotten (their scans restart their slot).
pub const MAX_SCAN_HANDLES: usize = 10_000;
/// Bytes of remembered keys at most, so 10,000 scans of 64 KiB keys cannot take 640 MiB.
pub const MAX_SCAN_KEY_BYTES: usize = 16 << 20;

/// Splits a cursor into its slot and handle.
pub fn split_cursor(cursor: ScanCursor) -> (u64, u64) {
    (cursor.0 >> HANDLE_BITS, cursor.0 & HANDLE_MASK)
}

/// Builds a cursor from a slot and a handle.
pub fn make_cursor(slot: u16, handle: u64) -> ScanCursor {
    ScanCursor(u64::from(slot) << HANDLE_BITS | (handle & HANDLE_MASK))
}

struct ScanEntry {
    slot: u16,
    last_key: Bytes,
    /// Position in the LRU order (`ScanTable::lru`'s key).
    tick: u64,
}

/// Where live scans stopped: handle -> (slot, last key returned), least recently used first
/// out, bounded by entry count and by key bytes.
pub struct ScanTable {
    entries: HashMap<u64, ScanEntry>,
    /// tick -> handle, oldest first.
    lru: BTreeMap<u64, u64>,
    tick: u64,
    key_bytes: usize,
    max_entries: usize,
    max_key_bytes: usize,
}

impl ScanTable {
    /// An empty table holding at most `max_entries` handles and `max_key_bytes` of keys.
    pub fn new(max_entries: usize, max_key_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            key_bytes: 0,
            max_entries: max_entries.max(1),
            max_key_bytes,
        }
    }

    /// Number of remembered handles.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no handle is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `handle` is in use.
    pub fn contains(&self, handle: u64) -> bool {
        self.entries.contains_key(&handle)
    }

    /// The slot and last key under `handle`, marking it recently used. Entries stay after use:
    /// Redis clients may legitimately repeat a cursor.
    pub fn get(&mut self, handle: u64) -> Option<(u16, Bytes)> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(&handle)?;
        self.lru.remove(&entry.tick);
        entry.tick = tick;
        self.lru.insert(tick, handle);
        Some((entry.slot, entry.last_key.clone()))
    }

    /// Remembers `(slot, last_key)` under `handle`, evicting the least recently used entries
    /// beyond the bounds.
    pub fn insert(&mut self, handle: u64, slot: u16, last_key: Bytes) {
        self.tick += 1;
        let tick = self.tick;
        self.key_bytes += last_key.len();
        let entry = ScanEntry {
            slot,
            last_key,
            tick,
        };
        if let Some(old) = self.entries.insert(handle, entry) {
            self.lru.remove(&old.tick);
            self.key_bytes -= old.last_key.len();
        }
        self.lru.insert(tick, handle);
        while self.entries.len() > self.max_entries
            || (self.key_bytes > self.max_key_bytes && self.entries.len() > 1)
        {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.key_bytes -= old.last_key.len();
            }
        }
    }
}
