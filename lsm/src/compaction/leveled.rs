//! Leveled compaction: which tables to merge down when L0 fills up or a level outgrows its
//! target.
//!
//! Owns the L0 -> L1 trigger and the level-score picker behind [`choose`](super::policy::choose)
//! (after the whole-table drops). Pure like the rest of the policy: reads [`LevelsView`], returns
//! a [`Choice`], and must never choose a busy table or a merge whose output could overlap the
//! output of a compaction already running.
//!
//! # Which table of a level
//!
//! Among the level's tables that are not busy and whose overlap in the next level is not busy
//! either, the one with the **smallest overlap ratio** (bytes overlapping in the next level per
//! byte of the table) is merged down, oldest data (`max_seqno`) first on ties. This is RocksDB's
//! `kMinOverlappingRatio`: it minimizes the bytes rewritten per byte moved down, and a table with
//! nothing beneath it (ratio 0) goes first and becomes a cheap [`Choice::Move`]. It needs no
//! state between calls, unlike a round-robin compaction pointer, so the engine stores nothing.
//!
//! # Space
//!
//! A level merge reads one table plus what it overlaps in the next level. Candidates whose total
//! exceeds [`MAX_MERGE_TABLES`] target-sized tables are passed over while a smaller one exists,
//! so one merge's temporary copy stays small next to the data. L0 -> L1 takes all of L0 and the
//! L1 tables it overlaps, bounded by the stall trigger and L1's target.

use std::cmp::Ordering;

use crate::compaction::policy::{merge, Choice, KeyRange, LevelsView};
use crate::options::Options;
use crate::sstable::meta::TableMeta;

/// A level merge's input is capped at this many times `table_target_bytes` while a smaller
/// candidate exists (RocksDB's `max_compaction_bytes` default uses the same factor).
pub(crate) const MAX_MERGE_TABLES: u64 = 25;

/// The leveled step: L0 -> L1 if L0 is full, else the most oversized level; or
/// [`Choice::DoNothing`].
pub(crate) fn pick(view: &LevelsView<'_>, opts: &Options, now_ms: u64) -> Choice {
    if let Some(choice) = pick_l0(view, opts, now_ms) {
        return choice;
    }
    pick_by_score(view, opts, now_ms).unwrap_or(Choice::DoNothing)
}

/// Whether rewriting `table` would change it, rather than just copying it (so a [`Choice::Move`]
/// would postpone real work): all its values have expired (they shrink to tombstones), or it
/// has tombstones, lands at the bottom, and the oldest of them may be past its grace.
///
/// Metadata cannot see a few expired values among live ones; those are collected when the
/// table is next merged.
fn needs_rewrite(table: &TableMeta, bottommost: bool, opts: &Options, now_ms: u64) -> bool {
    // 0: no values; u64::MAX: some value never expires.
    let values_all_expired = table.max_expire_at_ms != 0
        && table.max_expire_at_ms != u64::MAX
        && table.max_expire_at_ms <= now_ms;
    // A tombstone died no earlier than its version was written.
    let tombstones_purgeable = table.tombstones > 0
        && bottommost
        && table.min_version.millis().saturating_add(opts.gc_grace_ms) <= now_ms;
    values_all_expired || tombstones_purgeable
}

/// L0 -> L1 when at least `l0_compaction_trigger` L0 tables are idle: all of them and every L1
/// table their key range overlaps.
fn pick_l0(view: &LevelsView<'_>, opts: &Options, now_ms: u64) -> Option<Choice> {
    let l0 = view.level(0);
    let inputs: Vec<&TableMeta> = l0.iter().filter(|t| !view.is_busy(t.id)).collect();
    if inputs.is_empty() || inputs.len() < opts.l0_compaction_trigger {
        return None;
    }
    let l0_range = KeyRange::hull(inputs.iter().copied())?;
    let l1: Vec<&TableMeta> = view.overlapping(1, l0_range).collect();
    if l1.iter().any(|t| view.is_busy(t.id)) {
        return None;
    }
    let range = KeyRange::hull(inputs.iter().chain(&l1).copied())?;

    // A running L0 -> L1 merge writes anywhere inside the hull of its inputs, gaps included;
    // overlapping it would leave L1 with overlapping tables. Busy L1 tables of an L1 -> L2
    // merge only make this more cautious.
    if l0.iter().any(|t| view.is_busy(t.id)) {
        let running = KeyRange::hull(
            l0.iter()
                .chain(view.level(1))
                .filter(|t| view.is_busy(t.id)),
        );
        if running.is_some_and(|r| r.intersects(&range)) {
            return None;
        }
    }

    if let ([table], []) = (inputs.as_slice(), l1.as_slice()) {
        let bottommost = !view.overlaps_below(1, range);
        if !needs_rewrite(table, bottommost, opts, now_ms) {
            return Some(Choice::Move {
                level: 0,
                id: table.id,
                to_level: 1,
            });
        }
    }
    Some(merge(view, vec![(0, inputs), (1, l1)], 1))
}

/// The level >= 1 (the last excepted) with the highest size/target score above 1, trying the
/// next best level when every table of the best one is blocked by busy tables. Busy tables do
/// not count towards a level's size: they are already on their way down.
fn pick_by_score(view: &LevelsView<'_>, opts: &Options, now_ms: u64) -> Option<Choice> {
    let last = opts.num_levels.saturating_sub(1);
    let mut scored: Vec<(f64, usize)> = (1..last)
        .filter_map(|level| {
            let bytes: u64 = view
                .level(level)
                .iter()
                .filter(|t| !view.is_busy(t.id))
                .map(|t| t.file_bytes)
                .sum();
            let score = bytes as f64 / opts.level_target_bytes(level).max(1) as f64;
            (score > 1.0).then_some((score, level))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .find_map(|(_, level)| pick_in_level(view, opts, now_ms, level))
}

/// One table of `level` and what it overlaps in `level + 1`.
struct Candidate<'a> {
    table: &'a TableMeta,
    below: Vec<&'a TableMeta>,
    below_bytes: u64,
}

impl Candidate<'_> {
    fn input_bytes(&self) -> u64 {
        self.table.file_bytes.saturating_add(self.below_bytes)
    }

    /// Orders by overlap ratio `below_bytes / table bytes`, ascending, then oldest data first.
    fn cmp_ratio(&self, other: &Self) -> Ordering {
        let mine = u128::from(self.below_bytes) * u128::from(other.table.file_bytes.max(1));
        let theirs = u128::from(other.below_bytes) * u128::from(self.table.file_bytes.max(1));
        mine.cmp(&theirs)
            .then(self.table.max_seqno.cmp(&other.table.max_seqno))
            .then(self.table.id.cmp(&other.table.id))
    }
}

/// Picks the table of `level` to push down (see the module doc) and turns it into a move or a
/// merge; `None` if every table is blocked.
fn pick_in_level(
    view: &LevelsView<'_>,
    opts: &Options,
    now_ms: u64,
    level: usize,
) -> Option<Choice> {
    let candidates: Vec<Candidate<'_>> = view
        .level(level)
        .iter()
        .filter(|t| !view.is_busy(t.id))
        .filter_map(|table| {
            let below: Vec<&TableMeta> = view.overlapping(level + 1, KeyRange::of(table)).collect();
            if below.iter().any(|t| view.is_busy(t.id)) {
                return None;
            }
            let below_bytes = below.iter().map(|t| t.file_bytes).sum();
            Some(Candidate {
                table,
                below,
                below_bytes,
            })
        })
        .collect();
    let cap = opts.table_target_bytes.saturating_mul(MAX_MERGE_TABLES);
    let best = candidates
        .iter()
        .filter(|c| c.input_bytes() <= cap)
        .min_by(|a, b| a.cmp_ratio(b))
        .or_else(|| candidates.iter().min_by_key(|c| c.input_bytes()))?;

    if best.below.is_empty() {
        let bottommost = !view.overlaps_below(level + 1, KeyRange::of(best.table));
        if !needs_rewrite(best.table, bottommost, opts, now_ms) {
            return Some(Choice::Move {
                level,
                id: best.table.id,
                to_level: level + 1,
            });
        }
    }
    Some(merge(
        view,
        vec![(level, vec![best.table]), (level + 1, best.below.clone())],
        level + 1,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::compaction::policy::choose;
    use crate::compaction::policy::tests::{at, expired, opts, table, view, NOW};

    fn l0_tables(n: u64) -> Vec<TableMeta> {
        // Newest first, like the engine keeps L0.
        (0..n)
            .rev()
            .map(|i| table(100 + i, "c", "k", 100, 500 + i * 10, 505 + i * 10))
            .collect()
    }

    #[test]
    fn l0_waits_for_the_trigger_then_merges_with_the_l1_tables_it_overlaps() {
        let busy = HashSet::new();
        let l1 = vec![
            table(1, "a", "b", 100, 1, 2),
            table(2, "b1", "d", 100, 1, 2),
            table(3, "e", "h", 100, 1, 2),
            table(4, "x", "z", 100, 1, 2),
        ];
        let levels = vec![l0_tables(3), l1.clone()];
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::DoNothing
        );

        let levels = vec![l0_tables(4), l1, vec![table(9, "j", "m", 100, 1, 2)]];
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Merge {
                inputs: vec![(0, vec![103, 102, 101, 100]), (1, vec![2, 3])],
                output_level: 1,
                // L2's table 9 overlaps [c, k].
                bottommost: false,
                purge_floor: Some(at(1)),
            }
        );
    }

    #[test]
    fn busy_l0_tables_are_left_out_and_block_an_overlapping_second_merge() {
        let mut l0 = l0_tables(4);
        l0.push(table(200, "m", "p", 100, 400, 401));
        l0.push(table(201, "r", "t", 100, 400, 401));
        let levels = vec![l0, vec![]];

        // 200 and 201 are being merged into L1 somewhere in [m, t]; the idle four do not reach it.
        let busy = HashSet::from([200, 201]);
        match choose(&view(&levels, &busy), &opts(), NOW) {
            Choice::Merge {
                inputs,
                output_level: 1,
                bottommost: true,
                purge_floor: None,
            } => {
                assert_eq!(inputs, vec![(0, vec![103, 102, 101, 100])]);
            }
            other => panic!("expected an L0 merge, got {other:?}"),
        }

        // A running merge over [a, b] and [m, p] may write into the gap between them too.
        let mut l0 = l0_tables(4);
        l0.push(table(200, "a", "b", 100, 400, 401));
        l0.push(table(201, "m", "p", 100, 400, 401));
        let levels = vec![l0, vec![]];
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::DoNothing
        );
    }

    #[test]
    fn a_busy_l1_table_in_the_way_blocks_l0() {
        let levels = vec![l0_tables(4), vec![table(1, "d", "e", 100, 1, 2)]];
        let busy = HashSet::from([1]);
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::DoNothing
        );
    }

    #[test]
    fn a_lone_l0_table_with_nothing_below_moves() {
        let o = Options {
            l0_compaction_trigger: 1,
            ..opts()
        };
        let levels = vec![
            vec![table(7, "a", "c", 100, 1, 2)],
            vec![table(1, "d", "e", 100, 1, 2)],
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &o, NOW),
            Choice::Move {
                level: 0,
                id: 7,
                to_level: 1
            }
        );
    }

    /// L1 (target 10_000) holding `tables`, and L2 below.
    fn oversized_l1(l2: Vec<TableMeta>) -> Vec<Vec<TableMeta>> {
        vec![
            vec![],
            vec![
                table(1, "a", "c", 4_000, 10, 20),
                table(2, "d", "f", 4_000, 10, 20),
                table(3, "g", "i", 4_000, 10, 20),
            ],
            l2,
        ]
    }

    #[test]
    fn the_table_with_the_least_overlap_below_goes_down() {
        let levels = oversized_l1(vec![
            table(11, "a", "b", 3_000, 1, 2),
            table(12, "c", "d", 3_000, 1, 2),
            table(13, "g", "g", 500, 1, 2),
            table(14, "h", "z", 900, 1, 2),
        ]);
        let busy = HashSet::new();
        // Overlaps: 1 -> 11+12 (6_000), 2 -> 12 (3_000), 3 -> 13+14 (1_400).
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Merge {
                inputs: vec![(1, vec![3]), (2, vec![13, 14])],
                output_level: 2,
                bottommost: true,
                purge_floor: None,
            }
        );
        // With 3's overlap busy, the next best (2) is taken.
        let busy = HashSet::from([14]);
        match choose(&view(&levels, &busy), &opts(), NOW) {
            Choice::Merge { inputs, .. } => assert_eq!(inputs, vec![(1, vec![2]), (2, vec![12])]),
            other => panic!("expected a merge, got {other:?}"),
        }
    }

    #[test]
    fn a_table_with_nothing_below_and_no_garbage_moves() {
        let levels = oversized_l1(vec![table(11, "a", "f", 3_000, 1, 2)]);
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Move {
                level: 1,
                id: 3,
                to_level: 2
            }
        );
    }

    #[test]
    fn a_table_with_garbage_is_rewritten_instead_of_moved() {
        let mut levels = oversized_l1(vec![table(11, "a", "f", 3_000, 1, 2)]);
        // Tombstones written at 10 ms: past the 1 s grace at NOW, and L2 is the bottom here.
        levels[1][2].tombstones = 5;
        levels[1][2].max_tombstone_ms = 20;
        let busy = HashSet::new();
        let mut v = view(&levels, &busy);
        v.memtable_min_hlc = Some(at(900).hlc);
        assert_eq!(
            choose(&v, &opts(), NOW),
            Choice::Merge {
                inputs: vec![(1, vec![3])],
                output_level: 2,
                bottommost: true,
                purge_floor: Some(at(900)),
            }
        );
        // Not past grace yet: nothing to gain from rewriting.
        assert_eq!(
            choose(&v, &opts(), 1_005),
            Choice::Move {
                level: 1,
                id: 3,
                to_level: 2
            }
        );
        // All values expired (but not past grace, so not droppable): shrink them to tombstones.
        let mut levels = oversized_l1(vec![table(11, "a", "f", 3_000, 1, 2)]);
        levels[1][2] = TableMeta {
            file_bytes: 4_000,
            ..expired(3, "g", "i", 10, 20, NOW - 1)
        };
        assert!(matches!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Merge {
                output_level: 2,
                ..
            }
        ));
    }

    #[test]
    fn the_most_oversized_level_goes_first_and_the_last_level_never_compacts() {
        let o = opts(); // L1 target 10_000, L2 100_000, L3 is the last level.
        let levels = vec![
            vec![],
            vec![table(1, "a", "b", 11_000, 1, 2)], // score 1.1
            vec![table(2, "c", "d", 150_000, 1, 2)], // score 1.5
            vec![table(3, "e", "f", 9_999_999, 1, 2)], // last level: never scored
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &o, NOW),
            Choice::Move {
                level: 2,
                id: 2,
                to_level: 3
            }
        );
        // The best level blocked entirely: the next one is tried.
        let busy = HashSet::from([2]);
        assert_eq!(
            choose(&view(&levels, &busy), &o, NOW),
            Choice::Move {
                level: 1,
                id: 1,
                to_level: 2
            }
        );
        // Within target everywhere but the last level: nothing.
        let calm = vec![
            vec![],
            vec![],
            vec![],
            vec![table(3, "e", "f", 9_999_999, 1, 2)],
        ];
        assert_eq!(
            choose(&view(&calm, &HashSet::new()), &o, NOW),
            Choice::DoNothing
        );
    }

    #[test]
    fn oversized_merges_are_passed_over_while_a_smaller_one_exists() {
        let o = Options {
            table_target_bytes: 100,
            ..opts()
        };
        // Cap: 25 * 100 = 2_500 bytes. Table 1 has the better ratio (1_000 / 9_000) but a
        // 10_000-byte merge; table 2 (900 / 1_500, 2_400 bytes) fits and is preferred.
        let levels = vec![
            vec![],
            vec![
                table(1, "a", "c", 9_000, 1, 2),
                table(2, "d", "f", 1_500, 1, 2),
            ],
            vec![
                table(11, "a", "a", 1_000, 1, 2),
                table(12, "e", "e", 900, 1, 2),
            ],
        ];
        let busy = HashSet::new();
        match choose(&view(&levels, &busy), &o, NOW) {
            Choice::Merge { inputs, .. } => assert_eq!(inputs, vec![(1, vec![2]), (2, vec![12])]),
            other => panic!("expected a merge, got {other:?}"),
        }
        // Every candidate over the cap: the smallest still makes progress.
        let busy = HashSet::from([12]);
        match choose(&view(&levels, &busy), &o, NOW) {
            Choice::Merge { inputs, .. } => assert_eq!(inputs, vec![(1, vec![1]), (2, vec![11])]),
            other => panic!("expected a merge, got {other:?}"),
        }
    }

    #[test]
    fn bottommost_and_purge_floor_look_past_the_merge() {
        let levels = vec![
            vec![table(50, "b", "b", 100, 3, 900)], // a late old version in L0
            vec![table(1, "a", "c", 20_000, 10, 20)],
            vec![table(11, "a", "b", 100, 1, 2)],
            vec![table(21, "c", "c", 100, 5, 6)],
        ];
        let busy = HashSet::new();
        assert_eq!(
            choose(&view(&levels, &busy), &opts(), NOW),
            Choice::Merge {
                inputs: vec![(1, vec![1]), (2, vec![11])],
                output_level: 2,
                bottommost: false,
                // L0's late version from 3 ms is the oldest thing outside the merge.
                purge_floor: Some(at(3)),
            }
        );
    }
}
