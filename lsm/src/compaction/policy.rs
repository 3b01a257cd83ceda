//! The compaction decision: given the tables of every level, what to do next.
//!
//! Owns [`Choice`], [`LevelsView`], [`choose`] and [`choose_full`], the whole-table drop rule
//! and the range queries over levels the leveled picker shares. Pure: it reads metadata only and
//! returns data, and must never open a file, take a lock or change the levels. The worker acts on
//! the [`Choice`] (STYLE.md: decide in pure code, act in the worker), so the policy can be driven
//! with no disk at all.
//!
//! # Order of preference
//!
//! 1. [`Choice::Drop`] every table that is entirely dead (values expired, tombstones deleted,
//!    all past `gc_grace_ms`, see [`table_dead`]) and can hide nothing that remains.
//! 2. L0 -> L1 once L0 holds `l0_compaction_trigger` tables not already being compacted.
//! 3. The level >= 1 whose size most exceeds its target, one table at a time (see
//!    [`leveled`](super::leveled)).
//!
//! # Shadowing
//!
//! Versions, not levels, decide which write of a key wins, and old versions can arrive late
//! (hints, repair) into the memtable and L0. So "deeper" does not mean "older": a table `T`
//! *could shadow* a table `X` when their key ranges overlap and `X.min_version <
//! T.max_version`, wherever each sits. Removing `T`, or a dead record of it, would then
//! resurrect whatever `X` holds under it. The same holds for a memtable whose lowest HLC is below
//! `T.max_version`.

use std::collections::HashSet;

use crate::compaction::leveled;
use crate::compaction::ttl::table_dead;
use crate::options::Options;
use crate::record::Version;
use crate::sstable::meta::TableMeta;

/// What the compaction worker should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Nothing needs doing.
    DoNothing,
    /// Delete these tables whole without reading them: every record in them is dead and nothing
    /// they could shadow remains. `(level, table id)` pairs.
    Drop {
        /// The tables to delete, as `(level, table id)`.
        tables: Vec<(usize, u64)>,
    },
    /// Re-link one table into the next level unchanged (nothing overlaps it there, no GC to do).
    Move {
        /// The table's current level.
        level: usize,
        /// The table's id.
        id: u64,
        /// Where it goes: always `level + 1`.
        to_level: usize,
    },
    /// Merge-sort these tables into new tables written to `output_level`, through a
    /// [`CompactionStream`](crate::compaction::stream::CompactionStream) built with
    /// `bottommost` and [`with_purge_floor`](crate::compaction::stream::CompactionStream::with_purge_floor)`(purge_floor)`.
    Merge {
        /// Input tables per level, levels ascending, each level's ids in the view's order.
        inputs: Vec<(usize, Vec<u64>)>,
        /// The level the merged tables go to.
        output_level: usize,
        /// No table in a level below `output_level` overlaps the merged key range, so dead
        /// records past their grace may be removed rather than kept to shadow older versions.
        bottommost: bool,
        /// The lowest version that any table outside the merge overlapping its key range, or
        /// any memtable, might hold (`None`: nothing outside can). Only dead records with a
        /// version strictly below it may be removed: one at or above it might be all that hides
        /// a late-arriving older version.
        purge_floor: Option<Version>,
    },
}

/// The levels as compaction sees them, borrowed from the engine's current version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LevelsView<'a> {
    /// Tables per level. L0 newest first (ranges may overlap); L1 and below sorted by `min_key`
    /// with disjoint ranges. May be shorter than `num_levels`: missing levels are empty.
    pub levels: &'a [Vec<TableMeta>],
    /// Ids of the tables in a running compaction: never chosen, but still counted as present
    /// when deciding what could be shadowed.
    pub busy: &'a HashSet<u64>,
    /// Lowest HLC of any record still in a memtable, the immutable ones awaiting flush included
    /// (`None` if they are all empty): a memtable can hold a LATE, OLD version (hints/repair),
    /// which a dropped newer-but-expired table would otherwise have hidden.
    pub memtable_min_hlc: Option<u64>,
}

/// An inclusive range of user keys, borrowed from table metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyRange<'a> {
    /// Smallest key.
    pub min: &'a [u8],
    /// Largest key.
    pub max: &'a [u8],
}

impl<'a> KeyRange<'a> {
    /// The key range of one table.
    pub(crate) fn of(table: &'a TableMeta) -> Self {
        Self {
            min: &table.min_key,
            max: &table.max_key,
        }
    }

    /// The smallest range covering every table; `None` for no tables.
    pub(crate) fn hull<I: IntoIterator<Item = &'a TableMeta>>(tables: I) -> Option<Self> {
        tables.into_iter().map(Self::of).reduce(|a, b| Self {
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        })
    }

    /// Whether `table`'s range shares a key with this one.
    pub(crate) fn overlaps(&self, table: &TableMeta) -> bool {
        table.overlaps(self.min, self.max)
    }

    /// Whether the two ranges share a key.
    pub(crate) fn intersects(&self, other: &KeyRange<'_>) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

impl<'a> LevelsView<'a> {
    /// The tables of `level` (empty past the last level the view holds).
    pub(crate) fn level(&self, level: usize) -> &'a [TableMeta] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// Whether a running compaction holds the table.
    pub(crate) fn is_busy(&self, id: u64) -> bool {
        self.busy.contains(&id)
    }

    /// The tables of `level` whose ranges overlap `range`, in the level's order. L0 is scanned;
    /// sorted levels are binary-searched, which is why their order is part of the contract.
    pub(crate) fn overlapping<'r>(
        &self,
        level: usize,
        range: KeyRange<'r>,
    ) -> impl Iterator<Item = &'a TableMeta> + 'r
    where
        'a: 'r,
    {
        let tables = self.level(level);
        let candidates = if level == 0 {
            tables
        } else {
            let start = tables.partition_point(|t| t.max_key.as_ref() < range.min);
            let len = tables[start..].partition_point(|t| t.min_key.as_ref() <= range.max);
            &tables[start..start + len]
        };
        candidates.iter().filter(move |t| range.overlaps(t))
    }

    /// Whether any table in a level below `level` overlaps `range`.
    pub(crate) fn overlaps_below(&self, level: usize, range: KeyRange<'_>) -> bool {
        (level + 1..self.levels.len()).any(|l| self.overlapping(l, range).next().is_some())
    }

    /// The lowest version that anything outside `inputs` might hold in `range`: tables of any
    /// level overlapping it, and the memtables (whose keys are unknown, so always counted).
    pub(crate) fn purge_floor(
        &self,
        range: KeyRange<'_>,
        inputs: &HashSet<u64>,
    ) -> Option<Version> {
        let tables = (0..self.levels.len())
            .flat_map(|l| self.overlapping(l, range))
            .filter(|t| !inputs.contains(&t.id))
            .map(|t| t.min_version);
        let memtables = self.memtable_min_hlc.map(|hlc| Version::new(hlc, 0));
        tables.chain(memtables).min()
    }

    /// Checks the documented shape of sorted levels (debug builds only).
    fn debug_check_sorted_levels(&self) {
        for tables in self.levels.iter().skip(1) {
            debug_assert!(
                tables.windows(2).all(|w| w[0].max_key < w[1].min_key),
                "tables of L1 and below must be sorted by key with disjoint ranges"
            );
        }
    }
}

/// The next background compaction step, in the order of preference of the module doc.
pub(crate) fn choose(view: &LevelsView<'_>, opts: &Options, now_ms: u64) -> Choice {
    view.debug_check_sorted_levels();
    if let Some(drop) = pick_drop(view, opts.gc_grace_ms, now_ms) {
        return drop;
    }
    leveled::pick(view, opts, now_ms)
}

/// A full (manual) compaction: every table merged into the last non-empty level (at least L1),
/// with `bottommost = true`.
///
/// Returns [`Choice::DoNothing`] when there are no tables, and also while any table is busy: a
/// full compaction must see every table, so the caller waits for the running compaction to
/// finish and asks again. Peak disk use is about twice the data, inputs and outputs coexisting
/// until the merge commits. `_opts` is taken for symmetry with [`choose`].
pub(crate) fn choose_full(view: &LevelsView<'_>, _opts: &Options) -> Choice {
    view.debug_check_sorted_levels();
    if view.levels.iter().flatten().any(|t| view.is_busy(t.id)) {
        return Choice::DoNothing;
    }
    let Some(last) = view.levels.iter().rposition(|tables| !tables.is_empty()) else {
        return Choice::DoNothing;
    };
    let inputs = view
        .levels
        .iter()
        .enumerate()
        .map(|(level, tables)| (level, tables.iter().collect()))
        .collect();
    merge(view, inputs, last.max(1))
}

/// A merge of `inputs` into `output_level`, with `bottommost` and `purge_floor` derived from
/// the rest of the view. Levels with no tables are left out.
pub(crate) fn merge(
    view: &LevelsView<'_>,
    inputs: Vec<(usize, Vec<&TableMeta>)>,
    output_level: usize,
) -> Choice {
    let Some(range) = KeyRange::hull(inputs.iter().flat_map(|(_, tables)| tables.iter().copied()))
    else {
        return Choice::DoNothing;
    };
    let ids: HashSet<u64> = inputs
        .iter()
        .flat_map(|(_, tables)| tables.iter().map(|t| t.id))
        .collect();
    Choice::Merge {
        bottommost: !view.overlaps_below(output_level, range),
        purge_floor: view.purge_floor(range, &ids),
        output_level,
        inputs: inputs
            .into_iter()
            .filter(|(_, tables)| !tables.is_empty())
            .map(|(level, tables)| (level, tables.iter().map(|t| t.id).collect()))
            .collect(),
    }
}

/// Every non-busy dead table that can hide nothing which stays: [`Choice::Drop`], or `None`.
///
/// Candidates that could shadow a table staying behind (or a memtable) are struck out until
/// none is left to strike: striking one can expose another that relied on it being dropped too.
fn pick_drop(view: &LevelsView<'_>, gc_grace_ms: u64, now_ms: u64) -> Option<Choice> {
    let mut dropping: Vec<(usize, &TableMeta)> = view
        .levels
        .iter()
        .enumerate()
        .flat_map(|(level, tables)| tables.iter().map(move |t| (level, t)))
        .filter(|(_, t)| !view.is_busy(t.id) && table_dead(t, now_ms, gc_grace_ms))
        .collect();
    loop {
        let ids: HashSet<u64> = dropping.iter().map(|(_, t)| t.id).collect();
        let before = dropping.len();
        dropping.retain(|(_, t)| !could_shadow_a_survivor(view, t, &ids));
        if dropping.is_empty() {
            return None;
        }
        if dropping.len() == before {
            return Some(Choice::Drop {
                tables: dropping.iter().map(|(level, t)| (*level, t.id)).collect(),
            });
        }
    }
}

/// Whether `table` might hide an older version held by a memtable or by an overlapping table
/// that is not in `dropping`.
fn could_shadow_a_survivor(
    view: &LevelsView<'_>,
    table: &TableMeta,
    dropping: &HashSet<u64>,
) -> bool {
    let memtable = view
        .memtable_min_hlc
        .is_some_and(|hlc| Version::new(hlc, 0) < table.max_version);
    memtable
        || (0..view.levels.len()).any(|level| {
            view.overlapping(level, KeyRange::of(table))
                .any(|other| !dropping.contains(&other.id) && other.min_version < table.max_version)
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;

    use super::*;

    pub(crate) const NOW: u64 = 1_000_000;

    /// A version written at wall-clock `ms`.
    pub(crate) fn at(ms: u64) -> Version {
        Version::new(ms << 16, 0)
    }

    /// A live table `id` over `[min, max]` of `bytes`, with versions written in `[from_ms, to_ms]`.
    pub(crate) fn table(
        id: u64,
        min: &str,
        max: &str,
        bytes: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> TableMeta {
        TableMeta {
            id,
            file_bytes: bytes,
            min_key: Bytes::copy_from_slice(min.as_bytes()),
            max_key: Bytes::copy_from_slice(max.as_bytes()),
            min_version: at(from_ms),
            max_version: at(to_ms),
            max_seqno: id,
            max_expire_at_ms: u64::MAX,
            max_tombstone_ms: 0,
            records: 100,
            tombstones: 0,
            raw_bytes: bytes,
        }
    }

    /// Like [`table`], but every value expired at `expired_ms`.
    pub(crate) fn expired(
        id: u64,
        min: &str,
        max: &str,
        from_ms: u64,
        to_ms: u64,
        expired_ms: u64,
    ) -> TableMeta {
        TableMeta {
            max_expire_at_ms: expired_ms,
            ..table(id, min, max, 1_000, from_ms, to_ms)
        }
    }

    pub(crate) fn opts() -> Options {
        Options {
            gc_grace_ms: 1_000,
            l0_compaction_trigger: 4,
            l1_target_bytes: 10_000,
            level_size_ratio: 10,
            table_target_bytes: 1_000,
            num_levels: 4,
            ..Options::default()
        }
    }

    pub(crate) fn view<'a>(levels: &'a [Vec<TableMeta>], busy: &'a HashSet<u64>) -> LevelsView<'a> {
        LevelsView {
            levels,
            busy,
            memtable_min_hlc: None,
        }
    }

    #[test]
    fn a_dead_table_with_nothing_older_beneath_is_dropped() {
        // Values expired at 100, long past the 1 s grace at NOW; the other tables are newer.
        let levels = vec![
            vec![table(5, "a", "z", 1_000, 900, 950)],
            vec![
                expired(1, "a", "m", 10, 20, 100),
                table(2, "n", "z", 1_000, 30, 40),
            ],
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Drop {
                tables: vec![(1, 1)]
            }
        );
    }

    #[test]
    fn a_dead_table_over_an_older_overlapping_table_is_kept() {
        // Table 2 holds versions from 5 ms on, older than table 1's newest (20 ms).
        let levels = vec![
            vec![],
            vec![expired(1, "a", "m", 10, 20, 100)],
            vec![table(2, "k", "z", 1_000, 5, 8)],
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::DoNothing
        );

        // Even above it: a late old version flushed to L0 must stay hidden.
        let levels = vec![
            vec![table(2, "k", "z", 1_000, 5, 8)],
            vec![expired(1, "a", "m", 10, 20, 100)],
        ];
        assert!(!matches!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Drop { .. }
        ));

        // A busy table is still there to be resurrected.
        let levels = vec![
            vec![],
            vec![expired(1, "a", "m", 10, 20, 100)],
            vec![table(2, "k", "z", 1_000, 5, 8)],
        ];
        let busy = HashSet::from([2]);
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::DoNothing
        );
    }

    #[test]
    fn older_tables_that_are_dropped_too_do_not_block() {
        // 1 shadows 2, 2 shadows nothing that stays: both go. 3 does not overlap 1.
        let levels = vec![
            vec![],
            vec![
                expired(1, "a", "m", 10, 20, 100),
                table(3, "n", "z", 1_000, 1, 2),
            ],
            vec![expired(2, "c", "d", 1, 5, 100)],
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Drop {
                tables: vec![(1, 1), (2, 2)]
            }
        );
    }

    #[test]
    fn striking_one_candidate_strikes_those_relying_on_it() {
        // 2 (dead) shadows 3 (live): 2 stays, so 1 (dead, over 2) must stay too.
        let levels = vec![
            vec![],
            vec![expired(1, "a", "c", 10, 20, 100)],
            vec![expired(2, "b", "d", 5, 9, 100)],
            vec![table(3, "d", "e", 1_000, 1, 2)],
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::DoNothing
        );
    }

    #[test]
    fn the_memtable_floor_blocks_a_drop_that_could_resurrect_its_records() {
        let levels = vec![vec![], vec![expired(1, "a", "m", 10, 20, 100)]];
        let busy = HashSet::new();
        let mut v = view(&levels, &busy);
        v.memtable_min_hlc = Some(at(15).hlc);
        assert_eq!(choose(&v, &opts(), NOW), Choice::DoNothing);
        v.memtable_min_hlc = Some(at(21).hlc);
        assert_eq!(
            choose(&v, &opts(), NOW),
            Choice::Drop {
                tables: vec![(1, 1)]
            }
        );
    }

    #[test]
    fn dead_tables_wait_for_grace_and_busy_ones_are_skipped() {
        let o = opts();
        let levels = vec![
            vec![],
            vec![expired(1, "a", "m", 10, 20, NOW - o.gc_grace_ms + 1)],
        ];
        let busy = HashSet::new();
        assert_eq!(choose(&view(&levels, &busy), &o, NOW), Choice::DoNothing);
        assert_eq!(
            choose(&view(&levels, &busy), &o, NOW + 1),
            Choice::Drop {
                tables: vec![(1, 1)]
            }
        );
        let busy = HashSet::from([1]);
        assert_eq!(
            choose(&view(&levels, &busy), &o, NOW + 1),
            Choice::DoNothing
        );
    }

    #[test]
    fn full_compaction_merges_everything_into_the_last_non_empty_level() {
        let levels = vec![
            vec![
                table(7, "a", "z", 100, 50, 60),
                table(6, "b", "c", 100, 40, 45),
            ],
            vec![table(1, "a", "f", 100, 1, 2), table(2, "g", "p", 100, 1, 2)],
            vec![table(3, "c", "x", 100, 1, 2)],
            vec![],
        ];
        let busy = HashSet::new();
        let mut v = view(&levels, &busy);
        v.memtable_min_hlc = Some(at(70).hlc);
        assert_eq!(
            choose_full(&v, &opts()),
            Choice::Merge {
                inputs: vec![(0, vec![7, 6]), (1, vec![1, 2]), (2, vec![3])],
                output_level: 2,
                bottommost: true,
                purge_floor: Some(at(70)),
            }
        );
        let busy = HashSet::from([2]);
        assert_eq!(
            choose_full(&view(&levels, &busy), &opts()),
            Choice::DoNothing
        );
    }

    #[test]
    fn full_compaction_of_l0_alone_goes_to_l1_and_of_nothing_does_nothing() {
        let levels = vec![vec![table(1, "a", "b", 10, 1, 2)], vec![]];
        let busy = HashSet::new();
        assert_eq!(
            choose_full(&view(&levels, &busy), &opts()),
            Choice::Merge {
                inputs: vec![(0, vec![1])],
                output_level: 1,
                bottommost: true,
                purge_floor: None,
            }
        );
        let empty = vec![vec![], vec![]];
        assert_eq!(
            choose_full(&view(&empty, &busy), &opts()),
            Choice::DoNothing
        );
        assert_eq!(choose_full(&view(&[], &busy), &opts()), Choice::DoNothing);
    }

    #[test]
    fn overlap_queries_binary_search_sorted_levels() {
        let levels = vec![
            vec![table(9, "m", "n", 1, 1, 1), table(8, "a", "b", 1, 1, 1)],
            vec![
                table(1, "a", "c", 1, 1, 1),
                table(2, "d", "f", 1, 1, 1),
                table(3, "g", "i", 1, 1, 1),
                table(4, "j", "l", 1, 1, 1),
            ],
        ];
        let busy = HashSet::new();
        let v = view(&levels, &busy);
        let ids = |level, min: &'static str, max: &'static str| -> Vec<u64> {
            v.overlapping(
                level,
                KeyRange {
                    min: min.as_bytes(),
                    max: max.as_bytes(),
                },
            )
            .map(|t| t.id)
            .collect()
        };
        assert_eq!(ids(1, "c", "g"), vec![1, 2, 3]);
        assert_eq!(ids(1, "ca", "cz"), Vec::<u64>::new());
        assert_eq!(ids(1, "l", "z"), vec![4]);
        assert_eq!(ids(1, "0", "a"), vec![1]);
        assert_eq!(ids(0, "b", "m"), vec![9, 8]);
        assert_eq!(ids(5, "a", "z"), Vec::<u64>::new());
        assert!(v.overlaps_below(
            0,
            KeyRange {
                min: b"e",
                max: b"e"
            }
        ));
        assert!(!v.overlaps_below(
            1,
            KeyRange {
                min: b"a",
                max: b"z"
            }
        ));
    }
}
