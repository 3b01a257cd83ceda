//! `KRANGE`'s pieces: its query, its bounds, and a replica's smallest keys over slot spans.
//!
//! Owns [`RangeQuery`], [`single_slot`] and the replica-side walk behind
//! `PeerRequest::KeyRange` (the coordinator's side is in `walk`). Storage is slot-major, so byte order across the whole
//! keyspace is a merge of every slot's ordered stream. When both bounds begin with the same
//! hash-tagged prefix (`{user1}a` .. `{user1}z`), every key between them has that tag, so the
//! read touches one slot. Otherwise the slots are visited one after another with a seek each
//! (an empty slot costs nothing: the seek lands in the next non-empty one), and a bounded
//! ordered map keeps the `offset + limit` smallest keys seen, so a slot's stream is abandoned
//! as soon as its keys can no longer make the cut. Cost: about one or two seeks per slot that
//! holds keys, plus the keys read; memory: `offset + limit` entries (the whole answer when
//! there is no limit). Must never open all slots' iterators at once.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use ringkv_lsm::{ReadMode, Record};

use crate::api::StoredValue;
use crate::coordinator::Inner;
use crate::error::ClusterError;
use crate::slot::{hash_tag_span, key_slot, SLOTS};
use crate::storage::{key, SlotKey, SlotRecord, Storage};

/// A range read's parameters, as `Request::Range` carries them.
pub struct RangeQuery {
    /// Lower bound.
    pub start: Bound<Bytes>,
    /// Upper bound.
    pub end: Bound<Bytes>,
    /// Entries to skip.
    pub offset: usize,
    /// Most entries to return.
    pub limit: Option<usize>,
    /// Whether values are wanted.
    pub with_values: bool,
}

/// The slot every key between the bounds is in, when the bounds fix one: both bounded and
/// both starting with the same prefix that ends with a hash tag. (Sharing a tag is not
/// enough: `a{x}` and `c{x}` have `b` between them.)
pub fn single_slot(start: &Bound<Bytes>, end: &Bound<Bytes>) -> Option<u16> {
    let (Bound::Included(s) | Bound::Excluded(s)) = start else {
        return None;
    };
    let (Bound::Included(e) | Bound::Excluded(e)) = end else {
        return None;
    };
    let (_, close) = hash_tag_span(s)?;
    e.starts_with(&s[..=close]).then(|| key_slot(s))
}

/// Whether no key can lie between the bounds.
pub(crate) fn is_empty_range(start: &Bound<Bytes>, end: &Bound<Bytes>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s >= e
        }
        _ => false,
    }
}

fn after_start(key: &[u8], start: &Bound<Bytes>) -> bool {
    match start {
        Bound::Included(s) => key >= s.as_ref(),
        Bound::Excluded(s) => key > s.as_ref(),
        Bound::Unbounded => true,
    }
}

fn past_end(key: &[u8], end: &Bound<Bytes>) -> bool {
    match end {
        Bound::Included(e) => key > e.as_ref(),
        Bound::Excluded(e) => key >= e.as_ref(),
        Bound::Unbounded => false,
    }
}

/// A live record as the API shows it; `None` when values were not asked for.
pub(crate) fn stored(record: Record, with_value: bool) -> Option<StoredValue> {
    if !with_value {
        return None;
    }
    Some(StoredValue {
        value: record.value?,
        expire_at_ms: record.expire_at_ms,
        version: record.version,
    })
}

impl<S: Storage> Inner<S> {
    /// Adds to `found` the smallest keys (at most `keep`, all when `None`) between the bounds
    /// in slots `first..=last`, visiting the slots one after another with a seek each (an
    /// empty slot costs nothing: the seek lands in the next non-empty one).
    pub(crate) fn smallest_keys_in_slots(
        &self,
        first: u16,
        last: u16,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        keep: Option<usize>,
        found: &mut BTreeMap<Bytes, SlotRecord>,
    ) -> Result<(), ClusterError> {
        let span_end = if last + 1 >= SLOTS {
            key::user_keyspace_end()
        } else {
            Bound::Excluded(SlotKey::slot_start(last + 1))
        };
        let mut slot = first;
        'slots: while slot <= last {
            let seek = match start {
                Bound::Included(s) => Bound::Included(SlotKey::new(slot, s)),
                Bound::Excluded(s) => Bound::Excluded(SlotKey::new(slot, s)),
                Bound::Unbounded => Bound::Included(SlotKey::slot_start(slot)),
            };
            // Open to the end of the span rather than of `slot`: when `slot` has no key in
            // range, the same seek finds the next slot that has any.
            let iter = self.storage.range(seek, span_end, ReadMode::Live)?;
            for item in iter {
                let r = item?;
                if r.slot != slot {
                    // Every slot in between is empty.
                    slot = r.slot;
                    if !after_start(&r.key, start) {
                        continue 'slots; // seek to the start bound within the new slot
                    }
                }
                let full = keep.is_some_and(|k| found.len() >= k);
                let beyond_cut =
                    full && found.last_key_value().is_some_and(|(max, _)| r.key >= *max);
                if past_end(&r.key, end) || beyond_cut {
                    slot += 1;
                    continue 'slots;
                }
                found.insert(r.key.clone(), r);
                if keep.is_some_and(|k| found.len() > k) {
                    found.pop_last();
                }
            }
            // The stream ran out: no later slot of the span has keys either.
            break;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(s: &'static str) -> Bound<Bytes> {
        Bound::Included(Bytes::from_static(s.as_bytes()))
    }

    fn exc(s: &'static str) -> Bound<Bytes> {
        Bound::Excluded(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn shared_tagged_prefix_means_one_slot() {
        assert_eq!(
            single_slot(&inc("{user1}a"), &exc("{user1}z")),
            Some(key_slot(b"user1"))
        );
        assert_eq!(
            single_slot(&inc("x{u}"), &inc("x{u}\u{7f}")),
            Some(key_slot(b"u"))
        );
    }

    #[test]
    fn a_shared_tag_without_a_shared_prefix_is_not_one_slot() {
        assert_eq!(single_slot(&inc("a{x}"), &inc("c{x}")), None);
        assert_eq!(single_slot(&inc("{x}a"), &Bound::Unbounded), None);
        assert_eq!(single_slot(&Bound::Unbounded, &inc("{x}a")), None);
        assert_eq!(single_slot(&inc("{x}a"), &inc("{y}a")), None);
        assert_eq!(single_slot(&inc("{}a"), &inc("{}b")), None);
    }

    #[test]
    fn empty_ranges_are_recognised() {
        assert!(is_empty_range(&inc("b"), &inc("a")));
        assert!(is_empty_range(&inc("a"), &exc("a")));
        assert!(is_empty_range(&exc("a"), &inc("a")));
        assert!(!is_empty_range(&inc("a"), &inc("a")));
        assert!(!is_empty_range(&Bound::Unbounded, &inc("a")));
    }
}
