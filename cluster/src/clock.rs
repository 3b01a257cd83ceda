//! Wall-clock time, behind a seam.
//!
//! Owns the [`Clock`] trait, [`SystemClock`] (the real one) and [`ManualClock`] (a clock a test
//! owns and moves by hand). `SystemTime::now()` appears in this file and nowhere else in the
//! crate, so every part that needs "now" (the HLC, expiry, the engine's GC) can be driven by a
//! test or a simulation. Must never be monotonic-corrected here: the [`Hlc`](crate::hlc::Hlc)
//! is what copes with a wall clock that steps back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix-epoch milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch. May step backwards (NTP), never panics.
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as 0 rather than failing: the HLC keeps versions
        // increasing regardless.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to: tests own time with it.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    /// Sets the reading, forwards or backwards.
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the reading forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_a_plausible_time() {
        // 2020-01-01 in unix ms: any machine running this is later.
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(5);
        assert_eq!(clock.now_ms(), 1_005);
        clock.set(10);
        assert_eq!(clock.now_ms(), 10);
    }
}
