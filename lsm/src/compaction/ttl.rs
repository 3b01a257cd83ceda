//! Per-record and per-table fate at compaction time: expiry and tombstone garbage collection.
//!
//! Owns [`Verdict`], [`verdict`] (what happens to the version of a key that the oldest snapshot
//! sees) and [`table_dead`] (whether a whole table holds nothing but garbage). Pure functions of
//! the record and the clock: they must never look at other records, files or snapshots. Whether
//! removing something could uncover an older version elsewhere is the caller's question, answered
//! through the `bottommost` flag.
//!
//! # The one rule
//!
//! A record is *dead* once it reads as absent: a tombstone, or a value whose `expire_at_ms` has
//! passed. It died at [`deletion_ms`]. A dead record is only forgotten (removed) when nothing
//! below it could hold an older version of its key **and** `gc_grace_ms` has passed since it
//! died. The grace applies to expired values exactly as to tombstones: until then a replica that
//! missed the expiring write may still hold an older value, and anti-entropy must find the dead
//! record here (as a tombstone) to overwrite it, not an empty slot it would fill with the old
//! value. Before that, an expired value is shrunk to a tombstone that keeps its version and
//! expiry, so its grace still counts from when it expired.

use crate::record::{Entry, Version};
use crate::sstable::meta::TableMeta;

/// What compaction does with the version of a key that the oldest snapshot sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it out unchanged.
    Keep,
    /// Drop it: nothing needs it any more.
    Remove,
    /// Write a tombstone in its place, keeping its version, seqno and `expire_at_ms`.
    ToTombstone,
}

/// When a dead record died, in unix ms: the later of its write time (the version's wall-clock
/// part) and its expiry. `None` while it is a live value at `now_ms`.
///
/// Taking the later of the two makes a value written with an expiry already in the past (or by a
/// node whose clock runs ahead) count as dying when it was written, never earlier.
pub(crate) fn deletion_ms(version: Version, entry: &Entry, now_ms: u64) -> Option<u64> {
    if entry.is_tombstone() || entry.is_expired(now_ms) {
        Some(version.millis().max(entry.expire_at_ms))
    } else {
        None
    }
}

/// The fate of the winning (visible) entry of a key at compaction time.
///
/// `bottommost` must be true only when no table outside this compaction, and no memtable, could
/// hold an older version of the key: removing the record would otherwise resurrect that version.
pub(crate) fn verdict(
    version: Version,
    entry: &Entry,
    now_ms: u64,
    gc_grace_ms: u64,
    bottommost: bool,
) -> Verdict {
    let Some(died_ms) = deletion_ms(version, entry, now_ms) else {
        return Verdict::Keep;
    };
    if bottommost && died_ms.saturating_add(gc_grace_ms) <= now_ms {
        Verdict::Remove
    } else if entry.is_tombstone() {
        Verdict::Keep
    } else {
        Verdict::ToTombstone
    }
}

/// Whether every record of the table is dead and past its grace at `now_ms`, judged from the
/// table's metadata alone (values expired, tombstones deleted, both at least `gc_grace_ms` ago).
///
/// Such a table can be deleted whole once nothing it could shadow remains; checking that is the
/// policy's job. This is [`TableMeta::fully_expired`] with the grace applied to expired values
/// too (see the module doc), and with each value's write time bounding its death from below, as
/// [`deletion_ms`] does.
pub(crate) fn table_dead(meta: &TableMeta, now_ms: u64, gc_grace_ms: u64) -> bool {
    let Some(horizon_ms) = now_ms.checked_sub(gc_grace_ms) else {
        return false;
    };
    // u64::MAX marks a value that never expires, whatever the clock says.
    meta.max_expire_at_ms != u64::MAX
        && meta.fully_expired(horizon_ms, 0)
        && meta.max_version.millis() <= horizon_ms
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A version written at wall-clock `ms`.
    fn at(ms: u64) -> Version {
        Version::new(ms << 16, 1)
    }

    fn value(expire_at_ms: u64) -> Entry {
        Entry {
            seqno: 1,
            expire_at_ms,
            value: Some(Bytes::from_static(b"v")),
        }
    }

    fn tombstone(expire_at_ms: u64) -> Entry {
        Entry {
            seqno: 1,
            expire_at_ms,
            value: None,
        }
    }

    #[test]
    fn live_values_are_kept_everywhere() {
        for bottommost in [false, true] {
            assert_eq!(
                verdict(at(10), &value(0), 1_000_000, 0, bottommost),
                Verdict::Keep
            );
            assert_eq!(
                verdict(at(10), &value(501), 500, 0, bottommost),
                Verdict::Keep
            );
        }
    }

    #[test]
    fn expired_values_become_tombstones_until_bottommost_and_past_grace() {
        let e = value(500);
        // Expiry is inclusive: at exactly expire_at_ms the value is dead.
        assert_eq!(verdict(at(10), &e, 500, 100, false), Verdict::ToTombstone);
        assert_eq!(verdict(at(10), &e, 500, 100, true), Verdict::ToTombstone);
        assert_eq!(verdict(at(10), &e, 599, 100, true), Verdict::ToTombstone);
        assert_eq!(verdict(at(10), &e, 600, 100, true), Verdict::Remove);
        assert_eq!(
            verdict(at(10), &e, 10_000, 100, false),
            Verdict::ToTombstone
        );
        // No grace: removed as soon as it expires, at the bottom.
        assert_eq!(verdict(at(10), &e, 500, 0, true), Verdict::Remove);
    }

    #[test]
    fn tombstones_are_removed_only_at_the_bottom_after_grace() {
        let t = tombstone(0);
        assert_eq!(verdict(at(1_000), &t, 1_099, 100, true), Verdict::Keep);
        assert_eq!(verdict(at(1_000), &t, 1_100, 100, true), Verdict::Remove);
        assert_eq!(verdict(at(1_000), &t, 9_999, 100, false), Verdict::Keep);
    }

    #[test]
    fn a_tombstone_made_from_an_expired_value_counts_grace_from_its_expiry() {
        // Written at 1_000, expired at 5_000: dead since 5_000.
        let t = tombstone(5_000);
        assert_eq!(verdict(at(1_000), &t, 5_099, 100, true), Verdict::Keep);
        assert_eq!(verdict(at(1_000), &t, 5_100, 100, true), Verdict::Remove);
    }

    #[test]
    fn death_is_never_before_the_write() {
        // Expiry before the write time: dead since the write.
        assert_eq!(deletion_ms(at(1_000), &value(10), 2_000), Some(1_000));
        assert_eq!(deletion_ms(at(1_000), &value(3_000), 2_000), None);
        assert_eq!(deletion_ms(at(1_000), &tombstone(0), 0), Some(1_000));
        assert_eq!(
            verdict(at(1_000), &value(10), 1_099, 100, true),
            Verdict::ToTombstone
        );
        assert_eq!(
            verdict(at(1_000), &value(10), 1_100, 100, true),
            Verdict::Remove
        );
    }

    #[test]
    fn huge_grace_does_not_overflow() {
        assert_eq!(
            verdict(at(1), &tombstone(0), u64::MAX - 1, u64::MAX, true),
            Verdict::Keep
        );
    }

    fn meta(
        max_version: Version,
        max_expire_at_ms: u64,
        tombstones: u64,
        max_tombstone_ms: u64,
    ) -> TableMeta {
        TableMeta {
            id: 1,
            file_bytes: 100,
            min_key: Bytes::from_static(b"a"),
            max_key: Bytes::from_static(b"z"),
            min_version: at(0),
            max_version,
            max_seqno: 1,
            max_expire_at_ms,
            max_tombstone_ms,
            records: 10,
            tombstones,
            raw_bytes: 100,
        }
    }

    #[test]
    fn a_table_is_dead_once_values_and_tombstones_are_past_grace() {
        // Values expiring at 500, written by 100, tombstones deleted at 300.
        let m = meta(at(100), 500, 2, 300);
        assert!(!table_dead(&m, 499, 0));
        assert!(table_dead(&m, 500, 0));
        assert!(!table_dead(&m, 599, 100));
        assert!(table_dead(&m, 600, 100));
        // A value that never expires keeps the table alive.
        assert!(!table_dead(&meta(at(100), u64::MAX, 0, 0), u64::MAX, 0));
        // Tombstones only: their grace alone decides.
        let t = meta(at(300), 0, 5, 300);
        assert!(!table_dead(&t, 399, 100));
        assert!(table_dead(&t, 400, 100));
        // Now earlier than the grace period: nothing can be past it.
        assert!(!table_dead(&t, 50, 100));
    }

    #[test]
    fn a_value_expiring_before_its_write_dies_at_the_write() {
        // Expiry 10 but written at 1_000.
        let m = meta(at(1_000), 10, 0, 0);
        assert!(!table_dead(&m, 1_099, 100));
        assert!(table_dead(&m, 1_100, 100));
    }
}
