//! Walks of the keyspace across replica sets: `SCAN` steps and `KRANGE`.
//!
//! Owns [`Shared::fetch_span`] (a page of one replica set's slot-ordered records, read at
//! the level and resolved by version), [`Shared::scan`] and [`Shared::range`]. The ring's slot
//! ranges (runs of slots with one replica set) are walked in slot order; a `SCAN` cursor names
//! a slot and a remembered key, never a node, so it survives ring changes. A `KRANGE` whose
//! bounds fix one slot reads that slot's replicas; one across slots asks one live replica per
//! slot range (this node's own where it is one) for its smallest keys and merges them — a
//! range across slots is therefore read as at `ONE` once the level's availability is checked.
//! Must never read the system keyspace and never hold the scan table's lock across a call.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::api::{Level, Response, ScanCursor, SlotRange};
use crate::coordinator::call::Fanout;
use crate::coordinator::level::Operation;
use crate::coordinator::plan::Plan;
use crate::coordinator::range::{self, RangeQuery};
use crate::coordinator::read::newest;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::scan::{make_cursor, split_cursor, HANDLE_BITS};
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::rpc::{PeerRequest, PeerResponse, SlotPosition};
use crate::slot::SLOTS;
use crate::storage::{SlotRecord, Storage};
use crate::transport::Transport;

/// Records fetched per page of a range without a limit.
const PAGE: usize = 1_024;

/// A page of one replica set's records.
pub(crate) struct Fetched {
    /// Live records in `(slot, key)` order.
    pub records: Vec<SlotRecord>,
    /// Where the page stopped when the span may hold more (`None`: the span is exhausted).
    pub resume_after: Option<SlotPosition>,
}

/// The slot range holding `slot`.
pub(crate) fn range_of(ranges: &[SlotRange], slot: u16) -> Option<&SlotRange> {
    let i = ranges.partition_point(|r| r.end < slot);
    ranges.get(i).filter(|r| r.start <= slot)
}

/// The position just past slot `last`.
fn span_end(last: u16) -> Bound<SlotPosition> {
    if last >= SLOTS - 1 {
        Bound::Unbounded
    } else {
        Bound::Excluded((last + 1, Bytes::new()))
    }
}

impl<S: Storage, T: Transport> Shared<S, T> {
    /// Up to `limit` live records from `start` to `end` (positions inside one replica set,
    /// the set of `slot`), read at `level` and resolved by version.
    pub(crate) async fn fetch_span(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        slot: u16,
        start: Bound<SlotPosition>,
        end: Bound<SlotPosition>,
        limit: usize,
        level: Level,
    ) -> Result<Fetched, ClusterError> {
        let limit = limit.max(1);
        let plan = Plan::new(
            state,
            slot,
            state.ring.replicas(slot),
            level,
            Operation::Read,
        )?;
        // One answer is already resolved: it can skip tombstones itself.
        let live_only = plan.required == 1;
        let answers = self
            .gather(
                state,
                plan,
                PeerRequest::Range {
                    start,
                    end,
                    live_only,
                    limit,
                },
                Fanout::Needed,
                &|r| matches!(r, PeerResponse::Range(_)),
            )
            .await?;
        let pages: Vec<Vec<SlotRecord>> = answers
            .into_iter()
            .filter_map(|(_, r)| match r {
                PeerResponse::Range(records) => Some(records),
                _ => None,
            })
            .collect();
        // Each full page may stop at a different key; past the smallest of their last keys
        // some replica's records are unknown, so the merge stops there.
        let cut: Option<SlotPosition> = pages
            .iter()
            .filter(|p| p.len() >= limit)
            .filter_map(|p| p.last().map(|r| (r.slot, r.key.clone())))
            .min();
        let mut merged: BTreeMap<SlotPosition, SlotRecord> = BTreeMap::new();
        for record in pages.into_iter().flatten() {
            let pos = (record.slot, record.key.clone());
            if cut.as_ref().is_some_and(|c| pos > *c) {
                continue;
            }
            let winner = match merged.remove(&pos) {
                Some(old) => {
                    let (slot, key) = (old.slot, old.key.clone());
                    newest(Some(old.record), Some(record.record)).map(|record| SlotRecord {
                        slot,
                        key,
                        record,
                    })
                }
                None => Some(record),
            };
            if let Some(w) = winner {
                merged.insert(pos, w);
            }
        }
        let now = self.inner.clock.now_ms();
        let records = merged
            .into_values()
            .filter(|r| r.record.is_live(now))
            .collect();
        Ok(Fetched {
            records,
            resume_after: cut,
        })
    }

    /// One `SCAN` step: up to `count` keys from `cursor` on, and the cursor after them.
    pub(crate) async fn scan(
        self: &Arc<Self>,
        cursor: ScanCursor,
        count: usize,
        level: Level,
    ) -> Result<Response, ClusterError> {
        let count = count.max(1);
        let state = self.ring_state();
        let (slot, handle) = split_cursor(cursor);
        let mut pos: Bound<SlotPosition> = if cursor.0 == 0 {
            Bound::Included((0, Bytes::new()))
        } else {
            match u16::try_from(slot) {
                // Not a cursor this coordinator hands out: nothing lies beyond the last slot.
                Ok(slot) if slot < SLOTS => match self.inner.scans.lock().get(handle) {
                    Some((known, last)) if known == slot => Bound::Excluded((slot, last)),
                    // Unknown, or a handle since reused for another slot: redo the slot.
                    _ => Bound::Included((slot, Bytes::new())),
                },
                _ => return Ok(scanned(Vec::new(), ScanCursor(0))),
            }
        };
        let mut keys: Vec<Bytes> = Vec::with_capacity(count.min(1024));
        let mut last: Option<(u16, Bytes)> = None;
        let more = loop {
            let slot = match &pos {
                Bound::Included((s, _)) | Bound::Excluded((s, _)) => *s,
                Bound::Unbounded => 0,
            };
            let Some(range) = range_of(&state.topology.ranges, slot).cloned() else {
                return Err(ClusterError::NoReplicas { slot });
            };
            let want = count - keys.len();
            // One more than wanted tells whether anything follows.
            let page = self
                .fetch_span(
                    &state,
                    slot,
                    pos.clone(),
                    span_end(range.end),
                    want + 1,
                    level,
                )
                .await?;
            let mut records = page.records.into_iter();
            for record in records.by_ref().take(want) {
                last = Some((record.slot, record.key.clone()));
                keys.push(record.key);
            }
            if records.next().is_some() {
                break true;
            }
            if let Some(resume) = page.resume_after {
                if keys.len() == count {
                    break true;
                }
                pos = Bound::Excluded(resume);
                continue;
            }
            if range.end >= SLOTS - 1 {
                break false;
            }
            if keys.len() == count {
                // Later slot ranges may hold keys: the next step looks.
                break true;
            }
            pos = Bound::Included((range.end + 1, Bytes::new()));
        };
        if !more {
            return Ok(scanned(keys, ScanCursor(0)));
        }
        let (last_slot, last_key) = match last {
            Some(l) => l,
            // Nothing returned yet but more to come: resume at the next range's start.
            None => match pos {
                Bound::Included((s, _)) | Bound::Excluded((s, _)) => (s, Bytes::new()),
                Bound::Unbounded => (0, Bytes::new()),
            },
        };
        let handle = {
            let mut scans = self.inner.scans.lock();
            let handle = loop {
                let h = self.inner.rng.next_u64() & ((1 << HANDLE_BITS) - 1);
                if h != 0 && !scans.contains(h) {
                    break h;
                }
            };
            scans.insert(handle, last_slot, last_key);
            handle
        };
        Ok(scanned(keys, make_cursor(last_slot, handle)))
    }

    /// Answers a range read (`KRANGE`).
    pub(crate) async fn range(
        self: &Arc<Self>,
        q: RangeQuery,
        level: Level,
    ) -> Result<Response, ClusterError> {
        let keep = q.limit.map(|l| q.offset.saturating_add(l));
        if range::is_empty_range(&q.start, &q.end) || keep == Some(0) {
            return Ok(Response::Entries(Vec::new()));
        }
        let state = self.ring_state();
        let records = match range::single_slot(&q.start, &q.end) {
            Some(slot) => self.range_in_slot(&state, slot, &q, keep, level).await?,
            None => self.range_across_slots(&state, &q, keep, level).await?,
        };
        let entries = records
            .into_iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|r| (r.key, range::stored(r.record, q.with_values)))
            .collect();
        Ok(Response::Entries(entries))
    }

    /// The first `keep` live records between the bounds within one slot, page by page.
    async fn range_in_slot(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        slot: u16,
        q: &RangeQuery,
        keep: Option<usize>,
        level: Level,
    ) -> Result<Vec<SlotRecord>, ClusterError> {
        let at = |b: &Bound<Bytes>, unbounded: Bound<SlotPosition>| match b {
            Bound::Included(k) => Bound::Included((slot, k.clone())),
            Bound::Excluded(k) => Bound::Excluded((slot, k.clone())),
            Bound::Unbounded => unbounded,
        };
        let mut pos = at(&q.start, Bound::Included((slot, Bytes::new())));
        let end = at(&q.end, span_end(slot));
        let mut out = Vec::new();
        loop {
            let want = keep.map_or(PAGE, |k| k - out.len());
            let page = self
                .fetch_span(state, slot, pos, end.clone(), want, level)
                .await?;
            let fetched = page.records.len();
            let last = page.records.last().map(|r| (r.slot, r.key.clone()));
            out.extend(page.records);
            if keep.is_some_and(|k| out.len() >= k) {
                out.truncate(keep.unwrap_or(usize::MAX));
                return Ok(out);
            }
            pos = match (page.resume_after, last) {
                (Some(resume), _) => Bound::Excluded(resume),
                // A page of `want` live records from one replica may not be the end.
                (None, Some(last)) if fetched >= want => Bound::Excluded(last),
                _ => return Ok(out),
            };
        }
    }

    /// The first `keep` live records between the bounds over every slot, in byte order:
    /// one live replica per slot range answers for its ranges, this node first.
    async fn range_across_slots(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        q: &RangeQuery,
        keep: Option<usize>,
        level: Level,
    ) -> Result<Vec<SlotRecord>, ClusterError> {
        // Which node reads which spans.
        let mut by_node: BTreeMap<usize, Vec<(u16, u16)>> = BTreeMap::new();
        for range in &state.topology.ranges {
            let plan = Plan::new(state, range.start, &range.replicas, level, Operation::Read)?;
            let Some(&node) = plan.targets.first() else {
                return Err(ClusterError::NoReplicas { slot: range.start });
            };
            let spans = by_node.entry(node).or_default();
            match spans.last_mut() {
                Some((_, end)) if *end + 1 == range.start => *end = range.end,
                _ => spans.push((range.start, range.end)),
            }
        }
        let mut found: BTreeMap<Bytes, SlotRecord> = BTreeMap::new();
        for (node, spans) in by_node {
            let request = PeerRequest::KeyRange {
                spans,
                start: q.start.clone(),
                end: q.end.clone(),
                keep,
                with_values: q.with_values,
            };
            let records = match self.call_one(state, node, request).await {
                Ok(PeerResponse::Range(records)) => records,
                Ok(PeerResponse::Failed(f)) => {
                    return Err(read_failed(level, &state.member(node).node_id, &f.message))
                }
                Ok(_) => {
                    return Err(read_failed(
                        level,
                        &state.member(node).node_id,
                        "unexpected answer",
                    ))
                }
                Err(reason) => {
                    return Err(read_failed(level, &state.member(node).node_id, &reason))
                }
            };
            for r in records {
                found.insert(r.key.clone(), r);
                if keep.is_some_and(|k| found.len() > k) {
                    found.pop_last();
                }
            }
        }
        Ok(found.into_values().collect())
    }
}

fn scanned(keys: Vec<Bytes>, next: ScanCursor) -> Response {
    Response::Scanned { keys, next }
}

/// A walk that one node could not answer.
pub(crate) fn read_failed(level: Level, node: &str, reason: &str) -> ClusterError {
    ClusterError::QuorumFailed {
        level,
        required: 1,
        answered: 0,
        errors: vec![format!("{node}: {reason}")],
    }
}

#[cfg(test)]
mod tests {
    use super::range_of;
    use crate::api::SlotRange;

    #[test]
    fn range_of_finds_the_run_holding_a_slot() {
        let ranges = vec![
            SlotRange {
                start: 0,
                end: 9,
                replicas: vec![0],
            },
            SlotRange {
                start: 10,
                end: 16383,
                replicas: vec![1],
            },
        ];
        assert_eq!(range_of(&ranges, 0).map(|r| r.start), Some(0));
        assert_eq!(range_of(&ranges, 9).map(|r| r.start), Some(0));
        assert_eq!(range_of(&ranges, 10).map(|r| r.start), Some(10));
        assert_eq!(range_of(&ranges, 16383).map(|r| r.start), Some(10));
        assert!(range_of(&[], 5).is_none());
    }
}
