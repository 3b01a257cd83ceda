//! The row cache: per key, the winning record the *tables* hold (or that none holds it), so a
//! repeated point read costs the memtable probe and one hash lookup instead of index searches,
//! block-cache lookups and block seeks in every table that may hold the key.
//!
//! Owns [`RowCache`]. It never holds memtable data: a read still asks the memtables and keeps
//! the newer of their answer and the cached one. What keeps an entry right is the protocol of
//! every change of the table set (DESIGN.md, "Row cache"):
//!
//! 1. [`RowCache::close_epoch`] bumps the tables epoch; from then on no answer computed from
//!    an older table set can be inserted ([`RowCache::fill`] checks the epoch under a lock the
//!    bump takes exclusively);
//! 2. the keys whose tables answer the change alters are brought up to date: a flush gives
//!    every cached key of its memtable the newer of its cached answer and the memtable's
//!    record ([`RowCache::refresh`]) and, while the budget has room, adds live keys whose
//!    record no older table can beat; a compaction forgets every key whose winner it removed
//!    or rewrote; an expired-table drop forgets everything;
//! 3. the new view, tagged with the new epoch, is installed.
//!
//! After step 3 every entry is the answer of the new table set: it was either computed from a
//! set whose answer for its key the change did not alter, or put there by the change itself as
//! the new set's answer (a flush's refresh or addition), or inserted after step 1 by a reader
//! of the new view. Must never be consulted or filled by a read at an older sequence number
//! than the latest (snapshots): an entry may hold a record newer than such a read may see.

use bytes::Bytes;
use parking_lot::RwLock;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};
use std::sync::Arc;

use crate::record::{Entry, Version};
use crate::stats::Counters;

/// What the tables answer for a key: its winning record there, or `None` if no table holds it.
pub(crate) type TablesAnswer = Option<(Version, Entry)>;

/// Bookkeeping bytes charged per entry on top of its key and value: the cache's slot (about
/// 112 bytes with the key's and value's `Bytes` handles and the version and entry fields), two
/// heap allocations and the shared header a hit's clone of each `Bytes` adds (review: 128 let
/// a budget full of negative answers for short keys use about 1.5 times its bytes).
const ROW_OVERHEAD_BYTES: u64 = 256;

/// Shards of the cache (each with its own lock). Fixed rather than quick_cache's default of
/// four per core, because an entry heavier than a shard's share of the budget is refused, and
/// the largest entry worth copying ([`RowCache::fill`]) is derived from it.
const SHARDS: usize = 16;

/// The bound on the heaviest entry filled never goes below this: quick_cache gives a small
/// budget fewer shards, so small caches may still keep an entry this heavy, and trying costs
/// one copy of a small value.
const MIN_MAX_ROW_WEIGHT: u64 = 4 << 10;

/// Typical entry size, used only to size the cache's tables up front.
const TYPICAL_ROW_BYTES: usize = 512;

/// One cached answer.
#[derive(Clone)]
struct Row(TablesAnswer);

/// Charges an entry its key, its value and the overhead.
#[derive(Clone, Copy, Debug, Default)]
struct RowWeighter;

impl Weighter<Bytes, Row> for RowWeighter {
    fn weight(&self, key: &Bytes, row: &Row) -> u64 {
        row_weight(key, row.0.as_ref().map(|(_, e)| e))
    }
}

/// What an entry of `key` holding `entry` (none: a negative answer) is charged: its key, its
/// value, the overhead.
fn row_weight(key: &[u8], entry: Option<&Entry>) -> u64 {
    let value = entry.and_then(|e| e.value.as_ref()).map_or(0, Bytes::len);
    (key.len() + value) as u64 + ROW_OVERHEAD_BYTES
}

/// Tables' answers keyed by user key, within a byte budget.
pub(crate) struct RowCache {
    /// `None` when the budget is 0: nothing is looked up or kept.
    cache: Option<Cache<Bytes, Row, RowWeighter>>,
    /// The heaviest entry filled: half a shard's budget (at least [`MIN_MAX_ROW_WEIGHT`]).
    /// quick_cache refuses entries heavier than a shard's share, and a value that large would
    /// evict half the shard anyway.
    max_row_weight: u64,
    /// The tables epoch: the epoch of the view fills must come from. Read-locked by fills,
    /// write-locked by [`RowCache::close_epoch`], so no fill of an older table set lands after
    /// a change began.
    epoch: RwLock<u64>,
    counters: Arc<Counters>,
}

impl RowCache {
    /// A cache holding up to `capacity_bytes` of answers (0 disables it). Hits and misses are
    /// counted in `counters`.
    pub(crate) fn new(capacity_bytes: usize, counters: Arc<Counters>) -> Self {
        let cache = (capacity_bytes > 0).then(|| {
            let items = (capacity_bytes / TYPICAL_ROW_BYTES).max(16);
            let options = OptionsBuilder::new()
                .estimated_items_capacity(items)
                .weight_capacity(capacity_bytes as u64)
                .shards(SHARDS)
                .build();
            match options {
                Ok(options) => Cache::with_options(
                    options,
                    RowWeighter,
                    DefaultHashBuilder::default(),
                    DefaultLifecycle::default(),
                ),
                // Unreachable with both sizes set; the default sharding serves as well.
                Err(_) => Cache::with_weighter(items, capacity_bytes as u64, RowWeighter),
            }
        });
        Self {
            cache,
            max_row_weight: ((capacity_bytes / (2 * SHARDS)) as u64).max(MIN_MAX_ROW_WEIGHT),
            epoch: RwLock::new(0),
            counters,
        }
    }

    /// Whether the cache is on (a non-zero budget).
    pub(crate) fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// The tables' answer for `key`, if cached. Counts a hit or a miss.
    pub(crate) fn get(&self, key: &[u8]) -> Option<TablesAnswer> {
        let cache = self.cache.as_ref()?;
        let found = cache.get(key);
        let counter = if found.is_some() {
            &self.counters.row_cache_hits
        } else {
            &self.counters.row_cache_misses
        };
        Counters::incr(counter);
        found.map(|row| row.0)
    }

    /// Caches `answer`, computed from a view of tables epoch `epoch`, unless the table set has
    /// changed since (then the answer may be stale and is dropped). The value is copied, so the
    /// entry does not pin the block it was read from.
    pub(crate) fn fill(&self, key: &[u8], epoch: u64, answer: &TablesAnswer) {
        let Some(cache) = &self.cache else {
            return;
        };
        // Before copying anything: an answer of a closed epoch, or one too heavy to be kept,
        // would be copied for nothing (a miss on a 10 MiB value would copy it on every read).
        let weight = row_weight(key, answer.as_ref().map(|(_, e)| e));
        if weight > self.max_row_weight || *self.epoch.read() != epoch {
            return;
        }
        let row = Row(answer
            .as_ref()
            .map(|(version, entry)| (*version, copy_entry(entry))));
        let current = self.epoch.read();
        if *current == epoch {
            cache.insert(Bytes::copy_from_slice(key), row);
        }
    }

    /// Step 1 of a table-set change: refuses fills from every view installed so far, and
    /// returns the epoch to tag the new view with. The caller removes what the change alters,
    /// then installs the view.
    pub(crate) fn close_epoch(&self) -> u64 {
        let mut epoch = self.epoch.write();
        *epoch += 1;
        *epoch
    }

    /// Whether anything is cached (a change with nothing cached has nothing to remove).
    pub(crate) fn is_empty(&self) -> bool {
        self.cache.as_ref().is_none_or(|c| c.is_empty())
    }

    /// Step 2 of a flush, for one key of the flushed memtable: `version`/`entry` is the key's
    /// record in the new table, so the new tables' answer is the newer of it and the cached
    /// one. A cached key gets that answer. A key not cached is added while the cache has
    /// `room` (bytes left in its budget when the flush began, spent here) and `should_add`
    /// says so; the caller must only say so when no older table may hold a newer version of
    /// the key (then the record *is* the new tables' answer). Once the budget is used a flush
    /// adds nothing, so it evicts at most about the free space it found (the budget is kept
    /// per shard, so a full shard may still evict a few entries; review measured 9 of 1,861).
    ///
    /// *Why not forget the key:* a flush covers most keys of a write-heavy load, so forgetting
    /// emptied the cache every 64 MiB of writes and the next reads paid the table path again;
    /// updating keeps warm what was warm, and filling an empty budget warms what was just
    /// written, at the cost of copying those values once per flush.
    pub(crate) fn refresh(
        &self,
        key: &[u8],
        version: Version,
        entry: &Entry,
        room: &mut u64,
        should_add: impl FnOnce() -> bool,
    ) {
        let Some(cache) = &self.cache else {
            return;
        };
        let weight = row_weight(key, Some(entry));
        let Some(Row(cached)) = cache.peek(key) else {
            if weight <= *room && weight <= self.max_row_weight && should_add() {
                *room -= weight;
                cache.insert(
                    Bytes::copy_from_slice(key),
                    Row(Some((version, copy_entry(entry)))),
                );
            }
            return;
        };
        if cached.as_ref().is_some_and(|(v, _)| *v >= version) {
            return;
        }
        let row = Row(Some((version, copy_entry(entry))));
        if weight > self.max_row_weight
            || cache
                .replace(Bytes::copy_from_slice(key), row, true)
                .is_err()
        {
            cache.remove(key);
        }
    }

    /// Bytes of the budget not in use (0 when the cache is off).
    pub(crate) fn room_bytes(&self) -> u64 {
        self.cache
            .as_ref()
            .map_or(0, |c| c.capacity().saturating_sub(c.weight()))
    }

    /// Forgets `key`'s answer.
    pub(crate) fn remove(&self, key: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.remove(key);
        }
    }

    /// Forgets every answer.
    pub(crate) fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Bytes currently held (weights included).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}

/// `entry` with its value copied out of whatever buffer it shares (a 4 KiB block, a memtable
/// batch), so a cached entry pins nothing but itself.
fn copy_entry(entry: &Entry) -> Entry {
    Entry {
        seqno: entry.seqno,
        expire_at_ms: entry.expire_at_ms,
        value: entry.value.as_deref().map(Bytes::copy_from_slice),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn answer(value: &[u8]) -> TablesAnswer {
        Some((
            Version::new(7, 1),
            Entry {
                seqno: 3,
                expire_at_ms: 0,
                value: Some(Bytes::copy_from_slice(value)),
            },
        ))
    }

    #[test]
    fn caches_answers_and_negative_answers_and_counts() {
        let counters = Arc::new(Counters::default());
        let cache = RowCache::new(1 << 20, Arc::clone(&counters));
        assert!(cache.is_empty());
        assert!(cache.get(b"k").is_none());
        cache.fill(b"k", 0, &answer(b"v"));
        cache.fill(b"absent", 0, &None);
        assert_eq!(cache.get(b"k"), Some(answer(b"v")));
        assert_eq!(cache.get(b"absent"), Some(None));
        assert_eq!(counters.row_cache_hits.load(Ordering::Relaxed), 2);
        assert_eq!(counters.row_cache_misses.load(Ordering::Relaxed), 1);
        cache.remove(b"k");
        assert!(cache.get(b"k").is_none());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_refresh_updates_cached_keys_only_and_keeps_the_newer_answer() {
        let cache = RowCache::new(1 << 20, Arc::new(Counters::default()));
        let record = |hlc: u64, value: &[u8]| {
            (
                Version::new(hlc, 1),
                Entry {
                    seqno: hlc,
                    expire_at_ms: 0,
                    value: Some(Bytes::copy_from_slice(value)),
                },
            )
        };
        cache.fill(b"cached", 0, &Some(record(5, b"five")));
        cache.fill(b"absent", 0, &None);
        let (v9, e9) = record(9, b"nine");
        cache.refresh(b"cached", v9, &e9, &mut 0, || true);
        cache.refresh(b"absent", v9, &e9, &mut 0, || true);
        cache.refresh(b"uncached", v9, &e9, &mut 0, || true);
        assert_eq!(cache.get(b"cached"), Some(Some(record(9, b"nine"))));
        assert_eq!(cache.get(b"absent"), Some(Some(record(9, b"nine"))));
        assert!(
            cache.get(b"uncached").is_none(),
            "no room: a flush does not fill"
        );
        // With room, a key is added only when no table may hold a newer version of it.
        let mut room = 1 << 20;
        cache.refresh(b"beaten", v9, &e9, &mut room, || false);
        assert!(cache.get(b"beaten").is_none());
        cache.refresh(b"uncached", v9, &e9, &mut room, || true);
        assert_eq!(cache.get(b"uncached"), Some(Some(record(9, b"nine"))));
        assert!(room < 1 << 20, "the room is spent");
        // An older record arriving late does not replace the newer cached one.
        let (v7, e7) = record(7, b"seven");
        cache.refresh(b"cached", v7, &e7, &mut 0, || true);
        assert_eq!(cache.get(b"cached"), Some(Some(record(9, b"nine"))));
        // One too heavy to keep is forgotten rather than left stale.
        let (v10, e10) = record(10, &vec![0u8; 64 << 10]);
        cache.refresh(b"cached", v10, &e10, &mut 0, || true);
        assert!(cache.get(b"cached").is_none());
    }

    #[test]
    fn a_fill_from_a_closed_epoch_is_dropped() {
        let cache = RowCache::new(1 << 20, Arc::new(Counters::default()));
        let next = cache.close_epoch();
        assert_eq!(next, 1);
        cache.fill(b"k", 0, &answer(b"stale"));
        assert!(cache.get(b"k").is_none());
        cache.fill(b"k", next, &answer(b"fresh"));
        assert_eq!(cache.get(b"k"), Some(answer(b"fresh")));
    }

    #[test]
    fn values_are_copied_out_of_the_block_they_came_from() {
        let cache = RowCache::new(1 << 20, Arc::new(Counters::default()));
        let block = Bytes::from(vec![9u8; 4096]);
        let found = Some((
            Version::new(1, 0),
            Entry {
                seqno: 1,
                expire_at_ms: 0,
                value: Some(block.slice(100..110)),
            },
        ));
        cache.fill(b"k", 0, &found);
        let cached = cache.get(b"k").flatten().and_then(|(_, e)| e.value);
        let cached = cached.expect("cached value");
        assert_eq!(cached, block.slice(100..110));
        // A copy lives outside the block's allocation.
        let block_range = block.as_ptr() as usize..block.as_ptr() as usize + block.len();
        assert!(!block_range.contains(&(cached.as_ptr() as usize)));
    }

    #[test]
    fn the_budget_bounds_memory_and_zero_disables() {
        let cache = RowCache::new(64 << 10, Arc::new(Counters::default()));
        for i in 0..1_000u32 {
            cache.fill(&i.to_be_bytes(), 0, &answer(&[1u8; 1000]));
        }
        assert!(cache.used_bytes() <= 64 << 10);
        assert!(cache.used_bytes() > 0);

        // An entry heavier than half a shard's budget is not even copied.
        let big = RowCache::new(1 << 20, Arc::new(Counters::default()));
        big.fill(b"big", 0, &answer(&vec![1u8; 64 << 10]));
        assert!(big.get(b"big").is_none());
        big.fill(b"small", 0, &answer(&vec![1u8; 16 << 10]));
        assert!(big.get(b"small").is_some());

        let off = RowCache::new(0, Arc::new(Counters::default()));
        assert!(!off.enabled());
        off.fill(b"k", 0, &answer(b"v"));
        assert!(off.get(b"k").is_none());
        assert!(off.is_empty());
    }
}
