//! The memtable's point index: a hash table from user key to that key's newest entry, so a
//! point read of the memtable is one hash probe instead of an ordered-map search.
//!
//! Owns [`PointIndex`]. Holds, for every user key in the memtable, the entry with the highest
//! version, which is the one the ordered map sorts first for that key. Must follow the
//! memtable's duplicate rule: an entry replaces the indexed one only when its version is
//! strictly higher, so a second delivery of the same key and version moves nothing (the first
//! arrival stays, here as in the map, and a snapshot that saw it keeps seeing it).
//!
//! Sharded sixteen ways by the key's hash, so a reader waits for the writer only when both
//! are in the same shard, and a resize (under the shard's write lock) moves a sixteenth of the
//! keys; each shard is a `hashbrown` table of slots that carry their own hash, so a resize
//! never hashes a key again.

use hashbrown::HashTable;
use parking_lot::RwLock;

use super::key::KeyBytes;
use crate::record::{Entry, Version};

/// Number of shards; a power of two.
const SHARDS: usize = 16;

/// The hash of a user key, as the index wants it: the bloom filters' xxh3, so a point read
/// hashes its key once for the memtables and every table it probes.
pub(crate) fn hash_key(user_key: &[u8]) -> u64 {
    crate::sstable::bloom::hash_key(user_key)
}

/// The key hash as the index uses it: the persisted, unseeded xxh3 mixed with a seed chosen
/// per process (a folded 128-bit multiply, so every output bit depends on every input bit).
/// *Why:* clients choose keys and xxh3 without a seed is public; a client that searched for
/// keys agreeing in the bits `hashbrown` buckets and shards by could make every insert (under
/// the engine's write lock) and lookup in a shard probe all of them.
fn mixed(hash: u64) -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        // std's RandomState draws its keys from the OS's random source.
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
    });
    let product =
        u128::from(hash ^ seed) * u128::from(0x9e37_79b9_7f4a_7c15_u64 ^ seed.rotate_left(29));
    (product as u64) ^ ((product >> 64) as u64)
}

/// One key's newest entry.
struct Slot {
    hash: u64,
    key: KeyBytes,
    version: Version,
    entry: Entry,
}

/// User key to newest entry; see the module doc.
pub(super) struct PointIndex {
    shards: [RwLock<HashTable<Slot>>; SHARDS],
}

impl PointIndex {
    pub(super) fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashTable::new())),
        }
    }

    /// The shard of a [`mixed`] hash. Takes bits 32..36: `hashbrown` picks buckets by the low bits and
    /// filters probes by the top seven, and a shard choice correlated with either would leave
    /// each shard's table fewer distinct values there.
    fn shard(&self, hash: u64) -> &RwLock<HashTable<Slot>> {
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// Makes `entry` `key`'s indexed entry unless one at or above `version` is already there.
    /// Returns the bytes the shard's table allocated for it (non-zero when it grew).
    pub(super) fn offer(&self, hash: u64, key: &KeyBytes, version: Version, entry: Entry) -> usize {
        let hash = mixed(hash);
        let mut table = self.shard(hash).write();
        let before = table.allocation_size();
        let wanted = key.as_slice();
        // `find_mut` then `insert_unique` rather than `entry`, which reserves room for an
        // insert even when the key is present (and could grow the table for nothing).
        if let Some(slot) = table.find_mut(hash, |s| s.key.as_slice() == wanted) {
            // Strictly higher: an equal version is a duplicate delivery (module doc).
            if version > slot.version {
                slot.version = version;
                slot.entry = entry;
            }
            return 0;
        }
        table.insert_unique(
            hash,
            Slot {
                hash,
                key: key.clone(),
                version,
                entry,
            },
            |s| s.hash,
        );
        table.allocation_size().saturating_sub(before)
    }

    /// `key`'s newest entry, if the memtable holds the key at all.
    pub(super) fn newest(&self, hash: u64, key: &[u8]) -> Option<(Version, Entry)> {
        let hash = mixed(hash);
        let table = self.shard(hash).read();
        table
            .find(hash, |s| s.key.as_slice() == key)
            .map(|s| (s.version, s.entry.clone()))
    }

    /// Bytes the shards' tables hold allocated.
    #[cfg(test)]
    pub(super) fn allocated_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.read().allocation_size()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Hashes that agree in their low bits (where hashbrown picks buckets) and shard bits do
    /// not stay together once mixed.
    #[test]
    fn mixing_spreads_hashes_that_share_their_low_bits() {
        let base = 0x0123_4567_89ab_cdef_u64;
        let buckets: std::collections::HashSet<u64> = (0..1000u64)
            .map(|i| mixed(base ^ (i << 40)) & 0xffff)
            .collect();
        assert!(buckets.len() > 900, "{} distinct of 1000", buckets.len());
    }

    fn entry(seqno: u64) -> Entry {
        Entry {
            seqno,
            expire_at_ms: 0,
            value: Some(Bytes::from(seqno.to_string())),
        }
    }

    fn offer(index: &PointIndex, key: &str, hlc: u64, seqno: u64) -> usize {
        let k = KeyBytes::new(key.as_bytes());
        index.offer(
            hash_key(key.as_bytes()),
            &k,
            Version::new(hlc, 0),
            entry(seqno),
        )
    }

    fn newest(index: &PointIndex, key: &str) -> Option<(u64, u64)> {
        index
            .newest(hash_key(key.as_bytes()), key.as_bytes())
            .map(|(v, e)| (v.hlc, e.seqno))
    }

    #[test]
    fn keeps_the_highest_version_and_the_first_of_equals() {
        let index = PointIndex::new();
        offer(&index, "k", 5, 1);
        offer(&index, "k", 3, 2);
        assert_eq!(newest(&index, "k"), Some((5, 1)));
        offer(&index, "k", 5, 3);
        assert_eq!(
            newest(&index, "k"),
            Some((5, 1)),
            "a duplicate moved the entry"
        );
        offer(&index, "k", 9, 4);
        assert_eq!(newest(&index, "k"), Some((9, 4)));
        assert_eq!(newest(&index, "kk"), None);
    }

    #[test]
    fn growth_reported_adds_up_to_the_allocation() {
        let index = PointIndex::new();
        let mut reported = 0;
        for i in 0..5_000u64 {
            reported += offer(&index, &format!("key{i}"), 1, i);
            // A second version of a key never allocates.
            assert_eq!(offer(&index, &format!("key{i}"), 2, i), 0);
        }
        assert!(reported > 5_000 * std::mem::size_of::<Slot>());
        assert_eq!(reported, index.allocated_bytes());
    }
}
