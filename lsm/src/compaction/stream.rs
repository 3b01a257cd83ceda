//! The record-level filter of a compaction: from every version of every key in the inputs to
//! exactly what the output tables must hold.
//!
//! Owns [`CompactionStream`] and [`StreamStats`]. It reads one merged, internal-key-sorted
//! stream and decides per key which versions survive (snapshots, duplicates, shadowing) and
//! applies [`verdict`] to the oldest survivor. Must never write files, cut tables or choose
//! inputs: the executor does that, cutting output tables only where `starts_new_user_key` is set
//! so that all versions of a key stay in one table.

use bytes::Bytes;

use crate::compaction::ttl::{verdict, Verdict};
use crate::error::Result;
use crate::iter::EntryIter;
use crate::record::{Entry, Version};

/// What one compaction's stream consumed and produced. `entries_in` is the sum of all others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamStats {
    /// Entries read from the inputs.
    pub entries_in: u64,
    /// Entries written out, expired values rewritten as tombstones included.
    pub entries_out: u64,
    /// Older versions dropped because a newer one visible to every snapshot shadows them.
    pub dropped_shadowed: u64,
    /// Extra copies of the same key and version (the same write delivered twice, e.g. by a
    /// hint and by repair); the copy with the lowest seqno is the one kept.
    pub dropped_duplicates: u64,
    /// Expired values written out as tombstones (also counted in `entries_out`).
    pub expired_to_tombstone: u64,
    /// Dead records removed for good ([`Verdict::Remove`]).
    pub removed: u64,
}

/// Filters a merged compaction input, one output entry at a time.
///
/// Per user key, with entries arriving newest version first:
/// - copies of one version collapse to the copy with the lowest seqno, which every snapshot that
///   saw any copy also sees;
/// - versions with `seqno > oldest_snapshot_seqno` are kept verbatim: some snapshot, or the
///   present, may read them;
/// - the first version with `seqno <= oldest_snapshot_seqno` is what the oldest snapshot reads,
///   and every later reader too unless a kept newer version hides it. It is the last one kept,
///   after [`verdict`] (removed, rewritten as a tombstone, or kept);
/// - every older version after it is dropped: no snapshot can read past it.
pub(crate) struct CompactionStream {
    input: Box<dyn EntryIter>,
    oldest_snapshot_seqno: u64,
    now_ms: u64,
    gc_grace_ms: u64,
    bottommost: bool,
    purge_floor: Option<Version>,
    /// The user key being processed (the key of the last entry taken from the input).
    key: Option<Bytes>,
    /// Whether the current key's oldest-snapshot version has been handled, so that everything
    /// left of the key is shadowed.
    key_settled: bool,
    /// Whether an entry of the current key has been yielded already.
    key_emitted: bool,
    /// Keys whose record got a verdict other than keep, if asked for: their answer may differ
    /// after the compaction (the row cache forgets them). `None` once they passed
    /// [`MAX_CHANGED_KEY_BYTES`] or when not asked for; see [`CompactionStream::changed`].
    changed: Option<Vec<Bytes>>,
    changed_bytes: usize,
    changed_overflow: bool,
    stats: StreamStats,
}

/// Most bytes of changed keys a stream lists; past that it only says "many" (the row cache is
/// then cleared instead, cheaper than holding every key of a compaction that purges a lot).
/// Bytes, not keys: keys may be up to 64 KiB each.
const MAX_CHANGED_KEY_BYTES: usize = 8 << 20;

/// Which keys' records a compaction removed or rewrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChangedKeys {
    /// Exactly these (possibly none).
    These(Vec<Bytes>),
    /// Too many to list, or not tracked.
    Many,
}

impl CompactionStream {
    /// Wraps `input`: every entry of every input table merged in internal-key order (duplicates
    /// allowed). `oldest_snapshot_seqno` is the seqno of the oldest live snapshot, or `u64::MAX`
    /// when there is none, so that only each key's winner survives. `bottommost` means no table
    /// outside the compaction, at or below the output level, overlaps its key range.
    pub(crate) fn new(
        input: Box<dyn EntryIter>,
        oldest_snapshot_seqno: u64,
        now_ms: u64,
        gc_grace_ms: u64,
        bottommost: bool,
    ) -> Self {
        Self {
            input,
            oldest_snapshot_seqno,
            now_ms,
            gc_grace_ms,
            bottommost,
            purge_floor: None,
            key: None,
            key_settled: false,
            key_emitted: false,
            changed: None,
            changed_bytes: 0,
            changed_overflow: false,
            stats: StreamStats::default(),
        }
    }

    /// Lists the keys whose record is removed or rewritten, for [`CompactionStream::changed`].
    pub(crate) fn with_changed_keys(mut self) -> Self {
        self.changed = Some(Vec::new());
        self
    }

    /// The keys whose records this stream removed or rewrote as tombstones so far
    /// ([`ChangedKeys::Many`] if not asked for with [`CompactionStream::with_changed_keys`]).
    pub(crate) fn changed(&mut self) -> ChangedKeys {
        match self.changed.take() {
            Some(keys) if !self.changed_overflow => ChangedKeys::These(keys),
            _ => ChangedKeys::Many,
        }
    }

    fn note_changed(&mut self) {
        if let (Some(keys), Some(key)) = (self.changed.as_mut(), self.key.as_ref()) {
            self.changed_bytes += key.len();
            if self.changed_bytes <= MAX_CHANGED_KEY_BYTES {
                keys.push(key.clone());
            } else {
                self.changed_overflow = true;
                self.changed = None;
            }
        }
    }

    /// Limits removal to versions strictly below `floor` (`None`: no limit, the default).
    ///
    /// Pass the `purge_floor` of [`Choice::Merge`](crate::compaction::policy::Choice::Merge):
    /// the oldest version any table above the compaction, or any memtable, might hold for a key
    /// in its range. Removing a dead record at or above it could uncover such a late-arriving
    /// older version (hints, repair), so those records are kept (as tombstones) instead.
    pub(crate) fn with_purge_floor(mut self, floor: Option<Version>) -> Self {
        self.purge_floor = floor;
        self
    }

    /// The next entry the output must hold: `(user_key, version, entry, starts_new_user_key)`,
    /// `None` at the end. `starts_new_user_key` is true on the first output entry of each key,
    /// the only places where the executor may start a new output table.
    ///
    /// # Errors
    /// Propagates the input's I/O and corruption errors; the compaction must then be abandoned.
    pub(crate) fn next_entry(&mut self) -> Result<Option<(Bytes, Version, Entry, bool)>> {
        loop {
            let head = match self.input.current() {
                None => return Ok(None),
                Some((key, version, entry)) => {
                    if self.key.as_deref() == Some(key) {
                        (!self.key_settled).then(|| (version, entry.clone()))
                    } else {
                        self.key = Some(Bytes::copy_from_slice(key));
                        self.key_settled = false;
                        self.key_emitted = false;
                        Some((version, entry.clone()))
                    }
                }
            };
            self.stats.entries_in += 1;
            self.input.advance()?;
            let Some((version, mut entry)) = head else {
                self.stats.dropped_shadowed += 1;
                continue;
            };
            self.collapse_duplicates(version, &mut entry)?;

            if entry.seqno <= self.oldest_snapshot_seqno {
                self.key_settled = true;
                // Removing a dead record must not uncover an older version held outside the
                // compaction; the purge floor bounds what may be held there.
                let may_purge =
                    self.bottommost && self.purge_floor.is_none_or(|floor| version < floor);
                match verdict(version, &entry, self.now_ms, self.gc_grace_ms, may_purge) {
                    Verdict::Keep => {}
                    Verdict::Remove => {
                        self.stats.removed += 1;
                        self.note_changed();
                        continue;
                    }
                    Verdict::ToTombstone => {
                        self.note_changed();
                        entry.value = None;
                        self.stats.expired_to_tombstone += 1;
                    }
                }
            }
            let starts_key = !self.key_emitted;
            self.key_emitted = true;
            self.stats.entries_out += 1;
            // `key` was set when this entry's key was first seen; the default is never used.
            let key = self.key.clone().unwrap_or_default();
            return Ok(Some((key, version, entry, starts_key)));
        }
    }

    /// Consumes the other copies of `(current key, version)` that follow, keeping in `entry` the
    /// one with the lowest seqno.
    fn collapse_duplicates(&mut self, version: Version, entry: &mut Entry) -> Result<()> {
        loop {
            match self.input.current() {
                Some((key, v, e)) if v == version && self.key.as_deref() == Some(key) => {
                    if e.seqno < entry.seqno {
                        *entry = e.clone();
                    }
                }
                _ => return Ok(()),
            }
            self.stats.entries_in += 1;
            self.stats.dropped_duplicates += 1;
            self.input.advance()?;
        }
    }

    /// Counts so far (final once [`next_entry`](Self::next_entry) has returned `None`).
    pub(crate) fn stats(&self) -> StreamStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::error::Error;
    use crate::iter::VecIter;
    use crate::record::compare_internal;

    const NOW: u64 = 10_000;
    const GRACE: u64 = 1_000;

    fn v(hlc_ms: u64) -> Version {
        Version::new(hlc_ms << 16, 0)
    }

    fn val(seqno: u64, expire_at_ms: u64, value: &'static str) -> Entry {
        Entry {
            seqno,
            expire_at_ms,
            value: Some(Bytes::from_static(value.as_bytes())),
        }
    }

    fn tomb(seqno: u64, expire_at_ms: u64) -> Entry {
        Entry {
            seqno,
            expire_at_ms,
            value: None,
        }
    }

    type Item = (Bytes, Version, Entry);

    fn item(key: &'static str, version: Version, entry: Entry) -> Item {
        (Bytes::from_static(key.as_bytes()), version, entry)
    }

    fn sorted(mut items: Vec<Item>) -> Vec<Item> {
        items.sort_by(|a, b| compare_internal(&a.0, a.1, &b.0, b.1));
        items
    }

    fn run(stream: &mut CompactionStream) -> Vec<(Item, bool)> {
        let mut out = Vec::new();
        while let Some((k, ver, e, starts)) = stream.next_entry().expect("vec input cannot fail") {
            out.push(((k, ver, e), starts));
        }
        out
    }

    fn stream(items: Vec<Item>, snapshot: u64, bottommost: bool) -> CompactionStream {
        CompactionStream::new(
            Box::new(VecIter::new(sorted(items))),
            snapshot,
            NOW,
            GRACE,
            bottommost,
        )
    }

    #[test]
    fn without_snapshots_only_each_keys_winner_survives() {
        let mut s = stream(
            vec![
                item("a", v(3), val(7, 0, "a3")),
                item("a", v(2), val(9, 0, "a2")),
                item("a", v(1), val(1, 0, "a1")),
                item("b", v(1), val(2, 0, "b1")),
            ],
            u64::MAX,
            false,
        );
        assert_eq!(
            run(&mut s),
            vec![
                (item("a", v(3), val(7, 0, "a3")), true),
                (item("b", v(1), val(2, 0, "b1")), true),
            ]
        );
        let st = s.stats();
        assert_eq!(
            (st.entries_in, st.entries_out, st.dropped_shadowed),
            (4, 2, 2)
        );
    }

    #[test]
    fn versions_newer_than_the_oldest_snapshot_are_kept_verbatim() {
        // Oldest snapshot at seqno 5. Version 4 (seqno 9) and 3 (seqno 6) arrived after it;
        // version 2 (seqno 4) is what it reads; version 1 is hidden from everyone.
        let mut s = stream(
            vec![
                item("k", v(4), val(9, 0, "v4")),
                item("k", v(3), tomb(6, 0)),
                item("k", v(2), val(4, 0, "v2")),
                item("k", v(1), val(2, 0, "v1")),
                // Late arrival of an old version: seqno 8 > 5, but older than what the snapshot
                // reads, so no reader can ever see it.
                item("k", v(0), val(8, 0, "v0")),
            ],
            5,
            true,
        );
        assert_eq!(
            run(&mut s),
            vec![
                (item("k", v(4), val(9, 0, "v4")), true),
                (item("k", v(3), tomb(6, 0)), false),
                (item("k", v(2), val(4, 0, "v2")), false),
            ]
        );
        assert_eq!(s.stats().dropped_shadowed, 2);
    }

    #[test]
    fn a_key_whose_versions_are_all_newer_than_the_snapshot_keeps_them_all() {
        let items = vec![item("k", v(2), val(9, 0, "x")), item("k", v(1), tomb(8, 0))];
        let mut s = stream(items.clone(), 5, true);
        let out: Vec<Item> = run(&mut s).into_iter().map(|(i, _)| i).collect();
        assert_eq!(out, items);
    }

    #[test]
    fn duplicates_collapse_to_the_lowest_seqno_wherever_it_sits() {
        // Three copies of ("k", v5) in the order the merge yields them (by source, not seqno).
        let input = vec![
            item("k", v(5), val(8, 0, "x")),
            item("k", v(5), val(3, 0, "x")),
            item("k", v(5), val(6, 0, "x")),
            item("k", v(4), val(1, 0, "old")),
        ];
        let mut s = CompactionStream::new(Box::new(VecIter::new(input)), 4, NOW, GRACE, false);
        assert_eq!(run(&mut s), vec![(item("k", v(5), val(3, 0, "x")), true)]);
        let st = s.stats();
        assert_eq!(
            (st.dropped_duplicates, st.dropped_shadowed, st.entries_in),
            (2, 1, 4)
        );
    }

    #[test]
    fn the_oldest_snapshots_version_gets_the_verdict_and_newer_ones_do_not() {
        // Expired at 500 (long past grace at NOW). The newer expired value sits above the
        // snapshot and must stay verbatim; the one the snapshot reads is dead.
        let input = vec![
            item("k", v(2), val(9, 500, "new-expired")),
            item("k", v(1), val(3, 500, "old-expired")),
        ];
        let mut s = stream(input.clone(), 5, false);
        assert_eq!(
            run(&mut s),
            vec![
                (item("k", v(2), val(9, 500, "new-expired")), true),
                (item("k", v(1), tomb(3, 500)), false),
            ]
        );
        assert_eq!(s.stats().expired_to_tombstone, 1);

        let mut s = stream(input, 5, true);
        assert_eq!(
            run(&mut s),
            vec![(item("k", v(2), val(9, 500, "new-expired")), true)]
        );
        assert_eq!(s.stats().removed, 1);
    }

    #[test]
    fn expired_values_turn_into_tombstones_and_are_removed_at_the_bottom_after_grace() {
        let input = vec![
            item("a", v(1), val(1, NOW - GRACE, "gone")), // dead a full grace ago
            item("b", v(1), val(2, NOW - GRACE + 1, "dying")), // dead, still in grace
            item("c", v(1), val(3, NOW + 1, "live")),
            item("d", v(1), tomb(4, 0)),   // deleted at 1 ms: past grace
            item("e", v(NOW), tomb(5, 0)), // deleted now: in grace
        ];
        let mut s = stream(input.clone(), u64::MAX, false).with_changed_keys();
        assert_eq!(
            run(&mut s),
            vec![
                (item("a", v(1), tomb(1, NOW - GRACE)), true),
                (item("b", v(1), tomb(2, NOW - GRACE + 1)), true),
                (item("c", v(1), val(3, NOW + 1, "live")), true),
                (item("d", v(1), tomb(4, 0)), true),
                (item("e", v(NOW), tomb(5, 0)), true),
            ]
        );
        // Rewritten values change their key's answer; kept tombstones do not.
        assert_eq!(
            s.changed(),
            ChangedKeys::These(vec![Bytes::from("a"), Bytes::from("b")])
        );
        let mut s = stream(input, u64::MAX, true).with_changed_keys();
        assert_eq!(
            run(&mut s),
            vec![
                (item("b", v(1), tomb(2, NOW - GRACE + 1)), true),
                (item("c", v(1), val(3, NOW + 1, "live")), true),
                (item("e", v(NOW), tomb(5, 0)), true),
            ]
        );
        let st = s.stats();
        assert_eq!(
            (st.removed, st.expired_to_tombstone, st.entries_out),
            (2, 1, 3)
        );
        assert_eq!(
            s.changed(),
            ChangedKeys::These(vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("d")])
        );
        // Not asked for: "many", so a caller that forgot to ask forgets everything.
        let mut s = stream(vec![item("a", v(1), tomb(1, 0))], u64::MAX, true);
        assert_eq!(run(&mut s), vec![]);
        assert_eq!(s.changed(), ChangedKeys::Many);
    }

    #[test]
    fn the_purge_floor_keeps_dead_records_that_could_hide_a_late_older_version() {
        let input = vec![item("a", v(5), tomb(1, 0)), item("b", v(1), tomb(2, 0))];
        // Something outside the compaction may hold versions from v(3) up.
        let mut s = stream(input, u64::MAX, true).with_purge_floor(Some(v(3)));
        assert_eq!(run(&mut s), vec![(item("a", v(5), tomb(1, 0)), true)]);
        assert_eq!(s.stats().removed, 1);
    }

    #[test]
    fn starts_new_user_key_marks_the_first_output_of_each_key_only() {
        // "a"'s first version is removed, so its first *output* entry is the second version.
        let input = vec![
            item("a", v(9), val(8, 0, "a9")),
            item("a", v(2), tomb(3, 0)),
            item("b", v(1), val(1, 0, "b")),
        ];
        let mut s = stream(input, 5, true);
        let flags: Vec<(Bytes, bool)> =
            run(&mut s).into_iter().map(|((k, ..), f)| (k, f)).collect();
        assert_eq!(
            flags,
            vec![
                (Bytes::from_static(b"a"), true),
                (Bytes::from_static(b"b"), true)
            ]
        );

        let input = vec![
            item("a", v(9), val(8, 0, "a9")),
            item("a", v(2), val(3, 0, "a2")),
            item("b", v(1), val(1, 0, "b")),
        ];
        let mut s = stream(input, 5, true);
        let flags: Vec<bool> = run(&mut s).into_iter().map(|(_, f)| f).collect();
        assert_eq!(flags, vec![true, false, true]);
    }

    #[test]
    fn an_empty_input_yields_nothing() {
        let mut s = stream(Vec::new(), u64::MAX, true);
        assert!(run(&mut s).is_empty());
        assert_eq!(s.stats(), StreamStats::default());
    }

    /// Yields one entry, then fails.
    struct FailingIter {
        entry: Entry,
        done: bool,
    }

    impl EntryIter for FailingIter {
        fn current(&self) -> Option<(&[u8], Version, &Entry)> {
            (!self.done).then_some((b"k".as_slice(), v(1), &self.entry))
        }

        fn advance(&mut self) -> Result<()> {
            self.done = true;
            Err(Error::corruption("000001.sst", 0, "test"))
        }
    }

    #[test]
    fn input_errors_propagate() {
        let input = FailingIter {
            entry: val(1, 0, "x"),
            done: false,
        };
        let mut s = CompactionStream::new(Box::new(input), u64::MAX, NOW, GRACE, false);
        assert!(s.next_entry().is_err());
    }

    /// The model: per key, the highest version; among its copies the lowest seqno; then the
    /// verdict (no snapshots, so it is always the oldest snapshot's version).
    fn model(items: &[Item], bottommost: bool) -> Vec<Item> {
        let mut winners: BTreeMap<Bytes, (Version, Entry)> = BTreeMap::new();
        for (k, ver, e) in items {
            let replace = match winners.get(k) {
                None => true,
                Some((wv, we)) => ver > wv || (ver == wv && e.seqno < we.seqno),
            };
            if replace {
                winners.insert(k.clone(), (*ver, e.clone()));
            }
        }
        let mut out = Vec::new();
        for (k, (ver, mut e)) in winners {
            match verdict(ver, &e, NOW, GRACE, bottommost) {
                Verdict::Keep => out.push((k, ver, e)),
                Verdict::ToTombstone => {
                    e.value = None;
                    out.push((k, ver, e));
                }
                Verdict::Remove => {}
            }
        }
        out
    }

    fn arb_item() -> impl Strategy<Value = Item> {
        (
            0u8..6,
            0u64..(NOW + 2 * GRACE),
            0u32..2,
            0u64..50,
            prop_oneof![Just(0u64), 0u64..(NOW + 2 * GRACE)],
            any::<bool>(),
        )
            .prop_map(|(k, ms, node, seqno, expire_at_ms, is_value)| {
                let value = is_value.then(|| Bytes::from(format!("v{seqno}")));
                (
                    Bytes::from(vec![b'a' + k]),
                    Version::new(ms << 16, node),
                    Entry {
                        seqno,
                        expire_at_ms,
                        value,
                    },
                )
            })
    }

    proptest! {
        #[test]
        fn without_snapshots_the_output_is_the_verdict_on_each_winner(
            items in prop::collection::vec(arb_item(), 0..60),
            bottommost in any::<bool>(),
        ) {
            // Sorting is stable, so copies of a version keep their random relative order.
            let input = sorted(items.clone());
            let mut s = CompactionStream::new(Box::new(VecIter::new(input)), u64::MAX, NOW, GRACE, bottommost);
            let out = run(&mut s);
            let got: Vec<Item> = out.iter().map(|(i, _)| i.clone()).collect();
            prop_assert_eq!(got, model(&items, bottommost));
            prop_assert!(out.iter().all(|(_, starts)| *starts));
            let st = s.stats();
            prop_assert_eq!(st.entries_in, items.len() as u64);
            prop_assert_eq!(
                st.entries_in,
                st.entries_out + st.dropped_shadowed + st.dropped_duplicates + st.removed
            );
        }
    }
}
