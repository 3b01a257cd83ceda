//! Background threads: one flushes frozen memtables, one compacts.
//!
//! Two threads because a long compaction must not hold up flushes (writers would stall on
//! memtables). A failure in either poisons the engine, and so does a panic (a drop guard sees
//! it), so writes stop instead of silently losing durability. Must never hold a lock across the
//! wait between rounds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::error;

use crate::db::DbInner;

/// How often the compaction thread looks for expired tables even when nothing was written.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The background threads; stopping them is idempotent, and dropping stops them.
pub(crate) struct Workers {
    inner: Arc<DbInner>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Starts the threads if the options ask for background work.
    pub(crate) fn start(inner: &Arc<DbInner>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if inner.opts.background_work {
            for (name, job) in [
                ("ringkv-lsm-flush", Job::Flush),
                ("ringkv-lsm-compact", Job::Compact),
            ] {
                let worker_inner = Arc::clone(inner);
                let worker_stop = Arc::clone(&stop);
                let spawned = std::thread::Builder::new()
                    .name(name.to_string())
                    .spawn(move || run(&worker_inner, &worker_stop, job));
                match spawned {
                    Ok(handle) => threads.push(handle),
                    Err(e) => inner.set_poison(format!("could not start the {name} thread: {e}")),
                }
            }
        }
        Self {
            inner: Arc::clone(inner),
            stop,
            threads: Mutex::new(threads),
        }
    }

    /// Stops and joins the threads.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.inner.notify();
        for handle in self.threads.lock().drain(..) {
            if handle.join().is_err() {
                error!("a storage engine background thread panicked");
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Copy)]
enum Job {
    Flush,
    Compact,
}

/// Poisons the engine if the thread unwinds.
struct PoisonOnPanic<'a>(&'a DbInner);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .set_poison("a background thread panicked".to_string());
        }
    }
}

fn run(inner: &DbInner, stop: &AtomicBool, job: Job) {
    let _guard = PoisonOnPanic(inner);
    while !stop.load(Ordering::Acquire) {
        if inner.poison.lock().is_some() {
            break;
        }
        let worked = match job {
            Job::Flush => inner.flush_oldest(),
            Job::Compact => inner.compact_step(),
        };
        match worked {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                inner.set_poison(format!("background {} failed: {e}", job.name()));
                break;
            }
        }
        let mut guard = inner.signal_lock.lock();
        if stop.load(Ordering::Acquire) {
            break;
        }
        inner.signal.wait_for(&mut guard, IDLE_CHECK);
    }
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Flush => "flush",
            Job::Compact => "compaction",
        }
    }
}
