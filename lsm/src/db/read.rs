//! The read path: point reads and range iterators over one view.
//!
//! A point read asks every memtable, then the tables that can hold the key, and keeps the
//! highest version; a table whose newest version is older than what was already found is
//! skipped, which is what makes reads of recently written keys stop early. Must never take
//! the write lock or wait for a flush or compaction.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::db::state::{SuperVersion, TableHandle};
use crate::db::DbInner;
use crate::error::Result;
use crate::iter::concat::LevelIter;
use crate::iter::merge::MergeIter;
use crate::iter::user::{DbIter, ReadMode};
use crate::iter::EntryIter;
use crate::memtable::Memtable;
use crate::record::{Entry, Record, Version};
use crate::sstable::LookupKey;
use crate::stats::Counters;

impl DbInner {
    /// The winning record of `key` visible at `seqno` in `view`.
    ///
    /// `cached_up_to` is `Some(s)` for reads at the engine's latest sequence number that read
    /// the visible seqno `s` *before* loading `view` (and `seqno` after it): only such reads use
    /// and fill the row cache, and they take from it only records with a seqno at most `s`.
    /// Every such record is in `view` (it was published before the view was loaded), so a
    /// multi-key read sees a batch racing it whole or not at all even when another reader has
    /// cached part of it from a newer view. Snapshots pass `None`.
    pub(crate) fn get_at(
        &self,
        view: &SuperVersion,
        key: &[u8],
        seqno: u64,
        cached_up_to: Option<u64>,
    ) -> Result<Option<Record>> {
        Counters::incr(&self.counters.gets);
        // One hash serves the memtables' point indexes and every table's bloom filter.
        let lookup = LookupKey::new(key);
        let mut best = memtables_get(view.memtables(), key, lookup.hash(), seqno);
        let floor = best.as_ref().map(|(version, _)| *version);
        // A key the memtables answered with a version no table can beat (a recent write)
        // needs neither the tables nor the row cache.
        if floor.is_some_and(|floor| !tables_may_beat(view, key, floor)) {
            return Ok(best.map(|(version, entry)| entry.into_record(version)));
        }
        let use_cache = cached_up_to.is_some() && self.row_cache.enabled();
        let cached_up_to = cached_up_to.unwrap_or(0);
        if use_cache {
            match self.row_cache.get(key) {
                // A record published after this read loaded its view (cached by a reader of a
                // newer view) may be missing from this view: a multi-key read sees a racing
                // batch whole or not at all. The tables of this view answer instead.
                Some(Some((_, entry))) if entry.seqno > cached_up_to => {}
                Some(answer) => {
                    if let Some(found) = answer {
                        keep_newer(&mut best, found);
                    }
                    return Ok(best.map(|(version, entry)| entry.into_record(version)));
                }
                None => {}
            }
        }
        let (answer, complete) = self.tables_get(view, key, &lookup, seqno, floor)?;
        if use_cache && complete {
            self.row_cache.fill(key, view.tables_epoch, &answer);
        }
        if let Some(found) = answer {
            keep_newer(&mut best, found);
        }
        Ok(best.map(|(version, entry)| entry.into_record(version)))
    }

    /// The highest version of `key` visible at `seqno` in `view`'s tables, and whether that
    /// answer is complete. Tables whose newest version is at most `floor` (what the memtables
    /// answered) cannot change the read's result and are skipped; when one of them might have
    /// held the key, the answer is not the tables' own and must not be cached.
    fn tables_get(
        &self,
        view: &SuperVersion,
        key: &[u8],
        lookup: &LookupKey,
        seqno: u64,
        floor: Option<Version>,
    ) -> Result<(Option<(Version, Entry)>, bool)> {
        let mut best: Option<(Version, Entry)> = None;
        let mut complete = true;
        let mut probed = 0u64;
        for (level, tables) in view.tables.levels.iter().enumerate() {
            for handle in candidates(level, tables, key) {
                let meta = &handle.meta;
                // The version checks first: once a newer record is found they skip most
                // tables with one integer comparison, before two key comparisons.
                if let Some((version, _)) = &best {
                    if meta.max_version <= *version {
                        continue;
                    }
                }
                if floor.is_some_and(|floor| meta.max_version <= floor) {
                    complete &= !meta.may_contain_key(key);
                    continue;
                }
                if !meta.may_contain_key(key) {
                    continue;
                }
                probed += 1;
                let table = handle.table()?;
                if let Some(found) = table.get(lookup, seqno)? {
                    keep_newer(&mut best, found);
                }
            }
        }
        Counters::add(&self.counters.get_tables_probed, probed);
        Ok((best, complete))
    }

    /// An iterator over `(start, end)` in `view`, seeing writes up to `seqno`.
    pub(crate) fn range_at(
        &self,
        view: Arc<SuperVersion>,
        seqno: u64,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        mode: ReadMode,
    ) -> Result<DbIter> {
        let mut children: Vec<Box<dyn EntryIter>> = Vec::new();
        for memtable in view.memtables() {
            children.push(Box::new(memtable.iter(start)));
        }
        for (level, tables) in view.tables.levels.iter().enumerate() {
            let in_range: Vec<_> = tables
                .iter()
                .filter(|t| key_range_overlaps(&t.meta.min_key, &t.meta.max_key, start, end))
                .collect();
            if in_range.is_empty() {
                continue;
            }
            if level == 0 {
                for handle in in_range {
                    let table = handle.table()?;
                    children.push(Box::new(table.iter(start, true)?));
                }
            } else {
                let metas = in_range.iter().map(|t| t.meta.clone()).collect();
                children.push(Box::new(LevelIter::new(
                    metas,
                    Arc::clone(&self.table_cache),
                    start,
                    true,
                )?));
            }
        }
        let merged = PinnedIter {
            inner: MergeIter::new(children),
            _view: view,
        };
        let end = match end {
            Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k)),
            Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k)),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(DbIter::new(
            Box::new(merged),
            seqno,
            (self.opts.now_ms)(),
            end,
            mode,
        ))
    }
}

/// The tables of `level` that can hold `key` by key range alone (L0: all of them).
fn candidates<'a>(
    level: usize,
    tables: &'a [Arc<TableHandle>],
    key: &[u8],
) -> &'a [Arc<TableHandle>] {
    if level == 0 {
        return tables;
    }
    // Non-overlapping and sorted: at most one table can hold the key.
    let at = tables.partition_point(|t| t.meta.max_key.as_ref() < key);
    match tables.get(at) {
        Some(_) => &tables[at..at + 1],
        None => &[],
    }
}

/// Whether some table of `view` may hold a version of `key` above `floor`.
pub(crate) fn tables_may_beat(view: &SuperVersion, key: &[u8], floor: Version) -> bool {
    view.tables
        .levels
        .iter()
        .enumerate()
        .any(|(level, tables)| {
            candidates(level, tables, key)
                .iter()
                .any(|t| t.meta.max_version > floor && t.meta.may_contain_key(key))
        })
}

/// The highest version of `key` visible at `seqno` in `memtables` (newest first).
///
/// Once one memtable answered, an older one whose highest timestamp is below the answer's
/// cannot hold a newer version and is not searched. One whose highest timestamp equals it still
/// is: a version with the same timestamp and a higher node id wins the tie. Relies on a
/// memtable's highest timestamp being raised before its entry's seqno is published, so every
/// entry visible at `seqno` is covered by the maximum read here.
fn memtables_get<'a>(
    memtables: impl Iterator<Item = &'a Arc<Memtable>>,
    key: &[u8],
    hash: u64,
    seqno: u64,
) -> Option<(Version, Entry)> {
    let mut best: Option<(Version, Entry)> = None;
    for memtable in memtables {
        if let Some((version, _)) = &best {
            if memtable.max_hlc().is_none_or(|max| max < version.hlc) {
                continue;
            }
        }
        if let Some(found) = memtable.get(key, hash, seqno) {
            keep_newer(&mut best, found);
        }
    }
    best
}

fn keep_newer(best: &mut Option<(Version, Entry)>, found: (Version, Entry)) {
    if best.as_ref().is_none_or(|(v, _)| found.0 > *v) {
        *best = Some(found);
    }
}

/// Whether a table spanning `[min, max]` can hold keys in `(start, end)`.
fn key_range_overlaps(min: &[u8], max: &[u8], start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    let after_start = match start {
        Bound::Unbounded => true,
        Bound::Included(s) => max >= s,
        Bound::Excluded(s) => max > s,
    };
    let before_end = match end {
        Bound::Unbounded => true,
        Bound::Included(e) => min <= e,
        Bound::Excluded(e) => min < e,
    };
    after_start && before_end
}

/// A merged iterator that keeps its view alive, so the tables it reads lazily are not deleted
/// under it.
struct PinnedIter {
    inner: MergeIter,
    _view: Arc<SuperVersion>,
}

impl EntryIter for PinnedIter {
    fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.inner.current()
    }

    fn advance(&mut self) -> Result<()> {
        self.inner.advance()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use proptest::prelude::*;

    use super::*;
    use crate::record::InternalKey;
    use crate::{Db, Options};

    fn memtable(entries: &[(&str, Version, u64)]) -> Arc<Memtable> {
        let m = Memtable::new(0);
        for (key, version, seqno) in entries {
            let entry = Entry {
                seqno: *seqno,
                expire_at_ms: 0,
                value: Some(Bytes::from(format!("{key}@{seqno}"))),
            };
            m.insert(InternalKey::new(key.to_string(), *version), entry);
        }
        Arc::new(m)
    }

    #[test]
    fn an_older_memtable_with_an_equal_timestamp_still_wins_on_the_node_tie_break() {
        // The active memtable answers (10, node 1); the older one's highest timestamp is also
        // 10 and it holds (10, node 2), which wins.
        let active = memtable(&[("k", Version::new(10, 1), 5)]);
        let older = memtable(&[("k", Version::new(10, 2), 3), ("j", Version::new(4, 0), 1)]);
        let found = memtables_get(
            [&active, &older].into_iter(),
            b"k",
            LookupKey::new(b"k").hash(),
            u64::MAX,
        );
        assert_eq!(found.map(|(v, _)| v), Some(Version::new(10, 2)));
        // Below the answer's timestamp: skipped, and nothing newer could have been there.
        let oldest = memtable(&[("k", Version::new(9, 7), 1)]);
        let found = memtables_get(
            [&active, &oldest].into_iter(),
            b"k",
            LookupKey::new(b"k").hash(),
            u64::MAX,
        );
        assert_eq!(found.map(|(v, _)| v), Some(Version::new(10, 1)));
        // Above it: searched, and its newer version wins although the memtable is older.
        let late = memtable(&[("k", Version::new(11, 0), 2)]);
        let found = memtables_get(
            [&active, &oldest, &late].into_iter(),
            b"k",
            LookupKey::new(b"k").hash(),
            u64::MAX,
        );
        assert_eq!(found.map(|(v, _)| v), Some(Version::new(11, 0)));
    }

    proptest! {
        /// The skip rule never changes the answer: the result is the highest version of the
        /// key visible at the snapshot in any memtable.
        #[test]
        fn memtables_get_matches_the_highest_visible_version(
            tables in prop::collection::vec(
                prop::collection::vec((0u8..3, 0u64..4, 0u32..3), 0..6),
                1..4,
            ),
            key in 0u8..3,
            snapshot in 0u64..20,
        ) {
            let mut seqno = 0u64;
            let mut model: std::collections::BTreeMap<Version, u64> = Default::default();
            let mut memtables = Vec::new();
            // Built oldest first, so seqnos grow towards the newest memtable.
            for entries in &tables {
                let m = Memtable::new(0);
                for (k, hlc, node) in entries {
                    seqno += 1;
                    let version = Version::new(*hlc, *node);
                    let entry = Entry { seqno, expire_at_ms: 0, value: None };
                    m.insert(InternalKey::new(vec![*k], version), entry);
                    if *k == key && seqno <= snapshot {
                        // The first insert of a key and version stays.
                        model.entry(version).or_insert(seqno);
                    }
                }
                memtables.push(Arc::new(m));
            }
            memtables.reverse();
            let found = memtables_get(memtables.iter(), &[key], LookupKey::new(&[key]).hash(), snapshot);
            let want = model.iter().next_back().map(|(v, _)| *v);
            prop_assert_eq!(found.map(|(v, _)| v), want);
        }
    }

    #[test]
    fn get_records_matches_get_record_per_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(AtomicU64::new(1_000));
        let engine_clock = Arc::clone(&clock);
        let opts = Options::default()
            .with_background_work(false)
            .with_now_ms(Arc::new(move || engine_clock.load(Ordering::SeqCst)));
        let db = Db::open(dir.path(), opts).expect("open");
        let v = |hlc: u64| Version::new(hlc << 16, 1);
        // An oldest table, a newer one overwriting and deleting some of its keys, and the
        // memtable on top: each key's winner lives at a different depth.
        for i in 0..20u64 {
            let key = format!("k{i:02}");
            db.put(key.as_bytes(), Record::value(v(1), format!("t1-{i}")))
                .expect("put");
        }
        db.put(b"expiring", Record::expiring(v(1), "soon", 1_500))
            .expect("put");
        db.flush().expect("flush");
        for i in (0..20u64).step_by(3) {
            let key = format!("k{i:02}");
            db.put(key.as_bytes(), Record::value(v(2), format!("t2-{i}")))
                .expect("put");
        }
        db.put(b"k01", Record::tombstone(v(2))).expect("delete");
        db.flush().expect("flush");
        db.put(b"k02", Record::value(v(3), "mem")).expect("put");
        db.put(b"k04", Record::tombstone(v(3))).expect("delete");
        // A late write with an older version loses to the table's newer one.
        db.put(b"k03", Record::value(v(1), "stale")).expect("put");
        clock.store(2_000, Ordering::SeqCst);

        let mut names: Vec<String> = (0..22u64).map(|i| format!("k{i:02}")).collect();
        names.extend(["expiring", "absent", "k02", ""].map(String::from));
        let keys: Vec<&[u8]> = names.iter().map(|k| k.as_bytes()).collect();
        let before = db.stats().gets;
        let batched = db.get_records(&keys).expect("get_records");
        assert_eq!(
            db.stats().gets - before,
            keys.len() as u64,
            "one get per key"
        );
        let single: Vec<_> = keys
            .iter()
            .map(|k| db.get_record(k).expect("get_record"))
            .collect();
        assert_eq!(batched, single);
        // Spot checks, so the comparison cannot pass by both sides being wrong the same way.
        assert!(batched[1].as_ref().expect("k01").is_tombstone());
        assert_eq!(
            batched[2].as_ref().and_then(|r| r.value.as_deref()),
            Some(&b"mem"[..])
        );
        assert_eq!(
            batched[3].as_ref().and_then(|r| r.value.as_deref()),
            Some(&b"t2-3"[..])
        );
        assert!(batched[4].as_ref().expect("k04").is_tombstone());
        assert_eq!(
            batched[5].as_ref().and_then(|r| r.value.as_deref()),
            Some(&b"t1-5"[..])
        );
        assert_eq!(batched[20], None);
        let expired = batched[22].as_ref().expect("expired values are returned");
        assert!(!expired.is_live(2_000));
        assert_eq!(batched[23], None);
        assert!(db.get_records(&[]).expect("no keys").is_empty());

        let other = db.clone();
        db.close().expect("close");
        assert!(matches!(
            other.get_records(&keys),
            Err(crate::Error::Closed)
        ));
    }

    #[test]
    fn range_overlap_respects_bound_kinds() {
        assert!(key_range_overlaps(
            b"b",
            b"d",
            Bound::Included(b"d"),
            Bound::Unbounded
        ));
        assert!(!key_range_overlaps(
            b"b",
            b"d",
            Bound::Excluded(b"d"),
            Bound::Unbounded
        ));
        assert!(!key_range_overlaps(
            b"b",
            b"d",
            Bound::Unbounded,
            Bound::Excluded(b"b")
        ));
        assert!(key_range_overlaps(
            b"b",
            b"d",
            Bound::Unbounded,
            Bound::Included(b"b")
        ));
    }
}
