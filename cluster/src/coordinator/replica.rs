//! The replica side: what a node does with a peer's request against its own storage.
//!
//! Owns `Inner::serve` (every [`PeerRequest`] but `Coordinate`, answered synchronously from
//! the local engine), [`NodeHandler`] (the transport's [`Handler`]: clocks, blocking work off
//! the runtime, `Coordinate` handed to this node's coordinator) and the bound on how far a
//! peer's clock may pull ours. The coordinator calls `serve` directly for its own replica, so
//! local and remote replicas run the same code. Must never decide a consistency level: a
//! replica applies or reads what it is told, and versions decide which write wins.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use ringkv_lsm::{ReadMode, Record, Version};
use tracing::warn;

use crate::api::{Consistency, Write};
use crate::coordinator::Inner;
use crate::error::ClusterError;
use crate::hlc::LOGICAL_BITS;
use crate::rpc::{PeerRequest, PeerResponse, RemoteFailure, RemoteFailureKind, Stamped};
use crate::slot::SLOTS;
use crate::storage::{key, SlotKey, SlotRecord, Storage};
use crate::transport::Handler;

/// How far ahead of our wall clock a peer's timestamp may be and still move our clock: a
/// peer with a wildly wrong clock must not drag every later version into the future.
pub const MAX_CLOCK_DRIFT_MS: u64 = 60_000;
/// Most keys a point read serves on the runtime's threads; larger reads move off them.
pub(crate) const MAX_INLINE_READ_KEYS: usize = 64;
/// Most records a range read serves on the runtime's threads.
const MAX_INLINE_RANGE_RECORDS: usize = 1_000;
/// Keys deleted per atomic batch by `Truncate`.
const TRUNCATE_BATCH: usize = 1024;

impl<S: Storage> Inner<S> {
    /// Moves this node's clock past a peer's timestamp, unless it is implausibly far ahead.
    pub(crate) fn observe_peer_clock(&self, remote: u64) {
        let wall = self.clock.now_ms();
        let limit = wall.saturating_add(MAX_CLOCK_DRIFT_MS) << LOGICAL_BITS;
        if remote > limit {
            warn!(
                remote_ms = remote >> LOGICAL_BITS,
                local_ms = wall,
                "ignoring a peer clock more than {MAX_CLOCK_DRIFT_MS} ms ahead of ours"
            );
        } else {
            self.hlc.observe(remote);
        }
    }

    /// Answers `request` from local storage. `Coordinate` is not a replica's job: it is
    /// refused here and handled by [`NodeHandler`].
    pub(crate) fn serve(&self, request: PeerRequest) -> Result<PeerResponse, ClusterError> {
        match request {
            PeerRequest::Read { keys } => self.read_records(&keys).map(PeerResponse::Records),
            PeerRequest::Apply { records } => self.apply(records).map(|()| PeerResponse::Applied),
            PeerRequest::Range {
                start,
                end,
                live_only,
                limit,
            } => self
                .read_range(start, end, live_only, limit)
                .map(PeerResponse::Range),
            PeerRequest::KeyRange {
                spans,
                start,
                end,
                keep,
                with_values,
            } => self
                .key_range(&spans, &start, &end, keep, with_values)
                .map(PeerResponse::Range),
            PeerRequest::CountSlots { slots } => self.count_slots(&slots).map(PeerResponse::Counts),
            PeerRequest::Truncate { hlc, node } => self
                .truncate(Version::new(hlc, node))
                .map(|()| PeerResponse::Done),
            PeerRequest::Coordinate { .. } => Ok(PeerResponse::Failed(RemoteFailure {
                kind: RemoteFailureKind::Refused,
                message: "a replica does not coordinate writes".into(),
            })),
        }
    }

    fn read_records(&self, keys: &[(u16, Bytes)]) -> Result<Vec<Option<Record>>, ClusterError> {
        self.storage.get_many(keys)
    }

    fn apply(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
        self.observe_versions(&records);
        self.storage.write(records)
    }

    /// [`Inner::apply`] for writes that cannot block on an fsync: the records go to the
    /// engine's buffer and share one flush with the writes stored alongside them.
    pub(crate) async fn apply_buffered(
        &self,
        records: Vec<SlotRecord>,
    ) -> Result<(), ClusterError> {
        self.observe_versions(&records);
        self.storage.write_buffered(records)?;
        self.flushes.flush(&self.storage).await
    }

    fn observe_versions(&self, records: &[SlotRecord]) {
        if let Some(max) = records.iter().map(|r| r.record.version.hlc).max() {
            self.observe_peer_clock(max);
        }
    }

    fn read_range(
        &self,
        start: Bound<(u16, Bytes)>,
        end: Bound<(u16, Bytes)>,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<SlotRecord>, ClusterError> {
        let mode = if live_only {
            ReadMode::Live
        } else {
            ReadMode::AllRecords
        };
        let start = position(&start);
        // Never past the user keyspace: system keys are not a peer's business.
        let end = match position(&end) {
            Bound::Included(p) | Bound::Excluded(p) if p.slot < SLOTS => end_bound(&end, p),
            _ => key::user_keyspace_end(),
        };
        if matches!(start, Bound::Included(p) | Bound::Excluded(p) if p.slot >= SLOTS) {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.storage.range(start, end, mode)?.take(limit) {
            out.push(item?);
        }
        Ok(out)
    }

    /// The smallest `keep` live keys between the bounds over the slots of `spans`.
    fn key_range(
        &self,
        spans: &[(u16, u16)],
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        keep: Option<usize>,
        with_values: bool,
    ) -> Result<Vec<SlotRecord>, ClusterError> {
        let mut found: BTreeMap<Bytes, SlotRecord> = BTreeMap::new();
        for &(first, last) in spans {
            self.smallest_keys_in_slots(first, last.min(SLOTS - 1), start, end, keep, &mut found)?;
        }
        Ok(found
            .into_values()
            .map(|mut r| {
                if !with_values {
                    r.record.value = Some(Bytes::new());
                }
                r
            })
            .collect())
    }

    /// Live keys per slot of `slots`, in order. Cost: a walk of each run of requested slots.
    fn count_slots(&self, slots: &[u16]) -> Result<Vec<u64>, ClusterError> {
        let mut wanted = vec![false; usize::from(SLOTS)];
        for &slot in slots {
            if let Some(w) = wanted.get_mut(usize::from(slot)) {
                *w = true;
            }
        }
        let mut counts = vec![0u64; usize::from(SLOTS)];
        let mut slot = 0usize;
        while slot < usize::from(SLOTS) {
            if !wanted[slot] {
                slot += 1;
                continue;
            }
            let run_start = slot;
            while slot < usize::from(SLOTS) && wanted[slot] {
                slot += 1;
            }
            let first = SlotKey::slot_start(run_start as u16);
            let end = if slot >= usize::from(SLOTS) {
                key::user_keyspace_end()
            } else {
                Bound::Excluded(SlotKey::slot_start(slot as u16))
            };
            for item in self
                .storage
                .range(Bound::Included(first), end, ReadMode::Live)?
            {
                counts[usize::from(item?.slot)] += 1;
            }
        }
        Ok(slots
            .iter()
            .map(|&s| counts.get(usize::from(s)).copied().unwrap_or(0))
            .collect())
    }

    /// Tombstones at `version` over every live user key stored here. A key written with a
    /// higher version meanwhile keeps it: the tombstone loses to it, as any older write does.
    fn truncate(&self, version: Version) -> Result<(), ClusterError> {
        self.observe_peer_clock(version.hlc);
        let iter = self.storage.range(
            Bound::Included(SlotKey::slot_start(0)),
            key::user_keyspace_end(),
            ReadMode::Live,
        )?;
        let mut batch = Vec::with_capacity(TRUNCATE_BATCH);
        for item in iter {
            let r = item?;
            if r.record.version >= version {
                continue;
            }
            batch.push(SlotRecord {
                slot: r.slot,
                key: r.key,
                record: Record::tombstone(version),
            });
            if batch.len() == TRUNCATE_BATCH {
                self.storage.write(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.storage.write(batch)?;
        }
        Ok(())
    }
}

/// Whether serving `request` may take long enough (an fsync, a walk) that it must leave the
/// runtime's threads.
pub(crate) fn may_block(request: &PeerRequest, writes_may_block: bool) -> bool {
    match request {
        PeerRequest::Read { keys } => keys.len() > MAX_INLINE_READ_KEYS,
        PeerRequest::Apply { .. } => writes_may_block,
        PeerRequest::Range { limit, .. } => *limit > MAX_INLINE_RANGE_RECORDS,
        PeerRequest::KeyRange { .. }
        | PeerRequest::CountSlots { .. }
        | PeerRequest::Truncate { .. } => true,
        PeerRequest::Coordinate { .. } => false,
    }
}

/// `bound` (whose position is `p`) as an end bound of the same kind.
fn end_bound<'a>(bound: &Bound<(u16, Bytes)>, p: SlotKey<'a>) -> Bound<SlotKey<'a>> {
    match bound {
        Bound::Included(_) => Bound::Included(p),
        _ => Bound::Excluded(p),
    }
}

/// A position bound as the storage takes it.
fn position(bound: &Bound<(u16, Bytes)>) -> Bound<SlotKey<'_>> {
    match bound {
        Bound::Included((slot, key)) => Bound::Included(SlotKey::new(*slot, key)),
        Bound::Excluded((slot, key)) => Bound::Excluded(SlotKey::new(*slot, key)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A boxed future, for the one dynamic call below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A coordinator that leads slots: runs forwarded conditional writes. A trait object so the
/// handler (which the transport owns) and the coordinator (which owns the transport) do not
/// name each other's types.
pub trait WriteLeader: Send + Sync + 'static {
    /// Runs `writes` as their slot's leader at `consistency`.
    fn lead(
        &self,
        writes: Vec<Write>,
        consistency: Consistency,
    ) -> BoxFuture<'_, Result<Vec<bool>, ClusterError>>;
}

/// What a node runs for its peers' requests.
pub struct NodeHandler<S: Storage> {
    inner: Arc<Inner<S>>,
    leader: OnceLock<Arc<dyn WriteLeader>>,
}

impl<S: Storage> NodeHandler<S> {
    pub(crate) fn new(inner: Arc<Inner<S>>) -> Self {
        Self {
            inner,
            leader: OnceLock::new(),
        }
    }

    /// Connects the coordinator that runs forwarded writes (once; later calls are ignored).
    pub fn set_leader(&self, leader: Arc<dyn WriteLeader>) {
        let _ = self.leader.set(leader);
    }
}

impl<S: Storage> Handler for NodeHandler<S> {
    async fn handle(&self, _from: u32, request: Stamped<PeerRequest>) -> Stamped<PeerResponse> {
        let inner = &self.inner;
        inner.observe_peer_clock(request.hlc);
        let body = if inner.is_shutting_down() {
            PeerResponse::Failed(RemoteFailure::from_error(&ClusterError::ShuttingDown))
        } else {
            match request.body {
                PeerRequest::Coordinate {
                    writes,
                    consistency,
                } => match self.leader.get() {
                    Some(leader) => match leader.lead(writes, consistency).await {
                        Ok(flags) => PeerResponse::Written(flags),
                        Err(e) => PeerResponse::Failed(RemoteFailure::from_error(&e)),
                    },
                    None => {
                        PeerResponse::Failed(RemoteFailure::from_error(&ClusterError::ShuttingDown))
                    }
                },
                body => serve_maybe_blocking(inner, body)
                    .await
                    .unwrap_or_else(|e| PeerResponse::Failed(RemoteFailure::from_error(&e))),
            }
        };
        Stamped {
            hlc: inner.hlc.now(),
            body,
        }
    }
}

/// [`Inner::serve`], off the runtime's threads when it may block.
pub(crate) async fn serve_maybe_blocking<S: Storage>(
    inner: &Arc<Inner<S>>,
    request: PeerRequest,
) -> Result<PeerResponse, ClusterError> {
    if !may_block(&request, inner.writes_may_block) {
        return match request {
            PeerRequest::Apply { records } => inner
                .apply_buffered(records)
                .await
                .map(|()| PeerResponse::Applied),
            request => inner.serve(request),
        };
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return inner.serve(request);
    };
    let owned = Arc::clone(inner);
    match runtime.spawn_blocking(move || owned.serve(request)).await {
        Ok(response) => response,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ClusterError::ShuttingDown),
    }
}
