//! Writes that share one flush: buffered local writes wait for a group flush instead of each
//! paying a `write(2)`.
//!
//! Owns [`FlushGroups`]. A writer that stored its records with
//! [`Storage::write_buffered`] calls [`FlushGroups::flush`]: the first to find no open group
//! opens one and yields once to the runtime, so that the other connections and peers whose
//! requests are ready store theirs meanwhile; then it closes the group and flushes the storage
//! once for everyone in it, and the others wait for that flush's outcome. Redis does the same
//! with its AOF buffer, written once per event-loop turn before any reply goes out. Must never
//! let a writer return before a flush that started after its write, and never leave a group
//! without its flush (a leader whose request is cancelled flushes as it is dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::error::ClusterError;
use crate::storage::Storage;

/// The flush group writers are joining now, if any.
#[derive(Default)]
pub(crate) struct FlushGroups {
    open: Mutex<Option<Arc<Group>>>,
}

/// One flush and the writers waiting for it. A plain mutex and a list of wakers: a group is
/// told its outcome exactly once, which is all a `watch` channel did here, at several times
/// the instructions per writer.
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
}

#[derive(Default)]
struct GroupState {
    /// `None` until the flush ran; then its outcome (the failure's text: every member gets it).
    outcome: Option<Result<(), String>>,
    /// Members waiting for the outcome. A member that gives up leaves its waker behind: waking
    /// a task that no longer waits is harmless, and the group is dropped after its flush.
    waiters: Vec<Waker>,
}

impl Group {
    /// Records the outcome and wakes every member.
    fn finish(&self, outcome: Result<(), String>) {
        let waiters = {
            let mut state = self.state.lock();
            state.outcome = Some(outcome);
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

/// A member's wait for its group's outcome.
struct Outcome<'a> {
    group: &'a Group,
    /// Where this member's waker sits in the group's list, once it is there.
    waiter: Option<usize>,
}

impl Future for Outcome<'_> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.group.state.lock();
        if let Some(outcome) = &state.outcome {
            return Poll::Ready(outcome.clone());
        }
        match self.waiter {
            Some(i) => {
                if let Some(waker) = state.waiters.get_mut(i) {
                    waker.clone_from(cx.waker());
                }
            }
            None => {
                state.waiters.push(cx.waker().clone());
                let i = state.waiters.len() - 1;
                drop(state);
                self.waiter = Some(i);
            }
        }
        Poll::Pending
    }
}

impl FlushGroups {
    /// Returns once a flush of `storage` that started after this call has finished.
    ///
    /// # Errors
    /// The flush's failure: the leader gets the storage's own error, the others a storage
    /// error with the same text.
    pub(crate) async fn flush<S: Storage>(&self, storage: &S) -> Result<(), ClusterError> {
        let (group, lead) = {
            let mut open = self.open.lock();
            match &*open {
                Some(group) => (Arc::clone(group), false),
                None => {
                    let group = Arc::new(Group::default());
                    *open = Some(Arc::clone(&group));
                    (group, true)
                }
            }
        };
        if lead {
            let mut turn = LeaderTurn {
                groups: self,
                group: &group,
                storage,
                finished: false,
            };
            tokio::task::yield_now().await;
            return turn.finish();
        }
        // The leader (or its guard, if its request is dropped) always reports the outcome.
        let outcome = Outcome {
            group: &group,
            waiter: None,
        }
        .await;
        outcome.map_err(|reason| ClusterError::Storage(ringkv_lsm::Error::Poisoned { reason }))
    }
}

/// A group leader's duty: close the group, flush, tell the members. Done by `finish`, or on
/// drop if the leader's future is dropped while it yields.
struct LeaderTurn<'a, S: Storage> {
    groups: &'a FlushGroups,
    group: &'a Arc<Group>,
    storage: &'a S,
    finished: bool,
}

impl<S: Storage> LeaderTurn<'_, S> {
    fn finish(&mut self) -> Result<(), ClusterError> {
        self.finished = true;
        {
            let mut open = self.groups.open.lock();
            if open.as_ref().is_some_and(|g| Arc::ptr_eq(g, self.group)) {
                *open = None;
            }
        }
        // After the close: a writer that joined this group wrote before it joined.
        let mut on_panic = FailOnUnwind {
            group: Some(self.group),
        };
        let result = self.storage.flush_writes();
        on_panic.group = None;
        let outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        self.group.finish(outcome);
        result
    }
}

/// Fails the group's members if the flush panics: they would otherwise wait forever, holding
/// their keys' locks.
struct FailOnUnwind<'a> {
    group: Option<&'a Arc<Group>>,
}

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            group.finish(Err("the group's WAL flush panicked".to_string()));
        }
    }
}

impl<S: Storage> Drop for LeaderTurn<'_, S> {
    fn drop(&mut self) {
        if !self.finished {
            // The members still wait for this flush; its outcome is theirs to report.
            let _ = self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::storage::SlotRecord;

    /// An engine that counts its flushes (and can fail them), to see how writers share them.
    struct Counting {
        db: ringkv_lsm::Db,
        flushes: AtomicUsize,
        fail: bool,
        panics: bool,
    }

    impl Counting {
        fn over(dir: &std::path::Path, fail: bool) -> Self {
            let opts = ringkv_lsm::Options::default().with_fsync(ringkv_lsm::FsyncMode::Periodic {
                interval_ms: 60_000,
            });
            Counting {
                db: ringkv_lsm::Db::open(dir, opts).expect("open"),
                flushes: AtomicUsize::new(0),
                fail,
                panics: false,
            }
        }
    }

    impl Storage for Counting {
        type Iter = <ringkv_lsm::Db as Storage>::Iter;

        fn get(&self, slot: u16, key: &[u8]) -> Result<Option<ringkv_lsm::Record>, ClusterError> {
            Storage::get(&self.db, slot, key)
        }

        fn write(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
            Storage::write(&self.db, records)
        }

        fn write_buffered(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
            Storage::write_buffered(&self.db, records)
        }

        fn flush_writes(&self) -> Result<(), ClusterError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            assert!(!self.panics, "a bug in the flush");
            if self.fail {
                return Err(ClusterError::Storage(ringkv_lsm::Error::Poisoned {
                    reason: "disk on fire".into(),
                }));
            }
            Storage::flush_writes(&self.db)
        }

        fn range(
            &self,
            start: std::ops::Bound<crate::storage::SlotKey<'_>>,
            end: std::ops::Bound<crate::storage::SlotKey<'_>>,
            mode: ringkv_lsm::ReadMode,
        ) -> Result<Self::Iter, ClusterError> {
            Storage::range(&self.db, start, end, mode)
        }

        fn stats(&self) -> ringkv_lsm::Stats {
            Storage::stats(&self.db)
        }

        fn max_hlc(&self) -> Result<u64, ClusterError> {
            Storage::max_hlc(&self.db)
        }

        fn shutdown(&self) -> Result<(), ClusterError> {
            Ok(())
        }
    }

    fn record(i: u64) -> Vec<SlotRecord> {
        vec![SlotRecord {
            slot: 1,
            key: format!("k{i}").into(),
            record: ringkv_lsm::Record::value(ringkv_lsm::Version::new(i + 1, 0), "v"),
        }]
    }

    /// `n` tasks that each write a record and wait for its flush group.
    fn writers(
        storage: &Arc<Counting>,
        groups: &Arc<FlushGroups>,
        n: u64,
    ) -> tokio::task::JoinSet<Result<(), ClusterError>> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (storage, groups) = (Arc::clone(storage), Arc::clone(groups));
            tasks.spawn(async move {
                storage.write_buffered(record(i)).expect("write");
                groups.flush(&*storage).await
            });
        }
        tasks
    }

    /// Writers that are ready together share flushes, and each returns only after one.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_writers_share_a_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Counting::over(dir.path(), false));
        let groups = Arc::new(FlushGroups::default());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..32u64 {
            let (storage, groups) = (Arc::clone(&storage), Arc::clone(&groups));
            tasks.spawn(async move {
                storage.write_buffered(record(i)).expect("write");
                groups.flush(&*storage).await.expect("flush");
                // Back from the flush: our write is in the operating system's hands.
                storage.flushes.load(Ordering::SeqCst)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            assert!(joined.expect("task") >= 1);
        }
        let flushes = storage.flushes.load(Ordering::SeqCst);
        assert!(
            (1..32).contains(&flushes),
            "{flushes} flushes for 32 writers"
        );
        assert!(groups.open.lock().is_none());
    }

    /// A failed flush fails every writer of its group, and the next group starts afresh.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_flush_fails_its_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Counting::over(dir.path(), true));
        let groups = Arc::new(FlushGroups::default());
        let mut tasks = writers(&storage, &groups, 4);
        while let Some(joined) = tasks.join_next().await {
            let err = joined.expect("task").expect_err("the flush failed");
            assert!(err.to_string().contains("disk on fire"), "{err}");
        }
    }

    /// A flush that panics fails the other writers of its group instead of leaving them
    /// waiting (with their keys locked) for an outcome nobody will report.
    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_flush_fails_the_rest_of_its_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Counting {
            panics: true,
            ..Counting::over(dir.path(), false)
        });
        let groups = Arc::new(FlushGroups::default());
        let mut tasks = writers(&storage, &groups, 4);
        let (mut panicked, mut failed) = (0, 0);
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Err(e) if e.is_panic() => panicked += 1,
                Err(e) => panic!("{e}"),
                Ok(result) => {
                    let err = result.expect_err("the flush panicked");
                    assert!(err.to_string().contains("panicked"), "{err}");
                    failed += 1;
                }
            }
        }
        assert!(
            panicked >= 1 && panicked + failed == 4,
            "{panicked} {failed}"
        );
        assert!(
            failed >= 1,
            "all four led their own group: nothing was tested"
        );
    }

    /// A leader dropped while it yields still flushes for the members of its group.
    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_leader_still_flushes_for_its_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(Counting::over(dir.path(), false));
        let groups = Arc::new(FlushGroups::default());
        storage.write_buffered(record(0)).expect("write");
        let mut leader = Box::pin(groups.flush(&*storage));
        // Polled once: it opens the group and yields.
        assert!(futures_poll_once(leader.as_mut()).is_none());
        let member = {
            let (storage, groups) = (Arc::clone(&storage), Arc::clone(&groups));
            tokio::spawn(async move { groups.flush(&*storage).await })
        };
        tokio::task::yield_now().await;
        drop(leader);
        member
            .await
            .expect("member task")
            .expect("flushed by the dropped leader");
        assert_eq!(storage.flushes.load(Ordering::SeqCst), 1);
    }

    /// Polls `fut` once with a no-op waker.
    fn futures_poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
